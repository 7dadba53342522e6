/**
 * What PostgreSQL spends per message on a cluster's write pattern, statement group by statement
 * group, beside the component floor's 100-row INSERT: the smallest experiment that says which of
 * a delivered message's writes cost PostgreSQL what. No node, no NATS: one session sends the
 * statements a node's groups send (src/messaging/cluster/pg-message-store.ts), on the real tables
 * (the cluster's migrations) in the suite's own PostgreSQL (bench/lib/own-postgres.ts, durability
 * settings copied from the machine's server), and the session's CPU is read from /proc and the WAL
 * from pg_current_wal_lsn() around each repetition. The patterns alternate, in equal counts.
 *
 *   node --import tsx bench/cluster-pg-cost.ts        (BENCH_PG_COST_MESSAGES per repetition, default 10,000; BENCH_PG_COST_ROUNDS, default 3)
 *
 * The patterns, per message of an `agree` (one-way) conversation made by the REST API:
 *  - floor: the floor server's write, 100 rows of one table (id, body, created_at) per INSERT;
 *  - accept: a batch's accept group as a node sends it, one round trip: BEGIN, one multi-row
 *    INSERT each of messages, deliveries and conversations (100 each), COMMIT;
 *  - accept, no conversation row: the same without the conversations INSERT;
 *  - acknowledge: a group of 64 acknowledgements as a node sends it, two round trips: BEGIN with
 *    the 64 advisory locks, the conversations and deliveries read FOR UPDATE and the pending count;
 *    then the done-marks (one UPDATE from VALUES), the conversations completed (one UPDATE from
 *    VALUES) and COMMIT;
 *  - the same without one of its parts (the advisory locks, the reads FOR UPDATE, the pending
 *    count, the conversations' UPDATE), to see what each costs;
 *  - acknowledge, done-marks only: BEGIN, `UPDATE … SET state = 'done' WHERE id = ANY($1)`, COMMIT.
 *
 * BENCH_PG_COST_EXPLAIN=1 prints the pending count's plan in both forms, once.
 */
import pg from 'pg';
import { MESSAGE_MIGRATIONS } from '../src/messaging/cluster/pg-message-tables.js';
import { migrateSchema } from '../src/storage/pg/index.js';
import { startOwnPostgres } from './lib/own-postgres.js';
import { processCpuSeconds } from './lib/proc-cpu.js';
import { q, row } from './lib/sql-literals.js';

const MESSAGES = Number(process.env.BENCH_PG_COST_MESSAGES ?? 10_000);
const ROUNDS = Number(process.env.BENCH_PG_COST_ROUNDS ?? 3);
const ACCEPT_GROUP = 100;
/**
 * BENCH_PG_COST_JOIN_COUNT=1: the pending count as a join on the pending deliveries, which the
 * planner may start from deliveries_open; unset: the store's form (each message's deliveries read
 * along deliveries_message, their state counted).
 */
const STORE_COUNT = process.env.BENCH_PG_COST_JOIN_COUNT !== '1';
/** BENCH_PG_COST_JIT=on: the session keeps PostgreSQL's JIT (a node's sessions turn it off). */
const JIT = process.env.BENCH_PG_COST_JIT === 'on';
const ACK_GROUP = 64;
const S = 'costs';

