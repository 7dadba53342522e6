import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { makePrivateDir } from '../shared/private-fs.js';
import { MAX_AGENT_FILE_BYTES } from './bounds.js';
import type { FileStatus } from './agent-files.js';
import { FolderTree } from './folder-watch.js';
import type { AgentService } from './agent-service.js';

const AGENT_FILE_RE = /\.(toml|md|markdown|json)$/i;

export function isAgentFile(path: string): boolean {
  return AGENT_FILE_RE.test(path) && !/(^|[\\/])\./.test(path);
}

/** A file in agents_dir that is not an agent, though it looks like one. */
export interface SkippedFile {
  path: string;
  /** "skill": a skill (SKILL.md, or anything in a skills/ folder); "command": a slash command (a commands/ folder). */
  kind: 'skill' | 'command';
}

/**
 * Repositories of agents often hold skills and slash commands beside them, written in the same
 * Markdown: they are not agents, and loading them would deploy hundreds of bogus agents or mark
 * every command invalid. `rel` is the path inside agents_dir.
 */
export function notAnAgent(rel: string): SkippedFile['kind'] | undefined {
  const parts = rel.split(/[\\/]/);
  const name = parts.pop() ?? '';
  if (name.toLowerCase() === 'skill.md' || parts.includes('skills')) return 'skill';
  if (parts.includes('commands')) return 'command';
  return undefined;
}

/**
 * Agent files under `from` (default: `root`), sorted, and the skipped skills and commands; a
 * folder that cannot be read is skipped, not fatal.
 */
function walk(
  root: string,
  onError: (dir: string, e: unknown) => void,
  from = root,
): { files: string[]; skipped: SkippedFile[] } {
  const files: string[] = [];
  const skipped: SkippedFile[] = [];
  const visit = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      onError(dir, e);
      return;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.isFile() && isAgentFile(p)) {
        const kind = notAnAgent(relative(root, p));
        if (kind) skipped.push({ path: p, kind });
        else files.push(p);
      }
    }
  };
  visit(from);
  return { files: files.sort(), skipped: skipped.sort((a, b) => (a.path < b.path ? -1 : 1)) };
}

/** The agent files under `dir` in the order the server loads them (skills and commands left out). */
export function agentFilesIn(dir: string): string[] {
  return walk(dir, () => undefined).files;
}

/** Reads a file of at most `max` bytes; `undefined` when it is larger (without reading it). */
function readBounded(path: string, max: number): Buffer | undefined {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > max) return undefined;
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return off === size ? buf : buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

export interface WatcherHooks {
  onApplied?: (status: FileStatus) => void;
  onRemoved?: (path: string) => void;
  /** Once, after the initial load: the skills and slash commands left out (none when empty). */
  onSkipped?: (skipped: SkippedFile[]) => void;
  /** Something went wrong outside any one file (a folder that cannot be read, a hook that threw). */
  onError?: (e: unknown, context: { path?: string; what: string }) => void;
}

/**
 * Loads every agent file in agents_dir (recursively) and keeps the registry in step with it: a
 * new, changed or deleted file is applied within a fraction of a second, an invalid file keeps
 * the last good version running and is reported.
 *
 * Whatever one file holds (unreadable, too large, too deep, an alias bomb, a parser failure), it
 * becomes an "invalid" file: never an exception out of a timer callback (which would end the
 * process) or out of loadAll (which would stop every start until the file was removed).
 */
export class AgentDirectoryWatcher {
  readonly #dir: string;
  readonly #service: AgentService;
  readonly #hooks: WatcherHooks;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  /**
   * Per file with an event being applied, that event's number: a parse that finishes after a
   * newer event is dropped. Numbers are never reused, so a settled path can leave the map.
   */
  readonly #generation = new Map<string, number>();
  #generations = 0;
  #closed = false;
  #tree: FolderTree | undefined;

  constructor(dir: string, service: AgentService, hooks: WatcherHooks = {}) {
    this.#dir = dir;
    this.#service = service;
    this.#hooks = hooks;
  }

