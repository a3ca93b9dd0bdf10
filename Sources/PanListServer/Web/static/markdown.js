// A tiny, safe Markdown renderer. It builds DOM nodes directly; no HTML string is ever parsed, so raw
// HTML in a document shows up as literal text. Supported: ATX/setext headings, paragraphs, hard breaks,
// emphasis, strong, strikethrough, code spans, fenced and indented code blocks, block quotes, nested
// ordered/unordered/task lists, simple pipe tables, horizontal rules, links and images (http/https only).

const MAX_DEPTH = 16;

/** Renders Markdown source into a DocumentFragment. */
export function renderMarkdown(src) {
  const frag = document.createDocumentFragment();
  const lines = String(src).replace(/\r\n?/g, '\n').replace(/\t/g, '    ').split('\n');
  renderBlocks(lines, frag, 0);
  return frag;
}

/** Returns the URL when it is absolute http(s), else null (javascript:, data:, relative… are refused). */
export function safeUrl(u) {
  try {
    const url = new URL(u);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch { return null; }
}

const el = (tag, parent) => { const e = document.createElement(tag); if (parent) parent.append(e); return e; };

// Block patterns
const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?/;
const LIST_ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(?:[ \t]+(.*)|[ \t]*)$/;
const TABLE_SEP = /^ *\|? *:?-+:? *(\| *:?-+:? *)*\|? *$/;
const BLANK = /^\s*$/;

function isBlockStart(line) {
  return FENCE.test(line) || HEADING.test(line) || HR.test(line) || QUOTE.test(line) || LIST_ITEM.test(line);
}

function renderBlocks(lines, parent, depth) {
  if (depth > MAX_DEPTH) { el('pre', parent).textContent = lines.join('\n'); return; }
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (BLANK.test(line)) { i++; continue; }

    if ((m = FENCE.exec(line))) {                       // fenced code block
      const fence = m[1], body = [];
      const close = new RegExp('^ {0,3}' + (fence[0] === '`' ? '`' : '~') + '{' + fence.length + ',}\\s*$');
      i++;
      while (i < lines.length && !close.test(lines[i])) body.push(lines[i++]);
      i++;                                              // skip the closing fence
      const code = el('code', el('pre', parent));
      const lang = m[2].replace(/[^\w+-]/g, '');
      if (lang) code.className = 'language-' + lang;
      code.textContent = body.join('\n');
      continue;
    }
    if (/^ {4}/.test(line)) {                           // indented code block
      const body = [];
      while (i < lines.length && (/^ {4}/.test(lines[i]) || BLANK.test(lines[i]))) body.push(lines[i++].slice(4));
      while (body.length && BLANK.test(body[body.length - 1])) body.pop();
      el('code', el('pre', parent)).textContent = body.join('\n');
      continue;
    }
    if ((m = HEADING.exec(line))) {
      renderInline(m[2] || '', el('h' + m[1].length, parent), depth);
      i++; continue;
    }
    if (HR.test(line)) { el('hr', parent); i++; continue; }
    if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && !BLANK.test(lines[i])) {
        if (QUOTE.test(lines[i])) inner.push(lines[i].replace(QUOTE, ''));
        else if (inner.length && !isBlockStart(lines[i])) inner.push(lines[i]);   // lazy continuation
        else break;
        i++;
      }
      renderBlocks(inner, el('blockquote', parent), depth + 1);
      continue;
    }
    if (LIST_ITEM.test(line)) { i = renderList(lines, i, parent, depth); continue; }
    if (line.includes('|') && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes('-')) {
      i = renderTable(lines, i, parent, depth); continue;
    }

    // Paragraph (or a setext heading when underlined with === or ---).
    const para = [line.replace(/^\s+/, '')];
    i++;
    let heading = 0;
    while (i < lines.length && !BLANK.test(lines[i])) {
      if (/^ {0,3}=+\s*$/.test(lines[i])) { heading = 1; i++; break; }
      if (/^ {0,3}-+\s*$/.test(lines[i])) { heading = 2; i++; break; }
      if (isBlockStart(lines[i])) break;
      para.push(lines[i].replace(/^\s+/, ''));
      i++;
    }
    renderInline(para.join('\n'), el(heading ? 'h' + heading : 'p', parent), depth);
  }
}

