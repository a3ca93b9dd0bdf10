// Uploads: a file picker (#upload-input) and drag-and-drop onto the page, several files at once.
// A file up to the chunk size (setting multipart_chunk_size, MB) is one XMLHttpRequest `PUT /api/fs/put`
// whose body is the File itself, so the browser streams it from disk (never read into memory). A larger
// file goes through the server's tus 1.0 endpoint (/api/fs/tus/) in chunks (File.slice, also streamed):
// it can be paused and resumed, survives network loss (retries with backoff) and a page reload (the
// session's URL is kept in localStorage). Progress per file and overall; cancel per file.
import { $, h, joinPath, encodePath, formatSize } from './util.js';
import { getToken, authHeaders, unwrap } from './api.js';
import { state as appState, passwordFor } from './state.js';

const CONCURRENCY = 3;
// every upload of the panel: {file, path, dir, mode ('put'|'tus'), state, loaded, xhr, row, bar, status, cancel,
// and for tus: pause, key, chunk, location, offset, gen, tries, timer, samples}
const queue = [];
let onBatchDone = () => {};

// States of an upload that is not finished (its row stays when the list is closed).
const LIVE = new Set(['queued', 'uploading', 'retrying', 'paused']);
// States that hold one of the CONCURRENCY slots.
const RUNNING = new Set(['uploading', 'retrying']);
const runningCount = () => queue.filter(x => RUNNING.has(x.state)).length;

// tus
const TUS_VERSION = '1.0.0';
const TUS_ENDPOINT = '/api/fs/tus/';
const STORE_PREFIX = 'panlist.tus.';
const STORE_MAX_AGE = 24 * 3600 * 1000;        // remembered sessions older than this are ignored
const RETRY_DELAYS = [1, 2, 4, 8, 15, 15, 15, 15, 15, 15];   // seconds before each retry; then the upload fails
const REQUEST_TIMEOUT = 30000;                 // HEAD and POST
const STALL_TIMEOUT = 60000;                   // a PATCH sending no bytes for this long is cut and retried
const SPEED_WINDOW = 5000;                     // speed averaged over the last 5 s
const NOTE_TIME = 1500;                        // how long a note ("resuming at 37%") stays before progress text

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
    for (const u of [...queue]) if (!LIVE.has(u.state)) forget(u);
    if (!queue.length) $('#uploads').hidden = true;
    updateTotal();
  });

  // Back online: uploads waiting to retry go at once.
  window.addEventListener('online', () => { for (const u of queue) if (u.state === 'retrying') retryNow(u); });

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
  const chunk = chunkSize();
  if (chunk) sweepStored();
  for (const { file, rel } of list) {
    const mode = chunk && file.size > chunk ? 'tus' : 'put';
    const u = { file, path: joinPath(dir, rel), dir, mode, state: 'queued', loaded: 0, xhr: null };
    const bar = h('progress', { max: file.size || 1, value: 0 });
    const status = h('span', { class: 'upload-status', text: 'waiting' });
    const cancel = h('button', {
      type: 'button', class: 'icon-btn', 'aria-label': 'Cancel upload of ' + rel, title: 'Cancel',
      dataset: { testid: 'upload-cancel' }, text: '×', onclick: () => cancelUpload(u),
    });
    let pause = null;
    if (mode === 'tus') {
      Object.assign(u, { chunk, key: storeKey(u), location: null, offset: 0, gen: 0, tries: 0, timer: 0, samples: [] });
      pause = h('button', {
        type: 'button', class: 'icon-btn upload-pause', 'aria-label': 'Pause upload of ' + rel, title: 'Pause',
        dataset: { testid: 'upload-pause' }, text: 'Pause', onclick: () => togglePause(u),
      });
    }
    u.row = h('li', { dataset: { testid: 'upload-item', name: rel, state: 'queued', mode } },
      h('span', { class: 'upload-name', text: rel, title: u.path }),
      h('span', { class: 'upload-size muted', text: formatSize(file.size) }),
      bar, status, h('span', { class: 'upload-actions' }, pause, cancel));
    if (mode === 'tus') u.row.dataset.offset = '0';
    u.bar = bar; u.status = status; u.cancel = cancel; u.pause = pause;
    queue.push(u);
    $('#uploads-list').append(u.row);
  }
  updateTotal();
  pump();
}

