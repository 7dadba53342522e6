/**
 * The optimistic done-marking of a group of kept deliveries (optimisticDoneSql) on a deliveries
 * table PostgreSQL has not analyzed yet, with a backlog of pending rows: what a new deployment's
 * first burst meets. It marks exactly the rows still as their take read them, and its plan finds
 * them by primary key or the open rows' index with no join: joined to a VALUES list, the planner
 * without statistics scanned the list once per pending row, and the group's transaction, which
 * holds its conversations' locks, took hundreds of milliseconds.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { optimisticDoneSql } from '../../../src/messaging/postgres/pg-message-store.js';
import { MESSAGE_MIGRATIONS } from '../../../src/messaging/postgres/pg-message-tables.js';
import { migrateSchema } from '../../../src/storage/pg/index.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';

const run = hasSystem('postgresql');
const schema = `caxton_pgdone_${process.pid}_${Date.now()}`;
const s = `"${schema}"`;
const PENDING = 3_000;

let pool: pg.Pool;

beforeAll(async () => {
  if (!run) return;
  pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 2 });
  await migrateSchema(pool, schema, MESSAGE_MIGRATIONS);
  // A backlog of kept pending deliveries after as many done ones; no ANALYZE (autovacuum is not
  // quick enough to have run before the test's statement either).
  await pool.query(
    `INSERT INTO ${s}.deliveries (message_id, receiver, state, updated_at, kept_until)
     SELECT 'msg_' || g, 'sink', CASE WHEN g > ${PENDING} THEN 'pending' ELSE 'done' END, 'read-' || g, 1
     FROM generate_series(1, ${2 * PENDING}) g`,
  );
});

afterAll(async () => {
  if (!run) return;
  await pool.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  await pool.end();
});

describe.runIf(run)('the optimistic done-marking of a group (PostgreSQL, table not analyzed)', () => {
  const ids = Array.from({ length: 100 }, (_, i) => PENDING + 1 + i * 7);
  const done = ids.map((id) => ({ id, attempts: 1, at: `done-${id}`, readAt: `read-${id}` }));
  // One row changed since its take read it: not marked, its step runs again.
  done[3] = { ...done[3]!, readAt: 'read-before' };

  it('finds its rows with no join against the list, whatever the statistics', async () => {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      const plan = (await c.query(`EXPLAIN ${optimisticDoneSql(s, done)}`)).rows
        .map((r: Record<string, string>) => r['QUERY PLAN'])
        .join('\n');
      expect(plan).not.toMatch(/Values Scan|Nested Loop|Hash Join|Seq Scan/);
      await c.query('ROLLBACK');
    } finally {
      c.release();
    }
  });

  it('marks exactly the rows still as their take read them, with their values', async () => {
    const marked = await pool.query<{ id: string }>(optimisticDoneSql(s, done));
    expect(marked.rows.map((r) => Number(r.id)).sort((a, b) => a - b)).toEqual(ids.filter((_, i) => i !== 3));
    const rows = await pool.query<{ id: string; state: string; attempts: number; updated_at: string }>(
      `SELECT id, state, attempts, updated_at FROM ${s}.deliveries WHERE id = ANY($1::bigint[]) ORDER BY id`,
      [ids],
    );
    rows.rows.forEach((r, i) => {
      if (i === 3) expect(r).toMatchObject({ state: 'pending', attempts: 0, updated_at: `read-${ids[3]}` });
      else expect(r).toMatchObject({ state: 'done', attempts: 1, updated_at: `done-${ids[i]}` });
    });
    // Marked again (a step that ran twice): nothing is, since none is pending as read any more.
    expect((await pool.query(optimisticDoneSql(s, done))).rowCount).toBe(0);
  });
});
