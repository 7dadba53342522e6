/**
 * workspace.read, .write, .edit, .multi_edit, .glob and .ls: Claude Code's Read, Write, Edit,
 * MultiEdit, Glob and LS with the same argument names and the same kind of result, confined to
 * the granted workspace (grant.ts) and bounded in bytes, lines, entries and time.
 */
import { closeSync, readFileSync, readSync, type Stats } from 'node:fs';
import { relative, sep } from 'node:path';
import type { AuditedResult, AuditedTool } from '../audited.js';
import { toolError } from '../audited.js';
import { lstatAt, openAt, writeAt } from './at.js';
import { Glob, GlobError } from './glob.js';
import { WorkspaceError, type Workspace } from './grant.js';
import { DEFAULT_SKIP_DIRS, walkFiles } from './walk.js';

/** Lines returned when the call gives no `limit` (Claude Code's default). */
export const DEFAULT_READ_LINES = 2000;
/** Longer lines are cut here (Claude Code's limit). */
export const MAX_LINE_CHARS = 2000;
/** Most bytes of a file read, written or edited by one call. */
export const MAX_FILE_BYTES = 10 * 1024 * 1024;
/** Most characters of one result. */
export const MAX_RESULT_CHARS = 256 * 1024;
const GLOB_RESULTS = 100;
const LS_ENTRIES = 1000;
const WALK_ENTRIES = 100_000;
const WALK_MS = 10_000;

/** Runs `fn`, turning refusals (WorkspaceError, GlobError) into error results with their outcome. */
export async function guarded(fn: () => AuditedResult | Promise<AuditedResult>): Promise<AuditedResult> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof WorkspaceError) return toolError(e.message, e.outcome);
    if (e instanceof GlobError) return toolError(`invalid glob pattern: ${e.message}`, 'invalid_input');
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code === 'string') return toolError(err.message, 'io_error');
    throw e;
  }
}

export function str(
  args: Record<string, unknown>,
  key: string,
  opts: { optional?: boolean; allowEmpty?: boolean } = {},
): string | undefined {
  const v = args[key];
  if (v === undefined || v === null) {
    if (opts.optional) return undefined;
    throw new WorkspaceError(`"${key}" is required`, 'invalid_input');
  }
  if (typeof v !== 'string') throw new WorkspaceError(`"${key}" must be a string`, 'invalid_input');
  if (v === '' && !opts.allowEmpty && !opts.optional)
    throw new WorkspaceError(`"${key}" must not be empty`, 'invalid_input');
  return v === '' && opts.optional ? undefined : v;
}

export function int(args: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max)
    throw new WorkspaceError(`"${key}" must be a whole number from ${min} to ${max}`, 'invalid_input');
  return n;
}

/**
 * Opens the file `path` (a resolved path) for reading, no link followed along it (at.ts), and
 * refuses a directory or anything but a regular file; undefined when it does not exist.
 */
function openFile(ws: Workspace, path: string): { fd: number; stats: Stats } | undefined {
  const f = openAt(ws, path);
  if (f === undefined) return undefined;
  if (f.stats.isDirectory() || !f.stats.isFile()) {
    closeSync(f.fd);
    throw new WorkspaceError(
      f.stats.isDirectory()
        ? `${path} is a directory, not a file (use workspace.ls to list it)`
        : `${path} is not a regular file`,
      'invalid_input',
    );
  }
  return f;
}

/** A workspace file read for output (readWorkspaceFile): its real path, its path below the root, and its bytes unless larger than asked. */
export interface WorkspaceFile {
  path: string;
  relative: string;
  size: number;
  /** Absent when the file is larger than the bound given. */
  bytes?: Buffer;
}

/**
 * Reads the file `given` (as an agent named it) for a result leaving the server: resolved inside
 * the grant, opened through the same no-follow walk as workspace.read (never a check, then an
 * open), a regular file only, and refused when a read deny rule of `[workspace.permissions]`
 * covers it. At most `maxBytes` are read: a larger file is answered with its size and no bytes.
 * Undefined when it is gone; a refusal throws WorkspaceError.
 */
export function readWorkspaceFile(ws: Workspace, given: string, maxBytes: number): WorkspaceFile | undefined {
  const path = ws.resolve(given);
  if (ws.readDenied?.(path) === true)
    throw new WorkspaceError(`${given}: reading it is denied by [workspace.permissions]`);
  const f = openFile(ws, path);
  if (f === undefined) return undefined;
  try {
    const rel = relative(ws.root(), path).split(sep).join('/');
    if (f.stats.size > maxBytes) return { path, relative: rel, size: f.stats.size };
    const buf = Buffer.alloc(maxBytes + 1);
    let n = 0;
    // Read to the bound, not to the size stat gave: the file may grow meanwhile.
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(f.fd, buf, n, buf.length - n, null);
    if (n > maxBytes) return { path, relative: rel, size: n };
    return { path, relative: rel, size: n, bytes: buf.subarray(0, n) };
  } finally {
    closeSync(f.fd);
  }
}

