// Search: the box in the header and the results page at /@search?q=…&in=…&scope=…&page=… (the URL holds
// the whole query, so reload, back and forward work). The server looks names up in its index
// (POST /api/fs/search, docs/API.md); the words must all occur in a name. The search runs under the folder
// being browsed ("in"); results come PER_PAGE a page. A row opens its folder: a folder's name opens the folder
// itself, a file's name (and every row's folder line) opens the folder holding it, with the entry shown there.
// When the server's search is off (the public setting search_index is "none") the box is hidden; a results
// page reached anyway shows the server's message.
import { api } from './api.js';
import { state, isAdmin, navigate, passwordFor } from './state.js';
import { $, h, clear, normPath, joinPath, baseName, encodePath, formatSize, formatDate } from './util.js';
import { kindOf, KIND_ICONS } from './preview.js';
import { revealInFolder } from './browse.js';
import { icon } from './icons.js';

const PER_PAGE = 50;
// The scope words in the URL, and the numbers the API takes (0 all, 1 folders, 2 files).
const SCOPES = { all: 0, folders: 1, files: 2 };
const ICONS = KIND_ICONS;
const plural = (n, one, many = one + 's') => `${n.toLocaleString()} ${n === 1 ? one : many}`;
const folderWords = (p) => (p === '/' ? 'Home' : baseName(p));

const view = {
  active: false,       // the results page is on screen
  seq: 0,              // guards against answers of an older search
  folder: '/',         // where the box searches: the folder browsed, or the folder of the results shown
  query: null,         // { q, parent, scope, page } of the results page
};

/** Whether the server may search (the box is hidden when the public settings say search_index = none). */
export const searchAvailable = () => String(state.settings.search_index ?? '').trim().toLowerCase() !== 'none';

/** The results page's address for a query. */
export function searchUrl({ q, parent = '/', scope = 'all', page = 1 }) {
  const p = new URLSearchParams({ q });
  if (parent !== '/') p.set('in', parent);
  if (scope !== 'all') p.set('scope', scope);
  if (page > 1) p.set('page', String(page));
  return '/@search?' + p.toString();
}

/** The query of the results page, from the address. */
function readQuery() {
  const p = new URLSearchParams(location.search);
  const scope = Object.hasOwn(SCOPES, p.get('scope') || '') ? p.get('scope') : 'all';
  const page = Math.max(1, Math.min(1e6, parseInt(p.get('page') || '1', 10) || 1));
  return { q: (p.get('q') || '').trim(), parent: normPath(p.get('in') || '/'), scope, page };
}

export function initSearch() {
  $('#search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const q = $('#search-input').value.trim();
    if (!q) { $('#search-input').focus(); return; }
    // A new query starts on page 1, in the same folder and (on the results page) with the same scope.
    const scope = view.active && view.query ? view.query.scope : 'all';
    $('#search-input').blur();            // on phones: the keyboard goes, the results show
    navigate(searchUrl({ q, parent: view.folder, scope }));
  });
  for (const b of $('#search-scope').querySelectorAll('button')) {
    b.addEventListener('click', () => {
      const q = view.query;
      if (!q || b.dataset.scope === q.scope) return;
      navigate(searchUrl({ ...q, scope: b.dataset.scope, page: 1 }));
    });
  }
  $('#search-prev').addEventListener('click', () => goPage(-1));
  $('#search-next').addEventListener('click', () => goPage(1));
  $('#search-back').addEventListener('click', (e) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(view.query ? view.query.parent : '/');
  });
  // "/" puts the cursor in the box, as on most sites with a search box (not while typing elsewhere).
  document.addEventListener('keydown', (e) => {
    if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
    if (e.target.closest && e.target.closest('input, textarea, select, [contenteditable], dialog[open]')) return;
    if ($('#search-form').hidden || document.querySelector('dialog[open]')) return;
    e.preventDefault();
    $('#search-input').focus();
    $('#search-input').select();
  });
}

/** Shows or hides the box (the header calls it on every render); `folder` is where it searches. */
export function updateSearchBox(shown, folder = null) {
  $('#search-form').hidden = !shown || !searchAvailable();
  if (folder !== null) view.folder = normPath(folder);
  $('#search-input').placeholder = view.folder === '/' ? 'Search' : `Search in ${baseName(view.folder)}`;
  $('#search-input').setAttribute('aria-label', view.folder === '/' ? 'Search names' : `Search names in ${view.folder}`);
  if (!view.active) $('#search-input').value = '';
}

export function hideSearch() { view.active = false; }

function goPage(delta) {
  const q = view.query;
  if (!q) return;
  navigate(searchUrl({ ...q, page: Math.max(1, q.page + delta) }));
}

