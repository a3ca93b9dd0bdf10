// Pieces shared by the Manage pages (storages, users, folder rules, settings): the page with its table,
// row buttons, an admin action (confirm, call, toast, re-render), one builder for a labelled form field
// (with its help and its own error line), the checks and error placement every form uses, and a small
// form dialog for records whose fields are known (users, folder rules). Record field ids are "rec-<name>";
// the save button is #record-save.
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

// ---------------------------------------------------------------------------------------------
// Fields

/** "cache_expiration" → "Cache expiration", "base_url" → "Base URL"; CamelCase names stay as they are. */
export const pretty = (name) => String(name).split('_').map(w => /^(url|id|api|otp)$/i.test(w) ? w.toUpperCase() : w)
  .join(' ').replace(/^./, c => c.toUpperCase());

/** Whether a setting's name says it holds a secret (its field is a password field). */
export const isSecret = (name) => /secret|password|private_?key|token/i.test(name);

/**
 * One labelled field. `f`: { id, name, label, key (the API's name, shown small when the label's words
 * do not give it away), type: 'string'|'password'|'text' (a textarea)|'number'|'bool'|'select'|'datetime' (local), value, options
 * ([[value, words]…] for a select), help, required, disabled, placeholder, rows }.
 * The input gets `id`; under it a hidden error line (#<id>-error) waits for showFieldError.
 */
export function formField(f) {
  const value = f.value === null || f.value === undefined || Number.isNaN(f.value) ? '' : f.value;
  const helpId = f.help ? f.id + '-help' : '';
  const attrs = { id: f.id, name: f.name, disabled: !!f.disabled, required: !!f.required && f.type !== 'bool',
    placeholder: f.placeholder || false, 'aria-describedby': [helpId, f.id + '-error'].filter(Boolean).join(' '),
    dataset: { kind: f.type || 'string' } };
  let input;
  switch (f.type) {
    case 'bool': input = h('input', { ...attrs, type: 'checkbox', checked: value === true || value === 'true' }); break;
    case 'number': input = h('input', { ...attrs, type: 'number', step: 'any', value: String(value) }); break;
    case 'datetime': input = h('input', { ...attrs, type: 'datetime-local', value: String(value) }); break;
    case 'text': input = h('textarea', { ...attrs, rows: f.rows || 2, value: String(value) }); break;
    case 'select': {
      const opts = (f.options || []).slice();
      if (!opts.some(([v]) => v === String(value))) opts.push([String(value), String(value) || '—']);
      input = h('select', attrs, ...opts.map(([v, words]) => h('option', { value: v, text: words })));
      input.value = String(value);
      break;
    }
    default:
      input = h('input', { ...attrs, type: f.type === 'password' ? 'password' : 'text', autocomplete: 'off', value: String(value) });
  }
  const label = h('label', { for: f.id },
    h('span', { text: f.label }),
    f.required && f.type !== 'bool' ? h('span', { class: 'req', 'aria-hidden': 'true', text: ' *' }) : null,
    f.key && !f.label.startsWith(pretty(f.key)) ? h('code', { class: 'key', text: f.key }) : null);
  const help = f.help ? h('small', { class: 'help', id: helpId, text: f.help }) : null;
  const error = h('p', { class: 'field-error', id: f.id + '-error', hidden: true });
  return f.type === 'bool'
    ? h('div', { class: 'field check' }, input, label, help, error)
    : h('div', { class: 'field' }, label, input, error, help);
}

/** Shows `message` under the field of `input` (opening a collapsed section around it) and focuses it. */
export function showFieldError(input, message) {
  const line = document.getElementById(input.id + '-error');
  if (line) { line.textContent = message; line.hidden = false; }
  input.setAttribute('aria-invalid', 'true');
  for (let d = input.closest('details'); d; d = d.parentElement.closest('details')) d.open = true;
  input.focus();
  input.scrollIntoView({ block: 'center' });
}

