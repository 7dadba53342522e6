/**
 * Stops every write into a data dir deleted or replaced under the running server (ADR 0127).
 *
 * SQLite keeps the files it has open, deleted or moved away, and in WAL mode goes on committing
 * into them: every write would succeed and be lost at the next start. Once the data dir is found
 * gone, each SQLite connection the server opened in it is switched to `PRAGMA query_only`, so
 * SQLite itself refuses every write, whichever path makes it (a request, a delivery, retention):
 * one gate, and nothing checked per write. Reads go on from the files still open.
 *
 * The data dir is looked at when its parent directory reports a change of names (fs.watch:
 * the moment the directory is deleted or moved) and every `intervalMs` (a stat of the directory
 * and of its lock file), which also catches what the watch cannot see (the lock file removed,
 * a file system without change events). A write in between still lands in the deleted files.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { CaxtonError } from '../shared/errors.js';
import type { DataLock } from './data-lock.js';
import { diskFullError, isDiskFull, type Db } from './database.js';

/** The fences of this process that have stopped writes, for the error a refused write is given. */
const stopped = new Set<WriteFence>();

export class WriteFence {
  readonly #dbs = new Set<Db>();
  #reason: string | undefined;

  /** Why writes are refused, once they are. */
  get reason(): string | undefined {
    return this.#reason;
  }

  /** A connection into the data dir, stopped with the others (at once, if writes already are). */
  attach(db: Db): void {
    this.#dbs.add(db);
    if (this.#reason !== undefined) queryOnly(db);
  }

  detach(db: Db): void {
    this.#dbs.delete(db);
  }

  /** Refuses every write from now on; true the first time. */
  stop(reason: string): boolean {
    if (this.#reason !== undefined) return false;
    this.#reason = reason;
    stopped.add(this);
    for (const db of this.#dbs) queryOnly(db);
    return true;
  }

  /** Forgets this fence (the server closed). */
  close(): void {
    stopped.delete(this);
    this.#dbs.clear();
  }
}

function queryOnly(db: Db): void {
  if (db.open) db.pragma('query_only = ON');
}

/**
 * The error a caller is given for a write SQLite refused because a fence stopped it (SQLite's
 * own "attempt to write a readonly database"), else undefined: 503, the reason and what to do.
 * Every Caxton connection is opened for writing, so SQLITE_READONLY on one means a fence.
 */
export function fencedWriteError(e: unknown): CaxtonError | undefined {
  if (stopped.size === 0 || !String((e as { code?: unknown } | null)?.code ?? '').startsWith('SQLITE_READONLY'))
    return undefined;
  const reasons = [...stopped].map((f) => f.reason);
  return new CaxtonError(
    'not_ready',
    `${reasons.join('; ')}: nothing was stored, and this server stores nothing more until it is restarted. Restore the data directory from a backup (or let it start empty) and restart the server`,
    { reason: reasons.length === 1 ? reasons[0] : reasons },
  );
}

/**
 * A write the store refused, in the project's words, whichever surface made it: the disk full
 * (507, the transaction rolled back) or the data dir gone (503, see fencedWriteError); else
 * undefined.
 */
export function storeWriteError(e: unknown): CaxtonError | undefined {
  return isDiskFull(e) ? diskFullError() : fencedWriteError(e);
}

export interface DataDirWatch {
  /** Looks now: the reason writes are stopped (stopping them if the data dir has just been found gone), else undefined. */
  check(): string | undefined;
  close(): void;
}

/**
 * Watches the data dir of `lock` and stops `fence` the first time it is found deleted or
 * replaced; `onStop` is told then, once.
 */
export function watchDataDir(
  lock: DataLock,
  fence: WriteFence,
  opts: { dataDir: string; intervalMs: number; onStop: (reason: string) => void },
): DataDirWatch {
  let watcher: FSWatcher | undefined;
  const check = (): string | undefined => {
    if (fence.reason !== undefined) return fence.reason;
    const why = lock.lost();
    if (why === undefined) return undefined;
    if (fence.stop(why)) {
      watcher?.close();
      clearInterval(timer);
      opts.onStop(why);
    }
    return why;
  };
  const timer = setInterval(check, opts.intervalMs);
  timer.unref();
  const dir = resolve(opts.dataDir);
  const name = basename(dir);
  try {
    // The parent, not the data dir: the data dir changes at every commit (its WAL), its parent
    // only when names come and go.
    watcher = watch(dirname(dir), { persistent: false }, (_event, file) => {
      if (file === null || file === name) check();
    });
    watcher.on('error', () => watcher?.close());
  } catch {
    watcher = undefined; // an unwatchable parent: the interval alone
  }
  return {
    check,
    close() {
      clearInterval(timer);
      watcher?.close();
    },
  };
}