/**
 * The chunk size in bytes when big files go through tus, 0 when every file is one PUT (resumable uploads off,
 * or the public settings unknown: a server without them has no tus endpoint either).
 */
function chunkSize() {
  const s = appState.settings || {};
  if (!('multipart_enabled' in s) || String(s.multipart_enabled).toLowerCase() === 'false') return 0;
  const mb = parseInt(s.multipart_chunk_size, 10);
  return (Number.isFinite(mb) && mb > 0 ? mb : 10) * 1024 * 1024;
}

function setState(u, state, text) {
  u.state = state;
  u.row.dataset.state = state;
  u.status.textContent = text;
  const resumable = u.mode === 'tus' && state === 'error' && !!u.location && u.canResume;
  u.cancel.hidden = !LIVE.has(state) && !resumable;
  if (u.pause) {
    u.pause.hidden = u.mode !== 'tus' || (!LIVE.has(state) && !resumable);
    const resume = state === 'paused' || state === 'error';
    const name = u.row.dataset.name;
    u.pause.textContent = resume ? 'Resume' : 'Pause';
    u.pause.title = resume ? 'Resume' : 'Pause';
    u.pause.setAttribute('aria-label', (resume ? 'Resume upload of ' : 'Pause upload of ') + name);
  }
}

function pump() {
  while (runningCount() < CONCURRENCY) {
    const u = queue.find(x => x.state === 'queued');
    if (!u) break;
    start(u);
  }
  if (runningCount() === 0 && !queue.some(x => x.state === 'queued')) {
    const touched = [...new Set(queue.filter(x => x.state === 'done' && !x.reported).map(x => { x.reported = true; return x.dir; }))];
    if (touched.length) onBatchDone(touched);
  }
}

function start(u) {
  if (u.mode === 'tus') startTus(u);
  else startPut(u);
}

function startPut(u) {
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
  if (u.mode === 'tus') { cancelTus(u); return; }
  if (u.state === 'uploading' && u.xhr) u.xhr.abort();
  else if (u.state === 'queued') { setState(u, 'cancelled', 'cancelled'); updateTotal(); pump(); }
}

function forget(u) {
  queue.splice(queue.indexOf(u), 1);
  u.row.remove();
}

// ---------------------------------------------------------------------------------------------
// tus: POST creates the session (Location), HEAD tells its offset, PATCH appends a chunk, DELETE ends it.

/** A failed tus step: `retry` when it is worth trying again later (network, 5xx), `fallback` to use PUT. */
class TusError extends Error {
  constructor(message, status = 0, { retry = false, fallback = false } = {}) {
    super(message);
    this.name = 'TusError';
    this.status = status;
    this.retry = retry;
    this.fallback = fallback;
  }
}
// Thrown when the upload was paused or cancelled while a step ran: nothing to report.
const STOPPED = new TusError('stopped');

/** Base64 of the UTF-8 bytes of `s` (Upload-Metadata values). */
function b64(s) {
  let bin = '';
  for (const b of new TextEncoder().encode(String(s))) bin += String.fromCharCode(b);
  return btoa(bin);
}

const tusHeaders = (extra = {}) => authHeaders({ 'Tus-Resumable': TUS_VERSION, ...extra });

/** A URL of this server as path and query, or null (an upload URL elsewhere would get the token). */
function sameOriginPath(url) {
  if (!url) return null;
  try {
    const u = new URL(url, window.location.href);
    return u.origin === window.location.origin ? u.pathname + u.search : null;
  } catch { return null; }
}

/** A header as a non-negative integer, or null. */
function intHeader(headers, name) {
  const v = headers.get(name);
  return v !== null && /^\d+$/.test(v.trim()) ? Number(v.trim()) : null;
}

