/**
 * The data dir's lock and write fence in one process (ADR 0127): the kernel lock is seen held by
 * a second taker in the same process and released with the lock; a record of another machine is
 * respected; a data dir deleted under the store stops every write inside SQLite, with the error
 * a request is given, while reads go on. Child processes: test/cli/data-lock.test.ts.
 */
import { readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CaxtonError } from '../../src/shared/errors.js';
import { DATA_LOCK_FILE, DATA_LOCK_HOLD_FILE, lockDataDir, readDataLock } from '../../src/storage/data-lock.js';
import { openDatabase } from '../../src/storage/database.js';
import { fencedWriteError, watchDataDir, WriteFence } from '../../src/storage/write-fence.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

afterEach(removeTempDirs);

function conflictOf(f: () => unknown): CaxtonError {
  try {
    f();
  } catch (e) {
    if (e instanceof CaxtonError) return e;
    throw e;
  }
  throw new Error('expected a conflict');
}

describe('the data dir lock', () => {
  it('is held until released, even against a taker in the same process; its files are private', () => {
    const dir = join(makeTempDir('caxton-lock-'), 'data');
    const lock = lockDataDir(dir);
    expect(readDataLock(dir)).toMatchObject({ pid: process.pid, url: null, data_dir: dir });
    const e = conflictOf(() => lockDataDir(dir));
    expect(e.code).toBe('conflict');
    expect(e.message).toContain(`the data directory ${dir} is in use by another Caxton server (pid ${process.pid}`);
    for (const f of readdirSync(dir)) expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o600);
    lock.release();
    // The record is gone, the hold file stays (it holds nothing) and is free.
    expect(readdirSync(dir)).toEqual([DATA_LOCK_HOLD_FILE]);
    expect(readDataLock(dir)).toBeUndefined();
    lockDataDir(dir).release();
  });

  it('a record naming a live process that holds no lock is stale; one of another machine is respected', () => {
    const dir = join(makeTempDir('caxton-lock-'), 'data');
    lockDataDir(dir).release();
    // This very process is alive, but holds no lock on the data dir.
    const record = { pid: process.pid, hostname: 'elsewhere.example', url: null, started_at: '', data_dir: dir };
    writeFileSync(join(dir, DATA_LOCK_FILE), JSON.stringify(record));
    const e = conflictOf(() => lockDataDir(dir));
    expect(e.message).toContain(`pid ${process.pid} on elsewhere.example`);
    expect(e.message).toContain(
      `If you are sure no server runs on elsewhere.example, remove ${join(dir, DATA_LOCK_FILE)}`,
    );
    // pid 1 runs on every machine; on this one it holds no lock here.
    writeFileSync(join(dir, DATA_LOCK_FILE), JSON.stringify({ ...record, hostname: hostname(), pid: 1 }));
    const lock = lockDataDir(dir);
    expect(readDataLock(dir)).toMatchObject({ pid: process.pid });
    lock.release();
  });
});

describe('the write fence', () => {
  it('a data dir deleted under the store: writes refused by SQLite with the reason, reads go on, said once', () => {
    const dir = join(makeTempDir('caxton-fence-'), 'data');
    const lock = lockDataDir(dir);
    const db = openDatabase(dir);
    db.exec('CREATE TABLE t (x INTEGER)');
    db.prepare('INSERT INTO t VALUES (1)').run();
    const fence = new WriteFence();
    fence.attach(db);
    const stops: string[] = [];
    const watch = watchDataDir(lock, fence, { dataDir: dir, intervalMs: 60_000, onStop: (r) => stops.push(r) });
    try {
      expect(watch.check()).toBeUndefined();
      rmSync(dir, { recursive: true, force: true });
      expect(watch.check()).toBe(`the data directory ${dir} was deleted while the server ran`);
      expect(watch.check()).toBe(stops[0]);
      expect(stops).toHaveLength(1);
      let refused: unknown;
      try {
        db.prepare('INSERT INTO t VALUES (2)').run();
      } catch (e) {
        refused = e;
      }
      const err = fencedWriteError(refused);
      expect(err?.code).toBe('not_ready');
      expect(err?.status).toBe(503);
      expect(err?.message).toMatch(/was deleted while the server ran: nothing was stored.*restart the server/);
      expect(db.prepare('SELECT count(*) FROM t').pluck().get()).toBe(1);
    } finally {
      watch.close();
      fence.close();
      db.close();
      lock.release();
    }
    // Another error than a refused write is not taken for one.
    expect(fencedWriteError(Object.assign(new Error('x'), { code: 'SQLITE_READONLY' }))).toBeUndefined();
  });
});
