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

const HEADER_RE = /^\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/;
const KEY_RE = /^((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=/;

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
    const header = HEADER_RE.exec(line);
    if (header) {
      table = splitDotted(header[1]!).join('.');
      tableLine = idx + 1;
      if (!keys.has(table)) keys.set(table, { line: idx + 1, column: indent + 1, table: '' });
      continue;
    }
    const km = KEY_RE.exec(line);
    if (!km) continue;
    const path = [...(table ? [table] : []), ...splitDotted(km[1]!)].join('.');
    if (!keys.has(path)) {
      const info: TomlKeyInfo = { line: idx + 1, column: indent + 1, table };
      if (tableLine !== undefined && table) info.tableLine = tableLine;
      keys.set(path, info);
    }
    const rest = line.slice(km[0].length).trim();
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
  return detail;
}