let serial = 0;
/** What a node stores for one message: its row, its delivery row and its conversation. */
function message(): { id: string; conv: string; delivery: number; body: string; now: string } {
  const n = ++serial;
  const id = `msg-${n.toString(36).padStart(8, '0')}-0190a2b3c4d5`;
  const conv = `conv-${n.toString(36).padStart(8, '0')}-0190a2b3c4d5`;
  const now = new Date().toISOString();
  const body = JSON.stringify({
    id,
    conversation_id: conv,
    performative: 'agree',
    sender: 'bench-client',
    receiver: 'sink',
    content: { note: 'x'.repeat(64), n },
    created_at: now,
    traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`,
  });
  return { id, conv, delivery: n, body, now };
}

type Msg = ReturnType<typeof message>;

/** The conversation a one-way message keeps (ADR 0080), as the store writes it. */
const kept = (m: Msg): string =>
  JSON.stringify({
    id: m.conv,
    protocol: null,
    state: 'initiated',
    initiator: 'bench-client',
    participants: '["bench-client","sink"]',
    capability: null,
    turns: 1,
    max_turns: 50,
    created_at: m.now,
    updated_at: m.now,
    expires_at: m.now,
    reason: null,
  });

function acceptSql(ms: Msg[], conversations: boolean, keep = false): string {
  const stmts = [
    'BEGIN',
    `INSERT INTO ${S}.messages (id, conversation_id, performative, sender, created_at, body, routed_to, conversation) VALUES ${ms
      .map((m) => row([m.id, m.conv, 'agree', 'bench-client', m.now, m.body, '["sink"]', keep ? kept(m) : null]))
      .join(', ')}`,
    `INSERT INTO ${S}.deliveries (id, message_id, receiver, state, updated_at, unpublished_since, kept_until) VALUES ${ms
      .map((m) => row([m.delivery, m.id, 'sink', 'pending', m.now, Date.now(), keep ? Date.now() + 3_600_000 : null]))
      .join(', ')}`,
  ];
  if (conversations)
    stmts.push(
      `INSERT INTO ${S}.conversations (id, protocol, state, initiator, participants, capability, turns, max_turns, created_at, updated_at, expires_at, reason) VALUES ${ms
        .map((m) =>
          row([
            m.conv,
            null,
            'in_progress',
            'bench-client',
            '["bench-client","sink"]',
            null,
            1,
            50,
            m.now,
            m.now,
            m.now,
            null,
          ]),
        )
        .join(', ')}`,
    );
  stmts.push('COMMIT');
  return stmts.join(';\n');
}

/** The two round trips of an acknowledgement group (pg-message-store.ts #beginGroup, then the writes with COMMIT). */
function ackSql(
  ms: Msg[],
  without?: 'locks' | 'reads' | 'count' | 'conversations' | 'final' | 'kept',
  storeCount = STORE_COUNT,
): [string, string] {
  const ids = `ARRAY[${ms.map((m) => q(m.conv)).join(', ')}]::text[]`;
  const dids = `ARRAY[${ms.map((m) => m.delivery).join(', ')}]::bigint[]`;
  const begin = [
    'BEGIN',
    without !== 'locks' &&
      `SELECT pg_advisory_xact_lock(k) FROM (SELECT hashtextextended('caxton-conversation:' || id, 0) AS k FROM unnest(${ids}) AS id ORDER BY k) AS l`,
    without !== 'reads' && `SELECT * FROM ${S}.conversations WHERE id = ANY(${ids}) ORDER BY id FOR UPDATE`,
    without !== 'reads' && `SELECT * FROM ${S}.deliveries WHERE id = ANY(${dids}) ORDER BY id FOR UPDATE`,
    without !== 'count' &&
      (storeCount
        ? `SELECT m.conversation_id AS id, sum((SELECT count(*) FILTER (WHERE d.state = 'pending') FROM ${S}.deliveries d WHERE d.message_id = m.id)) AS n${without === 'kept' ? ', max(m.conversation) AS opening' : ''} FROM ${S}.messages m WHERE m.conversation_id = ANY(${ids}) GROUP BY m.conversation_id`
        : `SELECT m.conversation_id AS id, count(*) AS n FROM ${S}.messages m CROSS JOIN LATERAL (SELECT 1 FROM ${S}.deliveries d WHERE d.message_id = m.id AND d.state = 'pending') p WHERE m.conversation_id = ANY(${ids}) GROUP BY m.conversation_id`),
  ]
    .filter((x) => x !== false)
    .join('; ');
  const now = new Date().toISOString();
  const writes = [
    `UPDATE ${S}.deliveries AS d SET state = 'done', attempts = v.attempts, updated_at = v.at FROM (VALUES ${ms
      .map((m) => `(${m.delivery}::bigint, 1::integer, ${q(now)}::text)`)
      .join(', ')}) AS v(id, attempts, at) WHERE d.id = v.id`,
    (without === 'final' || without === 'kept') && finalConversationsSql(ms, now),
    without !== 'conversations' &&
      without !== 'final' &&
      without !== 'kept' &&
      `UPDATE ${S}.conversations AS c SET state = v.state, updated_at = v.updated_at, expires_at = v.expires_at, reason = v.reason FROM (VALUES ${ms
        .map((m) => `(${q(m.conv)}::text, 'completed'::text, ${q(now)}::text, NULL::text, NULL::text)`)
        .join(', ')}) AS v(id, state, updated_at, expires_at, reason) WHERE c.id = v.id`,
    'COMMIT',
  ]
    .filter((x) => x !== false)
    .join(';\n');
  return [begin, writes];
}

/** The conversation rows inserted already completed, as a one-way conversation's would be when its delivery is done. */
function finalConversationsSql(ms: Msg[], now: string): string {
  return `INSERT INTO ${S}.conversations (id, protocol, state, initiator, participants, capability, turns, max_turns, created_at, updated_at, expires_at, reason) VALUES ${ms
    .map((m) =>
      row([
        m.conv,
        null,
        'completed',
        'bench-client',
        '["bench-client","sink"]',
        null,
        1,
        50,
        m.now,
        now,
        null,
        'delivered',
      ]),
    )
    .join(', ')}`;
}

/**
 * A one-way conversation's whole write cycle, accept then acknowledgement, in groups of 64 (each
 * group's accept one round trip, its acknowledgement two): as today (the row inserted at accept,
 * updated to completed at the acknowledgement), with no conversation row at all, and with the row
 * inserted once, already completed, with the done-marks; and that with the conversation kept as
 * JSON in its message row and read back with the pending count (what the store does, ADR 0080).
 */
const CYCLES = {
  'one-way cycle: row inserted, then updated': 'today',
  'one-way cycle: no conversation row': 'none',
  'one-way cycle: row inserted completed with the done-marks': 'final',
  'one-way cycle: kept with its message, row inserted completed with the done-marks (the store)': 'kept',
} as const;

const ACK_WITHOUT = {
  'acknowledge, no advisory locks': 'locks',
  'acknowledge, no reads FOR UPDATE': 'reads',
  'acknowledge, no pending count': 'count',
  'acknowledge, no conversation update': 'conversations',
} as const;
const PATTERNS = [
  'floor',
  'accept',
  'accept, no conversation row',
  'acknowledge',
  ...(Object.keys(ACK_WITHOUT) as (keyof typeof ACK_WITHOUT)[]),
  'acknowledge, done-marks only',
  ...(Object.keys(CYCLES) as (keyof typeof CYCLES)[]),
] as const;
type Pattern = (typeof PATTERNS)[number];

async function main(): Promise<void> {
  const own = await startOwnPostgres();
  const pool = new pg.Pool({ connectionString: own.url, max: 1 });
  const c = new pg.Client({ connectionString: own.url });
  try {
    await migrateSchema(pool, S, MESSAGE_MIGRATIONS);
    await c.connect();
    await c.query(`CREATE TABLE ${S}.floor (id text PRIMARY KEY, body text NOT NULL, created_at text NOT NULL)`);
    if (!JIT) await c.query('SET jit = off');
    const backend = Number((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
    /** Rows accepted and not yet acknowledged, by whether they have a conversation row. */
    const open: { withConv: Msg[]; noConv: Msg[] } = { withConv: [], noConv: [] };
    const results = new Map<Pattern, { cpu: number; wal: number; n: number; trips: number }>();
    const run = async (p: Pattern, count: number): Promise<void> => {
      // Every pattern starts after a checkpoint: each pays the full-page images of its first
      // touch of a page, not whichever ran first.
      await c.query('CHECKPOINT');
      const wal0 = (await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
      const cpu0 = processCpuSeconds(backend);
      let trips = 0;
      for (let done = 0; done < count;) {
        if (p === 'floor') {
          const ms = Array.from({ length: ACCEPT_GROUP }, message);
          await c.query(
            `INSERT INTO ${S}.floor (id, body, created_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])`,
            [ms.map((m) => m.id), ms.map((m) => m.body), ms.map((m) => m.now)],
          );
          trips++;
          done += ms.length;
        } else if (p === 'accept' || p === 'accept, no conversation row') {
          const ms = Array.from({ length: ACCEPT_GROUP }, message);
          await c.query(acceptSql(ms, p === 'accept'));
          trips++;
          (p === 'accept' ? open.withConv : open.noConv).push(...ms);
          done += ms.length;
        } else if (p in CYCLES) {
          const how = CYCLES[p as keyof typeof CYCLES];
          const ms = Array.from({ length: Math.min(ACK_GROUP, count - done) }, message);
          await c.query(acceptSql(ms, how === 'today', how === 'kept'));
          const [begin, writes] = ackSql(ms, how === 'today' ? undefined : how === 'none' ? 'conversations' : how);
          await c.query(begin);
          await c.query(writes);
          trips += 3;
          done += ms.length;
        } else if (p !== 'acknowledge, done-marks only') {
          const ms = open.withConv.splice(0, Math.min(ACK_GROUP, count - done));
          if (ms.length === 0) throw new Error('no accepted messages left to acknowledge');
          const [begin, writes] = ackSql(
            ms,
            p === 'acknowledge' ? undefined : ACK_WITHOUT[p as keyof typeof ACK_WITHOUT],
          );
          await c.query(begin);
          await c.query(writes);
          trips += 2;
          done += ms.length;
        } else {
          const ms = open.noConv.splice(0, Math.min(ACK_GROUP, count - done));
          if (ms.length === 0) throw new Error('no accepted messages left to acknowledge');
          await c.query(
            `BEGIN; UPDATE ${S}.deliveries SET state = 'done', attempts = 1, updated_at = ${q(new Date().toISOString())} WHERE id = ANY(ARRAY[${ms.map((m) => m.delivery).join(', ')}]::bigint[]); COMMIT`,
          );
          trips++;
          done += ms.length;
        }
      }
      const cpu = processCpuSeconds(backend) - cpu0;
      const wal = Number(
        (await c.query<{ b: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS b', [wal0])).rows[0]!.b,
      );
      const r = results.get(p) ?? { cpu: 0, wal: 0, n: 0, trips: 0 };
      results.set(p, { cpu: r.cpu + cpu, wal: r.wal + wal, n: r.n + count, trips: r.trips + trips });
    };
    for (let round = 0; round < ROUNDS; round++) {
      // Accepts first in each round: the acknowledgements take the rows they made. The rest rotate.
      const acks = PATTERNS.filter((p) => p.startsWith('acknowledge') && p !== 'acknowledge, done-marks only');
      // The acknowledgements with a conversation row take the rows of as many accepts.
      for (let i = 0; i < acks.length; i++) await run('accept', MESSAGES);
      await run('accept, no conversation row', MESSAGES);
      if (process.env.BENCH_PG_COST_EXPLAIN === '1' && round === 0) {
        for (const storeCount of [false, true]) {
          const count = ackSql(open.withConv.slice(0, ACK_GROUP), undefined, storeCount)[0].split('; ').at(-1)!;
          const plan = await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${count}`);
          console.log(plan.rows.map((r) => r['QUERY PLAN'].slice(0, 160)).join('\n'));
        }
      }
      const rest: Pattern[] = [
        'floor',
        ...acks,
        'acknowledge, done-marks only',
        ...(Object.keys(CYCLES) as (keyof typeof CYCLES)[]),
      ];
      for (let i = 0; i < round; i++) rest.push(rest.shift()!);
      for (const p of rest) await run(p, MESSAGES);
    }
    console.log(
      `PostgreSQL per message (pending count: ${STORE_COUNT ? "the store's" : 'a join on pending rows'}; JIT ${JIT ? 'on' : 'off'}), ${ROUNDS} rounds of ${MESSAGES.toLocaleString('en-US')} messages each pattern, load ${(await import('node:os')).loadavg()[0]!.toFixed(2)}; settings ${JSON.stringify(own.settings)}`,
    );
    console.log('| Pattern | session CPU µs per message | WAL bytes per message | round trips per message |');
    console.log('| --- | --- | --- | --- |');
    for (const p of PATTERNS) {
      const r = results.get(p)!;
      console.log(
        `| ${p} | ${((1e6 * r.cpu) / r.n).toFixed(1)} | ${Math.round(r.wal / r.n)} | ${(r.trips / r.n).toFixed(3)} |`,
      );
    }
  } finally {
    await c.end().catch(() => {});
    await pool.end().catch(() => {});
    await own.stop();
  }
}

await main();
