/**
 * The cluster's agent events stored one row per written batch (ADR 0141): a schema of one row per
 * event reads the same after its migration, and every filter, order and cursor of GET
 * /api/v1/events answers over many small batches of two nodes (interleaved ids) what one table of
 * one row per event answered, across the pages of batches a read walks.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_STORE_MIGRATIONS, PgEventStore } from '../../src/observability/pg-agent-events.js';
import { eventOfRow, type AgentEvent, type EventQuery } from '../../src/observability/agent-events.js';
import { migrateSchema } from '../../src/storage/pg/index.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';

const run = hasSystem('postgresql');
let pool: pg.Pool;
let seq = 0;
const schemas: string[] = [];

function newSchema(): string {
  const s = `caxton_pgchunks_${process.pid}_${Date.now()}_${seq++}`;
  schemas.push(s);
  return s;
}

beforeAll(() => {
  if (run) pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 4 });
});

afterAll(async () => {
  if (!run) return;
  for (const s of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await pool.end();
});

const openOptions = (schema: string, node: string) => ({
  pool,
  schema,
  node,
  retentionMs: 1e13,
  maxRows: 1_000_000,
  sweepIntervalMs: 3_600_000,
});
const open = (schema: string, node: string) => new PgEventStore(openOptions(schema, node));

/** What one table of one row per event answers: the filters of `eventWhere`, applied to every event. */
function expected(all: AgentEvent[], q: EventQuery): AgentEvent[] {
  const wanted = (t: string, c: string) =>
    !q.types || q.types.length === 0 || q.types.includes(t as never) || q.types.includes(c as never);
  const glob = (a: string) => !q.agents || q.agents.some((p) => new RegExp(`^${p.replace(/\*/g, '.*')}$`).test(a));
  const hits = all.filter(
    (e) =>
      (q.agent === undefined || e.agent === q.agent) &&
      glob(e.agent) &&
      wanted(e.type, e.category) &&
      (q.since === undefined || Date.parse(e.time) >= q.since) &&
      (q.after === undefined || e.id > q.after) &&
      (q.before === undefined || e.id < q.before),
  );
  hits.sort((a, b) => (q.order === 'asc' ? a.id - b.id : b.id - a.id));
  return hits.slice(0, q.limit ?? 100);
}

