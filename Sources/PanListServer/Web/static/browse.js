// The file browser: breadcrumbs, toolbar, listing (list or grid), selection and file operations.
// Big folders: the whole listing is fetched once, sorted/filtered in memory, and rendered PAGE rows at a
// time (more on scroll through an IntersectionObserver, or with the "Show more" button).
import { api } from './api.js';
import { $, h, clear, joinPath, parentPath, baseName, encodePath, signParam, formatSize, formatDate, extOf,
         showError, clearError, toast } from './util.js';
import { state, can, canShare, PERM, navigate, internalLink, absolutePath, getObject, readText,
         passwordFor, rememberPassword, forgetPassword, isPasswordError } from './state.js';
import { promptText, confirmDialog, pickFolder, chooseOption, noticeWithLink } from './dialogs.js';
import { openPreview, kindOf, downloadFile, copyLink, KIND_ICONS } from './preview.js';
import { renderMarkdown } from './markdown.js';
import { icon } from './icons.js';
import { initUploads } from './upload.js';
import { openRecordForm } from './forms.js';
import { openShareForm } from './shares.js';
import { isArchive, archivePage, loadArchiveExtensions } from './archive.js';

const PAGE = 200;
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

function stored(key, fallback) { try { return localStorage.getItem(key) || fallback; } catch { return fallback; } }
function store(key, value) { try { localStorage.setItem(key, value); } catch { /* private mode */ } }

const view = {
  active: false,        // the browse view is on screen
  loaded: false,        // the current folder's listing arrived
  path: '/',
  items: [],            // fs/list content
  byName: new Map(),
  shown: [],            // items filtered and sorted, in display order
  rendered: 0,          // how many of `shown` are in the DOM
  selected: new Set(),  // selected names
  write: false,
  error: '',            // why the current folder could not be listed ('' when it was)
  relists: 0,           // quiet re-lists while a storage in the folder is still loading
  seq: 0,               // guards against answers of an older request
  pendingPreview: null, // file to preview once its folder is listed (URL of a file)
  pendingReveal: null,  // entry to show (scrolled to, marked) once its folder is listed (a search result)
  mode: stored('panlist.view', 'list') === 'grid' ? 'grid' : 'list',
  sortKey: stored('panlist.sort', 'name'),
  sortDir: stored('panlist.sortdir', 'asc'),
  filter: '',
};
let observer = null;

export function initBrowse() {
  loadArchiveExtensions();
  $('#refresh').addEventListener('click', () => load(view.path, { refresh: view.write, quiet: true }));
  $('#new-folder').addEventListener('click', newFolder);
  $('#offline-download').addEventListener('click', offlineDownload);
  $('#view-toggle').addEventListener('click', () => {
    view.mode = view.mode === 'list' ? 'grid' : 'list';
    store('panlist.view', view.mode);
    applyView();
  });
  $('#sort').addEventListener('change', (e) => setSort(e.target.value, view.sortDir));
  $('#sort-dir').addEventListener('click', () => setSort(view.sortKey, view.sortDir === 'asc' ? 'desc' : 'asc'));
  let filterTimer = 0;
  $('#filter').addEventListener('input', (e) => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => { view.filter = e.target.value.trim().toLowerCase(); applyView(); }, 150);
  });
  $('#select-all').addEventListener('change', (e) => {
    view.selected = e.target.checked ? new Set(view.shown.map(i => i.name)) : new Set();
    for (const cb of $('#listing').querySelectorAll('input.select')) cb.checked = view.selected.has(cb.closest('.entry').dataset.name);
    updateBatch();
  });
  $('#batch-move').addEventListener('click', () => transfer('move', [...view.selected]));
  $('#batch-copy').addEventListener('click', () => transfer('copy', [...view.selected]));
  $('#batch-delete').addEventListener('click', () => remove([...view.selected]));
  $('#batch-share').addEventListener('click', () => share([...view.selected]));
  $('#batch-zip').addEventListener('click', () => downloadZip([...view.selected]));
  $('#zip-folder').addEventListener('click', () => downloadZip([]));
  $('#batch-clear').addEventListener('click', () => { view.selected.clear(); syncChecks(); });
  $('#show-more').addEventListener('click', renderMore);
  $('#listing').addEventListener('click', onListingClick);
  $('#listing').addEventListener('dblclick', (e) => {
    const row = e.target.closest('.entry');
    if (row && !e.target.closest('a, button, input, label')) open(view.byName.get(row.dataset.name));
  });
  $('#listing').addEventListener('change', (e) => {
    if (!e.target.matches('input.select')) return;
    const name = e.target.closest('.entry').dataset.name;
    if (e.target.checked) view.selected.add(name); else view.selected.delete(name);
    e.target.closest('.entry').classList.toggle('selected', e.target.checked);
    updateBatch();
  });
  if ('IntersectionObserver' in window) {
    observer = new IntersectionObserver((entries) => {
      if (entries.some(en => en.isIntersecting) && view.rendered < view.shown.length) renderMore();
    }, { rootMargin: '600px 0px' });
    observer.observe($('#more'));
  }
  initUploads({
    targetDir: () => (view.active && view.loaded && view.write ? view.path : null),
    done: (dirs) => { if (view.active && dirs.includes(view.path)) load(view.path, { quiet: true }); },
  });
}

