/**
 * Markdown frontmatter: finding the `---` block, and reading it as leniently as Claude Code does.
 * Everything here scans the text once, by hand or with anchored, non-backtracking patterns, so a
 * hostile file (a 100,000-space line, thousands of lines) costs linear time.
 */
import type { Document, LineCounter, parseDocument } from 'yaml';
import { yaml } from './yaml.js';

export type FrontmatterSplit =
  | { ok: true; yaml: string; body: string; bodyLine: number }
  | { ok: false; reason: 'missing' }
  /** A `---` block exists but not at line 1, column 1 (indented, or after blank lines): Claude Code does not read it either. */
  | { ok: false; reason: 'not_at_start'; line: number; column: number }
  | { ok: false; reason: 'unclosed' };

/** End of the line starting at `start` (index of its `\n`, or the text length). */
function lineEnd(text: string, start: number): number {
  const i = text.indexOf('\n', start);
  return i < 0 ? text.length : i;
}

/** `---` with optional trailing spaces, tabs or `\r`. */
function isFence(text: string, start: number, end: number): boolean {
  if (!text.startsWith('---', start)) return false;
  for (let i = start + 3; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d) return false;
  }
  return true;
}

function isBlank(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d) return false;
  }
  return true;
}

/** Splits `---\nYAML\n---\nbody`; the YAML's CRLF line ends become LF (the body is kept as it is). */
export function splitFrontmatter(text: string): FrontmatterSplit {
  const firstEnd = lineEnd(text, 0);
  if (!isFence(text, 0, firstEnd)) return misplaced(text);
  let start = firstEnd + 1;
  let line = 2;
  while (start <= text.length) {
    const end = lineEnd(text, start);
    if (isFence(text, start, end)) {
      const yaml = firstEnd + 1 >= start ? '' : text.slice(firstEnd + 1, start - 1).replace(/\r$/gm, '');
      return { ok: true, yaml, body: text.slice(Math.min(end + 1, text.length)), bodyLine: line + 1 };
    }
    if (end >= text.length) break;
    start = end + 1;
    line++;
  }
  return { ok: false, reason: 'unclosed' };
}

/** No fence on line 1: is the first non-blank line an indented (or later) `---` that opens a block? */
function misplaced(text: string): FrontmatterSplit {
  let start = 0;
  let line = 1;
  while (start < text.length) {
    const end = lineEnd(text, start);
    if (!isBlank(text, start, end)) {
      let col = start;
      while (text.charCodeAt(col) === 0x20 || text.charCodeAt(col) === 0x09) col++;
      if (!isFence(text, col, end)) return { ok: false, reason: 'missing' };
      // Only a block (a second `---` line follows) is frontmatter; a lone rule is Markdown.
      for (let s = end + 1; s < text.length;) {
        const e = lineEnd(text, s);
        let c = s;
        while (text.charCodeAt(c) === 0x20 || text.charCodeAt(c) === 0x09) c++;
        if (isFence(text, c, e)) return { ok: false, reason: 'not_at_start', line, column: col - start + 1 };
        s = e + 1;
      }
      return { ok: false, reason: 'missing' };
    }
    start = end + 1;
    line++;
  }
  return { ok: false, reason: 'missing' };
}

export interface LenientChange {
  key: string;
  /** 1-based line within the YAML text. */
  line: number;
  /** `colon`: the value holds `": "`; `special`: it starts with a YAML indicator (`*`, `` ` ``, `@`...) or is otherwise not valid YAML. */
  kind: 'colon' | 'special';
}

