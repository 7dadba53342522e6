/**
 * The cluster's engines, on a `nats-server -js` this suite starts on its own port and
 * store (Debian's binary):
 *
 *  1. Durable messages through a cluster node's bus (the delivery engine over PostgreSQL and
 *     JetStream, as `caxton serve` runs it): one process, one-way informs to in-process agents,
 *     accepted (commit + PubAck) and delivered (handled, row and JetStream acknowledged). Baseline
 *     in the same run: raw JetStream — publish the same payloads awaiting each PubAck, consume and
 *     ack them from one pull consumer. Target: ≥ 0.5 of raw JetStream.
 *  2. Directory propagation (ADR 0045): deploys on one of three nodes (the row written in
 *     PostgreSQL, then a notice on NATS), the lag until each of the two others has it in its
 *     registry. Baseline in the same run: the same deploys as JetStream key-value puts seen by two
 *     watchers (ADR 0039's design). Target: p99 ≤ 100 ms on loopback.
 *
 * The same messages through `caxton serve` processes are measured by bench/cluster.ts.
 */
import { rmSync } from 'node:fs';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { AgentRegistry, parseAgent, type DeployedAgent } from '../src/agents/index.js';
import { PgAgentDirectory } from '../src/agents/index.js';
import { agentsSubject, clusterConfigSchema, DirectorySync, type ClusterConfig } from '../src/cluster/index.js';
import { ClusterBus } from '../src/messaging/cluster/index.js';
import { PgMessageReads, PgMessageStore } from '../src/messaging/postgres/index.js';
import { loadServerConfig } from '../src/config/index.js';
import { newConversationId, newMessageId, type AclMessage } from '../src/messaging/index.js';
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

/** Messages per second accepted, and delivered, through a cluster node's bus (PostgreSQL + JetStream). */
async function throughBus(
  cluster: { config: ClusterConfig; nc: NatsConnection },
  label: string,
): Promise<{ accepted_per_s: number; delivered_per_s: number }> {
  const dir = tempDir('caxton-bench-cluster-');
  const pool = new pg.Pool({ connectionString: process.env.CAXTON_BENCH_PG_URL ?? TEST_PG_URL, max: 16 });
  const schema = `caxton_bench_bus_${Date.now()}`;
  try {
    const registry = new AgentRegistry();
    for (let i = 0; i < AGENTS; i++) registry.upsert(agent(`agent-${i}`, 1));
    const config = { ...loadServerConfig({ env: {}, cwd: dir.path }).messaging, max_queue: 10_000_000 };
    const store = await PgMessageStore.open({ pool, schema });
    const bus = new ClusterBus({
      store,
      reads: new PgMessageReads({ store }),
      nc: cluster.nc,
      registry,
      config,
      cluster: cluster.config,
    });
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
    await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await pool.end();
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

export const clusterEnginesSuite: Suite = {
  name: 'cluster-engines',
  description:
    'durable messages on the JetStream delivery queue vs raw JetStream; directory propagation lag across three registries (the engines in one process)',
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
      const lag = await propagation(nats);
      const both = summarize([...lag.b, ...lag.c]);
      const kv = summarize(await kvPropagation(nats));
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
          metric: `directory propagation lag, ${DEPLOYS} deploys on node 0 seen by nodes 1 and 2, p50 / p99`,
          value: `${fmt(both.p50)} / ${fmt(both.p99)} ms (max ${fmt(both.max)})`,
          baseline: `key-value put→watch ${fmt(kv.p50)} / ${fmt(kv.p99)} ms (max ${fmt(kv.max)})`,
          target: 'p99 ≤ 100 ms',
          verdict: both.p99 <= 100 ? 'pass' : 'fail',
        },
      ];
      return {
        rows,
        notes: ['The engines in this process, on one nats-server (loopback, file storage).'],
        raw: {
          raw_jetstream: raw,
          cluster_bus: jsQueue,
          directory_lag_ms: both,
          directory_kv_baseline_ms: kv,
          messages: MESSAGES,
          deploys: DEPLOYS,
        },
      };
    } finally {
      await nc.close();
      await nats.stop();
      rmSync(nats.storeDir, { recursive: true, force: true });
    }
  },
};