/** Shows the browse view for `path` (called by the router). */
export function showBrowse(path) {
  view.active = true;
  if (path !== view.path) {
    view.selected.clear();
    view.filter = '';
    $('#filter').value = '';
  }
  return load(path);
}
export function hideBrowse() { view.active = false; }

/** Opens folder `dir` with its entry `name` scrolled into view and marked (a search result's "open its folder"). */
export function revealInFolder(dir, name) {
  view.pendingReveal = name;
  if (view.path === dir) { view.filter = ''; $('#filter').value = ''; }   // the filter must not hide it
  navigate(dir);
}

async function load(path, { refresh = false, quiet = false } = {}) {
  const mine = ++view.seq;
  const changed = path !== view.path || !view.loaded;
  view.path = path;
  renderBreadcrumbs(path);
  document.title = (path === '/' ? '' : baseName(path) + ' – ') + (state.settings.site_title || 'PanList');
  if (changed) {
    // Another folder: drop the old rows at once, so nothing stale can be clicked while loading.
    view.loaded = false;
    view.error = '';
    view.items = []; view.byName = new Map();
    $('#readme').hidden = true;
    $('#folder-header').hidden = true;
    applyView();
  }
  if (!quiet || changed) $('#status-line').textContent = 'Loading…';
  let data;
  try {
    data = await api('/fs/list', { path, password: passwordFor(path), refresh });
  } catch (e) {
    if (mine !== view.seq) return;
    if (isPasswordError(e)) {
      // A folder guarded by a password: ask for it, keep it for this tab, and list again.
      const tried = passwordFor(path);
      if (tried) forgetPassword(path);
      $('#status-line').textContent = '';
      const pw = await promptText('Password', {
        message: tried ? 'The password is incorrect. Try again.' : 'This folder is protected by a password.',
        okText: 'Open', secret: true });
      if (mine !== view.seq) return;
      if (pw !== null) { rememberPassword(path, pw); return load(path, { refresh }); }
      return showLoadError('This folder needs its password.');
    }
    if (e.code === 400 && /not a folder/i.test(e.message) && path !== '/') {
      // The URL names a file: show its folder and preview the file.
      view.pendingPreview = baseName(path);
      navigate(parentPath(path), { replace: true });
      return;
    }
    view.pendingReveal = null;
    return showLoadError(e.message);
  }
  if (mine !== view.seq) return;
  clearError();
  view.loaded = true;
  view.error = '';
  view.items = data.content || [];
  for (const it of view.items) it._time = Date.parse(it.modified) || 0;
  view.byName = new Map(view.items.map(i => [i.name, i]));
  view.write = !!data.write;
  view.readme = data.readme || '';
  view.header = data.header || '';
  for (const n of [...view.selected]) if (!view.byName.has(n)) view.selected.delete(n);
  applyView();
  loadReadme(mine);
  // A storage still starting: list again shortly (a few times), so its badge turns into its real state.
  view.relists = changed ? 0 : view.relists + 1;
  if (view.items.some(i => i.mount && i.mount.status === 'loading') && view.relists < 10) {
    setTimeout(() => { if (mine === view.seq && view.active) load(path, { quiet: true }); }, 1500);
  }
  if (view.pendingPreview) {
    const item = view.byName.get(view.pendingPreview);
    view.pendingPreview = null;
    if (item && !item.is_dir) openPreview(item, view.path, view.shown);
  }
  if (view.pendingReveal !== null) reveal(view.pendingReveal);
}

