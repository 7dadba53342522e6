/**
 * The statement batch of a cluster transaction (src/storage/pg/tx.ts) on the machine's
 * PostgreSQL: writes that wait and go with the next read or the COMMIT carry their values as
 * literals, so hostile text must come back byte for byte, a write that fails must fail the whole
 * transaction (surfacing with the statement sent after it), and a NUL is refused with a clear error.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inTransaction, literal } from '../../../src/storage/pg/index.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';

const run = hasSystem('postgresql');
const schema = `caxton_pgtx_${process.pid}_${Date.now()}`;
let pool: pg.Pool;

beforeAll(async () => {
  if (!run) return;
  pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 2 });
  await pool.query(
    `CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".t (id bigserial PRIMARY KEY, txt text UNIQUE, n bigint, f double precision, b boolean)`,
  );
});

afterAll(async () => {
  if (!run) return;
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const HOSTILE = [
  "it's",
  "''; DROP TABLE t; --",
  'back\\slash \\\\ and \\x41 \\n',
  '$1 $2 $$ dollar $tag$',
  'ünïcödé ✓ 🚀 \u2028 \t tab',
  '',
  "E'\\'",
  JSON.stringify({ a: "quote ' and \\ backslash", nul: '\u0000' }),
];

describe.runIf(run)('StatementBatch: writes sent with the next read or the COMMIT', () => {
  it('hostile text, numbers, booleans and NULL written as literals read back unchanged', async () => {
    const read = await inTransaction(pool, 'BEGIN', async (_c, _s, batch) => {
      for (const [i, txt] of HOSTILE.entries())
        batch.later(`INSERT INTO "${schema}".t (txt, n, f, b) VALUES ($1, $2, $3, $4)`, [
          txt,
          0 - i * 1e12,
          i / 3,
          i % 2 === 0,
        ]);
      batch.later(`INSERT INTO "${schema}".t (txt, n, f, b) VALUES ($1, $2, $3, $4)`, ['nulls', null, undefined, null]);
      // Read in the same round trip as the writes before it: they are visible.
      return (
        await batch.now<{ txt: string; n: string | null; f: number | null; b: boolean | null }>(
          `SELECT txt, n, f, b FROM "${schema}".t ORDER BY id`,
          [],
        )
      ).rows;
    });
    expect(read.map((r) => r.txt)).toEqual([...HOSTILE, 'nulls']);
    expect(read.slice(0, HOSTILE.length).map((r) => Number(r.n))).toEqual(HOSTILE.map((_, i) => 0 - i * 1e12));
    expect(read.slice(0, HOSTILE.length).map((r) => r.f)).toEqual(HOSTILE.map((_, i) => i / 3));
    expect(read.at(-1)).toEqual({ txt: 'nulls', n: null, f: null, b: null });
    expect((await pool.query(`SELECT count(*)::int AS n FROM "${schema}".t`)).rows[0].n).toBe(HOSTILE.length + 1);
  });

  it('a waiting write that fails fails the transaction whole, at the COMMIT', async () => {
    const before = (await pool.query(`SELECT count(*)::int AS n FROM "${schema}".t`)).rows[0].n as number;
    const err = await inTransaction(pool, 'BEGIN', async (_c, _s, batch) => {
      batch.later(`INSERT INTO "${schema}".t (txt) VALUES ($1)`, ['fresh row']);
      batch.later(`INSERT INTO "${schema}".t (txt) VALUES ($1)`, ["it's"]); // unique: stored by the test above
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: '23505' });
    expect((await pool.query(`SELECT count(*)::int AS n FROM "${schema}".t`)).rows[0].n).toBe(before);
    // The pool's connection is usable again (rolled back, not left in a failed transaction).
    expect((await pool.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });

  it('refuses a NUL and a number PostgreSQL cannot store, before anything is sent', () => {
    expect(() => literal('a\u0000b')).toThrow(/cannot contain a NUL character/);
    expect(() => literal(Number.NaN)).toThrow(/not a number/);
    expect(literal("o'k")).toBe("'o''k'");
    expect(literal('a\\b')).toBe(" E'a\\\\b'");
  });
});
