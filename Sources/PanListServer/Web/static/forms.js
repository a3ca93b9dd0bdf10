// A small form dialog for admin records (users, folder rules): fields from a list, values read back typed.
// Field ids are "rec-<name>"; the save button is #record-save. Resolves when saved; `save` may throw to
// show its message in the form and keep it open.
import { $, h, clear } from './util.js';

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
