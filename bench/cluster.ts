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
 *  - grouped: POST /grouped the same way: the component floor publishing one stream message per
 *    committed group of rows, consumed and acked once (what a delivery unit of several messages
 *    would cost the parts);
 *  - rows, rows-batch: POST /rows to the same process, one message per POST (IN_FLIGHT at a time)
 *    or 100 (BATCH_IN_FLIGHT at a time): the rows floor (bench/lib/rows-floor.ts), which writes and
 *    reads exactly the rows a node does for each message, in its statements, and nothing else;
 *  - lean, lean-batch: POST /lean the same way: the lean rows floor (bench/lib/lean-rows-floor.ts),
 *    one row per (message, receiver), done-marked by one conditional UPDATE per group, no lock,
 *    pre-read or event row on the path: what that design would reach at best;
 *  - node1: one POST /api/v1/messages per message to the 1-node cluster, IN_FLIGHT at a time;
 *  - node1-batch: 100 messages per POST (a JSON array) to the same node, BATCH_IN_FLIGHT at a time;
 *  - nodes3: one POST per message round-robin over the 3-node cluster, IN_FLIGHT at a time;
 *  - paced3: 100 messages a second open loop over the 3 nodes, for the latency below saturation;
 *  - base1, base1-batch: node1 and node1-batch on a 1-node cluster of another build (its
 *    dist/cli/main.js in BENCH_CLUSTER_BASE_MAIN; only then): the same-run baseline of a change.
 *
 * Before a paced repetition the suite waits, unmeasured, until the processes it started use no
 * more CPU than they did idle at setup and the machine's dirty pages are written back (at most
 * SETTLE_MAX_MS): a paced window right after a saturating one otherwise measures what the
 * saturation left behind, not a cluster at 100 msg/s.
 *
 * A message counts as delivered in a repetition when it was consumed (raw, floor) or its
 * delivery row turned `done` (Caxton; one clock, one machine) inside the repetition's window; the
 * CPU of each process is read from /proc at the window's two ends. After the window nothing new
 * is sent and what was accepted is drained, unmeasured, before the next repetition starts.
 *
 * The messages are `agree`, a one-way act the receiving agent is not run for: the messaging
 * path alone. Needs `npm run build`, nats-server and PostgreSQL 15's binaries.
 */
import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { connect } from '@nats-io/transport-node';
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
import { PG_PROCESS_KINDS, startOwnPostgres, type OwnPostgres } from './lib/own-postgres.js';
import { cpuMeter, pidWithArgs, processTree, type CpuReport } from './lib/proc-cpu.js';
import { note } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt, summarize, type Summary } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const QUICK = process.env.BENCH_CLUSTER_QUICK === '1';
const ROUNDS = Number(process.env.BENCH_CLUSTER_ROUNDS ?? (QUICK ? 1 : 3));
const REP_S = Number(process.env.BENCH_CLUSTER_REP_SECONDS ?? (QUICK ? 1.5 : 5));
/**
 * A node's CPU per message falls until it has handled a few thousand messages (its code
 * optimised, its pools filled): each workload is warmed this long, unmeasured, and the 3-node
 * cluster three times as long, so that each of its nodes has handled as many as the one node.
 */
const WARMUP_S = Number(process.env.BENCH_CLUSTER_WARMUP_SECONDS ?? (QUICK ? 1 : 5));
const IN_FLIGHT = Number(process.env.BENCH_CLUSTER_IN_FLIGHT ?? 64);
const BATCH = 100;
const BATCH_IN_FLIGHT = Number(process.env.BENCH_CLUSTER_BATCH_IN_FLIGHT ?? 4);
const PACED_RATE = Number(process.env.BENCH_CLUSTER_PACED_RATE ?? 100);
/** What was accepted in a repetition must be delivered within this long after its window. */
const DRAIN_MS = 60_000;
const SETTLE_MAX_MS = 30_000;
const SETTLE_PROBE_MS = 1_000;

