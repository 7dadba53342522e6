/**
 * The Overview charts' history (src/observability/history*.ts): the same executions and
 * deliveries, written to a real SQLite file and to a real PostgreSQL schema by two "nodes", come
 * back as the same buckets from both adapters — counts, errors, tokens, nearest-rank p50/p95,
 * deliveries done and dead — with empty buckets in between and rows outside the range left out.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { EXECUTIONS_MIGRATIONS, PgExecutionStore, SqliteExecutionStore } from '../../src/execution/index.js';
import type { ExecutionEntry } from '../../src/execution/records/index.js';
import { MESSAGE_MIGRATIONS } from '../../src/messaging/postgres/pg-message-tables.js';
import { MESSAGING_MIGRATIONS } from '../../src/messaging/sqlite/index.js';
import {
  HISTORY_MIGRATIONS,
  IncrementalHistory,
  PgStatsHistory,
  SqliteStatsHistory,
  windowOf,
  type History,
} from '../../src/observability/index.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { migrateSchema } from '../../src/storage/pg/index.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

const NOW = Date.parse('2026-03-01T12:00:10Z');
const w = windowOf('15m', NOW);
const at = (bucket: number, ms = 0) => w.from + bucket * w.bucket + ms;

function entry(i: number, ts: number, duration: number, status: 'ok' | 'error' = 'ok'): ExecutionEntry {
  return {
    id: `exec_hist_${i}`,
    ts,
    ended: ts + duration,
    agent: 'a',
    version: '1',
    principal: null,
    conversation_id: null,
    message_id: null,
    status,
    error_code: status === 'error' ? 'internal' : null,
    duration_ms: duration,
    input_tokens: 10,
    output_tokens: 3,
    trace_id: null,
    detail: '{}',
  };
}

/** Bucket 2: ten executions of 10..100 ms, one failed; bucket 5: one; one before the range. */
const ENTRIES: ExecutionEntry[] = [
  ...Array.from({ length: 10 }, (_, i) => entry(i, at(2, i), (i + 1) * 10, i === 9 ? 'error' : 'ok')),
  entry(10, at(5, 100), 7),
  entry(11, w.from - 1, 5),
];
/** Deliveries finished: two done and one dead in bucket 3, one pending (not counted), one done before the range. */
const DELIVERIES: [string, number][] = [
  ['done', at(3, 1)],
  ['done', at(3, 2)],
  ['dead', at(3, 3)],
  ['pending', at(3, 4)],
  ['done', w.from - 10],
];

function expectBuckets(h: History): void {
  expect(h.buckets).toHaveLength(30);
  expect(h.bucket_ms).toBe(30_000);
  expect(h.sources).toEqual({ executions: true, messages: true });
  expect(h.buckets[2]).toMatchObject({
    t: at(2),
    executions: 10,
    execution_errors: 1,
    input_tokens: 100,
    output_tokens: 30,
    latency_p50_ms: 50,
    latency_p95_ms: 100,
  });
  expect(h.buckets[5]).toMatchObject({ executions: 1, latency_p50_ms: 7, latency_p95_ms: 7 });
  expect(h.buckets[3]).toMatchObject({
    executions: 0,
    latency_p50_ms: null,
    messages_delivered: 2,
    messages_failed: 1,
  });
  const total = h.buckets.reduce((n, b) => n + b.executions, 0);
  expect(total).toBe(11);
  expect(h.buckets.reduce((n, b) => n + b.messages_delivered, 0)).toBe(2);
}

afterAll(() => removeTempDirs());

