/**
 * workspace.grep: Claude Code's Grep (ripgrep's options) over the workspace. The regular
 * expression comes from the model and JavaScript's engine backtracks, so the matching runs in a
 * worker thread that is terminated at a deadline: a catastrophic pattern costs that much time and
 * is reported, never a blocked server. Files scanned, bytes read and output are capped too.
 */
import { basename } from 'node:path';
import type * as fsModule from 'node:fs';
import { Worker } from 'node:worker_threads';
import type * as workerThreads from 'node:worker_threads';
import type { AuditedTool } from '../audited.js';
import { toolError } from '../audited.js';
import { guarded, int, MAX_LINE_CHARS, MAX_RESULT_CHARS, pathDoesNotExist, str } from './file-tools.js';
import { Glob } from './glob.js';
import type { Workspace } from './grant.js';
import { WorkspaceError } from './grant.js';
import { lstatAt, readFileNoFollow } from './at.js';
import { DEFAULT_SKIP_DIRS, walkFiles, type WalkEntry } from './walk.js';

const MAX_FILES = 20_000;
const MAX_TOTAL_BYTES = 64 * 1024 * 1024;
const MAX_FILE_BYTES = 8 * 1024 * 1024;
const MAX_PATTERN = 10_000;
const DEFAULT_HEAD_LIMIT = 250;
/** Longest the matching may run, whatever the call's own deadline. */
export const GREP_TIME_MS = 20_000;
const WORKER_HEAP_MB = 256;

/** ripgrep's --type names for the common languages, as file name globs. */
const TYPES: Record<string, string[]> = {
  js: ['*.js', '*.jsx', '*.mjs', '*.cjs'],
  ts: ['*.ts', '*.tsx', '*.mts', '*.cts'],
  py: ['*.py', '*.pyi'],
  rust: ['*.rs'],
  go: ['*.go'],
  java: ['*.java'],
  kotlin: ['*.kt', '*.kts'],
  c: ['*.c', '*.h'],
  cpp: ['*.cpp', '*.cc', '*.cxx', '*.hpp', '*.hh', '*.hxx', '*.h'],
  cs: ['*.cs'],
  rb: ['*.rb'],
  ruby: ['*.rb'],
  php: ['*.php'],
  swift: ['*.swift'],
  sh: ['*.sh', '*.bash'],
  md: ['*.md', '*.markdown'],
  markdown: ['*.md', '*.markdown'],
  json: ['*.json'],
  yaml: ['*.yaml', '*.yml'],
  toml: ['*.toml'],
  html: ['*.html', '*.htm'],
  css: ['*.css', '*.scss', '*.sass', '*.less'],
  sql: ['*.sql'],
  xml: ['*.xml'],
  txt: ['*.txt'],
};

type Mode = 'content' | 'files_with_matches' | 'count';

interface WorkerInput {
  /** The workspace's real root: files are read from it by descriptors, no link followed. */
  root: string;
  /** The private directories' identities: a file under one is not read, whatever its path. */
  privateIds: string[];
  source: string;
  flags: string;
  multiline: boolean;
  files: { path: string; display: string }[];
  mode: Mode;
  before: number;
  after: number;
  lineNumbers: boolean;
  maxLines: number;
  maxFileBytes: number;
  maxLineChars: number;
}

interface FileResult {
  display: string;
  count: number;
  lines: string[];
}

/**
 * The worker's body. It is sent to the worker as source text (Function.prototype.toString), so it
 * must use nothing from this module's scope: everything arrives as workerData.
 */
