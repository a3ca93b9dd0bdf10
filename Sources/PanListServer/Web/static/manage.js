// The admin pages at /@manage: storages (list, add/edit with a form built from the driver's items,
// enable/disable, delete), users (users.js), folder rules (rules.js), settings (edit and save) and the
// search index (its progress; build, update, stop, clear). Only shown to the admin (role 2).
import { api, apiGet } from './api.js';
import { $, h, clear, formatSize, formatDate, showError, clearError, toast } from './util.js';
import { state, navigate } from './state.js';
import { confirmDialog, showText } from './dialogs.js';
import { renderUsers } from './users.js';
import { renderRules } from './rules.js';
import { managePage, rowButton as btn, adminAction, formField, pretty, isSecret, showFieldError, clearFormErrors, showFormError,
         checkRequired, placeError } from './forms.js';

let onSettingsSaved = () => {};
let seq = 0;

export function initManage({ settingsSaved }) {
  onSettingsSaved = settingsSaved;
  $('#storage-cancel').addEventListener('click', () => $('#storage-dialog').close());
  // The users and rules pages ask for a fresh render after a change.
  window.addEventListener('panlist:manage', (e) => showManage(e.detail));
}

const PAGES = {
  storages: ['Storages', (mine) => renderStorages(mine)],
  users: ['Users', (mine) => renderUsers(() => mine === seq)],
  rules: ['Folder rules', (mine) => renderRules(() => mine === seq)],
  settings: ['Settings', (mine) => renderSettings(mine)],
  index: ['Search index', (mine) => renderIndex(mine)],
};

/** Renders a manage page: "storages" (default), "users", "rules", "settings" or "index". */
export async function showManage(page) {
  const mine = ++seq;
  clearError();
  if (!PAGES[page]) page = 'storages';
  for (const p of Object.keys(PAGES)) {
    $('#tab-' + p).classList.toggle('active', p === page);
    $('#tab-' + p).toggleAttribute('aria-current', p === page);
  }
  document.title = PAGES[page][0] + ' – Manage';
  clear($('#manage-body'), h('p', { class: 'muted', text: 'Loading…' }));
  try {
    await PAGES[page][1](mine);
  } catch (e) {
    if (mine === seq) { clear($('#manage-body')); showError(e.message); }
  }
}

// ---------------------------------------------------------------------------------------------
// Storages

const STATUS_WORDS = { work: 'Working', loading: 'Loading…', disabled: 'Disabled' };

async function renderStorages(mine, relists = 0) {
  const data = await apiGet('/admin/storage/list');
  if (mine !== seq) return;
  const storages = data.content || [];
  managePage({
    title: 'Storages', addId: 'storage-add', addText: 'Add storage', onAdd: () => openStorageForm(null),
    tableId: 'storage-table', headers: ['Mount path', 'Driver', 'Status', 'Space', 'Order', ''],
    rows: storages.map(storageRow), empty: 'No storage yet. Add one to see files.',
  });
  // Storages start in the background: look again shortly while one is still loading.
  if (storages.some(s => s.status === 'loading') && relists < 10) {
    setTimeout(() => { if (mine === seq) renderStorages(mine, relists + 1).catch(() => {}); }, 1500);
  }
}