/** A list starting at lines[start]; returns the index after it. Items are rendered recursively. */
function renderList(lines, start, parent, depth) {
  const first = LIST_ITEM.exec(lines[start]);
  const ordered = /\d/.test(first[2]);
  const list = el(ordered ? 'ol' : 'ul', parent);
  if (ordered && parseInt(first[2], 10) !== 1) list.start = parseInt(first[2], 10);
  const sameKind = (m) => m && m[1].length <= first[1].length + 1 && /\d/.test(m[2]) === ordered;
  let i = start, loose = false;
  while (i < lines.length) {
    const m = LIST_ITEM.exec(lines[i]);
    if (!sameKind(m)) break;
    const indent = m[1].length + m[2].length + 1;      // where the item's content starts
    const body = [m[3] || ''];
    i++;
    let sawBlank = false;
    while (i < lines.length) {
      const l = lines[i];
      if (BLANK.test(l)) { sawBlank = true; body.push(''); i++; continue; }
      const lead = l.length - l.replace(/^ +/, '').length;
      if (lead >= indent) { body.push(l.slice(indent)); i++; sawBlank = false; continue; }
      if (sawBlank || isBlockStart(l)) break;            // a new item, or the list ended
      body.push(l.trim()); i++;                         // lazy paragraph continuation
    }
    let trailing = 0;
    while (body.length && body[body.length - 1] === '') { body.pop(); trailing++; }
    // Loose list: blank lines between items or between blocks of an item (not after the last one).
    if (body.includes('') || (trailing && i < lines.length && sameKind(LIST_ITEM.exec(lines[i])))) loose = true;
    const li = el('li', list);
    const task = /^\[([ xX])\]\s+/.exec(body[0]);
    if (task) {
      const box = el('input', li);
      box.type = 'checkbox'; box.disabled = true; box.checked = task[1] !== ' ';
      li.className = 'task';
      body[0] = body[0].slice(task[0].length);
    }
    renderBlocks(body, li, depth + 1);
  }
  if (!loose) {
    // Tight list: unwrap single paragraphs so items do not get paragraph margins.
    for (const li of list.children) {
      for (const p of [...li.children]) if (p.tagName === 'P') p.replaceWith(...p.childNodes);
    }
  }
  return i;
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  // Split on "|" that is not escaped as "\|" (no look-behind, for older Safari).
  const cells = [];
  let cur = '';
  for (let k = 0; k < s.length; k++) {
    if (s[k] === '\\' && s[k + 1] === '|') { cur += '|'; k++; }
    else if (s[k] === '|') { cells.push(cur.trim()); cur = ''; }
    else cur += s[k];
  }
  cells.push(cur.trim());
  return cells;
}

function renderTable(lines, start, parent, depth) {
  const head = splitRow(lines[start]);
  const aligns = splitRow(lines[start + 1]).map(c =>
    c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : c.startsWith(':') ? 'left' : '');
  const wrap = el('div', parent); wrap.className = 'table-wrap';
  const table = el('table', wrap);
  const tr = el('tr', el('thead', table));
  head.forEach((c, k) => { const th = el('th', tr); if (aligns[k]) th.style.textAlign = aligns[k]; renderInline(c, th, depth); });
  const tbody = el('tbody', table);
  let i = start + 2;
  while (i < lines.length && !BLANK.test(lines[i]) && lines[i].includes('|')) {
    const row = el('tr', tbody);
    const cells = splitRow(lines[i]);
    head.forEach((_, k) => { const td = el('td', row); if (aligns[k]) td.style.textAlign = aligns[k]; renderInline(cells[k] || '', td, depth); });
    i++;
  }
  return i;
}

