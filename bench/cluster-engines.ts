/**
 * The cluster's engines, on a `nats-server -js` this suite starts on its own port and
 * store (Debian's binary):
 *
 *  1. Durable messages through a cluster node's bus (the delivery engine over PostgreSQL and
 *     JetStream, as `caxton serve` runs it): one process, one-way informs to in-process agents,
 *     accepted (commit + PubAck) and delivered (handled, row and JetStream acknowledged). Baseline
 *     in the same run: raw JetStream — publish the same payloads awaiting each PubAck, consume and
 *     ack them from one pull consumer — and, for context, the one-node bus on SQLite. Target: ≥ 0.5
 *     of raw JetStream.
 *  3. Conversation steps in PostgreSQL (ADR 0043): the step a cluster node will take to accept a
 *     message (the conversation's lock, its row, the message, a delivery row, the row updated), 16
 *     at a time over many conversations and over one hot conversation; baseline in the same run: a
 *     plain autocommit INSERT of the same message bodies at the same concurrency.
 *  2. Directory propagation (ADR 0045): deploys on one of three nodes (the row written in
 *     PostgreSQL, then a notice on NATS), the lag until each of the two others has it in its
 *     registry. Baseline in the same run: the same deploys as JetStream key-value puts seen by two
 *     watchers (ADR 0039's design). Target: p99 ≤ 100 ms on loopback.
 *
 * The same messages through `caxton serve` processes are measured by bench/cluster.ts and
 * bench/cluster-nodes.ts.
 */
import { rmSync } from 'node:fs';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { AgentRegistry, parseAgent, type DeployedAgent } from '../src/agents/index.js';
import { PgAgentDirectory } from '../src/agents/index.js';
import { agentsSubject, clusterConfigSchema, DirectorySync, type ClusterConfig } from '../src/cluster/index.js';
import { ClusterBus, PgMessageReads, PgMessageStore } from '../src/messaging/cluster/index.js';
import { loadServerConfig } from '../src/config/index.js';
import {
  newConversationId,
  newMessageId,
  type AclMessage,
  type ConversationId,
  type MessagingBus,
} from '../src/messaging/index.js';
import { MESSAGING_MIGRATIONS, MessageBus } from '../src/messaging/sqlite/index.js';
import { migrate, openDatabase } from '../src/storage/index.js';
import { startNatsServer, type NatsServer } from '../test/helpers/nats-server.js';
import { TEST_PG_URL } from '../test/helpers/system-probe.js';
import { progress } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt, summarize } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';
import { addWorkQueue } from './lib/work-queue.js';

const MESSAGES = Number(process.env.BENCH_CLUSTER_MESSAGES ?? 5_000);
const AGENTS = 10;
const DEPLOYS = Number(process.env.BENCH_CLUSTER_DEPLOYS ?? 300);

function agent(name: string, revision: number): DeployedAgent {
  const r = parseAgent(`name = "${name}"\ncapabilities = ["desk"]\nsystem_prompt = "You are ${name}."\n`, {
    format: 'toml',
    file: `${name}.toml`,
  });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const now = new Date().toISOString();
  return {
    definition: r.definition,
    format: 'toml',
    origin: { kind: 'api' },
    revision,
    deployed_at: now,
    updated_at: now,
  };
}

function inform(i: number): AclMessage {
  return {
    id: newMessageId(),
    performative: 'inform',
    sender: 'bench',
    receivers: [`agent-${i % AGENTS}`],
    content: `payload ${i} `.padEnd(200, 'x'),
    conversation_id: newConversationId(),
    params: {},
    timestamp: new Date().toISOString(),
    chain: [],
  };
}

/**
 * Messages per second accepted, and delivered, through the bus a server runs: a cluster node's
 * (PostgreSQL + JetStream, given `cluster`) or one node's (SQLite, without).
 */
