import type { Locator, Position } from './issues.js';

/**
 * Finds where keys and table headers stand in TOML source, so validation errors can name a
 * line and column. smol-toml gives positions for syntax errors only; this scanner covers the
 * rest. It understands comments, table headers, dotted and quoted keys, multi-line strings and
 * arrays spanning lines — enough to locate every key of an agent file.
 */

export interface TomlKeyInfo extends Position {
  /** The table the key was written under (`''` for top level), and that header's line. */
  table: string;
  tableLine?: number;
}

function unquote(k: string): string {
  const t = k.trim();
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'"))) return t.slice(1, -1);
  return t;
}

function splitDotted(key: string): string[] {
  const parts: string[] = [];
  let cur = '';
  let quote: string | null = null;
  for (const ch of key) {
    if (quote) {
      if (ch === quote) quote = null;
      cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      cur += ch;
    } else if (ch === '.') {
      parts.push(unquote(cur));
      cur = '';
    } else cur += ch;
  }
  parts.push(unquote(cur));
  return parts;
}

/** Net change of `[`/`]` depth on a piece of a line, ignoring strings and comments. */
function bracketDelta(s: string): number {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quote) {
      if (ch === '\\' && quote === '"') i++;
      else if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '#') break;
    else if (ch === '[' || ch === '{') depth++;
    else if (ch === ']' || ch === '}') depth--;
  }
  return depth;
}

const BARE_KEY_CHAR = /[A-Za-z0-9_-]/;
const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t';

/**
 * A table header line (`[a.b]`, `[[a.b]]`, `["x]y"]`, trailing comment allowed): the key text
 * between the brackets, trimmed, or undefined when the line is not a header.
 *
 * Why a scanner and not a regex: the regex this replaces (`\[\[?\s*([^\]]+?)\s*\]\]?...`) let
 * spaces be matched three ways, so a 6.4 KB header of spaces took 42 s to reject and blocked the
 * event loop. This walks the line once, so its cost is linear in the line's length.
 */
export function tomlHeaderKey(line: string): string | undefined {
  if (line[0] !== '[') return undefined;
  const array = line[1] === '[';
  let i = array ? 2 : 1;
  const start = i;
  let quote: string | null = null;
  for (; i < line.length; i++) {
    const ch = line[i]!;
    if (quote) {
      if (ch === '\\' && quote === '"') i++;
      else if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === ']') break;
  }
  if (i >= line.length) return undefined;
  const key = line.slice(start, i).trim();
  if (key === '') return undefined;
  i++;
  if (array) {
    if (line[i] !== ']') return undefined;
    i++;
  }
  while (isSpace(line[i])) i++;
  return i >= line.length || line[i] === '#' ? key : undefined;
}

/**
 * The key of a `key = value` line (bare, quoted or dotted, as written), and where the value
 * starts; undefined when the line does not start with a key and `=`. One pass, linear.
 */
export function tomlKeyPrefix(line: string): { key: string; end: number } | undefined {
  let i = 0;
  let lastPartEnd = 0;
  for (;;) {
    // one key part: bare, "basic" or 'literal'
    const ch = line[i];
    if (ch === '"' || ch === "'") {
      const close = line.indexOf(ch, i + 1);
      if (close < 0) return undefined;
      i = close + 1;
    } else {
      const from = i;
      while (i < line.length && BARE_KEY_CHAR.test(line[i]!)) i++;
      if (i === from) return undefined;
    }
    lastPartEnd = i;
    while (isSpace(line[i])) i++;
    if (line[i] === '.') {
      i++;
      while (isSpace(line[i])) i++;
      continue;
    }
    if (line[i] === '=') return { key: line.slice(0, lastPartEnd), end: i + 1 };
    return undefined;
  }
}

