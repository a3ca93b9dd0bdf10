// Inside an archive (/@archive?path=<archive>&inner=<folder inside it>): the archive's folders listed like the
// file list's (/api/fs/archive/list), files previewed and downloaded through their signed /ae and /ap links,
// a password asked for encrypted archives (kept for this tab), and Extract, which queues a task.
import { api } from './api.js';
import { $, h, clear, joinPath, parentPath, baseName, splitPath, encodePath, signParam, formatSize, formatDate,
         clearError } from './util.js';
import { state, can, PERM, navigate, internalLink, absolutePath, passwordFor } from './state.js';
import { promptText, pickFolder, noticeWithLink } from './dialogs.js';
import { openPreview, kindOf, KIND_ICONS } from './preview.js';
import { openRecordForm } from './forms.js';
import { icon } from './icons.js';

const view = { active: false, seq: 0, path: '', inner: '/', items: [] };
/** Archive passwords typed in this tab, by archive path. */
const passwords = new Map();

/** Extensions the server opens (from /api/public/archive_extensions, fetched once). */
let extensions = ['zip', '7z', 'rar', 'tar', 'tar.gz', 'tgz', 'tar.bz2', 'tar.xz', 'tar.zst', 'iso'];
let extensionsAsked = false;
export async function loadArchiveExtensions() {
  if (extensionsAsked) return;
  extensionsAsked = true;
  try { const list = await api('/public/archive_extensions', null, { method: 'GET' }); if (Array.isArray(list)) extensions = list; } catch { /* keep the defaults */ }
}

/** Whether the file list opens `item` as an archive for this user. */
export function isArchive(item) {
  if (!item || item.is_dir || !can(PERM.readArchives)) return false;
  const n = item.name.toLowerCase();
  return extensions.some(e => n.endsWith('.' + e));
}

/** The page of an archive (and a folder inside it). */
export function archivePage(path, inner = '/') {
  const q = new URLSearchParams({ path });
  if (inner && inner !== '/') q.set('inner', inner);
  return '/@archive?' + q.toString();
}

export function hideArchive() { view.active = false; view.seq++; }

/** Renders the archive page from the address (called by the router). */
export async function showArchive() {
  view.active = true;
  const mine = ++view.seq;
  const q = new URLSearchParams(location.search);
  view.path = q.get('path') || '/';
  view.inner = joinPath('/', q.get('inner') || '/');
  document.title = baseName(view.path) + ' – ' + (state.settings.site_title || 'PanList');
  renderFrame();
  $('#archive-status').textContent = 'Loading…';
  let data;
  try {
    data = await api('/fs/archive/list', { path: view.path, password: passwordFor(parentPath(view.path)),
      archive_pass: passwords.get(view.path) || '', inner_path: view.inner });
  } catch (e) {
    if (mine !== view.seq) return;
    if (/password/i.test(e.message) && /archive|wrong/i.test(e.message) && !/folder/i.test(e.message)) {
      const tried = passwords.has(view.path);
      passwords.delete(view.path);
      $('#archive-status').textContent = '';
      const pw = await promptText('Archive password', {
        message: tried ? 'The password is wrong. Try again.' : 'This archive is protected by a password.', okText: 'Open', secret: true });
      if (mine !== view.seq) return;
      if (pw !== null) { passwords.set(view.path, pw); return showArchive(); }
      return showLoadError('This archive needs its password.');
    }
    return showLoadError(e.message);
  }
  if (mine !== view.seq) return;
  clearError();
  view.items = data.content || [];
  renderList();
  // A zip lists its names without the password; its files need it: asked once, before a file is opened.
  if (data.encrypted && !passwords.has(view.path)) {
    const pw = await promptText('Archive password', { message: 'The files in this archive are encrypted. Enter its password to open them.',
      okText: 'OK', secret: true });
    if (mine === view.seq && pw !== null) passwords.set(view.path, pw);
  }
}