/** Scrolls entry `name` into view and marks it (rendering further pages up to it); a toast when it is not there. */
function reveal(name) {
  view.pendingReveal = null;
  const at = view.shown.findIndex(i => i.name === name);
  if (at < 0) { toast(`“${name}” is not in this folder any more`); return; }
  while (view.rendered <= at) renderMore();
  const row = [...$('#entries').children].find(r => r.dataset.name === name);
  if (!row) return;
  row.classList.add('revealed');
  row.dataset.revealed = 'true';
  row.scrollIntoView({ block: 'center' });
  const link = row.querySelector('a.name');
  if (link) link.focus({ preventScroll: true });
}

/** The folder could not be listed: an error state (with a way back) replaces the listing. */
function showLoadError(message) {
  view.items = []; view.byName = new Map(); view.write = false; view.loaded = true;
  view.error = message || 'The folder could not be listed.';
  view.selected.clear();
  $('#readme').hidden = true;
  $('#folder-header').hidden = true;
  applyView();
}

function renderBreadcrumbs(path) {
  const nav = clear($('#breadcrumbs'));
  const parts = path.split('/').filter(Boolean);
  const crumb = (label, target, last) => last
    ? h('span', { class: 'crumb current', 'aria-current': 'page', text: label })
    : internalLink(h('a', { class: 'crumb', href: encodePath(target), dataset: { path: target }, text: label }));
  nav.append(crumb('Home', '/', parts.length === 0));
  let acc = '';
  parts.forEach((p, k) => {
    acc += '/' + p;
    nav.append(h('span', { class: 'sep', 'aria-hidden': 'true', text: '/' }), crumb(p, acc, k === parts.length - 1));
  });
}

// ---------------------------------------------------------------------------------------------
// Rendering

function setSort(key, dir) {
  view.sortKey = ['name', 'size', 'modified'].includes(key) ? key : 'name';
  view.sortDir = dir === 'desc' ? 'desc' : 'asc';
  store('panlist.sort', view.sortKey);
  store('panlist.sortdir', view.sortDir);
  applyView();
}

function sortedItems() {
  const sign = view.sortDir === 'desc' ? -1 : 1;
  const key = view.sortKey;
  let items = view.items;
  if (view.filter) items = items.filter(i => i.name.toLowerCase().includes(view.filter));
  return items.slice().sort((a, b) => {
    if (a.is_dir !== b.is_dir) return a.is_dir ? -1 : 1;     // folders first, whatever the order
    let c = 0;
    if (key === 'size') c = (a.size || 0) - (b.size || 0);
    else if (key === 'modified') c = a._time - b._time;
    return sign * (c || collator.compare(a.name, b.name));
  });
}

/** Re-sorts, re-filters and re-renders the listing from the first page. */
function applyView() {
  $('#sort').value = view.sortKey;
  $('#sort-dir').replaceChildren(icon(view.sortDir === 'asc' ? 'up' : 'down'));
  $('#sort-dir').title = view.sortDir === 'asc' ? 'Ascending' : 'Descending';
  $('#view-toggle').replaceChildren(icon(view.mode === 'list' ? 'grid' : 'list'));
  $('#view-toggle').setAttribute('aria-pressed', String(view.mode === 'grid'));
  $('#new-folder').hidden = !view.write || !can(PERM.write);
  $('#upload-label').hidden = !view.write || !can(PERM.write);
  $('#offline-download').hidden = !view.write || !can(PERM.offline);
  $('#zip-folder').hidden = !!view.error || !view.items.length;

  view.shown = sortedItems();
  view.rendered = 0;
  const box = clear($('#listing'));
  box.className = view.mode + (view.error ? ' failed' : '');
  $('#browse-view').classList.toggle('failed', !!view.error);   // no filter or sorting for an error
  // Every row has the same action column (as wide as a file's buttons), so the columns line up.
  box.style.setProperty('--actions', String(2 + [PERM.rename, PERM.move, PERM.copy, PERM.remove].filter(can).length + (canShare() ? 1 : 0)));
  if (view.error) {
    const up = view.path === '/' ? null : parentPath(view.path);
    box.append(h('div', { class: 'load-error', role: 'alert', dataset: { testid: 'load-error' } },
      h('h2', { text: 'This folder could not be opened' }),
      h('p', { text: view.error }),
      h('div', { class: 'form-buttons' },
        up === null ? null : internalLink(h('a', { class: 'button primary', href: encodePath(up), dataset: { path: up, testid: 'go-parent' },
          text: 'Go to ' + (up === '/' ? 'Home' : baseName(up)) })),
        h('button', { type: 'button', text: 'Try again', onclick: () => load(view.path) }))));
    $('#more').hidden = true;
    $('#status-line').textContent = '';
    updateBatch();
    return;
  }
  if (view.mode === 'list' && view.shown.length) {
    const col = (key, label) => h('button', {
      type: 'button', class: 'col-' + key + (view.sortKey === key ? ' sorted' : ''), dataset: { sort: key },
      text: label + (view.sortKey === key ? (view.sortDir === 'asc' ? ' ↑' : ' ↓') : ''),
    });
    box.append(h('div', { class: 'list-head', role: 'presentation' },
      h('span', { class: 'pick' }), h('span'), col('name', 'Name'), col('size', 'Size'), col('modified', 'Modified'), h('span', { class: 'actions' })));
  }
  box.append(h('div', { id: 'entries', class: 'entries' }));
  if (view.loaded && !view.shown.length) {
    box.append(h('p', { class: 'empty muted', text: view.filter ? 'Nothing matches the filter.' : 'This folder is empty.' }));
  }
  renderMore();
  updateBatch();
}

