import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { AgentService, FileStatus } from './service.js';

const AGENT_FILE_RE = /\.(toml|md|markdown|json)$/i;

export function isAgentFile(path: string): boolean {
  return AGENT_FILE_RE.test(path) && !/(^|[\\/])\./.test(path);
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile() && isAgentFile(p)) out.push(p);
  }
  return out.sort();
}

export interface WatcherHooks {
  onApplied?: (status: FileStatus) => void;
  onRemoved?: (path: string) => void;
}

/**
 * Loads every agent file in agents_dir (recursively) and keeps the registry in step with it: a
 * new, changed or deleted file is applied within a fraction of a second, an invalid file keeps
 * the last good version running and is reported.
 */
export class AgentDirectoryWatcher {
  readonly #dir: string;
  readonly #service: AgentService;
  readonly #hooks: WatcherHooks;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  #watcher: FSWatcher | undefined;

  constructor(dir: string, service: AgentService, hooks: WatcherHooks = {}) {
    this.#dir = dir;
    this.#service = service;
    this.#hooks = hooks;
  }

  /** Synchronous initial load, so the server is ready with every valid file agent. */
  loadAll(): FileStatus[] {
    mkdirSync(this.#dir, { recursive: true });
    return walk(this.#dir).map((p) => this.#apply(p)).filter((s): s is FileStatus => s !== undefined);
  }

  async start(): Promise<void> {
    const watcher = watch(this.#dir, {
      ignoreInitial: true,
      ignored: (p, stats) => /(^|[\\/])\.[^\\/]/.test(p.slice(this.#dir.length)) || (stats?.isFile() === true && !isAgentFile(p)),
      awaitWriteFinish: { stabilityThreshold: 60, pollInterval: 20 },
    });
    watcher.on('add', (p) => this.#schedule(p));
    watcher.on('change', (p) => this.#schedule(p));
    watcher.on('unlink', (p) => this.#schedule(p, true));
    watcher.on('unlinkDir', () => this.#rescanRemoved());
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    this.#watcher = watcher;
  }

  async close(): Promise<void> {
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await this.#watcher?.close();
  }

  #schedule(path: string, removed = false): void {
    clearTimeout(this.#timers.get(path));
    this.#timers.set(
      path,
      setTimeout(() => {
        this.#timers.delete(path);
        if (removed) {
          this.#service.removeFile(path);
          this.#hooks.onRemoved?.(path);
          this.#retryDuplicates();
        } else this.#apply(path);
      }, 30),
    );
  }

  /** A file refused for a duplicate name may load now that the name's holder is gone. */
  #retryDuplicates(): void {
    for (const s of this.#service.fileStatuses()) {
      if (s.state === 'invalid' && s.errors?.some((e) => e.code === 'duplicate_name')) this.#apply(s.path);
    }
  }

  #rescanRemoved(): void {
    for (const s of this.#service.fileStatuses()) if (!existsSync(s.path)) this.#schedule(s.path, true);
  }

  #apply(path: string): FileStatus | undefined {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#service.removeFile(path);
        this.#hooks.onRemoved?.(path);
        return undefined;
      }
      throw e;
    }
    const status = this.#service.applyFile(path, bytes);
    this.#hooks.onApplied?.(status);
    return status;
  }
}