/** Where each paced message's times go, one JSON line each (submitted, accepted, done, node), when set. */
const PACED_TRACE = process.env.BENCH_CLUSTER_PACED_TRACE;
const BASE_MAIN = process.env.BENCH_CLUSTER_BASE_MAIN;

const ALL_WORKLOADS = [
  'raw',
  'floor',
  'grouped',
  'rows',
  'rows-batch',
  'lean',
  'lean-batch',
  'node1',
  'node1-batch',
  'nodes3',
  'paced3',
  'base1',
  'base1-batch',
] as const;
type Workload = (typeof ALL_WORKLOADS)[number];
const isBase = (w: Workload) => w.startsWith('base');
/** BENCH_CLUSTER_WORKLOADS (comma-separated): run only these, to look at one without the others' aftermath. */
const WORKLOADS: readonly Workload[] = ALL_WORKLOADS.filter(
  (w) =>
    (BASE_MAIN !== undefined || !isBase(w)) &&
    (!process.env.BENCH_CLUSTER_WORKLOADS || process.env.BENCH_CLUSTER_WORKLOADS.split(',').includes(w)),
);
const LABEL: Record<Workload, string> = {
  raw: 'raw JetStream publish (PubAck) + consume (ack)',
  floor: 'component floor (fastify echo + 100-row INSERTs + JetStream publish/consume)',
  grouped: 'grouped component floor (one JetStream message per committed group of at most 100 rows)',
  rows: "rows floor (the component floor writing a node's rows and statements), one POST per message",
  'rows-batch': `rows floor, ${BATCH} messages per POST`,
  lean: 'lean rows floor (one row per (message, receiver), one conditional UPDATE per group), one POST per message',
  'lean-batch': `lean rows floor, ${BATCH} messages per POST`,
  node1: '1 node, one POST per message',
  'node1-batch': `1 node, ${BATCH} messages per POST`,
  nodes3: '3 nodes, one POST per message round-robin',
  paced3: `3 nodes, paced ${PACED_RATE} msg/s`,
  base1: '1 node of the base build, one POST per message',
  'base1-batch': `1 node of the base build, ${BATCH} messages per POST`,
};

interface Rep {
  workload: Workload;
  window_s: number;
  /** Delivered (consumed, or delivery row done) inside the window. */
  delivered: number;
  refused: number;
  /** Caxton: messages refused with 429 queue_full and sent again after Retry-After (back-pressure, not failures). */
  back_pressure: number;
  /** Caxton, per message delivered: submission → delivered, accepted (202) → delivered, submission → accepted. */
  e2e_ms: number[];
  after_accept_ms: number[];
  accept_ms: number[];
  cpu: CpuReport;
  load_1m: number;
  failures: string[];
  /** Paced repetitions: how long the wait for the cluster to settle took. */
  settle_ms?: number;
}

interface Env {
  own: OwnPostgres;
  db: pg.Pool;
  raw: RawJetStream;
  floor: FloorProcess;
  one: { nodes: Node[]; schema: string };
  three: { nodes: Node[]; schema: string };
  /** The 1-node cluster of BENCH_CLUSTER_BASE_MAIN's build. */
  base?: { nodes: Node[]; schema: string };
  groups: Record<string, () => number[]>;
  /** Cores the processes the suite started used while idle, and the machine's dirty pages then (kB). */
  idleCores: number;
  idleDirtyKb: number;
  cleanup: (() => Promise<void>)[];
}

const body = (i: number) => ({ performative: 'agree', receiver: SINK, content: content(i) });

/** Runs `send` from `inFlight` loops until `until` (wall clock), or open loop at `rate` a second. */
async function drive(until: number, inFlight: number, send: (i: number) => Promise<void>, rate?: number) {
  let next = 0;
  if (rate !== undefined) {
    const t0 = wallNow();
    const sent: Promise<void>[] = [];
    for (let i = 0; t0 + (i * 1000) / rate < until; i++) {
      const wait = t0 + (i * 1000) / rate - wallNow();
      if (wait > 1) await sleep(wait);
      sent.push(send(i));
    }
    await Promise.all(sent);
    return;
  }
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (wallNow() < until) await send(next++);
    }),
  );
}