function renderMore() {
  const end = Math.min(view.rendered + PAGE, view.shown.length);
  const frag = document.createDocumentFragment();
  for (let i = view.rendered; i < end; i++) frag.append(makeEntry(view.shown[i]));
  $('#entries').append(frag);
  view.rendered = end;
  const left = view.shown.length - end;
  $('#more').hidden = left <= 0;
  $('#show-more').textContent = `Show more (${left} more)`;
  const folders = view.items.filter(i => i.is_dir).length;
  $('#status-line').textContent = view.loaded
    ? `${folders} folder${folders === 1 ? '' : 's'}, ${view.items.length - folders} file${view.items.length - folders === 1 ? '' : 's'}` +
      (view.shown.length !== view.items.length ? ` · ${view.shown.length} shown` : '')
    : $('#status-line').textContent;
  // The observer reports changes only: re-observe so that a still-visible sentinel loads the next page.
  if (observer && left > 0) { observer.unobserve($('#more')); observer.observe($('#more')); }
}

const ICONS = KIND_ICONS;

function actionButton(action, label, name) {
  return h('button', { type: 'button', class: 'icon-btn', dataset: { testid: action, action },
    title: label, 'aria-label': `${label} ${name}` }, icon(action === 'copy-link' ? 'link' : action));
}

function makeEntry(item) {
  const isDir = !!item.is_dir;
  const path = joinPath(view.path, item.name);
  const kind = kindOf(item);
  const sel = view.selected.has(item.name);
  const mount = isDir ? mountState(item.mount) : null;
  const row = h('div', { class: 'entry' + (sel ? ' selected' : ''), dataset: { testid: 'entry', name: item.name, type: isDir ? 'folder' : 'file', kind } });
  if (mount) row.dataset.mount = mount.state;
  const check = h('label', { class: 'pick' },
    h('input', { type: 'checkbox', class: 'select', checked: sel, dataset: { testid: 'select' }, 'aria-label': 'Select ' + item.name }));
  const name = h('a', { class: 'name', href: encodePath(path), title: mount && mount.title ? `${item.name}: ${mount.title}` : item.name,
    dataset: { testid: 'entry-name', action: 'open' }, text: item.name });

  let kindIcon;
  const thumb = thumbUrl(item, path, kind);
  if (view.mode === 'grid' && thumb) {
    kindIcon = h('span', { class: 'thumb', dataset: { action: 'open' } },
      h('img', { src: thumb, alt: '', loading: 'lazy', decoding: 'async', referrerpolicy: 'no-referrer' }));
  } else if (mount && mount.state !== 'virtual') {
    kindIcon = h('span', { class: `icon k-storage state-${mount.state}`, dataset: { action: 'open' }, title: mount.title || false, 'aria-hidden': 'true' }, icon('storage'));
  } else {
    kindIcon = h('span', { class: 'icon k-' + kind, dataset: { action: 'open' }, 'aria-hidden': 'true' }, icon(ICONS[kind] || 'file'));
  }

  let size;
  if (mount && mount.label) {
    size = h('span', { class: 'size' }, h('span', { class: 'mount-status state-' + mount.state, title: mount.title || false,
      dataset: { testid: 'mount-status' }, text: mount.label }));
  } else if (isDir && item.mount_details) size = space(item.mount_details);
  else size = h('span', { class: 'size', text: isDir ? '' : formatSize(item.size) });
  const date = h('span', { class: 'date', text: formatDate(item.modified) });

  const actions = h('span', { class: 'actions' });
  if (!isDir) {
    actions.append(
      h('a', { class: 'icon-btn', href: fallbackLink(item, path), download: item.name, rel: 'noopener',
        dataset: { testid: 'download', action: 'download' }, title: 'Download', 'aria-label': 'Download ' + item.name }, icon('download')),
      actionButton('copy-link', 'Copy link', item.name));
  } else {
    actions.append(actionButton('zip', 'Download as ZIP', item.name));
  }
  // A storage's mount point, and a folder that exists only because a storage is mounted below it, stay
  // where they are: the server refuses to rename, move or delete them (Manage → Storages changes them).
  if (can(PERM.rename) && !mount) actions.append(actionButton('rename', 'Rename', item.name));
  if (can(PERM.move) && !mount) actions.append(actionButton('move', 'Move', item.name));
  if (can(PERM.copy)) actions.append(actionButton('copy', 'Copy', item.name));
  if (can(PERM.remove) && !mount) actions.append(actionButton('delete', 'Delete', item.name));
  if (canShare()) actions.append(actionButton('share', 'Share', item.name));

  if (view.mode === 'grid') row.append(check, kindIcon, name, h('span', { class: 'meta' }, size), actions);
  else row.append(check, kindIcon, name, size, date, actions);
  return row;
}

