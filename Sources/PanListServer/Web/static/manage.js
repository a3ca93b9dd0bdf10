// The admin pages at /@manage: storages (list, add/edit with a form built from the driver's items,
// enable/disable, delete), users (users.js), folder rules (rules.js) and settings (edit and save).
// Only shown to the admin (role 2).
import { api, apiGet } from './api.js';
import { $, h, clear, formatSize, showError, clearError, toast } from './util.js';
import { confirmDialog, showText } from './dialogs.js';
import { renderUsers } from './users.js';
import { renderRules } from './rules.js';
import { managePage, rowButton as btn, adminAction } from './forms.js';

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
};

/** Renders a manage page: "storages" (default), "users", "rules" or "settings". */
export async function showManage(page) {
  const mine = ++seq;
  clearError();
  if (!PAGES[page]) page = 'storages';
  for (const p of Object.keys(PAGES)) {
    $('#tab-' + p).classList.toggle('active', p === page);
    $('#tab-' + p).toggleAttribute('aria-current', p === page);
  }
  document.title = PAGES[page][0] + ' – Manage';
  clear($('#manage-body')).append(h('p', { class: 'muted', text: 'Loading…' }));
  try {
    await PAGES[page][1](mine);
  } catch (e) {
    if (mine === seq) { clear($('#manage-body')); showError(e.message); }
  }
}

const pretty = (name) => name.replace(/_/g, ' ').replace(/^./, c => c.toUpperCase());
const isSecret = (name) => /secret|password|private_?key|token/i.test(name);

// ---------------------------------------------------------------------------------------------
// Storages

async function renderStorages(mine) {
  const data = await apiGet('/admin/storage/list');
  if (mine !== seq) return;
  managePage({
    title: 'Storages', addId: 'storage-add', addText: 'Add storage', onAdd: () => openStorageForm(null),
    tableId: 'storage-table', headers: ['Mount path', 'Driver', 'Status', 'Space', 'Order', ''],
    rows: (data.content || []).map(storageRow), empty: 'No storage yet. Add one to see files.',
  });
}

