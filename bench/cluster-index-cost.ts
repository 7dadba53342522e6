/**
 * What a cluster's indexes cost PostgreSQL per one-way message: the same write cycle on the same
 * tables under different index sets, alternated in one session, with the backend's CPU read from
 * /proc and the WAL from pg_current_wal_lsn() around each repetition. No node, no NATS: the suite
 * (bench/cluster.ts) cannot resolve a few µs of PostgreSQL's CPU at this machine's load, one
 * session's CPU on a fixed statement stream can.
 *
 *   node --import tsx bench/cluster-index-cost.ts   (BENCH_INDEX_COST_MESSAGES per repetition, default 12,800; BENCH_INDEX_COST_ROUNDS, default 4)
 *
 * The cycle, per group of 64 messages (a step group's size), as a node's groups send it
 * (src/messaging/cluster/pg-message-store.ts): the accept's INSERTs of messages (each keeping its
 * one-way conversation, ADR 0080), deliveries (publish-marked) and `message.sent` events; then the
 * acknowledgement's done-marking (one UPDATE from VALUES) and the conversations inserted completed.
 * The index sets:
 *  - before: the migrations before ADR 0099 (deliveries_unpublished, conversations_state, agent_events_category);
 *  - after: every migration (ADR 0099);
 *  - HOT ceiling: `after` without the two indexes that name a delivery's state (deliveries_open,
 *    deliveries_finished), with fillfactor 50 (room on its page for every row's new version): what the done-marking would cost if it could be HOT
 *    (an upper bound of that saving: the unfinished rows would need indexing somewhere else).
 */
import pg from 'pg';
import { MESSAGE_MIGRATIONS } from '../src/messaging/cluster/pg-message-tables.js';
import { PgEventStore, PgStatsHistory } from '../src/observability/index.js';
import { migrateSchema } from '../src/storage/pg/index.js';
import { startOwnPostgres } from './lib/own-postgres.js';
import { processCpuSeconds } from './lib/proc-cpu.js';
import { q, row } from './lib/sql-literals.js';

const MESSAGES = Number(process.env.BENCH_INDEX_COST_MESSAGES ?? 12_800);
const ROUNDS = Number(process.env.BENCH_INDEX_COST_ROUNDS ?? 4);
const GROUP = 64;

const VARIANTS = ['before', 'after', 'HOT ceiling'] as const;
type Variant = (typeof VARIANTS)[number];
const SCHEMA: Record<Variant, string> = { before: 'ix_before', after: 'ix_after', 'HOT ceiling': 'ix_hot' };

let serial = 0;
function message(): { id: string; conv: string; delivery: number; body: string; now: string } {
  const n = ++serial;
  const id = `msg-${n.toString(36).padStart(8, '0')}-0190a2b3c4d5`;
  const conv = `conv-${n.toString(36).padStart(8, '0')}-0190a2b3c4d5`;
  const now = new Date().toISOString();
  const body = JSON.stringify({
    id,
    conversation_id: conv,
    performative: 'inform',
    sender: 'bench-client',
    receivers: ['bench-sink'],
    content: `payload ${n} `.padEnd(200, 'x'),
    created_at: now,
  });
  return { id, conv, delivery: n, body, now };
}
type Msg = ReturnType<typeof message>;

const kept = (m: Msg): string =>
  JSON.stringify({
    id: m.conv,
    protocol: null,
    state: 'initiated',
    initiator: 'bench-client',
    participants: '["bench-client","bench-sink"]',
    capability: null,
    turns: 1,
    max_turns: 50,
    created_at: m.now,
    updated_at: m.now,
    expires_at: m.now,
    reason: null,
  });

function acceptSql(s: string, ms: Msg[]): string {
  const event = (m: Msg) =>
    JSON.stringify({
      message_id: m.id,
      conversation_id: m.conv,
      performative: 'inform',
      sender: 'bench-client',
      receivers: ['bench-sink'],
    });
  return [
    'BEGIN',
    `INSERT INTO ${s}.messages (id, conversation_id, performative, sender, created_at, body, routed_to, conversation) VALUES ${ms
      .map((m) => row([m.id, m.conv, 'inform', 'bench-client', m.now, m.body, '["bench-sink"]', kept(m)]))
      .join(', ')}`,
    `INSERT INTO ${s}.deliveries (id, message_id, receiver, state, updated_at, unpublished_since, kept_until) VALUES ${ms
      .map((m) => row([m.delivery, m.id, 'bench-sink', 'pending', m.now, Date.now(), Date.now() + 3_600_000]))
      .join(', ')}`,
    `INSERT INTO ${s}.agent_events (ts, type, category, agent, trace_id, span_id, data, node) VALUES ${ms
      .map((m) => row([Date.now(), 'message.sent', 'communication', 'bench-client', null, null, event(m), 'node-a']))
      .join(', ')}`,
    'COMMIT',
  ].join(';\n');
}

