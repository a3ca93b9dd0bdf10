// The page of a share link, /@s/<id> and /@s/<id>/<path inside the share>: for anyone who has the link, without
// logging in (the public share routes, docs/API.md "Shares"; no token of a logged-in user is sent).
// The share's info first; its password when it has one (asked on the page, the error next to the field), else it
// opens at once. Opening counts one open, so the session it gives is kept for this tab (sessionStorage, by share
// id): a reload goes on with it. Then a file list inside the share (breadcrumbs from the share's top, readme and
// header, folder passwords asked as the file list asks them), previews through preview.js with the share's links,
// and Download where the share offers it. A share that cannot be opened (missing, disabled, expired, used up or
// unavailable) is a page of its own that says so.
import { api } from './api.js';
import { state, navigate, internalLink, isPasswordError } from './state.js';
import { $, h, clear, splitPath, joinPath, parentPath, baseName, encodePath, signParam, formatSize, formatDate,
         downloadTarget, toast } from './util.js';
import { openPreview, kindOf, KIND_ICONS } from './preview.js';
import { promptText } from './dialogs.js';
import { renderMarkdown } from './markdown.js';
import { icon } from './icons.js';
import { showFieldError, clearFormErrors } from './forms.js';

const ICONS = KIND_ICONS;
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

const view = {
  active: false,
  id: '',
  path: '/',            // the folder shown, inside the share
  info: null,           // public/share/info
  token: '',            // the session from public/share/auth
  items: [],
  seq: 0,
  pendingPreview: null, // a file named by the address, previewed once its folder is listed
};

/** The share id and the path inside the share of a page path "/@s/<id>/<path>". */
export function shareRoute(path) {
  const parts = splitPath(path);
  return { id: parts[1] || '', path: '/' + parts.slice(2).join('/') };
}

/** The page path of `path` inside the share being shown. */
const pagePath = (path) => '/@s/' + view.id + (path === '/' ? '' : path);

const setTitle = (t) => { document.title = t + ' – ' + (state.settings.site_title || 'PanList'); };
const call = (route, body) => api('/public/share/' + route, body, { anonymous: true });

// Sessions and folder passwords, for this tab only.
const SESSION_KEY = (id) => 'panlist.share.' + id;
const PW_KEY = (id) => 'panlist.share-passwords.' + id;
function readJSON(key) { try { return JSON.parse(sessionStorage.getItem(key) || 'null'); } catch { return null; } }
function writeJSON(key, v) { try { if (v === null) sessionStorage.removeItem(key); else sessionStorage.setItem(key, JSON.stringify(v)); } catch { /* private mode */ } }
function folderPassword(path) {
  const m = readJSON(PW_KEY(view.id)) || {};
  for (let p = path || '/'; ; p = parentPath(p)) {
    if (m[p]) return m[p];
    if (p === '/') return '';
  }
}
function rememberFolderPassword(path, pw) { const m = readJSON(PW_KEY(view.id)) || {}; if (pw === null) delete m[path]; else m[path] = pw; writeJSON(PW_KEY(view.id), m); }

/** What a refusal of the share itself means, as a page: a title and the server's reason. */
function closedState(e) {
  const m = String((e && e.message) || '');
  if (e && e.code === 404) return { state: 'missing', title: 'This share does not exist' };
  if (e && e.code === 403) {
    if (/disabled/i.test(m)) return { state: 'disabled', title: 'This share is disabled' };
    if (/expired/i.test(m)) return { state: 'expired', title: 'This share has expired' };
    if (/as many times/i.test(m)) return { state: 'exhausted', title: 'This share is used up' };
    return { state: 'unavailable', title: 'This share is not available' };
  }
  return { state: 'error', title: 'The share could not be opened' };
}
const sentence = (m) => { const t = String(m || '').trim(); return t ? t[0].toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? '' : '.') : ''; };

export function hideShare() { view.active = false; view.seq++; }

/** Shows the share page for a page path (called by the router). */
export async function showShare(path) {
  const { id, path: inside } = shareRoute(path);
  const mine = ++view.seq;
  view.active = true;
  if (id !== view.id) { view.id = id; view.info = null; view.token = ''; view.items = []; }
  view.path = inside;
  if (!view.token && !(await openShare(mine))) return;
  if (mine === view.seq) await load(mine);
}

