/**
 * Durable messages through `caxton serve` nodes beside raw JetStream and a component floor, in
 * one run, alternated in equal-length repetitions, with the CPU of every process the suite
 * started — and of nothing else — read for each repetition; a workload's total counts the ones it
 * runs on, not the other cluster's idle nodes (listed apart).
 *
 * The suite starts its own nats-server (JetStream, temporary store) and its own PostgreSQL
 * instance (bench/lib/own-postgres.ts), a 1-node and a 3-node cluster on them, and the floor
 * server (bench/lib/floor-server.ts). Then, for each round, every workload runs once for
 * BENCH_CLUSTER_REP_SECONDS, the order rotated from round to round:
 *
 *  - raw: JetStream alone, from this process — publish awaiting each PubAck (IN_FLIGHT at a
 *    time), consume and ack from a durable pull consumer; the payload a node puts on the wire;
 *  - floor: POST /messages to the floor server (fastify, keep-alive), which writes the row in
 *    batches of at most 100, publishes with PubAck, answers, and consumes and acks;
 *  - rows, rows-batch: POST /rows to the same process, one message per POST (IN_FLIGHT at a time)
 *    or 100 (BATCH_IN_FLIGHT at a time): the rows floor (bench/lib/rows-floor.ts), which writes and
 *    reads exactly the rows a node does for each message, in its statements, and nothing else;
 *  - node1: one POST /api/v1/messages per message to the 1-node cluster, IN_FLIGHT at a time;
 *  - node1-batch: 100 messages per POST (a JSON array) to the same node, BATCH_IN_FLIGHT at a time;
 *  - nodes3: one POST per message round-robin over the 3-node cluster, IN_FLIGHT at a time;
 *  - paced3: 100 messages a second open loop over the 3 nodes, for the latency below saturation;
 *  - paced1: the same rate to the 1-node cluster, for CPU per message at equal load (not saturated).
 *
 * Before a paced repetition the suite waits, unmeasured, until the processes it started use no
 * more CPU than they did idle at setup (at most SETTLE_MAX_MS), and reports how long that took and
 * what they used meanwhile: a paced window right after a saturating one otherwise measures what
 * the saturation left behind (deliveries' acknowledgements, sweeps over the grown tables), not a
 * cluster at 100 msg/s. BENCH_CLUSTER_SETTLE=0 measures it right after the previous repetition.
 *
 * A message counts as delivered in a repetition when it was consumed (raw, floor) or its
 * delivery row turned `done` (Caxton; one clock, one machine) inside the repetition's window; the
 * CPU of each process is read from /proc at the window's two ends. After the window nothing new
 * is sent and what was accepted is drained, unmeasured, before the next repetition starts.
 *
 * The messages are `agree`, a one-way act the receiving agent is not run for: the messaging
 * path alone. Needs `npm run build`, nats-server and PostgreSQL 15's binaries.
 */
import { existsSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { startNatsServer } from '../test/helpers/nats-server.js';
import {
  api,
  CAXTON_MAIN,
  closePool,
  clusterNames,
  content,
  deploySink,
  httpCall,
  logTail,
  setPoolConnections,
  sleep,
  SINK,
  startNode,
  stopNode,
  wallNow,
  type Node,
} from './lib/caxton-nodes.js';
import { floorStats, startFloor, startRaw, type FloorProcess, type RawJetStream } from './lib/cluster-floors.js';
import {
  dirtyKb,
  drive,
  pgActivity,
  pgDelta,
  sumPg,
  suiteCores,
  waitFor as waitUpTo,
  zeroPg,
  type PgActivity,
} from './lib/cluster-measure.js';
import { natsCounts, natsDelta, natsSum, noNats, type NatsCounts } from './lib/nats-monitor.js';
import { PG_PROCESS_KINDS, startOwnPostgres, type OwnPostgres } from './lib/own-postgres.js';
import { cpuMeter, pidWithArgs, processTree, type CpuReport } from './lib/proc-cpu.js';
import { note } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt, summarize, type Summary } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const QUICK = process.env.BENCH_CLUSTER_QUICK === '1';
const ROUNDS = Number(process.env.BENCH_CLUSTER_ROUNDS ?? (QUICK ? 1 : 3));
const REP_S = Number(process.env.BENCH_CLUSTER_REP_SECONDS ?? (QUICK ? 1.5 : 5));
const IN_FLIGHT = Number(process.env.BENCH_CLUSTER_IN_FLIGHT ?? 64);
const BATCH = 100;
const BATCH_IN_FLIGHT = Number(process.env.BENCH_CLUSTER_BATCH_IN_FLIGHT ?? 4);
const PACED_RATE = Number(process.env.BENCH_CLUSTER_PACED_RATE ?? 100);
/** What was accepted in a repetition must be delivered within this long after its window. */
const DRAIN_MS = 60_000;
const waitFor = (what: string, done: () => Promise<boolean> | boolean) => waitUpTo(what, done, DRAIN_MS);
const PROFILE = process.env.BENCH_CLUSTER_NODE_PROFILE;
/** `[cluster.state] step_transactions` of the 3-node cluster's nodes (unset: the default), to see how group size moves its cost. */
const STEP_TRANSACTIONS_3 = process.env.BENCH_CLUSTER_STEP_TRANSACTIONS_3;
/**
 * More environment for every node (BENCH_CLUSTER_NODE_ENV, `KEY=VALUE ...`): a setting through its
 * CAXTON_SECTION__KEY form, e.g. `CAXTON_CLUSTER__STATE__STEP_LINGER=0`, to compare one build under two settings run by run.
 */
