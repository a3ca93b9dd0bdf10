// Pieces shared by the Manage pages (storages, users, folder rules): the page with its table, row
// buttons, an admin action (confirm, call, toast, re-render), and a small form dialog for records whose
// fields are known (users, folder rules). Form field ids are "rec-<name>"; the save button is #record-save.
import { $, h, clear, showError, toast } from './util.js';
import { confirmDialog } from './dialogs.js';

/** Renders a Manage page: a heading with an "add" button, an optional note, and a table of rows. */
export function managePage({ title, addId, addText, onAdd, note = '', tableId, headers, rows, empty }) {
  const tbody = h('tbody', {}, ...rows);
  if (!rows.length) tbody.append(h('tr', {}, h('td', { colspan: headers.length, class: 'muted', text: empty })));
  clear($('#manage-body'),
    h('div', { class: 'manage-head' },
      h('h1', { text: title }),
      h('button', { type: 'button', id: addId, class: 'primary', text: addText, onclick: onAdd })),
    note ? h('p', { class: 'muted small', text: note }) : null,
    h('div', { class: 'table-wrap' }, h('table', { id: tableId, class: 'data' },
      h('thead', {}, h('tr', {}, ...headers.map(t => h('th', { text: t })))),
      tbody)));
}

/** A button in a table row (`data-testid` for the browser test). */
export const rowButton = (testid, text, onclick, cls = '') => h('button', { type: 'button', class: cls, dataset: { testid }, text, onclick });

/**
 * An admin change from a row: asks `confirm` ([title, message]) first when given, runs `call`, shows
 * `done` (or the error), then re-renders the Manage page `page`.
 */
export async function adminAction({ confirm = null, call, done, page }) {
  if (confirm && !await confirmDialog(confirm[0], confirm[1], { okText: confirm[2] || 'Delete', danger: true })) return;
  try {
    await call();
    toast(done);
  } catch (e) { showError(e.message); }
  window.dispatchEvent(new CustomEvent('panlist:manage', { detail: page }));
}

/**
 * fields: [{ name, label, type: 'text'|'password'|'textarea'|'bool', value, help, disabled, placeholder }]
 * Headings can be mixed in as { heading: 'Text' }.
 * save(values) is called with { name: value } (bools as booleans); the dialog closes when it resolves.
 */
export function openRecordForm({ title, fields, save, saveText = 'Save' }) {
  const dlg = $('#record-dialog'), form = $('#record-form'), box = $('#record-fields'), err = $('#record-error');
  $('#record-title').textContent = title;
  $('#record-save').textContent = saveText;
  err.hidden = true;
  clear(box);
  for (const f of fields) {
    if (f.heading) { box.append(h('h3', { class: 'form-heading', text: f.heading })); continue; }
    const id = 'rec-' + f.name;
    const attrs = { id, name: f.name, disabled: !!f.disabled, placeholder: f.placeholder || '' };
    let input;
    if (f.type === 'bool') input = h('input', { ...attrs, type: 'checkbox', checked: !!f.value });
    else if (f.type === 'textarea') input = h('textarea', { ...attrs, rows: f.rows || 3, value: String(f.value ?? '') });
    else input = h('input', { ...attrs, type: f.type === 'password' ? 'password' : 'text', autocomplete: 'off', value: String(f.value ?? '') });
    const label = h('label', { for: id, text: f.label });
    const help = f.help ? h('small', { class: 'help', text: f.help }) : null;
    box.append(f.type === 'bool' ? h('div', { class: 'field check' }, input, label, help) : h('div', { class: 'field' }, label, input, help));
  }
  return new Promise((resolve) => {
    const finish = (v) => { form.onsubmit = null; $('#record-cancel').onclick = null; dlg.onclose = null; if (dlg.open) dlg.close(); resolve(v); };
    form.onsubmit = async (e) => {
      e.preventDefault();
      const values = {};
      for (const f of fields) {
        if (f.heading) continue;
        const input = box.querySelector(`[id="rec-${CSS.escape(f.name)}"]`);
        values[f.name] = f.type === 'bool' ? input.checked : input.value;
      }
      const btn = $('#record-save');
      btn.disabled = true;
      try {
        await save(values);
        finish(true);
      } catch (ex) {
        err.textContent = ex.message;
        err.hidden = false;
      } finally {
        btn.disabled = false;
      }
    };
    $('#record-cancel').onclick = () => finish(false);
    dlg.onclose = () => finish(false);
    dlg.showModal();
    const first = box.querySelector('input:not([disabled]), textarea:not([disabled])');
    if (first) first.focus();
  });
}