/**
 * How a folder's `mount` (fs/list) is shown: null for an ordinary folder; else `state` (ok, loading, off,
 * bad or virtual), a short `label` for the size column (none when it works) and a `title` (the error, for admins).
 */
function mountState(m) {
  if (!m) return null;
  if (m.virtual) return { state: 'virtual', label: '', title: 'Holds mounted storages' };
  const driver = m.driver ? m.driver + ' storage' : 'Storage';
  switch (m.status) {
    case 'work': return { state: 'ok', label: '', title: driver };
    case 'loading': return { state: 'loading', label: 'Loading…', title: `${driver}: still starting` };
    case 'disabled': return { state: 'off', label: 'Disabled', title: `${driver}: disabled in Manage → Storages` };
    case 'unavailable': return { state: 'bad', label: 'Unavailable', title: `${driver}: not working at the moment` };
    default: return m.working ? { state: 'ok', label: '', title: driver }
      : { state: 'bad', label: 'Not working', title: `${driver} not working: ${m.status || 'unknown error'}` };
  }
}

/** Entries of the selection that stay where they are (mount points and the folders above them). */
const fixedSelected = () => [...view.selected].filter(n => { const i = view.byName.get(n); return i && i.is_dir && i.mount; });

/** A storage's space: "1.2 GiB free of 5 TiB" with a small bar. */
function space(d) {
  const total = d.total_space || 0, used = d.used_space || Math.max(0, total - (d.free_space || 0));
  const title = [d.driver_name, `${formatSize(used)} used`, total ? `${formatSize(d.free_space || 0)} free of ${formatSize(total)}` : ''];
  const wrap = h('span', { class: 'size space', title: title.filter(Boolean).join(' · ') },
    total ? h('span', {}, `${formatSize(d.free_space || 0)} free`, h('span', { class: 'of', text: ` of ${formatSize(total)}` })) : null);
  if (total) {
    const fill = h('span', { class: 'fill' });
    fill.style.width = Math.min(100, Math.round((used / total) * 100)) + '%';
    wrap.append(h('span', { class: 'bar' }, fill));
  }
  return wrap;
}

/** The /d link of a file from its listing data (used before raw_url is fetched, e.g. when JS clicks are skipped). */
function fallbackLink(item, path) {
  return '/d' + encodePath(absolutePath(path)) + (item.sign ? '?sign=' + signParam(item.sign) : '');
}

/** A grid thumbnail: the storage's thumb, or the image itself (lazy-loaded) when it is signed and not huge. */
function thumbUrl(item, path, kind) {
  if (item.thumb && /^(https?:\/\/|\/)/.test(item.thumb)) return item.thumb;
  if (kind === 'image' && item.sign && item.size < 20 * 1024 * 1024 && extOf(item.name) !== 'svg') return fallbackLink(item, path);
  return '';
}

function syncChecks() {
  for (const cb of $('#listing').querySelectorAll('input.select')) {
    const row = cb.closest('.entry');
    cb.checked = view.selected.has(row.dataset.name);
    row.classList.toggle('selected', cb.checked);
  }
  updateBatch();
}

