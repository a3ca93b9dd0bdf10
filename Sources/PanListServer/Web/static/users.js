// Manage → Users: the admin, the guest and general users; add, edit (name, password, base path,
// permission bits, disabled) and delete. A new password or disabling ends the user's sessions at once.
import { api, apiGet } from './api.js';
import { h, toast } from './util.js';
import { openRecordForm, managePage, rowButton as btn, adminAction } from './forms.js';

const ROLES = { 0: 'User', 1: 'Guest', 2: 'Admin' };
// Alist's permission bits (docs/API.md).
export const BITS = [
  [0, 'See hidden files', 'Names hidden by folder rules are listed and can be opened.'],
  [1, 'Access without password', 'Folders guarded by a folder password open without it (also over WebDAV).'],
  [2, 'Offline download', 'Paste links for the server to fetch into folders this user may write to.'],
  [3, 'Write', 'Upload, make folders.'],
  [4, 'Rename', ''],
  [5, 'Move', ''],
  [6, 'Copy', ''],
  [7, 'Delete', ''],
  [8, 'WebDAV read', 'Use WebDAV at /dav with this user name and password.'],
  [9, 'WebDAV manage', 'Change files over WebDAV (with the bits above).'],
  [12, 'Read archives', 'Look inside zip, 7z, rar, tar and iso files and download single files from them.'],
  [13, 'Extract archives', 'Extract an archive into a folder this user may write to.'],
  [14, 'Share', 'Make share links to files and folders this user may read.'],
  [15, 'Custom share id', 'Choose the id in a share link instead of a random one.'],
];

export async function renderUsers(isCurrent) {
  const data = await apiGet('/admin/user/list');
  if (!isCurrent()) return;
  managePage({
    title: 'Users', addId: 'user-add', addText: 'Add user', onAdd: () => openUserForm(null),
    tableId: 'user-table', headers: ['User', 'Role', 'Base path', 'May', 'Status', ''],
    rows: (data.content || []).map(userRow), empty: 'No users.',
  });
}

function bitsText(u) {
  if (u.role === 2) return 'everything';
  const names = BITS.filter(([b]) => (u.permission & (1 << b)) !== 0).map(([, n]) => n.toLowerCase());
  return names.length ? names.join(', ') : 'read only';
}

function userRow(u) {
  const actions = [btn('user-edit', 'Edit', () => openUserForm(u))];
  if (u.role !== 2) actions.push(btn('user-toggle', u.disabled ? 'Enable' : 'Disable', () => toggle(u)));
  if (u.role === 0) actions.push(btn('user-delete', 'Delete', () => remove(u), 'danger'));
  return h('tr', { dataset: { testid: 'user-row', name: u.username, id: String(u.id) } },
    h('td', {}, h('strong', { text: u.username })),
    h('td', { 'data-label': 'Role', text: ROLES[u.role] || String(u.role) }),
    h('td', { 'data-label': 'Base path', text: u.base_path || '/' }),
    h('td', { 'data-label': 'May', class: 'small', text: bitsText(u) }),
    h('td', { 'data-label': 'Status' }, h('span', { class: 'status ' + (u.disabled ? 'off' : 'ok'), text: u.disabled ? 'disabled' : 'enabled' })),
    h('td', { class: 'row-actions' }, ...actions));
}

const refresh = () => window.dispatchEvent(new CustomEvent('panlist:manage', { detail: 'users' }));

function toggle(u) {
  return adminAction({
    call: () => api('/admin/user/update', { id: u.id, disabled: !u.disabled }),
    done: u.disabled ? `${u.username} enabled` : `${u.username} disabled; their sessions have ended`, page: 'users' });
}

function remove(u) {
  return adminAction({
    confirm: ['Delete user', `Delete ${u.username}? Their sessions and WebDAV access end at once. Files are not touched.`],
    call: () => api('/admin/user/delete', {}, { query: { id: u.id } }),
    done: 'User deleted', page: 'users' });
}

async function openUserForm(u) {
  const isNew = !u, isGuest = u && u.role === 1, isAdminUser = u && u.role === 2;
  const fields = [
    { name: 'username', label: 'User name', type: 'string', value: u ? u.username : '', disabled: isGuest, required: !isGuest },
    { name: 'password', label: isNew ? 'Password' : 'New password', type: 'password', value: '', disabled: isGuest, required: isNew,
      help: isNew ? '' : (isGuest ? 'The guest is whoever comes without logging in; it has no password.'
                                  : 'Leave empty to keep the current password. A new one ends this user\'s sessions.') },
    { name: 'base_path', label: 'Base path', type: 'string', value: u ? u.base_path : '/', disabled: isAdminUser,
      help: 'The folder this user sees as their root; nothing outside it is reachable.' },
  ];
  if (!isAdminUser) {
    fields.push({ name: 'disabled', label: 'Disabled', type: 'bool', value: u ? u.disabled : false });
    fields.push({ heading: 'Permissions' });
    for (const [bit, label, help] of BITS) {
      fields.push({ name: 'perm-' + bit, label, help, type: 'bool', value: u ? (u.permission & (1 << bit)) !== 0 : false });
    }
  }
  const saved = await openRecordForm({
    title: isNew ? 'Add user' : `Edit ${u.username}`,
    fields,
    save: async (v) => {
      const rec = u ? { id: u.id } : {};
      if (!isGuest) rec.username = v.username.trim();
      if (v.password) rec.password = v.password;
      if (!isAdminUser) {
        rec.base_path = v.base_path.trim() || '/';
        rec.disabled = v.disabled;
        let perm = u ? (u.permission & ~BITS.reduce((m, [b]) => m | (1 << b), 0)) : 0;   // keep bits not shown here
        for (const [bit] of BITS) if (v['perm-' + bit]) perm |= 1 << bit;
        rec.permission = perm;
      }
      await api(isNew ? '/admin/user/create' : '/admin/user/update', rec);
    },
  });
  if (saved) { toast('User saved'); refresh(); }
}