/** The error of a tus answer: its one-line text body (not JSON), retried when it is a 5xx (or no answer). */
function answerError(status, text) {
  let message = String(text || '').trim().split('\n')[0].trim();
  if (message.startsWith('<')) message = '';     // an HTML page of a proxy
  if (!message) message = status ? `the server answered HTTP ${status}` : 'network error';
  if (status === 0 || status >= 500) return new TusError(message, status, { retry: true });
  if (status === 401) window.dispatchEvent(new CustomEvent('panlist:unauthorized', { detail: message }));
  return new TusError(message, status);
}

function checkGen(u, gen) { if (gen !== u.gen) throw STOPPED; }

/**
 * One request (not PATCH) with fetch. `abortable`: pausing or cancelling cuts it (HEAD); a POST is let finish so
 * the session it makes is known (and deleted when cancelled). Network failure and timeout: a retryable error.
 */
async function tusFetch(u, method, url, headers, { abortable = true } = {}) {
  const ctrl = new AbortController();
  if (abortable) u.ctrl = ctrl;
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; ctrl.abort(); }, REQUEST_TIMEOUT);
  try {
    const res = await fetch(url, { method, headers, cache: 'no-store', credentials: 'same-origin', signal: ctrl.signal });
    const text = method === 'HEAD' ? '' : await res.text();
    return { status: res.status, headers: res.headers, text };
  } catch {
    throw new TusError(timedOut ? 'the server did not answer in time' : 'network error', 0, { retry: true });
  } finally {
    clearTimeout(timer);
    if (u.ctrl === ctrl) u.ctrl = null;
  }
}

/** Runs (or goes on with) a tus upload; its state is 'uploading' when called. */
function startTus(u) {
  const gen = ++u.gen;
  u.samples = [];
  u.loaded = u.offset;
  u.bar.value = u.offset;
  u.status.title = '';
  setState(u, 'uploading', percent(u, u.offset) + '%');
  runTus(u, gen);
}

async function runTus(u, gen) {
  const size = u.file.size;
  try {
    // Paused and resumed while the POST was under way: its session is this upload's.
    if (u.creating) { await u.creating.catch(() => {}); checkGen(u, gen); }
    if (u.location) await tusSync(u, gen);
    else await tusOpen(u, gen);
    while (u.offset < size) {
      const from = u.offset;
      const r = await tusPatch(u, gen);
      checkGen(u, gen);
      if (r.status === 204) {
        const offset = intHeader(r.headers, 'Upload-Offset');
        confirm(u, offset !== null ? offset : Math.min(from + u.chunk, size));
        u.tries = 0;
      } else if (r.status === 409) {
        // The offset moved on, or another request is writing: ask where the upload is.
        await tusSync(u, gen);
        if (u.offset === from) throw new TusError(answerError(409, r.text).message, 409, { retry: true });
      } else if (r.status === 404 || r.status === 410) {
        await restart(u, gen);
      } else {
        throw answerError(r.status, r.text);
      }
    }
    checkGen(u, gen);
    tusFinish(u, 'done', 'done');
  } catch (e) {
    if (gen !== u.gen || e === STOPPED) return;
    if (e.fallback) {
      // Resumable uploads were turned off since the page loaded: one PUT instead.
      u.mode = 'put';
      u.row.dataset.mode = 'put';
      delete u.row.dataset.offset;
      u.pause.hidden = true;
      u.pause = null;
      startPut(u);
    } else if (e.retry) {
      scheduleRetry(u, e.message);
    } else {
      u.canResume = false;
      tusFinish(u, 'error', e.message);
      u.status.title = e.message;
    }
  }
}

/** The upload is in a final state: frees its slot. */
function tusFinish(u, state, text) {
  clearTimeout(u.timer);
  u.timer = 0;
  setState(u, state, text);
  if (state === 'done') {
    removeStored(u.key, u.location);
    u.loaded = u.file.size;
    u.bar.value = u.bar.max;
    confirm(u, u.file.size);
  }
  updateTotal();
  pump();
}

