/**
 * The event store and the tool audit of a cluster, in PostgreSQL (src/observability/pg-agent-events.ts,
 * pg-tool-audit.ts), on the machine's PostgreSQL:
 *
 *  - one suite of each store's read contract (filters, order, pagination, retention) run against
 *    both implementations: SQLite's on a real file and PostgreSQL's in a schema of its own;
 *  - the columns of both tables agree (PostgreSQL's adds `node`), and each text is stored as written;
 *  - two stores on two pools (two nodes) write one history, each event once; a shared recorder
 *    skips relayed bus events and directory-applied registry changes;
 *  - PostgreSQL unreachable: record() neither blocks nor throws, the buffer is bounded, drops counted;
 *  - live events between nodes (relayEvents on a real nats-server): a node whose link to NATS was
 *    cut reads back what it missed, so its follower hears every event once, in order;
 *  - two `caxton serve` nodes in this process (nats-server + PostgreSQL): GET /api/v1/events and
 *    GET /api/v1/tools/audit on one node answer what the other recorded, and its SSE follower hears it live.
 */
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { PgEventStore, relayEvents } from '../../src/observability/index.js';
import type { AgentEvent, AgentEventInput, EventLog } from '../../src/observability/agent-events.js';
import { createAgentEvents } from '../../src/observability/agent-event-recorder.js';
import { EVENTS_MIGRATIONS, EventStore } from '../../src/observability/sqlite-agent-events.js';
import { markRelayed, whileRelayed } from '../../src/shared/relayed.js';
import { migrate, openDatabase, type Db } from '../../src/storage/index.js';
import { PgToolAudit, ToolAuditStore, type ToolAuditLog, type ToolAuditRecord } from '../../src/audit/index.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { clusterToml } from '../cluster/helpers/serve-nodes.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

const run = hasSystem('postgresql');
let pool: pg.Pool;
let seq = 0;
const schemas: string[] = [];
const cleanups: (() => unknown)[] = [];

function newSchema(): string {
  const s = `caxton_pgevents_${process.pid}_${Date.now()}_${seq++}`;
  schemas.push(s);
  return s;
}

beforeAll(() => {
  if (run) pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 4 });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  if (!run) return;
  for (const s of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await pool.end();
  removeTempDirs();
});

// ------------------------------------------------------------------------------ implementations

interface Events {
  store: EventLog;
  prune(): Promise<unknown>;
}
interface Audit {
  store: ToolAuditLog;
  prune(): Promise<unknown>;
}

const EVENT_STORES: { name: string; open(limits: { retentionMs: number; maxRows: number }): Promise<Events> }[] = [
  {
    name: 'SQLite',
    open: async (limits) => {
      const db = openDatabase(makeTempDir('caxton-pgevents-'));
      migrate(db, EVENTS_MIGRATIONS);
      const store = new EventStore({ db, ...limits, sweepIntervalMs: 3_600_000 });
      cleanups.push(() => (store.close(), db.close()));
      return { store, prune: async () => store.sweep() };
    },
  },
  {
    name: 'PostgreSQL',
    open: async (limits) => {
      const schema = newSchema();
      await PgEventStore.migrate(pool, schema);
      const store = new PgEventStore({ pool, schema, node: 'n1', ...limits, sweepIntervalMs: 3_600_000, flushMs: 5 });
      cleanups.push(() => store.close());
      return { store, prune: () => store.prune() };
    },
  },
];

const AUDIT_STORES: { name: string; open(limits: { retentionMs: number; maxRows: number }): Promise<Audit> }[] = [
  {
    name: 'SQLite',
    open: async (limits) => {
      const db = openDatabase(makeTempDir('caxton-pgaudit-'));
      const store = new ToolAuditStore(db, limits);
      cleanups.push(() => (store.close(), db.close()));
      return { store, prune: () => store.prune() };
    },
  },
  {
    name: 'PostgreSQL',
    open: async (limits) => {
      const schema = newSchema();
      await PgToolAudit.migrate(pool, schema);
      const store = new PgToolAudit({ pool, schema, node: 'n1', ...limits, sweepIntervalMs: 3_600_000, flushMs: 5 });
      cleanups.push(() => store.close());
      return { store, prune: () => store.prune() };
    },
  },
];

