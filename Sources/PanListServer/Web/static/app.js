// PanList web UI: start-up, authentication and routing.
// The URL path is the virtual path being browsed (percent-encoded per segment); /@manage is the admin area,
// /@tasks the background tasks of whoever is logged in, /@search?q=… the results of a search, /@shares the share
// links of whoever is logged in; /@s/<id>/… is a share link's page, for anyone (no login, no account header).
import { api, apiGet, getToken, setToken, clearToken } from './api.js';
import { state, isAdmin, canShare, internalLink, isSharePage, ROLE_GUEST } from './state.js';
import { $, decodeUrlPath, showError, clearError } from './util.js';
import { initBrowse, showBrowse, hideBrowse } from './browse.js';
import { initPreview } from './preview.js';
import { initManage, showManage } from './manage.js';
import { initTasks, showTasks, showTasksToGuest, hideTasks, followTasks } from './tasks.js';
import { initSearch, showSearch, hideSearch, updateSearchBox } from './search.js';
import { initShares, showShares, hideShares } from './shares.js';
import { showShare, hideShare } from './share.js';
import { showArchive, hideArchive, loadArchiveExtensions } from './archive.js';
import { uploadsBusy } from './upload.js';
import { fillIcons } from './icons.js';

const VIEWS = ['login-view', 'browse-view', 'search-view', 'manage-view', 'tasks-view', 'shares-view', 'share-view', 'archive-view'];
function showView(id) { for (const v of VIEWS) $('#' + v).hidden = v !== id; }

/** Loads /api/public/settings and applies title, announcement, colour, logo and favicon. */
async function loadSettings() {
  try { state.settings = (await apiGet('/public/settings')) || {}; } catch { state.settings = state.settings || {}; }
  const s = state.settings;
  const title = s.site_title || 'PanList';
  $('#site-name').textContent = title;
  if (!document.title || document.title === 'PanList') document.title = title;
  const ann = $('#announcement');
  ann.textContent = s.announcement || '';
  ann.hidden = !s.announcement;
  if (s.main_color && CSS.supports('color', s.main_color)) document.documentElement.style.setProperty('--accent', s.main_color);
  const firstLine = (v) => String(v || '').split('\n')[0].trim();
  const usable = (u) => /^(https?:\/\/|\/)/i.test(u);
  const logo = firstLine(s.logo);
  $('#site-logo').hidden = !usable(logo);
  if (usable(logo)) $('#site-logo').src = logo;
  const fav = firstLine(s.favicon);
  if (usable(fav)) $('#favicon').href = fav;
}

function updateHeader() {
  // A share link's page is for visitors: no account, search or app links in its header.
  if (!$('#share-view').hidden) {
    for (const id of ['#whoami', '#tasks-link', '#shares-link', '#manage-link', '#browse-link', '#logout', '#login-link']) $(id).hidden = true;
    updateSearchBox(false);
    followTasks(false);
    return;
  }
  $('#whoami').hidden = false;
  const me = state.me;
  const loggedIn = !!me && me.role !== ROLE_GUEST && !!getToken();
  const inManage = !$('#manage-view').hidden, inTasks = !$('#tasks-view').hidden, inSearch = !$('#search-view').hidden;
  const inShares = !$('#shares-view').hidden;
  $('#whoami').textContent = me ? (me.role === ROLE_GUEST ? 'Guest' : me.username) : '';
  $('#tasks-link').hidden = !loggedIn;
  $('#tasks-link').classList.toggle('active', inTasks);
  $('#shares-link').hidden = !loggedIn || !canShare();
  $('#shares-link').classList.toggle('active', inShares);
  $('#manage-link').hidden = !isAdmin();
  $('#manage-link').classList.toggle('active', inManage);
  $('#browse-link').hidden = !inManage && !inTasks && !inSearch && !inShares;
  // The search box where there are files to search: the folders and the results.
  updateSearchBox(!!me && (inSearch || !$('#browse-view').hidden));
  followTasks(loggedIn);            // the badge (and the Tasks page) follow the tasks while someone is logged in
  $('#logout').hidden = !loggedIn;
  $('#login-link').hidden = loggedIn || !$('#login-view').hidden;
}

function showLogin(message = '') {
  hideBrowse();
  hideTasks();
  hideSearch();
  hideShares();
  hideShare();
  clearError();
  showView('login-view');
  const err = $('#login-error');
  err.textContent = message;
  err.hidden = !message;
  updateHeader();
  document.title = 'Log in – ' + (state.settings.site_title || 'PanList');
  $('#login-username').focus();
}

