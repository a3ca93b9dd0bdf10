// Manage → Folder rules (Alist's "metas"): per folder, a password, names to hide, a write grant, a readme
// and a header, each with "applies to sub-folders". They apply to the web UI, the API, download links and
// WebDAV alike.
import { api, apiGet } from './api.js';
import { h, toast } from './util.js';
import { openRecordForm, managePage, rowButton as btn, adminAction } from './forms.js';

export async function renderRules(isCurrent) {
  const data = await apiGet('/admin/meta/list');
  if (!isCurrent()) return;
  managePage({
    title: 'Folder rules', addId: 'rule-add', addText: 'Add rule', onAdd: () => openRuleForm(null),
    note: 'Rules apply everywhere: this site, the API, download links and WebDAV. WebDAV cannot ask for a password, so guarded folders are only reachable there for users allowed to access without password.',
    tableId: 'rule-table', headers: ['Folder', 'Password', 'Hide', 'Write', 'Readme / header', ''],
    rows: (data.content || []).map(ruleRow), empty: 'No folder rules. Add one to protect or hide a folder.',
  });
}

const sub = (on) => on ? ' (and below)' : '';

function ruleRow(r) {
  const hides = (r.hide || '').split('\n').map(s => s.trim()).filter(Boolean);
  return h('tr', { dataset: { testid: 'rule-row', path: r.path, id: String(r.id) } },
    h('td', {}, h('strong', { text: r.path })),
    h('td', { 'data-label': 'Password', text: r.password ? 'set' + sub(r.p_sub) : '' }),
    h('td', { 'data-label': 'Hide', class: 'small', text: hides.length ? hides.join('  ') + sub(r.h_sub) : '' }),
    h('td', { 'data-label': 'Write', text: r.write ? 'anyone who can read' + sub(r.w_sub) : '' }),
    h('td', { 'data-label': 'Readme', class: 'small', text: [r.readme ? 'readme' + sub(r.r_sub) : '', r.header ? 'header' + sub(r.header_sub) : ''].filter(Boolean).join(', ') }),
    h('td', { class: 'row-actions' },
      btn('rule-edit', 'Edit', () => openRuleForm(r)),
      btn('rule-delete', 'Delete', () => remove(r), 'danger')));
}

const refresh = () => window.dispatchEvent(new CustomEvent('panlist:manage', { detail: 'rules' }));

function remove(r) {
  return adminAction({
    confirm: ['Delete rule', `Delete the rule for ${r.path}? Its password, hides and write grant stop applying at once.`],
    call: () => api('/admin/meta/delete', {}, { query: { id: r.id } }),
    done: 'Rule deleted', page: 'rules' });
}

async function openRuleForm(r) {
  const v = r || { path: '/', password: '', p_sub: true, write: false, w_sub: false, hide: '', h_sub: true, readme: '', r_sub: false, header: '', header_sub: false };
  const saved = await openRecordForm({
    title: r ? `Edit rule for ${r.path}` : 'Add folder rule',
    fields: [
      { name: 'path', label: 'Folder', type: 'string', value: v.path, required: true, help: 'The folder\'s full path in the tree, e.g. /Movies/Private.' },
      { heading: 'Password' },
      { name: 'password', label: 'Password', type: 'string', value: v.password,
        help: 'Asked before listing the folder or opening its files. Empty: no password. Users allowed to "access without password" skip it.' },
      { name: 'p_sub', label: 'Also for all sub-folders', type: 'bool', value: v.p_sub,
        help: 'Unchecked: only this folder and the entries directly in it.' },
      { heading: 'Hide' },
      { name: 'hide', label: 'Names to hide (one regular expression per line)', type: 'text', rows: 3, value: v.hide, placeholder: '^\\.\n\\.nfo$',
        help: 'Matching entries are left out of listings and cannot be opened by users who may not see hidden files.' },
      { name: 'h_sub', label: 'Also in all sub-folders', type: 'bool', value: v.h_sub },
      { heading: 'Write' },
      { name: 'write', label: 'Anyone who can read this folder may upload and make folders here', type: 'bool', value: v.write },
      { name: 'w_sub', label: 'Also in all sub-folders', type: 'bool', value: v.w_sub },
      { heading: 'Readme and header' },
      { name: 'readme', label: 'Readme (Markdown, or a URL)', type: 'text', rows: 3, value: v.readme, help: 'Shown below the listing.' },
      { name: 'r_sub', label: 'Also in all sub-folders', type: 'bool', value: v.r_sub },
      { name: 'header', label: 'Header (Markdown, or a URL)', type: 'text', rows: 3, value: v.header, help: 'Shown above the listing.' },
      { name: 'header_sub', label: 'Also in all sub-folders', type: 'bool', value: v.header_sub },
    ],
    save: async (vals) => {
      const rec = { ...vals, path: vals.path.trim() };
      if (r) rec.id = r.id;
      await api(r ? '/admin/meta/update' : '/admin/meta/create', rec);
    },
  });
  if (saved) { toast('Rule saved'); refresh(); }
}