/** Renders the results page for the address (called by the router). */
export async function showSearch() {
  const query = readQuery();
  const mine = ++view.seq;
  view.active = true;
  view.query = query;
  view.folder = query.parent;
  updateSearchBox(true);
  $('#search-input').value = query.q;
  const site = state.settings.site_title || 'PanList';
  document.title = (query.q ? `Search: ${query.q} – ` : 'Search – ') + site;
  $('#search-title').textContent = query.q ? `Results for “${query.q}”` : 'Search';
  const back = $('#search-back');
  back.href = encodePath(query.parent);
  back.title = `Back to ${folderWords(query.parent)}`;
  back.setAttribute('aria-label', back.title);
  back.querySelector('.label').textContent = back.title;
  renderWhere(query);
  for (const b of $('#search-scope').querySelectorAll('button')) b.setAttribute('aria-pressed', String(b.dataset.scope === query.scope));
  clear($('#search-notes')).hidden = true;
  $('#search-pager').hidden = true;
  const box = $('#search-results');
  box.className = '';
  $('#search-view').classList.remove('failed');
  if (!query.q) {
    $('#search-status').textContent = '';
    clear(box, emptyState('Search by name', 'Type part of a name in the box above: every word must occur in the name.', []));
    $('#search-input').focus();
    return;
  }
  $('#search-status').textContent = 'Searching…';
  box.setAttribute('aria-busy', 'true');
  // The rows of an earlier page stay until the answer (no flicker when paging), but cannot be clicked.
  box.classList.add('busy');
  let data;
  try {
    data = await api('/fs/search', { parent: query.parent, keywords: query.q, scope: SCOPES[query.scope],
                                     page: query.page, per_page: PER_PAGE, password: passwordFor(query.parent) });
  } catch (e) {
    if (mine !== view.seq || !view.active) return;
    box.removeAttribute('aria-busy');
    showFailure(query, e.message);
    return;
  }
  if (mine !== view.seq || !view.active) return;
  box.removeAttribute('aria-busy');
  renderResults(query, data || {});
}

/** "in Home", or "in /docs · Search everywhere". */
function renderWhere(query) {
  const where = clear($('#search-where'));
  where.append(query.parent === '/' ? 'In every folder' : `In ${query.parent}`);
  if (query.parent !== '/') {
    where.append(' · ', h('a', { href: searchUrl({ ...query, parent: '/', page: 1 }), dataset: { testid: 'search-everywhere' },
      text: 'Search everywhere', onclick: (e) => follow(e, () => navigate(searchUrl({ ...query, parent: '/', page: 1 }))) }));
  }
}

/** A plain left click runs `go` in the page; a click for a new tab (or window) keeps the link's own way. */
function follow(e, go) {
  if (e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || e.button !== 0) return;
  e.preventDefault();
  go();
}

function renderResults(query, data) {
  const items = Array.isArray(data.content) ? data.content : [];
  const total = Math.max(Number(data.total) || 0, items.length);
  // Beyond the page shown, matches are counted to the next thousand only: "1,000+ results", "Page 1 of 20+".
  const more = data.total_exact === false;
  const pages = Math.max(1, Math.ceil(total / PER_PAGE));
  const plus = more ? '+' : '';
  const counted = more ? `${total.toLocaleString()}+ results` : plural(total, 'result');
  const notes = (Array.isArray(data.notes) ? data.notes : []).map(n => String(n || '').trim()).filter(Boolean);
  const notesBox = clear($('#search-notes'), notes.map(n => h('li', { dataset: { testid: 'search-note' }, text: n })));
  notesBox.hidden = !notes.length;
  const box = clear($('#search-results'));
  box.className = 'list';
  if (!items.length) {
    $('#search-status').textContent = total ? counted : '';
    if (total) {
      // A page past the last one (the results changed meanwhile, or an edited address).
      box.append(emptyState('No results on this page', more ? `There are more than ${total.toLocaleString()} results.` : `There ${total === 1 ? 'is 1 result' : `are ${total.toLocaleString()} results`}, on ${plural(pages, 'page')}.`,
        [h('button', { type: 'button', class: 'primary', text: 'Go to the first page', onclick: () => navigate(searchUrl({ ...query, page: 1 })) })]));
    } else {
      const kinds = { all: 'name', folders: 'folder name', files: 'file name' }[query.scope];
      const actions = [];
      if (query.scope !== 'all') actions.push(h('button', { type: 'button', dataset: { testid: 'search-all-kinds' }, text: 'Show folders and files',
        onclick: () => navigate(searchUrl({ ...query, scope: 'all', page: 1 })) }));
      if (query.parent !== '/') actions.push(h('button', { type: 'button', dataset: { testid: 'search-everywhere-empty' }, text: 'Search everywhere',
        onclick: () => navigate(searchUrl({ ...query, parent: '/', page: 1 })) }));
      const several = query.q.split(/\s+/).length > 1;
      box.append(emptyState(`No results for “${query.q}”`,
        `No ${kinds} ${query.parent === '/' ? '' : `in ${query.parent} `}contains ${several ? 'all of these words' : 'it'}.` +
        (several ? ' Try fewer words.' : ' Try a shorter part of the name.'), actions));
    }
    $('#search-pager').hidden = true;
    return;
  }
  const words = query.q.split(/\s+/).filter(Boolean);
  box.append(h('div', { class: 'result-head', role: 'presentation' },
    h('span'), h('span', { text: 'Name' }), h('span', { class: 'size', text: 'Size' }), h('span', { class: 'date', text: 'Modified' })));
  box.append(h('div', { class: 'entries', dataset: { testid: 'search-rows' } }, items.map(it => resultRow(it, words))));
  const from = (query.page - 1) * PER_PAGE + 1, to = from + items.length - 1;
  $('#search-status').textContent = counted + (pages > 1 || more ? ` · ${from.toLocaleString()}–${to.toLocaleString()} shown` : '');
  $('#search-pager').hidden = pages <= 1 && query.page === 1 && !more;
  $('#search-page').textContent = `Page ${query.page.toLocaleString()} of ${pages.toLocaleString()}${plus}`;
  $('#search-prev').disabled = query.page <= 1;
  $('#search-next').disabled = query.page >= pages && !more;
}