/** A new session, or the remembered one of this file and target when the server still has it. */
async function tusOpen(u, gen) {
  const size = u.file.size;
  const stored = readStored(u.key);
  const inUse = stored && queue.some(x => x !== u && x.location === stored.location && LIVE.has(x.state));
  if (stored && !inUse) {
    const r = await tusFetch(u, 'HEAD', stored.location, tusHeaders());
    checkGen(u, gen);
    const offset = intHeader(r.headers, 'Upload-Offset');
    if (r.status === 200 && intHeader(r.headers, 'Upload-Length') === size && offset !== null && offset < size) {
      u.location = stored.location;
      confirm(u, offset);
      showProgress(u, offset);
      note(u, `resuming at ${percent(u, offset)}%`);
      return;
    }
    if (r.status === 0 || r.status >= 500 || r.status === 401) throw answerError(r.status, r.text);
    // 404/410 (gone, or another user's), a different length, or already whole: start afresh.
    removeStored(u.key, stored.location);
  }
  await tusCreate(u, gen);
}

async function tusCreate(u, gen) {
  const meta = [['path', u.path]];
  if (u.file.lastModified) meta.push(['lastModified', String(u.file.lastModified)]);
  if (u.file.type) meta.push(['filetype', u.file.type]);
  const pw = passwordFor(u.dir);
  if (pw) meta.push(['password', pw]);
  const headers = tusHeaders({
    'Upload-Length': String(u.file.size),
    'Upload-Metadata': meta.map(([k, v]) => k + ' ' + b64(v)).join(','),
  });
  const pending = tusFetch(u, 'POST', TUS_ENDPOINT, headers, { abortable: false });
  u.creating = pending;
  let r;
  try { r = await pending; } finally { if (u.creating === pending) u.creating = null; }
  const location = r.status === 201 ? sameOriginPath(r.headers.get('Location')) : null;
  if (gen !== u.gen) {
    // Paused (or paused and resumed) meanwhile: the session is kept for this upload; cancelled: it is ended.
    if (location && u.state !== 'cancelled' && !u.location) { u.location = location; saveStored(u.key, location); confirm(u, 0); }
    else if (location) deleteSession(location);
    throw STOPPED;
  }
  if (r.status === 201) {
    if (!location) throw new TusError('the server made the upload but gave no usable Location', 201);
    u.location = location;
    saveStored(u.key, location);
    confirm(u, 0);
    return;
  }
  if (r.status === 405 || r.status === 501) throw new TusError(answerError(r.status, r.text).message, r.status, { fallback: true });
  throw answerError(r.status, r.text);
}

/** HEAD: the server's offset of the session becomes ours (a gone session starts again). */
async function tusSync(u, gen) {
  const r = await tusFetch(u, 'HEAD', u.location, tusHeaders());
  checkGen(u, gen);
  if (r.status === 200) {
    const offset = intHeader(r.headers, 'Upload-Offset');
    const length = intHeader(r.headers, 'Upload-Length');
    if (offset === null || (length !== null && length !== u.file.size)) { await restart(u, gen); return; }
    const before = u.offset;
    confirm(u, offset);
    showProgress(u, offset);
    if (offset > 0 && offset < u.file.size && (u.samples.length <= 1 || offset < before)) note(u, `resuming at ${percent(u, offset)}%`);
    return;
  }
  if (r.status === 404 || r.status === 410) { await restart(u, gen); return; }
  throw answerError(r.status, r.text);
}

/** The session is gone (expired, deleted): once per upload, a new one from byte 0. */
async function restart(u, gen) {
  removeStored(u.key, u.location);
  u.location = null;
  confirm(u, 0);
  showProgress(u, 0);
  if (u.restarted) throw new TusError('the server lost this upload (it ended or expired)', 410);
  u.restarted = true;
  note(u, 'the server lost the upload; starting again');
  await tusCreate(u, gen);
}