function grepWorker(readNoFollow: typeof readFileNoFollow): void {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { parentPort, workerData } = require('node:worker_threads') as typeof workerThreads;
  const fs = require('node:fs') as typeof fsModule;
  /* eslint-enable @typescript-eslint/no-require-imports */
  const input = workerData as WorkerInput;
  const re = new RegExp(input.source, input.flags + (input.multiline ? 'gms' : ''));
  const out: FileResult[] = [];
  let emitted = 0;
  const cut = (s: string) => (s.length > input.maxLineChars ? `${s.slice(0, input.maxLineChars)}…` : s);
  for (const f of input.files) {
    if (emitted >= input.maxLines) break;
    let buf: Buffer;
    try {
      buf = readNoFollow(fs, input.root, input.privateIds, f.path);
    } catch {
      continue;
    }
    if (buf.length > input.maxFileBytes || buf.subarray(0, 8000).includes(0)) continue;
    const text = buf.toString('utf8');
    const lines = text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    const matched: number[] = [];
    let count = 0;
    if (input.multiline) {
      const starts: number[] = [0];
      for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
      const lineAt = (pos: number) => {
        let lo = 0;
        let hi = starts.length - 1;
        while (lo < hi) {
          const mid = (lo + hi + 1) >> 1;
          if (starts[mid]! <= pos) lo = mid;
          else hi = mid - 1;
        }
        return lo;
      };
      re.lastIndex = 0;
      let last = -1;
      for (let m = re.exec(text); m; m = re.exec(text)) {
        count++;
        const a = lineAt(m.index);
        const b = lineAt(m.index + Math.max(0, m[0].length - 1));
        for (let l = Math.max(a, last + 1); l <= b; l++) matched.push(l);
        last = Math.max(last, b);
        if (m[0].length === 0) re.lastIndex++;
      }
    } else {
      for (let i = 0; i < lines.length; i++) {
        const l = lines[i]!;
        if (re.test(l.endsWith('\r') ? l.slice(0, -1) : l)) {
          matched.push(i);
          count++;
        }
      }
    }
    if (count === 0) continue;
    const rows: string[] = [];
    if (input.mode === 'content') {
      const show = new Map<number, boolean>();
      for (const i of matched) {
        for (let j = Math.max(0, i - input.before); j <= Math.min(lines.length - 1, i + input.after); j++)
          if (!show.has(j)) show.set(j, false);
        show.set(i, true);
      }
      const order = [...show.keys()].sort((a, b) => a - b);
      let prev = -2;
      for (const i of order) {
        if ((input.before > 0 || input.after > 0) && prev >= 0 && i > prev + 1) rows.push('--');
        const sep = show.get(i) ? ':' : '-';
        const line = cut((lines[i] ?? '').replace(/\r$/, ''));
        rows.push(input.lineNumbers ? `${f.display}${sep}${i + 1}${sep}${line}` : `${f.display}${sep}${line}`);
        prev = i;
      }
    }
    emitted += input.mode === 'content' ? rows.length : 1;
    out.push({ display: f.display, count, lines: rows });
  }
  parentPort!.postMessage(out);
}

const WORKER_SOURCE = `(${grepWorker.toString()})(${readFileNoFollow.toString()})`;

function runWorker(input: WorkerInput, timeoutMs: number): Promise<FileResult[]> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: input,
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
    });
    const timer = setTimeout(() => {
      void w.terminate();
      reject(
        new WorkspaceError(
          `the search took longer than ${timeoutMs} ms and was stopped (a pattern with nested repetition such as (a+)+ can backtrack for ever: simplify it, or narrow path, glob or type)`,
          'timeout',
        ),
      );
    }, timeoutMs);
    w.once('message', (m: FileResult[]) => {
      clearTimeout(timer);
      void w.terminate();
      resolve(m);
    });
    w.once('error', (e) => {
      clearTimeout(timer);
      reject(
        new WorkspaceError(`the search failed: ${e.message}`, e.message.includes('memory') ? 'out_of_memory' : 'error'),
      );
    });
    w.once('exit', (code) => {
      clearTimeout(timer);
      reject(new WorkspaceError(`the search stopped (exit code ${code})`, 'error'));
    });
  });
}

function flag(args: Record<string, unknown>, key: string): boolean | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new WorkspaceError(`"${key}" must be true or false`, 'invalid_input');
  return v;
}

function page<T>(items: T[], offset: number, limit: number): { shown: T[]; more: boolean } {
  const rest = items.slice(offset);
  if (limit === 0) return { shown: rest, more: false };
  return { shown: rest.slice(0, limit), more: rest.length > limit };
}

function capChars(lines: string[]): string {
  let out = '';
  for (const l of lines) {
    if (out.length + l.length + 1 > MAX_RESULT_CHARS)
      return `${out}… [output cut at ${MAX_RESULT_CHARS} characters: narrow the search or use head_limit and offset]`;
    out += (out === '' ? '' : '\n') + l;
  }
  return out;
}

