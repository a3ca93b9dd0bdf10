// The API client: adds the token, parses the {code, message, data} envelope, and throws on errors.
// Only the public /api routes (docs/API.md) are used.

const TOKEN_KEY = 'panlist.token';

export function getToken() { try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; } }
export function setToken(t) { try { localStorage.setItem(TOKEN_KEY, t); } catch { /* private mode */ } }
export function clearToken() { try { localStorage.removeItem(TOKEN_KEY); } catch { /* ignore */ } }

/** An API failure: `message` is the server's text, `code` the envelope code, `data` its data (if any). */
export class ApiError extends Error {
  constructor(message, code, data = null) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.data = data;
  }
}

/** Headers for a request: the raw token in Authorization (no "Bearer "), when there is one. */
export function authHeaders(extra = {}) {
  const t = getToken();
  return t ? { Authorization: t, ...extra } : { ...extra };
}

/**
 * Parses an envelope text; throws ApiError when `code` is not 200. 401 also raises a global event (unless
 * `quiet`: a share link's visitor is not logged in, and its 401s are the share's own).
 */
export function unwrap(text, httpStatus, { quiet = false } = {}) {
  let env;
  try { env = JSON.parse(text); } catch {
    throw new ApiError(`the server answered HTTP ${httpStatus} without a JSON body`, httpStatus);
  }
  if (!env || typeof env !== 'object' || !('code' in env)) throw new ApiError('unexpected answer from the server', httpStatus);
  if (env.code !== 200) {
    if (env.code === 401 && !quiet) window.dispatchEvent(new CustomEvent('panlist:unauthorized', { detail: env.message }));
    throw new ApiError(env.message || `error ${env.code}`, env.code, env.data ?? null);
  }
  return env.data;
}

/**
 * Calls an /api route. `body` is sent as JSON (POST by default); `query` becomes the query string.
 * Resolves to the envelope's `data`. `anonymous`: no token is sent and a 401 is not taken as the login having
 * ended (the public share routes, used by visitors).
 */
export async function api(path, body = {}, { method = 'POST', query = null, signal, anonymous = false } = {}) {
  let url = '/api' + path;
  if (query) url += '?' + new URLSearchParams(query).toString();
  const init = { method, headers: anonymous ? {} : authHeaders(), signal, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET' && method !== 'HEAD') {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body ?? {});
  }
  let res;
  try { res = await fetch(url, init); } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError('cannot reach the server: ' + (e && e.message ? e.message : e), 0);
  }
  return unwrap(await res.text(), res.status, { quiet: anonymous });
}

/** GET an /api route with query parameters. */
export const apiGet = (path, query = null, opts = {}) => api(path, null, { ...opts, method: 'GET', query });
