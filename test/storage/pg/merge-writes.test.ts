/**
 * A group's writes merged into multi-row INSERTs (src/storage/pg/tx.ts, `mergeWrites`) on the
 * machine's PostgreSQL: the steps of a group (one StatementBatch each, adopted by the group's)
 * write through `later`, and the group's COMMIT carries them. Shown with the SQL actually sent:
 *  - one INSERT per template for the whole group, every row stored;
 *  - each step's own order kept: a step that inserts, deletes and inserts the same key again ends
 *    with its last row (a merge by template alone would fail or keep the wrong one);
 *  - an upsert of one key twice by one step goes out as two statements (one statement may not
 *    affect a row twice), and distinct keys of several steps as one;
 *  - a value that cannot be written (a NUL) fails the step that wrote it, at once;
 *  - ids given as one array literal (`intArray`) read as a bigint[] parameter; a non-integer is refused.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { intArray, StatementBatch } from '../../../src/storage/pg/index.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';

const run = hasSystem('postgresql');
const schema = `caxton_merge_${process.pid}_${Date.now()}`;
const s = `"${schema}"`;
let pool: pg.Pool;

beforeAll(async () => {
  if (!run) return;
  pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 2 });
  await pool.query(
    `CREATE SCHEMA ${s}; CREATE TABLE ${s}.a (id text PRIMARY KEY, v int NOT NULL); CREATE TABLE ${s}.b (id text PRIMARY KEY, a_id text NOT NULL REFERENCES ${s}.a (id))`,
  );
});

afterAll(async () => {
  if (!run) return;
  await pool.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  await pool.end();
});

const insertA = `INSERT INTO ${s}.a (id, v) VALUES ($1, $2)`;
const insertB = `INSERT INTO ${s}.b (id, a_id) VALUES ($1, $2)`;
const upsertA = `INSERT INTO ${s}.a (id, v)
   VALUES ($1, $2)
   ON CONFLICT (id) DO UPDATE SET v = excluded.v`;

/** Runs `steps` (each given its own batch) as one group's transaction; resolves with the SQL sent with the COMMIT, one string per statement. */
async function group(steps: ((b: StatementBatch) => void)[]): Promise<string[]> {
  const c = await pool.connect();
  const sent: string[] = [];
  const query = c.query.bind(c) as (...args: unknown[]) => Promise<unknown>;
  // Every statement this connection is sent, as sent (restored before the connection goes back to the pool).
  const spy = c as unknown as { query: (...args: unknown[]) => Promise<unknown> };
  spy.query = (...args) => {
    if (typeof args[0] === 'string') sent.push(args[0]);
    return query(...args);
  };
  try {
    await query('BEGIN');
    const line = { tail: Promise.resolve() as Promise<unknown> };
    const all = new StatementBatch(c, line);
    for (const step of steps) {
      const b = new StatementBatch(c, line);
      step(b);
      all.adopt(b);
    }
    await all.end('COMMIT');
  } catch (e) {
    await query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    delete (spy as { query?: unknown }).query;
    c.release();
  }
  return sent.flatMap((t) => t.split(';\n')).filter((t) => t !== 'COMMIT' && t !== 'BEGIN');
}

const rows = async (table: string) =>
  (await pool.query(`SELECT * FROM ${s}.${table} ORDER BY id`)).rows as Record<string, unknown>[];

describe.skipIf(!run)('a group commit merges its steps’ INSERTs', () => {
  it('one INSERT per template for the group, every row stored', async () => {
    const sent = await group(
      ['x', 'y', 'z'].map((k, i) => (b) => {
        b.later(insertA, [k, i]);
        b.later(insertB, [`${k}-b`, k]);
      }),
    );
    expect(sent).toHaveLength(2);
    expect(sent[0]).toContain(`VALUES ('x', 0), ('y', 1), ('z', 2)`);
    expect(sent[1]).toContain(`VALUES ('x-b', 'x'), ('y-b', 'y'), ('z-b', 'z')`);
    expect((await rows('a')).map((r) => [r.id, r.v])).toEqual([
      ['x', 0],
      ['y', 1],
      ['z', 2],
    ]);
    expect(await rows('b')).toHaveLength(3);
  });

  it("keeps each step's own order: insert, delete, insert the same key again ends with the last row", async () => {
    const sent = await group([
      (b) => b.later(insertA, ['q1', 1]),
      (b) => {
        b.later(insertA, ['p1', 1]);
        b.later(`DELETE FROM ${s}.a WHERE id = $1`, ['p1']);
        b.later(insertA, ['p1', 2]);
      },
    ]);
    // p1's first row joins q1's statement; its second cannot (its DELETE comes between).
    expect(sent).toHaveLength(3);
    expect((await rows('a')).filter((r) => ['p1', 'q1'].includes(r.id as string)).map((r) => [r.id, r.v])).toEqual([
      ['p1', 2],
      ['q1', 1],
    ]);
  });

  it('an upsert of one key twice by one step goes as two statements; distinct keys of several steps as one', async () => {
    const sent = await group([
      (b) => {
        b.later(upsertA, ['u1', 1]);
        b.later(upsertA, ['u1', 2]);
      },
      (b) => b.later(upsertA, ['u2', 1]),
      (b) => b.later(upsertA, ['u3', 1]),
    ]);
    expect(sent).toHaveLength(2);
    expect(sent[0]).toContain(`VALUES ('u1', 1)`);
    expect(sent[1]).toContain(`VALUES ('u1', 2), ('u2', 1), ('u3', 1)`);
    expect(sent[1]).toContain('ON CONFLICT (id) DO UPDATE SET v = excluded.v');
    expect((await rows('a')).filter((r) => (r.id as string).startsWith('u')).map((r) => [r.id, r.v])).toEqual([
      ['u1', 2],
      ['u2', 1],
      ['u3', 1],
    ]);
  });

  it('a value with a NUL fails the step that wrote it, when it writes it', async () => {
    const c = await pool.connect();
    try {
      const b = new StatementBatch(c);
      expect(() => b.later(insertA, ['bad\0id', 1])).toThrow(/NUL/);
    } finally {
      c.release();
    }
  });
});

describe.skipIf(!run)('intArray', () => {
  it('gives ids as one bigint[] parameter, an empty list included; refuses what is not an integer', async () => {
    const read = async (ids: number[]) =>
      (await pool.query<{ id: string }>('SELECT unnest($1::bigint[]) AS id', [intArray(ids)])).rows.map((r) =>
        Number(r.id),
      );
    expect(await read([3, 1, 2 ** 40])).toEqual([3, 1, 2 ** 40]);
    expect(await read([])).toEqual([]);
    expect(() => intArray([1, 1.5])).toThrow(/1.5 is not an integer id/);
    expect(() => intArray([Number.NaN])).toThrow(/not an integer id/);
  });
});
