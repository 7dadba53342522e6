/**
 * HTML to Markdown for web.fetch. A page is outside input of any shape, so this is one linear
 * pass over the text (indexOf scanning, no backtracking regular expression over the document)
 * with bounded nesting: headings, paragraphs, links, emphasis, code, lists, tables and images
 * become Markdown; scripts, styles and other invisible parts are dropped.
 */

const SKIP = new Set([
  'script',
  'style',
  'noscript',
  'template',
  'svg',
  'head',
  'iframe',
  'object',
  'canvas',
  'select',
  'button',
]);
const BLOCK = new Set([
  'p',
  'div',
  'section',
  'article',
  'main',
  'header',
  'footer',
  'nav',
  'aside',
  'form',
  'table',
  'tr',
  'ul',
  'ol',
  'dl',
  'dt',
  'dd',
  'figure',
  'figcaption',
  'blockquote',
  'hr',
  'address',
  'details',
  'summary',
]);
const VOID = new Set([
  'br',
  'hr',
  'img',
  'input',
  'meta',
  'link',
  'area',
  'base',
  'col',
  'embed',
  'source',
  'track',
  'wbr',
]);
const MAX_DEPTH = 200;

const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
  copy: '©',
  reg: '®',
  mdash: '—',
  ndash: '–',
  hellip: '…',
  laquo: '«',
  raquo: '»',
  rsquo: '’',
  lsquo: '‘',
  rdquo: '”',
  ldquo: '“',
};

export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]{1,6}|#[0-9]{1,7}|[a-z]{2,8});/gi, (m, e: string) => {
    if (e[0] === '#') {
      const n = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : m;
    }
    return ENTITIES[e.toLowerCase()] ?? m;
  });
}

function attr(attrs: string, name: string): string | undefined {
  const re = new RegExp(`(?:^|\\s)${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s"'>]+))`, 'i');
  const m = re.exec(attrs);
  return m ? decodeEntities(m[1] ?? m[2] ?? m[3] ?? '') : undefined;
}

function absolute(href: string, base: string | undefined): string {
  if (!base) return href;
  try {
    return new URL(href, base).href;
  } catch {
    return href;
  }
}

/** indexOf ignoring ASCII case, without lower-casing the whole document per call. */
function indexOfCi(s: string, needle: string, from: number): number {
  const first = needle[0]!;
  for (let i = s.indexOf(first, from); i >= 0; i = s.indexOf(first, i + 1)) {
    if (s.slice(i, i + needle.length).toLowerCase() === needle) return i;
  }
  return -1;
}

/** The page's <title>, if any. */
export function htmlTitle(html: string): string | undefined {
  const lower = html.slice(0, 200_000).toLowerCase();
  const a = lower.indexOf('<title');
  if (a < 0) return undefined;
  const s = lower.indexOf('>', a);
  const e = lower.indexOf('</title', s);
  if (s < 0 || e < 0) return undefined;
  return (
    decodeEntities(html.slice(s + 1, e))
      .replace(/\s+/g, ' ')
      .trim() || undefined
  );
}

/** The Markdown written so far and the open elements that shape what comes next. */
interface MarkdownWriter {
  out: string;
  /** Open script/style-like elements, whose contents are dropped. */
  skip: number;
  /** Open <pre> elements, whose whitespace is kept. */
  pre: number;
  lists: { ordered: boolean; n: number }[];
  /** Each open <a>'s target, undefined for a link not worth keeping. */
  links: (string | undefined)[];
  base: string | undefined;
}

/** Ends the current line (n = 1) or paragraph (n = 2), trimming trailing blanks. */
function newline(w: MarkdownWriter, n: 1 | 2): void {
  let out = w.out;
  let end = out.length;
  while (end > 0 && (out[end - 1] === ' ' || out[end - 1] === '\t')) end--;
  if (end < out.length) out = out.slice(0, end);
  if (out === '') {
    w.out = out;
    return;
  }
  const want = '\n'.repeat(n);
  if (!out.endsWith(want)) out += out.endsWith('\n') ? '\n'.repeat(n - 1) : want;
  w.out = out;
}

function writeText(w: MarkdownWriter, t: string): void {
  if (w.skip > 0 || t === '') return;
  if (w.pre > 0) {
    w.out += decodeEntities(t);
    return;
  }
  let s = decodeEntities(t.replace(/\s+/g, ' '));
  const last = w.out[w.out.length - 1];
  if (last === undefined || last === ' ' || last === '\n' || last === '(') s = s.replace(/^ /, '');
  w.out += s;
}