const T0 = 1_750_000_000_000;
const life = { old_state: null, new_state: 'deployed', reason: null };
const comm = (id: string) => ({
  message_id: id,
  conversation_id: 'c1',
  performative: 'inform',
  sender: 'alice',
  receivers: ['bob'],
});
const perf = {
  execution_id: 'e1',
  conversation_id: null,
  status: 'ok',
  duration_ms: 12.5,
  input_tokens: 3,
  output_tokens: 4,
  turns: 1,
  tool_calls: 0,
  provider: 'p',
  model: 'm',
};

/** Ten events: alice and bob, all three categories, one second apart from T0. */
function fixture(): AgentEventInput[] {
  const out: AgentEventInput[] = [];
  for (let i = 0; i < 10; i++) {
    const agent = i % 2 === 0 ? 'alice' : 'bob';
    const time = T0 + i * 1000;
    if (i % 3 === 0) out.push({ type: 'agent.deployed', agent, time, data: life, trace_id: `t${i}`, span_id: `s${i}` });
    else if (i % 3 === 1) out.push({ type: 'message.sent', agent, time, data: comm(`m${i}`) });
    else out.push({ type: 'execution.finished', agent, time, data: perf });
  }
  return out;
}

const rec = (over: Partial<ToolAuditRecord>): ToolAuditRecord => ({
  time: 1_700_000_000_000,
  agent: 'a',
  server: 's',
  tool: 's.t',
  args_digest: 'd',
  outcome: 'ok',
  duration_us: 5,
  fuel_used: 10,
  memory_bytes: 65536,
  input_bytes: 2,
  output_bytes: 2,
  ...over,
});

// ------------------------------------------------------------------------------ one suite, both stores

describe.skipIf(!run).each(EVENT_STORES)('event store contract: $name', ({ open }) => {
  it('answers every filter, order and cursor alike', async () => {
    const { store } = await open({ retentionMs: 1e13, maxRows: 1000 });
    const live: AgentEvent[] = [];
    store.on('event', (e) => live.push(e));
    for (const e of fixture()) store.record(e);
    const all = await store.find();
    expect(all.map((e) => e.time)).toEqual(
      fixture()
        .map((e) => new Date(e.time!).toISOString())
        .reverse(),
    );
    expect(all[9]).toMatchObject({
      type: 'agent.deployed',
      category: 'lifecycle',
      agent: 'alice',
      trace_id: 't0',
      span_id: 's0',
      data: life,
    });
    expect(all.find((e) => e.type === 'execution.finished')!.data).toEqual(perf);
    expect(await store.size()).toBe(10);
    // Live followers heard each, with its stored id.
    await waitUntil(() => live.length === 10);
    expect(live.map((e) => e.id).sort((a, b) => a - b)).toEqual(all.map((e) => e.id).sort((a, b) => a - b));
    const ids = (q: Parameters<EventLog['find']>[0]) =>
      store.find(q).then((r) => r.map((e) => all.length - 1 - all.findIndex((x) => x.id === e.id)));
    expect(await ids({ agent: 'bob' })).toEqual([9, 7, 5, 3, 1]);
    expect(await ids({ types: ['message.sent'] })).toEqual([7, 4, 1]);
    expect(await ids({ types: ['performance', 'agent.deployed'] })).toEqual([9, 8, 6, 5, 3, 2, 0]);
    expect(await ids({ types: ['lifecycle'], agent: 'alice' })).toEqual([6, 0]);
    expect(await ids({ since: T0 + 7000 })).toEqual([9, 8, 7]);
    const byIndex = (i: number) => all[all.length - 1 - i]!.id;
    expect(await ids({ after: byIndex(6) })).toEqual([9, 8, 7]);
    expect(await ids({ before: byIndex(2) })).toEqual([1, 0]);
    expect(await ids({ limit: 3 })).toEqual([9, 8, 7]);
    expect(await ids({ order: 'asc', limit: 3 })).toEqual([0, 1, 2]);
    expect(await ids({ order: 'asc', after: byIndex(4), limit: 2, agent: 'alice' })).toEqual([6, 8]);
    // A reader's agent scope: globs, case-sensitive, only * special.
    expect(await ids({ agents: ['b*'] })).toEqual([9, 7, 5, 3, 1]);
    expect(await ids({ agents: ['a*'], limit: 2 })).toEqual([8, 6]);
    expect(await ids({ agents: ['*'] })).toHaveLength(10);
    expect(await ids({ agents: [] })).toEqual([]);
    expect(await ids({ agents: ['Bob', 'al?ce', 'b_b', 'b%'] })).toEqual([]);
  });

  it('deletes events past the retention, then the oldest beyond max_rows', async () => {
    const { store, prune } = await open({ retentionMs: 60_000, maxRows: 5 });
    store.record({ type: 'agent.deployed', agent: 'old', time: Date.now() - 120_000, data: life });
    for (let i = 0; i < 8; i++) store.record({ type: 'agent.updated', agent: `a${i}`, data: life });
    await store.find({ limit: 1 }); // flushed
    await prune();
    expect(await store.size()).toBe(5);
    expect((await store.find({ order: 'asc' })).map((e) => e.agent)).toEqual(['a3', 'a4', 'a5', 'a6', 'a7']);
  });
});

