/**
 * A crash in the middle of a WAL checkpoint leaves the database file shorter than its header says:
 * the checkpoint copies the log's pages in page order, page 1 (the header with the new page count)
 * first. The log is still whole and SQLite reads the missing pages from it, so the store must
 * open with everything committed, while a file truncated with no log behind it is still refused.
 */
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync, statSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

const ROWS = 2_000;

/** A database whose last writes, which grew it, are only in its log (no checkpoint ran). */
function grownInTheLog(dir: string): { db: string; wal: string } {
  // A Caxton store (its schema table and application id), then a table of its own grown in the log.
  const conn = openDatabase(join(dir, 'source'));
  const db = join(dir, 'source', 'caxton.db');
  conn.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  conn.pragma('wal_checkpoint(TRUNCATE)');
  conn.pragma('wal_autocheckpoint = 0');
  const insert = conn.prepare('INSERT INTO t (body) VALUES (?)');
  conn.transaction(() => {
    for (let i = 0; i < ROWS; i++) insert.run(`row ${i} `.padEnd(200, 'x'));
  })();
  // Copied while the connection is open and idle: the file and the log as a crash would leave them.
  const out = join(dir, 'data');
  mkdirSync(out, { mode: 0o700 });
  copyFileSync(db, join(out, 'caxton.db'));
  copyFileSync(`${db}-wal`, join(out, 'caxton.db-wal'));
  conn.close();
  return { db: join(out, 'caxton.db'), wal: join(out, 'caxton.db-wal') };
}

/** Writes the log's newest copy of page 1 into the file, as a checkpoint's first write does. */
function checkpointPageOne(db: string, wal: string): void {
  const log = readFileSync(wal);
  const pageSize = log.readUInt32BE(8);
  let page1: Buffer | undefined;
  for (let at = 32; at + 24 + pageSize <= log.length; at += 24 + pageSize) {
    if (log.readUInt32BE(at) === 1) page1 = log.subarray(at + 24, at + 24 + pageSize);
  }
  if (!page1) throw new Error('the log holds no page 1');
  const fd = openSync(db, 'r+');
  try {
    writeSync(fd, page1, 0, pageSize, 0);
  } finally {
    closeSync(fd);
  }
}

describe('a checkpoint interrupted by a crash', () => {
  afterEach(removeTempDirs);
  const newDir = () => ({ dir: makeTempDir('caxton-checkpoint-') });

  it('opens with every committed row: the pages the file lacks are in the log', () => {
    const d = newDir();
    const { db, wal } = grownInTheLog(d.dir);
    checkpointPageOne(db, wal);
    const header = readFileSync(db).subarray(0, 100);
    const promised = header.readUInt32BE(28) * header.readUInt16BE(16);
    expect(statSync(db).size, 'the file is shorter than its header says').toBeLessThan(promised);

    const store = openDatabase(join(d.dir, 'data'));
    try {
      expect(store.prepare('SELECT count(*) FROM t').pluck().get()).toBe(ROWS);
      expect(store.pragma('quick_check', { simple: true })).toBe('ok');
    } finally {
      store.close();
    }
  });

  it('a file cut short with no log behind it is still refused, and left as it was', () => {
    const d = newDir();
    const { db, wal } = grownInTheLog(d.dir);
    checkpointPageOne(db, wal);
    truncateSync(wal, 0);
    const before = readFileSync(db);
    expect(() => openDatabase(join(d.dir, 'data'))).toThrow(/is truncated \(\d+ bytes; its header says \d+\)/);
    expect(readFileSync(db).equals(before)).toBe(true);
  });
});