async function throughBus(
  cluster: { config: ClusterConfig; nc: NatsConnection } | undefined,
  label: string,
): Promise<{ accepted_per_s: number; delivered_per_s: number }> {
  const dir = tempDir('caxton-bench-cluster-');
  const pool = cluster && new pg.Pool({ connectionString: process.env.CAXTON_BENCH_PG_URL ?? TEST_PG_URL, max: 16 });
  const schema = `caxton_bench_bus_${Date.now()}`;
  let db: ReturnType<typeof openDatabase> | undefined;
  try {
    const registry = new AgentRegistry();
    for (let i = 0; i < AGENTS; i++) registry.upsert(agent(`agent-${i}`, 1));
    const config = { ...loadServerConfig({ env: {}, cwd: dir.path }).messaging, max_queue: 10_000_000 };
    let bus: MessagingBus;
    if (cluster && pool) {
      const store = await PgMessageStore.open({ pool, schema });
      bus = new ClusterBus({
        store,
        reads: new PgMessageReads({ store }),
        nc: cluster.nc,
        registry,
        config,
        cluster: cluster.config,
      });
    } else {
      db = openDatabase(dir.path);
      migrate(db, MESSAGING_MIGRATIONS);
      bus = new MessageBus({ db, registry, config });
    }
    let delivered = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    for (let i = 0; i < AGENTS; i++)
      bus.registerHandler(`agent-${i}`, () => {
        if (++delivered === MESSAGES) done();
        return undefined;
      });
    await bus.start();
    const msgs = Array.from({ length: MESSAGES }, (_, i) => inform(i));
    const bar = progress(label, MESSAGES);
    const t0 = performance.now();
    await Promise.all(msgs.map((m) => bus.send(m, { newConversation: true })));
    const acceptMs = performance.now() - t0;
    await all;
    await bus.settled();
    const deliverMs = performance.now() - t0;
    bar.update(MESSAGES);
    bar.end();
    await bus.close();
    return { accepted_per_s: (MESSAGES / acceptMs) * 1000, delivered_per_s: (MESSAGES / deliverMs) * 1000 };
  } finally {
    db?.close();
    if (pool) {
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
      await pool.end();
    }
    dir.remove();
  }
}

/** The baseline: the same payloads published (awaiting each PubAck, all in flight) and consumed with explicit acks. */
async function rawJetStream(nc: NatsConnection): Promise<{ published_per_s: number; consumed_per_s: number }> {
  await addWorkQueue(nc, 'BENCH_RAW', 'bench.raw', 'raw');
  const js = jetstream(nc);
  const payloads = Array.from({ length: MESSAGES }, (_, i) => ({
    receiver: `agent-${i % AGENTS}`,
    message: inform(i),
  }));
  const t0 = performance.now();
  await Promise.all(
    payloads.map((p) =>
      js.publish(`bench.raw.${p.receiver}`, JSON.stringify(p), { msgID: `${p.message.id}:${p.receiver}` }),
    ),
  );
  const publishMs = performance.now() - t0;
  const c = await js.consumers.get('BENCH_RAW', 'raw');
  let got = 0;
  // consume() keeps pulls in flight (the fastest way the client offers to drain a consumer).
  const it = await c.consume({ max_messages: 1024 });
  for await (const m of it) {
    m.json();
    m.ack();
    if (++got === MESSAGES) break;
  }
  await it.close();
  const totalMs = performance.now() - t0;
  return { published_per_s: (MESSAGES / publishMs) * 1000, consumed_per_s: (MESSAGES / totalMs) * 1000 };
}

/** Deploys on node 0 (the row written, then its registry, as the service does) seen by nodes 1 and 2 (ADR 0045). */
async function propagation(nats: NatsServer): Promise<{ b: number[]; c: number[] }> {
  const conns: NatsConnection[] = [];
  const syncs: DirectorySync[] = [];
  const regs = [new AgentRegistry(), new AgentRegistry(), new AgentRegistry()];
  const lags: number[][] = [[], [], []];
  const pool = new pg.Pool({ connectionString: process.env.CAXTON_BENCH_PG_URL ?? TEST_PG_URL, max: 6 });
  const schema = `caxton_bench_dir_${Date.now()}`;
  try {
    const dirs: PgAgentDirectory[] = [];
    for (let i = 0; i < 3; i++) {
      const nc = await connect({ servers: nats.url });
      conns.push(nc);
      const directory = await PgAgentDirectory.open({ pool, schema, node: `node-${i}` });
      dirs.push(directory);
      syncs.push(
        await DirectorySync.start({
          nc,
          subject: agentsSubject(schema),
          node: `node-${i}`,
          directory,
          registry: regs[i]!,
          onApplied: (lag) => lags[i]!.push(lag),
        }),
      );
    }
    const bar = progress('directory deploys', DEPLOYS);
    for (let i = 0; i < DEPLOYS; i++) {
      const a = agent(`dir-${i}`, 1);
      await dirs[0]!.put({ ...a, source: '' });
      regs[0]!.upsert(a);
      // One at a time, as operators deploy: each measured on its own, not behind a queue of others.
      const t0 = Date.now();
      while ((!regs[1]!.has(`dir-${i}`) || !regs[2]!.has(`dir-${i}`)) && Date.now() - t0 < 5_000)
        await new Promise((r) => setImmediate(r));
      bar.update(i + 1);
    }
    bar.end();
  } finally {
    for (const s of syncs) await s.stop();
    for (const nc of conns) await nc.close();
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await pool.end();
  }
  return { b: lags[1]!, c: lags[2]! };
}

