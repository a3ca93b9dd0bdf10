// The Tasks page at /@tasks: the user's copy, move, upload, offline download, extraction and search index tasks (the admin's: everyone's), running and
// finished, with their progress, cancel / retry / delete, and the files of each; and the badge in the header
// (tasks not finished yet) on every page. Both follow /api/task/events (server-sent events, one a second),
// or poll every 2 s when the browser cannot keep that stream open.
// Rows are kept by task id and updated in place, so an open file list, a focused button or a selection of
// text survive the updates.
import { api, apiGet, getToken } from './api.js';
import { state } from './state.js';
import { $, h, clear, formatSize, toast } from './util.js';
import { confirmDialog } from './dialogs.js';
import { icon } from './icons.js';

const KINDS = ['copy', 'move', 'upload', 'offline_download', 'offline_download_transfer', 'decompress', 'index'];
const KIND_WORDS = { copy: 'Copy', move: 'Move', upload: 'Upload', offline_download: 'Offline download',
                     offline_download_transfer: 'Transfer', decompress: 'Extract', index: 'Search index' };
// TaskInfo.state, as the server numbers them.
const S = { pending: 0, running: 1, succeeded: 2, canceling: 3, canceled: 4, errored: 5, failing: 6, failed: 7, waitingRetry: 8, retrying: 9 };
const STATE_WORDS = ['Queued', 'Running', 'Succeeded', 'Canceling…', 'Canceled', 'Error', 'Failing', 'Failed', 'Waiting to retry', 'Retrying'];
const isDone = (t) => t.state === S.succeeded || t.state === S.canceled || t.state === S.failed;
const tone = (t) => ({ [S.succeeded]: 'ok', [S.canceled]: 'off', [S.canceling]: 'off', [S.errored]: 'bad', [S.failing]: 'bad', [S.failed]: 'bad' })[t.state] || 'run';
const plural = (n, one, many = one + 's') => `${n} ${n === 1 ? one : many}`;

/** A task's title. The server names an index walk "build the search index of [/], [/docs]": shown as
 *  "Build the search index: /, /docs". */
function titleOf(t) {
  const name = String(t.name || '');
  if (t.kind === 'index') {
    const m = /^(build|update) the search index of (.*)$/i.exec(name);
    if (m) return `${m[1][0].toUpperCase()}${m[1].slice(1).toLowerCase()} the search index: ${m[2].replace(/\[([^\]]*)\]/g, '$1')}`;
  }
  return name || t.id;
}
const time = (t) => Date.parse(t.created_time) || 0;
const byNewest = (a, b) => time(b) - time(a) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