/** PATCH of the chunk at u.offset with XMLHttpRequest (upload progress). Resolves to {status, headers, text}. */
function tusPatch(u, gen) {
  return new Promise((resolve, reject) => {
    const from = u.offset;
    const to = Math.min(from + u.chunk, u.file.size);
    const xhr = new XMLHttpRequest();
    u.xhr = xhr;
    let stall = 0, stalled = false;
    const arm = () => { clearTimeout(stall); stall = setTimeout(() => { stalled = true; xhr.abort(); }, STALL_TIMEOUT); };
    const done = () => { clearTimeout(stall); if (u.xhr === xhr) u.xhr = null; };
    xhr.open('PATCH', u.location);
    const headers = tusHeaders({ 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(from) });
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (gen !== u.gen) return;
      arm();
      showProgress(u, from + e.loaded);
    };
    // Every byte sent: waiting for the answer may take long (after the last chunk the server stores the file).
    xhr.upload.onload = () => {
      clearTimeout(stall);
      if (gen !== u.gen) return;
      showProgress(u, to);
      if (to >= u.file.size) u.status.textContent = 'storing…';
    };
    xhr.onload = () => {
      done();
      resolve({ status: xhr.status, headers: { get: (n) => xhr.getResponseHeader(n) }, text: xhr.responseText });
    };
    xhr.onerror = () => { done(); reject(gen !== u.gen ? STOPPED : new TusError('network error', 0, { retry: true })); };
    xhr.ontimeout = () => { done(); reject(new TusError('the server did not answer in time', 0, { retry: true })); };
    xhr.onabort = () => { done(); reject(stalled ? new TusError('the upload stalled', 0, { retry: true }) : STOPPED); };
    arm();
    xhr.send(u.file.slice(from, to));
  });
}

/** The offset the server confirmed. */
function confirm(u, offset) {
  u.offset = offset;
  u.row.dataset.offset = String(offset);
}

const percent = (u, bytes) => (u.file.size ? Math.floor((bytes / u.file.size) * 100) : 100);

/** Progress of a tus upload at `bytes` (offset + bytes of the chunk sent): bar, percentage and speed. */
function showProgress(u, bytes) {
  u.loaded = bytes;
  u.bar.value = bytes;
  const now = performance.now();
  const s = u.samples;
  s.push([now, bytes]);
  while (s.length > 2 && s[1][0] <= now - SPEED_WINDOW) s.shift();
  if (u.state === 'uploading' && now >= (u.noteUntil || 0)) {
    const [t0, b0] = s[0];
    const seconds = (now - t0) / 1000;
    const speed = seconds >= 0.5 && bytes > b0 ? (bytes - b0) / seconds : 0;
    u.status.textContent = percent(u, bytes) + '%' + (speed ? ` · ${formatSize(speed)}/s` : '');
  }
  updateTotal();
}

/** A status text that progress does not overwrite for a moment. */
function note(u, text) {
  u.status.textContent = text;
  u.noteUntil = performance.now() + NOTE_TIME;
}

/** Network loss or a 5xx: tries again after 1, 2, 4, 8, then 15 s (holding the slot), each time asking the offset first. */
function scheduleRetry(u, reason) {
  if (u.tries >= RETRY_DELAYS.length) {
    u.canResume = true;       // the session stays: Resume (or picking the file again later) goes on from its offset
    tusFinish(u, 'error', reason);
    u.status.title = reason;
    return;
  }
  const delay = RETRY_DELAYS[u.tries++];
  const at = Date.now() + delay * 1000;
  u.loaded = u.offset;
  u.bar.value = u.offset;
  setState(u, 'retrying', `retrying in ${delay} s…`);
  u.status.title = reason;
  updateTotal();
  clearTimeout(u.timer);
  const tick = () => {
    if (u.state !== 'retrying') return;
    const left = Math.ceil((at - Date.now()) / 1000);
    if (left <= 0) { retryNow(u); return; }
    u.status.textContent = `retrying in ${left} s…`;
    u.timer = setTimeout(tick, Math.min(1000, at - Date.now() - (left - 1) * 1000));
  };
  u.timer = setTimeout(tick, Math.min(1000, delay * 1000));
}

function retryNow(u) {
  if (u.state !== 'retrying') return;
  clearTimeout(u.timer);
  u.timer = 0;
  startTus(u);
}