/** The baseline of the directory lag: the same deploys as JetStream key-value puts seen by two watchers (ADR 0039's design, before the agents moved to PostgreSQL). */
async function kvPropagation(nats: NatsServer): Promise<number[]> {
  const conns = [
    await connect({ servers: nats.url }),
    await connect({ servers: nats.url }),
    await connect({ servers: nats.url }),
  ];
  const lags: number[] = [];
  try {
    const [writer, ...readers] = await Promise.all(
      conns.map((nc) => new Kvm(nc).create('bench_agents_kv', { history: 1 })),
    );
    const seen = new Map<string, number>();
    const watches = await Promise.all(readers.map((kv) => kv!.watch({ key: '>' })));
    for (const w of watches)
      void (async () => {
        for await (const e of w) {
          if (e.operation !== 'PUT') continue;
          lags.push(Date.now() - (JSON.parse(e.string()) as { published_at: number }).published_at);
          seen.set(e.key, (seen.get(e.key) ?? 0) + 1);
        }
      })();
    const bar = progress('directory deploys, key-value baseline', DEPLOYS);
    for (let i = 0; i < DEPLOYS; i++) {
      const a = agent(`kv-${i}`, 1);
      await writer!.put(
        `kv-${i}`,
        JSON.stringify({
          node: 'node-0',
          published_at: Date.now(),
          format: a.format,
          revision: 1,
          definition: a.definition,
        }),
      );
      const t0 = Date.now();
      while ((seen.get(`kv-${i}`) ?? 0) < 2 && Date.now() - t0 < 5_000) await new Promise((r) => setImmediate(r));
      bar.update(i + 1);
    }
    bar.end();
    for (const w of watches) w.stop();
  } finally {
    for (const nc of conns) await nc.close();
  }
  return lags;
}

const STEPS = Number(process.env.BENCH_CLUSTER_STEPS ?? 4_000);
const STEP_CONCURRENCY = 16;

/** Runs `n` operations `concurrency` at a time; returns ops/s and each one's latency (ms). */
async function concurrently(
  n: number,
  concurrency: number,
  op: (i: number) => Promise<void>,
): Promise<{ per_s: number; lat: number[] }> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < n; i = next++) {
        const t = performance.now();
        await op(i);
        lat.push(performance.now() - t);
      }
    }),
  );
  return { per_s: n / ((performance.now() - t0) / 1000), lat };
}

/** Conversation steps on PostgreSQL over `conversations` conversations, and the plain-INSERT baseline. */
async function pgSteps(): Promise<{
  spread: { per_s: number; lat: number[] };
  hot: { per_s: number; lat: number[] };
  raw: { per_s: number; lat: number[] };
}> {
  const pool = new pg.Pool({ connectionString: process.env.CAXTON_BENCH_PG_URL ?? TEST_PG_URL, max: STEP_CONCURRENCY });
  const schema = `caxton_bench_${Date.now()}`;
  try {
    const store = await PgMessageStore.open({ pool, schema });
    const step = (conversationId: string) => {
      const m = inform(0);
      const msg = { ...m, conversation_id: conversationId as ConversationId };
      return store.inConversation(conversationId, async (s) => {
        const now = new Date().toISOString();
        const c = s.conversation ?? {
          id: conversationId as ConversationId,
          protocol: null,
          state: 'in_progress' as const,
          initiator: 'bench',
          participants: ['bench'],
          capability: null,
          turns: 0,
          max_turns: 1_000_000,
          created_at: now,
          updated_at: now,
          expires_at: null,
          reason: null,
        };
        await s.insertMessage(msg, msg.receivers);
        await s.insertDelivery(msg.id, msg.receivers[0]!, now);
        await s.saveConversation({ ...c, turns: c.turns + 1, updated_at: now });
      });
    };
    const bar = progress('cluster: PostgreSQL conversation steps', 3);
    const spread = await concurrently(STEPS, STEP_CONCURRENCY, (i) => step(`spread-${i % 400}`));
    bar.update(1);
    const hot = await concurrently(Math.floor(STEPS / 4), STEP_CONCURRENCY, () => step('hot'));
    bar.update(2);
    await pool.query(`CREATE TABLE "${schema}".raw (id text PRIMARY KEY, body text NOT NULL)`);
    const raw = await concurrently(STEPS, STEP_CONCURRENCY, async () => {
      const m = inform(0);
      await pool.query(`INSERT INTO "${schema}".raw (id, body) VALUES ($1, $2)`, [m.id, JSON.stringify(m)]);
    });
    bar.update(3);
    bar.end();
    return { spread, hot, raw };
  } finally {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await pool.end();
  }
}

