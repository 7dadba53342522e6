import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase, TURN_WRITER_MAX_QUEUE, writeLane, type Db } from '../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

afterAll(removeTempDirs);

function db(): Db {
  const d = openDatabase(join(makeTempDir('caxton-turn-writer-'), 'caxton.db'));
  d.exec('CREATE TABLE a (v INTEGER NOT NULL); CREATE TABLE b (v INTEGER NOT NULL CHECK (v >= 0))');
  return d;
}

const count = (d: Db, t: string) => (d.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;

describe('the turn writer of a SQLite database', () => {
  it('writes every lane of a database in one transaction, and reads after flush() see it', () => {
    const d = db();
    const insA = d.prepare('INSERT INTO a (v) VALUES (?)');
    const insB = d.prepare('INSERT INTO b (v) VALUES (?)');
    const seen: boolean[] = [];
    const a = writeLane(d, {
      write: (batch: number[]) => {
        seen.push(d.inTransaction);
        for (const v of batch) insA.run(v);
      },
    });
    const committed: number[][] = [];
    const b = writeLane(d, {
      write: (batch: number[]) => batch.map((v) => Number(insB.run(v).lastInsertRowid)),
      committed: (ids) => committed.push(ids),
    });
    a.push(1);
    b.push(10);
    a.push(2);
    expect(count(d, 'a')).toBe(0);
    b.flush(); // flushes the whole writer
    expect([count(d, 'a'), count(d, 'b')]).toEqual([2, 1]);
    expect(seen).toEqual([true]);
    expect(committed).toEqual([[1]]);
  });

  it("a lane whose rows fail loses them alone: the other lanes' rows commit", () => {
    const d = db();
    const insA = d.prepare('INSERT INTO a (v) VALUES (?)');
    const insB = d.prepare('INSERT INTO b (v) VALUES (?)');
    const errors: unknown[] = [];
    const a = writeLane(d, { write: (batch: number[]) => void batch.forEach((v) => insA.run(v)) });
    const b = writeLane(d, {
      write: (batch: number[]) => void batch.forEach((v) => insB.run(v)),
      onError: (e) => errors.push(e),
    });
    b.push(1);
    b.push(-1); // violates the CHECK: b's batch goes
    a.push(7);
    a.flush();
    expect([count(d, 'a'), count(d, 'b')]).toEqual([1, 0]);
    expect(b.dropped).toBe(2);
    expect(a.dropped).toBe(0);
    expect(errors).toHaveLength(1);
  });

  it('a lane that fails after others were written: theirs are written once and committed once, from the retry', () => {
    const d = db();
    const insA = d.prepare('INSERT INTO a (v) VALUES (?)');
    const insB = d.prepare('INSERT INTO b (v) VALUES (?)');
    const writes: number[][] = [];
    const committed: number[][] = [];
    const a = writeLane(d, {
      write: (batch: number[]) => {
        writes.push(batch);
        return batch.map((v) => Number(insA.run(v).lastInsertRowid));
      },
      committed: (ids) => committed.push(ids),
    });
    const b = writeLane(d, { write: (batch: number[]) => void batch.forEach((v) => insB.run(v)) });
    a.push(5);
    a.push(6);
    b.push(-1); // violates the CHECK after a's rows went in
    b.flush();
    expect(d.prepare('SELECT v FROM a ORDER BY rowid').pluck().all()).toEqual([5, 6]);
    expect(count(d, 'b')).toBe(0);
    expect(writes).toEqual([
      [5, 6],
      [5, 6],
    ]);
    expect(committed).toEqual([[1, 2]]);
    expect([a.dropped, b.dropped]).toEqual([0, 1]);
    // The next batch goes in one plain transaction again.
    a.push(7);
    b.push(8);
    a.flush();
    expect([count(d, 'a'), count(d, 'b')]).toEqual([3, 1]);
    expect(writes).toHaveLength(3);
  });

  it('a full queue is written on the caller’s turn and counted as back-pressure; close drains', () => {
    const d = db();
    const insA = d.prepare('INSERT INTO a (v) VALUES (?)');
    let full = 0;
    const a = writeLane(d, {
      write: (batch: number[]) => void batch.forEach((v) => insA.run(v)),
      onFull: () => full++,
    });
    for (let i = 0; i < TURN_WRITER_MAX_QUEUE + 1; i++) a.push(i);
    expect(count(d, 'a')).toBe(TURN_WRITER_MAX_QUEUE);
    expect(full).toBe(1);
    expect(a.full).toBe(1);
    a.close();
    expect(count(d, 'a')).toBe(TURN_WRITER_MAX_QUEUE + 1);
    a.push(-1);
    a.flush();
    expect(count(d, 'a')).toBe(TURN_WRITER_MAX_QUEUE + 1);
  });
});
