// Modal dialogs built on <dialog>: prompt, confirm, a read-only text box (links), a choice among options,
// a notice with a link, and the folder picker.
// Escape closes every dialog (the browser's own behaviour for modal <dialog>), resolving to null/false.
import { api } from './api.js';
import { passwordFor, navigate } from './state.js';
import { $, h, clear, joinPath, parentPath } from './util.js';
import { icon } from './icons.js';

/** Shared implementation of #dialog. Resolves to the input's value / true, or null when cancelled. */
/**
 * Opens the modal <dialog> `dlg` and resolves once, to the first result given to `finish`; Escape (or a close
 * from elsewhere) resolves to null. `handlers(finish)` lists the [element, 'onxxx', handler] to set while the
 * dialog is open (unset when it resolves); `opened()` runs once it shows (focus, first load).
 */
function openModal(dlg, handlers, opened) {
  return new Promise((resolve) => {
    let done = false;
    let set = [];
    const finish = (result) => {
      if (done) return;
      done = true;
      for (const [el, prop] of set) el[prop] = null;
      dlg.onclose = null;
      if (dlg.open) dlg.close();
      resolve(result);
    };
    set = handlers(finish);
    for (const [el, prop, fn] of set) el[prop] = fn;
    dlg.onclose = () => finish(null);
    dlg.showModal();
    opened();
  });
}

function runDialog({ title, message = '', input = false, value = '', okText = 'OK', danger = false,
                     selectStem = false, readonly = false, secret = false }) {
  const dlg = $('#dialog'), form = $('#dialog-form'), field = $('#dialog-input');
  const ok = $('#dialog-ok'), cancel = $('#dialog-cancel');
  if (dlg.open) dlg.close();
  $('#dialog-title').textContent = title;
  $('#dialog-message').textContent = message;
  $('#dialog-message').hidden = !message;
  field.hidden = !input;
  field.type = secret ? 'password' : 'text';
  field.readOnly = readonly;
  field.value = value;
  ok.textContent = okText;
  ok.classList.toggle('danger', danger);
  cancel.hidden = readonly;

  return openModal(dlg, (finish) => [
    [form, 'onsubmit', (e) => { e.preventDefault(); finish(input ? field.value : true); }],
    [cancel, 'onclick', () => finish(null)],
  ], () => {
    if (input) {
      field.focus();
      // Pre-select the name without its extension, like a file manager does.
      const dot = value.lastIndexOf('.');
      if (selectStem && dot > 0) field.setSelectionRange(0, dot); else field.select();
    } else {
      ok.focus();
    }
  });
}

/** Asks for a text; resolves to the trimmed text (a secret as typed), or null when cancelled or empty. */
export async function promptText(title, { value = '', message = '', okText = 'OK', selectStem = false, secret = false } = {}) {
  const v = await runDialog({ title, message, input: true, value, okText, selectStem, secret });
  if (v === null) return null;
  const t = secret ? v : v.trim();
  return t === '' ? null : t;
}

/** Asks a yes/no question; resolves to true or false. */
export async function confirmDialog(title, message, { okText = 'OK', danger = false } = {}) {
  return (await runDialog({ title, message, okText, danger })) === true;
}

/** Shows a text in a selected read-only field (used when the clipboard is not available). */
export async function showText(title, text, message = '') {
  await runDialog({ title, message, input: true, value: text, okText: 'Close', readonly: true });
}

/**
 * Shared implementation of #choice-dialog: a message, optional radio `options` ([{ value, label, help }],
 * `value` picked at first) and an optional in-page `link` ({ path, text, testid }) beside the buttons.
 * Resolves to the picked option (or true without options), or null when cancelled or the link was followed.
 */
