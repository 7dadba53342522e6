/**
 * The indexes a delivered message's rows enter on a cluster, and the plans of the sweeps and reads
 * that rely on them. Every index is one more B-tree entry per row written (and per non-HOT update),
 * so the set is kept to what some query reads: the test lists each table's indexes, then runs each
 * sweep and read as the code sends it (captured from the pool), and explains it with sequential
 * scans off: a query that no longer matches its index (a predicate it does not imply, a key it
 * does not name) falls back to a full scan and fails here.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgMessageReads, PgMessageStore } from '../../../src/messaging/postgres/index.js';
import { MESSAGE_MIGRATIONS } from '../../../src/messaging/postgres/pg-message-tables.js';
import { migrateSchema } from '../../../src/storage/pg/index.js';
import { PgEventStore, PgStatsHistory } from '../../../src/observability/index.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';

const run = hasSystem('postgresql');
const schema = `caxton_pgplans_${process.pid}_${Date.now()}`;
const s = `"${schema}"`;
const ROWS = 4000;
const NOW = Date.now();

let pool: pg.Pool;
let store: PgMessageStore;
let events: PgEventStore;
let history: PgStatsHistory;
let reads: PgMessageReads;
const sent: { text: string; values: unknown[] }[] = [];

beforeAll(async () => {
  if (!run) return;
  pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 4 });
  pool.on('error', () => {});
  pool.on('connect', (c) => {
    const query = c.query.bind(c) as (...a: unknown[]) => unknown;
    (c as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => {
      if (typeof a[0] === 'string') sent.push({ text: a[0], values: Array.isArray(a[1]) ? (a[1] as unknown[]) : [] });
      return query(...a);
    };
  });
  store = await PgMessageStore.open({ pool, schema });
  await PgStatsHistory.migrate(pool, schema);
  await PgEventStore.migrate(pool, schema);
  events = new PgEventStore({ pool, schema, node: 'n1', retentionMs: 3_600_000, maxRows: 1_000_000 });
  history = new PgStatsHistory(pool, schema);
  reads = new PgMessageReads({ store });
  // Mostly finished rows, as a cluster's tables are: a few pending (marked and not, kept), a few dead.
  await pool.query(
    `INSERT INTO ${s}.messages (id, conversation_id, performative, sender, created_at, body, routed_to, conversation)
       SELECT 'm' || i, 'c' || i, 'inform', 'client', to_char(to_timestamp(($1::bigint - (${ROWS} - i) * 1000) / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
              '{"id":"m' || i || '","performative":"inform","sender":"client","receivers":["worker"],"content":"x","conversation_id":"c' || i || '"}', '["worker"]',
              CASE WHEN i % 40 = 1 THEN '{"id":"c' || i || '","protocol":null,"state":"initiated","initiator":"client","participants":"[\\"client\\",\\"worker\\"]","capability":null,"turns":1,"max_turns":100,"created_at":"2025-01-01T00:00:00.000Z","updated_at":"2025-01-01T00:00:00.000Z","expires_at":"2999-01-01T00:00:00.000Z","reason":null}' END
       FROM generate_series(1, ${ROWS}) AS i`,
    [NOW],
  );
  await pool.query(
    `INSERT INTO ${s}.deliveries (message_id, receiver, state, attempts, updated_at, unpublished_since, kept_until)
       SELECT 'm' || i, 'worker', CASE WHEN i % 20 = 1 THEN 'pending' WHEN i % 97 = 0 THEN 'dead' ELSE 'done' END, 1,
              to_char(to_timestamp(($1::bigint - (${ROWS} - i) * 1000) / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
              CASE WHEN i % 60 = 1 THEN $1::bigint - 60000 END, CASE WHEN i % 40 = 1 THEN 32503680000000 END
       FROM generate_series(1, ${ROWS}) AS i`,
    [NOW],
  );
  await pool.query(
    `INSERT INTO ${s}.conversations (id, state, initiator, participants, turns, max_turns, created_at, updated_at, expires_at)
       SELECT 'c' || i, CASE WHEN i % 40 = 1 THEN 'in_progress' ELSE 'completed' END, 'client', '["client","worker"]', 2, 100,
              to_char(to_timestamp(($1::bigint - (${ROWS} - i) * 1000) / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
              to_char(to_timestamp(($1::bigint - (${ROWS} - i) * 1000) / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
              CASE WHEN i % 40 = 1 THEN '2999-01-01T00:00:00.000Z' END
       FROM generate_series(2, ${ROWS}) AS i WHERE i % 40 <> 1 OR i % 80 = 1`,
    [NOW],
  );
  // Half a second apart, all within the event store's hour of retention: its sweeps (one as it
  // opens, which may reach the table after these rows, then a timer) must not take rows counted
  // below. The client's events and the deployer's are written in batches of their own.
  const at = (i: number) => NOW - (ROWS - i) * 500;
  for (let i = 1; i <= ROWS; i++)
    if (i % 100 !== 0) events.record({ type: 'message.sent', agent: 'client', time: at(i), data: {} as never });
  await events.flush();
  for (let i = 100; i <= ROWS; i += 100)
    events.record({ type: 'agent.deployed', agent: 'deployer', time: at(i), data: {} as never });
  await events.flush();
  await pool.query(`ANALYZE ${s}.messages, ${s}.deliveries, ${s}.conversations, ${s}.agent_event_chunks`);
});

afterAll(async () => {
  if (!run) return;
  await events.close();
  await pool.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  await pool.end();
});

/** The statements `act` sent whose text matches `pick`. */
async function statements(act: () => Promise<unknown>, pick: RegExp): Promise<{ text: string; values: unknown[] }[]> {
  sent.length = 0;
  await act();
  const found = sent.filter((q) => pick.test(q.text));
  expect(found.length, `no statement matching ${pick}`).toBeGreaterThan(0);
  return found;
}