export function scanTomlKeys(source: string): Map<string, TomlKeyInfo> {
  const keys = new Map<string, TomlKeyInfo>();
  const lines = source.split(/\r?\n/);
  let table = '';
  let tableLine: number | undefined;
  let multiline: string | null = null;
  let arrayDepth = 0;
  for (let idx = 0; idx < lines.length; idx++) {
    const raw = lines[idx]!;
    if (multiline) {
      if (raw.includes(multiline)) multiline = null;
      continue;
    }
    if (arrayDepth > 0) {
      arrayDepth += bracketDelta(raw);
      continue;
    }
    const indent = raw.length - raw.trimStart().length;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = tomlHeaderKey(line);
    if (header !== undefined) {
      table = splitDotted(header).join('.');
      tableLine = idx + 1;
      if (!keys.has(table)) keys.set(table, { line: idx + 1, column: indent + 1, table: '' });
      continue;
    }
    const km = tomlKeyPrefix(line);
    if (!km) continue;
    const path = [...(table ? [table] : []), ...splitDotted(km.key)].join('.');
    if (!keys.has(path)) {
      const info: TomlKeyInfo = { line: idx + 1, column: indent + 1, table };
      if (tableLine !== undefined && table) info.tableLine = tableLine;
      keys.set(path, info);
    }
    const rest = line.slice(km.end).trim();
    for (const delim of ["'''", '"""']) {
      if (rest.startsWith(delim) && !rest.slice(3).includes(delim)) multiline = delim;
    }
    if (!multiline && (rest.startsWith('[') || rest.startsWith('{'))) arrayDepth = Math.max(0, bracketDelta(rest));
  }
  return keys;
}

export function tomlLocator(source: string): Locator {
  const keys = scanTomlKeys(source);
  return (path) => {
    for (let n = path.length; n > 0; n--) {
      const hit = keys.get(path.slice(0, n).map(String).join('.'));
      if (hit) return { line: hit.line, column: hit.column };
    }
    return undefined;
  };
}

/** A readable one-line message for a smol-toml syntax error (without its code-frame). */
export function tomlSyntaxMessage(e: { message: string; line: number; column: number }, source: string): string {
  const detail = (e.message.split('\n')[0] ?? e.message).replace(/^Invalid TOML document: /, '');
  // smol-toml reports a string left open at the end of a line as a "control character" (the newline).
  const lineText = source.split(/\r?\n/)[e.line - 1];
  if (/control characters/.test(detail) && lineText !== undefined && e.column > lineText.length) {
    return 'unterminated string: the closing quote is missing at the end of the line';
  }
  if (/redefine an already defined/.test(detail) && lineText !== undefined) {
    const earlier = earlierDefinition(source, e.line);
    if (earlier) return earlier;
  }
  return detail;
}

const HEADER = /^\s*\[\s*([^[\]]+?)\s*\]\s*(#.*)?$/;
const KEY = /^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=/;

/**
 * For "trying to redefine an already defined table or value" at `line`: the earlier line that
 * defined it, said in words (TOML allows a table or key once; pasting a second `[llm]` block into a
 * file that has one is the usual way to get here). Undefined when it cannot be found.
 */
function earlierDefinition(source: string, line: number): string | undefined {
  const lines = source.split(/\r?\n/);
  const here = lines[line - 1] ?? '';
  const header = HEADER.exec(here);
  const norm = (t: string) => t.replace(/\s+/g, '');
  if (header) {
    const name = norm(header[1]!);
    for (let i = 0; i < line - 1; i++) {
      const h = HEADER.exec(lines[i]!);
      if (h && norm(h[1]!) === name)
        return `the table [${name}] is defined twice: first on line ${i + 1}, again on line ${line}. A TOML table may appear once: move the keys under line ${line} into the [${name}] on line ${i + 1} (and delete the second header)`;
    }
    return undefined;
  }
  const key = KEY.exec(here);
  if (!key) return undefined;
  // The table this key is in: the last header above it; the same key earlier in that table is the first one.
  let start = 0;
  let table = '';
  for (let i = line - 2; i >= 0; i--) {
    const h = HEADER.exec(lines[i]!);
    if (h) {
      start = i + 1;
      table = norm(h[1]!);
      break;
    }
  }
  for (let i = start; i < line - 1; i++) {
    const k = KEY.exec(lines[i]!);
    if (k && k[1] === key[1])
      return `${key[1]} is set twice${table ? ` in [${table}]` : ''}: first on line ${i + 1}, again on line ${line}. Keep one of them`;
  }
  return undefined;
}