/** Hides every field error and the form's own error line under `root`. */
export function clearFormErrors(root, formError) {
  for (const line of root.querySelectorAll('.field-error')) { line.hidden = true; line.textContent = ''; }
  for (const input of root.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  formError.hidden = true;
  formError.textContent = '';
}

/** The error at the top of a form (visible without scrolling). */
export function showFormError(formError, message) {
  formError.textContent = message;
  formError.hidden = false;
  formError.scrollIntoView({ block: 'nearest' });
}

/** Checks the required fields under `root` in the browser; shows the first one missing and returns false. */
export function checkRequired(root) {
  for (const input of root.querySelectorAll('input[required], select[required], textarea[required]')) {
    if (input.disabled || input.value.trim() !== '') continue;
    const label = root.querySelector(`label[for="${CSS.escape(input.id)}"] span`);
    showFieldError(input, `${label ? label.textContent : input.name} is required.`);
    return false;
  }
  return true;
}

/**
 * Puts a server's refusal where it belongs: next to the field it names (the message starts with the
 * field's name or its label, e.g. "ClientSecret is required. …"), else at the top of the form.
 * `fields` is [{ name, label, id }].
 */
export function placeError(message, fields, formError) {
  const text = String(message || 'Something went wrong');
  const starts = (word) => word && text.toLowerCase().startsWith(word.toLowerCase()) && !/\w/.test(text.charAt(word.length));
  let best = null;
  for (const f of fields) {
    const len = Math.max(starts(f.name) ? f.name.length : 0, starts(f.label) ? f.label.length : 0);
    if (len && (!best || len > best.len)) best = { f, len };
  }
  const input = best && document.getElementById(best.f.id);
  if (!input || input.disabled) { showFormError(formError, text); return; }
  // Next to the field, its first line without a trailing lead-in to a list ("… The settings are:").
  // A message led by the field's label ("Links: …", put there by the form to route it) is shown without it.
  let line = text.split('\n')[0];
  if (best.f.label && line.startsWith(best.f.label + ': ')) line = line.slice(best.f.label.length + 2);
  showFieldError(input, line.replace(/\s*[^.]*:$/, '') || line);
}

// ---------------------------------------------------------------------------------------------
// Record forms (users, folder rules)

/**
 * fields: [{ name, label, type: 'string'|'password'|'text'|'bool', value, help, required, disabled, placeholder }]
 * Headings can be mixed in as { heading: 'Text' }.
 * save(values) is called with { name: value } (bools as booleans); the dialog closes when it resolves.
 * Required fields are checked first; an error whose message starts with a field's name or label is shown
 * next to that field, anything else at the top of the form.
 */
export function openRecordForm({ title, fields, save, saveText = 'Save' }) {
  const dlg = $('#record-dialog'), form = $('#record-form'), box = $('#record-fields'), err = $('#record-error');
  const inputs = fields.filter(f => !f.heading).map(f => ({ ...f, id: 'rec-' + f.name }));
  $('#record-title').textContent = title;
  $('#record-save').textContent = saveText;
  clear(box, fields.map(f => f.heading ? h('h3', { class: 'form-heading', text: f.heading }) : formField({ ...f, id: 'rec-' + f.name })));
  clearFormErrors(form, err);
  return new Promise((resolve) => {
    const finish = (v) => { form.onsubmit = null; $('#record-cancel').onclick = null; dlg.onclose = null; if (dlg.open) dlg.close(); resolve(v); };
    form.onsubmit = async (e) => {
      e.preventDefault();
      clearFormErrors(form, err);
      if (!checkRequired(box)) return;
      const values = {};
      for (const f of inputs) {
        const input = document.getElementById(f.id);
        values[f.name] = f.type === 'bool' ? input.checked : input.value;
      }
      const btn = $('#record-save');
      btn.disabled = true;
      try {
        await save(values);
        finish(true);
      } catch (ex) {
        placeError(ex.message, inputs, err);
      } finally {
        btn.disabled = false;
      }
    };
    $('#record-cancel').onclick = () => finish(false);
    dlg.onclose = () => finish(false);
    dlg.showModal();
    box.scrollTop = 0;
    const first = box.querySelector('input:not([disabled]), textarea:not([disabled])');
    if (first) first.focus();
  });
}