describe('stats history', () => {
  it('SQLite: buckets from the node’s execution records and deliveries', () => {
    const db = openDatabase(makeTempDir('caxton-history-'));
    migrate(db, MESSAGING_MIGRATIONS);
    migrate(db, EXECUTIONS_MIGRATIONS);
    migrate(db, HISTORY_MIGRATIONS);
    const store = new SqliteExecutionStore({ db, retentionMs: 1e12, maxRows: 1000 });
    for (const e of ENTRIES) store.record(e);
    const ins = db.prepare(`INSERT INTO deliveries (message_id, receiver, state, updated_at) VALUES ('m', 'r', ?, ?)`);
    for (const [state, t] of DELIVERIES) ins.run(state, new Date(t).toISOString());
    // The records are still queued: the history flushes them first.
    return new SqliteStatsHistory(db, () => store.flush()).history('15m', NOW).then((h) => {
      expectBuckets(h);
      // The finished-deliveries index is the one the query uses.
      const plan = db
        .prepare(
          `EXPLAIN QUERY PLAN SELECT count(*) FROM deliveries WHERE state <> 'pending' AND updated_at >= ? AND updated_at < ?`,
        )
        .all('a', 'b') as { detail: string }[];
      expect(plan.map((p) => p.detail).join(' ')).toContain('deliveries_finished');
      store.close();
      db.close();
    });
  });

  it('incremental: a later poll reads only the newest buckets and keeps the older ones', async () => {
    const db = openDatabase(makeTempDir('caxton-history-'));
    migrate(db, MESSAGING_MIGRATIONS);
    migrate(db, EXECUTIONS_MIGRATIONS);
    const store = new SqliteExecutionStore({ db, retentionMs: 1e12, maxRows: 1000 });
    for (const e of ENTRIES) store.record(e);
    const inc = new IncrementalHistory(new SqliteStatsHistory(db, () => store.flush()));
    const first = await inc.history('15m', NOW);
    expect(first.buckets.reduce((n, b) => n + b.executions, 0)).toBe(11);
    // A bucket later: one new execution in the newest bucket, one written late into an old one.
    store.record(entry(20, at(30, 5), 9));
    store.record(entry(21, at(10, 5), 9));
    const next = await inc.history('15m', NOW + 30_000);
    expect(next.buckets).toHaveLength(30);
    expect(next.from).toBe(w.from + 30_000);
    // Bucket 2 of the first poll is bucket 1 now, kept as it was.
    expect(next.buckets[1]).toEqual(first.buckets[2]);
    expect(next.buckets[29]).toMatchObject({ executions: 1, latency_p50_ms: 9 });
    // The late row in an old bucket is not read again (documented in IncrementalHistory).
    expect(next.buckets.reduce((n, b) => n + b.executions, 0)).toBe(12);
    const full = await new SqliteStatsHistory(db).history('15m', NOW + 30_000);
    expect(full.buckets.reduce((n, b) => n + b.executions, 0)).toBe(13);
    store.close();
    db.close();
  });

  it('SQLite without execution records: the messages still, executions marked absent', async () => {
    const db = openDatabase(makeTempDir('caxton-history-'));
    migrate(db, MESSAGING_MIGRATIONS);
    const h = await new SqliteStatsHistory(db).history('1h', NOW);
    expect(h.sources).toEqual({ executions: false, messages: true });
    expect(h.buckets).toHaveLength(60);
    db.close();
  });

  describe.skipIf(!hasSystem('postgresql'))('PostgreSQL', () => {
    const schema = `caxton_history_${process.pid}_${Date.now()}`;
    const pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 2 });
    afterAll(async () => {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    });

    it('the same buckets, over the rows every node wrote', async () => {
      await migrateSchema(pool, schema, MESSAGE_MIGRATIONS);
      await PgExecutionStore.migrate(pool, schema);
      await PgStatsHistory.migrate(pool, schema);
      const nodes = ['node-a', 'node-b'].map(
        (node) => new PgExecutionStore({ pool, schema, node, retentionMs: 1e12, maxRows: 1000 }),
      );
      ENTRIES.forEach((e, i) => nodes[i % 2]!.record(e));
      for (const n of nodes) await n.flush();
      for (const [state, t] of DELIVERIES)
        await pool.query(
          `INSERT INTO "${schema}".deliveries (message_id, receiver, state, updated_at) VALUES ('m', 'r', $1, $2)`,
          [state, new Date(t).toISOString()],
        );
      expectBuckets(await new PgStatsHistory(pool, schema).history('15m', NOW));
      for (const n of nodes) await n.close();
    });
  });
});
