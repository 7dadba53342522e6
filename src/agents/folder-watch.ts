import { readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join, sep } from 'node:path';

/** What a watched tree reports, each path once its events have settled. */
export interface FolderTreeEvents {
  /** A file was created, changed, renamed into place or removed: look at it. */
  file(path: string): void;
  /** A folder appeared (created, or moved in): its files may have been written before its watch began. */
  folder(path: string): void;
  /** A folder and everything under it is gone (deleted, or moved out). */
  folderGone(path: string): void;
  error(e: unknown, path: string): void;
}

/** Events on one path closer together than this are one change (an editor's write in several chunks). */
export const SETTLE_MS = 40;

const hidden = (name: string) => name.startsWith('.');

/**
 * A folder tree watched with one `fs.watch` per folder, not per file: Linux's inotify reports a
 * folder's files' creations, writes, renames and removals on the folder's own watch, so a tree of
 * thousands of agent files costs one handle per folder and nothing per file. Hidden folders
 * (".git", editors' swap folders) are not entered. Each event names a path; after SETTLE_MS
 * without another event on it, the path is looked at once and reported as a file, a new folder or
 * a folder gone.
 */
export class FolderTree {
  readonly #root: string;
  readonly #events: FolderTreeEvents;
  readonly #watchers = new Map<string, FSWatcher>();
  readonly #pending = new Map<string, NodeJS.Timeout>();
  #closed = false;

  constructor(root: string, events: FolderTreeEvents) {
    this.#root = root;
    this.#events = events;
  }

  /** Watches the root and every folder under it; throws when the root cannot be watched. */
  start(): void {
    this.#watchTree(this.#root, true);
  }

  /** How many folders are watched (one handle each). */
  get folders(): number {
    return this.#watchers.size;
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#pending.values()) clearTimeout(t);
    this.#pending.clear();
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }

  #watchTree(dir: string, root = false): void {
    if (this.#watchers.has(dir)) return;
    let w: FSWatcher;
    try {
      w = watch(dir, (_type, name) => {
        if (name !== null) this.#settle(join(dir, name.toString()));
      });
    } catch (e) {
      if (root) throw e;
      // Gone already, or not readable: its parent's events say what became of it.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.#events.error(e, dir);
      return;
    }
    w.on('error', (e) => {
      this.#unwatch(dir);
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.#events.error(e, dir);
    });
    this.#watchers.set(dir, w);
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory() && !hidden(e.name)) this.#watchTree(join(dir, e.name));
  }

  #settle(path: string): void {
    if (this.#closed) return;
    clearTimeout(this.#pending.get(path));
    this.#pending.set(
      path,
      setTimeout(() => {
        this.#pending.delete(path);
        if (!this.#closed) this.#look(path);
      }, SETTLE_MS),
    );
  }

  #look(path: string): void {
    const name = path.slice(path.lastIndexOf(sep) + 1);
    if (hidden(name)) return;
    let isDir: boolean | undefined;
    try {
      isDir = statSync(path).isDirectory();
    } catch {
      isDir = undefined;
    }
    if (isDir === true) {
      if (this.#watchers.has(path)) return;
      this.#watchTree(path);
      this.#events.folder(path);
    } else if (isDir === undefined && this.#isWatched(path)) {
      this.#unwatch(path);
      this.#events.folderGone(path);
    } else this.#events.file(path);
  }

  #isWatched(dir: string): boolean {
    return this.#watchers.has(dir);
  }

  /** Stops watching `dir` and every folder under it. */
  #unwatch(dir: string): void {
    const prefix = dir + sep;
    for (const [d, w] of this.#watchers) {
      if (d === dir || d.startsWith(prefix)) {
        w.close();
        this.#watchers.delete(d);
      }
    }
  }
}
