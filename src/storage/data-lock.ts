/**
 * One server per data directory (ADR 0127): `caxton.lock` in the data dir names the process that
 * owns it (pid, host name) and, once it listens, its address. A second server on the same data
 * dir refuses to start, naming the first; a lock whose process is gone is taken over. The lock
 * also remembers which directory it was taken in (device and inode), so that a data dir deleted
 * or replaced under a running server is noticed instead of the server writing on into files
 * nobody will ever read again.
 */
import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { CaxtonError } from '../shared/errors.js';
import { makePrivateDir, writePrivateFileSync } from '../shared/private-fs.js';
import { pidAlive } from '../shared/pid.js';
import { fsError } from './database.js';

export const DATA_LOCK_FILE = 'caxton.lock';

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

/** Whether the lock's owner still runs: a lock of another machine's process cannot be checked, so it counts as held. */
function held(r: DataLockRecord): boolean {
  return r.hostname !== hostname() || pidAlive(r.pid);
}

/** The lock of a server that holds `dataDir` now, or undefined (no lock, unreadable, or its process is gone). */
export function readDataLock(dataDir: string): DataLockRecord | undefined {
  let text: string;
  try {
    text = readFileSync(join(resolve(dataDir), DATA_LOCK_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const r = parseRecord(text);
  return r && held(r) ? r : undefined;
}

export interface DataLock {
  readonly path: string;
  /** Records the address the server listens on, for the CLI and for a second server's refusal. */
  setUrl(url: string): void;
  /**
   * Why the data dir is no longer the one this lock was taken in (deleted, moved away or
   * replaced, or the lock file removed or taken by another process), else undefined.
   */
  lost(): string | undefined;
  /** Removes the lock file if it is still this process's. */
  release(): void;
}

function inUse(dir: string, path: string, r: DataLockRecord): CaxtonError {
  const who = `pid ${r.pid}${r.hostname !== hostname() ? ` on ${r.hostname}` : ''}${r.url ? `, ${r.url}` : ''}${r.started_at ? `, started ${r.started_at}` : ''}`;
  return new CaxtonError(
    'conflict',
    `the data directory ${dir} is in use by another Caxton server (${who}): two servers on one data directory would not see each other's work. Stop that server first, or give this one its own data directory (--data-dir DIR, CAXTON_DATA_DIR or data_dir in caxton.toml). If you are sure no server runs, remove ${path}`,
    { field: 'data_dir', data_dir: dir, lock_file: path, owner_pid: r.pid, ...(r.url && { owner_url: r.url }) },
  );
}

/**
 * Takes the data dir's lock for this process (creating the dir, 0700), or throws `conflict`
 * naming the server that holds it. A lock left by a process that no longer runs is taken over.
 */
export function lockDataDir(dataDir: string): DataLock {
  const dir = resolve(dataDir);
  makePrivateDir(dir);
  const path = join(dir, DATA_LOCK_FILE);
  const record: DataLockRecord = {
    pid: process.pid,
    hostname: hostname(),
    url: null,
    started_at: new Date().toISOString(),
    data_dir: dir,
  };
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw fsError(e, path, `cannot create the lock file ${path}: the data dir ${dir} is not writable`);
      if (attempt > 2) throw e;
      let text = '';
      try {
        text = readFileSync(path, 'utf8');
      } catch {
        continue; // removed meanwhile: try again
      }
      const other = parseRecord(text);
      // A lock being written right now reads empty: it is held; so is one of a live process.
      if (text === '' || (other && held(other))) {
        throw inUse(dir, path, other ?? { ...record, pid: 0, hostname: '?', started_at: '' });
      }
      rmSync(path, { force: true }); // its process is gone (or the file is not a lock): taken over
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(record));
    } finally {
      closeSync(fd);
    }
    break;
  }
  const at = statSync(dir);
  const lockAt = statSync(path);
  return {
    path,
    setUrl(url) {
      record.url = url;
      if (this.lost() === undefined) writePrivateFileSync(path, JSON.stringify(record));
    },
    lost() {
      let now;
      try {
        now = statSync(dir);
      } catch {
        return `the data directory ${dir} was deleted while the server ran`;
      }
      if (now.ino !== at.ino || now.dev !== at.dev)
        return `the data directory ${dir} was replaced while the server ran (it is another directory now)`;
      let lockNow;
      try {
        lockNow = statSync(path);
      } catch {
        return `the lock file ${path} was removed while the server ran`;
      }
      if (lockNow.ino !== lockAt.ino) {
        const other = parseRecord(readFileSync(path, 'utf8'));
        if (other && other.pid !== process.pid)
          return `the lock file ${path} now names another process (pid ${other.pid})`;
      }
      return undefined;
    },
    release() {
      try {
        const r = parseRecord(readFileSync(path, 'utf8'));
        if (r?.pid === process.pid && statSync(dir).ino === at.ino) rmSync(path, { force: true });
      } catch {
        // already gone
      }
    },
  };
}