/** Claude Code's answer when Read or Edit is given a file that is not there. */
export const FILE_DOES_NOT_EXIST = 'File does not exist.';

/**
 * Claude Code's answer when Glob is given a directory that is not there, naming it as the model
 * gave it. LS answers the same: Claude Code's own LS listed nothing for one, which tells the model
 * nothing, and later versions have no LS.
 */
export function directoryDoesNotExist(given: string): AuditedResult {
  return toolError(`Directory does not exist: ${given}`, 'io_error');
}

/** Claude Code's answer when Grep is given a file or directory that is not there, naming it as the model gave it. */
export function pathDoesNotExist(given: string): AuditedResult {
  return toolError(`Path does not exist: ${given}`, 'io_error');
}

function readText(ws: Workspace, path: string): string | undefined {
  const f = openFile(ws, path);
  if (f === undefined) return undefined;
  try {
    if (f.stats.size > MAX_FILE_BYTES)
      throw new WorkspaceError(
        `${path} is ${f.stats.size} bytes, more than the ${MAX_FILE_BYTES} a call may edit`,
        'input_too_large',
      );
    return readFileSync(f.fd, 'utf8');
  } finally {
    closeSync(f.fd);
  }
}

/** `cat -n`: the number right-aligned in six columns, a tab, the line. */
function numbered(lines: readonly string[], first: number): string {
  let out = '';
  for (let i = 0; i < lines.length; i++) {
    let l = lines[i]!;
    if (l.length > MAX_LINE_CHARS) l = `${l.slice(0, MAX_LINE_CHARS)}… [line cut at ${MAX_LINE_CHARS} characters]`;
    const row = `${String(first + i).padStart(6)}\t${l}\n`;
    if (out.length + row.length > MAX_RESULT_CHARS)
      return `${out}… [output cut at ${MAX_RESULT_CHARS} characters: read on with offset=${first + i}]\n`;
    out += row;
  }
  return out;
}

/**
 * Lines `offset`.. of a file, reading only as far as needed (a huge log can be paged through),
 * bounded at MAX_FILE_BYTES scanned per call.
 */
function readLines(
  fd: number,
  path: string,
  offset: number,
  limit: number,
): { lines: string[]; total: number | undefined; binary: boolean } {
  const buf = Buffer.alloc(64 * 1024);
  const lines: string[] = [];
  let lineNo = 1;
  let carry = '';
  let scanned = 0;
  const decoder = new TextDecoder('utf-8');
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, null);
    if (scanned === 0 && n > 0 && buf.subarray(0, Math.min(n, 8000)).includes(0))
      return { lines: [], total: undefined, binary: true };
    scanned += n;
    const text = carry + decoder.decode(buf.subarray(0, n), { stream: n > 0 });
    let parts: string[];
    if (n > 0) {
      parts = text.split('\n');
      carry = parts.pop()!;
    } else {
      // The last line has no newline after it; a file ending in one has no further line.
      parts = text === '' ? [] : [text];
      carry = '';
    }
    for (const p of parts) {
      if (lineNo >= offset && lines.length < limit) lines.push(p.endsWith('\r') ? p.slice(0, -1) : p);
      lineNo++;
    }
    if (n === 0) return { lines, total: lineNo - 1, binary: false };
    if (lines.length >= limit) return { lines, total: undefined, binary: false };
    if (scanned > MAX_FILE_BYTES * 4)
      throw new WorkspaceError(
        `${path}: more than ${MAX_FILE_BYTES * 4} bytes scanned for line ${offset}; read a nearer part or use workspace.grep`,
        'invalid_input',
      );
  }
}