function renderFrame() {
  const nav = h('nav', { id: 'archive-crumbs', class: 'crumbs', 'aria-label': 'Path' });
  const crumb = (label, href, dataPath, last) => last
    ? h('span', { class: 'crumb current', 'aria-current': 'page', text: label })
    : internalLink(h('a', { class: 'crumb', href, dataset: { path: dataPath, testid: 'archive-crumb' }, text: label }));
  const sep = () => h('span', { class: 'sep', 'aria-hidden': 'true', text: '/' });
  nav.append(crumb('Home', '/', '/', false));
  let acc = '';
  for (const p of splitPath(parentPath(view.path))) {
    acc += '/' + p;
    nav.append(sep(), crumb(p, encodePath(acc), acc, false));
  }
  const inner = splitPath(view.inner);
  nav.append(sep(), crumb(baseName(view.path), archivePage(view.path), archivePage(view.path), inner.length === 0));
  let at = '';
  inner.forEach((p, k) => {
    at += '/' + p;
    nav.append(sep(), crumb(p, archivePage(view.path, at), archivePage(view.path, at), k === inner.length - 1));
  });
  const extract = can(PERM.decompress) && can(PERM.write)
    ? h('button', { type: 'button', id: 'archive-extract', dataset: { testid: 'archive-extract' },
        title: 'Extract this archive (or the folder of it you are in) into a folder' }, icon('zip'), h('span', { class: 'label', text: 'Extract…' }))
    : null;
  if (extract) extract.addEventListener('click', () => extractDialog());
  clear($('#archive-view'),
    h('div', { class: 'share-head' },
      h('div', { class: 'share-title' },
        h('span', { class: 'share-badge' }, icon('zip'), 'Inside an archive'),
        h('span', { class: 'muted small', text: 'Files open and download from inside the archive; nothing is unpacked on the server.' })),
      nav),
    h('div', { id: 'archive-toolbar', class: 'toolbar-row' }, extract),
    h('div', { id: 'archive-status', class: 'muted small', 'aria-live': 'polite' }),
    h('div', { id: 'archive-listing', class: 'list' }));
}

function showLoadError(message) {
  const box = clear($('#archive-listing'));
  box.classList.add('failed');
  $('#archive-status').textContent = '';
  const folder = parentPath(view.path);
  box.append(h('div', { class: 'load-error', role: 'alert', dataset: { testid: 'load-error' } },
    h('h2', { text: 'This archive could not be opened' }),
    h('p', { text: message }),
    h('div', { class: 'form-buttons' },
      internalLink(h('a', { class: 'button primary', href: encodePath(folder), dataset: { path: folder },
        text: 'Go to ' + (folder === '/' ? 'Home' : baseName(folder)) })),
      h('button', { type: 'button', text: 'Try again', onclick: () => showArchive() }))));
}

/** The signed link of a member: /ap shows safe types inline (previews), /ad always downloads. */
function memberLink(item, prefix = 'ap') {
  const member = joinPath(view.inner, item.name).slice(1);
  const pass = passwords.get(view.path);
  return `/${prefix}${encodePath(absolutePath(view.path))}?inner=${encodeURIComponent(member)}` +
    (pass ? '&pass=' + encodeURIComponent(pass) : '') + '&sign=' + signParam(item.sign);
}

function renderList() {
  const box = clear($('#archive-listing'));
  box.classList.remove('failed');
  const folders = view.items.filter(i => i.is_dir).length, files = view.items.length - folders;
  $('#archive-status').textContent = `${folders} folder${folders === 1 ? '' : 's'}, ${files} file${files === 1 ? '' : 's'}`;
  if (!view.items.length) {
    box.append(h('p', { class: 'empty muted', dataset: { testid: 'archive-empty' }, text: 'This folder of the archive is empty.' }));
    return;
  }
  box.append(h('div', { class: 'list-head', role: 'presentation' },
    h('span'), h('span', { text: 'Name' }), h('span', { class: 'col-size', text: 'Size' }), h('span', { text: 'Modified' }), h('span')));
  for (const item of view.items) box.append(makeRow(item));
}