function emptyState(title, text, actions) {
  return h('div', { class: 'search-empty', dataset: { testid: 'search-empty' } },
    h('h2', { text: title }),
    h('p', { class: 'muted', text }),
    actions.length ? h('div', { class: 'form-buttons' }, actions) : null);
}

/** The search could not run (search is off, a folder password, the server away): the message, and ways on. */
function showFailure(query, message) {
  const off = /^search is off\b/i.test(message || '');
  // The server's message, without repeating the heading ("search is off: an administrator can…").
  let text = String(message || '').trim() || 'The server gave no reason.';
  if (off) {
    const rest = text.replace(/^search is off\s*[:.,;-]?\s*/i, '');
    if (rest) text = rest[0].toUpperCase() + rest.slice(1);
  }
  $('#search-status').textContent = '';
  $('#search-view').classList.add('failed');           // no scope to choose for an error
  const box = clear($('#search-results'));
  box.className = off ? 'failed off' : 'failed';        // search off is a state, not an error: no red
  box.append(h('div', { class: 'load-error', role: 'alert', dataset: { testid: 'search-error' } },
    h('h2', { text: off ? 'Search is off' : 'The search failed' }),
    h('p', { text }),
    h('div', { class: 'form-buttons' },
      off && isAdmin() ? h('a', { class: 'button primary', href: '/@manage/settings', dataset: { testid: 'search-settings' }, text: 'Open Settings',
        onclick: (e) => follow(e, () => navigate('/@manage/settings')) }) : null,
      off ? null : h('button', { type: 'button', text: 'Try again', onclick: () => showSearch() }),
      h('a', { class: 'button', href: encodePath(query.parent), text: `Back to ${folderWords(query.parent)}`,
        onclick: (e) => follow(e, () => navigate(query.parent)) }))));
}

/** A name with the searched words marked (case-insensitively); left plain when that cannot be done exactly. */
function marked(name, words) {
  const lower = name.toLowerCase();
  if (lower.length !== name.length) return [name];
  const hit = new Array(name.length).fill(false);
  for (const w of words) {
    const lw = w.toLowerCase();
    for (let i = lower.indexOf(lw); lw && i >= 0; i = lower.indexOf(lw, i + lw.length)) hit.fill(true, i, i + lw.length);
  }
  const parts = [];
  for (let i = 0; i < name.length;) {
    let j = i;
    while (j < name.length && hit[j] === hit[i]) j++;
    parts.push(hit[i] ? h('mark', { text: name.slice(i, j) }) : name.slice(i, j));
    i = j;
  }
  return parts;
}

function resultRow(item, words) {
  const parent = normPath(item.parent || '/');
  const path = joinPath(parent, item.name);
  const isDir = !!item.is_dir;
  const kind = kindOf(item);
  const openIt = () => (isDir ? navigate(path) : revealInFolder(parent, item.name));
  const name = h('a', { class: 'name', href: encodePath(isDir ? path : parent), title: path,
    dataset: { testid: 'search-result-name' }, onclick: (e) => follow(e, openIt) }, marked(item.name, words));
  const folder = h('a', { class: 'result-folder', href: encodePath(parent), title: `Show in ${parent === '/' ? 'Home' : parent}`,
    dataset: { testid: 'search-result-folder' }, onclick: (e) => follow(e, () => revealInFolder(parent, item.name)) },
    icon('folder'), h('span', { text: parent === '/' ? 'Home' : parent }));
  // The whole row opens like its name (a larger target on touch screens); its links keep their own.
  return h('div', { class: 'result', dataset: { testid: 'search-result', name: item.name, parent, type: isDir ? 'folder' : 'file', kind },
    onclick: (e) => { if (!e.target.closest('a, button')) openIt(); } },
    h('span', { class: 'icon k-' + kind, 'aria-hidden': 'true' }, icon(ICONS[kind] || 'file')),
    h('span', { class: 'result-main' }, name, folder),
    h('span', { class: 'size', text: isDir ? '' : formatSize(item.size) }),
    h('span', { class: 'date', text: formatDate(item.modified) }));
}