function updateBatch() {
  const n = view.selected.size;
  $('#batch-bar').hidden = !view.items.length || !!view.error;
  $('#batch-count').textContent = n ? `${n} selected` : '';
  for (const id of ['#batch-move', '#batch-copy', '#batch-delete', '#batch-share', '#batch-zip', '#batch-clear']) $(id).hidden = n === 0;
  $('#batch-share').hidden ||= !canShare();
  $('#batch-move').hidden ||= !can(PERM.move);
  $('#batch-copy').hidden ||= !can(PERM.copy);
  $('#batch-delete').hidden ||= !can(PERM.remove);
  // A selection holding a mount point cannot be moved or deleted: say so instead of offering it.
  const fixed = fixedSelected();
  const why = !fixed.length ? '' : `Move and delete are off: “${fixed[0]}”` +
    (fixed.length > 1 ? ` and ${fixed.length - 1} more are storages` : ' is a storage') + ', not an ordinary folder.';
  for (const id of ['#batch-move', '#batch-delete']) { $(id).disabled = !!why; $(id).title = why; }
  $('#batch-note').textContent = why;
  $('#batch-note').hidden = !why;
  const all = $('#select-all');
  all.checked = n > 0 && n >= view.shown.length;
  all.indeterminate = n > 0 && n < view.shown.length;
}

// ---------------------------------------------------------------------------------------------
// Actions

function onListingClick(e) {
  const sortBtn = e.target.closest('[data-sort]');
  if (sortBtn) {
    const key = sortBtn.dataset.sort;
    setSort(key, view.sortKey === key && view.sortDir === 'asc' ? 'desc' : 'asc');
    return;
  }
  const target = e.target.closest('[data-action]');
  const row = e.target.closest('.entry');
  if (!target || !row) return;
  const item = view.byName.get(row.dataset.name);
  if (!item) return;
  const path = joinPath(view.path, item.name);
  switch (target.dataset.action) {
    case 'open':
      if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;   // new tab etc.
      e.preventDefault();
      open(item);
      break;
    case 'download':
      e.preventDefault();
      downloadFile(path, item.name).catch(err => showError(err.message));
      break;
    case 'copy-link': copyLink(path).catch(err => showError(err.message)); break;
    case 'rename': rename(item); break;
    case 'move': transfer('move', [item.name]); break;
    case 'copy': transfer('copy', [item.name]); break;
    case 'delete': remove([item.name]); break;
    case 'share': share([item.name]); break;
    case 'zip': downloadZip([item.name]); break;
  }
}

function open(item) {
  if (!item) return;
  if (item.is_dir) navigate(joinPath(view.path, item.name));
  else if (isArchive(item)) navigate(archivePage(joinPath(view.path, item.name)));
  else openPreview(item, view.path, view.shown);
}

/** Runs a write operation, reports its error, and re-lists the folder. */
async function run(work, success) {
  let error = null;
  try { await work(); } catch (e) { error = e; }
  await load(view.path, { quiet: true });   // a successful listing clears the error box, so report after it
  if (error) showError(error.message);
  else if (success) toast(success);
}

async function newFolder() {
  const name = await promptText('New folder', { message: 'Name of the new folder', okText: 'Create' });
  if (!name) return;
  await run(() => api('/fs/mkdir', { path: joinPath(view.path, name), password: passwordFor(view.path) }), 'Folder created');
}

const POLICIES = [
  ['delete_on_upload_succeed', 'Delete the downloaded file once it is in place'],
  ['delete_on_upload_failed', 'Delete it only when moving it into place failed'],
  ['delete_never', 'Keep it in the server\'s temp folder too'],
  ['delete_always', 'Always delete it'],
  ['upload_download_stream', 'Stream straight into the folder (SimpleHttp only)'],
];
const TOOL_HELP = {
  SimpleHttp: 'PanList fetches http(s) links itself (redirects, resume, size limit).',
  aria2: 'The aria2 set up by the admin: http(s), ftp, magnet and torrent links.',
  '123 Open': '123 Cloud Drive fetches the link itself; the bytes never pass through PanList.',
};

/** The offline download dialog: links (one a line), a tool among those usable here, and what happens to the
 * downloaded file; each link becomes an offline_download task. */
