// Small DOM and formatting helpers shared by every module.
// Nothing here ever parses HTML: elements are built with createElement and text goes in via textContent.

/**
 * Creates an element. `attrs` keys:
 *  - `text`: textContent; `class`: className; `dataset`: object of data-* values
 *  - `on<Event>`: a function, added with addEventListener
 *  - boolean `true`/`false`: attribute present/absent; anything else: setAttribute
 * Children may be nodes, strings (as text nodes), or null/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') el.textContent = String(value);
    else if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === 'value' || key === 'checked') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** Replaces every child of `el` with `children` (null, undefined and false are skipped, never shown as text). */
export function clear(el, ...children) {
  el.replaceChildren(...children.flat().filter(c => c !== null && c !== undefined && c !== false));
  return el;
}

// ---------------------------------------------------------------------------------------------
// Virtual paths. A virtual path always starts with "/" and has no trailing "/" (except "/").

export function splitPath(p) { return String(p || '/').split('/').filter(s => s !== '' && s !== '.'); }
export function normPath(p) { return '/' + splitPath(p).join('/'); }
export function joinPath(dir, name) { return normPath(normPath(dir) + '/' + name); }
export function parentPath(p) { const s = splitPath(p); s.pop(); return '/' + s.join('/'); }
export function baseName(p) { const s = splitPath(p); return s.length ? s[s.length - 1] : ''; }

/** Percent-encodes each segment: "/a b/c#d" → "/a%20b/c%23d". */
export function encodePath(p) { return '/' + splitPath(p).map(encodeURIComponent).join('/'); }

/** Decodes a URL pathname into a virtual path, segment by segment (a bad escape stays as it is). */
export function decodeUrlPath(pathname) {
  return '/' + String(pathname).split('/').filter(Boolean).map(s => {
    try { return decodeURIComponent(s); } catch { return s; }
  }).join('/');
}

/** The URL when it is http(s) (absolute, or relative to this page), else "" (never javascript: etc.). */
export function safeHref(u) {
  try {
    const url = new URL(String(u || ''), location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : '';
  } catch { return ''; }
}

/**
 * "_blank" for a download link that may leave this origin (another host, or /d and /sd which can redirect to a
 * cloud): a cross-origin answer ignores the download attribute and must not replace the app's page.
 */
export function downloadTarget(u) {
  try {
    const url = new URL(u, location.href);
    return url.origin !== location.origin || /^\/s?d\//.test(url.pathname) ? '_blank' : '';
  } catch { return ''; }
}

/** A sign as a query value: its own characters (base64url, "=", ":") stay as they are. */
export function signParam(sign) { return String(sign).replace(/[^A-Za-z0-9\-_=:.~]/g, encodeURIComponent); }

/** Lower-case extension without the dot ("" when none). */
export function extOf(name) {
  const i = name.lastIndexOf('.');
  return i > 0 ? name.slice(i + 1).toLowerCase() : '';
}

// ---------------------------------------------------------------------------------------------
// Formatting

// Binary units with their right names: 838,860,800 bytes is "800 MiB".
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function formatSize(n) {
  n = Number(n);
  if (!Number.isFinite(n) || n < 0) n = 0;
  if (n < 1024) return n + ' B';
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) { n /= 1024; i++; }
  const text = n >= 100 ? n.toFixed(0) : n.toFixed(1);
  return text.replace(/\.0$/, '') + ' ' + UNITS[i];
}

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
export function formatDate(s) {
  const d = new Date(s);
  return isNaN(d) || d.getTime() <= 0 ? '' : dateFmt.format(d);
}

// ---------------------------------------------------------------------------------------------
// Messages: the error box (#error) and a short-lived toast.

export function showError(message) {
  const box = $('#error');
  $('#error-text').textContent = String(message || 'Something went wrong');
  box.hidden = false;
  if (box.getBoundingClientRect().top < 0) window.scrollTo({ top: 0 });   // the box is at the top of the page
}
export function clearError() { $('#error').hidden = true; $('#error-text').textContent = ''; }

let toastTimer = 0;
export function toast(message) {
  const t = $('#toast');
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 2500);
}

/** Copies text to the clipboard; resolves to false when the browser refuses (e.g. plain http). */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(text); return true; }
  } catch { /* fall through to the legacy way */ }
  const ta = h('textarea', { readonly: true, class: 'offscreen', value: text });
  document.body.append(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  ta.remove();
  return ok;
}