  /** Synchronous initial load, so the server is ready with every valid file agent. */
  loadAll(): FileStatus[] {
    makePrivateDir(this.#dir);
    const { files, skipped } = walk(this.#dir, (dir, e) =>
      this.#report(e, { path: dir, what: 'agents_dir folder could not be read' }),
    );
    const statuses = files.map((p) => this.#apply(p)).filter((s): s is FileStatus => s !== undefined);
    if (skipped.length > 0) this.#call(() => this.#hooks.onSkipped?.(skipped), this.#dir);
    return statuses;
  }

  async start(): Promise<void> {
    const tree = new FolderTree(this.#dir, {
      file: (p) => {
        if (!this.#wanted(p)) return;
        if (existsSync(p)) this.#schedule(p);
        else if (this.#service.files.hasFile(p)) this.#schedule(p, true);
      },
      folder: (p) => {
        const { files } = walk(
          this.#dir,
          (dir, e) => this.#report(e, { path: dir, what: 'agents_dir folder could not be read' }),
          p,
        );
        for (const f of files) this.#schedule(f);
      },
      folderGone: (p) => this.#rescanRemoved(p),
      error: (e, p) => this.#report(e, { path: p, what: 'agents_dir watcher error' }),
    });
    tree.start();
    this.#tree = tree;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.#tree?.close();
  }

  /** An agent file the watcher loads: not hidden, not a skill or a slash command. */
  #wanted(path: string): boolean {
    return isAgentFile(path) && notAnAgent(relative(this.#dir, path)) === undefined;
  }

  #schedule(path: string, removed = false): void {
    clearTimeout(this.#timers.get(path));
    this.#timers.set(
      path,
      setTimeout(() => {
        this.#timers.delete(path);
        try {
          if (removed) {
            this.#settled(path, this.#bump(path));
            this.#service.files.removeFile(path);
            this.#call(() => this.#hooks.onRemoved?.(path), path);
            this.#retryDuplicates();
          } else void this.#applyAsync(path);
        } catch (e) {
          this.#report(e, { path, what: 'agent file could not be applied' });
        }
      }, 30),
    );
  }

  #bump(path: string): number {
    const n = ++this.#generations;
    this.#generation.set(path, n);
    return n;
  }

  /** A path whose latest event is applied needs no generation any more (a file costs nothing between events). */
  #settled(path: string, generation: number): void {
    if (this.#generation.get(path) === generation) this.#generation.delete(path);
  }

  /** A file refused for a duplicate name may load now that the name's holder is gone. */
  #retryDuplicates(): void {
    for (const s of this.#service.files.fileStatuses()) {
      if (s.state === 'invalid' && s.errors?.some((e) => e.code === 'duplicate_name')) void this.#applyAsync(s.path);
    }
  }

  /**
   * A file changed after the start: as #apply, with a large file parsed on the service's worker
   * thread (the event loop keeps serving requests meanwhile). A result that arrives after a newer
   * event for the same file, or after close(), is dropped.
   */
  async #applyAsync(path: string): Promise<void> {
    const generation = this.#bump(path);
    const current = () => !this.#closed && this.#generation.get(path) === generation;
    try {
      const read = this.#read(path);
      let status: FileStatus | undefined;
      if ('status' in read) status = read.status;
      else if ('gone' in read) return;
      else status = await this.#service.files.applyFileAsync(path, read.bytes, current);
      if (status) this.#call(() => this.#hooks.onApplied?.(status), path);
    } catch (e) {
      this.#report(e, { path, what: 'agent file could not be applied' });
    } finally {
      this.#settled(path, generation);
    }
  }

  /** The files known under a folder that is gone (deleted, or moved away) are removed. */
  #rescanRemoved(dir: string): void {
    const prefix = dir + sep;
    for (const s of this.#service.files.fileStatuses())
      if (s.path.startsWith(prefix) && !existsSync(s.path)) this.#schedule(s.path, true);
  }

  /** The initial load: parsed on this thread (the server is not serving requests yet). */
  #apply(path: string): FileStatus | undefined {
    const read = this.#read(path);
    if ('gone' in read) return undefined;
    let status: FileStatus;
    try {
      status = 'status' in read ? read.status : this.#service.files.applyFile(path, read.bytes);
    } catch (e) {
      status = this.#unreadable(path, e);
    }
    this.#call(() => this.#hooks.onApplied?.(status), path);
    return status;
  }

  /** The file's bytes; or its status when it cannot be read (too large, permissions); or gone (removed, and told). */
  #read(path: string): { bytes: Buffer } | { status: FileStatus } | { gone: true } {
    try {
      const bytes = readBounded(path, MAX_AGENT_FILE_BYTES);
      if (bytes !== undefined) return { bytes };
      return {
        status: this.#service.files.markInvalid(path, {
          severity: 'error',
          code: 'file_too_large',
          file: path,
          message: `the file is larger than ${MAX_AGENT_FILE_BYTES / 1024 / 1024} MiB, the limit for an agent file`,
          suggestion: 'agent files are small: move large data out of the definition',
        }),
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#service.files.removeFile(path);
        this.#call(() => this.#hooks.onRemoved?.(path), path);
        return { gone: true };
      }
      return { status: this.#unreadable(path, e) };
    }
  }

  #unreadable(path: string, e: unknown): FileStatus {
    const code = (e as NodeJS.ErrnoException).code;
    return this.#service.files.markInvalid(path, {
      severity: 'error',
      code: 'unreadable',
      file: path,
      message: `the file could not be read (${code ?? (e instanceof Error ? e.message : String(e))})`,
      suggestion: code === 'EACCES' || code === 'EPERM' ? 'check the file permissions' : 'fix or remove the file',
    });
  }

  #call(f: () => void, path: string): void {
    try {
      f();
    } catch (e) {
      this.#report(e, { path, what: 'agents_dir hook failed' });
    }
  }

  #report(e: unknown, context: { path?: string; what: string }): void {
    try {
      this.#hooks.onError?.(e, context);
    } catch {
      // Reporting must never be what takes the watcher down.
    }
  }
}