async function offlineDownload() {
  const dir = view.path;
  let tools;
  try { tools = await api('/public/offline_download_tools', null, { method: 'GET', query: { path: dir } }); } catch (e) {
    showError(e.message);
    return;
  }
  if (!Array.isArray(tools) || !tools.length) { showError('No offline download tool is available'); return; }
  const preferred = tools.includes('123 Open') ? '123 Open' : tools[0];
  let queued = 0;
  const ok = await openRecordForm({
    title: 'Offline download',
    saveText: 'Download',
    fields: [
      { name: 'urls', label: 'Links', type: 'text', rows: 4, required: true,
        placeholder: 'https://example.com/file.iso', help: `One link a line. The files land in ${dir}.` },
      { name: 'tool', label: 'Tool', type: 'select', value: preferred, options: tools.map(t => [t, t]),
        help: tools.map(t => TOOL_HELP[t] ? `${t}: ${TOOL_HELP[t]}` : '').filter(Boolean).join(' ') },
      { name: 'delete_policy', label: 'Afterwards', key: 'delete_policy', type: 'select', value: 'delete_on_upload_succeed',
        options: POLICIES, help: 'What happens to the downloaded file in the server\'s temp folder.' },
    ],
    save: async (v) => {
      const urls = v.urls.split(/\r?\n/).map(u => u.trim()).filter(Boolean);
      if (!urls.length) throw new Error('Links: give at least one link');
      try {
        const r = await api('/fs/add_offline_download', { urls, path: dir, tool: v.tool, delete_policy: v.delete_policy,
                                                          password: passwordFor(dir) });
        queued = (r && r.tasks ? r.tasks.length : urls.length);
      } catch (e) {
        // The server's refusals name what they are about: put them next to that field.
        const m = e.message || '';
        if (/^delete_policy|stream works/i.test(m)) throw new Error('Afterwards: ' + m);
        if (/^tool |aria2|123 Open tool/i.test(m)) throw new Error('Tool: ' + m);
        if (/URL|link|scheme|internal|address|host/i.test(m)) throw new Error('Links: ' + m);
        throw e;
      }
    },
  });
  if (!ok) return;
  const tasks = queued === 1 ? '1 download' : `${queued} downloads`;
  await noticeWithLink('Offline download queued',
    `Queued ${tasks} into ${dir}. Follow them, cancel or retry them on the Tasks page; the files appear here when done.`,
    { path: '/@tasks', text: 'Open Tasks', testid: 'open-tasks' });
}

async function rename(item) {
  const name = await promptText('Rename', { value: item.name, okText: 'Rename', selectStem: !item.is_dir });
  if (!name || name === item.name) return;
  const itemPath = joinPath(view.path, item.name);
  await run(() => api('/fs/rename', { path: itemPath, name, password: passwordFor(itemPath) }), 'Renamed');
}

/** Passwords typed for entries guarded by their own rule (sent by name with batch changes). */
function entryPasswords(dir, names) {
  const own = passwordFor(dir), map = {};
  for (const n of names) { const p = passwordFor(joinPath(dir, n)); if (p && p !== own) map[n] = p; }
  return map;
}

async function transfer(op, names) {
  if (!names.length) return;
  const what = names.length === 1 ? `“${names[0]}”` : `${names.length} items`;
  const dst = await pickFolder({ title: `${op === 'move' ? 'Move' : 'Copy'} ${what} to…`, start: view.path,
    okText: op === 'move' ? 'Move here' : 'Copy here' });
  if (dst === null) return;
  if (op === 'move' && dst === view.path) { toast('Already in this folder'); return; }
  const srcDir = view.path;
  const body = { src_dir: srcDir, dst_dir: dst, names, password: passwordFor(srcDir), dst_password: passwordFor(dst),
                 passwords: entryPasswords(srcDir, names) };
  let answer = null, error = null;
  try { answer = await sendTransfer(op, body, what); } catch (e) { error = e; }
  if (answer) view.selected.clear();
  await load(view.path, { quiet: true });   // a successful listing clears the error box, so report after it
  if (error) { showError(error.message); return; }
  if (!answer) return;                      // the choice was cancelled
  const queued = Array.isArray(answer.tasks) ? answer.tasks.length : 0;
  if (!queued) { toast(op === 'move' ? 'Moved' : 'Copied'); return; }
  // Between two storages the work goes on in the background, as tasks.
  const tasks = queued === 1 ? '1 task' : `${queued} tasks`;
  await noticeWithLink(`${op === 'move' ? 'Move' : 'Copy'} queued`,
    `Queued ${tasks}: ${op === 'move' ? 'moving' : 'copying'} between two storages goes on in the background. Follow it, cancel or retry it on the Tasks page.`,
    { path: '/@tasks', text: 'Open Tasks', testid: 'open-tasks' });
}

/** What the server says when a name exists at the destination of a copy or move between storages. */
const isConflict = (e) => !!e && e.code === 403 && /already exists; choose/i.test(e.message || '');