function storageRow(s) {
  const cls = s.status === 'work' ? 'ok' : s.status === 'loading' || s.disabled ? 'off' : 'bad';
  const status = h('span', { class: 'status ' + cls, text: STATUS_WORDS[s.status] || s.status || (s.disabled ? 'Disabled' : 'Unknown') });
  let space = '';
  const d = s.mount_details;
  if (d && d.total_space) space = `${formatSize(d.used_space || 0)} used, ${formatSize(d.free_space || 0)} free of ${formatSize(d.total_space)}`;
  return h('tr', { dataset: { testid: 'storage-row', mount: s.mount_path, id: String(s.id), status: s.status || '' } },
    h('td', { class: 'mount' }, h('strong', { text: s.mount_path }), s.remark ? h('div', { class: 'muted small', text: s.remark }) : null),
    h('td', { 'data-label': 'Driver', text: s.driver }),
    h('td', { 'data-label': 'Status' }, status, s.status_note ? h('div', { class: 'muted small', dataset: { testid: 'status-note' }, text: s.status_note }) : null),
    h('td', { 'data-label': 'Space', class: 'small', text: space }),
    h('td', { 'data-label': 'Order', text: String(s.order ?? 0) }),
    h('td', { class: 'row-actions' },
      btn('storage-edit', 'Edit', () => openStorageForm(s)),
      btn('storage-toggle', s.disabled ? 'Enable' : 'Disable', () => toggleStorage(s)),
      btn('storage-delete', 'Delete', () => deleteStorage(s), 'danger')));
}

function toggleStorage(s) {
  return adminAction({
    call: () => api('/admin/storage/' + (s.disabled ? 'enable' : 'disable'), {}, { query: { id: s.id } }),
    done: s.disabled ? 'Enabled' : 'Disabled', page: 'storages' });
}

function deleteStorage(s) {
  return adminAction({
    confirm: ['Delete storage', `Unmount and delete the storage at ${s.mount_path}? The files themselves are not touched.`],
    call: () => api('/admin/storage/delete', {}, { query: { id: s.id } }),
    done: 'Storage deleted', page: 'storages' });
}

// The storage form. Labels and option words for the common items (the API keeps the raw names and values;
// a driver's own items keep their names, which its help and the server's messages use).
const LABELS = {
  mount_path: 'Mount path', order: 'Order', remark: 'Remark', cache_expiration: 'Cache expiration (minutes)',
  web_proxy: 'Stream web downloads through PanList', webdav_policy: 'WebDAV downloads', down_proxy_url: 'Download proxy URL',
  order_by: 'Sort by', order_direction: 'Sort direction', extract_folder: 'Folders', enable_sign: 'Require signed links',
  disable_index: 'Leave out of the search index',
};
const OPTION_WORDS = {
  webdav_policy: { '302_redirect': 'Redirect to the cloud (302)', use_proxy_url: 'Through the download proxy URL', native_proxy: 'Stream through PanList' },
  order_by: { '': 'As the storage lists them', name: 'Name', size: 'Size', modified: 'Modified' },
  order_direction: { '': 'Default', asc: 'Ascending', desc: 'Descending' },
  extract_folder: { '': 'Mixed with files', front: 'Before files', back: 'After files' },
};
const optionWords = (name, v) => (OPTION_WORDS[name] && OPTION_WORDS[name][v]) || (v === '' ? '—' : pretty(v));

/** The formField spec of a driver item; `help` is left out when an earlier field of the form showed the same text. */
function itemField(item, value, shownHelp) {
  const help = item.help && !shownHelp.has(item.help) ? item.help : '';
  if (help) shownHelp.add(help);
  const type = item.type === 'string' && isSecret(item.name) ? 'password' : item.type;
  let options;
  if (item.type === 'select') {
    const raw = String(item.options || '').split(',').map(o => o.trim()).filter(Boolean);
    if (!item.required || String(value ?? '') === '') raw.unshift('');
    options = raw.map(o => [o, optionWords(item.name, o)]);
  }
  return formField({ id: 'field-' + item.name, name: item.name, key: item.name, label: LABELS[item.name] || (/_/.test(item.name) ? pretty(item.name) : item.name),
    type, value, options, help, required: item.required });
}

/** Reads a field's value converted to the item's type; undefined for an empty number. */
function readField(item) {
  const input = document.getElementById('field-' + item.name);
  if (!input) return undefined;
  if (item.type === 'bool') return input.checked;
  if (item.type === 'number') {
    if (input.value.trim() === '') return undefined;
    const n = Number(input.value);
    if (!Number.isFinite(n)) { showFieldError(input, `${LABELS[item.name] || item.name} must be a number.`); return null; }
    return n;
  }
  return input.value;
}