/** The plan of one statement with sequential scans off (nothing executed: EXPLAIN without ANALYZE, rolled back). */
async function plan(q: { text: string; values: unknown[] }): Promise<string> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query('SET LOCAL enable_seqscan = off');
    // A group's statement may carry the transaction's opening (BEGIN, SET LOCAL) in the same text.
    const text = q.text.replace(/^(\s*(BEGIN|SET LOCAL [^;]*);)+\s*/, '');
    const rows = (await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${text}`, q.values)).rows;
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  } finally {
    await c.query('ROLLBACK');
    c.release();
  }
}

async function indexes(table: string): Promise<string[]> {
  return (
    await pool.query<{ indexname: string }>(
      `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 ORDER BY indexname`,
      [schema, table],
    )
  ).rows.map((r) => r.indexname);
}

describe.skipIf(!run)('a cluster table’s indexes and the plans that use them', () => {
  it('keeps one index of the unfinished deliveries for the open rows and their publish marks, none on a conversation’s state or an event’s category', async () => {
    expect(await indexes('deliveries')).toEqual([
      'deliveries_finished',
      'deliveries_kept_done',
      'deliveries_message',
      'deliveries_open',
      'deliveries_pkey',
      'deliveries_receiver_folded',
    ]);
    const def = (
      await pool.query<{ d: string }>(`SELECT indexdef AS d FROM pg_indexes WHERE schemaname = $1 AND indexname = $2`, [
        schema,
        'deliveries_open',
      ])
    ).rows[0]!.d;
    expect(def).toContain('(state, unpublished_since) WHERE (state <> ');
    expect(await indexes('conversations')).toEqual([
      'conversations_created',
      'conversations_expiry',
      'conversations_participants',
      'conversations_pkey',
    ]);
    expect(await indexes('agent_event_chunks')).toEqual([
      'agent_event_chunks_agents',
      'agent_event_chunks_last',
      'agent_event_chunks_node',
      'agent_event_chunks_pkey',
      'agent_event_chunks_ts',
      'agent_event_chunks_types',
    ]);
  });

  it('the republish sweep reads the marked pending rows along deliveries_open, in mark order', async () => {
    const [q] = await statements(() => store.unpublished(NOW, 10), /unpublished_since < \$1/);
    const p = await plan(q!);
    expect(p).toMatch(/Index Scan using deliveries_open/);
    expect(p).not.toMatch(/Sort/);
    expect((await store.unpublished(NOW, 1000)).length).toBe(Math.ceil(ROWS / 60));
  });

  it('the reconciliation claim, the deadline sweep and the gauges start from deliveries_open', async () => {
    const [stale] = await statements(() => store.stale(NOW, 10), /WITH claimed/);
    expect(await plan(stale!)).toContain('deliveries_open');
    const [counts] = await statements(() => store.counts(), /AS retrying/);
    const p = await plan(counts!);
    expect(p.match(/deliveries_open/g)?.length).toBe(3);
    expect(p).toContain('conversations_expiry');
    // Nothing is due: the sweep is the one statement that says so, along both indexes.
    const swept = await statements(
      () => store.expired(new Date(NOW).toISOString(), 10, () => Promise.resolve()),
      /expires_at < \$1|kept_until < \$/,
    );
    expect(swept).toHaveLength(1);
    expect(await plan(swept[0]!)).toContain('conversations_expiry');
    expect(await plan(swept[0]!)).toContain('deliveries_open');
    // Something due: each kind's claim too.
    const claims = await statements(
      () => store.expired('3000-01-01T00:00:00.000Z', 1, () => Promise.resolve()),
      /LIMIT 1/,
    );
    expect(claims.length).toBeGreaterThanOrEqual(1);
    expect(await plan(claims[0]!)).toContain('conversations_expiry');
  });

  it('retention finds dead letters along deliveries_open and idle conversations along conversations_created', async () => {
    const cfg = { retention: 1e12, max_conversations: 1e9, dead_letter_retention: 1e12, max_dead_letters: 1e9 };
    const [dead] = await statements(() => store.prune(cfg, 10), /state = 'dead'/);
    expect(await plan(dead!)).toContain('deliveries_open');
    const [idle] = await statements(() => store.prune(cfg, 10), /updated_at < \$1 ORDER BY updated_at/);
    expect(await plan(idle!)).toContain('conversations_created');
    // One-way conversations completed by their delivery (no row): along the index of those deliveries.
    expect(await plan(idle!)).toContain('deliveries_kept_done');
    const [deadCount] = await statements(() => reads.deadCount(), /state = 'dead'/);
    expect(await plan(deadCount!)).toContain('deliveries_open');
  });

  it('the stats history reads finished deliveries along deliveries_finished', async () => {
    const [q] = await statements(
      () => history.rows({ from: NOW - 3_600_000, to: NOW, bucket: 60_000 } as Parameters<PgStatsHistory['rows']>[0]),
      /FROM "[^"]+"\.deliveries/,
    );
    expect(await plan(q!)).toContain('deliveries_finished');
  });

  it('an event filter by category is asked as its types, its batches read along an index, and answers the same rows', async () => {
    const [byCategory] = await statements(() => events.find({ types: ['lifecycle'] }), /agent_event_chunks/);
    expect(byCategory!.text).not.toContain('category IN');
    // Batches are read along an index (their newest-first order, or the types' GIN, as the planner
    // finds cheaper), their events' JSON only for the page of batches read.
    const chunksAlongIndex = (p: string) => {
      expect(p).toMatch(/agent_event_chunks_(last|types|agents)/);
      expect(p).not.toContain('Seq Scan on agent_event_chunks');
    };
    chunksAlongIndex(await plan(byCategory!));
    const lifecycle = await events.find({ types: ['lifecycle'], limit: 1000 });
    expect(lifecycle).toHaveLength(ROWS / 100);
    expect(lifecycle.every((e) => e.category === 'lifecycle' && e.type === 'agent.deployed')).toBe(true);
    const mixed = await events.find({ types: ['communication', 'agent.deployed'], limit: 10_000 });
    expect(mixed).toHaveLength(ROWS);
    expect(mixed.map((e) => e.id)).toEqual([...mixed.map((e) => e.id)].sort((a, b) => b - a));
    expect(await events.find({ types: ['performance'] })).toEqual([]);
    const [byAgent] = await statements(() => events.find({ agent: 'deployer' }), /agent_event_chunks/);
    chunksAlongIndex(await plan(byAgent!));
    const [retention] = await statements(() => events.prune(), /ts_max < \$1/);
    expect(await plan(retention!)).toContain('agent_event_chunks_ts');
  });

  it('a conversation’s messages and a message’s deliveries are read along their indexes', async () => {
    const [messages] = await statements(() => reads.getConversation('c2'), /conversation_id = \$1 ORDER BY seq/);
    expect(await plan(messages!)).toContain('messages_conversation');
    const [deliveries] = await statements(() => reads.getMessage('m2'), /WHERE message_id = \$1/);
    expect(await plan(deliveries!)).toContain('deliveries_message');
  });

  it('a schema from before the merged index upgrades in place: its marked and open rows are found as before', async () => {
    const old = `${schema}_old`;
    try {
      await migrateSchema(
        pool,
        old,
        MESSAGE_MIGRATIONS.filter((m) => m.id < 'cluster-messaging-008'),
      );
      expect(
        (
          await pool.query(`SELECT 1 FROM pg_indexes WHERE schemaname = $1 AND indexname = 'deliveries_unpublished'`, [
            old,
          ])
        ).rowCount,
      ).toBe(1);
      await pool.query(
        `INSERT INTO "${old}".messages (id, conversation_id, performative, sender, created_at, body, routed_to)
           VALUES ('m1', 'c1', 'inform', 'client', '2025-01-01T00:00:00.000Z', '{"id":"m1"}', '["worker"]');
         INSERT INTO "${old}".deliveries (message_id, receiver, state, updated_at, unpublished_since)
           VALUES ('m1', 'worker', 'pending', '2025-01-01T00:00:00.000Z', 5), ('m1', 'other', 'dead', '2025-01-01T00:00:00.000Z', NULL),
                  ('m1', 'third', 'done', '2025-01-01T00:00:00.000Z', NULL)`,
      );
      const upgraded = await PgMessageStore.open({ pool, schema: old });
      expect((await upgraded.unpublished(10, 10)).map((d) => d.receiver)).toEqual(['worker']);
      expect(await upgraded.counts()).toMatchObject({ dead: 1 });
      expect(
        (
          await pool.query<{ indexname: string }>(
            `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'deliveries' ORDER BY 1`,
            [old],
          )
        ).rows.map((r) => r.indexname),
      ).toEqual([
        'deliveries_kept_done',
        'deliveries_message',
        'deliveries_open',
        'deliveries_pkey',
        'deliveries_receiver_folded',
      ]);
    } finally {
      await pool.query(`DROP SCHEMA IF EXISTS "${old}" CASCADE`);
    }
  });
});