export function readTool(ws: Workspace): AuditedTool {
  return {
    name: 'workspace.read',
    idempotent: true,
    description: `Reads a file of the workspace. Returns its lines numbered as \`cat -n\` does (number, tab, line), from line \`offset\` (1-based, default 1), at most \`limit\` lines (default ${DEFAULT_READ_LINES}); lines longer than ${MAX_LINE_CHARS} characters are cut. file_path: absolute (inside the workspace) or relative to the workspace.`,
    input_schema: {
      type: 'object',
      properties: {
        file_path: { type: 'string', description: 'The path of the file to read' },
        offset: {
          type: 'number',
          description:
            'The line number to start reading from (1-based). Only provide if the file is too large to read at once',
        },
        limit: {
          type: 'number',
          description: 'The number of lines to read. Only provide if the file is too large to read at once',
        },
      },
      required: ['file_path'],
    },
    invoke: (args) =>
      guarded(() => {
        const path = ws.resolve(str(args, 'file_path'));
        const offset = int(args, 'offset', 0, 1e9) ?? 1;
        const limit = int(args, 'limit', 1, 1e6) ?? DEFAULT_READ_LINES;
        const f = openFile(ws, path);
        // Claude Code's Read answers a missing file in these words (docs/workspace.md lists where the wording differs).
        if (f === undefined) return toolError(FILE_DOES_NOT_EXIST, 'io_error');
        let r: ReturnType<typeof readLines>;
        try {
          r = readLines(f.fd, path, Math.max(1, offset), limit);
        } finally {
          closeSync(f.fd);
        }
        if (r.binary)
          return toolError(
            `${path} looks like a binary file (it contains NUL bytes); workspace.read reads text files`,
            'invalid_input',
          );
        if (r.lines.length === 0) {
          if (r.total === 0)
            return {
              content: '<system-reminder>Warning: the file exists but the contents are empty.</system-reminder>',
            };
          return {
            content: `<system-reminder>Warning: the file exists but is shorter than the provided offset (${offset}). The file has ${r.total ?? 'fewer'} lines.</system-reminder>`,
          };
        }
        return { content: numbered(r.lines, Math.max(1, offset)) };
      }),
  };
}

export function writeTool(ws: Workspace): AuditedTool {
  return {
    name: 'workspace.write',
    description:
      'Writes a file of the workspace, replacing it if it exists and creating missing directories. Needs the write grant. file_path: absolute (inside the workspace) or relative to the workspace.',
    input_schema: {
      type: 'object',
      properties: {
        file_path: { type: 'string', description: 'The path of the file to write' },
        content: { type: 'string', description: 'The content to write to the file' },
      },
      required: ['file_path', 'content'],
    },
    invoke: (args) =>
      guarded(() => {
        ws.requireWrite();
        const path = ws.resolve(str(args, 'file_path'));
        const content = str(args, 'content', { allowEmpty: true })!;
        if (Buffer.byteLength(content) > MAX_FILE_BYTES)
          return toolError(`the content is more than ${MAX_FILE_BYTES} bytes`, 'input_too_large');
        const { existed } = writeAt(ws, path, content);
        return {
          content: existed
            ? `The file ${path} has been updated successfully.`
            : `File created successfully at: ${path}`,
        };
      }),
  };
}

interface Edit {
  old_string: string;
  new_string: string;
  replace_all: boolean;
}

function parseEdit(e: unknown, where: string): Edit {
  if (typeof e !== 'object' || e === null)
    throw new WorkspaceError(`${where} must be an object with old_string and new_string`, 'invalid_input');
  const o = e as Record<string, unknown>;
  if (typeof o.old_string !== 'string')
    throw new WorkspaceError(`${where}: "old_string" must be a string`, 'invalid_input');
  if (typeof o.new_string !== 'string')
    throw new WorkspaceError(`${where}: "new_string" must be a string`, 'invalid_input');
  if (o.replace_all !== undefined && typeof o.replace_all !== 'boolean')
    throw new WorkspaceError(`${where}: "replace_all" must be true or false`, 'invalid_input');
  return { old_string: o.old_string, new_string: o.new_string, replace_all: o.replace_all === true };
}

function count(text: string, s: string): number {
  let n = 0;
  for (let i = text.indexOf(s); i >= 0; i = text.indexOf(s, i + s.length)) n++;
  return n;
}

/** One exact-string replacement, with Claude Code's refusals (not found; several matches without replace_all; no change). */
function applyEdit(text: string, e: Edit, where: string): string {
  if (e.old_string === e.new_string)
    throw new WorkspaceError(
      `${where}No changes to make: old_string and new_string are exactly the same.`,
      'invalid_input',
    );
  if (e.old_string === '')
    throw new WorkspaceError(
      `${where}old_string must not be empty for an existing file (to write a whole file use workspace.write)`,
      'invalid_input',
    );
  const n = count(text, e.old_string);
  if (n === 0)
    throw new WorkspaceError(`${where}String to replace not found in file.\nString: ${e.old_string}`, 'error');
  if (n > 1 && !e.replace_all) {
    throw new WorkspaceError(
      `${where}Found ${n} matches of the string to replace, but replace_all is false. To replace all occurrences, set replace_all to true. To replace only one occurrence, please provide more context to uniquely identify the instance.\nString: ${e.old_string}`,
      'error',
    );
  }
  return e.replace_all ? text.split(e.old_string).join(e.new_string) : text.replace(e.old_string, () => e.new_string);
}

