// Uploads: a file picker (#upload-input) and drag-and-drop onto the page, several files at once.
// Each file is one XMLHttpRequest `PUT /api/fs/put` whose body is the File itself, so the browser
// streams it from disk (never read into memory). Progress per file and overall; cancel per file.
import { $, h, joinPath, encodePath, formatSize } from './util.js';
import { getToken, unwrap } from './api.js';
import { passwordFor } from './state.js';

const CONCURRENCY = 3;
const queue = [];       // every upload of the panel: {file, path, state, loaded, xhr, row, bar, status}
let running = 0;
let onBatchDone = () => {};

/**
 * Sets up the picker and drag-and-drop. `targetDir()` gives the folder to upload into (or null when
 * uploads are not possible here); `done(dirs)` is called with the folders touched once a batch ends.
 */
export function initUploads({ targetDir, done }) {
  onBatchDone = done;
  const input = $('#upload-input');
  input.addEventListener('change', () => {
    const dir = targetDir();
    if (dir !== null) addFiles([...input.files].map(f => ({ file: f, rel: f.name })), dir);
    input.value = '';
  });
  $('#uploads-close').addEventListener('click', () => {
    // Closing keeps running uploads; it removes finished ones from the list.
    for (const u of [...queue]) if (u.state !== 'queued' && u.state !== 'uploading') forget(u);
    if (!queue.length) $('#uploads').hidden = true;
    updateTotal();
  });

  // Drag and drop anywhere on the page.
  const zone = $('#drop-zone');
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  window.addEventListener('dragenter', (e) => {
    if (!hasFiles(e) || targetDir() === null) return;
    e.preventDefault();
    depth++;
    zone.hidden = false;
  });
  window.addEventListener('dragover', (e) => {
    if (!hasFiles(e) || targetDir() === null) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  window.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; zone.hidden = true; } });
  window.addEventListener('drop', async (e) => {
    depth = 0;
    zone.hidden = true;
    if (!hasFiles(e)) return;
    e.preventDefault();
    const dir = targetDir();
    if (dir === null) return;
    addFiles(await droppedFiles(e.dataTransfer), dir);
  });
}

/** Files of a drop, with dropped folders walked recursively (relative paths keep the structure). */
async function droppedFiles(dt) {
  const entries = [...(dt.items || [])].map(i => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  if (!entries.length || entries.some(e => !e)) return [...dt.files].map(f => ({ file: f, rel: f.name }));
  const out = [];
  async function walk(entry, prefix) {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ file, rel: prefix + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {      // readEntries returns the children in batches until an empty one
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const child of batch) await walk(child, prefix + entry.name + '/');
      }
    }
  }
  for (const entry of entries) {
    try { await walk(entry, ''); } catch { /* unreadable entry: skipped */ }
  }
  return out;
}

/** Queues files ({file, rel}) for upload into `dir`. */
export function addFiles(list, dir) {
  if (!list.length) return;
  const panel = $('#uploads');
  panel.hidden = false;
  for (const { file, rel } of list) {
    const u = { file, path: joinPath(dir, rel), dir, state: 'queued', loaded: 0, xhr: null };
    const bar = h('progress', { max: file.size || 1, value: 0 });
    const status = h('span', { class: 'upload-status', text: 'waiting' });
    const cancel = h('button', {
      type: 'button', class: 'icon-btn', 'aria-label': 'Cancel upload of ' + rel, title: 'Cancel',
      dataset: { testid: 'upload-cancel' }, text: '×', onclick: () => cancelUpload(u),
    });
    u.row = h('li', { dataset: { testid: 'upload-item', name: rel, state: 'queued' } },
      h('span', { class: 'upload-name', text: rel, title: u.path }),
      h('span', { class: 'upload-size muted', text: formatSize(file.size) }),
      bar, status, cancel);
    u.bar = bar; u.status = status; u.cancel = cancel;
    queue.push(u);
    $('#uploads-list').append(u.row);
  }
  updateTotal();
  pump();
}

function setState(u, state, text) {
  u.state = state;
  u.row.dataset.state = state;
  u.status.textContent = text;
  if (state !== 'queued' && state !== 'uploading') u.cancel.hidden = true;
}

function pump() {
  while (running < CONCURRENCY) {
    const u = queue.find(x => x.state === 'queued');
    if (!u) break;
    start(u);
  }
  if (running === 0 && !queue.some(x => x.state === 'queued')) {
    const touched = [...new Set(queue.filter(x => x.state === 'done' && !x.reported).map(x => { x.reported = true; return x.dir; }))];
    if (touched.length) onBatchDone(touched);
  }
}

function start(u) {
  running++;
  setState(u, 'uploading', '0%');
  const xhr = new XMLHttpRequest();
  u.xhr = xhr;
  xhr.open('PUT', '/api/fs/put');
  const token = getToken();
  if (token) xhr.setRequestHeader('Authorization', token);
  xhr.setRequestHeader('File-Path', encodePath(u.path));
  xhr.setRequestHeader('Content-Type', 'application/octet-stream');
  if (u.file.lastModified) xhr.setRequestHeader('Last-Modified', String(u.file.lastModified));
  // The folder password, when the folder has one, as UTF-8 bytes (a header value is a byte string).
  const pw = passwordFor(u.dir);
  if (pw) xhr.setRequestHeader('Password', String.fromCharCode(...new TextEncoder().encode(pw)));
  xhr.upload.onprogress = (e) => {
    u.loaded = e.loaded;
    u.bar.value = e.loaded;
    if (e.lengthComputable && e.total) u.status.textContent = Math.floor((e.loaded / e.total) * 100) + '%';
    updateTotal();
  };
  const finish = (state, text) => {
    if (u.state !== 'uploading') return;
    running--;
    setState(u, state, text);
    if (state === 'done') { u.loaded = u.file.size; u.bar.value = u.bar.max; }
    updateTotal();
    pump();
  };
  xhr.onload = () => {
    try {
      unwrap(xhr.responseText, xhr.status);
      finish('done', 'done');
    } catch (e) {
      finish('error', e.message);
      u.status.title = e.message;
    }
  };
  xhr.onerror = () => finish('error', 'network error');
  xhr.onabort = () => finish('cancelled', 'cancelled');
  xhr.send(u.file);
}

function cancelUpload(u) {
  if (u.state === 'uploading' && u.xhr) u.xhr.abort();
  else if (u.state === 'queued') { setState(u, 'cancelled', 'cancelled'); updateTotal(); pump(); }
}

function forget(u) {
  queue.splice(queue.indexOf(u), 1);
  u.row.remove();
}

/** Overall progress: bytes sent of every file that is not cancelled. */
function updateTotal() {
  const live = queue.filter(u => u.state !== 'cancelled');
  const total = live.reduce((s, u) => s + u.file.size, 0);
  const sent = live.reduce((s, u) => s + (u.state === 'done' ? u.file.size : u.loaded), 0);
  const bar = $('#uploads-total');
  bar.max = total || 1;
  bar.value = total ? sent : (live.length && live.every(u => u.state === 'done') ? 1 : 0);
  const done = queue.filter(u => u.state === 'done').length;
  const failed = queue.filter(u => u.state === 'error').length;
  const active = queue.filter(u => u.state === 'uploading' || u.state === 'queued').length;
  $('#uploads-summary').textContent = `${done}/${live.length} done` + (failed ? `, ${failed} failed` : '') +
    (active ? ` · ${formatSize(sent)} of ${formatSize(total)}` : '');
}

/** Whether some upload is still running or waiting (the page warns before leaving). */
export const uploadsBusy = () => queue.some(u => u.state === 'uploading' || u.state === 'queued');