/** Finds the share and a session for it: one kept by this tab, or a new open (after its password). */
async function openShare(mine, { keep = true } = {}) {
  setTitle('Shared files');
  const saved = keep ? readJSON(SESSION_KEY(view.id)) : null;
  if (!view.info) pageMessage('Opening the share…');
  let info = null, refused = null;
  try { info = await call('info', { id: view.id }); } catch (e) { refused = e; }
  if (mine !== view.seq) return false;
  // A session this tab holds goes on (also past the open limit, as the server allows); a new one counts an open.
  const usable = saved && saved.token && Date.parse(saved.expires) > Date.now() + 5000;
  if (usable && (!refused || closedState(refused).state === 'exhausted')) {
    view.info = info ? { ...info, title: saved.info && saved.info.title ? saved.info.title : info.title } : saved.info;
    view.token = saved.token;
    return true;
  }
  if (!keep || !usable) writeJSON(SESSION_KEY(view.id), null);
  if (refused) { showClosed(refused); return false; }
  view.info = info;
  if (info.has_password) { showPasswordForm(mine); return false; }
  try { return await authenticate(mine, ''); } catch (e) {
    if (mine === view.seq) showClosed(e);
    return false;
  }
}

/** Opens the share (counts one open) and keeps the session; false (with the page saying why) when refused. */
async function authenticate(mine, password) {
  const s = await call('auth', { id: view.id, password });
  if (mine !== view.seq) return false;
  view.token = s.token;
  // Behind a password the info has no name ("Shared files"); once open, the share's top says what it is.
  if (view.info.has_password) {
    try {
      const top = await call('get', { id: view.id, token: view.token, path: '/' });
      if (top && top.name && top.name !== '/') view.info = { ...view.info, title: top.name };
    } catch { /* the generic title stays */ }
    if (mine !== view.seq) return false;
  }
  writeJSON(SESSION_KEY(view.id), { token: s.token, expires: s.expires, info: view.info });
  return true;
}

// ---------------------------------------------------------------------------------------------
// Whole-page states

function pageMessage(text) {
  clear($('#share-view'), h('p', { class: 'muted center share-loading', text }));
}

function showClosed(e) {
  const { state, title } = closedState(e);
  setTitle(title);
  clear($('#share-view'), h('div', { class: 'share-state', role: 'alert', dataset: { testid: 'share-state', state } },
    h('h1', { text: title }),
    h('p', { dataset: { testid: 'share-state-message' }, text: sentence(e && e.message) || 'Something went wrong.' }),
    state === 'error' ? h('div', { class: 'form-buttons' },
      h('button', { type: 'button', class: 'primary', text: 'Try again', onclick: () => showShare(pagePath(view.path)) })) : null));
}