describe.skipIf(!run).each(AUDIT_STORES)('tool audit contract: $name', ({ open }) => {
  it('answers every filter newest first, with before_id pages', async () => {
    const { store } = await open({ retentionMs: 1e13, maxRows: 1000 });
    store.record(
      rec({
        agent: 'alice',
        tool: 'text.echo',
        server: 'text',
        conversation_id: 'c1',
        time: 1000,
        principal: 'key:ops',
      }),
    );
    store.record(
      rec({
        agent: 'bob',
        tool: 'text.stats',
        server: 'text',
        outcome: 'fuel_exhausted',
        error: 'out of fuel',
        time: 2000,
      }),
    );
    store.record(
      rec({
        agent: 'alice',
        tool: 'web.get',
        server: 'web',
        outcome: 'denied',
        time: 3000,
        execution_id: 'e9',
        fuel_used: 2 ** 40,
      }),
    );
    store.record(rec({ agent: 'carol', tool: 'te_t.x', server: 'te_t', time: 4000 }));
    const tools = async (q: Parameters<ToolAuditLog['find']>[0]) => (await store.find(q)).map((r) => r.tool);
    expect(await tools({})).toEqual(['te_t.x', 'web.get', 'text.stats', 'text.echo']);
    expect(await tools({ agent: 'alice' })).toEqual(['web.get', 'text.echo']);
    expect(await tools({ tool: 'text.*' })).toEqual(['text.stats', 'text.echo']);
    expect(await tools({ tool: 'te_t.*' })).toEqual(['te_t.x']); // _ is not a wildcard
    expect(await tools({ tool: 'text.echo' })).toEqual(['text.echo']);
    expect((await store.find({ server: 'web' }))[0]).toMatchObject({
      execution_id: 'e9',
      outcome: 'denied',
      fuel_used: 2 ** 40,
    });
    expect((await store.find({ conversation_id: 'c1' }))[0]).toEqual({
      ...rec({
        agent: 'alice',
        tool: 'text.echo',
        server: 'text',
        conversation_id: 'c1',
        time: 1000,
        principal: 'key:ops',
      }),
      id: expect.any(Number),
    });
    expect(await tools({ principal: 'key:ops' })).toEqual(['text.echo']);
    expect(await tools({ execution_id: 'e9' })).toEqual(['web.get']);
    // A reader's agent scope (globs): narrowed in the query on both stores.
    expect(await tools({ agents: ['a*', 'c?rol'] })).toEqual(['web.get', 'text.echo']);
    expect(await tools({ agents: ['*o*'] })).toEqual(['te_t.x', 'text.stats']);
    expect(await tools({ agents: [] })).toEqual([]);
    expect((await store.find({ outcome: 'failed' })).map((r) => r.outcome)).toEqual(['denied', 'fuel_exhausted']);
    expect((await store.find({ outcome: 'fuel_exhausted' }))[0]).toMatchObject({ error: 'out of fuel' });
    expect((await store.find({ since: 2000, until: 3000 })).map((r) => r.time)).toEqual([2000]);
    expect((await store.find({ since: new Date(2500).toISOString() })).map((r) => r.time)).toEqual([4000, 3000]);
    const page1 = await store.find({ limit: 2 });
    expect((await store.find({ before_id: page1[1]!.id })).map((r) => r.time)).toEqual([2000, 1000]);
  });

  it('deletes records past the retention, then the oldest beyond max_rows', async () => {
    const { store, prune } = await open({ retentionMs: 60_000, maxRows: 3 });
    store.record(rec({ agent: 'old', time: Date.now() - 120_000 }));
    for (let i = 0; i < 5; i++) store.record(rec({ agent: `a${i}`, time: Date.now() }));
    await store.flush();
    await prune();
    expect((await store.find({})).map((r) => r.agent)).toEqual(['a4', 'a3', 'a2']);
  });
});