function runChoice({ title, message = '', options = [], value = '', okText = 'OK', cancelText = 'Cancel', link = null }) {
  const dlg = $('#choice-dialog'), form = $('#choice-form'), box = $('#choice-options');
  const ok = $('#choice-ok'), cancel = $('#choice-cancel'), a = $('#choice-link');
  if (dlg.open) dlg.close();
  $('#choice-title').textContent = title;
  $('#choice-message').textContent = message;
  $('#choice-message').hidden = !message;
  clear(box, options.map((o, i) => h('label', { class: 'choice' },
    h('input', { type: 'radio', name: 'choice', value: o.value, checked: o.value === value || (!value && i === 0),
                 dataset: { testid: 'choice-' + o.value } }),
    h('span', {}, h('strong', { text: o.label }), o.help ? h('small', { class: 'help', text: o.help }) : null))));
  box.hidden = !options.length;
  ok.textContent = okText;
  cancel.textContent = cancelText;
  cancel.hidden = !cancelText;
  a.hidden = !link;
  ok.classList.toggle('primary', !link);         // with a link, the link is the way forward
  a.classList.toggle('primary', !!link);
  if (link) {
    a.textContent = link.text;
    a.href = link.path;
    a.dataset.testid = link.testid || 'choice-link';
  }
  return openModal(dlg, (finish) => [
    [form, 'onsubmit', (e) => {
      e.preventDefault();
      const picked = box.querySelector('input:checked');
      finish(options.length ? (picked ? picked.value : null) : true);
    }],
    [cancel, 'onclick', () => finish(null)],
    [a, 'onclick', (e) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      finish(null);
      navigate(link.path);
    }],
  ], () => (box.querySelector('input:checked') || (link ? a : ok)).focus());
}

/** Asks to pick one of `options` ([{ value, label, help }]); resolves to its value, or null when cancelled. */
export function chooseOption(title, message, options, { value = '', okText = 'OK' } = {}) {
  return runChoice({ title, message, options, value, okText });
}

/** A message with an in-page link ({ path, text, testid }) beside Close. */
export async function noticeWithLink(title, message, link) {
  await runChoice({ title, message, okText: 'Close', cancelText: '', link });
}

/**
 * The folder picker: browses folders with /api/fs/dirs and resolves to the chosen folder's path,
 * or null when cancelled. Entries are buttons with data-testid="picker-entry" and data-name.
 */
export function pickFolder({ title = 'Choose a folder', start = '/', okText = 'Choose this folder' } = {}) {
  const dlg = $('#picker'), list = $('#picker-list'), errBox = $('#picker-error');
  const okBtn = $('#picker-ok'), upBtn = $('#picker-up'), cancelBtn = $('#picker-cancel');
  if (dlg.open) dlg.close();
  $('#picker-title').textContent = title;
  okBtn.textContent = okText;
  let current = '/';
  let seq = 0;

  async function load(path) {
    const mine = ++seq;
    current = path;
    $('#picker-path').textContent = path;
    upBtn.disabled = path === '/';
    errBox.hidden = true;
    clear(list).append(h('li', { class: 'muted', text: 'Loading…' }));
    try {
      const dirs = await api('/fs/dirs', { path, password: passwordFor(path), force_root: false });
      if (mine !== seq) return;
      clear(list);
      if (!dirs.length) list.append(h('li', { class: 'muted', text: 'No sub-folders' }));
      const frag = document.createDocumentFragment();
      for (const d of dirs) {
        frag.append(h('li', {}, h('button', {
          type: 'button', class: 'picker-entry', dataset: { testid: 'picker-entry', name: d.name },
          onclick: () => load(joinPath(path, d.name)),
        }, h('span', { class: 'icon k-folder' }, icon('folder')), d.name)));
      }
      list.append(frag);
    } catch (e) {
      if (mine !== seq) return;
      clear(list);
      errBox.textContent = e.message;
      errBox.hidden = false;
    }
  }

  return openModal(dlg, (finish) => [
    [okBtn, 'onclick', () => finish(current)],
    [upBtn, 'onclick', () => load(parentPath(current))],
    [cancelBtn, 'onclick', () => finish(null)],
  ], () => load(start).then(() => okBtn.focus()));
}
