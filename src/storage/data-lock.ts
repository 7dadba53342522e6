/**
 * One server per data directory (ADR 0127). Who holds a data dir is decided by the kernel: the
 * server keeps SQLite's exclusive lock on `caxton.lock.db` (a POSIX record lock on Unix,
 * LockFileEx on Windows) for as long as it runs, and the kernel drops it when the process ends,
 * however it ends. A lock left by a crash therefore never looks held, even when its process id
 * has since been given to another program. Beside it, `caxton.lock` (JSON) says who holds it
 * (pid, host name, address once listening) for people and the CLI; it decides nothing.
 *
 * The lock also remembers which directory it was taken in (device and inode of the directory
 * and of the lock file), so that a data dir deleted or replaced under a running server is
 * noticed instead of the server writing on into files nobody will ever read again.
 */
import { readFileSync, rmSync, statSync, type Stats } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { sqliteAddon } from './sqlite-addon.js';
import { CaxtonError } from '../shared/errors.js';
import { createPrivateFile, makePrivateDir, writePrivateFileSync } from '../shared/private-fs.js';
import { fsError, type Db } from './database.js';

/** Who holds the data dir, for people and the CLI (JSON). */
export const DATA_LOCK_FILE = 'caxton.lock';
/** The file the kernel lock is held on. It holds no data, and stays when the server stops. */
export const DATA_LOCK_HOLD_FILE = 'caxton.lock.db';

/** What the lock file holds (JSON). */
export interface DataLockRecord {
  pid: number;
  hostname: string;
  /** The API's base URL once the server listens; null before, and for `caxton mcp` (no listener). */
  url: string | null;
  started_at: string;
  data_dir: string;
}

function parseRecord(text: string): DataLockRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<DataLockRecord>;
    if (typeof r.pid !== 'number' || !Number.isInteger(r.pid) || r.pid <= 0) return undefined;
    return {
      pid: r.pid,
      hostname: typeof r.hostname === 'string' ? r.hostname : '',
      url: typeof r.url === 'string' ? r.url : null,
      started_at: typeof r.started_at === 'string' ? r.started_at : '',
      data_dir: typeof r.data_dir === 'string' ? r.data_dir : '',
    };
  } catch {
    return undefined;
  }
}

