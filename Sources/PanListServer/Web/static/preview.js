// The preview overlay (#preview): images (with previous/next), video, audio, text/code, Markdown and
// PDF. Media use the file's raw_url from /api/fs/get, so Range requests and seeking work. HTML, SVG and
// XML files are never rendered: they are shown as plain text (or offered for download).
import { $, h, clear, extOf, joinPath, formatSize, toast, copyText, safeHref, downloadTarget } from './util.js';
import { getObject, readText, proxyUrl, settingOn, startDownload } from './state.js';
import { renderMarkdown } from './markdown.js';
import { showText } from './dialogs.js';

// Extensions that a browser would execute or interpret as a document: text view only.
const NEVER_RENDER = new Set(['html', 'htm', 'xhtml', 'shtml', 'svg', 'svgz', 'xml', 'xsl', 'xslt', 'mht', 'mhtml']);
// Extra text/code extensions (the server's text_types decides type 4; these are common additions).
const TEXT_EXT = new Set(('txt log csv tsv json jsonc yaml yml toml ini conf cfg env sh bash zsh fish py js mjs cjs ts tsx ' +
  'jsx css scss less go rs c h cpp hpp cc java kt kts swift rb php pl lua sql r m vtt srt ass ssa lrc diff patch ' +
  'gitignore gitattributes dockerfile makefile properties bat cmd ps1 vue gradle cmake nfo').split(' '));
const TEXT_LIMIT = 1024 * 1024;   // bytes of a text file shown (a Range request reads no more)

/** The icon of each kind of entry (file lists, search results, share pages, archives). */
export const KIND_ICONS = { folder: 'folder', image: 'image', video: 'video', audio: 'audio', text: 'text', markdown: 'text', pdf: 'text', other: 'file' };

/** How a file is previewed: image, video, audio, markdown, text, pdf or other. */
export function kindOf(item) {
  if (item.is_dir) return 'folder';
  const e = extOf(item.name);
  if (NEVER_RENDER.has(e)) return 'text';
  if (e === 'md' || e === 'markdown') return 'markdown';
  if (e === 'pdf') return 'pdf';
  switch (item.type) {
    case 5: return 'image';
    case 2: return 'video';
    case 3: return 'audio';
    case 4: return 'text';
    default: return TEXT_EXT.has(e) || TEXT_EXT.has(item.name.toLowerCase()) ? 'text' : 'other';
  }
}

const dlg = () => $('#preview');
const ctx = { dir: '/', images: [], index: -1, item: null, obj: null, seq: 0 };

/**
 * Where the previewed files come from: the user's own tree (fs/get, /p links), unless openPreview is given
 * another source (a share link's page: its get route and /sp links). `get(path)` answers an object with
 * `raw_url`; `read(obj, path, limit)` its text ({text, truncated}); `pdf(obj, path)` a same-origin URL for the
 * PDF frame; `download` and `copy` whether the Download and Copy link buttons are offered.
 */
const OWN = { get: getObject, read: readText, pdf: proxyUrl, download: true, copy: true };
let source = OWN;

/** Wires the overlay's buttons and keys (once, at start). */
export function initPreview() {
  const d = dlg();
  $('#preview-close').addEventListener('click', () => d.close());
  $('#preview-prev').addEventListener('click', () => step(-1));
  $('#preview-next').addEventListener('click', () => step(1));
  $('#preview-copy-link').addEventListener('click', () => { if (ctx.obj) copyLink(joinPath(ctx.dir, ctx.item.name), ctx.obj); });
  d.addEventListener('close', () => { ctx.seq++; stopMedia(); clear($('#preview-body')); ctx.item = null; ctx.obj = null; });
  d.addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement) return;
    if (ctx.images.length > 1 && ctx.index >= 0) {
      if (e.key === 'ArrowLeft') { e.preventDefault(); step(-1); }
      if (e.key === 'ArrowRight') { e.preventDefault(); step(1); }
    }
  });
  // A click on the dark area around the content closes the overlay.
  d.addEventListener('click', (e) => { if (e.target === d || e.target === $('#preview-body')) d.close(); });
}

/**
 * Opens the preview of `item` (an object of the listing) in folder `dir`. `siblings` is the folder's
 * listing in display order; its images are the previous/next sequence.
 */
export function openPreview(item, dir, siblings = [], from = null) {
  source = from ? { ...OWN, ...from } : OWN;
  $('#preview-download').hidden = !source.download;
  $('#preview-copy-link').hidden = !source.copy;
  ctx.dir = dir;
  ctx.images = siblings.filter(s => kindOf(s) === 'image');
  show(item);
  if (!dlg().open) dlg().showModal();
  $('#preview-close').focus();
}

