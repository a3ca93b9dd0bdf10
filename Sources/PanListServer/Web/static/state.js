// Shared state of the page: who is logged in, the public settings, and navigation.
import { api, authHeaders } from './api.js';
import { encodePath, decodeUrlPath, joinPath, parentPath, signParam, safeHref, downloadTarget, h } from './util.js';

export const state = {
  /** /api/me answer, or null when not known / not logged in */
  me: null,
  /** /api/public/settings answer ({key: "value"}) */
  settings: {},
};

export const ROLE_GUEST = 1;
export const ROLE_ADMIN = 2;
// Alist permission bits (docs/API.md, Authentication).
export const PERM = { offline: 2, write: 3, rename: 4, move: 5, copy: 6, remove: 7, readArchives: 12, decompress: 13, share: 14, customShareId: 15 };

export const isAdmin = () => !!state.me && state.me.role === ROLE_ADMIN;

/** Whether the current user holds a permission bit (the admin holds all). */
export function can(bit) {
  const me = state.me;
  if (!me) return false;
  if (me.role === ROLE_ADMIN) return true;
  return ((me.permission || 0) & (1 << bit)) !== 0;
}

/** Whether the current user may make share links (the share bit, or the admin; never the guest). */
export const canShare = () => !!state.me && state.me.role !== ROLE_GUEST && can(PERM.share);

/** A setting from /api/public/settings read as a boolean. */
export const settingOn = (key) => String(state.settings[key] ?? '').toLowerCase() === 'true';

/** The app's own pages (not folders): /@manage…, /@tasks, /@shares and /@search?… (search results, with their query). */
export const isAppPage = (path) => /^\/@manage(\/|$)|^\/@tasks$|^\/@shares$|^\/@search(\?|$)|^\/@archive(\?|$)/.test(path);

/** A share link's page: /@s/<id> and /@s/<id>/<path inside the share> (served to anyone, no login). */
export const isSharePage = (path) => /^\/@s\/[^/]+/.test(path);

/** Goes to a virtual path (or "/@manage…", "/@tasks", "/@search?…"); the app listens for the event and renders. */
export function navigate(path, { replace = false } = {}) {
  // (A share page's `@s` is the app's, kept as it is in the address; the rest is encoded as folder paths are.)
  const url = isAppPage(path) ? path : encodePath(path).replace(/^\/%40s\//, '/@s/');
  if (replace) history.replaceState(null, '', url);
  else if (url !== location.pathname + location.search) history.pushState(null, '', url);
  window.dispatchEvent(new Event('panlist:route'));
}

/** Makes same-origin links (<a href="/…">) navigate in-page instead of reloading. */
export function internalLink(a) {
  a.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    const target = a.dataset.path;
    navigate(target !== undefined ? target : decodeUrlPath(new URL(a.href).pathname));
  });
  return a;
}

// ---------------------------------------------------------------------------------------------
// File links

// ---------------------------------------------------------------------------------------------
// Folder passwords (folder rules): what the user typed, kept for this tab only (sessionStorage), by folder.
// A folder's password is also tried below it.

const PW_KEY = 'panlist.folder-passwords';
function passwordMap() { try { return JSON.parse(sessionStorage.getItem(PW_KEY) || '{}') || {}; } catch { return {}; } }
function savePasswordMap(m) { try { sessionStorage.setItem(PW_KEY, JSON.stringify(m)); } catch { /* private mode */ } }

/** The password typed for `path` or the nearest folder above it, or ''. */
export function passwordFor(path) {
  const m = passwordMap();
  for (let p = path || '/'; ; p = parentPath(p)) {
    if (m[p]) return m[p];
    if (p === '/') return '';
  }
}
export function rememberPassword(path, password) { const m = passwordMap(); m[path] = password; savePasswordMap(m); }
export function forgetPassword(path) { const m = passwordMap(); delete m[path]; savePasswordMap(m); }
/** The server's answer when a folder password is missing or wrong (Alist's wording, code 403). */
export const isPasswordError = (e) => !!e && e.code === 403 && /password is incorrect/i.test(e.message || '');

/** fs/get for a path: the object with its absolute `raw_url` (signed when signing applies). */
export const getObject = (path) => api('/fs/get', { path, password: passwordFor(path) });

/** The user's path as an absolute path of the tree (download links include the base path). */
export function absolutePath(path) {
  const base = (state.me && state.me.base_path) || '/';
  return joinPath(base, path);
}

/**
 * A same-origin URL for reading a file's bytes with fetch() (text, Markdown). The CSP allows
 * connect-src 'self' only, and /d may redirect to a cloud, so this is always this server's /p link
 * with the object's sign. Authorization is sent too (see readText), which covers unsigned setups.
 */
export function proxyUrl(obj, path) {
  let sign = obj.sign || '';
  if (!sign && obj.raw_url) {
    try { sign = new URL(obj.raw_url, location.href).searchParams.get('sign') || ''; } catch { /* no sign */ }
  }
  return '/p' + encodePath(absolutePath(path)) + (sign ? '?sign=' + signParam(sign) : '');
}

/** Reads up to `limit` bytes of a file as UTF-8 text. Resolves to {text, truncated}. */
export async function readText(obj, path, limit = 1024 * 1024) {
  const headers = authHeaders();
  const truncated = obj.size > limit;
  if (truncated) headers.Range = `bytes=0-${limit - 1}`;
  const res = await fetch(proxyUrl(obj, path), { headers, cache: 'no-store', credentials: 'same-origin' });
  if (!res.ok) {
    let msg = `HTTP ${res.status}`;
    try { const env = JSON.parse(await res.text()); if (env && env.message) msg = env.message; } catch { /* keep HTTP status */ }
    throw new Error(msg);
  }
  const buf = await res.arrayBuffer();
  return { text: new TextDecoder('utf-8').decode(buf.byteLength > limit ? buf.slice(0, limit) : buf), truncated };
}

/** Starts a browser download of a URL (a temporary <a download>). */
export function startDownload(url, name) {
  const href = safeHref(url);
  if (!href) throw new Error('the server gave no usable download link');
  const a = h('a', { href, download: name || '', rel: 'noopener', target: downloadTarget(href) || false, class: 'offscreen' });
  document.body.append(a);
  a.click();
  a.remove();
}
