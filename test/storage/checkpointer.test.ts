import { existsSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkpointInBackground, openDatabase } from '../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

afterAll(removeTempDirs);

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('WAL checkpoints on a worker thread', () => {
  it('copies committed pages into the database file while the server connection only commits', async () => {
    const dir = makeTempDir('caxton-checkpointer-');
    const path = join(dir, 'caxton.db');
    const db = openDatabase(dir);
    db.exec('CREATE TABLE t (v TEXT NOT NULL)');
    db.pragma('wal_checkpoint(TRUNCATE)');
    const cp = checkpointInBackground(db, { intervalMs: 20 });
    // The server's connection no longer checkpoints at 1,000 pages, only far beyond.
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(10_000);
    const before = statSync(path).size;
    const ins = db.prepare('INSERT INTO t (v) VALUES (?)');
    for (let i = 0; i < 200; i++) ins.run('x'.repeat(2000));
    // Written to the WAL; the database file grows only when the worker's checkpoint copies them.
    await until(() => statSync(path).size > before + 200 * 2000);
    expect((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(200);

    cp.close();
    db.close();
    // The server's connection closed last: SQLite checkpointed and removed the WAL.
    expect(existsSync(`${path}-wal`)).toBe(false);
    const again = openDatabase(dir);
    expect((again.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(200);
    again.close();
  });

  it('close() before the delayed start leaves the connection as it was', () => {
    const dir = makeTempDir('caxton-checkpointer-');
    const db = openDatabase(dir);
    const cp = checkpointInBackground(db, { startAfterMs: 60_000 });
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    cp.close();
    db.close();
    expect(existsSync(join(dir, 'caxton.db-wal'))).toBe(false);
  });

  it('gives checkpoints back to the server connection when the worker cannot open the database', async () => {
    const dir = makeTempDir('caxton-checkpointer-');
    const db = openDatabase(dir);
    // The connection keeps its open file; a new connection finds none.
    renameSync(join(dir, 'caxton.db'), join(dir, 'moved.db'));
    const errors: unknown[] = [];
    const cp = checkpointInBackground(db, { onError: (e) => errors.push(e) });
    await until(() => errors.length > 0);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    cp.close();
    db.close();
  });
});