export const clusterEnginesSuite: Suite = {
  name: 'cluster-engines',
  description:
    'durable messages on the JetStream delivery queue vs raw JetStream; directory propagation lag across three registries; PostgreSQL conversation steps (the engines in one process)',
  async run(): Promise<SuiteReport> {
    const nats = await startNatsServer();
    const nc = await connect({ servers: nats.url });
    try {
      const raw = await rawJetStream(nc);
      const cluster = clusterConfigSchema.parse({
        node: 'bench',
        nats: { urls: [nats.url] },
        delivery: { max_held: 1024 },
      });
      const jsQueue = await throughBus({ config: cluster, nc }, 'cluster bus (PostgreSQL + JetStream)');
      const sqlite = await throughBus(undefined, 'one-node bus (SQLite)');
      const lag = await propagation(nats);
      const both = summarize([...lag.b, ...lag.c]);
      const kv = summarize(await kvPropagation(nats));
      const steps = await pgSteps();
      const spreadLat = summarize(steps.spread.lat);
      const hotLat = summarize(steps.hot.lat);
      const rawLat = summarize(steps.raw.lat);
      const ratio = jsQueue.delivered_per_s / raw.consumed_per_s;
      const rows: Row[] = [
        {
          metric: `durable messages delivered/s, cluster bus (${MESSAGES} informs, 1 process)`,
          value: fmt(jsQueue.delivered_per_s, 0),
          baseline: `raw JetStream publish+consume ${fmt(raw.consumed_per_s, 0)}/s`,
          target: '≥ 0.5 of raw',
          verdict: ratio >= 0.5 ? 'pass' : 'fail',
        },
        { metric: 'ratio to raw JetStream', value: fmt(ratio, 2), baseline: '1.00' },
        {
          metric: 'durable messages accepted/s, cluster bus (commit + PubAck)',
          value: fmt(jsQueue.accepted_per_s, 0),
          baseline: `raw publish with PubAck ${fmt(raw.published_per_s, 0)}/s`,
        },
        {
          metric: 'durable messages delivered/s, one-node bus on SQLite (context)',
          value: fmt(sqlite.delivered_per_s, 0),
          baseline: `accepted ${fmt(sqlite.accepted_per_s, 0)}/s`,
        },
        {
          metric: `directory propagation lag, ${DEPLOYS} deploys on node 0 seen by nodes 1 and 2, p50 / p99`,
          value: `${fmt(both.p50)} / ${fmt(both.p99)} ms (max ${fmt(both.max)})`,
          baseline: `key-value put→watch ${fmt(kv.p50)} / ${fmt(kv.p99)} ms (max ${fmt(kv.max)})`,
          target: 'p99 ≤ 100 ms',
          verdict: both.p99 <= 100 ? 'pass' : 'fail',
        },
        {
          metric: `PostgreSQL conversation steps/s (lock, row, message, delivery, update), ${STEPS} over 400 conversations, ${STEP_CONCURRENCY} at a time; p50 / p99`,
          value: `${fmt(steps.spread.per_s, 0)}/s; ${fmt(spreadLat.p50)} / ${fmt(spreadLat.p99)} ms`,
          baseline: `plain INSERT ${fmt(steps.raw.per_s, 0)}/s; ${fmt(rawLat.p50)} / ${fmt(rawLat.p99)} ms`,
        },
        {
          metric: `the same steps on one hot conversation (serialized by its lock); p50 / p99`,
          value: `${fmt(steps.hot.per_s, 0)}/s; ${fmt(hotLat.p50)} / ${fmt(hotLat.p99)} ms`,
          baseline: `ratio to plain INSERT ${fmt(steps.hot.per_s / steps.raw.per_s, 2)}`,
        },
      ];
      return {
        rows,
        notes: ['The engines in this process, on one nats-server (loopback, file storage).'],
        raw: {
          raw_jetstream: raw,
          cluster_bus: jsQueue,
          sqlite_bus: sqlite,
          directory_lag_ms: both,
          directory_kv_baseline_ms: kv,
          messages: MESSAGES,
          deploys: DEPLOYS,
          pg_steps: {
            spread_per_s: steps.spread.per_s,
            spread_ms: spreadLat,
            hot_per_s: steps.hot.per_s,
            hot_ms: hotLat,
            raw_insert_per_s: steps.raw.per_s,
            raw_insert_ms: rawLat,
            steps: STEPS,
          },
        },
      };
    } finally {
      await nc.close();
      await nats.stop();
      rmSync(nats.storeDir, { recursive: true, force: true });
    }
  },
};