const GREP_INPUT_SCHEMA: AuditedTool['input_schema'] = {
  type: 'object',
  properties: {
    pattern: { type: 'string', description: 'The regular expression pattern to search for in file contents' },
    path: { type: 'string', description: 'File or directory to search in. Defaults to the workspace root.' },
    glob: { type: 'string', description: 'Glob pattern to filter files (e.g. "*.js", "*.{ts,tsx}")' },
    type: { type: 'string', description: `File type to search: ${Object.keys(TYPES).join(', ')}` },
    output_mode: {
      type: 'string',
      enum: ['content', 'files_with_matches', 'count'],
      description: 'Output mode (default "files_with_matches")',
    },
    '-i': { type: 'boolean', description: 'Case insensitive search' },
    '-n': { type: 'boolean', description: 'Show line numbers in output (content mode; default true)' },
    '-A': { type: 'number', description: 'Lines to show after each match (content mode)' },
    '-B': { type: 'number', description: 'Lines to show before each match (content mode)' },
    '-C': { type: 'number', description: 'Lines to show before and after each match (content mode)' },
    context: { type: 'number', description: 'Alias of -C' },
    head_limit: {
      type: 'number',
      description: 'Limit output to the first N lines/entries (default 250; 0 for unlimited)',
    },
    offset: { type: 'number', description: 'Skip the first N lines/entries before applying head_limit' },
    multiline: {
      type: 'boolean',
      description: 'Enable multiline mode where . matches newlines and patterns can span lines',
    },
  },
  required: ['pattern'],
};

export function grepTool(ws: Workspace): AuditedTool {
  return {
    name: 'workspace.grep',
    idempotent: true,
    description:
      'Searches file contents of the workspace with a regular expression (JavaScript syntax, as ripgrep\'s). output_mode: "files_with_matches" (default; paths), "content" (matching lines, with -n line numbers, -A/-B/-C context), "count" (matches per file). Filter with glob ("*.{ts,tsx}") or type ("js", "py", "rust"...). head_limit (default 250; 0 for all) and offset page through the results. Hidden files, .git and node_modules are skipped.',
    input_schema: GREP_INPUT_SCHEMA,
    invoke: (args, ctx) =>
      guarded(async () => {
        const source = str(args, 'pattern')!;
        if (source.length > MAX_PATTERN)
          return toolError(`the pattern is longer than ${MAX_PATTERN} characters`, 'invalid_input');
        const mode = (str(args, 'output_mode', { optional: true }) ?? 'files_with_matches') as Mode;
        if (!['content', 'files_with_matches', 'count'].includes(mode))
          return toolError('"output_mode" must be "content", "files_with_matches" or "count"', 'invalid_input');
        const unicode = flag(args, '-i') ? 'iu' : 'u';
        const multiline = flag(args, 'multiline') ?? false;
        const safeFlags = workingFlags(source, unicode, multiline);
        if (typeof safeFlags !== 'string')
          return toolError(`invalid regular expression: ${safeFlags.error}`, 'invalid_input');
        const C = int(args, '-C', 0, 1000) ?? int(args, 'context', 0, 1000) ?? 0;
        const before = int(args, '-B', 0, 1000) ?? C;
        const after = int(args, '-A', 0, 1000) ?? C;
        const headLimit = int(args, 'head_limit', 0, 1e6) ?? DEFAULT_HEAD_LIMIT;
        const offset = int(args, 'offset', 0, 1e9) ?? 0;
        const lineNumbers = flag(args, '-n') ?? true;
        const filters = fileFilters(args);
        if (!Array.isArray(filters)) return toolError(filters.error, 'invalid_input');

        const given = str(args, 'path', { optional: true });
        const target = ws.resolve(given, 'path');
        const deadline = Math.min(ctx.deadline - 50, Date.now() + GREP_TIME_MS);
        const selected = filesToSearch(ws, target, filters, deadline, mode);
        if (selected === undefined) return pathDoesNotExist(given ?? target);
        const { entries, truncated } = selected;
        const results = await runWorker(
          {
            root: ws.root(),
            privateIds: [...ws.privateIds()],
            source,
            flags: safeFlags,
            multiline,
            files: entries.map((e) => ({ path: e.path, display: e.path })),
            mode,
            before,
            after,
            lineNumbers,
            maxLines: headLimit === 0 ? 1e6 : offset + headLimit + 1,
            maxFileBytes: MAX_FILE_BYTES,
            maxLineChars: MAX_LINE_CHARS,
          },
          Math.max(1, deadline - Date.now()),
        );
        const note = truncated ? `\n(The search was partial: ${truncated}. Narrow path, glob or type.)` : '';
        return { content: formatResults(results, mode, offset, headLimit, note) };
      }),
  };
}