// ------------------------------------------------------------------------------ PostgreSQL only

describe.skipIf(!run)('the cluster tables in PostgreSQL', () => {
  it("have the SQLite tables' columns, plus node", async () => {
    const schema = newSchema();
    await PgEventStore.migrate(pool, schema);
    await PgToolAudit.migrate(pool, schema);
    await PgEventStore.migrate(pool, schema); // again: nothing to do
    const db: Db = openDatabase(makeTempDir('caxton-pgcols-'));
    migrate(db, EVENTS_MIGRATIONS);
    new ToolAuditStore(db).close();
    for (const table of ['agent_events', 'tool_audit']) {
      const lite = (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
      const pgCols = (
        await pool.query<{ column_name: string }>(
          'SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position',
          [schema, table],
        )
      ).rows.map((r) => r.column_name);
      expect(pgCols).toEqual([...lite, 'node']);
    }
    db.close();
  });

  it('stores each text as written: quotes, backslashes, control characters, line separators, emoji; a lone surrogate as U+FFFD', async () => {
    const schema = newSchema();
    await PgEventStore.migrate(pool, schema);
    const store = new PgEventStore({ pool, schema, node: 'n1', retentionMs: 3_600_000, maxRows: 1000, flushMs: 5 });
    cleanups.push(() => store.close());
    const tricky = `a"b'c\\d\\\\"e\nf\tg\u2028h\u0001i 🦀 é {"x":[1]} \\u0041`;
    const inputs: AgentEventInput[] = [
      {
        type: 'message.sent',
        agent: 'a1',
        trace_id: 'f'.repeat(32),
        span_id: '0'.repeat(16),
        data: { text: tricky } as never,
      },
      {
        type: 'execution.finished',
        agent: `odd${tricky}`,
        data: { n: 1, nested: { list: [tricky, null, true] } } as never,
      },
      { type: 'message.received', agent: 'lone\ud800one', trace_id: 'x\udc00', data: { lone: 'z\ud800z' } as never },
    ];
    for (const e of inputs) store.record({ ...e });
    await store.flush();
    const rows = (
      await pool.query<{ type: string; agent: string; trace_id: string | null; span_id: string | null; data: string }>(
        `SELECT type, agent, trace_id, span_id, data FROM "${schema}".agent_events ORDER BY id`,
      )
    ).rows;
    expect(rows).toEqual([
      {
        type: 'message.sent',
        agent: 'a1',
        trace_id: 'f'.repeat(32),
        span_id: '0'.repeat(16),
        data: JSON.stringify(inputs[0]!.data),
      },
      {
        type: 'execution.finished',
        agent: `odd${tricky}`,
        trace_id: null,
        span_id: null,
        data: JSON.stringify(inputs[1]!.data),
      },
      {
        type: 'message.received',
        agent: 'lone\ufffdone',
        trace_id: 'x\ufffd',
        span_id: null,
        data: JSON.stringify(inputs[2]!.data),
      },
    ]);
  });

  it('two nodes write one history, each event once; relayed bus events and directory changes are not recorded again', async () => {
    const schema = newSchema();
    await PgEventStore.migrate(pool, schema);
    const poolB = new pg.Pool({ connectionString: TEST_PG_URL, max: 2 });
    cleanups.push(() => poolB.end());
    const limits = { retentionMs: 86_400_000, maxRows: 10_000, flushMs: 5, sweepIntervalMs: 3_600_000 };
    const nodes = [
      { name: 'a', pool },
      { name: 'b', pool: poolB },
    ].map(({ name, pool: p }) => {
      const store = new PgEventStore({ pool: p, schema, node: name, ...limits });
      const registry = new EventEmitter();
      const bus = new EventEmitter();
      const events = createAgentEvents({ registry: registry as never, store, shared: true });
      events.observeBus(bus as never);
      cleanups.push(() => events.close());
      return { name, store, registry, bus, events };
    });
    const [A, B] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const message = (id: string) => ({ id, conversation_id: 'c', performative: 'inform', sender: 'alice' });
    const agent = { definition: { name: 'helper' }, origin: { kind: 'api' as const }, revision: 1 };
    // Node A accepts a message and deploys an agent; node B hears the message relayed and applies the directory change.
    const sent = { type: 'message', message: message('m1'), routed_to: ['bob'] };
    A.bus.emit('event', sent);
    B.bus.emit('event', markRelayed(JSON.parse(JSON.stringify(sent)) as object, 'a'));
    A.registry.emit('change', { type: 'deployed', agent });
    const copy = { ...agent };
    whileRelayed(copy, 'a', () => B.registry.emit('change', { type: 'deployed', agent: copy }));
    // Node B runs the delivery; its own lifecycle event (a file agent) is its own.
    B.events.onExecuted({ agent: 'bob', status: 'ok', duration_ms: 5, request: {} });
    B.registry.emit('change', {
      type: 'deployed',
      agent: { definition: { name: 'local' }, origin: { kind: 'file', path: 'local.md' }, revision: 1 },
    });
    // Many at once from both: one history, ids unique.
    for (let i = 0; i < 300; i++)
      (i % 2 ? A : B).bus.emit('event', { type: 'message', message: message(`bulk${i}`), routed_to: ['x'] });
    await Promise.all([A.store.flush(), B.store.flush()]);
    const fromA = await A.store.find({ limit: 1000 });
    const fromB = await B.store.find({ limit: 1000 });
    expect(fromB).toEqual(fromA);
    expect(fromA).toHaveLength(304);
    expect(new Set(fromA.map((e) => e.id)).size).toBe(304);
    expect(
      fromA.filter((e) => e.type === 'message.sent' && (e.data as { message_id: string }).message_id === 'm1'),
    ).toHaveLength(1);
    expect(
      fromA
        .filter((e) => e.type === 'agent.deployed')
        .map((e) => e.agent)
        .sort(),
    ).toEqual(['helper', 'local']);
    const nodeOf = async (agent: string) =>
      (await pool.query(`SELECT node FROM "${schema}".agent_events WHERE agent = $1`, [agent])).rows.map(
        (r) => r.node as string,
      );
    expect(await nodeOf('helper')).toEqual(['a']);
    expect(await nodeOf('bob')).toEqual(['b']);
    expect(await nodeOf('local')).toEqual(['b']);
  });

  it('with PostgreSQL unreachable, record() neither blocks nor throws; the buffer is bounded and drops are counted; reads answer 503', async () => {
    const dead = new pg.Pool({
      connectionString: 'postgres://postgres@127.0.0.1:1/test',
      connectionTimeoutMillis: 500,
    });
    cleanups.push(() => dead.end());
    const drops: number[] = [];
    const store = new PgEventStore({
      pool: dead,
      schema: 'caxton_nowhere',
      node: 'n',
      retentionMs: 1000,
      maxRows: 10,
      flushMs: 1,
      retryMs: 50,
      maxBuffered: 20,
      sweepIntervalMs: 3_600_000,
      onDropped: (n) => drops.push(n),
    });
    const audit = new PgToolAudit({
      pool: dead,
      schema: 'caxton_nowhere',
      node: 'n',
      flushMs: 1,
      retryMs: 50,
      maxBuffered: 5,
      sweepIntervalMs: 3_600_000,
    });
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) store.record({ type: 'agent.updated', agent: `x${i}`, data: life });
    for (let i = 0; i < 20; i++) audit.record(rec({}));
    expect(performance.now() - t0).toBeLessThan(100);
    // The record that found the buffer full started an INSERT of the buffer (in flight, never
    // answered); behind it the buffer fills again and each further record drops the oldest.
    expect(store.dropped).toBe(60);
    expect(drops.reduce((a, b) => a + b, 0)).toBe(60);
    expect(audit.dropped).toBe(10);
    await expect(store.find()).rejects.toMatchObject({
      code: 'not_ready',
      details: { dependency: 'cluster-postgresql' },
    });
    await expect(audit.find()).rejects.toMatchObject({ code: 'not_ready' });
    await store.close();
    await audit.close();
    expect(store.dropped).toBe(100); // what was still waiting at close is counted too
  });
});