function readRecord(path: string): DataLockRecord | undefined {
  try {
    return parseRecord(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

function sqliteCode(e: unknown): string {
  return String((e as { code?: unknown } | null)?.code ?? '');
}

/** A record written on another machine (one without a host name is taken as this machine's). */
const otherHost = (r: DataLockRecord) => r.hostname !== '' && r.hostname !== hostname();

const isBusy = (e: unknown) => /^SQLITE_(BUSY|LOCKED)/.test(sqliteCode(e));

/**
 * Whether some process holds the kernel lock on `holdPath` now. Asked of SQLite in this process
 * too, which knows the locks its own connections hold: opening and closing the file any other
 * way in the holding process would drop a POSIX lock.
 */
function kernelLockHeld(holdPath: string): boolean {
  let db: Db | undefined;
  try {
    db = new Database(holdPath, { readonly: true, fileMustExist: true, timeout: 0, ...sqliteAddon() });
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    return false;
  } catch (e) {
    return isBusy(e);
  } finally {
    db?.close();
  }
}

/**
 * Takes SQLite's exclusive lock on `holdPath` and keeps it for the connection's life
 * (`locking_mode = EXCLUSIVE` never lets go of a lock once taken); undefined when another
 * process holds it.
 */
function holdKernelLock(holdPath: string, dir: string): Db | undefined {
  for (let attempt = 0; ; attempt++) {
    let db: Db | undefined;
    try {
      createPrivateFile(holdPath);
      db = new Database(holdPath, { timeout: 0, ...sqliteAddon() });
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE; COMMIT');
      return db;
    } catch (e) {
      db?.close();
      if (isBusy(e)) return undefined;
      // Not a SQLite file (overwritten by someone): nobody can hold a lock on it through SQLite.
      if (/^SQLITE_(NOTADB|CORRUPT)/.test(sqliteCode(e)) && attempt === 0) {
        rmSync(holdPath, { force: true });
        continue;
      }
      if ((e as NodeJS.ErrnoException).syscall !== undefined)
        throw fsError(e, holdPath, `cannot create the lock file ${holdPath}: the data dir ${dir} is not writable`);
      throw new CaxtonError(
        'configuration_error',
        `cannot lock the data directory ${dir} through ${holdPath} (${e instanceof Error ? e.message : String(e)}): the file system may not support file locks; use a local directory`,
        { field: 'data_dir', data_dir: dir, lock_file: holdPath },
      );
    }
  }
}

/**
 * The lock of a server that holds `dataDir` now, or undefined (no server holds it, or its
 * record is not readable yet). A record written on another machine (a shared volume) counts as
 * held even when the lock is free here: not every shared file system carries locks between
 * machines.
 */
export function readDataLock(dataDir: string): DataLockRecord | undefined {
  const dir = resolve(dataDir);
  const r = readRecord(join(dir, DATA_LOCK_FILE));
  if (!r) return undefined;
  return otherHost(r) || kernelLockHeld(join(dir, DATA_LOCK_HOLD_FILE)) ? r : undefined;
}

export interface DataLock {
  readonly path: string;
  /** Records the address the server listens on, for the CLI and for a second server's refusal. */
  setUrl(url: string): void;
  /**
   * Why the data dir is no longer the one this lock was taken in (deleted, moved away or
   * replaced, or the lock file removed or replaced), else undefined.
   */
  lost(): string | undefined;
  /** Removes the lock record if it is still this process's, and lets go of the kernel lock. */
  release(): void;
}

function inUse(dir: string, path: string, r: DataLockRecord | undefined, remote: boolean): CaxtonError {
  const who = r
    ? `pid ${r.pid}${otherHost(r) ? ` on ${r.hostname}` : ''}${r.url ? `, ${r.url}` : ''}${r.started_at ? `, started ${r.started_at}` : ''}`
    : 'a process that is still starting';
  return new CaxtonError(
    'conflict',
    `the data directory ${dir} is in use by another Caxton server (${who}): two servers on one data directory would not see each other's work. Stop that server first, or give this one its own data directory (--data-dir DIR, CAXTON_DATA_DIR or data_dir in caxton.toml).${remote ? ` If you are sure no server runs on ${r?.hostname ?? 'that machine'}, remove ${path}` : ''}`,
    {
      field: 'data_dir',
      data_dir: dir,
      lock_file: path,
      ...(r && { owner_pid: r.pid }),
      ...(r?.url && { owner_url: r.url }),
    },
  );
}

/** The stat of `path`, or undefined when it no longer exists; other failures say nothing either way. */
function statIfThere(path: string): Stats | 'gone' | undefined {
  try {
    return statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'gone' : undefined;
  }
}

/**
 * Takes the data dir's lock for this process (creating the dir, 0700), or throws `conflict`
 * naming the server that holds it. A lock whose process has ended is free, whatever its record
 * says.
 */
export function lockDataDir(dataDir: string): DataLock {
  const dir = resolve(dataDir);
  try {
    makePrivateDir(dir);
  } catch (e) {
    throw fsError(e, dir, `cannot create the data dir ${dir}`);
  }
  const path = join(dir, DATA_LOCK_FILE);
  const holdPath = join(dir, DATA_LOCK_HOLD_FILE);
  // Kept referenced by the returned lock: a connection garbage-collected is closed, and its lock dropped.
  let hold = holdKernelLock(holdPath, dir);
  if (!hold) throw inUse(dir, path, readRecord(path), false);
  const previous = readRecord(path);
  if (previous && otherHost(previous)) {
    hold.close();
    throw inUse(dir, path, previous, true);
  }
  const record: DataLockRecord = {
    pid: process.pid,
    hostname: hostname(),
    url: null,
    started_at: new Date().toISOString(),
    data_dir: dir,
  };
  let at: Stats;
  let holdAt: Stats;
  try {
    writePrivateFileSync(path, JSON.stringify(record));
    at = statSync(dir);
    holdAt = statSync(holdPath);
  } catch (e) {
    hold.close();
    throw fsError(e, path, `cannot write the lock file ${path}: the data dir ${dir} is not writable`);
  }
  return {
    path,
    setUrl(url) {
      record.url = url;
      if (this.lost() === undefined) writePrivateFileSync(path, JSON.stringify(record));
    },
    lost() {
      const now = statIfThere(dir);
      if (now === 'gone') return `the data directory ${dir} was deleted while the server ran`;
      if (now && (now.ino !== at.ino || now.dev !== at.dev))
        return `the data directory ${dir} was replaced while the server ran (it is another directory now)`;
      const holdNow = statIfThere(holdPath);
      if (holdNow === 'gone')
        return `the lock file ${holdPath} was removed while the server ran (another server could now take the data directory)`;
      if (holdNow && holdNow.ino !== holdAt.ino)
        return `the lock file ${holdPath} was replaced while the server ran (another server could now take the data directory)`;
      return undefined;
    },
    release() {
      if (!hold) return;
      // The record first, then the lock: once the lock is free, the record may be the next server's.
      const r = readRecord(path);
      const here = statIfThere(dir);
      if (r?.pid === process.pid && here !== 'gone' && here?.ino === at.ino) rmSync(path, { force: true });
      // The hold file stays: removing it could let a server that has just opened it lock a file
      // no longer in the directory while a third creates and locks a new one.
      hold.close();
      hold = undefined;
    },
  };
}
