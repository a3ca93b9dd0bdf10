// Share links of whoever is logged in (an admin: everyone's): the form that makes one (the file list's Share
// action, for users with the share permission) or edits one, the dialog that hands out its link, and the
// Shares page at /@shares (link, items, state, opens, expiry; copy, edit, disable/enable, delete).
// Owner routes /api/share/* (docs/API.md "Shares").
import { api, getToken } from './api.js';
import { state, isAdmin, can, canShare, PERM, ROLE_GUEST, internalLink } from './state.js';
import { $, h, clear, formatDate, showError, clearError, toast, copyText } from './util.js';
import { openRecordForm, rowButton as btn } from './forms.js';
import { confirmDialog } from './dialogs.js';

const STATE_WORDS = { active: 'Active', disabled: 'Disabled', expired: 'Expired', exhausted: 'Used up', unavailable: 'Unavailable' };
const STATE_TONE = { active: 'ok', disabled: 'off', expired: 'off', exhausted: 'off', unavailable: 'bad' };
const plural = (n, one, many = one + 's') => `${n} ${n === 1 ? one : many}`;

/** A share's full link on this site. */
export const shareLink = (s) => location.origin + (s.url || '/@s/' + encodeURIComponent(s.id));

/** "2027-01-31T18:00" (the local time a datetime-local field shows) of an RFC 3339 time; "" for none. */
function localInput(iso) {
  const d = new Date(iso || '');
  if (!iso || isNaN(d)) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// The form's fields, by the API's names (the server's refusals start with them: "expires: … has passed").
const LABELS = { id: 'Link id', pwd: 'Password', expires: 'Expires', max_accessed: 'Opens allowed', readme: 'Readme', remark: 'Note' };

/**
 * The share form. `files` (paths as the user sees them) for a new share, or `share` (from share/list) to edit;
 * `folderPassword`: a folder password the user typed for where the files are (sent for guarded folders).
 * Resolves to the saved share, or null when cancelled. A new share's link is shown once it is made.
 */
export async function openShareForm({ files = [], share = null, folderPassword = '' } = {}) {
  const editing = !!share;
  const names = (editing ? share.files : files).map(f => f.split('/').filter(Boolean).pop() || '/');
  const what = names.length === 1 ? `“${names[0]}”` : plural(names.length, 'item');
  const fields = [];
  if (!editing && (isAdmin() || can(PERM.customShareId))) {
    fields.push({ name: 'id', label: LABELS.id, type: 'string', value: '', placeholder: 'random',
      help: 'The end of the link (/@s/…). Leave empty for a random one; 3 to 64 letters, digits, _ and -.' });
  }
  fields.push({ name: 'pwd', label: editing && share.has_password ? 'New password' : LABELS.pwd, type: 'password', value: '',
    help: editing && share.has_password ? 'Leave empty to keep the password. A new one ends the visits opened with the old one.'
      : 'Visitors must enter it to open the link. Leave empty for none.' });
  if (editing && share.has_password) fields.push({ name: 'remove_pwd', label: 'Remove the password', type: 'bool', value: false });
  fields.push({ name: 'expires', label: LABELS.expires, type: 'datetime', value: editing ? localInput(share.expires) : '',
    help: 'Your local time. Leave empty for never.' });
  fields.push({ name: 'max_accessed', label: LABELS.max_accessed, type: 'number', value: editing && share.max_accessed ? share.max_accessed : '',
    placeholder: 'no limit', help: 'How many times the link may be opened (each visit that opens it counts once). Empty or 0: no limit.' });
  if (editing) {
    fields.push({ name: 'reset_accessed', label: `Count the opens from zero again (opened ${plural(share.accessed, 'time')} so far)`,
      type: 'bool', value: false });
  }
  fields.push({ name: 'allow_preview', label: 'Allow previews', type: 'bool', value: editing ? share.allow_preview : true,
    help: 'Pictures, video, audio, text and PDF open in the browser.' });
  fields.push({ name: 'allow_download', label: 'Allow downloads', type: 'bool', value: editing ? share.allow_download : true,
    help: 'Every file gets a Download button.' });
  fields.push({ name: 'readme', label: LABELS.readme, type: 'text', rows: 3, value: editing ? share.readme : '',
    help: 'Optional: Markdown shown under the files at the top of the share.' });
  fields.push({ name: 'remark', label: LABELS.remark, type: 'string', value: editing ? share.remark : '',
    help: 'Optional: for you, on the Shares page; visitors do not see it.' });

  const initialExpiry = editing ? localInput(share.expires) : '';
  let saved = null;
  const ok = await openRecordForm({
    title: editing ? `Edit share ${share.id} (${what})` : `Share ${what}`,
    saveText: editing ? 'Save' : 'Create link',
    fields,
    save: async (v) => {
      const body = {
        allow_preview: v.allow_preview, allow_download: v.allow_download, readme: v.readme, remark: v.remark.trim(),
      };
      // The version the form was made from: a share changed meanwhile is not overwritten (the server says so).
      if (editing) { body.id = share.id; if (share.version) body.version = share.version; }
      else {
        body.files = files;
        if (folderPassword) body.folder_password = folderPassword;
        if (v.id !== undefined && v.id.trim()) body.id = v.id.trim();
      }
      if (v.pwd) body.pwd = v.pwd;
      else if (v.remove_pwd) body.pwd = '';
      if (!editing || v.expires !== initialExpiry) {
        if (v.expires) {
          const d = new Date(v.expires);
          if (isNaN(d)) throw new Error(`${LABELS.expires}: give a date and a time`);
          if (d.getTime() <= Date.now()) throw new Error(`${LABELS.expires}: this time has passed; choose one in the future`);
          body.expires = d.toISOString();
        } else body.expires = '';
      }
      const max = String(v.max_accessed).trim();
      if (max !== '' && !/^\d+$/.test(max)) throw new Error(`${LABELS.max_accessed}: a whole number (0 or empty: no limit)`);
      body.max_accessed = max === '' ? 0 : Number(max);
      if (v.reset_accessed) body.reset_accessed = true;
      try {
        saved = await api(editing ? '/share/update' : '/share/create', body);
      } catch (e) {
        // "pwd: …", "expires: …": said next to that field, in its words.
        const m = /^(id|pwd|expires|max_accessed|readme|remark):\s*(.*)$/s.exec(e.message || '');
        if (m) throw new Error(`${m[1] === 'pwd' && editing && share.has_password ? 'New password' : LABELS[m[1]]}: ${m[2]}`);
        throw e;
      }
    },
  });
  if (!ok || !saved) return null;
  if (editing) toast('Share saved');
  else await showShareLink(saved, 'Share link created');
  return saved;
}

/** What a share allows, in a few words ("password · until … · 5 opens"). */
function terms(s) {
  const t = [];
  if (s.has_password) t.push('password');
  if (s.expires && formatDate(s.expires)) t.push('until ' + formatDate(s.expires));
  if (s.max_accessed) t.push(plural(s.max_accessed, 'open') + ' allowed');
  if (!s.allow_download) t.push(s.allow_preview ? 'view only' : 'list only');
  return t.length ? t.join(' · ') : 'no password, no expiry, no limit';
}

/** The dialog with a share's link and a Copy button. */
export function showShareLink(s, title = 'Share link') {
  const dlg = $('#share-link-dialog'), field = $('#share-link-url'), note = $('#share-link-copied');
  if (dlg.open) dlg.close();
  $('#share-link-title').textContent = title;
  $('#share-link-terms').textContent = terms(s);
  field.value = shareLink(s);
  note.textContent = '';
  return new Promise((resolve) => {
    const copy = async () => {
      const done = await copyText(field.value);
      field.select();
      note.textContent = done ? 'Copied.' : 'The browser did not allow copying: the link is selected, copy it with Ctrl+C (⌘C).';
    };
    const finish = () => { $('#share-link-copy').onclick = null; $('#share-link-close').onclick = null; $('#share-link-manage').onclick = null;
      dlg.onclose = null; if (dlg.open) dlg.close(); resolve(); };
    $('#share-link-copy').onclick = copy;
    $('#share-link-close').onclick = finish;
    $('#share-link-manage').onclick = (e) => { if (e.button === 0 && !e.metaKey && !e.ctrlKey && !e.shiftKey) finish(); };
    $('#share-link-manage').hidden = !$('#shares-view').hidden;
    dlg.onclose = finish;
    dlg.showModal();
    field.focus();
    field.select();
  });
}

// ---------------------------------------------------------------------------------------------
// The Shares page

const view = { active: false, seq: 0 };

export function initShares() {
  internalLink($('#share-link-manage'));
}

export function hideShares() { view.active = false; view.seq++; }

/** Renders /@shares (called by the router). */
export async function showShares() {
  view.active = true;
  const mine = ++view.seq;
  document.title = 'Shares – ' + (state.settings.site_title || 'PanList');
  const body = $('#shares-body');
  $('#shares-note').textContent = isAdmin() ? 'Every user\'s share links. Make one with the Share button of a file or folder in the file list.'
    : 'Your share links. Make one with the Share button of a file or folder in the file list.';
  if (!state.me || state.me.role === ROLE_GUEST || !getToken()) {
    $('#shares-note').textContent = '';
    clear(body, empty('Log in to see your shares', 'Share links belong to the user who made them; the guest has none.'));
    return;
  }
  if (!body.children.length) clear(body, h('p', { class: 'muted', text: 'Loading…' }));
  let data;
  try { data = await api('/share/list', {}); } catch (e) {
    if (mine !== view.seq) return;
    clear(body);
    showError(e.message);
    return;
  }
  if (mine !== view.seq) return;
  clearError();
  const shares = data.content || [];
  if (!shares.length) {
    clear(body, canShare()
      ? empty('No share links yet', 'Share a file or folder with the Share button in its row of the file list (or select several and press Share); its link appears here.')
      : empty('No share links', 'You may not make share links. An admin can give you the share permission.'));
    return;
  }
  const admin = isAdmin();
  const headers = ['Link', 'Items', 'State', 'Opens', 'Expires', ...(admin ? ['Owner'] : []), ''];
  clear(body, h('div', { class: 'table-wrap' }, h('table', { id: 'share-table', class: 'data shares' },
    h('thead', {}, h('tr', {}, ...headers.map(t => h('th', { text: t })))),
    h('tbody', {}, ...shares.map(s => shareRow(s, admin))))));
}

function empty(title, text) {
  return h('div', { class: 'tasks-empty', dataset: { testid: 'shares-empty' } }, h('h2', { text: title }), h('p', { class: 'muted', text }));
}

function shareRow(s, admin) {
  const link = shareLink(s);
  const items = s.files.length <= 3 ? s.files : [...s.files.slice(0, 3), `and ${s.files.length - 3} more`];
  const opens = `${s.accessed} / ${s.max_accessed ? s.max_accessed : '∞'}`;
  return h('tr', { dataset: { testid: 'share-row', id: s.id, state: s.state } },
    h('td', { class: 'share-link-cell' },
      h('a', { href: link, target: '_blank', rel: 'noopener', dataset: { testid: 'share-row-link' } }, h('strong', { text: s.id })),
      h('div', { class: 'muted small', text: terms(s) }),
      s.remark ? h('div', { class: 'small', text: s.remark }) : null),
    h('td', { 'data-label': 'Items', class: 'share-items' }, ...items.map(f => h('div', { class: 'small', title: f, text: f }))),
    h('td', { 'data-label': 'State' }, h('span', { class: 'status ' + (STATE_TONE[s.state] || 'off'), title: s.state_message || false,
      dataset: { testid: 'share-state' }, text: STATE_WORDS[s.state] || s.state })),
    h('td', { 'data-label': 'Opens', class: 'num', title: s.max_accessed ? false : 'no limit', dataset: { testid: 'share-opens' }, text: opens }),
    h('td', { 'data-label': 'Expires', class: 'small' }, s.expires && formatDate(s.expires) ? formatDate(s.expires) : h('span', { class: 'muted', text: 'never' })),
    admin ? h('td', { 'data-label': 'Owner', text: s.creator || '—' }) : null,
    h('td', { class: 'row-actions' },
      btn('share-copy', 'Copy link', () => copyRowLink(s)),
      btn('share-edit', 'Edit', async () => { if (await openShareForm({ share: s })) refresh(); }),
      btn('share-toggle', s.disabled ? 'Enable' : 'Disable', () => toggle(s)),
      btn('share-delete', 'Delete', () => remove(s), 'danger')));
}

const refresh = () => { if (view.active) showShares(); };

async function copyRowLink(s) {
  if (await copyText(shareLink(s))) toast('Link copied');
  else await showShareLink(s);
}

async function toggle(s) {
  try {
    await api('/share/' + (s.disabled ? 'enable' : 'disable'), { id: s.id });
    toast(s.disabled ? 'Share enabled' : 'Share disabled: its link no longer opens');
  } catch (e) { showError(e.message); }
  refresh();
}

async function remove(s) {
  if (!await confirmDialog('Delete share', `Delete the share ${s.id}? Its link stops working at once. The files are not touched.`,
    { okText: 'Delete', danger: true })) return;
  try {
    await api('/share/delete', { id: s.id });
    toast('Share deleted');
  } catch (e) { showError(e.message); }
  refresh();
}