/** Applies `edits` in order to the file (all or nothing); an empty old_string on a missing file creates it (Claude Code's Edit does). */
function editFile(ws: Workspace, args: Record<string, unknown>, edits: Edit[]): AuditedResult {
  ws.requireWrite();
  const path = ws.resolve(str(args, 'file_path'));
  let text = readText(ws, path);
  let start = 0;
  if (text === undefined) {
    if (edits[0]?.old_string !== '') return toolError(FILE_DOES_NOT_EXIST, 'io_error');
    text = edits[0].new_string;
    start = 1;
  }
  for (let i = start; i < edits.length; i++)
    text = applyEdit(text, edits[i]!, edits.length > 1 ? `edit ${i + 1} of ${edits.length}: ` : '');
  if (Buffer.byteLength(text) > MAX_FILE_BYTES)
    return toolError(`the edited file would be more than ${MAX_FILE_BYTES} bytes`, 'output_too_large');
  writeAt(ws, path, text);
  // An empty old_string on a missing file made it: say so, as Write does, not "updated".
  if (start === 1 && edits.length === 1) return { content: `File created successfully at: ${path}` };
  return {
    content:
      edits.length > 1 ? `Applied ${edits.length} edits to ${path}` : `The file ${path} has been updated successfully.`,
  };
}

export function editTool(ws: Workspace): AuditedTool {
  return {
    name: 'workspace.edit',
    description:
      'Replaces an exact string in a file of the workspace. Fails if old_string is not found, or is found more than once without replace_all (give more surrounding text to make it unique). Needs the write grant.',
    input_schema: {
      type: 'object',
      properties: {
        file_path: { type: 'string', description: 'The path of the file to modify' },
        old_string: { type: 'string', description: 'The text to replace' },
        new_string: { type: 'string', description: 'The text to replace it with (must be different from old_string)' },
        replace_all: {
          type: 'boolean',
          description: 'Replace all occurrences of old_string (default false)',
          default: false,
        },
      },
      required: ['file_path', 'old_string', 'new_string'],
    },
    invoke: (args) => guarded(() => editFile(ws, args, [parseEdit(args, 'the edit')])),
  };
}

export function multiEditTool(ws: Workspace): AuditedTool {
  return {
    name: 'workspace.multi_edit',
    description:
      'Makes several exact-string replacements in one file of the workspace, in order, each on the result of the previous; all or nothing: if any edit fails, the file is left unchanged. Needs the write grant.',
    input_schema: {
      type: 'object',
      properties: {
        file_path: { type: 'string', description: 'The path of the file to modify' },
        edits: {
          type: 'array',
          minItems: 1,
          description: 'Array of edit operations to perform sequentially on the file',
          items: {
            type: 'object',
            properties: {
              old_string: { type: 'string', description: 'The text to replace' },
              new_string: { type: 'string', description: 'The text to replace it with' },
              replace_all: {
                type: 'boolean',
                description: 'Replace all occurrences of old_string (default false)',
                default: false,
              },
            },
            required: ['old_string', 'new_string'],
          },
        },
      },
      required: ['file_path', 'edits'],
    },
    invoke: (args) =>
      guarded(() => {
        const edits = args.edits;
        if (!Array.isArray(edits) || edits.length === 0)
          return toolError(
            '"edits" must be a non-empty array of {old_string, new_string, replace_all}',
            'invalid_input',
          );
        if (edits.length > 1000) return toolError('"edits" has more than 1000 edits', 'invalid_input');
        return editFile(
          ws,
          args,
          edits.map((e, i) => parseEdit(e, `edit ${i + 1}`)),
        );
      }),
  };
}