/** Waits until `done`, at most DRAIN_MS; then a note, and what was delivered counts. */
async function waitFor(what: string, done: () => Promise<boolean> | boolean): Promise<void> {
  const t0 = Date.now();
  while (!(await done())) {
    if (Date.now() - t0 > DRAIN_MS) return note(`${what}: not drained within ${DRAIN_MS / 1000} s`);
    await sleep(100);
  }
}

/** Cores the processes the suite started (not this driver) used over `ms`. */
async function suiteCores(groups: Env['groups'], ms: number): Promise<number> {
  const meter = await cpuMeter(groups);
  await sleep(ms);
  const r = await meter.stop();
  const cpu = Object.entries(r.processes)
    .filter(([name]) => !name.startsWith('bench driver'))
    .reduce((sum, [, x]) => sum + x.cpu_s, 0);
  return cpu / r.wall_s;
}

/** The machine's file pages waiting to be written back (kB, /proc/meminfo Dirty + Writeback); NaN where unknown. */
function dirtyKb(): number {
  try {
    const m = readFileSync('/proc/meminfo', 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(m)?.[1] ?? Number.NaN);
    return kb('Dirty') + kb('Writeback');
  } catch {
    return Number.NaN;
  }
}

/** Waits until the suite's processes use no more CPU than idle and the dirty pages are written back. */
async function settle(env: Env): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const cores = await suiteCores(env.groups, SETTLE_PROBE_MS);
    const quiet = cores <= Math.max(1.25 * env.idleCores, env.idleCores + 0.03);
    if ((quiet && !(dirtyKb() > Math.max(2 * env.idleDirtyKb, 16_384))) || Date.now() - t0 >= SETTLE_MAX_MS)
      return Date.now() - t0;
  }
}