/** Opens the add/edit form. `record` is a storage from storage/list, or null for a new one. */
async function openStorageForm(record) {
  const dlg = $('#storage-dialog'), form = $('#storage-form'), box = $('#storage-fields'), err = $('#storage-form-error');
  let editing = record ? { ...record } : null;
  let info = null;
  clearFormErrors(form, err);
  // Never let the browser submit the form itself (a reload), even before the fields are ready.
  form.onsubmit = (e) => e.preventDefault();
  $('#storage-form-title').textContent = editing ? `Edit storage ${editing.mount_path}` : 'Add storage';
  clear(box, h('p', { class: 'muted', text: 'Loading…' }));
  if (!dlg.open) dlg.showModal();
  const fail = (msg) => showFormError(err, msg);

  let names;
  try { names = await apiGet('/admin/driver/names'); } catch (e) { fail(e.message); return; }
  const driverSelect = h('select', { id: 'field-driver', name: 'driver' }, ...names.map(n => h('option', { value: n, text: n })));
  driverSelect.value = editing ? editing.driver : (names.includes('Local') ? 'Local' : names[0]);
  driverSelect.disabled = !!editing;        // the server refuses a driver change
  const itemsBox = h('div', { id: 'storage-items' });
  clear(box, h('div', { class: 'field' }, h('label', { for: 'field-driver' }, h('span', { text: 'Driver' }), h('span', { class: 'req', text: ' *' })), driverSelect), itemsBox);

  async function build(driver) {
    info = null;                       // no submit until this driver's items are on screen
    clear(itemsBox, h('p', { class: 'muted', text: 'Loading…' }));
    let answer;
    try { answer = await apiGet('/admin/driver/info', { driver }); } catch (e) {
      if (driverSelect.value === driver) { clear(itemsBox); fail(e.message); }
      return;
    }
    if (driverSelect.value !== driver) return;   // the driver was changed meanwhile
    info = answer;
    // The search index's switch for this storage (disable_index): a common item; added here when the server's
    // driver info does not list it, so that the form can always set it.
    if (!info.common.some(it => it.name === 'disable_index')) {
      info.common = [...info.common, { name: 'disable_index', type: 'bool', default: false,
        help: 'Its files are not indexed, so searches do not find them (browsing is unchanged). Spares a cloud\'s list calls.' }];
    }
    let addition = {};
    if (editing) { try { addition = JSON.parse(editing.addition || '{}') || {}; } catch { addition = {}; } }
    // First what a storage cannot do without: its mount path and the driver's own settings (credentials…);
    // then the generic options, collapsed.
    const shownHelp = new Set();
    const commonValue = (it) => editing ? editing[it.name] : it.default;
    const mount = info.common.filter(it => it.name === 'mount_path');
    const advanced = info.common.filter(it => it.name !== 'mount_path');
    clear(itemsBox, mount.map(it => itemField(it, commonValue(it), shownHelp)));
    if (info.additional.length) {
      itemsBox.append(h('fieldset', {}, h('legend', { text: `${driver} settings` }),
        info.additional.map(it => itemField(it, editing ? (addition[it.name] ?? it.default) : it.default, shownHelp))));
    }
    if (info.config && info.config.alert) itemsBox.append(h('p', { class: 'muted', text: info.config.alert }));
    if (advanced.length) {
      itemsBox.append(h('details', { class: 'advanced', id: 'storage-advanced' },
        h('summary', { text: 'Advanced: order, cache, downloads, sorting, signing, search' }),
        advanced.map(it => itemField(it, commonValue(it), shownHelp))));
    }
    const first = itemsBox.querySelector('input:not([disabled]), select:not([disabled]), textarea:not([disabled])');
    if (first) first.focus();
  }
  driverSelect.onchange = () => { clearFormErrors(form, err); build(driverSelect.value); };
  await build(driverSelect.value);

  form.onsubmit = async (e) => {
    e.preventDefault();
    if (!info) return;
    clearFormErrors(form, err);
    if (!checkRequired(box)) return;
    const rec = editing ? { ...editing } : {};
    delete rec.mount_details; delete rec.status; delete rec.status_note; delete rec.modified;
    rec.driver = driverSelect.value;
    for (const it of info.common) {
      const v = readField(it);
      if (v === null) return;
      rec[it.name] = v === undefined ? (it.default !== '' && !isNaN(Number(it.default)) ? Number(it.default) : 0) : v;
    }
    // Keep addition keys the form does not know; masked secrets ("******") go back unchanged.
    let addition = {};
    if (editing) { try { addition = JSON.parse(editing.addition || '{}') || {}; } catch { addition = {}; } }
    for (const it of info.additional) {
      const v = readField(it);
      if (v === null) return;
      if (v === undefined) delete addition[it.name]; else addition[it.name] = v;
    }
    rec.addition = JSON.stringify(addition);

    const save = $('#storage-save');
    save.disabled = true;
    try {
      await api(rec.id ? '/admin/storage/update' : '/admin/storage/create', rec);
      dlg.close();
      toast('Storage saved');
      showManage('storages');
    } catch (e3) {
      // A storage that fails to start is kept (with its error as status): switch the form to editing it.
      if (e3.data && e3.data.id && !rec.id) editing = { ...rec, id: e3.data.id };
      const fields = [...info.common, ...info.additional].map(it => ({ name: it.name, label: LABELS[it.name], id: 'field-' + it.name }));
      placeError(e3.message, fields, err);
      renderStorages(++seq).catch(() => {});
    } finally {
      save.disabled = false;
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Settings: a readable label and the server's help for each; grouped, with the ones kept only for
// Alist's clients in a collapsed section of their own.

// In the order shown (settings not listed here follow, by key).
const SETTING_LABELS = {
  site_title: 'Site title', announcement: 'Announcement', version: 'Version',
  logo: 'Logo', favicon: 'Favicon', main_color: 'Accent color',
  video_types: 'Video files', audio_types: 'Audio files', image_types: 'Image files', text_types: 'Text files',
  proxy_types: 'Always streamed through PanList', video_autoplay: 'Play video at once', audio_autoplay: 'Play audio at once',
  sign_all: 'Sign download links', link_expiration: 'Link expiration (hours)',
  search_index: 'Search', auto_update_index: 'Update the index when a folder is listed', ignore_paths: 'Paths never indexed',
  max_index_depth: 'Index depth (folder levels)', index_update_hours: 'Walk the storages again every (hours)',
  index_list_per_second: 'List calls per second on a cloud (index walks)', task_index_workers: 'Index walks at once (each server)',
  token: 'Admin token',
  pagination_type: 'Long folders', default_page_size: 'Page size', allow_indexed: 'Allow search engines',
  allow_mounted: 'Allow embedding in other sites', hide_files: 'Hidden names', package_download: 'Folder download as an archive',
};
const SETTING_ORDER = Object.keys(SETTING_LABELS);
const settingRank = (it) => { const i = SETTING_ORDER.indexOf(it.key); return i < 0 ? SETTING_ORDER.length : i; };
const GROUPS = [[1, 'Site'], [2, 'Look'], [3, 'Previews and file types'], [4, 'Links and downloads'], ['index', 'Search'], [0, 'Security and other']];
const alistOnly = (it) => /kept for alist clients/i.test(it.help || '');
// The search settings, together whatever group number the server gives them (and anything else in that group).
const SEARCH_KEYS = new Set(['search_index', 'auto_update_index', 'ignore_paths', 'max_index_depth', 'index_update_hours', 'index_list_per_second',
  'task_index_workers']);

async function renderSettings(mine) {
  const items = (await apiGet('/admin/setting/list')).slice()
    .sort((a, b) => settingRank(a) - settingRank(b) || a.key.localeCompare(b.key));
  if (mine !== seq) return;
  const form = h('form', { id: 'settings-form', novalidate: true });
  const err = h('p', { id: 'settings-error', class: 'form-error', role: 'alert', hidden: true });
  const known = new Set(GROUPS.map(([g]) => g));
  const searchItem = items.find(it => it.key === 'search_index');
  const searchGroup = searchItem && !known.has(searchItem.group) ? searchItem.group : null;
  const groupOf = (it) => SEARCH_KEYS.has(it.key) || (searchGroup !== null && it.group === searchGroup) ? 'index'
    : known.has(it.group) ? it.group : 0;
  const section = (title, list) => list.length ? h('fieldset', {}, h('legend', { text: title }), list.map(settingField)) : null;
  for (const [g, title] of GROUPS) {
    const fs = section(title, items.filter(it => !alistOnly(it) && groupOf(it) === g));
    if (!fs) continue;
    if (g === 'index') {
      fs.append(h('p', { class: 'muted small' }, 'Build the index and follow its progress on the ',
        h('a', { href: '/@manage/index', dataset: { testid: 'settings-index-link' }, text: 'Search index page',
          onclick: (e) => { if (e.button === 0 && !e.metaKey && !e.ctrlKey && !e.shiftKey) { e.preventDefault(); navigate('/@manage/index'); } } }), '.'));
    }
    form.append(fs);
  }
  const alist = items.filter(alistOnly);
  if (alist.length) {
    form.append(h('details', { class: 'advanced' }, h('summary', { text: `Kept for Alist clients (${alist.length})` }),
      h('p', { class: 'muted small', text: 'Alist\'s front end and clients read these settings.' }), section('Alist', alist)));
  }
  form.append(h('div', { class: 'form-buttons' },
    h('button', { type: 'button', id: 'reset-token', text: 'Reset admin token…', onclick: resetToken }),
    h('button', { type: 'submit', id: 'settings-save', class: 'primary', text: 'Save settings' })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFormErrors(form, err);
    if (!checkRequired(form)) return;
    const changed = [];
    for (const it of items) {
      const input = document.getElementById('setting-' + it.key);
      if (!input || input.disabled) continue;
      const value = input.type === 'checkbox' ? String(input.checked) : input.value;
      if (value !== it.value) changed.push({ ...it, value });
    }
    if (!changed.length) { toast('Nothing changed'); return; }
    try {
      await api('/admin/setting/save', changed);
      for (const c of changed) items.find(i => i.key === c.key).value = c.value;
      clearError();
      toast(`Saved ${changed.length} setting${changed.length === 1 ? '' : 's'}`);
      onSettingsSaved();
    } catch (e2) {
      placeError(e2.message, items.map(it => ({ name: it.key, label: SETTING_LABELS[it.key], id: 'setting-' + it.key })), err);
    }
  });
  clear($('#manage-body'), h('div', { class: 'manage-head' }, h('h1', { text: 'Settings' })), err, form);
}

function settingField(it) {
  const readOnly = it.flag === 2;
  const type = it.type === 'string' && isSecret(it.key) ? 'password' : it.type;
  const options = it.type === 'select' ? String(it.options || '').split(',').map(o => o.trim()).filter(Boolean).map(o => [o, pretty(o)]) : undefined;
  return formField({ id: 'setting-' + it.key, name: it.key, key: it.key, type, value: it.value, options, help: it.help,
    label: (SETTING_LABELS[it.key] || pretty(it.key)) + (readOnly ? ' (read-only)' : ''), disabled: readOnly });
}

// ---------------------------------------------------------------------------------------------
// Search index: what is in it (entries, the walk going on, the last one finished, an error) and what to do
// with it. Build empties it under the folders given and walks them again; Update walks them and brings their
// entries up to date; Stop cancels the walk; Clear stops and empties it. The server walks only while search
// is on, so Build and Update wait for that. Walks run as tasks on the server; the page looks
// again every 2 s while one runs (and for a few seconds after a button, while the task starts).

const INDEX_POLL_MS = 2000;

/** [tone, words] of the index's progress (`state` is the newest index task's state, in the server's words). */
function indexState(p) {
  const st = String(p.state || '');
  if (p.running) return ['run', { pending: 'Waiting to start', canceling: 'Stopping…', 'waiting to retry': 'Waiting to try again' }[st] || 'Running'];
  if (p.error) return ['bad', 'Failed'];
  if (!p.last_done_time) return ['off', 'Not built yet'];
  if (st === 'canceled') return ['off', 'Stopped before the end'];
  return ['ok', 'Done'];
}

async function renderIndex(mine) {
  const first = await apiGet('/admin/index/progress');
  if (mine !== seq) return;
  const err = h('p', { id: 'index-error', class: 'form-error', role: 'alert', hidden: true });
  const facts = h('dl', { id: 'index-facts', class: 'facts', dataset: { testid: 'index-facts' } });
  const problem = h('p', { class: 'task-error', dataset: { testid: 'index-problem' }, hidden: true });
  const bar = h('progress', { id: 'index-progress', 'aria-label': 'Index walk under way', hidden: true });
  const paths = formField({ id: 'index-paths', name: 'paths', label: 'Folders', type: 'text', rows: 2, value: '/',
    help: 'One path a line: the folders Build and Update walk. "/" is every storage.' });
  const button = (what, text, cls, onclick) => h('button', { type: 'button', id: 'index-' + what, class: cls, dataset: { testid: 'index-' + what }, text, onclick });
  const buttons = {
    build: button('build', 'Build', 'primary', () => act('build')),
    update: button('update', 'Update', '', () => act('update')),
    stop: button('stop', 'Stop', '', () => act('stop')),
    clear: button('clear', 'Clear', 'danger', () => act('clear')),
  };
  const off = String(state.settings.search_index ?? '').trim().toLowerCase() === 'none';
  clear($('#manage-body'),
    h('div', { class: 'manage-head' }, h('h1', { text: 'Search index' })),
    off ? h('p', { class: 'notice', dataset: { testid: 'index-search-off' } }, 'Search is off. Turn it on in ',
      h('a', { href: '/@manage/settings', text: 'Settings', onclick: (e) => { if (e.button === 0 && !e.metaKey && !e.ctrlKey) { e.preventDefault(); navigate('/@manage/settings'); } } }),
      ' (Search: Database) to build the index and let people search.') : null,
    err,
    h('section', { class: 'index-panel' }, facts, bar, problem),
    h('form', { id: 'index-form', novalidate: true, onsubmit: (e) => e.preventDefault() }, paths,
      h('div', { class: 'form-buttons' }, buttons.build, buttons.update, buttons.stop, buttons.clear)),
    h('p', { class: 'muted small', text: 'Build empties the index under these folders and walks them again; searches there find only what it has reached until it ends. ' +
      'Update walks them and brings their entries up to date, keeping the rest. Uploads, new folders, renames, moves, copies and deletes made ' +
      'through PanList update the index at once. A walk of a cloud storage costs list calls (123 Open: one per 100 entries of a folder), paced ' +
      'by “List calls per second on a cloud” in Settings → Search.' }));

  let timer = 0, until = 0;
  const here = () => mine === seq && !$('#manage-view').hidden;
  function fill(p) {
    const [tone, words] = indexState(p);
    const row = (label, ...value) => [h('dt', { text: label }), h('dd', {}, ...value)];
    clear(facts,
      row('Entries', h('strong', { dataset: { testid: 'index-count' }, text: (Number(p.obj_count) || 0).toLocaleString() })),
      row('State', h('span', { class: 'status ' + tone, dataset: { testid: 'index-state', tone }, text: words }),
        p.running && p.current ? h('span', { class: 'muted small index-now', title: p.current, text: ` now in ${p.current}` }) : null),
      // The walk's own words ("78 entries in the index, 12 folders listed") while it runs or when it says more than "done".
      p.status && (p.running || !/^(done|succeeded)\.?$/i.test(String(p.status).trim()))
        ? row('Progress', h('span', { dataset: { testid: 'index-status' }, text: String(p.status) })) : null,
      row('Last finished', p.last_done_time && formatDate(p.last_done_time) ? formatDate(p.last_done_time) : h('span', { class: 'muted', text: 'never' })),
      p.task_id ? row('Task', h('a', { href: '/@tasks', text: p.running ? 'Follow it on the Tasks page' : 'On the Tasks page',
        onclick: (e) => { if (e.button === 0 && !e.metaKey && !e.ctrlKey) { e.preventDefault(); navigate('/@tasks'); } } })) : null);
    bar.hidden = !p.running;
    problem.textContent = p.error ? String(p.error) : '';
    problem.hidden = !p.error;
    buttons.build.disabled = buttons.update.disabled = !!p.running || off;
    buttons.stop.disabled = !p.running;
  }
  async function look() {
    clearTimeout(timer);
    if (!here()) return;
    let p = null;
    try { p = await apiGet('/admin/index/progress'); } catch (e) { if (here()) showFormError(err, `Could not read the index's progress: ${e.message}`); }
    if (!here()) return;
    if (p) { fill(p); if (err.textContent.startsWith('Could not read')) clearFormErrors($('#index-form'), err); }
    if (!p || p.running || Date.now() < until) timer = setTimeout(look, INDEX_POLL_MS);
  }
  async function act(what) {
    clearFormErrors($('#manage-body'), err);
    const input = $('#index-paths');
    const list = input.value.split(/\r?\n/).map(l => l.trim()).filter(Boolean);
    if ((what === 'build' || what === 'update') && (!list.length || list.some(l => !l.startsWith('/')))) {
      showFieldError(input, list.length ? 'Each line must be a path starting with "/".' : 'Give at least one folder ("/" for everything).');
      return;
    }
    if (what === 'build' && !await confirmDialog('Build the search index',
      `Empty the index under ${list.join(', ')} and walk ${list.length === 1 ? 'it' : 'them'} again? Searches there find only what the walk has reached until it ends.`, { okText: 'Build' })) return;
    if (what === 'clear' && !await confirmDialog('Clear the search index',
      'Stop any walk and empty the index? Searches find nothing until it is built again.', { okText: 'Clear', danger: true })) return;
    const all = Object.values(buttons);
    for (const b of all) b.disabled = true;
    try {
      await api('/admin/index/' + what, what === 'build' || what === 'update' ? { paths: list } : {});
      toast({ build: 'Index build started', update: 'Index update started', stop: 'Stopping the index walk…', clear: 'Index cleared' }[what]);
    } catch (e) {
      placeError(e.message, [{ name: 'paths', label: 'Folders', id: 'index-paths' }], err);
    }
    for (const b of all) b.disabled = false;
    until = Date.now() + 3 * INDEX_POLL_MS;
    await look();
  }
  fill(first);
  if (first.running) timer = setTimeout(look, INDEX_POLL_MS);
}

async function resetToken() {
  if (!await confirmDialog('Reset admin token', 'Make a new admin token? Every download link signed so far stops working.',
    { okText: 'Reset', danger: true })) return;
  try {
    const token = await api('/admin/setting/reset_token', {});
    await showText('New admin token', token, 'Keep it secret. It also signs download links.');
    showManage('settings');
  } catch (e) { showError(e.message); }
}