/** Reads the key of a top-level `key: value` line by hand; -1 when the line is not one. */
function keyEnd(line: string): number {
  const c0 = line.charCodeAt(0);
  const isStart = (c0 >= 65 && c0 <= 90) || (c0 >= 97 && c0 <= 122) || c0 === 95;
  if (!isStart) return -1;
  let i = 1;
  for (; i < line.length; i++) {
    const c = line.charCodeAt(i);
    const word =
      (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 95 || c === 45 || c === 46;
    if (!word) break;
  }
  if (line.charCodeAt(i) !== 58) return -1; // ':'
  const next = line.charCodeAt(i + 1);
  if (i + 1 < line.length && next !== 0x20 && next !== 0x09 && next !== 0x0d) return -1;
  return i;
}

// prettyErrors off: yaml builds each error's context by scanning the source, and a hostile line
// (43 KB of `""`) gives it 21,572 errors — 2 s of CPU. Positions come from the LineCounter instead,
// for the few errors that are reported (parse.ts).
const YAML_OPTS = { prettyErrors: false, uniqueKeys: true } as const;

/**
 * yaml's parseDocument without stack traces on its errors: each error is an Error, and capturing
 * its stack is most of the cost when a hostile line makes tens of thousands of them (no caller
 * reads those stacks).
 */
function parseYaml(text: string, opts: Parameters<typeof parseDocument>[1]): Document {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return yaml().parseDocument(text, opts);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * A document strict YAML cannot read as plain data: errors, a tag no schema knows
 * (`description: !IMPORTANT: ...` is text to Claude Code, a custom tag to YAML), or an alias
 * with no anchor.
 */
function unreadable(doc: Document): boolean {
  if (doc.errors.length > 0 || doc.warnings.some((w) => w.code === 'TAG_RESOLVE_FAILED')) return true;
  // `description: *new*` is an alias to no anchor: valid syntax, but it fails when read.
  try {
    doc.toJS({ maxAliasCount: 100 });
    return false;
  } catch {
    return true;
  }
}

/**
 * Claude Code reads a top-level value that strict YAML refuses — `description: Use when: ...`,
 * `description: **BOLD**: ...`, a leading backtick, `@`, `%`, `*`, `&`, `!` — as plain text. This
 * quotes each such entry (its continuation lines folded in, as YAML folds a plain scalar), keeping
 * the line count so positions stay right. Entries that parse on their own are left alone.
 */
export function quoteUnsafePlainScalars(yamlText: string): { text: string; changed: LenientChange[] } {
  const lines = yamlText.split('\n');
  const out: string[] = [];
  const changed: LenientChange[] = [];
  for (let i = 0; i < lines.length;) {
    const line = lines[i]!;
    const k = keyEnd(line);
    const value = k < 0 ? '' : line.slice(k + 1).trim();
    const first = value.charAt(0);
    // Left as written (so a real mistake is still a syntax error): block scalars, comments, quoted
    // strings (but not `"Expert" in X`, text that merely starts with a quoted word) and what looks
    // like a whole flow list or map (`[Read, Grep]`).
    const last = value.charAt(value.length - 1);
    // (`[DEPRECATED] Use when...` is text: the bracket closes before the end.)
    const flow =
      (first === '[' && (last === ']' || !value.includes(']'))) ||
      (first === '{' && (last === '}' || !value.includes('}')));
    const quoted = (first === '"' || first === "'") && !closesBeforeEnd(value);
    if (k < 0 || value === '' || first === '|' || first === '>' || first === '#' || quoted || flow) {
      out.push(line);
      i++;
      continue;
    }
    // The entry's continuation lines: indented or blank (trailing blank lines belong to no entry).
    let j = i + 1;
    while (j < lines.length && (lines[j]!.trim() === '' || lines[j]!.startsWith(' ') || lines[j]!.startsWith('\t')))
      j++;
    while (j > i + 1 && lines[j - 1]!.trim() === '') j--;
    const entry = lines.slice(i, j);
    if (!unreadable(parseYaml(entry.join('\n'), YAML_OPTS))) {
      out.push(...entry);
      i = j;
      continue;
    }
    // Fold as YAML folds a multi-line plain scalar: lines joined by a space, a blank line is a newline.
    let folded = value;
    let pendingBreaks = 0;
    for (const cont of entry.slice(1)) {
      const t = cont.trim();
      if (t === '') pendingBreaks++;
      else {
        folded += pendingBreaks > 0 ? '\n'.repeat(pendingBreaks) : ' ';
        folded += t;
        pendingBreaks = 0;
      }
    }
    const key = line.slice(0, k);
    out.push(`${key}: ${JSON.stringify(folded)}`, ...entry.slice(1).map(() => ''));
    changed.push({ key, line: i + 1, kind: folded.includes(': ') ? 'colon' : 'special' });
    i = j;
  }
  return { text: out.join('\n'), changed };
}

/** `"Expert" in things`: the quoted part closes before the end of the value (one pass). */
function closesBeforeEnd(value: string): boolean {
  const q = value.charAt(0);
  for (let i = 1; i < value.length; i++) {
    const c = value.charAt(i);
    if (q === '"' && c === '\\') i++;
    else if (c === q) {
      if (q === "'" && value.charAt(i + 1) === "'") i++;
      else return value.slice(i + 1).trim() !== '';
    }
  }
  return false;
}

export interface FrontmatterYaml {
  doc: Document;
  lineCounter: LineCounter;
  changed: LenientChange[];
  /** Keys given more than once (the last one wins, as in Claude Code's reader). */
  duplicates: string[];
}

/** Parses frontmatter YAML strictly, then (on errors) leniently; returns the strict errors when neither works. */
export function parseFrontmatterYaml(yamlText: string): FrontmatterYaml | { doc: Document; lineCounter: LineCounter } {
  const lineCounter = new (yaml().LineCounter)();
  const strict = parseYaml(yamlText, { ...YAML_OPTS, lineCounter });
  if (!unreadable(strict)) return { doc: strict, lineCounter, changed: [], duplicates: [] };
  const lenient = quoteUnsafePlainScalars(yamlText);
  const text = lenient.changed.length > 0 ? lenient.text : yamlText;
  const lc2 = new (yaml().LineCounter)();
  const retry = lenient.changed.length > 0 ? parseYaml(text, { ...YAML_OPTS, lineCounter: lc2 }) : strict;
  if (retry.errors.length === 0) return { doc: retry, lineCounter: lc2, changed: lenient.changed, duplicates: [] };
  if (strict.errors.length === 0) return { doc: strict, lineCounter, changed: [], duplicates: [] };
  if (retry.errors.every((e) => e.code === 'DUPLICATE_KEY')) {
    const lc3 = new (yaml().LineCounter)();
    const loose = parseYaml(text, { ...YAML_OPTS, uniqueKeys: false, lineCounter: lc3 });
    if (loose.errors.length === 0) {
      const seen = new Set<string>();
      const duplicates = new Set<string>();
      const items = (loose.contents as { items?: { key?: { value?: unknown } }[] } | null)?.items ?? [];
      for (const p of items) {
        const key = String(p.key?.value);
        if (seen.has(key)) duplicates.add(key);
        seen.add(key);
      }
      return { doc: loose, lineCounter: lc3, changed: lenient.changed, duplicates: [...duplicates] };
    }
  }
  return { doc: strict, lineCounter };
}