const NODE_ENV: Record<string, string> = Object.fromEntries(
  (process.env.BENCH_CLUSTER_NODE_ENV ?? '')
    .split(/\s+/)
    .filter((kv) => kv.includes('='))
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
/** Whether paced repetitions wait for the cluster to settle first (see the top of this file). */
const SETTLE = process.env.BENCH_CLUSTER_SETTLE !== '0';
const SETTLE_MAX_MS = 30_000;
const SETTLE_PROBE_MS = 1_000;

const ALL_WORKLOADS = [
  'raw',
  'floor',
  'rows',
  'rows-batch',
  'node1',
  'node1-batch',
  'nodes3',
  'paced3',
  'paced1',
] as const;
type Workload = (typeof ALL_WORKLOADS)[number];
/**
 * BENCH_CLUSTER_WORKLOADS (comma-separated): run only these, to look at one without the others'
 * aftermath. paced1 runs only when named: it answers a question (does a node's CPU per message
 * depend on the cluster's size at equal load?), not a target.
 */
const WORKLOADS: readonly Workload[] = process.env.BENCH_CLUSTER_WORKLOADS
  ? ALL_WORKLOADS.filter((w) => process.env.BENCH_CLUSTER_WORKLOADS!.split(',').includes(w))
  : ALL_WORKLOADS.filter((w) => w !== 'paced1');
const LABEL: Record<Workload, string> = {
  raw: 'raw JetStream publish (PubAck) + consume (ack)',
  floor: 'component floor (fastify echo + 100-row INSERTs + JetStream publish/consume)',
  rows: "rows floor (the component floor writing a node's rows and statements), one POST per message",
  'rows-batch': `rows floor, ${BATCH} messages per POST`,
  node1: '1 node, one POST per message',
  'node1-batch': `1 node, ${BATCH} messages per POST`,
  nodes3: '3 nodes, one POST per message round-robin',
  paced3: `3 nodes, paced ${PACED_RATE} msg/s`,
  paced1: `1 node, paced ${PACED_RATE} msg/s`,
};

interface Rep {
  workload: Workload;
  round: number;
  window_s: number;
  /** Messages accepted (202, PubAck'd) by the end of the drain. */
  accepted: number;
  refused: number;
  /** Caxton: messages refused with 429 queue_full and sent again after Retry-After (back-pressure, not failures). */
  back_pressure?: number;
  /** Delivered (consumed, or delivery row done) inside the window. */
  delivered: number;
  /** Submission start → delivered, and accepted (202) → delivered (Caxton only), of the messages sent in the window. */
  e2e_ms?: number[];
  after_accept_ms?: number[];
  /** Submission → accepted (the 202), per message delivered: the accept's share of e2e_ms. */
  accept_ms?: number[];
  cpu: CpuReport;
  /** What the suite's PostgreSQL did in the window (pg_stat_* differences). */
  pg: PgActivity;
  /** What the suite's nats-server moved in the window. */
  nats: NatsCounts;
  load_1m: number;
  failures: string[];
  /** Paced repetitions: how long the wait for the cluster to settle took, and the CPU seconds its processes used in it. */
  settle?: { ms: number; cpu_s: number; settled: boolean; dirty_kb: number };
  /** Paced repetitions: the machine's dirty pages (kB) as the window opened. */
  dirty_kb?: number;
}

interface Env {
  own: OwnPostgres;
  db: pg.Pool;
  natsUrl: string;
  natsMonitor: string;
  nc: NatsConnection;
  raw: RawJetStream;
  floor: FloorProcess;
  one: { nodes: Node[]; schema: string };
  three: { nodes: Node[]; schema: string };
  groups: Record<string, () => number[]>;
  /** Cores the processes the suite started used while idle, and the machine's dirty pages then (kB), measured at setup. */
  idleCores: number;
  idleDirtyKb: number;
}

const body = (i: number) => ({ performative: 'agree', receiver: SINK, content: content(i) });

// ------------------------------------------------------------------------------ setup

async function startCluster(root: string, size: number, natsUrl: string, pgUrl: string): Promise<Env['one']> {
  const names = clusterNames(`${Date.now()}_${size}`);
  const nodes: Node[] = [];
  // One after the other: the first creates the schema, the stream and the consumer.
  for (let i = 0; i < size; i++)
    nodes.push(
      await startNode(root, `c${size}-node-${String.fromCharCode(97 + i)}`, names, {
        natsUrl,
        pgUrl,
        // A CPU profile of every node, one directory each, for where its time goes.
        ...(size === 3 && STEP_TRANSACTIONS_3 !== undefined && { stepTransactions: Number(STEP_TRANSACTIONS_3) }),
        ...(PROFILE !== undefined && { profileDir: join(PROFILE, `c${size}-node-${String.fromCharCode(97 + i)}`) }),
        env: NODE_ENV,
      }),
    );
  await deploySink(nodes);
  return { nodes, schema: names.schema };
}

// ------------------------------------------------------------------------------ one repetition

/**
 * Waits until the suite's processes use no more CPU than idle (a little over, for noise) and the
 * kernel has written back what the last repetition left dirty (a WAL fsync waits behind that
 * writeback), at most SETTLE_MAX_MS.
 */
async function settle(env: Env): Promise<NonNullable<Rep['settle']>> {
  const t0 = Date.now();
  let cpu_s = 0;
  for (;;) {
    const cores = await suiteCores(env.groups, SETTLE_PROBE_MS);
    cpu_s += (cores * SETTLE_PROBE_MS) / 1000;
    const dirty = dirtyKb();
    const settled =
      cores <= Math.max(1.25 * env.idleCores, env.idleCores + 0.03) && !(dirty > Math.max(2 * env.idleDirtyKb, 16_384));
    if (settled || Date.now() - t0 >= SETTLE_MAX_MS) return { ms: Date.now() - t0, cpu_s, settled, dirty_kb: dirty };
  }
}

async function rep(env: Env, workload: Workload, round: number, seconds: number): Promise<Rep> {
  const settled = SETTLE && workload.startsWith('paced') ? await settle(env) : undefined;
  const dirtyAtStart = workload.startsWith('paced') ? dirtyKb() : undefined;
  const load_1m = loadavg()[0]!;
  const failures: string[] = [];
  let refused = 0;
  /** Messages the node refused with 429 queue_full and the client sent again after waiting. */
  let backPressure = 0;
  /** When the window ends (set once it starts): past it the client sends nothing again. */
  let windowEnd = Infinity;
  const submitted = new Map<string, [number, number]>();
  const cluster = workload === 'node1' || workload === 'node1-batch' || workload === 'paced1' ? env.one : env.three;
  const fail = (s: string) => {
    refused++;
    if (failures.length < 5) failures.push(s);
  };
  /**
   * A client that honours back-pressure: what the node refuses with 429 queue_full is sent again
   * after its Retry-After, while the window lasts (the node's backlog reached `[messaging]
   * max_queue`, and the loop then runs at the rate the node delivers, not above it).
   */
  const post = async (i: number, perPost: number) => {
    const node = cluster.nodes[i % cluster.nodes.length]!;
    let items = Array.from({ length: perPost }, (_, j) => i * perPost + j);
    while (items.length > 0) {
      const payload = perPost === 1 ? body(items[0]!) : items.map(body);
      const t = wallNow();
      const r = await api(node, 'POST', '/api/v1/messages', JSON.stringify(payload)).catch((e: Error) => ({
        status: 0,
        json: e.message,
      }));
      const end = wallNow();
      // One message answers with its result or error envelope; a batch with one of those per message.
      type Answer = { status: number; id?: string; error?: { code?: string; details?: unknown } };
      const results: Answer[] | undefined =
        perPost === 1
          ? [{ ...(typeof r.json === 'object' ? (r.json as Omit<Answer, 'status'>) : {}), status: r.status }]
          : (r.json as { results?: Answer[] }).results;
      if (!results) return fail(`${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
      const again: number[] = [];
      let retryAfter = 1;
      results.forEach((x, k) => {
        if (x.status === 202 && x.id) submitted.set(x.id, [t, end]);
        else if (x.status === 429 && x.error?.code === 'queue_full') {
          again.push(items[k]!);
          retryAfter = Math.max(retryAfter, (x.error.details as { retry_after?: number }).retry_after ?? 1);
        } else fail(`${perPost === 1 ? '' : 'batch item '}${x.status} ${JSON.stringify(x).slice(0, 300)}`);
      });
      if (again.length === 0 || wallNow() + retryAfter * 1000 >= windowEnd) return;
      backPressure += again.length;
      await sleep(retryAfter * 1000);
      items = again;
    }
  };
  const floorPost = async (path: string, i: number, perPost = 1) => {
    const payload = perPost === 1 ? body(i) : Array.from({ length: perPost }, (_, j) => body(i * perPost + j));
    const r = await httpCall(env.floor.url, 'POST', path, { body: JSON.stringify(payload) }).catch((e: Error) => ({
      status: 0,
      json: e.message,
    }));
    if (r.status !== (perPost === 1 ? 202 : 207)) fail(`${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
  };
  const floorKind =
    workload === 'floor' ? 'floor' : workload === 'rows' || workload === 'rows-batch' ? 'rows' : undefined;
  const floor0 = floorKind ? await floorStats(env.floor.url, 0, 0, floorKind) : undefined;
  const raw0 = env.raw.published;

  const pg0 = await pgActivity(env.db, cluster.nodes);
  const nats0 = await natsCounts(env.natsMonitor);
  const meter = await cpuMeter(env.groups);
  const t0 = wallNow();
  const t1 = t0 + seconds * 1000;
  windowEnd = t1;
  let cpu: CpuReport | undefined;
  let pgIn: PgActivity | undefined;
  let natsIn: NatsCounts | undefined;
  // The window closes on time whatever is still in flight: CPU and deliveries are counted inside it.
  const closing = (async () => {
    await sleep(t1 - wallNow());
    cpu = await meter.stop();
    pgIn = pgDelta(pg0, await pgActivity(env.db, cluster.nodes));
    natsIn = natsDelta(nats0, await natsCounts(env.natsMonitor));
  })();
  const sends: Record<Workload, () => Promise<void>> = {
    raw: () => drive(t1, IN_FLIGHT, (i) => env.raw.publish(raw0 + i)),
    floor: () => drive(t1, IN_FLIGHT, (i) => floorPost('/messages', i)),
    rows: () => drive(t1, IN_FLIGHT, (i) => floorPost('/rows', i)),
    'rows-batch': () => drive(t1, BATCH_IN_FLIGHT, (i) => floorPost('/rows', i, BATCH)),
    node1: () => drive(t1, IN_FLIGHT, (i) => post(i, 1)),
    'node1-batch': () => drive(t1, BATCH_IN_FLIGHT, (i) => post(i, BATCH)),
    nodes3: () => drive(t1, IN_FLIGHT, (i) => post(i, 1)),
    paced3: () => drive(t1, IN_FLIGHT, (i) => post(i, 1), PACED_RATE),
    paced1: () => drive(t1, IN_FLIGHT, (i) => post(i, 1), PACED_RATE),
  };
  await sends[workload]();
  await closing;
  const window_s = (t1 - t0) / 1000;
  const inWindow = (t: number) => t >= t0 && t <= t1;

  if (workload === 'raw') {
    const published = env.raw.published - raw0;
    const before = env.raw.consumedAt.filter((t) => t < t0).length;
    await waitFor('raw', () => env.raw.consumedAt.length - before >= published);
    return {
      workload,
      round,
      window_s,
      accepted: published,
      refused,
      delivered: env.raw.consumedAt.filter(inWindow).length,
      cpu: cpu!,
      pg: pgIn!,
      nats: natsIn!,
      load_1m,
      failures,
    };
  }
  if (floorKind) {
    await waitFor(LABEL[workload], async () => {
      const s = await floorStats(env.floor.url, 0, 0, floorKind);
      return s.consumed >= s.published;
    });
    const s = await floorStats(env.floor.url, t0, t1, floorKind);
    return {
      workload,
      round,
      window_s,
      accepted: s.published - floor0!.published,
      refused,
      delivered: s.consumed_in_window,
      cpu: cpu!,
      pg: pgIn!,
      nats: natsIn!,
      load_1m,
      failures,
    };
  }
  const schema = cluster.schema;
  await waitFor(LABEL[workload], async () => {
    const { rows } = await env.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM "${schema}".deliveries WHERE state = 'pending'`,
    );
    return Number(rows[0]!.n) === 0;
  });
  const { rows } = await env.db.query<{ message_id: string; updated_at: string }>(
    `SELECT message_id, updated_at FROM "${schema}".deliveries WHERE state = 'done' AND message_id = ANY($1)`,
    [[...submitted.keys()]],
  );
  let delivered = 0;
  const e2e: number[] = [];
  const afterAccept: number[] = [];
  const accept: number[] = [];
  for (const r of rows) {
    const done = Date.parse(r.updated_at);
    if (inWindow(done)) delivered++;
    const [start, accepted] = submitted.get(r.message_id)!;
    e2e.push(done - start);
    afterAccept.push(done - accepted);
    accept.push(accepted - start);
  }
  if (rows.length < submitted.size) failures.push(`${submitted.size - rows.length} accepted but not delivered`);
  return {
    workload,
    round,
    window_s,
    accepted: submitted.size,
    refused,
    back_pressure: backPressure,
    delivered,
    e2e_ms: e2e,
    after_accept_ms: afterAccept,
    accept_ms: accept,
    cpu: cpu!,
    pg: pgIn!,
    nats: natsIn!,
    load_1m,
    failures,
    ...(settled && { settle: settled }),
    ...(dirtyAtStart !== undefined && { dirty_kb: dirtyAtStart }),
  };
}

// ------------------------------------------------------------------------------ the suite

interface Totals {
  workload: Workload;
  reps: number;
  window_s: number;
  delivered: number;
  per_s: number;
  /** Each repetition's delivered/s. */
  rep_per_s: number[];
  accepted: number;
  refused: number;
  back_pressure: number;
  /** CPU ms per delivered message, by process group and in all. */
  cpu_ms: Record<string, number>;
  cpu_total_ms: number;
  e2e_ms?: Summary;
  after_accept_ms?: Summary;
  accept_ms?: Summary;
  load_1m: number[];
  failures: string[];
  /** pg_stat_* differences summed over the repetitions. */
  pg: PgActivity;
  nats: NatsCounts;
}

/**
 * Whether a process group's CPU counts in a workload's total: the system the workload measures, the
 * driver and the shared servers it uses, not the idle nodes of the other cluster or the idle floor
 * server (listed beside the total). nats-server and PostgreSQL also serve the idle ones' heartbeats
 * and sweeps, which cannot be told apart there and stay counted.
 */
function counts(workload: Workload, group: string): boolean {
  if (group.startsWith('caxton serve (1-node'))
    return workload === 'node1' || workload === 'node1-batch' || workload === 'paced1';
  if (group.startsWith('caxton serve (3-node')) return workload === 'nodes3' || workload === 'paced3';
  if (group === 'floor server') return workload === 'floor' || workload === 'rows' || workload === 'rows-batch';
  if (group.startsWith('PostgreSQL')) return workload !== 'raw';
  return true;
}

function totals(reps: Rep[], workload: Workload): Totals {
  const mine = reps.filter((r) => r.workload === workload);
  const window_s = mine.reduce((s, r) => s + r.window_s, 0);
  const delivered = mine.reduce((s, r) => s + r.delivered, 0);
  const cpu_s: Record<string, number> = {};
  for (const r of mine) for (const [g, x] of Object.entries(r.cpu.processes)) cpu_s[g] = (cpu_s[g] ?? 0) + x.cpu_s;
  const cpu_ms = Object.fromEntries(Object.entries(cpu_s).map(([g, s]) => [g, (s * 1000) / Math.max(1, delivered)]));
  const e2e = mine.flatMap((r) => r.e2e_ms ?? []);
  const after = mine.flatMap((r) => r.after_accept_ms ?? []);
  const accept = mine.flatMap((r) => r.accept_ms ?? []);
  return {
    workload,
    reps: mine.length,
    window_s,
    delivered,
    per_s: delivered / window_s,
    rep_per_s: mine.map((r) => r.delivered / r.window_s),
    accepted: mine.reduce((s, r) => s + r.accepted, 0),
    refused: mine.reduce((s, r) => s + r.refused, 0),
    back_pressure: mine.reduce((s, r) => s + (r.back_pressure ?? 0), 0),
    cpu_ms,
    cpu_total_ms: Object.entries(cpu_ms)
      .filter(([g]) => counts(workload, g))
      .reduce((a, [, ms]) => a + ms, 0),
    ...(e2e.length > 0 && { e2e_ms: summarize(e2e), after_accept_ms: summarize(after), accept_ms: summarize(accept) }),
    load_1m: mine.map((r) => r.load_1m),
    failures: mine.flatMap((r) => r.failures),
    pg: mine.reduce((a, r) => sumPg(a, r.pg), zeroPg()),
    nats: mine.reduce((a, r) => natsSum(a, r.nats), noNats()),
  };
}

async function setup(root: string): Promise<Env> {
  const own = await startOwnPostgres();
  const nats = await startNatsServer({ monitor: true }).catch(async (e: unknown) => {
    await own.stop();
    throw e;
  });
  const natsPid = pidWithArgs('nats-server', nats.storeDir);
  const cleanup: (() => Promise<void>)[] = [
    async () => {
      await nats.stop();
      rmSync(nats.storeDir, { recursive: true, force: true });
    },
    () => own.stop(),
  ];
  try {
    const nc = await connect({ servers: nats.url });
    cleanup.unshift(() => nc.close());
    // Sessions kept while idle, as the floor server's (floor-server.ts says why).
    const db = new pg.Pool({ connectionString: own.url, max: 2, idleTimeoutMillis: 0 });
    // An idle session ended by the server (its shutdown at the end) is not the benchmark's failure.
    db.on('error', (e) => note(`PostgreSQL session of the driver: ${e.message}`));
    cleanup.unshift(() => db.end());
    const raw = await startRaw(nc);
    const floor = await startFloor(nats.url, own.url);
    cleanup.unshift(async () => {
      const exited = new Promise((r) => floor.child.once('exit', r));
      floor.child.disconnect();
      await Promise.race([exited, sleep(5_000)]);
      floor.child.kill('SIGKILL');
      await closePool(floor.url);
    });
    const one = await startCluster(root, 1, nats.url, own.url);
    cleanup.unshift(() => Promise.all(one.nodes.map(stopNode)).then(() => {}));
    const three = await startCluster(root, 3, nats.url, own.url);
    cleanup.unshift(() => Promise.all(three.nodes.map(stopNode)).then(() => {}));
    const groups: Record<string, () => number[]> = {
      'caxton serve (1-node cluster)': () => processTree(one.nodes[0]!.pid),
      ...Object.fromEntries(
        three.nodes.map((n) => [`caxton serve (3-node cluster, ${n.name.slice(3)})`, () => processTree(n.pid)]),
      ),
      'floor server': () => processTree(floor.child.pid!),
      'nats-server': () => (natsPid === undefined ? [] : [natsPid]),
      ...Object.fromEntries(PG_PROCESS_KINDS.map((k) => [`PostgreSQL: ${k}`, () => own.pidsOf(k)])),
    };
    // What the started processes use with nothing sent (heartbeats, sweeps, pulls): what settling waits for.
    await sleep(2_000);
    const idleCores = await suiteCores(groups, 3_000);
    const idleDirtyKb = dirtyKb();
    note(`the suite's processes idle: ${fmt(idleCores * 100, 1)} % of a core; ${fmt(idleDirtyKb / 1024, 1)} MiB dirty`);
    const env: Env = {
      own,
      db,
      natsUrl: nats.url,
      natsMonitor: nats.monitorUrl!,
      nc,
      raw,
      floor,
      one,
      three,
      groups,
      idleCores,
      idleDirtyKb,
    };
    return Object.assign(env, { cleanup });
  } catch (e) {
    for (const c of cleanup) await c().catch(() => {});
    throw e;
  }
}

/** Sums the CPU ms per message of the processes a workload exercises and names the idle ones' share. */
function cpuParts(t: Totals): string {
  const parts = (counted: boolean) =>
    Object.entries(t.cpu_ms)
      .filter(([g]) => counts(t.workload, g) === counted)
      .map(([g, ms]) => `${g} ${fmt(ms, 3)}`)
      .join(', ');
  return `${parts(true)}; not counted (idle): ${parts(false)}`;
}

export const clusterSuite: Suite = {
  name: 'cluster',
  description:
    'durable messages through 1 and 3 caxton serve nodes beside raw JetStream and a component floor, alternated in equal-length repetitions, CPU per message of every process the suite started',
  async run(): Promise<SuiteReport> {
    if (!existsSync(CAXTON_MAIN)) throw new Error(`${CAXTON_MAIN} is missing: run npm run build first`);
    setPoolConnections(IN_FLIGHT + 8);
    const dir = tempDir('caxton-bench-cluster-');
    const env = (await setup(dir.path).catch((e: unknown) => {
      dir.remove();
      throw e;
    })) as Env & { cleanup: (() => Promise<void>)[] };
    const reps: Rep[] = [];
    try {
      // Warm-up: every workload once, short, not counted.
      for (const w of WORKLOADS) await rep(env, w, 0, Math.min(1, REP_S));
      for (let round = 1; round <= ROUNDS; round++) {
        const order = WORKLOADS.map((_, i) => WORKLOADS[(i + round - 1) % WORKLOADS.length]!);
        for (const w of order) {
          const r = await rep(env, w, round, REP_S);
          note(
            `round ${round}/${ROUNDS}, ${LABEL[w]}: ${fmt(r.delivered / r.window_s, 0)} msg/s delivered in ${fmt(r.window_s, 1)} s (load ${fmt(r.load_1m)})${r.e2e_ms && w.startsWith('paced') ? `, p99 ${fmt(summarize(r.e2e_ms).p99)} ms` : ''}${r.settle ? `, after ${fmt(r.settle.ms / 1000, 1)} s settling` : ''}${r.dirty_kb !== undefined ? ` (${fmt(r.dirty_kb / 1024, 1)} MiB dirty at the start)` : ''}`,
          );
          reps.push(r);
        }
      }
    } catch (e) {
      for (const n of [...env.one.nodes, ...env.three.nodes]) note(`node ${n.name} log:\n${logTail(n.log)}`);
      throw e;
    } finally {
      for (const c of env.cleanup) await c().catch((e: unknown) => note(`cleanup: ${(e as Error).message}`));
      dir.remove();
    }
    return report(reps, env);
  },
};

function report(reps: Rep[], env: Env): SuiteReport {
  const own = env.own;
  const t = Object.fromEntries(ALL_WORKLOADS.map((w) => [w, totals(reps, w)])) as Record<Workload, Totals>;
  const rate = (x: Totals) => `${fmt(x.per_s, 0)}/s (reps ${x.rep_per_s.map((v) => fmt(v, 0)).join(', ')})`;
  const r1 = t['node1-batch'].per_s / t.raw.per_s;
  const rf = t.node1.per_s / t.floor.per_s;
  const r3 = t.nodes3.per_s / t.node1.per_s;
  const cpu1 = t.node1.cpu_total_ms;
  const p99 = t.paced3.e2e_ms?.p99 ?? Number.NaN;
  const rows: Row[] = [
    {
      metric: `${LABEL.raw}, ${IN_FLIGHT} in flight`,
      value: rate(t.raw),
      baseline: '(baseline)',
    },
    {
      metric: `${LABEL.floor}, ${IN_FLIGHT} in flight`,
      value: rate(t.floor),
      baseline: `ratio to raw ${fmt(t.floor.per_s / t.raw.per_s, 2)}`,
    },
    {
      metric: `${LABEL.rows}, ${IN_FLIGHT} in flight`,
      value: rate(t.rows),
      baseline: `ratio to floor ${fmt(t.rows.per_s / t.floor.per_s, 2)}, to raw ${fmt(t.rows.per_s / t.raw.per_s, 2)}`,
    },
    {
      metric: `${LABEL['rows-batch']}, ${BATCH_IN_FLIGHT} POSTs in flight`,
      value: rate(t['rows-batch']),
      baseline: `ratio to raw ${fmt(t['rows-batch'].per_s / t.raw.per_s, 2)}`,
    },
    {
      metric: `${LABEL['node1-batch']}, ${BATCH_IN_FLIGHT} POSTs in flight: delivered/s`,
      value: rate(t['node1-batch']),
      baseline: `raw ${fmt(t.raw.per_s, 0)}/s; ratio ${fmt(r1, 2)} (to the rows floor's ${fmt(t['node1-batch'].per_s / t['rows-batch'].per_s, 2)})`,
      target: '≥ 0.5 × raw',
      verdict: r1 >= 0.5 ? 'pass' : 'fail',
    },
    {
      metric: `${LABEL.node1}, ${IN_FLIGHT} in flight: delivered/s`,
      value: rate(t.node1),
      baseline: `floor ${fmt(t.floor.per_s, 0)}/s; ratio ${fmt(rf, 2)} (to raw ${fmt(t.node1.per_s / t.raw.per_s, 2)}; to the rows floor ${fmt(t.node1.per_s / t.rows.per_s, 2)})`,
      target: '≥ 0.8 × floor',
      verdict: rf >= 0.8 ? 'pass' : 'fail',
    },
    {
      metric: `${LABEL.nodes3}, ${IN_FLIGHT} in flight: delivered/s`,
      value: rate(t.nodes3),
      baseline: `1 node ${fmt(t.node1.per_s, 0)}/s; ratio ${fmt(r3, 2)}`,
      target: '≥ 1 node',
      verdict: r3 >= 1 ? 'pass' : 'fail',
    },
    {
      metric: `CPU per delivered message, every process it runs on (${LABEL.node1}: the node, nats-server, PostgreSQL, this driver)`,
      value: `${fmt(cpu1, 3)} ms`,
      baseline: `floor ${fmt(t.floor.cpu_total_ms, 3)} ms; rows floor ${fmt(t.rows.cpu_total_ms, 3)} ms; raw ${fmt(t.raw.cpu_total_ms, 3)} ms`,
      target: '≤ 0.4 ms',
      verdict: cpu1 <= 0.4 ? 'pass' : 'fail',
    },
    {
      metric: `${LABEL.paced3}: submission → delivered (row done), p50 / p99 (${t.paced3.e2e_ms?.n ?? 0} messages)`,
      value: `${fmt(t.paced3.e2e_ms?.p50 ?? Number.NaN)} / ${fmt(p99)} ms`,
      baseline: `submission → accepted (202) ${fmt(t.paced3.accept_ms?.p50 ?? Number.NaN)} / ${fmt(t.paced3.accept_ms?.p99 ?? Number.NaN)} ms; accepted → delivered ${fmt(t.paced3.after_accept_ms?.p50 ?? Number.NaN)} / ${fmt(t.paced3.after_accept_ms?.p99 ?? Number.NaN)} ms`,
      target: 'p99 ≤ 15 ms',
      verdict: p99 <= 15 ? 'pass' : 'fail',
    },
  ];
  for (const w of WORKLOADS)
    rows.push({
      metric: `CPU ms per delivered message, ${LABEL[w]}`,
      value: `${fmt(t[w].cpu_total_ms, 3)} in all`,
      baseline: cpuParts(t[w]),
    });
  const loads = reps.map((r) => r.load_1m);
  const notes = [
    `${ROUNDS} rounds of ${fmt(REP_S, 1)} s repetitions, every workload once a round, the order rotated; a warm-up repetition of each first. Messages count as delivered inside a repetition's window; CPU is read from /proc for the processes this suite started (the nodes and what they started, nats-server, the PostgreSQL postmaster and its backends, the floor server, this driver) at the window's two ends. A workload's total counts the processes it runs on (its cluster or the floor server, nats-server, PostgreSQL, this driver), not the idle other cluster or floor server, which are listed apart; nats-server and PostgreSQL also serve the idle nodes' heartbeats and sweeps.`,
    `PostgreSQL: an instance of this suite's own (${own.copied ? "durability settings copied from the machine's default server" : "initdb's defaults"}: ${Object.entries(
      own.settings,
    )
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}); nats-server: its own, JetStream file store in a temporary directory.`,
    `1-minute load average at the start of the repetitions: ${fmt(Math.min(...loads))}–${fmt(Math.max(...loads))}.`,
  ];
  for (const w of WORKLOADS) {
    const x = t[w];
    const per = Math.max(1, x.delivered);
    notes.push(
      `${LABEL[w]}, the suite's PostgreSQL in the windows: ${fmt(x.pg.xacts / x.window_s, 0)} transactions/s, ${fmt(x.pg.xacts / per, 2)} per delivered message, ${fmt(x.pg.wal_bytes / per / 1024, 1)} KiB WAL per message; the nodes' conversation steps ${fmt(x.pg.steps / per, 2)} and their transactions ${fmt(x.pg.step_xacts / per, 2)} per delivered message (${fmt(x.pg.steps / Math.max(1, x.pg.step_xacts), 1)} steps per transaction); ${x.pg.autovacuums} autovacuum and ${x.pg.autoanalyzes} autoanalyze runs, ${x.pg.checkpoints} checkpoints.`,
    );
    const conns = Object.entries(x.nats.connections)
      .filter(([, c]) => c.in_msgs + c.out_msgs > 0)
      .map(([k, c]) => `${k} ${fmt(c.in_msgs / per, 2)} in / ${fmt(c.out_msgs / per, 2)} out`)
      .join(', ');
    notes.push(
      `${LABEL[w]}, the suite's nats-server in the windows, per delivered message: ${fmt(x.nats.server.in_msgs / per, 2)} messages in from clients, ${fmt(x.nats.server.out_msgs / per, 2)} out to them; by connection (client's view reversed: in = the client published): ${conns}.`,
    );
    if (x.refused > 0 || x.failures.length > 0)
      notes.push(`${LABEL[w]}: ${x.refused} refused; ${x.failures.slice(0, 3).join('; ')}`);
    if (x.back_pressure > 0)
      notes.push(
        `${LABEL[w]}: the node's backlog reached [messaging] max_queue; ${x.back_pressure} messages were refused with 429 queue_full and sent again after their Retry-After (${fmt(x.back_pressure / x.window_s, 0)}/s over the windows).`,
      );
    const settles = reps.filter((r) => r.workload === w && r.settle).map((r) => r.settle!);
    if (settles.length > 0)
      notes.push(
        `${LABEL[w]}: before each repetition the suite waited for its processes to use no more CPU than idle (${fmt(env.idleCores * 100, 1)} % of a core) and for the machine's dirty pages to be written back: ${settles.map((x) => `${fmt(x.ms / 1000, 1)} s${x.settled ? '' : ' (not settled)'}, ${fmt(x.dirty_kb / 1024, 1)} MiB dirty at the end`).join('; ')}, using ${settles.map((x) => fmt(x.cpu_s, 2)).join(', ')} CPU s meanwhile (unmeasured; BENCH_CLUSTER_SETTLE=0 measures right after the previous repetition).`,
      );
    if (x.e2e_ms && !w.startsWith('paced'))
      notes.push(
        `${LABEL[w]}: submission → delivered p50 / p99 ${fmt(x.e2e_ms.p50)} / ${fmt(x.e2e_ms.p99)} ms (closed loop: includes the queue that builds).`,
      );
  }
  return {
    rows,
    notes,
    raw: {
      rounds: ROUNDS,
      rep_seconds: REP_S,
      in_flight: IN_FLIGHT,
      batch: BATCH,
      batch_in_flight: BATCH_IN_FLIGHT,
      paced_rate: PACED_RATE,
      postgres: own.settings,
      totals: t,
      reps: reps.map(({ e2e_ms, after_accept_ms, accept_ms, ...r }) => ({
        ...r,
        ...(e2e_ms && { e2e_ms: summarize(e2e_ms) }),
        ...(after_accept_ms && { after_accept_ms: summarize(after_accept_ms) }),
        ...(accept_ms && { accept_ms: summarize(accept_ms) }),
      })),
    },
  };
}