const CONFLICT_CHOICES = [
  { value: 'skip', label: 'Skip existing files', help: 'Files already there are kept; the others are added. Folders are merged.' },
  { value: 'merge', label: 'Merge', help: 'Folders are merged; a file already there is kept when it has the same size, else replaced.' },
  { value: 'overwrite', label: 'Overwrite', help: 'Files already there are replaced. Folders are merged.' },
];

/**
 * Sends a copy or move; when a name exists at the destination, asks what to do and sends it again with that
 * choice. Resolves to the answer ({tasks}), or null when the choice was cancelled.
 */
async function sendTransfer(op, body, what) {
  try {
    return (await api('/fs/' + op, body)) || {};
  } catch (e) {
    if (!isConflict(e)) throw e;
    // "/x/y already exists; choose to …": the first part, and the question the choices answer.
    const taken = String(e.message).split(';')[0].trim();
    const choice = await chooseOption(`${op === 'move' ? 'Move' : 'Copy'} ${what}: the name is taken`,
      `${taken}. What should happen to what is already there?`, CONFLICT_CHOICES,
      { value: 'skip', okText: op === 'move' ? 'Move' : 'Copy' });
    if (!choice) return null;
    return (await api('/fs/' + op, { ...body, conflict: choice })) || {};
  }
}

async function remove(names) {
  if (!names.length) return;
  const what = names.length === 1 ? `“${names[0]}”` : `${names.length} items`;
  if (!await confirmDialog('Delete', `Delete ${what}? Folders are deleted with everything in them.`, { okText: 'Delete', danger: true })) return;
  const dir = view.path;
  await run(async () => {
    await api('/fs/remove', { dir, names, password: passwordFor(dir), passwords: entryPasswords(dir, names) });
    view.selected.clear();
  }, 'Deleted');
}

/** Makes a share link of entries of this folder (the share form, then its link). */
/**
 * Downloads folders and files as one ZIP (`names`: items of this folder; none: the whole folder). The server
 * checks the request and answers with a signed link; the browser fetches it as an ordinary download, which
 * the server writes while it reads the files (no waiting for a file to be built).
 */
async function downloadZip(names) {
  let r;
  try {
    r = await api('/fs/zip', { dir: view.path, names, password: passwordFor(view.path) });
  } catch (err) { showError(err.message); return; }
  const a = h('a', { href: r.url, download: r.name, hidden: true, dataset: { testid: 'zip-link' } });
  document.body.append(a);
  a.click();
  setTimeout(() => a.remove(), 60_000);
  toast(`Downloading ${r.name}`);
}

async function share(names) {
  if (!names.length) return;
  const files = names.map(n => joinPath(view.path, n));
  // A folder password typed for where they are (or for a guarded entry itself) goes along.
  const folderPassword = files.map(passwordFor).find(Boolean) || '';
  if (await openShareForm({ files, folderPassword })) { view.selected.clear(); syncChecks(); }
}

/** Renders README.md (any case) of the folder under the listing. */
/** Shows a folder rule's readme or header: Markdown, or a link when the rule gives a URL. */
async function showRuleText(box, text, mine) {
  clear(box);
  box.hidden = !text;
  if (!text) return;
  if (/^https?:\/\/\S+$/i.test(text.trim())) {
    box.append(h('p', {}, h('a', { href: text.trim(), target: '_blank', rel: 'noopener noreferrer', text: text.trim() })));
    return;
  }
  if (/^\/\S+$/.test(text.trim())) {
    // A path on this server: fetch it (same origin only, as the CSP allows).
    try {
      const res = await fetch(text.trim(), { credentials: 'same-origin' });
      const body = res.ok ? (await res.text()).slice(0, 512 * 1024) : '';
      if (mine === view.seq) clear(box).append(renderMarkdown(body));
    } catch { if (mine === view.seq) box.hidden = true; }
    return;
  }
  box.append(renderMarkdown(text));
}

async function loadReadme(mine) {
  const box = $('#readme');
  showRuleText($('#folder-header'), view.header, mine);
  if (view.readme) { await showRuleText(box, view.readme, mine); return; }
  const item = view.items.find(i => !i.is_dir && i.name.toLowerCase() === 'readme.md');
  if (!item) { box.hidden = true; clear(box); return; }
  try {
    const path = joinPath(view.path, item.name);
    const obj = await getObject(path);
    const { text } = await readText(obj, path, 512 * 1024);
    if (mine !== view.seq) return;
    clear(box).append(renderMarkdown(text));
    box.hidden = false;
  } catch {
    if (mine === view.seq) { box.hidden = true; clear(box); }
  }
}