function storageRow(s) {
  const ok = s.status === 'work';
  const status = h('span', { class: 'status ' + (ok ? 'ok' : s.disabled ? 'off' : 'bad'), text: s.status || (s.disabled ? 'disabled' : '') });
  let space = '';
  const d = s.mount_details;
  if (d && d.total_space) space = `${formatSize(d.used_space || 0)} used, ${formatSize(d.free_space || 0)} free of ${formatSize(d.total_space)}`;
  return h('tr', { dataset: { testid: 'storage-row', mount: s.mount_path, id: String(s.id), status: s.status || '' } },
    h('td', { class: 'mount' }, h('strong', { text: s.mount_path }), s.remark ? h('div', { class: 'muted small', text: s.remark }) : null),
    h('td', { 'data-label': 'Driver', text: s.driver }),
    h('td', { 'data-label': 'Status' }, status),
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

/** Builds one form field for a driver item; `value` is the current value (string, number or bool). */
function field(item, value) {
  const id = 'field-' + item.name;
  const attrs = { id, name: item.name, dataset: { kind: item.type } };
  let input;
  switch (item.type) {
    case 'bool':
      input = h('input', { ...attrs, type: 'checkbox', checked: value === true || value === 'true' });
      break;
    case 'number':
      input = h('input', { ...attrs, type: 'number', step: 'any', value: value ?? '' });
      break;
    case 'select': {
      const opts = String(item.options || '').split(',').map(o => o.trim()).filter(Boolean);
      const v = String(value ?? '');
      if (!item.required || v === '') opts.unshift('');
      if (!opts.includes(v)) opts.push(v);
      input = h('select', attrs, ...opts.map(o => h('option', { value: o, text: o === '' ? '—' : o })));
      input.value = v;
      break;
    }
    case 'text':
      input = h('textarea', { ...attrs, rows: 2, value: String(value ?? '') });
      break;
    default:
      input = h('input', { ...attrs, type: isSecret(item.name) ? 'password' : 'text', autocomplete: 'off', value: String(value ?? '') });
  }
  if (item.required) input.required = true;
  const label = h('label', { for: id, text: pretty(item.name) + (item.required && item.type !== 'bool' ? ' *' : '') });
  const help = item.help ? h('small', { class: 'help', text: item.help }) : null;
  return item.type === 'bool'
    ? h('div', { class: 'field check' }, input, label, help)
    : h('div', { class: 'field' }, label, input, help);
}

/** Reads a field's value converted to the item's type; undefined for an empty number. */
function readField(item) {
  const input = $('#storage-fields').querySelector(`[id="field-${CSS.escape(item.name)}"]`);
  if (!input) return undefined;
  if (item.type === 'bool') return input.checked;
  if (item.type === 'number') {
    if (input.value.trim() === '') return undefined;
    const n = Number(input.value);
    if (!Number.isFinite(n)) throw new Error(`${item.name} must be a number`);
    return n;
  }
  return input.value;
}

/** Opens the add/edit form. `record` is a storage from storage/list, or null for a new one. */
async function openStorageForm(record) {
  const dlg = $('#storage-dialog'), form = $('#storage-form'), box = $('#storage-fields'), err = $('#storage-form-error');
  let editing = record ? { ...record } : null;
  let info = null;
  err.hidden = true;
  // Never let the browser submit the form itself (a reload), even before the fields are ready.
  form.onsubmit = (e) => e.preventDefault();
  $('#storage-form-title').textContent = editing ? `Edit storage ${editing.mount_path}` : 'Add storage';
  clear(box).append(h('p', { class: 'muted', text: 'Loading…' }));
  if (!dlg.open) dlg.showModal();
  const fail = (msg) => { err.textContent = msg; err.hidden = false; };

  let names;
  try { names = await apiGet('/admin/driver/names'); } catch (e) { fail(e.message); return; }
  const driverSelect = h('select', { id: 'field-driver', name: 'driver' }, ...names.map(n => h('option', { value: n, text: n })));
  driverSelect.value = editing ? editing.driver : (names.includes('Local') ? 'Local' : names[0]);
  driverSelect.disabled = !!editing;        // the server refuses a driver change
  const itemsBox = h('div', { id: 'storage-items' });
  clear(box).append(h('div', { class: 'field' }, h('label', { for: 'field-driver', text: 'Driver *' }), driverSelect), itemsBox);

  async function build(driver) {
    info = null;                       // no submit until this driver's items are on screen
    clear(itemsBox).append(h('p', { class: 'muted', text: 'Loading…' }));
    let answer;
    try { answer = await apiGet('/admin/driver/info', { driver }); } catch (e) {
      if (driverSelect.value === driver) { clear(itemsBox); fail(e.message); }
      return;
    }
    if (driverSelect.value !== driver) return;   // the driver was changed meanwhile
    info = answer;
    let addition = {};
    if (editing) { try { addition = JSON.parse(editing.addition || '{}') || {}; } catch { addition = {}; } }
    const common = h('fieldset', {}, h('legend', { text: 'Storage' }));
    for (const it of info.common) common.append(field(it, editing ? editing[it.name] : it.default));
    const extra = h('fieldset', {}, h('legend', { text: driver }));
    for (const it of info.additional) extra.append(field(it, editing ? (addition[it.name] ?? it.default) : it.default));
    clear(itemsBox).append(common);
    if (info.additional.length) itemsBox.append(extra);
    if (info.config && info.config.alert) itemsBox.append(h('p', { class: 'muted', text: info.config.alert }));
    const first = itemsBox.querySelector('input, select, textarea');
    if (first) first.focus();
  }
  driverSelect.onchange = () => { err.hidden = true; build(driverSelect.value); };
  await build(driverSelect.value);

  form.onsubmit = async (e) => {
    e.preventDefault();
    if (!info) return;
    err.hidden = true;
    let rec;
    try {
      rec = editing ? { ...editing } : {};
      delete rec.mount_details; delete rec.status; delete rec.modified;
      rec.driver = driverSelect.value;
      for (const it of info.common) {
        const v = readField(it);
        if (it.required && (v === undefined || v === '')) throw new Error(`${pretty(it.name)} is required`);
        rec[it.name] = v === undefined ? (it.default !== '' && !isNaN(Number(it.default)) ? Number(it.default) : 0) : v;
      }
      // Keep addition keys the form does not know; masked secrets ("******") go back unchanged.
      let addition = {};
      if (editing) { try { addition = JSON.parse(editing.addition || '{}') || {}; } catch { addition = {}; } }
      for (const it of info.additional) {
        const v = readField(it);
        if (it.required && (v === undefined || v === '')) throw new Error(`${pretty(it.name)} is required`);
        if (v === undefined) delete addition[it.name]; else addition[it.name] = v;
      }
      rec.addition = JSON.stringify(addition);
    } catch (e2) { fail(e2.message); return; }

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
      fail(e3.message);
      renderStorages(++seq).catch(() => {});
    } finally {
      save.disabled = false;
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Settings

const GROUPS = { 1: 'Site', 2: 'Style', 3: 'Preview', 4: 'Global', 0: 'Other' };

async function renderSettings(mine) {
  const items = await apiGet('/admin/setting/list');
  if (mine !== seq) return;
  const form = h('form', { id: 'settings-form', novalidate: true });
  const byGroup = new Map();
  for (const it of items) {
    const g = GROUPS[it.group] ? it.group : 0;
    if (!byGroup.has(g)) byGroup.set(g, []);
    byGroup.get(g).push(it);
  }
  for (const g of [1, 2, 3, 4, 0]) {
    if (!byGroup.has(g)) continue;
    const fs = h('fieldset', {}, h('legend', { text: GROUPS[g] }));
    for (const it of byGroup.get(g)) fs.append(settingField(it));
    form.append(fs);
  }
  form.append(h('div', { class: 'form-buttons' },
    h('button', { type: 'button', id: 'reset-token', text: 'Reset admin token…', onclick: resetToken }),
    h('button', { type: 'submit', id: 'settings-save', class: 'primary', text: 'Save settings' })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const changed = [];
    for (const it of items) {
      const input = form.querySelector(`[id="setting-${CSS.escape(it.key)}"]`);
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
    } catch (e2) { showError(e2.message); }
  });
  clear($('#manage-body')).append(h('div', { class: 'manage-head' }, h('h1', { text: 'Settings' })), form);
}

function settingField(it) {
  const id = 'setting-' + it.key;
  const attrs = { id, name: it.key, disabled: it.flag === 2 };
  let input;
  switch (it.type) {
    case 'bool': input = h('input', { ...attrs, type: 'checkbox', checked: it.value === 'true' }); break;
    case 'number': input = h('input', { ...attrs, type: 'number', step: 'any', value: it.value }); break;
    case 'select': {
      const opts = String(it.options || '').split(',').map(o => o.trim()).filter(Boolean);
      if (!opts.includes(it.value)) opts.unshift(it.value);
      input = h('select', attrs, ...opts.map(o => h('option', { value: o, text: o })));
      input.value = it.value;
      break;
    }
    case 'text': input = h('textarea', { ...attrs, rows: 2, value: it.value }); break;
    default: input = h('input', { ...attrs, type: isSecret(it.key) ? 'password' : 'text', autocomplete: 'off', value: it.value });
  }
  const label = h('label', { for: id, text: it.key + (it.flag === 2 ? ' (read-only)' : '') });
  const help = it.help ? h('small', { class: 'help', text: it.help }) : null;
  return it.type === 'bool'
    ? h('div', { class: 'field check' }, input, label, help)
    : h('div', { class: 'field' }, label, input, help);
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