// ------------------------------------------------------------------------------ live events between nodes

const runServe = run && hasSystem('nats-server');

/**
 * Two nodes' event stores on a fresh schema and a test nats-server: A records, B's follower
 * listens. `ncB` is B's connection (through `linkB` when given), `ncA` A's.
 */
async function eventNodes(linkB?: (port: number) => Promise<number>) {
  const schema = newSchema();
  await PgEventStore.migrate(pool, schema);
  const nats = await startNatsServer();
  cleanups.push(() => nats.stop());
  const ncA = await connect({ servers: nats.url });
  const ncB = linkB
    ? await connect({
        servers: `127.0.0.1:${await linkB(nats.port)}`,
        reconnectTimeWait: 100,
        maxReconnectAttempts: -1,
      })
    : await connect({ servers: nats.url });
  cleanups.push(
    () => ncA.close(),
    () => ncB.close(),
  );
  const limits = { retentionMs: 86_400_000, maxRows: 10_000, flushMs: 5, sweepIntervalMs: 3_600_000 };
  const A = new PgEventStore({ pool, schema, node: 'a', ...limits });
  const B = new PgEventStore({ pool, schema, node: 'b', ...limits });
  cleanups.push(
    () => A.close(),
    () => B.close(),
  );
  const followed: AgentEvent[] = [];
  B.on('event', (e) => followed.push(e));
  return {
    schema,
    nats,
    ncA,
    ncB,
    A,
    B,
    subject: `events_${schema}`,
    followed,
    /** A records agent-FROM … agent-(TO-1), written once this resolves. */
    record: async (from: number, to: number) => {
      for (let i = from; i < to; i++)
        A.record({
          type: 'agent.deployed',
          agent: `agent-${i}`,
          data: { old_state: null, new_state: 'running', reason: null, revision: i },
        });
      await A.flush();
    },
    agents: () => followed.map((e) => e.agent),
  };
}