describe.skipIf(!run)('agent events stored one row per batch', () => {
  it('answers every filter, order and cursor as one row per event did, across pages of small batches of two nodes', async () => {
    const schema = newSchema();
    await PgEventStore.migrate(pool, schema);
    const a = open(schema, 'a');
    const b = open(schema, 'b');
    const t0 = Date.now() - 1_000_000;
    // 600 batches of 1–3 events, the two nodes' batches interleaved; 'rare' is in a few of them.
    for (let i = 0; i < 600; i++) {
      const store = i % 2 === 0 ? a : b;
      for (let j = 0; j <= i % 3; j++)
        store.record({
          type: j === 2 ? 'agent.deployed' : i % 5 === 0 ? 'execution.finished' : 'message.sent',
          agent: i % 97 === 0 ? 'rare' : `w${i % 7}`,
          time: t0 + i * 1000 + j,
          data: { i, j } as never,
        });
      await (i % 4 < 2 ? store.flush() : Promise.all([a.flush(), b.flush()]));
    }
    await Promise.all([a.flush(), b.flush()]);
    const all = await a.find({ limit: 100_000, order: 'asc' });
    expect(all).toHaveLength(1200);
    expect(new Set(all.map((e) => e.id)).size).toBe(1200);
    expect(await b.size()).toBe(1200);
    const mid = all[600]!.id;
    const queries: EventQuery[] = [
      {},
      { order: 'asc' },
      { agent: 'rare' },
      { agent: 'rare', order: 'asc', limit: 3 },
      { agents: ['w1', 'ra*'], limit: 250 },
      { types: ['lifecycle'] },
      { types: ['performance', 'message.sent'], limit: 500 },
      { after: mid, order: 'asc', limit: 40 },
      { before: mid, limit: 40 },
      { after: all[10]!.id, before: all[20]!.id },
      { since: t0 + 590_000, order: 'asc' },
      { agent: 'nobody' },
      { limit: 0 },
    ];
    for (const q of queries) expect(await b.find(q), JSON.stringify(q)).toEqual(expected(all, q));
    // The read-back of one node's events (the relay's gaps).
    const ofA = all.filter((e) => e.data && (e.data as unknown as { i: number }).i % 2 === 0);
    expect(await a.writtenBy('a', ofA[5]!.id, ofA[50]!.id, 1000)).toEqual(ofA.slice(6, 51));
    await a.close();
    await b.close();
  });

  it('writes a batch larger than an id block as one row per block, every event read back as written, in order', async () => {
    const schema = newSchema();
    await PgEventStore.migrate(pool, schema);
    const store = new PgEventStore({ ...openOptions(schema, 'n'), batchSize: 1200 });
    const t0 = Date.now();
    const odd = 'quote " back\\slash \u00e9 \ud83d\ude00 lone \ud800 tab\t';
    for (let i = 0; i < 1201; i++)
      store.record({
        type: i % 2 === 0 ? 'message.sent' : 'message.received',
        agent: i === 7 ? odd : `w${i % 3}`,
        time: t0 + i,
        ...(i === 9 && { trace_id: 'abc', span_id: 'def' }),
        data: { i, odd } as never,
      });
    await store.flush();
    const all = await store.find({ limit: 10_000, order: 'asc' });
    expect(all.map((e) => (e.data as unknown as { i: number }).i)).toEqual([...Array(1201).keys()]);
    expect(all.every((e, k) => k === 0 || e.id > all[k - 1]!.id)).toBe(true);
    expect(all[7]!.agent).toBe(odd.replace('\ud800', '\ufffd'));
    expect(all[8]!.data).toEqual({ i: 8, odd });
    expect([all[9]!.trace_id, all[9]!.span_id, all[10]!.trace_id]).toEqual(['abc', 'def', null]);
    expect(Date.parse(all[1200]!.time)).toBe(t0 + 1200);
    const rows = await pool.query<{ n: number; first_id: string; last_id: string; types: string[] }>(
      `SELECT n, first_id, last_id, types FROM "${schema}".agent_event_chunks ORDER BY first_id`,
    );
    // The store writes at most 1,200 a batch; each block of ids is one row.
    expect(rows.rows.map((r) => r.n)).toEqual([500, 500, 200, 1]);
    for (const r of rows.rows) expect(Number(r.last_id) - Number(r.first_id) + 1).toBe(r.n);
    expect(rows.rows[0]!.types.sort()).toEqual(['message.received', 'message.sent']);
    await store.close();
  });

  it('deletes past the retention and beyond max_rows inside batches, keeping the rest of each', async () => {
    const schema = newSchema();
    await PgEventStore.migrate(pool, schema);
    const store = new PgEventStore({
      pool,
      schema,
      node: 'n',
      retentionMs: 60_000,
      maxRows: 7,
      sweepIntervalMs: 3_600_000,
    });
    // The store's own retention run at start must be over before the batches below are written.
    expect(await store.prune()).toEqual({ deleted: 0, skipped: false });
    const now = Date.now();
    for (let k = 0; k < 4; k++) {
      for (let j = 0; j < 4; j++)
        store.record({
          type: 'agent.updated',
          agent: `a${k}${j}`,
          time: now - (k === 0 && j < 2 ? 120_000 : 0),
          data: {} as never,
        });
      await store.flush();
    }
    expect(await store.prune()).toEqual({ deleted: 9, skipped: false });
    expect((await store.find({ order: 'asc' })).map((e) => e.agent)).toEqual([
      'a21',
      'a22',
      'a23',
      'a30',
      'a31',
      'a32',
      'a33',
    ]);
    expect(await store.size()).toBe(7);
    await store.close();
  });

  it('a schema of one row per event reads the same after its migration, and new ids follow the old', async () => {
    const schema = newSchema();
    const s = `"${schema}"`;
    await migrateSchema(pool, schema, EVENT_STORE_MIGRATIONS.slice(0, 2));
    await pool.query(
      `INSERT INTO ${s}.agent_events (ts, type, category, agent, trace_id, span_id, data, node)
         SELECT 1700000000000 + i, CASE WHEN i % 10 = 0 THEN 'agent.deployed' ELSE 'message.sent' END,
                CASE WHEN i % 10 = 0 THEN 'lifecycle' ELSE 'communication' END, 'a' || (i % 3),
                CASE WHEN i % 2 = 0 THEN repeat('f', 32) END, NULL, '{"i":' || i || ',"z":"é\\u0041"}', CASE WHEN i % 4 = 0 THEN 'x' ELSE 'y' END
         FROM generate_series(1, 1234) AS i`,
    );
    const before = (
      await pool.query(
        `SELECT id, ts, type, category, agent, trace_id, span_id, data FROM ${s}.agent_events ORDER BY id DESC`,
      )
    ).rows.map(eventOfRow);
    const maxId = before[0]!.id;
    await PgEventStore.migrate(pool, schema);
    const store = open(schema, 'n');
    expect(await store.find({ limit: 10_000 })).toEqual(before);
    for (const q of [
      { agent: 'a1', limit: 50 },
      { types: ['lifecycle'] },
      { after: 600, order: 'asc' },
    ] as EventQuery[])
      expect(await store.find(q)).toEqual(expected([...before].reverse(), q));
    expect(await store.size()).toBe(1234);
    store.record({ type: 'agent.removed', agent: 'a0', data: {} as never });
    const [newest] = await store.find({ limit: 1 });
    expect(newest!.id).toBeGreaterThan(maxId);
    expect(newest!.type).toBe('agent.removed');
    // The view keeps the table's columns for an operator's SQL.
    expect((await pool.query(`SELECT count(*)::int AS n FROM ${s}.agent_events WHERE node = 'x'`)).rows[0].n).toBe(308);
    await store.close();
  });
});