function ackSql(s: string, ms: Msg[]): string {
  const now = new Date().toISOString();
  return [
    'BEGIN',
    `UPDATE ${s}.deliveries AS d SET state = 'done', attempts = v.attempts, updated_at = v.at, unpublished_since = NULL FROM (VALUES ${ms
      .map((m) => `(${m.delivery}::bigint, 1::integer, ${q(now)}::text)`)
      .join(', ')}) AS v(id, attempts, at) WHERE d.id = v.id`,
    `INSERT INTO ${s}.conversations (id, protocol, state, initiator, participants, capability, turns, max_turns, created_at, updated_at, expires_at, reason) VALUES ${ms
      .map((m) =>
        row([
          m.conv,
          null,
          'completed',
          'bench-client',
          '["bench-client","bench-sink"]',
          null,
          1,
          50,
          m.now,
          now,
          null,
          null,
        ]),
      )
      .join(', ')}`,
    'COMMIT',
  ].join(';\n');
}

async function migrate(pool: pg.Pool, v: Variant): Promise<void> {
  const schema = SCHEMA[v];
  const before = v === 'before';
  await migrateSchema(
    pool,
    schema,
    MESSAGE_MIGRATIONS.filter((m) => !before || m.id < 'cluster-messaging-008'),
  );
  await PgStatsHistory.migrate(pool, schema);
  await PgEventStore.migrate(pool, schema);
  if (before) {
    // The events' category index back (their migrations are applied whole), as a schema migrated before ADR 0099 has it.
    await pool.query(`CREATE INDEX agent_events_category ON ${schema}.agent_events (category, id)`);
  }
  if (v === 'HOT ceiling') {
    await pool.query(`DROP INDEX ${schema}.deliveries_open; DROP INDEX ${schema}.deliveries_finished`);
    await pool.query(`ALTER TABLE ${schema}.deliveries SET (fillfactor = 50)`);
  }
}

async function main(): Promise<void> {
  const own = await startOwnPostgres();
  const pool = new pg.Pool({ connectionString: own.url, max: 1 });
  const c = new pg.Client({ connectionString: own.url });
  try {
    for (const v of VARIANTS) await migrate(pool, v);
    await c.connect();
    await c.query('SET jit = off');
    const backend = Number((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
    const results = new Map<Variant, { cpu: number[]; wal: number[]; hot: number }>();
    const run = async (v: Variant, count: number, record: boolean): Promise<void> => {
      const s = SCHEMA[v];
      await c.query('CHECKPOINT');
      const wal0 = (await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
      const cpu0 = processCpuSeconds(backend);
      for (let done = 0; done < count; done += GROUP) {
        const ms = Array.from({ length: GROUP }, message);
        await c.query(acceptSql(s, ms));
        await c.query(ackSql(s, ms));
      }
      const cpu = processCpuSeconds(backend) - cpu0;
      const wal = Number(
        (await c.query<{ b: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS b', [wal0])).rows[0]!.b,
      );
      if (!record) return;
      const r = results.get(v) ?? { cpu: [], wal: [], hot: 0 };
      r.cpu.push((1e6 * cpu) / count);
      r.wal.push(wal / count);
      results.set(v, r);
    };
    // A warm-up repetition of each, then rounds in a rotated order (A B C, B C A, …).
    for (const v of VARIANTS) await run(v, GROUP * 10, false);
    for (let round = 0; round < ROUNDS; round++) {
      const order = [...VARIANTS];
      for (let i = 0; i < round; i++) order.push(order.shift()!);
      if (round % 2 === 1) order.reverse();
      for (const v of order) await run(v, MESSAGES, true);
    }
    await c.query('SELECT pg_stat_force_next_flush()');
    for (const v of VARIANTS) {
      const t = (
        await c.query<{ upd: string; hot: string }>(
          `SELECT n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'deliveries'`,
          [SCHEMA[v]],
        )
      ).rows[0]!;
      results.get(v)!.hot = Number(t.hot) / Math.max(1, Number(t.upd));
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const span = (xs: number[], d: number) => `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}`;
    console.log(
      `PostgreSQL per one-way message (one session, groups of ${GROUP}, JIT off), ${ROUNDS} rounds of ${MESSAGES.toLocaleString('en-US')} messages each index set, load ${(await import('node:os')).loadavg()[0]!.toFixed(2)}; settings ${JSON.stringify(own.settings)}`,
    );
    console.log(
      '| Index set | session CPU µs per message, median (range) | WAL bytes per message, median (range) | done-markings HOT |',
    );
    console.log('| --- | --- | --- | --- |');
    for (const v of VARIANTS) {
      const r = results.get(v)!;
      console.log(
        `| ${v} | ${med(r.cpu).toFixed(1)} (${span(r.cpu, 1)}) | ${Math.round(med(r.wal))} (${span(r.wal, 0)}) | ${(100 * r.hot).toFixed(0)} % |`,
      );
    }
    // Each round's ratio to `before` in that round: the machine's load moves a round's variants together.
    const ratio = (v: Variant) => {
      const a = results.get('before')!.cpu;
      const rs = results.get(v)!.cpu.map((x, i) => x / a[i]!);
      return `${med(rs).toFixed(3)} (${span(rs, 3)})`;
    };
    for (const v of VARIANTS) {
      if (v !== 'before') console.log(`- ${v} ÷ before, session CPU per message by round: ${ratio(v)}`);
    }
  } finally {
    await c.end().catch(() => {});
    await pool.end().catch(() => {});
    await own.stop();
  }
}

await main();