/** Renders the page for the current URL. */
function route() {
  for (const d of document.querySelectorAll('dialog[open]')) d.close();   // back/forward closes overlays
  const path = decodeUrlPath(location.pathname);
  if (isSharePage(path)) {
    // Anyone's page: shown whoever is (or is not) logged in.
    hideBrowse(); hideTasks(); hideSearch(); hideShares();
    clearError();
    showView('share-view');
    updateHeader();
    showShare(path);
    return;
  }
  hideShare();
  if (!state.me) { showLogin(); return; }
  if (path !== '/@tasks') hideTasks();
  if (path !== '/@search') hideSearch();
  if (path !== '/@shares') hideShares();
  if (path !== '/@archive') hideArchive();
  if (path === '/@archive') {
    hideBrowse();
    clearError();
    showView('archive-view');
    updateHeader();
    loadArchiveExtensions().then(showArchive);
    return;
  }
  if (path === '/@shares') {
    hideBrowse();
    clearError();
    showView('shares-view');
    updateHeader();
    showShares();
    return;
  }
  if (path === '/@search') {
    hideBrowse();
    clearError();
    showView('search-view');
    updateHeader();
    showSearch();
    return;
  }
  if (path === '/@tasks') {
    hideBrowse();
    clearError();
    showView('tasks-view');
    updateHeader();
    if (state.me.role === ROLE_GUEST || !getToken()) showTasksToGuest(); else showTasks();
    return;
  }
  if (path === '/@manage' || path.startsWith('/@manage/')) {
    hideBrowse();
    showView('manage-view');
    updateHeader();
    if (!isAdmin()) {
      $('#manage-body').replaceChildren();
      showError('Only the admin can manage storages and settings.');
      return;
    }
    showManage(path.split('/')[2] || 'storages');
    return;
  }
  showView('browse-view');
  updateSearchBox(true, path);
  updateHeader();
  showBrowse(path);
}

/** Finds out who we are (with the stored token, or as the guest), then renders. */
async function boot() {
  const hadToken = !!getToken();
  let problem = '';
  try {
    state.me = await apiGet('/me');
  } catch (e) {
    state.me = null;
    if (e.code === 401 && hadToken) {
      // The stored token is no longer good: drop it and try as the guest.
      clearToken();
      try { state.me = await apiGet('/me'); } catch { state.me = null; }
      if (!state.me && !isSharePage(decodeUrlPath(location.pathname))) { showLogin(e.message); return; }
    } else if (e.code !== 401) {
      problem = e.message;            // e.g. the server cannot be reached
    }
  }
  route();
  if (problem) showError(problem);
}

async function login(e) {
  e.preventDefault();
  const btn = $('#login-submit'), err = $('#login-error');
  err.hidden = true;
  btn.disabled = true;
  try {
    const data = await api('/auth/login', { username: $('#login-username').value.trim(), password: $('#login-password').value, otp_code: '' });
    setToken(data.token);
    state.me = await apiGet('/me');
    $('#login-password').value = '';
    clearError();
    route();
  } catch (ex) {
    showLogin(ex.message);
  } finally {
    btn.disabled = false;
  }
}

async function logout() {
  try { if (getToken()) await api('/auth/logout', {}); } catch { /* the token is dropped anyway */ }
  clearToken();
  state.me = null;
  clearError();
  await boot();
}

function init() {
  fillIcons();
  initPreview();
  initBrowse();
  initManage({ settingsSaved: loadSettings });
  initTasks();
  initSearch();
  initShares();

  $('#login-form').addEventListener('submit', login);
  $('#logout').addEventListener('click', logout);
  $('#login-link').addEventListener('click', () => showLogin());
  $('#error-close').addEventListener('click', clearError);
  for (const id of ['#site-title', '#tasks-link', '#shares-link', '#manage-link', '#browse-link', '#tab-storages', '#tab-users', '#tab-rules', '#tab-settings', '#tab-index']) internalLink($(id));

  window.addEventListener('popstate', route);
  window.addEventListener('panlist:route', route);
  // Any 401 from the API: the token is no longer good (or the guest is disabled): log in again.
  window.addEventListener('panlist:unauthorized', (e) => {
    if (!state.me) return;            // start-up and login handle their own 401s
    const hadToken = !!getToken();
    clearToken();
    state.me = null;
    for (const d of document.querySelectorAll('dialog[open]')) d.close();
    showLogin(hadToken ? String(e.detail || '') : '');
  });
  window.addEventListener('beforeunload', (e) => {
    if (uploadsBusy()) { e.preventDefault(); e.returnValue = ''; }
  });

  loadSettings().then(boot);
}

init();