function makeRow(item) {
  const kind = kindOf(item);
  const href = item.is_dir ? archivePage(view.path, joinPath(view.inner, item.name)) : memberLink(item);
  const name = h('a', { class: 'name', href, title: item.name, dataset: { testid: 'archive-entry-name' }, text: item.name });
  name.addEventListener('click', (e) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    open(item);
  });
  const actions = h('span', { class: 'actions' });
  if (!item.is_dir) {
    actions.append(h('a', { class: 'icon-btn', href: memberLink(item, 'ad'), download: item.name, rel: 'noopener',
      dataset: { testid: 'archive-download' }, title: 'Download', 'aria-label': 'Download ' + item.name }, icon('download')));
  }
  return h('div', { class: 'entry', dataset: { testid: 'archive-entry', name: item.name, type: item.is_dir ? 'folder' : 'file', kind } },
    h('span', { class: 'icon k-' + kind, 'aria-hidden': 'true' }, icon(KIND_ICONS[kind] || 'file')),
    name,
    h('span', { class: 'size', text: item.is_dir ? '' : formatSize(item.size) }),
    h('span', { class: 'date', text: formatDate(item.modified) }),
    actions);
}

function open(item) {
  if (item.is_dir) { navigate(archivePage(view.path, joinPath(view.inner, item.name))); return; }
  if (kindOf(item) === 'other') {
    const a = h('a', { href: memberLink(item, 'ad'), download: item.name, class: 'offscreen' });
    document.body.append(a);
    a.click();
    a.remove();
    return;
  }
  const byName = new Map(view.items.map(i => [i.name, i]));
  openPreview(item, view.inner, view.items.filter(i => !i.is_dir), {
    get: async (p) => { const it = byName.get(baseName(p)) || item; return { ...it, raw_url: memberLink(it) }; },
    read: (obj, p, limit) => readMember(obj, limit),
    pdf: (obj) => memberLink(obj),
    download: true,
    copy: false,
  });
}

/** Up to `limit` bytes of a member as text (the stream is cut there: members are not read by Range). */
async function readMember(obj, limit) {
  const res = await fetch(memberLink(obj), { cache: 'no-store' });
  if (!res.ok) {
    let msg = `HTTP ${res.status}`;
    try { const env = JSON.parse(await res.text()); if (env && env.message) msg = env.message; } catch { /* keep the status */ }
    throw new Error(msg);
  }
  const reader = res.body.getReader();
  const parts = [];
  let got = 0;
  while (got < limit) {
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(value);
    got += value.byteLength;
  }
  const truncated = got >= limit && obj.size > limit;
  if (truncated) reader.cancel().catch(() => {});
  const all = new Uint8Array(Math.min(got, limit));
  let at = 0;
  for (const p of parts) { const n = Math.min(p.byteLength, all.length - at); all.set(p.subarray(0, n), at); at += n; if (at >= all.length) break; }
  return { text: new TextDecoder('utf-8').decode(all), truncated };
}

/** Extract: where to, then into a new folder or not, replace or keep; queued as a task. */
async function extractDialog() {
  const folder = parentPath(view.path);
  const dst = await pickFolder({ title: 'Extract to…', start: folder, okText: 'Extract here' });
  if (dst === null) return;
  const stem = extensions.map(e => '.' + e).filter(e => baseName(view.path).toLowerCase().endsWith(e))
    .reduce((best, e) => e.length > best.length ? e : best, '');
  const newName = stem ? baseName(view.path).slice(0, -stem.length) : baseName(view.path) + ' (extracted)';
  const what = view.inner === '/' ? baseName(view.path) : `${view.inner.slice(1)} of ${baseName(view.path)}`;
  let answer = null;
  const ok = await openRecordForm({
    title: `Extract ${what}`,
    saveText: 'Extract',
    fields: [
      { name: 'new_dir', type: 'bool', label: `Into a new folder “${newName}”`, value: true,
        help: `Inside ${dst === '/' ? 'Home' : dst}. Without it the files land there directly.` },
      { name: 'overwrite', type: 'bool', label: 'Replace files that are already there', value: false,
        help: 'Off: a file of the same name that is already there is kept, and said in the task.' },
    ],
    save: async (v) => {
      answer = await api('/fs/archive/decompress', { src_dir: folder, dst_dir: dst, name: [baseName(view.path)],
        archive_pass: passwords.get(view.path) || '', inner_path: view.inner, put_into_new_dir: !!v.new_dir,
        overwrite: !!v.overwrite, password: passwordFor(folder) });
    },
  });
  if (!ok || !answer) return;
  await noticeWithLink('Extraction queued',
    'The archive is extracted in the background. Follow it, cancel or retry it on the Tasks page.',
    { path: '/@tasks', text: 'Open Tasks', testid: 'open-tasks' });
}