/** Markdown for `html`; `base` resolves relative links. */
export function htmlToMarkdown(html: string, base?: string): string {
  const w: MarkdownWriter = { out: '', skip: 0, pre: 0, lists: [], links: [], base };
  let depth = 0;
  let i = 0;
  while (i < html.length) {
    const lt = html.indexOf('<', i);
    if (lt < 0) {
      writeText(w, html.slice(i));
      break;
    }
    writeText(w, html.slice(i, lt));
    if (html.startsWith('<!--', lt)) {
      const end = html.indexOf('-->', lt + 4);
      i = end < 0 ? html.length : end + 3;
      continue;
    }
    if (html[lt + 1] === '!' || html[lt + 1] === '?') {
      const end = html.indexOf('>', lt);
      i = end < 0 ? html.length : end + 1;
      continue;
    }
    const gt = html.indexOf('>', lt);
    if (gt < 0) {
      writeText(w, html.slice(lt));
      break;
    }
    i = gt + 1;
    const raw = html.slice(lt + 1, gt);
    const closing = raw.startsWith('/');
    const m = /^\/?([a-zA-Z][a-zA-Z0-9-]*)/.exec(raw);
    if (!m) {
      writeText(w, html.slice(lt, gt + 1));
      continue;
    }
    const tag = m[1]!.toLowerCase();
    const attrs = raw.slice(m[0].length);
    if (SKIP.has(tag)) {
      if (closing) w.skip = Math.max(0, w.skip - 1);
      else if (!attrs.endsWith('/')) {
        // Skip to the matching close tag: the contents of script/style are not HTML.
        const close = indexOfCi(html, `</${tag}`, i);
        i = close < 0 ? html.length : close;
        w.skip++;
      }
      continue;
    }
    if (w.skip > 0) continue;
    if (!closing && !VOID.has(tag)) depth++;
    if (closing) depth = Math.max(0, depth - 1);
    if (depth > MAX_DEPTH) continue;
    writeTag(w, tag, closing, attrs);
  }
  return w.out
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** Writes the Markdown an opening or closing tag stands for. */
function writeTag(w: MarkdownWriter, tag: string, closing: boolean, attrs: string): void {
  switch (tag) {
    case 'h1':
    case 'h2':
    case 'h3':
    case 'h4':
    case 'h5':
    case 'h6':
      newline(w, 2);
      if (!closing) w.out += `${'#'.repeat(Number(tag[1]))} `;
      break;
    case 'br':
      w.out += w.pre > 0 ? '\n' : '  \n';
      break;
    case 'hr':
      newline(w, 2);
      w.out += '---';
      newline(w, 2);
      break;
    case 'pre':
      if (closing) {
        w.pre = Math.max(0, w.pre - 1);
        if (!w.out.endsWith('\n')) w.out += '\n';
        w.out += '```';
        newline(w, 2);
      } else {
        newline(w, 2);
        w.pre++;
        w.out += '```\n';
      }
      break;
    case 'code':
      if (w.pre === 0) w.out += '`';
      break;
    case 'strong':
    case 'b':
      w.out += '**';
      break;
    case 'em':
    case 'i':
      w.out += '_';
      break;
    case 'a':
      if (closing) {
        const href = w.links.pop();
        if (href !== undefined) w.out += `](${href})`;
      } else {
        const href = attr(attrs, 'href');
        const keep = href !== undefined && href !== '' && !href.startsWith('javascript:') && !href.startsWith('#');
        w.links.push(keep ? absolute(href, w.base) : undefined);
        if (keep) w.out += '[';
      }
      break;
    case 'img': {
      const src = attr(attrs, 'src');
      const alt = attr(attrs, 'alt') ?? '';
      if (src && !src.startsWith('data:')) w.out += `![${alt.replace(/\s+/g, ' ')}](${absolute(src, w.base)})`;
      break;
    }
    case 'ul':
    case 'ol':
      if (closing) w.lists.pop();
      else if (w.lists.length < 20) w.lists.push({ ordered: tag === 'ol', n: 0 });
      newline(w, w.lists.length > (closing ? 0 : 1) ? 1 : 2);
      break;
    case 'li':
      if (!closing) {
        newline(w, 1);
        const l = w.lists[w.lists.length - 1];
        w.out += `${'  '.repeat(Math.max(0, w.lists.length - 1))}${l?.ordered ? `${++l.n}.` : '-'} `;
      }
      break;
    case 'td':
    case 'th':
      if (!closing) w.out += '| ';
      else w.out += ' ';
      break;
    case 'blockquote':
      newline(w, 2);
      if (!closing) w.out += '> ';
      break;
    case 'title':
      break;
    default:
      if (BLOCK.has(tag)) newline(w, tag === 'tr' ? 1 : 2);
  }
}
