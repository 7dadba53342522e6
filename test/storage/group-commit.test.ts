/**
 * GroupCommit unit tests over a real SQLite file (openDatabase, WAL). Transactions are counted
 * through the beforeCommit/afterCommit callbacks the class takes, and what is on disk is read
 * through a second connection to the same file.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/storage/group-commit.js';
import { openDatabase, type Db } from '../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

let db: Db;
let reader: Db;
let commits: number;
let befores: number;

beforeEach(() => {
  const dir = makeTempDir('caxton-gc-');
  db = openDatabase(dir);
  db.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)');
  reader = openDatabase(dir);
  commits = 0;
  befores = 0;
});

afterEach(() => {
  reader.close();
  db.close();
  removeTempDirs();
});

function counting(beforeCommit: () => void = () => {}, maxBatch?: number): GroupCommit {
  return new GroupCommit(
    db,
    () => {
      befores++;
      beforeCommit();
    },
    () => commits++,
    maxBatch,
  );
}

const insert =
  (k: string, v = 1) =>
  () =>
    db.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run(k, v).changes;
const onDisk = () => (reader.prepare('SELECT k FROM t ORDER BY k').all() as { k: string }[]).map((r) => r.k);
const turn = () => new Promise<void>((r) => setImmediate(r));

describe('GroupCommit: batching', () => {
  it('writes queued in one turn share one transaction, and resolve with their own results in order', async () => {
    const gc = counting();
    const ps = [gc.run(insert('a')), gc.run(insert('b')), gc.run(() => 'third'), gc.run(insert('c'))];
    expect(gc.pending).toBe(4);
    expect(onDisk()).toEqual([]);
    expect(commits).toBe(0);
    expect(await Promise.all(ps)).toEqual([1, 1, 'third', 1]);
    expect(commits).toBe(1);
    expect(befores).toBe(1);
    expect(gc.pending).toBe(0);
    expect(onDisk()).toEqual(['a', 'b', 'c']);
  });

  it('writes queued in different turns commit in different transactions', async () => {
    const gc = counting();
    const p1 = gc.run(insert('a'));
    await turn();
    const p2 = gc.run(insert('b'));
    await Promise.all([p1, p2]);
    expect(commits).toBe(2);
  });

  it("each caller's promise settles only after its transaction committed (visible to another connection)", async () => {
    const gc = counting();
    const seen: { commitsAtResolve: number; rows: string[] }[] = [];
    const ps = ['a', 'b'].map((k) =>
      gc.run(insert(k)).then(() => seen.push({ commitsAtResolve: commits, rows: onDisk() })),
    );
    // Not yet: nothing runs until the next turn.
    await Promise.resolve();
    expect(seen).toEqual([]);
    await Promise.all(ps);
    expect(seen).toEqual([
      { commitsAtResolve: 1, rows: ['a', 'b'] },
      { commitsAtResolve: 1, rows: ['a', 'b'] },
    ]);
  });

  it('beforeCommit runs inside the transaction, after the writes: its own write commits with them', async () => {
    let rowsSeenInside: number | undefined;
    const gc = counting(() => {
      rowsSeenInside = (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
      db.prepare("INSERT OR REPLACE INTO t (k, v) VALUES ('saved', 0)").run();
    });
    await Promise.all([gc.run(insert('a')), gc.run(insert('b'))]);
    expect(rowsSeenInside).toBe(2);
    expect(onDisk()).toEqual(['a', 'b', 'saved']);
  });

  it('maxBatch: the write that fills a batch flushes it at once; the rest wait for the next turn', async () => {
    const gc = counting(undefined, 2);
    const p1 = gc.run(insert('a'));
    expect(commits).toBe(0);
    const p2 = gc.run(insert('b'));
    expect(commits).toBe(1);
    expect(gc.pending).toBe(0);
    expect(onDisk()).toEqual(['a', 'b']);
    const p3 = gc.run(insert('c'));
    expect(gc.pending).toBe(1);
    await Promise.all([p1, p2, p3]);
    expect(commits).toBe(2);
  });
});

describe('GroupCommit: failures', () => {
  it('a failing write rejects alone: the group is rolled back and retried one write per transaction', async () => {
    const gc = counting();
    const p1 = gc.run(insert('a'));
    const p2 = gc.run(() => {
      db.prepare("INSERT INTO t (k, v) VALUES ('half', 1)").run();
      throw new Error('bad write');
    });
    const p3 = gc.run(insert('c'));
    const results = await Promise.allSettled([p1, p2, p3]);
    expect(results[0]).toEqual({ status: 'fulfilled', value: 1 });
    expect(results[1]).toMatchObject({ status: 'rejected', reason: { message: 'bad write' } });
    expect(results[2]).toEqual({ status: 'fulfilled', value: 1 });
    // 'a' was written twice (group try, then alone) without a primary-key clash: the group
    // transaction was rolled back; the failing write's own partial row was rolled back too.
    expect(onDisk()).toEqual(['a', 'c']);
    // One commit per successful write; beforeCommit never ran in the failed tries.
    expect(commits).toBe(2);
    expect(befores).toBe(2);
  });

  it('a constraint error reaches only its caller, with the database error', async () => {
    const gc = counting();
    await gc.run(insert('dup'));
    const r = await Promise.allSettled([gc.run(insert('x')), gc.run(insert('dup'))]);
    expect(r[0]!.status).toBe('fulfilled');
    expect(r[1]).toMatchObject({ status: 'rejected', reason: { code: 'SQLITE_CONSTRAINT_PRIMARYKEY' } });
  });

  it('an error in one group does not reach the callers of the next group, which commits as one', async () => {
    const gc = counting();
    const bad = gc.run(() => {
      throw new Error('first group');
    });
    await expect(bad).rejects.toThrow('first group');
    commits = 0;
    befores = 0;
    const later = await Promise.all([gc.run(insert('p')), gc.run(insert('q'))]);
    expect(later).toEqual([1, 1]);
    expect(commits).toBe(1);
    expect(onDisk()).toEqual(['p', 'q']);
  });

  it('a beforeCommit that fails once makes the group retry each write alone', async () => {
    let fail = true;
    const gc = counting(() => {
      if (fail) {
        fail = false;
        throw new Error('save failed');
      }
    });
    expect(await Promise.all([gc.run(insert('a')), gc.run(insert('b'))])).toEqual([1, 1]);
    expect(commits).toBe(2);
    expect(onDisk()).toEqual(['a', 'b']);
  });
});

describe('GroupCommit: joined writes (one promise per batch)', () => {
  const joined = (k: string) => ({ run: () => void db.prepare('INSERT INTO t (k, v) VALUES (?, 1)').run(k) });

  it('joined writes of one turn share one transaction and one promise, in order with run() writes', async () => {
    const gc = counting();
    const a = joined('a');
    const c = joined('c');
    const pa = gc.join(a);
    const pb = gc.run(insert('b'));
    const pc = gc.join(c);
    expect(pa).toBe(pc);
    expect(gc.pending).toBe(3);
    expect(await pa).toBeUndefined();
    expect(await pb).toBe(1);
    expect(commits).toBe(1);
    expect(onDisk()).toEqual(['a', 'b', 'c']);
    // The next turn's writes wait on a promise of their own batch.
    const pd = gc.join(joined('d'));
    expect(pd).not.toBe(pa);
    expect(await pd).toBeUndefined();
    expect(commits).toBe(2);
  });

  it('a failing joined write is named with its error; the others of the batch still commit', async () => {
    const gc = counting();
    await gc.run(insert('dup'));
    commits = 0;
    const ok = joined('x');
    const bad = joined('dup');
    const p = gc.join(ok);
    gc.join(bad);
    const other = gc.run(insert('y'));
    const failed = await p;
    expect([...failed!.keys()]).toEqual([bad]);
    expect(failed!.get(bad)).toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    expect(await other).toBe(1);
    expect(onDisk()).toEqual(['dup', 'x', 'y']);
    expect(commits).toBe(2);
  });

  it('a closed group commit refuses joined writes', async () => {
    const gc = counting();
    gc.close();
    await expect(gc.join(joined('late'))).rejects.toThrow('closed');
  });
});

describe('GroupCommit: touch, settled, close', () => {
  it('touch commits an empty transaction (running beforeCommit) on the next turn', async () => {
    const gc = counting(() => db.prepare("INSERT OR REPLACE INTO t (k, v) VALUES ('touched', 0)").run());
    gc.touch();
    gc.touch();
    expect(commits).toBe(0);
    await turn();
    expect(commits).toBe(1);
    expect(onDisk()).toEqual(['touched']);
  });

  it('an empty commit whose beforeCommit throws is swallowed (no afterCommit)', async () => {
    const gc = counting(() => {
      throw new Error('nope');
    });
    gc.touch();
    await turn();
    expect(befores).toBe(1);
    expect(commits).toBe(0);
    // Still usable: the next write is retried alone and rejected with beforeCommit's error.
    await expect(gc.run(insert('a'))).rejects.toThrow('nope');
    expect(onDisk()).toEqual([]);
  });

  it('settled resolves at once when nothing is queued, else after the queued writes committed', async () => {
    const gc = counting();
    await gc.settled();
    void gc.run(insert('a'));
    void gc.run(insert('b'));
    await gc.settled();
    expect(onDisk()).toEqual(['a', 'b']);
    expect(commits).toBe(1);
    // A touch alone also counts as something to settle.
    gc.touch();
    await gc.settled();
    expect(commits).toBe(2);
  });

  it('close flushes what is queued at once, then refuses new writes', async () => {
    const gc = counting();
    const p = gc.run(insert('a'));
    gc.close();
    expect(onDisk()).toEqual(['a']);
    await expect(p).resolves.toBe(1);
    expect(commits).toBe(1);
    await expect(gc.run(insert('b'))).rejects.toThrow('the store is closed');
    // The turn scheduled by the first write still fires after close (close's flush does not cancel
    // it: one empty commit, or a swallowed error once the database is closed); once it has, touch
    // on a closed GroupCommit schedules nothing.
    await turn();
    const after = commits;
    gc.touch();
    await turn();
    expect(commits).toBe(after);
    expect(onDisk()).toEqual(['a']);
  });
});