/** The share's password, asked on the page: a wrong one is said next to the field, a block above it. */
function showPasswordForm(mine) {
  const info = view.info;
  setTitle(info.title);
  const input = h('input', { id: 'share-password', type: 'password', autocomplete: 'off', required: true,
    'aria-describedby': 'share-password-error', dataset: { testid: 'share-password' } });
  const blocked = h('p', { id: 'share-password-blocked', class: 'form-error', role: 'alert', dataset: { testid: 'share-blocked' }, hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary', dataset: { testid: 'share-open' }, text: 'Open' });
  const form = h('form', { class: 'share-card', id: 'share-password-form', novalidate: true },
    h('h1', {}, icon('lock'), h('span', { text: info.title })),
    h('p', { class: 'muted', text: 'This share is protected by a password. Enter it to see the shared files.' }),
    blocked,
    h('div', { class: 'field' },
      h('label', { for: 'share-password' }, h('span', { text: 'Password' })),
      input,
      h('p', { class: 'field-error', id: 'share-password-error', dataset: { testid: 'share-password-error' }, hidden: true })),
    h('div', { class: 'form-buttons' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFormErrors(form, blocked);
    if (!input.value) { showFieldError(input, 'Enter the password.'); return; }
    submit.disabled = true;
    try {
      if (await authenticate(mine, input.value) && mine === view.seq) await load(mine);
    } catch (ex) {
      if (mine !== view.seq) return;
      if (ex.code === 429) {
        blocked.textContent = 'Too many wrong passwords from here: ' + (ex.message || 'try again later') + '.';
        blocked.hidden = false;
      } else if (ex.code === 403 && /password/i.test(ex.message || '')) {
        showFieldError(input, sentence(ex.message));
        input.select();
      } else {
        showClosed(ex);
      }
    } finally {
      submit.disabled = false;
    }
  });
  clear($('#share-view'), form);
  input.focus();
}

// ---------------------------------------------------------------------------------------------
// The file list inside the share

async function load(mine) {
  const path = view.path, info = view.info;
  setTitle(path === '/' ? info.title : baseName(path));
  renderFrame();
  $('#share-status').textContent = 'Loading…';
  let data;
  try {
    data = await call('list', { id: view.id, token: view.token, path, password: folderPassword(path) });
  } catch (e) {
    if (mine !== view.seq) return;
    if (e.code === 401) {
      // The session ended (a day passed, or the share's password changed): open the share again.
      view.token = '';
      writeJSON(SESSION_KEY(view.id), null);
      if (await openShare(mine, { keep: false }) && mine === view.seq) await load(mine);
      return;
    }
    if (isPasswordError(e)) {
      const tried = folderPassword(path);
      if (tried) rememberFolderPassword(path, null);
      $('#share-status').textContent = '';
      const pw = await promptText('Password', {
        message: tried ? 'The password is incorrect. Try again.' : 'This folder is protected by a password.', okText: 'Open', secret: true });
      if (mine !== view.seq) return;
      if (pw !== null) { rememberFolderPassword(path, pw); return load(mine); }
      return showListError('This folder needs its password.');
    }
    if (e.code === 400 && /is a file/i.test(e.message || '') && path !== '/') {
      // The address names a file: show its folder and preview it.
      view.pendingPreview = baseName(path);
      navigate(pagePath(parentPath(path)), { replace: true });
      return;
    }
    if (e.code === 403 || e.code === 404) { showClosed(e); return; }
    return showListError(e.message);
  }
  if (mine !== view.seq) return;
  view.items = (data.content || []).slice().sort((a, b) => (a.is_dir !== b.is_dir ? (a.is_dir ? -1 : 1) : collator.compare(a.name, b.name)));
  renderList();
  showText($('#share-header'), data.header || '', mine);
  showReadme(data.readme || '', mine);
  if (view.pendingPreview) {
    const item = view.items.find(i => i.name === view.pendingPreview);
    view.pendingPreview = null;
    if (item && !item.is_dir) open(item);
  }
}

/** The page around the list: the share's name and terms, breadcrumbs from its top, the list's place. */
function renderFrame() {
  const info = view.info;
  const terms = [];
  terms.push(info.items > 1 ? `${info.items} items` : (info.is_dir ? 'A folder' : 'A file'));
  if (info.expires && formatDate(info.expires)) terms.push('until ' + formatDate(info.expires));
  if (!info.allow_download) terms.push(info.allow_preview ? 'view only' : 'list only');
  const nav = h('nav', { id: 'share-crumbs', class: 'crumbs', 'aria-label': 'Path' });
  const parts = splitPath(view.path);
  const crumb = (label, target, last) => last
    ? h('span', { class: 'crumb current', 'aria-current': 'page', text: label })
    : internalLink(h('a', { class: 'crumb', href: encodePath(pagePath(target)), dataset: { path: pagePath(target), testid: 'share-crumb' }, text: label }));
  nav.append(crumb(info.title, '/', parts.length === 0));
  let acc = '';
  parts.forEach((p, k) => {
    acc += '/' + p;
    nav.append(h('span', { class: 'sep', 'aria-hidden': 'true', text: '/' }), crumb(p, acc, k === parts.length - 1));
  });
  clear($('#share-view'),
    h('div', { class: 'share-head' },
      h('div', { class: 'share-title' },
        h('span', { class: 'share-badge' }, icon('share'), 'Shared with you'),
        h('span', { class: 'muted small', dataset: { testid: 'share-terms' }, text: terms.join(' · ') })),
      nav),
    h('div', { id: 'share-status', class: 'muted small', 'aria-live': 'polite' }),
    h('article', { id: 'share-header', class: 'markdown', hidden: true }),
    h('div', { id: 'share-listing', class: 'list' }),
    h('article', { id: 'share-readme', class: 'markdown', hidden: true }));
}

function showListError(message) {
  const box = clear($('#share-listing'));
  box.classList.add('failed');
  $('#share-status').textContent = '';
  const up = view.path === '/' ? null : parentPath(view.path);
  box.append(h('div', { class: 'load-error', role: 'alert', dataset: { testid: 'load-error' } },
    h('h2', { text: 'This folder could not be opened' }),
    h('p', { text: sentence(message) || 'The folder could not be listed.' }),
    h('div', { class: 'form-buttons' },
      up === null ? null : internalLink(h('a', { class: 'button primary', href: encodePath(pagePath(up)), dataset: { path: pagePath(up) },
        text: 'Go to ' + (up === '/' ? view.info.title : baseName(up)) })),
      h('button', { type: 'button', text: 'Try again', onclick: () => showShare(pagePath(view.path)) }))));
}

/** The /sd link (the share's download policy) or /sp link (always streamed here) of a file with a sign. */
function fileLink(item, path, prefix = 'sd') {
  return `/${prefix}/${encodeURIComponent(view.id)}${encodePath(path)}?sign=${signParam(item.sign)}`;
}

const previewable = (item) => !item.is_dir && !!item.sign && view.info.allow_preview && kindOf(item) !== 'other';
const downloadable = (item) => !item.is_dir && !!item.sign && view.info.allow_download;

function renderList() {
  const box = clear($('#share-listing'));
  box.classList.remove('failed');
  const folders = view.items.filter(i => i.is_dir).length, files = view.items.length - folders;
  $('#share-status').textContent = `${folders} folder${folders === 1 ? '' : 's'}, ${files} file${files === 1 ? '' : 's'}`;
  if (!view.items.length) {
    box.append(h('p', { class: 'empty muted', text: 'This folder is empty.' }));
    return;
  }
  box.append(h('div', { class: 'list-head', role: 'presentation' },
    h('span'), h('span', { text: 'Name' }), h('span', { class: 'col-size', text: 'Size' }), h('span', { text: 'Modified' }), h('span')));
  for (const item of view.items) box.append(makeRow(item));
}

function makeRow(item) {
  const path = joinPath(view.path, item.name);
  const kind = kindOf(item);
  const name = h('a', { class: 'name', href: encodePath(pagePath(path)), title: item.name, dataset: { testid: 'share-entry-name' }, text: item.name });
  name.addEventListener('click', (e) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    open(item);
  });
  const actions = h('span', { class: 'actions' });
  if (downloadable(item)) {
    const href = fileLink(item, path);
    actions.append(h('a', { class: 'icon-btn', href, download: item.name, rel: 'noopener', target: downloadTarget(href) || false,
      dataset: { testid: 'share-download' }, title: 'Download', 'aria-label': 'Download ' + item.name }, icon('download')));
  }
  return h('div', { class: 'entry', dataset: { testid: 'share-entry', name: item.name, type: item.is_dir ? 'folder' : 'file', kind } },
    h('span', { class: 'icon k-' + kind, 'aria-hidden': 'true' }, icon(ICONS[kind] || 'file')),
    name,
    h('span', { class: 'size', text: item.is_dir ? '' : formatSize(item.size) }),
    h('span', { class: 'date', text: formatDate(item.modified) }),
    actions);
}

function open(item) {
  const path = joinPath(view.path, item.name);
  if (item.is_dir) { navigate(pagePath(path)); return; }
  if (previewable(item)) {
    openPreview(item, view.path, view.items.filter(previewable), {
      get: (p) => call('get', { id: view.id, token: view.token, path: p, password: folderPassword(p) }),
      read: (obj, p, limit) => readShareText(obj, p, limit),
      pdf: (obj, p) => fileLink(obj, p, 'sp'),
      download: view.info.allow_download,
      copy: false,
    });
    return;
  }
  if (downloadable(item)) {
    const href = fileLink(item, path);
    const a = h('a', { href, download: item.name, rel: 'noopener', target: downloadTarget(href) || false, class: 'offscreen' });
    document.body.append(a);
    a.click();
    a.remove();
    return;
  }
  toast('This share offers no preview or download of this file');
}

/** Reads up to `limit` bytes of a shared file as text, through its /sp link (same origin, as the CSP wants). */
async function readShareText(obj, path, limit) {
  const truncated = obj.size > limit;
  const res = await fetch(fileLink(obj, path, 'sp'), { headers: truncated ? { Range: `bytes=0-${limit - 1}` } : {}, cache: 'no-store' });
  if (!res.ok) {
    let msg = `HTTP ${res.status}`;
    try { const env = JSON.parse(await res.text()); if (env && env.message) msg = env.message; } catch { /* keep the status */ }
    throw new Error(msg);
  }
  const buf = await res.arrayBuffer();
  return { text: new TextDecoder('utf-8').decode(buf.byteLength > limit ? buf.slice(0, limit) : buf), truncated };
}

/** A readme or header: Markdown, or a link when it is a URL. */
function showText(box, text, mine) {
  clear(box);
  box.hidden = !text.trim();
  if (box.hidden || mine !== view.seq) return;
  const t = text.trim();
  if (/^https?:\/\/\S+$/i.test(t)) box.append(h('p', {}, h('a', { href: t, target: '_blank', rel: 'noopener noreferrer', text: t })));
  else box.append(renderMarkdown(text));
}

/** The share's (or the folder rule's) readme, else a README.md of the folder the share serves. */
async function showReadme(text, mine) {
  const box = $('#share-readme');
  if (text.trim()) { showText(box, text, mine); return; }
  const item = view.items.find(i => !i.is_dir && i.name.toLowerCase() === 'readme.md' && i.sign);
  if (!item) { box.hidden = true; return; }
  try {
    const { text: md } = await readShareText(item, joinPath(view.path, item.name), 512 * 1024);
    if (mine === view.seq) showText(box, md, mine);
  } catch { if (mine === view.seq) box.hidden = true; }
}