/** Cuts whatever request of the upload is under way (the session stays). */
function stopTus(u) {
  u.gen++;
  clearTimeout(u.timer);
  u.timer = 0;
  if (u.xhr) { const x = u.xhr; u.xhr = null; x.abort(); }
  if (u.ctrl) { const c = u.ctrl; u.ctrl = null; c.abort(); }
  u.samples = [];
  u.noteUntil = 0;
  u.loaded = u.offset;
  u.bar.value = u.offset;
}

/** Pause (keeps the session and frees the slot) or Resume (queues it again). */
function togglePause(u) {
  if (u.mode !== 'tus') return;
  if (u.state === 'queued' || u.state === 'uploading' || u.state === 'retrying') {
    stopTus(u);
    setState(u, 'paused', `paused at ${percent(u, u.offset)}%`);
    updateTotal();
    pump();
  } else if (u.state === 'paused' || (u.state === 'error' && u.location && u.canResume)) {
    u.tries = 0;
    u.status.title = '';
    setState(u, 'queued', 'waiting');
    updateTotal();
    pump();
  }
}

/** Cancel: the session is deleted on the server and forgotten here. */
function cancelTus(u) {
  if (!LIVE.has(u.state) && !(u.state === 'error' && u.location && u.canResume)) return;
  stopTus(u);
  setState(u, 'cancelled', 'cancelled');
  if (u.location) {
    deleteSession(u.location);
    removeStored(u.key, u.location);
    u.location = null;
  }
  updateTotal();
  pump();
}

function deleteSession(location) {
  fetch(location, { method: 'DELETE', headers: tusHeaders(), cache: 'no-store', credentials: 'same-origin', keepalive: true })
    .catch(() => { /* the server lets it expire */ });
}

// ---------------------------------------------------------------------------------------------
// Remembered tus sessions (localStorage), by target path, size, modification time and name of the file:
// picking the same file for the same folder again after a reload goes on where it stopped.

function storeKey(u) {
  return STORE_PREFIX + JSON.stringify([u.path, u.file.size, u.file.lastModified || 0, u.file.name]);
}

/** The remembered {location, created} under `key`, or null (an old or broken entry is removed). */
function readStored(key) {
  let entry = null;
  try { entry = JSON.parse(localStorage.getItem(key) || 'null'); } catch { entry = null; }
  if (!entry) { try { localStorage.removeItem(key); } catch { /* private mode */ } return null; }
  const fresh = typeof entry.location === 'string' && sameOriginPath(entry.location) === entry.location &&
    Number.isFinite(entry.created) && Date.now() - entry.created < STORE_MAX_AGE;
  if (fresh) return entry;
  try { localStorage.removeItem(key); } catch { /* private mode */ }
  return null;
}

function saveStored(key, location) {
  try { localStorage.setItem(key, JSON.stringify({ location, created: Date.now() })); } catch { /* private mode or full */ }
}

/** Removes the entry under `key` when it is still `location`'s (a newer upload of the same file may own it). */
function removeStored(key, location) {
  try {
    const entry = JSON.parse(localStorage.getItem(key) || 'null');
    if (!entry || !location || entry.location === location) localStorage.removeItem(key);
  } catch {
    try { localStorage.removeItem(key); } catch { /* private mode */ }
  }
}

/** Drops every remembered session older than STORE_MAX_AGE (or unreadable). */
function sweepStored() {
  try {
    const keys = [];
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      if (k && k.startsWith(STORE_PREFIX)) keys.push(k);
    }
    for (const k of keys) readStored(k);
  } catch { /* storage not available */ }
}

// ---------------------------------------------------------------------------------------------

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
  const paused = queue.filter(u => u.state === 'paused').length;
  const active = queue.filter(u => LIVE.has(u.state)).length;
  $('#uploads-summary').textContent = `${done}/${live.length} done` + (failed ? `, ${failed} failed` : '') +
    (paused ? `, ${paused} paused` : '') + (active ? ` · ${formatSize(sent)} of ${formatSize(total)}` : '');
}

/** Whether some upload is still running, waiting or about to retry (the page warns before leaving); paused is not. */
export const uploadsBusy = () => queue.some(u => u.state === 'uploading' || u.state === 'queued' || u.state === 'retrying');