/**
 * The flags the pattern compiles with: Unicode mode first, since without it some patterns ripgrep
 * accepts (`\-`, `\/`) parse too; the first syntax error when neither works.
 */
function workingFlags(source: string, unicode: string, multiline: boolean): string | { error: string } {
  let syntaxError = '';
  for (const f of [unicode, unicode.replace('u', '')]) {
    try {
      new RegExp(source, f + (multiline ? 'gms' : ''));
      return f;
    } catch (e) {
      syntaxError ||= (e as Error).message;
    }
  }
  return { error: syntaxError };
}

/** The file name filters of the glob and type arguments. */
function fileFilters(args: Record<string, unknown>): Glob[] | { error: string } {
  const globArg = str(args, 'glob', { optional: true });
  const typeArg = str(args, 'type', { optional: true });
  const filters: Glob[] = [];
  if (globArg !== undefined) filters.push(new Glob(globArg, { basenameAnywhere: true }));
  if (typeArg !== undefined) {
    const t = TYPES[typeArg.toLowerCase()];
    if (!t) return { error: `unknown type "${typeArg}"; known types: ${Object.keys(TYPES).join(', ')}` };
    filters.push(new Glob(`{${t.join(',')}}`, { basenameAnywhere: true }));
  }
  return filters;
}

/**
 * The files to search under `target` (or `target` itself), within the file count and byte caps;
 * `truncated` says what was left out. Undefined when `target` does not exist.
 */
function filesToSearch(
  ws: Workspace,
  target: string,
  filters: Glob[],
  deadline: number,
  mode: Mode,
): { entries: WalkEntry[]; truncated: string | undefined } | undefined {
  let entries: WalkEntry[];
  let truncated: string | undefined;
  const st = lstatAt(ws, target);
  if (st === undefined) return undefined;
  if (st.isFile()) entries = [{ path: target, rel: basename(target), stats: st }];
  else {
    const walk = walkFiles(ws, target, {
      maxEntries: MAX_FILES * 5,
      deadline,
      skipDirs: DEFAULT_SKIP_DIRS,
      skipPaths: ws.hidden(),
      skip: ws.readDenied,
    });
    entries = walk.files.filter((f) => filters.every((g) => g.matches(f.rel)));
    truncated = walk.truncated;
  }
  if (entries.length > MAX_FILES) {
    entries = entries.slice(0, MAX_FILES);
    truncated = `more than ${MAX_FILES} files`;
  }
  let total = 0;
  entries = entries.filter((e) => {
    if (e.stats.size > MAX_FILE_BYTES || total + e.stats.size > MAX_TOTAL_BYTES) {
      truncated ??= `files over ${MAX_FILE_BYTES} bytes, or past ${MAX_TOTAL_BYTES} bytes in all, were skipped`;
      return false;
    }
    total += e.stats.size;
    return true;
  });
  // As Claude Code lists them: most recently modified first.
  if (mode === 'files_with_matches')
    entries.sort((a, b) => b.stats.mtimeMs - a.stats.mtimeMs || (a.rel < b.rel ? -1 : 1));
  return { entries, truncated };
}

/** The tool's answer in the output mode's format, paged by offset and head_limit; `note` ends it. */
function formatResults(results: FileResult[], mode: Mode, offset: number, headLimit: number, note: string): string {
  if (results.length === 0) return (mode === 'content' ? 'No matches found' : 'No files found') + note;
  if (mode === 'files_with_matches') {
    const { shown, more } = page(
      results.map((r) => r.display),
      offset,
      headLimit,
    );
    return `Found ${results.length} file${results.length === 1 ? '' : 's'}${more ? ` (showing ${shown.length})` : ''}\n${capChars(shown)}${note}`;
  }
  if (mode === 'count') {
    const { shown, more } = page(
      results.map((r) => `${r.display}:${r.count}`),
      offset,
      headLimit,
    );
    const sum = results.reduce((n, r) => n + r.count, 0);
    return `${capChars(shown)}${more ? '\n(more entries: use offset)' : ''}\n\nFound ${sum} total occurrence${sum === 1 ? '' : 's'} across ${results.length} file${results.length === 1 ? '' : 's'}.${note}`;
  }
  const { shown, more } = page(
    results.flatMap((r) => r.lines),
    offset,
    headLimit,
  );
  return `${capChars(shown)}${more ? `\n(results limited to ${headLimit} lines: use offset=${offset + headLimit} for more)` : ''}${note}`;
}