// Times to the second (two copies started the same minute are told apart), and how long a task took.
const timeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const clockFmt = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });
/** A time in words; only the time of day when it is the same day as `sameDayAs`. */
function when(s, sameDayAs = '') {
  const d = new Date(s || '');
  if (isNaN(d) || d.getTime() <= 0) return '';
  const other = new Date(sameDayAs || '');
  return !isNaN(other) && other.toDateString() === d.toDateString() ? clockFmt.format(d) : timeFmt.format(d);
}
function took(from, to) {
  const ms = Date.parse(to) - Date.parse(from);
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return 'under a second';
  const secs = Math.round(ms / 1000);
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${secs % 60} s`;
  return `${Math.floor(secs / 3600)} h ${Math.floor(secs / 60) % 60} min`;
}

// ---------------------------------------------------------------------------------------------
// The feed: one stream per tab while someone (not the guest) is logged in.

// `gen` counts the starts and stops: a stream or a look of an earlier start does nothing when it answers.
const feed = { token: '', gen: 0, source: null, timer: 0, retry: 0, errors: 0, polling: false, problem: '' };

/** Follows the tasks while `on` (someone logged in), else stops; called with every render of the header. */
export function followTasks(on) {
  const token = on ? getToken() : '';
  if (token === feed.token) return;
  if (feed.source) feed.source.abort();
  clearTimeout(feed.timer);
  clearTimeout(feed.retry);
  Object.assign(feed, { token, gen: feed.gen + 1, source: null, timer: 0, retry: 0, errors: 0, polling: false, problem: '' });
  setBadge(0);
  if (!token) return;
  if (window.ReadableStream && window.AbortController) openStream(); else startPolling();
}

/** Reads /api/task/events (server-sent events) with fetch, so that the token goes in the Authorization
 *  header and never into a URL (proxies log URLs). A stream that ends or is refused is tried again after
 *  2 s, then longer (with jitter, so that tabs do not all come back at once); after two failures in a row the
 *  page polls meanwhile, until a stream answers again. */
function openStream() {
  const gen = feed.gen;
  const ctrl = new AbortController();
  feed.source = ctrl;
  (async () => {
    let got = false;
    try {
      const res = await fetch('/api/task/events', { headers: { Authorization: feed.token }, signal: ctrl.signal, cache: 'no-store' });
      if (!res.ok || !(res.headers.get('content-type') || '').startsWith('text/event-stream') || !res.body) throw new Error('no stream');
      const reader = res.body.getReader();
      const text = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += text.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block.split('\n').filter(l => l.startsWith('data:')).map(l => l.slice(5).trimStart()).join('\n');
          if (!data || feed.gen !== gen) continue;
          let parsed;
          try { parsed = JSON.parse(data); } catch { continue; }
          if (!got) { got = true; feed.errors = 0; stopPolling(); }
          receive(parsed);
        }
      }
    } catch {
      if (ctrl.signal.aborted) return;
    }
    if (feed.gen !== gen || feed.source !== ctrl) return;
    feed.source = null;
    feed.errors = got ? 0 : feed.errors + 1;
    if (feed.errors >= 2) startPolling();
    const wait = Math.min(60000, 2000 * 2 ** Math.max(0, feed.errors - 1)) * (0.75 + Math.random() / 2);
    feed.retry = setTimeout(() => { if (feed.gen === gen) openStream(); }, wait);
  })();
}

function stopPolling() {
  if (!feed.polling) return;
  feed.polling = false;
  clearTimeout(feed.timer);
  liveNote();
}

function startPolling() {
  if (feed.polling) return;
  const gen = feed.gen;
  feed.polling = true;
  liveNote();
  const tick = async () => {
    if (feed.gen !== gen || !feed.polling) return;
    try {
      const data = { summary: await apiGet('/task/summary') };
      if (view.active) data.undone = await listAll('undone');
      if (feed.gen !== gen || !feed.polling) return;
      // A look that failed before (the server was away) is no longer the page's error.
      if (feed.problem && $('#tasks-error').textContent === feed.problem) pageError('');
      feed.problem = '';
      receive(data);
    } catch (e) {
      if (feed.gen === gen && view.active) { feed.problem = `Could not look at the tasks: ${e.message}`; pageError(feed.problem); }
    }
    if (feed.gen === gen && feed.polling) feed.timer = setTimeout(tick, 2000);
  };
  tick();
}

function receive(data) {
  if (data.summary) setBadge(data.summary.undone);
  if (view.active && view.loaded && Array.isArray(data.undone)) update(data.undone, data.summary);
}

function setBadge(n) {
  n = Number(n) || 0;
  const badge = $('#tasks-badge'), link = $('#tasks-link');
  badge.textContent = n > 0 ? String(n) : '';
  badge.hidden = n <= 0;
  link.title = n > 0 ? `${plural(n, 'task')} not finished` : 'Background tasks';
  link.setAttribute('aria-label', n > 0 ? `Tasks, ${n} not finished` : 'Tasks');
}

function liveNote() {
  $('#tasks-live').textContent = feed.polling ? 'Live updates are away for now; the page looks again every 2 seconds.'
    : 'The page updates itself while tasks run.';
}

// ---------------------------------------------------------------------------------------------
// The page

const view = {
  active: false,
  loaded: false,
  seq: 0,
  undone: [],
  done: [],
  doneTotal: 0,        // finished tasks in all (only the newest are listed)
  rows: new Map(),     // task id → row (see makeRow)
};

export function initTasks() {
  // Each stream holds one of the few connections a browser opens to this server: a tab in the background,
  // or a page kept in the back/forward cache, lets go of it, and follows again when it is shown again.
  let resume = false;
  const away = () => { if (feed.token) { resume = true; followTasks(false); } };
  const back = () => { if (resume) { resume = false; followTasks(true); } };
  window.addEventListener('pagehide', away);
  window.addEventListener('pageshow', (e) => { if (e.persisted) back(); });
  document.addEventListener('visibilitychange', () => { if (document.hidden) away(); else back(); });
  $('#tasks-retry-failed').addEventListener('click', () => pageAction('retry_failed', 'Failed tasks started again'));
  $('#tasks-clear-succeeded').addEventListener('click', () => pageAction('clear_succeeded', 'Succeeded tasks cleared'));
  $('#tasks-clear-done').addEventListener('click', () => pageAction('clear_done', 'Finished tasks cleared'));
}

/** Renders the Tasks page (called by the router, for someone logged in). */
export async function showTasks() {
  view.active = true;
  document.title = 'Tasks – ' + (state.settings.site_title || 'PanList');
  $('#tasks-actions').hidden = false;
  pageError('');
  liveNote();
  if (!view.loaded) clear($('#tasks-body'), h('p', { class: 'muted', text: 'Loading…' }));
  await reload();
}

/** The Tasks page for the guest: nothing to show but a way to log in. */
export function showTasksToGuest() {
  view.active = false;
  document.title = 'Tasks – ' + (state.settings.site_title || 'PanList');
  $('#tasks-actions').hidden = true;
  $('#tasks-live').textContent = '';
  pageError('');
  resetRows();
  clear($('#tasks-body'), h('div', { class: 'tasks-empty' },
    h('h2', { text: 'Log in to see your tasks' }),
    h('p', { class: 'muted', text: 'Tasks belong to the user who started them; the guest has none.' })));
}

export function hideTasks() { view.active = false; }

function resetRows() {
  view.rows.clear();
  view.loaded = false;
  view.undone = []; view.done = []; view.doneTotal = 0;
}

/** Finished tasks shown: the newest of every kind (the count says how many there are in all). */
const DONE_SHOWN = 100;

async function listAll(which) {
  const page = which === 'done' ? `?per_page=${DONE_SHOWN}` : '';
  const lists = await Promise.all(KINDS.map(k => apiGet(`/task/${k}/${which}${page}`)));
  const all = lists.flatMap(l => Array.isArray(l) ? l : []).sort(byNewest);
  return which === 'done' ? all.slice(0, DONE_SHOWN) : all;
}

async function doneTotal() {
  try {
    const s = await apiGet('/task/summary');
    return s && typeof s.done === 'number' ? s.done : null;
  } catch { return null; }
}

/** Reads every list again and renders. */
async function reload() {
  const mine = ++view.seq;
  try {
    const [undone, done, total] = await Promise.all([listAll('undone'), listAll('done'), doneTotal()]);
    if (mine !== view.seq || !view.active) return;
    view.undone = undone;
    view.done = done;
    view.doneTotal = total ?? done.length;
    view.loaded = true;
    render();
  } catch (e) {
    if (mine !== view.seq || !view.active) return;
    if (!view.loaded) clear($('#tasks-body'));
    pageError(e.message);
  }
}

/** A feed's undone tasks: rendered at once; when one finished, after the finished list was read again. */
async function update(undone, summary) {
  const now = new Set(undone.map(t => t.id));
  const finished = view.undone.some(t => !now.has(t.id)) || (summary && summary.done !== view.doneTotal);
  if (!finished && !view.rereading) {
    view.undone = undone.slice().sort(byNewest);
    render();
    return;
  }
  // One re-read of the finished list at a time; events meanwhile are shown at once and ask for one more.
  view.undone = undone.slice().sort(byNewest);
  if (summary && typeof summary.done === 'number') view.pendingTotal = summary.done;
  if (view.rereading) { if (finished) view.rereadAgain = true; render(); return; }
  view.rereading = true;
  const mine = view.seq;
  try {
    do {
      view.rereadAgain = false;
      let done = null;
      try { done = await listAll('done'); } catch (e) { pageError(e.message); }
      if (mine !== view.seq || !view.active) return;
      if (done) view.done = done;
      if (typeof view.pendingTotal === 'number') view.doneTotal = view.pendingTotal;
      render();
    } while (view.rereadAgain);
  } finally {
    view.rereading = false;
  }
}

function pageError(message) {
  const p = $('#tasks-error');
  p.textContent = message || '';
  p.hidden = !message;
}

/** Runs a page action on every kind (their lists are separate on the server), then reads the lists again. */
async function pageAction(action, doneText) {
  const buttons = [...$('#tasks-actions').querySelectorAll('button')];
  for (const b of buttons) b.disabled = true;
  pageError('');
  const failed = [];
  for (const kind of KINDS) {
    try { await api(`/task/${kind}/${action}`, {}); } catch (e) { failed.push(`${KIND_WORDS[kind]} tasks: ${e.message}`); }
  }
  if (failed.length) pageError(failed.join('\n')); else toast(doneText);
  await reload();
  if (!view.loaded) for (const b of buttons) b.disabled = false;
}

let sections = null;

function skeleton() {
  const part = (id, title, empty) => {
    const count = h('span', { class: 'count muted' });
    const list = h('ul', { id, class: 'task-list', dataset: { testid: id } });
    const none = h('p', { class: 'tasks-none muted', text: empty });
    return { count, list, none, box: h('section', { class: 'task-section' }, h('h2', {}, title, ' ', count), list, none) };
  };
  return { undone: part('tasks-undone', 'Running and queued', 'Nothing is running.'),
           done: part('tasks-done', 'Finished', 'No finished tasks.') };
}

function render() {
  const body = $('#tasks-body');
  const undone = view.undone, done = view.done;
  const all = [...undone, ...done];
  $('#tasks-actions').hidden = !all.length;
  $('#tasks-retry-failed').disabled = !done.some(t => t.state === S.failed);
  $('#tasks-clear-succeeded').disabled = !done.some(t => t.state === S.succeeded);
  $('#tasks-clear-done').disabled = !done.length;
  // Rows of tasks that are gone (deleted, cleared) go too.
  const ids = new Set(all.map(t => t.id));
  for (const id of [...view.rows.keys()]) if (!ids.has(id)) view.rows.delete(id);
  if (!all.length) {
    clear(body, h('div', { class: 'tasks-empty', dataset: { testid: 'tasks-empty' } },
      h('h2', { text: 'No tasks yet' }),
      h('p', { class: 'muted', text: 'Copying or moving between two storages runs here in the background: you can leave the page, and follow, cancel or retry it here.' })));
    return;
  }
  if (!sections || !body.contains(sections.undone.box)) {
    sections = skeleton();
    clear(body, sections.undone.box, sections.done.box);
  }
  for (const [part, tasks] of [[sections.undone, undone], [sections.done, done]]) {
    const total = part === sections.done ? Math.max(view.doneTotal || 0, tasks.length) : tasks.length;
    part.count.textContent = total > tasks.length ? `(newest ${tasks.length} of ${total})` : `(${tasks.length})`;
    part.none.hidden = tasks.length > 0;
    place(part.list, tasks.map(t => {
      let r = view.rows.get(t.id);
      if (!r) { r = makeRow(t); view.rows.set(t.id, r); }
      fillRow(r, t);
      return r.el;
    }));
  }
}

/** Puts `els` into `list` in this order, moving only what is out of place (a moved node loses its focus). */
function place(list, els) {
  els.forEach((el, i) => {
    if (list.children[i] !== el) list.insertBefore(el, list.children[i] || null);
  });
  while (list.children.length > els.length) list.lastElementChild.remove();
}

// ---------------------------------------------------------------------------------------------
// A task's row

function makeRow(t) {
  const r = { id: t.id, task: t, actionsKey: '', items: null, itemsStamp: '', itemsSeq: 0, itemsBusy: false };
  r.toggle = h('button', { type: 'button', class: 'icon-btn task-toggle', 'aria-expanded': 'false',
    dataset: { testid: 'task-expand' }, onclick: () => toggleItems(r) }, icon('expand'));
  r.name = h('span', { class: 'task-name', dataset: { testid: 'task-name' } });
  r.kind = h('span', { class: 'task-kind' });
  r.state = h('span', { class: 'task-state', dataset: { testid: 'task-state' } });
  r.fill = h('span', { class: 'fill' });
  r.bar = h('span', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }, r.fill);
  r.percent = h('span', { class: 'task-percent', dataset: { testid: 'task-percent' } });
  r.meta = h('div', { class: 'task-meta' });
  r.now = h('div', { class: 'task-now' });
  r.times = h('div', { class: 'task-times' });
  r.error = h('p', { class: 'task-error', dataset: { testid: 'task-error' }, hidden: true });
  r.actionError = h('p', { class: 'field-error', role: 'alert', dataset: { testid: 'task-action-error' }, hidden: true });
  r.actions = h('div', { class: 'task-actions' });
  r.list = h('div', { class: 'task-items', dataset: { testid: 'task-items' }, hidden: true });
  r.el = h('li', { class: 'task', dataset: { testid: 'task-row', id: t.id, kind: t.kind } },
    r.toggle,
    h('div', { class: 'task-main' },
      h('div', { class: 'task-title' }, r.name, r.kind, r.state),
      h('div', { class: 'task-progress' }, r.bar, r.percent),
      r.meta, r.now, r.times, r.error),
    r.actions, r.actionError, r.list);
  return r;
}

function percentOf(t) {
  if (t.state === S.succeeded) return 100;
  const p = Number(t.progress);
  return Number.isFinite(p) ? Math.max(0, Math.min(100, Math.floor(p))) : 0;
}

function fillRow(r, t) {
  r.task = t;
  const undone = !isDone(t);
  r.el.dataset.state = t.state_name || String(t.state);
  r.el.dataset.tone = tone(t);
  const title = titleOf(t);
  const index = t.kind === 'index';
  r.name.textContent = title;
  r.name.title = title;
  r.kind.textContent = KIND_WORDS[t.kind] || t.kind;
  r.state.textContent = STATE_WORDS[t.state] || t.state_name || 'Unknown';
  r.state.className = 'task-state ' + tone(t);
  const pct = percentOf(t);
  r.fill.style.width = pct + '%';
  r.bar.setAttribute('aria-valuenow', String(pct));
  r.bar.setAttribute('aria-label', `Progress of ${title}`);
  r.percent.textContent = pct + '%';
  // An index walk's items are the folders it listed.
  const things = index ? 'folders' : 'files';
  r.toggle.setAttribute('aria-label', `${r.list.hidden ? 'Show' : 'Hide'} the ${things} of ${title}`);
  r.toggle.title = `${r.list.hidden ? 'Show' : 'Hide'} the ${things}`;

  const meta = [];
  const total = Number(t.total_bytes) || 0, doneBytes = Number(t.done_bytes) || 0;
  if (total > 0) meta.push(`${formatSize(doneBytes)} of ${formatSize(total)}`);
  else if (doneBytes > 0) meta.push(formatSize(doneBytes));
  const files = Number(t.total_files) || 0;
  // An index walk finds its folders as it goes: how many it listed (its total grows, so no "of").
  if (index) { if (Number(t.done_files) > 0) meta.push(`${plural(Number(t.done_files), 'folder')} listed`); }
  else if (files > 0) meta.push(`${Number(t.done_files) || 0} of ${plural(files, 'file')}`);
  if (t.state === S.running && Number(t.speed) > 0) meta.push(`${formatSize(t.speed)}/s`);
  // `retries` counts the runs that failed: a task that failed for good ran that many times, any other one more.
  const runs = (Number(t.retries) || 0) + (t.state === S.failed || t.state === S.waitingRetry ? 0 : 1);
  if (runs > 1) meta.push(`tried ${plural(runs, 'time')}`);
  if (t.creator && state.me && t.creator !== state.me.username) meta.push(`by ${t.creator}`);
  r.meta.textContent = meta.join(' · ');
  r.meta.hidden = !meta.length;

  const nowText = undone ? (t.current ? `Now: ${t.current}` : t.status || '') : '';
  r.now.textContent = nowText;
  r.now.title = nowText;
  r.now.hidden = !nowText;

  const times = [];
  if (when(t.start_time)) times.push(`Started ${when(t.start_time)}`);
  else if (when(t.created_time)) times.push(`Queued ${when(t.created_time)}`);
  if (!undone && when(t.end_time)) {
    times.push(`ended ${when(t.end_time, t.start_time)}`);
    if (when(t.start_time) && took(t.start_time, t.end_time)) times.push(`took ${took(t.start_time, t.end_time)}`);
  }
  r.times.textContent = times.join(', ');
  r.times.hidden = !times.length;

  // What went wrong, in words (a cancel is said by the state already).
  let error = t.state === S.succeeded ? '' : String(t.error || '');
  if (t.state === S.canceled && /^cancel+ed\.?$/i.test(error.trim())) error = '';
  if (error && t.state === S.waitingRetry) error = `Will try again: ${error}`;
  r.error.textContent = error;
  r.error.hidden = !error;

  // Buttons are made again only when the choice changes (so a focused one stays focused).
  const canCancel = undone && t.state !== S.canceling;
  const canRetry = t.state === S.failed || t.state === S.canceled;
  const key = `${canCancel}-${canRetry}`;
  if (key !== r.actionsKey) {
    r.actionsKey = key;
    const btn = (what, text, cls = '') => h('button', { type: 'button', class: cls, dataset: { testid: 'task-' + what }, text,
      'aria-label': `${text} ${title}`, onclick: () => act(r, what) });
    clear(r.actions, canCancel ? btn('cancel', 'Cancel') : null, canRetry ? btn('retry', 'Retry') : null, btn('delete', 'Delete', 'danger'));
  }

  // An open file list follows the task while it works.
  const stamp = `${t.state}-${t.done_files}-${t.retries}`;
  if (!r.list.hidden && r.items && stamp !== r.itemsStamp && !r.itemsBusy) loadItems(r);
}

async function act(r, what) {
  const t = r.task;
  if (what === 'delete' && !isDone(t) && !await confirmDialog('Delete task',
    `Stop “${titleOf(t)}” and delete it? ${t.kind === 'index' ? 'The index keeps what the walk has reached so far.' : 'What it copied so far stays where it is.'}`,
    { okText: 'Delete', danger: true })) return;
  r.actionError.hidden = true;
  const buttons = [...r.actions.querySelectorAll('button')];
  for (const b of buttons) b.disabled = true;
  try {
    await api(`/task/${t.kind}/${what}`, {}, { query: { tid: t.id } });
    toast({ cancel: 'Canceling…', retry: 'Started again', delete: 'Task deleted' }[what]);
  } catch (e) {
    r.actionError.textContent = `Could not ${what === 'delete' ? 'delete' : what} this task: ${e.message}`;
    r.actionError.hidden = false;
  }
  for (const b of buttons) b.disabled = false;
  await reload();
}

// ---------------------------------------------------------------------------------------------
// A task's files (from info): what was done, kept back (skipped) or failed, and why.

const ITEM_WORDS = { pending: 'Waiting', done: 'Done', skipped: 'Skipped', failed: 'Failed' };
const ITEM_TONE = { done: 'ok', skipped: 'off', failed: 'bad', pending: 'run' };

function toggleItems(r) {
  const open = r.list.hidden;
  r.list.hidden = !open;
  r.el.classList.toggle('open', open);
  r.toggle.setAttribute('aria-expanded', String(open));
  fillRow(r, r.task);
  if (open) {
    if (!r.items) clear(r.list, h('p', { class: 'muted small', text: 'Loading the files…' }));
    loadItems(r);
  }
}

async function loadItems(r) {
  const t = r.task, mine = ++r.itemsSeq;
  r.itemsBusy = true;
  r.itemsStamp = `${t.state}-${t.done_files}-${t.retries}`;
  try {
    const info = await api(`/task/${t.kind}/info`, {}, { query: { tid: t.id } });
    if (mine !== r.itemsSeq) return;
    r.items = Array.isArray(info && info.items) ? info.items : [];
    renderItems(r);
  } catch (e) {
    if (mine === r.itemsSeq) clear(r.list, h('p', { class: 'field-error', text: `The files could not be listed: ${e.message}` }));
  } finally {
    if (mine === r.itemsSeq) r.itemsBusy = false;
  }
}

function renderItems(r) {
  const items = r.items;
  const index = r.task.kind === 'index';
  if (!items.length) {
    clear(r.list, h('p', { class: 'muted small', text: isDone(r.task) ? (index ? 'No folders.' : 'No files.')
      : (index ? 'No folders listed yet.' : 'No files listed yet: the task has not looked at its source.') }));
    return;
  }
  const counts = {};
  for (const it of items) counts[it.state] = (counts[it.state] || 0) + 1;
  const summary = ['done', 'skipped', 'failed', 'pending'].filter(s => counts[s]).map(s => `${counts[s]} ${ITEM_WORDS[s].toLowerCase()}`);
  const frag = document.createDocumentFragment();
  for (const it of items) {
    // Paths are relative to what the task copies or moves; "" is that folder (or file) itself. An index walk's
    // are the folders it listed, as full paths.
    const path = index ? String(it.path || '/') : it.path ? String(it.path) + (it.is_dir ? '/' : '') : '';
    frag.append(h('li', { class: 'task-item', dataset: { testid: 'task-item', state: it.state || '' } },
      h('span', { class: 'item-state ' + (ITEM_TONE[it.state] || ''), text: ITEM_WORDS[it.state] || it.state || '' }),
      path ? h('span', { class: 'item-path', title: path, text: path })
        : h('span', { class: 'item-path muted', text: it.is_dir ? '(the folder itself)' : '(the file itself)' }),
      h('span', { class: 'item-size', text: it.is_dir ? '' : formatSize(it.size) }),
      it.note ? h('span', { class: 'item-note', dataset: { testid: 'task-item-note' }, text: it.note }) : null));
  }
  clear(r.list,
    h('p', { class: 'small muted', text: (index ? plural(items.length, 'folder') : plural(items.length, 'entry', 'entries')) + (summary.length ? ': ' + summary.join(', ') : '') +
      (items.length >= 2000 ? ' (the first 2000 are listed)' : '') }),
    h('ul', { class: 'item-list' }, frag));
}