function step(delta) {
  if (ctx.images.length < 2 || ctx.index < 0) return;
  const n = ctx.images.length;
  show(ctx.images[(ctx.index + delta + n) % n]);
}

function stopMedia() {
  for (const m of $('#preview-body').querySelectorAll('video, audio')) {
    m.pause();
    m.removeAttribute('src');
    m.load();               // aborts the download
  }
}

async function show(item) {
  const mine = ++ctx.seq;
  const body = $('#preview-body');
  const kind = kindOf(item);
  stopMedia();
  ctx.item = item;
  ctx.obj = null;
  ctx.index = kind === 'image' ? ctx.images.findIndex(i => i.name === item.name) : -1;
  const nav = ctx.images.length > 1 && ctx.index >= 0;
  $('#preview-prev').hidden = !nav;
  $('#preview-next').hidden = !nav;
  $('#preview-title').textContent = item.name + (nav ? `  (${ctx.index + 1}/${ctx.images.length})` : '');
  const dl = $('#preview-download');
  dl.removeAttribute('href');
  dl.download = item.name;
  $('#preview-copy-link').disabled = true;
  body.dataset.kind = kind;
  clear(body).append(h('p', { class: 'muted center', text: 'Loading…' }));

  const path = joinPath(ctx.dir, item.name);
  let obj;
  try {
    obj = await source.get(path);
  } catch (e) {
    if (mine === ctx.seq) clear(body).append(h('p', { class: 'form-error center', text: e.message }));
    return;
  }
  if (mine !== ctx.seq) return;
  const raw = safeHref(obj.raw_url);
  ctx.obj = obj;
  if (raw) dl.href = raw;
  if (downloadTarget(raw)) dl.target = '_blank'; else dl.removeAttribute('target');
  $('#preview-copy-link').disabled = false;
  const autoplay = (key) => settingOn(key);

  switch (kind) {
    case 'image': {
      const img = h('img', { alt: item.name, src: raw, decoding: 'async' });
      img.addEventListener('error', () => { if (mine === ctx.seq) clear(body).append(noPreview(item, obj, 'The image could not be shown.')); });
      clear(body).append(img);
      break;
    }
    case 'video':
    case 'audio': {
      const media = h(kind, { controls: true, preload: 'metadata', src: raw, autoplay: autoplay(kind + '_autoplay') });
      media.addEventListener('error', () => {
        if (mine === ctx.seq && media.getAttribute('src')) body.append(h('p', { class: 'muted center', text: 'This browser cannot play this file. Download it instead.' }));
      });
      clear(body).append(media);
      break;
    }
    case 'pdf':
      // Same-origin /p link (frame-src 'self'); /p always streams, even for cloud storages.
      clear(body).append(h('iframe', { src: source.pdf(obj, path), title: item.name }));
      break;
    case 'text':
    case 'markdown': {
      try {
        const { text, truncated } = await source.read(obj, path, TEXT_LIMIT);
        if (mine !== ctx.seq) return;
        clear(body);
        if (truncated) body.append(h('p', { class: 'muted center', text: `Showing the first ${formatSize(TEXT_LIMIT)} of ${formatSize(obj.size)}.` }));
        if (kind === 'markdown') {
          const art = h('article', { class: 'markdown' });
          art.append(renderMarkdown(text));
          body.append(art);
        } else {
          body.append(h('pre', { class: 'text-view', text }));
        }
      } catch (e) {
        if (mine === ctx.seq) clear(body).append(noPreview(item, obj, 'The file could not be read: ' + e.message));
      }
      break;
    }
    default:
      clear(body).append(noPreview(item, obj, 'No preview for this type of file.'));
  }
}

function noPreview(item, obj, message) {
  return h('div', { class: 'no-preview' },
    h('p', { text: message }),
    h('p', { class: 'muted', text: `${item.name} · ${formatSize(item.size)}` }),
    source.download && safeHref(obj.raw_url) ? h('a', { class: 'button primary', href: safeHref(obj.raw_url), download: item.name,
      target: downloadTarget(obj.raw_url) || false, rel: 'noopener', text: 'Download' }) : null);
}

// ---------------------------------------------------------------------------------------------
// Download and copy-link, used by the listing's row actions too.

/** Downloads a file through its raw_url (fetched fresh so that the sign is current). */
export async function downloadFile(path, name) {
  const obj = await getObject(path);
  startDownload(obj.raw_url, name);
}

/** Copies a file's raw_url (signed when signing is on); shows it in a dialog when the clipboard is refused. */
export async function copyLink(path, obj = null) {
  const o = obj || await getObject(path);
  if (await copyText(o.raw_url)) toast('Link copied');
  else await showText('Copy link', o.raw_url, 'Copy this link:');
}