// Inline syntax. Group numbers: 1 escape; 2 ticks, 3 code; 4 alt, 5 src; 6 text, 7 href; 8 autolink;
// 9 strong delimiter, 10 strong text; 11 strikethrough text; 12 *em* text, 13 _em_ text; 14 bare URL.
// Emphasis text may hold strong runs (*a **b** c*) but no lone delimiter.
const INLINE = new RegExp([
  /\\([!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~])/.source,
  /(`+)([^`]|[^`][\s\S]*?[^`])\2(?!`)/.source,
  /!\[([^\]]*)\]\(\s*<?((?:[^\s()<>]|\([^\s()<>]*\))*)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/.source,
  /\[((?:\\.|[^\]\\[]|\[[^\]]*\])*)\]\(\s*<?((?:[^\s()<>]|\([^\s()<>]*\))*)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/.source,
  /<(https?:\/\/[^>\s]+)>/.source,
  /(\*\*|__)(?=\S)([\s\S]*?\S)\9/.source,
  /~~(?=\S)([\s\S]*?\S)~~/.source,
  /\*(?=[^\s*])((?:[^*]|\*\*[^*]+\*\*)*?[^\s*])\*(?!\*)/.source,
  /_(?=[^\s_])((?:[^_]|__[^_]+__)*?[^\s_])_(?![_\w])/.source,
  /(https?:\/\/[^\s<>"]*[^\s<>".,;:!?)'\]])/.source,
].join('|'), 'g');

/** Appends text, turning "two spaces + newline" and "backslash + newline" into <br>. */
function appendText(parent, s) {
  const parts = s.split(/(?: {2,}|\\)\n/);
  parts.forEach((p, k) => {
    if (k) el('br', parent);
    if (p) parent.append(document.createTextNode(p));
  });
}

function renderInline(text, parent, depth) {
  if (depth > MAX_DEPTH) { parent.append(document.createTextNode(text)); return; }
  const re = new RegExp(INLINE.source, 'g');
  let last = 0, m;
  while ((m = re.exec(text))) {
    const at = m.index;
    // "_" inside a word (snake_case) is not emphasis.
    const underscore = (m[9] && m[9][0] === '_') || m[13] !== undefined;
    if (underscore && at > 0 && /[\p{L}\p{N}]/u.test(text[at - 1])) {
      re.lastIndex = at + 1;
      continue;
    }
    appendText(parent, text.slice(last, at));
    last = re.lastIndex;
    if (m[1] !== undefined) parent.append(document.createTextNode(m[1]));
    else if (m[3] !== undefined) {
      const code = m[3];
      el('code', parent).textContent = /^ .* $/.test(code) ? code.slice(1, -1) : code;
    } else if (m[5] !== undefined) {
      const src = safeUrl(m[5]);
      if (src) {
        const img = el('img', parent);
        img.alt = m[4]; img.loading = 'lazy'; img.referrerPolicy = 'no-referrer'; img.src = src;
      } else parent.append(document.createTextNode(m[4]));
    } else if (m[7] !== undefined) {
      link(parent, m[7], (a) => renderInline(m[6], a, depth + 1), m[6]);
    } else if (m[8] !== undefined) {
      link(parent, m[8], (a) => { a.textContent = m[8]; }, m[8]);
    } else if (m[10] !== undefined) {
      renderInline(m[10], el('strong', parent), depth + 1);
    } else if (m[11] !== undefined) {
      renderInline(m[11], el('del', parent), depth + 1);
    } else if (m[12] !== undefined || m[13] !== undefined) {
      renderInline(m[12] ?? m[13], el('em', parent), depth + 1);
    } else if (m[14] !== undefined) {
      link(parent, m[14], (a) => { a.textContent = m[14]; }, m[14]);
    }
  }
  appendText(parent, text.slice(last));
}

/** A link for http(s) URLs; any other target is shown as plain text (never a javascript: link). */
function link(parent, href, fill, fallback) {
  const url = safeUrl(href);
  if (!url) {
    const span = el('span', parent);
    fill(span);
    if (!span.textContent) span.textContent = fallback;
    return;
  }
  const a = el('a', parent);
  a.href = url;
  a.target = '_blank';
  a.rel = 'noopener noreferrer nofollow';
  fill(a);
}