export function globTool(ws: Workspace): AuditedTool {
  return {
    name: 'workspace.glob',
    idempotent: true,
    description: `Finds files of the workspace by glob pattern ("**/*.ts", "src/**/*.{js,ts}"). Returns matching absolute paths, most recently modified first, at most ${GLOB_RESULTS}. path: the directory to search (default: the workspace root).`,
    input_schema: {
      type: 'object',
      properties: {
        pattern: { type: 'string', description: 'The glob pattern to match files against' },
        path: { type: 'string', description: 'The directory to search in. Omit it to search the workspace root.' },
      },
      required: ['pattern'],
    },
    invoke: (args) =>
      guarded(() => {
        const glob = new Glob(str(args, 'pattern')!);
        const given = str(args, 'path', { optional: true });
        const dir = ws.resolve(given, 'path');
        const st = lstatAt(ws, dir);
        if (st === undefined) return directoryDoesNotExist(given ?? dir);
        if (!st.isDirectory()) return toolError(`${dir} is not a directory`, 'invalid_input');
        const walk = walkFiles(ws, dir, {
          maxEntries: WALK_ENTRIES,
          deadline: Date.now() + WALK_MS,
          hidden: true,
          skipDirs: DEFAULT_SKIP_DIRS,
          skipPaths: ws.hidden(),
          skip: ws.readDenied,
        });
        const hits = walk.files
          .filter((f) => glob.matches(f.rel))
          .sort((a, b) => b.stats.mtimeMs - a.stats.mtimeMs || (a.rel < b.rel ? -1 : 1));
        if (hits.length === 0)
          return {
            content: walk.truncated ? `No files found (the search stopped early: ${walk.truncated})` : 'No files found',
          };
        const shown = hits.slice(0, GLOB_RESULTS).map((f) => f.path);
        let out = shown.join('\n');
        if (hits.length > GLOB_RESULTS)
          out += '\n(Results are truncated. Consider using a more specific path or pattern.)';
        if (walk.truncated) out += `\n(The search stopped early: ${walk.truncated}. Consider a more specific path.)`;
        return { content: out };
      }),
  };
}

export function lsTool(ws: Workspace): AuditedTool {
  return {
    name: 'workspace.ls',
    idempotent: true,
    description: `Lists the files and directories under a directory of the workspace as a tree (hidden entries left out, at most ${LS_ENTRIES} entries). path: absolute (inside the workspace) or relative (default: the root). ignore: glob patterns of names to leave out.`,
    input_schema: {
      type: 'object',
      properties: {
        path: { type: 'string', description: 'The directory to list' },
        ignore: { type: 'array', items: { type: 'string' }, description: 'List of glob patterns to ignore' },
      },
      required: ['path'],
    },
    invoke: (args) =>
      guarded(() => {
        const given = str(args, 'path', { optional: true });
        const dir = ws.resolve(given, 'path');
        const st = lstatAt(ws, dir);
        if (st === undefined) return directoryDoesNotExist(given ?? dir);
        if (!st.isDirectory()) return toolError(`${dir} is not a directory`, 'invalid_input');
        const ignoreArg = args.ignore ?? [];
        if (!Array.isArray(ignoreArg) || ignoreArg.some((p) => typeof p !== 'string') || ignoreArg.length > 100)
          return toolError('"ignore" must be a list of at most 100 glob patterns', 'invalid_input');
        const ignore = (ignoreArg as string[]).map((p) => new Glob(p, { basenameAnywhere: true }));
        const ignored = (rel: string) => ignore.some((g) => g.matches(rel));
        const entries: { rel: string; dir: boolean }[] = [];
        let full = false;
        const walk = walkFiles(
          ws,
          dir,
          {
            maxEntries: WALK_ENTRIES,
            deadline: Date.now() + WALK_MS,
            skipDirs: DEFAULT_SKIP_DIRS,
            skipPaths: ws.hidden(),
            links: true,
            skip: ws.readDenied,
          },
          (e) => {
            if (ignored(e.rel) || full) return false;
            entries.push({ rel: e.rel, dir: true });
            if (entries.length >= LS_ENTRIES) full = true;
            return true;
          },
        );
        for (const f of walk.files) if (!ignored(f.rel)) entries.push({ rel: f.rel, dir: false });
        // A link is listed by its own name, never followed (it could lead out of the workspace), as Claude Code's LS lists it.
        for (const l of walk.links) if (!ignored(l.rel)) entries.push({ rel: l.rel, dir: false });
        entries.sort((a, b) => (a.rel < b.rel ? -1 : 1));
        const shown = entries.slice(0, LS_ENTRIES);
        const lines = [`- ${dir}/`];
        for (const e of shown) {
          const depth = e.rel.split('/').length;
          const name = e.rel.slice(e.rel.lastIndexOf('/') + 1);
          lines.push(`${'  '.repeat(depth)}- ${name}${e.dir ? '/' : ''}`);
        }
        if (entries.length > LS_ENTRIES || full || walk.truncated)
          lines.unshift(
            `There are more than ${LS_ENTRIES} files in the repository. Use the LS tool (passing a specific path), Bash tool, and other tools to explore nested directories. The first ${LS_ENTRIES} files and directories are included below:\n`,
          );
        return { content: lines.join('\n') };
      }),
  };
}