const upTo = (n: number) => Array.from({ length: n }, (_, i) => `agent-${i}`);

describe.skipIf(!runServe)('live events between nodes (relayEvents)', () => {
  it("a node cut off from NATS reads back what it missed: its follower hears each of the other node's events once, in order", async () => {
    // B reaches NATS through a link the test cuts; A directly.
    let link: Awaited<ReturnType<typeof startTcpProxy>> | undefined;
    const { ncA, ncB, A, B, subject, followed, record, agents } = await eventNodes(async (port) => {
      link = await startTcpProxy({ host: '127.0.0.1', port });
      cleanups.push(() => link!.close());
      return link.port;
    });
    const gaps: unknown[] = [];
    cleanups.push(relayEvents({ nc: ncA, subject, node: 'a', store: A, tickMs: 100 }));
    cleanups.push(relayEvents({ nc: ncB, subject, node: 'b', store: B, tickMs: 100, onGap: (g) => gaps.push(g) }));
    await Promise.all([ncA.flush(), ncB.flush()]);

    await record(0, 5);
    await waitUntil(() => followed.length >= 5, { timeoutMs: 5000 });

    // B's link goes down; A goes on writing (and publishing): B's subscription hears none of it.
    const lost = (async () => {
      for await (const st of ncB.status()) if (st.type === 'disconnect') return;
    })();
    link!.cut();
    await lost;
    await record(5, 25);
    await ncA.flush();
    expect(agents()).toEqual(upTo(5));

    // The link is back; A writes nothing more: its tick shows B the gap, and B reads it back.
    link!.restore();
    await waitUntil(() => followed.length >= 25, { timeoutMs: 10_000 });
    expect(agents()).toEqual(upTo(25));

    // What A writes next follows, in order, once.
    await record(25, 30);
    await waitUntil(() => followed.length >= 30, { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    expect(agents()).toEqual(upTo(30));
    expect(followed.map((e) => e.id)).toEqual([...followed.map((e) => e.id)].sort((x, y) => x - y));
    // B's own events are not heard back from NATS, and nothing failed.
    expect(gaps).toEqual([]);
  }, 60_000);

  it('a node without followers is sent nothing; one that gains a follower hears the other nodes from then on', async () => {
    const { schema, nats, ncA, A, subject, record } = await eventNodes();
    const ncC = await connect({ servers: nats.url });
    cleanups.push(() => ncC.close());
    const C = new PgEventStore({ pool, schema, node: 'c', retentionMs: 86_400_000, maxRows: 10_000, flushMs: 5 });
    cleanups.push(() => C.close());
    cleanups.push(relayEvents({ nc: ncA, subject, node: 'a', store: A, tickMs: 100 }));
    cleanups.push(relayEvents({ nc: ncC, subject, node: 'c', store: C, tickMs: 100, lingerMs: 300 }));
    await record(0, 5);
    await new Promise((r) => setTimeout(r, 300)); // A's ticks too
    expect(ncC.stats().inMsgs).toBe(0);

    const heard: string[] = [];
    const follower = (e: AgentEvent) => heard.push(e.agent);
    C.on('event', follower);
    await C.listening();
    await record(5, 10);
    await waitUntil(() => heard.length >= 5, { timeoutMs: 5000 });
    expect(heard).toEqual(upTo(10).slice(5));

    C.off('event', follower);
    await new Promise((r) => setTimeout(r, 600)); // past the linger: unsubscribed
    const after = ncC.stats().inMsgs;
    await record(10, 15);
    await new Promise((r) => setTimeout(r, 300));
    expect(ncC.stats().inMsgs).toBe(after);
  }, 60_000);

  it('what a node wrote and did not publish before it went silent is read back once; if it was only slow, what it publishes late is not heard twice', async () => {
    const { nats, ncA, ncB, A, B, subject, followed, record, agents } = await eventNodes();
    const spy = await connect({ servers: nats.url });
    cleanups.push(() => spy.close());
    // What A publishes, as the test sees it on the wire.
    const wires: { epoch: string; seq: number; events?: unknown[] }[] = [];
    spy.subscribe(subject, {
      callback: (_e, m) => {
        wires.push(JSON.parse(new TextDecoder().decode(m.data)) as (typeof wires)[number]);
      },
    });
    await spy.flush();
    const stopA = relayEvents({ nc: ncA, subject, node: 'a', store: A, tickMs: 100 });
    const gaps: unknown[] = [];
    cleanups.push(
      relayEvents({ nc: ncB, subject, node: 'b', store: B, tickMs: 100, silentMs: 500, onGap: (g) => gaps.push(g) }),
    );
    await Promise.all([ncA.flush(), ncB.flush()]);

    await record(0, 5);
    await waitUntil(() => followed.length >= 5, { timeoutMs: 5000 });
    await spy.flush();
    const lastWire = wires.filter((w) => w.events?.length).at(-1)!;

    // A stops publishing (as if killed right after its INSERTs) but its rows are written.
    stopA();
    await record(5, 10);
    // Before: B's follower never heard agent-5 to agent-9 (only GET /events had them).
    await waitUntil(() => followed.length >= 10, {
      timeoutMs: 10_000,
      what: "the silent node's unpublished events read back",
    });
    expect(agents()).toEqual(upTo(10));

    // A was only slow: it publishes agent-5 to agent-10 late, in its next numbered chunk. B's follower hears agent-10 alone.
    await record(10, 11);
    const late = (await A.find({ limit: 100 }))
      .filter((e) => Number(e.agent?.slice(6)) >= 5)
      .sort((x, y) => x.id - y.id);
    expect(late.map((e) => e.agent)).toEqual(['agent-5', 'agent-6', 'agent-7', 'agent-8', 'agent-9', 'agent-10']);
    spy.publish(subject, JSON.stringify({ node: 'a', epoch: lastWire.epoch, seq: lastWire.seq + 1, events: late }));
    await waitUntil(() => followed.length >= 11, { timeoutMs: 5000, what: "the slow node's late chunk" });
    await new Promise((r) => setTimeout(r, 700));
    expect(agents()).toEqual(upTo(11));
    expect(gaps).toEqual([]);
  }, 60_000);
});

// ------------------------------------------------------------------------------ two serve nodes

describe.skipIf(!runServe)('two caxton serve nodes share the event store and the tool audit', () => {
  let nats: NatsServer;
  let a: TestServer;
  let b: TestServer;
  const schema = runServe ? newSchema() : '';

  beforeAll(async () => {
    nats = await startNatsServer();
    a = await startTestServer({ toml: clusterToml('node-a', nats.url, schema) });
    b = await startTestServer({ toml: clusterToml('node-b', nats.url, schema) });
  }, 60_000);

  afterAll(async () => {
    await b?.close();
    await a?.close();
    await nats?.stop();
  });

  it("GET /api/v1/events on B answers what A recorded, once, and B's follower hears it live", async () => {
    // B's follower: stored events from now on, then live ones.
    const ac = new AbortController();
    const res = await fetch(`${b.url}/api/v1/events/stream?agent=shared-helper`, { signal: ac.signal });
    const reader = res.body!.getReader();
    let text = '';
    const heard = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return text;
        text += new TextDecoder().decode(value);
        if (text.includes('event: agent.deployed')) return text;
      }
    })();
    await waitUntil(() => text.includes('event: ready'), { timeoutMs: 5000 });
    const deployed = await fetch(`${a.url}/api/v1/agents`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'shared-helper', description: 'd', llm: { model: 'm' }, system_prompt: 'p' }),
    });
    expect(deployed.status, await deployed.text()).toBeLessThan(300);
    const live = await heard;
    ac.abort();
    expect(live).toContain('"agent":"shared-helper"');
    // The directory brought the agent to B: B's registry changed, but only A recorded the event.
    await waitUntil(async () => (await fetch(`${b.url}/api/v1/agents/shared-helper`)).status === 200, {
      timeoutMs: 5000,
    });
    for (const node of [a, b]) {
      const r = (await (await fetch(`${node.url}/api/v1/events?agent=shared-helper`)).json()) as {
        events: AgentEvent[];
      };
      expect(r.events.map((e) => e.type)).toEqual(['agent.deployed']);
    }
  });

  it('GET /api/v1/tools/audit on B answers the calls A recorded', async () => {
    a.server.toolAudit.record(rec({ agent: 'from-a', tool: 'text.echo', server: 'text', time: Date.now() }));
    await a.server.toolAudit.flush();
    const r = (await (await fetch(`${b.url}/api/v1/tools/audit?agent=from-a`)).json()) as {
      records: ToolAuditRecord[];
    };
    expect(r.records).toHaveLength(1);
    expect(r.records[0]).toMatchObject({ agent: 'from-a', tool: 'text.echo', outcome: 'ok' });
    const overview = (await (await fetch(`${b.url}/api/v1/status/overview`)).json()) as {
      events: { enabled: boolean; stored: number };
    };
    expect(overview.events.stored).toBeGreaterThanOrEqual(1);
  });
});