async function rep(env: Env, workload: Workload, seconds: number): Promise<Rep> {
  const settle_ms = workload === 'paced3' ? await settle(env) : undefined;
  const r: Rep = {
    workload,
    window_s: seconds,
    delivered: 0,
    refused: 0,
    back_pressure: 0,
    e2e_ms: [],
    after_accept_ms: [],
    accept_ms: [],
    cpu: undefined as unknown as CpuReport,
    load_1m: loadavg()[0]!,
    failures: [],
    ...(settle_ms !== undefined && { settle_ms }),
  };
  const submitted = new Map<string, [number, number]>();
  const sentTo = new Map<string, number>();
  const cluster =
    workload === 'node1' || workload === 'node1-batch' ? env.one : isBase(workload) ? env.base! : env.three;
  const fail = (s: string) => {
    r.refused++;
    if (r.failures.length < 5) r.failures.push(s);
  };
  /**
   * A client that honours back-pressure: what the node refuses with 429 queue_full is sent again
   * after its Retry-After while the window lasts, so the loop runs at the rate the node delivers.
   */
  const post = async (i: number, perPost: number) => {
    const node = cluster.nodes[i % cluster.nodes.length]!;
    let items = Array.from({ length: perPost }, (_, j) => i * perPost + j);
    while (items.length > 0) {
      const payload = perPost === 1 ? body(items[0]!) : items.map(body);
      const t = wallNow();
      const res = await api(node, 'POST', '/api/v1/messages', JSON.stringify(payload)).catch((e: Error) => ({
        status: 0,
        json: e.message,
      }));
      const end = wallNow();
      type Answer = { status: number; id?: string; error?: { code?: string; details?: { retry_after?: number } } };
      const results: Answer[] | undefined =
        perPost === 1
          ? [{ ...(typeof res.json === 'object' ? (res.json as Omit<Answer, 'status'>) : {}), status: res.status }]
          : (res.json as { results?: Answer[] }).results;
      if (!results) return fail(`${res.status} ${JSON.stringify(res.json).slice(0, 300)}`);
      const again: number[] = [];
      let retryAfter = 1;
      results.forEach((x, k) => {
        if (x.status === 202 && x.id) {
          submitted.set(x.id, [t, end]);
          if (PACED_TRACE) sentTo.set(x.id, i % cluster.nodes.length);
        } else if (x.status === 429 && x.error?.code === 'queue_full') {
          again.push(items[k]!);
          retryAfter = Math.max(retryAfter, x.error.details?.retry_after ?? 1);
        } else fail(`${x.status} ${JSON.stringify(x).slice(0, 300)}`);
      });
      if (again.length === 0 || wallNow() + retryAfter * 1000 >= t1) return;
      r.back_pressure += again.length;
      await sleep(retryAfter * 1000);
      items = again;
    }
  };
  const floorPost = async (path: string, i: number, perPost = 1) => {
    const payload = perPost === 1 ? body(i) : Array.from({ length: perPost }, (_, j) => body(i * perPost + j));
    const res = await httpCall(env.floor.url, 'POST', path, { body: JSON.stringify(payload) }).catch((e: Error) => ({
      status: 0,
      json: e.message,
    }));
    if (res.status !== (perPost === 1 ? 202 : 207)) fail(`${res.status} ${JSON.stringify(res.json).slice(0, 300)}`);
  };
  const floorKind =
    workload === 'floor' || workload === 'grouped'
      ? workload
      : workload.startsWith('rows')
        ? 'rows'
        : workload.startsWith('lean')
          ? 'lean'
          : undefined;
  const raw0 = env.raw.published;
  const meter = await cpuMeter(env.groups);
  const t0 = wallNow();
  const t1 = t0 + seconds * 1000;
  // The window closes on time whatever is still in flight: CPU and deliveries are counted inside it.
  const closing = sleep(t1 - wallNow()).then(async () => void (r.cpu = await meter.stop()));
  const sends: Record<Workload, () => Promise<void>> = {
    raw: () => drive(t1, IN_FLIGHT, (i) => env.raw.publish(raw0 + i)),
    floor: () => drive(t1, IN_FLIGHT, (i) => floorPost('/messages', i)),
    grouped: () => drive(t1, IN_FLIGHT, (i) => floorPost('/grouped', i)),
    rows: () => drive(t1, IN_FLIGHT, (i) => floorPost('/rows', i)),
    'rows-batch': () => drive(t1, BATCH_IN_FLIGHT, (i) => floorPost('/rows', i, BATCH)),
    lean: () => drive(t1, IN_FLIGHT, (i) => floorPost('/lean', i)),
    'lean-batch': () => drive(t1, BATCH_IN_FLIGHT, (i) => floorPost('/lean', i, BATCH)),
    node1: () => drive(t1, IN_FLIGHT, (i) => post(i, 1)),
    'node1-batch': () => drive(t1, BATCH_IN_FLIGHT, (i) => post(i, BATCH)),
    nodes3: () => drive(t1, IN_FLIGHT, (i) => post(i, 1)),
    paced3: () => drive(t1, IN_FLIGHT, (i) => post(i, 1), PACED_RATE),
    base1: () => drive(t1, IN_FLIGHT, (i) => post(i, 1)),
    'base1-batch': () => drive(t1, BATCH_IN_FLIGHT, (i) => post(i, BATCH)),
  };
  await sends[workload]();
  await closing;
  const inWindow = (t: number) => t >= t0 && t <= t1;

  if (workload === 'raw') {
    const published = env.raw.published - raw0;
    const before = env.raw.consumedAt.filter((t) => t < t0).length;
    await waitFor('raw', () => env.raw.consumedAt.length - before >= published);
    r.delivered = env.raw.consumedAt.filter(inWindow).length;
    return r;
  }
  if (floorKind) {
    await waitFor(LABEL[workload], async () => {
      const s = await floorStats(env.floor.url, 0, 0, floorKind);
      return s.consumed >= s.published;
    });
    r.delivered = (await floorStats(env.floor.url, t0, t1, floorKind)).consumed_in_window;
    return r;
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
  for (const row of rows) {
    const done = Date.parse(row.updated_at);
    if (inWindow(done)) r.delivered++;
    const [start, accepted] = submitted.get(row.message_id)!;
    r.e2e_ms.push(done - start);
    r.after_accept_ms.push(done - accepted);
    r.accept_ms.push(accepted - start);
    if (PACED_TRACE && workload === 'paced3')
      appendFileSync(
        PACED_TRACE,
        `${JSON.stringify({ id: row.message_id, start, accepted, done, node: sentTo.get(row.message_id) })}\n`,
      );
  }
  if (rows.length < submitted.size) r.failures.push(`${submitted.size - rows.length} accepted but not delivered`);
  return r;
}

interface Totals {
  workload: Workload;
  window_s: number;
  delivered: number;
  per_s: number;
  /** Each repetition's delivered/s. */
  rep_per_s: number[];
  refused: number;
  back_pressure: number;
  /** CPU ms per delivered message, by process group, and the sum of the groups the workload runs on. */
  cpu_ms: Record<string, number>;
  /** Per delivered message, by process group: how often its threads were woken (processWakes). */
  wakes: Record<string, number>;
  cpu_total_ms: number;
  e2e_ms?: Summary;
  after_accept_ms?: Summary;
  accept_ms?: Summary;
  failures: string[];
}

/**
 * Whether a process group's CPU counts in a workload's total: the system the workload measures, the
 * driver and the shared servers it uses, not the idle nodes of the other cluster or the idle floor
 * server (listed beside the total). nats-server and PostgreSQL also serve the idle ones' heartbeats
 * and sweeps, which cannot be told apart there and stay counted.
 */
function counts(workload: Workload, group: string): boolean {
  if (group.startsWith('caxton serve (1-node')) return workload === 'node1' || workload === 'node1-batch';
  if (group.startsWith('caxton serve (3-node')) return workload === 'nodes3' || workload === 'paced3';
  if (group.startsWith('caxton serve (base build')) return isBase(workload);
  if (group === 'floor server')
    return workload === 'floor' || workload === 'grouped' || workload.startsWith('rows') || workload.startsWith('lean');
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
  const wakes: Record<string, number> = {};
  for (const r of mine)
    for (const [g, x] of Object.entries(r.cpu.processes)) wakes[g] = (wakes[g] ?? 0) + x.wakes / Math.max(1, delivered);
  const all = (k: 'e2e_ms' | 'after_accept_ms' | 'accept_ms') => mine.flatMap((r) => r[k]);
  return {
    workload,
    window_s,
    delivered,
    per_s: delivered / window_s,
    rep_per_s: mine.map((r) => r.delivered / r.window_s),
    refused: mine.reduce((s, r) => s + r.refused, 0),
    back_pressure: mine.reduce((s, r) => s + r.back_pressure, 0),
    cpu_ms,
    wakes,
    cpu_total_ms: Object.entries(cpu_ms)
      .filter(([g]) => counts(workload, g))
      .reduce((a, [, ms]) => a + ms, 0),
    ...(all('e2e_ms').length > 0 && {
      e2e_ms: summarize(all('e2e_ms')),
      after_accept_ms: summarize(all('after_accept_ms')),
      accept_ms: summarize(all('accept_ms')),
    }),
    failures: mine.flatMap((r) => r.failures),
  };
}

async function startCluster(
  root: string,
  size: number,
  natsUrl: string,
  pgUrl: string,
  main?: string,
): Promise<Env['one']> {
  const tag = main === undefined ? `c${size}` : 'base';
  const names = clusterNames(`${Date.now()}_${tag}`);
  const nodes: Node[] = [];
  // One after the other: the first creates the schema, the stream and the consumer.
  for (let i = 0; i < size; i++)
    nodes.push(
      await startNode(root, `${tag}-node-${String.fromCharCode(97 + i)}`, names, {
        natsUrl,
        pgUrl,
        ...(main !== undefined && { main }),
      }),
    );
  await deploySink(nodes);
  return { nodes, schema: names.schema };
}

async function setup(root: string): Promise<Env> {
  const own = await startOwnPostgres();
  const nats = await startNatsServer().catch(async (e: unknown) => {
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
    const base = BASE_MAIN === undefined ? undefined : await startCluster(root, 1, nats.url, own.url, BASE_MAIN);
    if (base) cleanup.unshift(() => Promise.all(base.nodes.map(stopNode)).then(() => {}));
    const groups: Env['groups'] = {
      'caxton serve (1-node cluster)': () => processTree(one.nodes[0]!.pid),
      ...(base && { 'caxton serve (base build, 1 node)': () => processTree(base.nodes[0]!.pid) }),
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
    return { own, db, raw, floor, one, three, ...(base && { base }), groups, idleCores, idleDirtyKb, cleanup };
  } catch (e) {
    for (const c of cleanup) await c().catch(() => {});
    throw e;
  }
}

export const clusterSuite: Suite = {
  name: 'cluster',
  description:
    'durable messages through 1 and 3 caxton serve nodes beside raw JetStream and a component floor, alternated in equal-length repetitions, CPU per message of every process the suite started',
  async run(): Promise<SuiteReport> {
    if (!existsSync(CAXTON_MAIN)) throw new Error(`${CAXTON_MAIN} is missing: run npm run build first`);
    setPoolConnections(IN_FLIGHT + 8);
    const dir = tempDir('caxton-bench-cluster-');
    const env = await setup(dir.path).catch((e: unknown) => {
      dir.remove();
      throw e;
    });
    const reps: Rep[] = [];
    try {
      // Warm-up: every workload once, not counted; the 3-node cluster as long as its three nodes need.
      for (const w of WORKLOADS) await rep(env, w, w === 'nodes3' ? 3 * WARMUP_S : w === 'paced3' ? 1 : WARMUP_S);
      for (let round = 1; round <= ROUNDS; round++) {
        for (const w of WORKLOADS.map((_, i) => WORKLOADS[(i + round - 1) % WORKLOADS.length]!)) {
          const r = await rep(env, w, REP_S);
          const p99 = w === 'paced3' ? `, p99 ${fmt(summarize(r.e2e_ms).p99)} ms` : '';
          note(`round ${round}/${ROUNDS}, ${LABEL[w]}: ${fmt(r.delivered / r.window_s, 0)} msg/s${p99}`);
          reps.push(r);
        }
      }
    } catch (e) {
      for (const n of [...env.one.nodes, ...env.three.nodes, ...(env.base?.nodes ?? [])])
        note(`node ${n.name} log:\n${logTail(n.log)}`);
      throw e;
    } finally {
      for (const c of env.cleanup) await c().catch((e: unknown) => note(`cleanup: ${(e as Error).message}`));
      dir.remove();
    }
    return report(reps, env.own);
  },
};

function report(reps: Rep[], own: OwnPostgres): SuiteReport {
  const t = Object.fromEntries(ALL_WORKLOADS.map((w) => [w, totals(reps, w)])) as Record<Workload, Totals>;
  const rate = (x: Totals) => `${fmt(x.per_s, 0)}/s (reps ${x.rep_per_s.map((v) => fmt(v, 0)).join(', ')})`;
  const r1 = t['node1-batch'].per_s / t.raw.per_s;
  const rf = t.node1.per_s / t.floor.per_s;
  const r3 = t.nodes3.per_s / t.node1.per_s;
  // A workload that did not run (BENCH_CLUSTER_WORKLOADS) has no CPU per message, not a passing zero.
  const cpu1 = t.node1.delivered > 0 ? t.node1.cpu_total_ms : Number.NaN;
  const cpu3 = t.nodes3.cpu_total_ms / cpu1;
  const paced = t.paced3;
  const p50p99 = (s?: Summary) => `${fmt(s?.p50 ?? Number.NaN)} / ${fmt(s?.p99 ?? Number.NaN)} ms`;
  const rows: Row[] = [
    { metric: `${LABEL.raw}, ${IN_FLIGHT} in flight`, value: rate(t.raw), baseline: '(baseline)' },
    {
      metric: `${LABEL.floor}, ${IN_FLIGHT} in flight`,
      value: rate(t.floor),
      baseline: `ratio to raw ${fmt(t.floor.per_s / t.raw.per_s, 2)}`,
    },
    {
      metric: `${LABEL.grouped}, one POST per message, ${IN_FLIGHT} in flight`,
      value: rate(t.grouped),
      baseline: `ratio to floor ${fmt(t.grouped.per_s / t.floor.per_s, 2)}, to raw ${fmt(t.grouped.per_s / t.raw.per_s, 2)}; CPU ${fmt(t.grouped.cpu_total_ms, 3)} ms per message (floor ${fmt(t.floor.cpu_total_ms, 3)})`,
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
      metric: `${LABEL.lean}, ${IN_FLIGHT} in flight`,
      value: rate(t.lean),
      baseline: `ratio to floor ${fmt(t.lean.per_s / t.floor.per_s, 2)}, to raw ${fmt(t.lean.per_s / t.raw.per_s, 2)}; CPU ${fmt(t.lean.cpu_total_ms, 3)} ms per message`,
    },
    {
      metric: `${LABEL['lean-batch']}, ${BATCH_IN_FLIGHT} POSTs in flight`,
      value: rate(t['lean-batch']),
      baseline: `ratio to raw ${fmt(t['lean-batch'].per_s / t.raw.per_s, 2)}; CPU ${fmt(t['lean-batch'].cpu_total_ms, 3)} ms per message`,
    },
    {
      metric: `${LABEL['node1-batch']}, ${BATCH_IN_FLIGHT} POSTs in flight: delivered/s`,
      value: rate(t['node1-batch']),
      baseline: `raw ${fmt(t.raw.per_s, 0)}/s; ratio ${fmt(r1, 2)} (to the rows floor's ${fmt(t['node1-batch'].per_s / t['rows-batch'].per_s, 2)}, the lean one's ${fmt(t['node1-batch'].per_s / t['lean-batch'].per_s, 2)})`,
      target: '≥ 0.5 × raw',
      verdict: r1 >= 0.5 ? 'pass' : 'fail',
    },
    {
      metric: `${LABEL.node1}, ${IN_FLIGHT} in flight: delivered/s`,
      value: rate(t.node1),
      baseline: `floor ${fmt(t.floor.per_s, 0)}/s; ratio ${fmt(rf, 2)} (to raw ${fmt(t.node1.per_s / t.raw.per_s, 2)}; to the rows floor ${fmt(t.node1.per_s / t.rows.per_s, 2)}, the lean one ${fmt(t.node1.per_s / t.lean.per_s, 2)})`,
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
      baseline: `floor ${fmt(t.floor.cpu_total_ms, 3)} ms; rows floor ${fmt(t.rows.cpu_total_ms, 3)} ms; lean rows floor ${fmt(t.lean.cpu_total_ms, 3)} ms; raw ${fmt(t.raw.cpu_total_ms, 3)} ms`,
      target: '≤ 0.3 ms',
      verdict: cpu1 <= 0.3 ? 'pass' : 'fail',
    },
    {
      metric: `CPU per delivered message, ${LABEL.nodes3}, to ${LABEL.node1} (every process each runs on)`,
      value: `${fmt(cpu3, 2)} ×`,
      baseline: `3 nodes ${fmt(t.nodes3.cpu_total_ms, 3)} ms; 1 node ${fmt(cpu1, 3)} ms`,
      target: '≤ 1.3 ×',
      verdict: cpu3 <= 1.3 ? 'pass' : 'fail',
    },
    {
      metric: `${LABEL.paced3}: submission → delivered (row done), p50 / p99 (${paced.e2e_ms?.n ?? 0} messages)`,
      value: p50p99(paced.e2e_ms),
      baseline: `submission → accepted (202) ${p50p99(paced.accept_ms)}; accepted → delivered ${p50p99(paced.after_accept_ms)}`,
      target: 'p99 ≤ 15 ms',
      verdict: (paced.e2e_ms?.p99 ?? Number.NaN) <= 15 ? 'pass' : 'fail',
    },
  ];
  if (BASE_MAIN)
    for (const [w, b] of [
      ['node1', 'base1'],
      ['node1-batch', 'base1-batch'],
    ] as const) {
      const node = (x: Totals) =>
        x.cpu_ms[isBase(x.workload) ? 'caxton serve (base build, 1 node)' : 'caxton serve (1-node cluster)'];
      rows.push({
        metric: `${LABEL[w]}, this build against the base build (${BASE_MAIN}): delivered/s; CPU ms per message, the node and in all`,
        value: `${rate(t[w])}; node ${fmt(node(t[w]) ?? Number.NaN, 3)}, all ${fmt(t[w].cpu_total_ms, 3)}`,
        baseline: `${rate(t[b])}; node ${fmt(node(t[b]) ?? Number.NaN, 3)}, all ${fmt(t[b].cpu_total_ms, 3)}`,
      });
    }
  for (const w of WORKLOADS) {
    const parts = (counted: boolean) =>
      Object.entries(t[w].cpu_ms)
        .filter(([g]) => counts(w, g) === counted)
        .map(([g, ms]) => `${g} ${fmt(ms, 3)} (${fmt(t[w].wakes[g] ?? Number.NaN, 1)} wakes)`)
        .join(', ');
    rows.push({
      metric: `CPU ms per delivered message (and wakes: times a process's threads were woken), ${LABEL[w]}`,
      value: `${fmt(t[w].cpu_total_ms, 3)} in all`,
      baseline: `${parts(true)}; not counted (idle): ${parts(false)}`,
    });
  }
  const loads = reps.map((r) => r.load_1m);
  const settles = reps.filter((r) => r.settle_ms !== undefined).map((r) => fmt(r.settle_ms! / 1000, 1));
  const notes = [
    `${ROUNDS} rounds of ${fmt(REP_S, 1)} s repetitions, every workload once a round, the order rotated; a warm-up repetition of each first (${fmt(WARMUP_S, 0)} s, the 3-node cluster's ${fmt(3 * WARMUP_S, 0)} s, the paced one's 1 s). CPU is read from /proc for the processes this suite started at the window's two ends; a workload's total counts the processes it runs on, not the idle other cluster or floor server.`,
    `PostgreSQL: an instance of this suite's own (${own.copied ? "durability settings copied from the machine's default server" : "initdb's defaults"}: ${Object.entries(
      own.settings,
    )
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}); nats-server: its own, JetStream file store in a temporary directory.`,
    `1-minute load average at the start of the repetitions: ${fmt(Math.min(...loads))}–${fmt(Math.max(...loads))}.`,
  ];
  if (settles.length > 0) notes.push(`Settling before the paced repetitions (unmeasured): ${settles.join(', ')} s.`);
  for (const w of WORKLOADS) {
    const x = t[w];
    if (x.refused > 0) notes.push(`${LABEL[w]}: ${x.refused} refused; ${x.failures.slice(0, 3).join('; ')}`);
    if (x.back_pressure > 0)
      notes.push(
        `${LABEL[w]}: ${x.back_pressure} messages refused with 429 queue_full and sent again after Retry-After.`,
      );
  }
  return {
    rows,
    notes,
    raw: {
      rounds: ROUNDS,
      rep_seconds: REP_S,
      in_flight: IN_FLIGHT,
      batch_in_flight: BATCH_IN_FLIGHT,
      paced_rate: PACED_RATE,
      postgres: own.settings,
      totals: t,
    },
  };
}
