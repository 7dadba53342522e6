/**
 * Durable messages through one and through three `caxton serve` processes in a
 * cluster: each node its own process (`node dist/cli/main.js serve`), all on one `nats-server -js`
 * this suite starts on its own port and store, and on the machine's PostgreSQL (a fresh schema per
 * node count, dropped afterwards).
 *
 * One API agent is deployed on the first node (the others learn it from the directory bucket);
 * messages are submitted with POST /api/v1/messages round-robin over the nodes, a bounded number in
 * flight, each a new one-way conversation to that agent. Measured:
 *
 *  - accepted: the HTTP round trip of each submission (202: committed in PostgreSQL and PubAck'd);
 *  - delivered: from each submission's start to its delivery row's `done` (the row's `updated_at`,
 *    written by whichever node delivered it; one clock, one machine), and messages per second as N
 *    over the time from the first submission to the last `done`;
 *  - the latency below saturation: the same messages open loop at half the delivered/s just
 *    measured (BENCH_CLUSTER_NODE_PACED_SHARE; or BENCH_CLUSTER_NODE_PACED_RATE msg/s), for BENCH_CLUSTER_NODE_PACED_SECONDS;
 *  - where the time goes: CPU of every process (/proc), the nodes' PostgreSQL sessions
 *    (pg_stat_activity), each node's deliveries held at once and their mean time (its /metrics and
 *    GET /api/v1/messaging/stats), the most deliveries pending at once.
 *
 * The messages are `agree`, a one-way act a configuration agent is not run for (performatives.ts
 * `executes`): accepted → fetched → row done → acked, the messaging path alone. `inform` does run
 * the agent (its model is called), so the same batch of informs to the same agent on a scripted
 * provider with no latency is measured beside it: the messaging path plus a trivial agent run.
 *
 * Baseline in the same run, before each node count: raw JetStream with as many client processes
 * as nodes, the same payloads (the delivery as a node puts it on the wire) and the same number in
 * flight: publish awaiting each PubAck, consume and ack from one shared durable pull consumer; for
 * the latency batch, the same clients open loop at the same rate.
 *
 * Needs `npm run build` (dist/cli/main.js), nats-server and PostgreSQL 15's binaries: the suite
 * starts a PostgreSQL instance of its own (bench/lib/own-postgres.ts), so the CPU read from /proc
 * for each batch is that of the processes involved and of no other session on the machine.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { startNatsServer, type NatsServer } from '../test/helpers/nats-server.js';
import {
  api,
  CAXTON_MAIN as MAIN,
  clusterNames,
  content,
  deploySink,
  logTail,
  setPoolConnections,
  sleep,
  SINK,
  startNode,
  stopNode,
  wallNow,
  type ClusterNames,
  type Node,
} from './lib/caxton-nodes.js';
import { startOwnPostgres, type OwnPostgres } from './lib/own-postgres.js';
import { cpuMeter, pidWithArgs, type CpuReport } from './lib/proc-cpu.js';
import { note, progress } from './lib/progress.js';
import type { FromWorker, RawRoundResult, RawWorkerConfig, ToWorker } from './lib/raw-jetstream-worker.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt, summarize, type Summary } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';
import { addWorkQueue } from './lib/work-queue.js';
import { rawPayload } from './lib/cluster-floors.js';

const N = Number(process.env.BENCH_CLUSTER_NODE_MESSAGES ?? 2_000);
const IN_FLIGHT = Number(process.env.BENCH_CLUSTER_NODE_IN_FLIGHT ?? 64);
const WARMUP = Number(process.env.BENCH_CLUSTER_NODE_WARMUP ?? 300);
const NODE_COUNTS = (process.env.BENCH_CLUSTER_NODE_COUNTS ?? '1,3').split(',').map(Number);
/** The latency batch's rate, as a share of the delivered/s just measured, and its length (seconds). */
const PACED_SHARE = Number(process.env.BENCH_CLUSTER_NODE_PACED_SHARE ?? 0.5);
/** A fixed rate (msg/s) for the paced batch instead of a share: two builds compared at the same load. */
const PACED_RATE = process.env.BENCH_CLUSTER_NODE_PACED_RATE
  ? Number(process.env.BENCH_CLUSTER_NODE_PACED_RATE)
  : undefined;
const PACED_SECONDS = Number(process.env.BENCH_CLUSTER_NODE_PACED_SECONDS ?? 10);
/** Also measure informs (a scripted agent run per message); 0 skips them. */
const INFORMS = process.env.BENCH_CLUSTER_NODE_INFORMS !== '0';
/** `[cluster.state] pool_size` of each node; unset: the default (10). */
const POOL_SIZE = process.env.BENCH_CLUSTER_NODE_POOL_SIZE;
/** `[cluster.state] step_transactions` of each node; unset: the default (2). */
const STEP_TX = process.env.BENCH_CLUSTER_NODE_STEP_TRANSACTIONS;
const WORKER = fileURLToPath(new URL('./lib/raw-jetstream-worker.ts', import.meta.url));
/** A batch that makes no progress for this long is given up (and reported). */
const STALL_MS = 30_000;

/** The figures of a node's /metrics this suite reads: deliveries (count, seconds) and POST /api/v1/messages (count, seconds). */
interface NodeCounters {
  deliveries: number;
  delivery_s: number;
  posts: number;
  post_s: number;
  /** Conversation steps and the PostgreSQL transactions that ran them (group commit, ADR 0046). */
  steps: number;
  step_tx: number;
}

async function counters(n: Node): Promise<NodeCounters> {
  const text = await (await fetch(n.metricsUrl)).text();
  const sum = (re: RegExp) => {
    let v = 0;
    for (const line of text.split('\n')) {
      const m = re.exec(line);
      if (m) v += Number(m[1]);
    }
    return v;
  };
  return {
    deliveries: sum(/^caxton_message_processing_duration_seconds_count\{[^}]*\} (\S+)$/),
    delivery_s: sum(/^caxton_message_processing_duration_seconds_sum\{[^}]*\} (\S+)$/),
    posts: sum(/^caxton_http_request_duration_seconds_count\{method="POST",route="\/api\/v1\/messages"\} (\S+)$/),
    post_s: sum(/^caxton_http_request_duration_seconds_sum\{method="POST",route="\/api\/v1\/messages"\} (\S+)$/),
    steps: sum(/^caxton_cluster_steps_total (\S+)$/),
    step_tx: sum(/^caxton_cluster_step_transactions_total (\S+)$/),
  };
}

/** Deliveries a node holds in its dispatcher right now, waiting or running (`queued` of GET /api/v1/messaging/stats counts both). */
async function held(n: Node): Promise<number> {
  const r = await api(n, 'GET', '/api/v1/messaging/stats');
  return (r.json as { queued?: number }).queued ?? 0;
}

// ------------------------------------------------------------------------------ one batch through the nodes

interface NodeBatch {
  performative: 'agree' | 'inform';
  n: number;
  accepted: number;
  delivered: number;
  /** Conversations failed or expired instead of completed (should be 0). */
  not_completed: number;
  /** HTTP round trip of each accepted submission. */
  accept_ms: Summary;
  accepted_per_s: number;
  /** Submission start to the delivery row's done. */
  e2e_ms: Summary;
  /** The 202 to the delivery row's done: how long an accepted message waited and was delivered. */
  after_accept_ms: Summary;
  delivered_per_s: number;
  duration_s: number;
  /** Most deliveries pending at once (accepted, not yet done), as polled. */
  peak_pending: number;
  /** Inside each node, from its /metrics and stats: deliveries it ran, their mean time (fetched to acked), its POST handling time, deliveries held at once (mean, max of the polls). */
  inside: {
    node: string;
    deliveries: number;
    delivery_mean_ms: number;
    post_mean_ms: number;
    held_mean: number;
    held_max: number;
    steps_per_tx: number;
  }[];
  /** What the nodes' PostgreSQL sessions were doing, sampled with each poll (shares of all samples). */
  pg_sessions: Record<string, number>;
  failures: { status: number; body: string }[];
  cpu: CpuReport;
  load_1m: { before: number; after: number };
}

interface Poll {
  completed: number;
  ended: number;
  pending: number;
}

async function poll(db: pg.Pool, schema: string): Promise<Poll> {
  const { rows } = await db.query<{ completed: string; ended: string; pending: string }>(
    `SELECT count(*) FILTER (WHERE state = 'completed') AS completed, count(*) FILTER (WHERE state IN ('failed', 'expired')) AS ended,
            (SELECT count(*) FROM "${schema}".deliveries WHERE state = 'pending') AS pending
       FROM "${schema}".conversations`,
  );
  return { completed: Number(rows[0]!.completed), ended: Number(rows[0]!.ended), pending: Number(rows[0]!.pending) };
}

/** The state of each PostgreSQL session the nodes hold (application_name caxton-NODE). */
async function pgSessions(db: pg.Pool): Promise<string[]> {
  const { rows } = await db.query<{ s: string }>(
    `SELECT CASE
              WHEN state = 'idle' THEN 'idle in the pool'
              WHEN state = 'idle in transaction' THEN 'in a transaction, waiting for the node'
              WHEN wait_event_type = 'Lock' THEN 'waiting for a lock (' || wait_event || ')'
              WHEN wait_event IN ('WALSync', 'WALWrite', 'WALInsert') THEN 'writing or syncing WAL'
              WHEN wait_event_type IS NULL THEN 'running a statement'
              ELSE 'running a statement, waiting on ' || wait_event_type
            END AS s
       FROM pg_stat_activity WHERE application_name LIKE 'caxton-node-%'`,
  );
  return rows.map((r) => r.s);
}

async function runBatch(
  nodes: Node[],
  db: pg.Pool,
  schema: string,
  performative: 'agree' | 'inform',
  n: number,
  label: string | undefined,
  cpuGroups: Record<string, () => number[] | Promise<number[]>>,
  /** Open loop: submission i starts at i / rate seconds, however many are in flight; absent: IN_FLIGHT at a time, as fast as they are answered. */
  rate?: number,
): Promise<NodeBatch> {
  const before = await poll(db, schema);
  const counters0 = await Promise.all(nodes.map(counters));
  const heldSamples = nodes.map(() => [] as number[]);
  /** Message id → [submission start, 202 received] (wall clock, ms). */
  const submitted = new Map<string, [number, number]>();
  const acceptMs: number[] = [];
  const failures: NodeBatch['failures'] = [];
  let failed = 0;
  let submitting = true;
  let acceptEnd = 0;
  const bar = label === undefined ? undefined : progress(label, n);
  const load0 = loadavg()[0]!;
  const meter = await cpuMeter(cpuGroups);
  const t0 = wallNow();
  const one = async (i: number) => {
    const node = nodes[i % nodes.length]!;
    const t = wallNow();
    const r = await api(
      node,
      'POST',
      '/api/v1/messages',
      JSON.stringify({ performative, receiver: SINK, content: content(i) }),
    );
    const end = wallNow();
    if (r.status === 202) {
      submitted.set((r.json as { id: string }).id, [t, end]);
      acceptMs.push(end - t);
    } else {
      failed++;
      if (failures.length < 20) failures.push({ status: r.status, body: JSON.stringify(r.json).slice(0, 500) });
    }
  };
  let next = 0;
  const paced = async (r: number) => {
    const sent: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const wait = t0 + (i * 1000) / r - wallNow();
      if (wait > 1) await sleep(wait);
      sent.push(one(i));
    }
    await Promise.all(sent);
  };
  const submit = (
    rate !== undefined
      ? paced(rate)
      : Promise.all(
          Array.from({ length: Math.min(IN_FLIGHT, n) }, async () => {
            for (let i = next++; i < n; i = next++) await one(i);
          }),
        )
  ).finally(() => {
    submitting = false;
    acceptEnd = wallNow();
  });
  // Completion: every accepted message's conversation completed (a one-way conversation completes once delivered).
  let last = { completed: 0, ended: 0 };
  let lastChange = Date.now();
  let peakPending = 0;
  const sessions = new Map<string, number>();
  let samples = 0;
  for (;;) {
    await sleep(100);
    const [c, ss, hs] = await Promise.all([poll(db, schema), pgSessions(db), Promise.all(nodes.map(held))]);
    hs.forEach((h, i) => heldSamples[i]!.push(h));
    for (const x of ss) sessions.set(x, (sessions.get(x) ?? 0) + 1);
    samples += ss.length;
    peakPending = Math.max(peakPending, c.pending);
    const now = { completed: c.completed - before.completed, ended: c.ended - before.ended };
    if (now.completed !== last.completed || now.ended !== last.ended) lastChange = Date.now();
    last = now;
    bar?.update(now.completed);
    if (!submitting && now.completed + now.ended >= n - failed) break;
    if (Date.now() - lastChange > STALL_MS) {
      note(
        `${label ?? 'warm-up'}: no progress for ${STALL_MS / 1000} s (${now.completed} completed, ${now.ended} failed or expired of ${n - failed} accepted); giving up on the rest`,
      );
      break;
    }
  }
  await submit;
  const cpu = await meter.stop();
  bar?.end();
  const counters1 = await Promise.all(nodes.map(counters));
  const inside = nodes.map((node, i) => {
    const [a, b] = [counters0[i]!, counters1[i]!];
    const hs = heldSamples[i]!;
    return {
      node: node.name,
      deliveries: b.deliveries - a.deliveries,
      delivery_mean_ms: ((b.delivery_s - a.delivery_s) / Math.max(1, b.deliveries - a.deliveries)) * 1000,
      post_mean_ms: ((b.post_s - a.post_s) / Math.max(1, b.posts - a.posts)) * 1000,
      steps_per_tx: (b.steps - a.steps) / Math.max(1, b.step_tx - a.step_tx),
      held_mean: hs.reduce((x, y) => x + y, 0) / Math.max(1, hs.length),
      held_max: Math.max(0, ...hs),
    };
  });
  const { rows } = await db.query<{ message_id: string; updated_at: string }>(
    `SELECT message_id, updated_at FROM "${schema}".deliveries WHERE state = 'done' AND message_id = ANY($1)`,
    [[...submitted.keys()]],
  );
  const e2e: number[] = [];
  const afterAccept: number[] = [];
  let end = t0;
  for (const r of rows) {
    const done = Date.parse(r.updated_at);
    const [start, accepted] = submitted.get(r.message_id)!;
    e2e.push(done - start);
    afterAccept.push(done - accepted);
    end = Math.max(end, done);
  }
  return {
    performative,
    n,
    accepted: submitted.size,
    delivered: rows.length,
    not_completed: last.ended,
    accept_ms: summarize(acceptMs),
    accepted_per_s: (submitted.size / (acceptEnd - t0)) * 1000,
    e2e_ms: summarize(e2e),
    after_accept_ms: summarize(afterAccept),
    delivered_per_s: (rows.length / (end - t0)) * 1000,
    duration_s: (end - t0) / 1000,
    peak_pending: peakPending,
    inside,
    pg_sessions: Object.fromEntries(
      [...sessions]
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => [k, Math.round((v / Math.max(1, samples)) * 1000) / 10]),
    ),
    failures,
    cpu,
    load_1m: { before: load0, after: loadavg()[0]! },
  };
}

// ------------------------------------------------------------------------------ the raw JetStream baseline

interface RawBatch {
  workers: number;
  n: number;
  consumed: number;
  puback_ms: Summary;
  e2e_ms: Summary;
  per_s: number;
  duration_s: number;
  cpu: CpuReport;
  load_1m: { before: number; after: number };
}

interface RawClients {
  /** One round: `n` payloads published (IN_FLIGHT at a time, or open loop at `rate` a second) and consumed. */
  round(name: string, n: number, label: string | undefined, rate?: number): Promise<RawBatch>;
  close(): Promise<void>;
}

/** `workers` client processes on a work-queue stream and durable consumer of their own, warmed up. */
async function startRawClients(nats: NatsServer, workers: number, natsPid: number | undefined): Promise<RawClients> {
  const nc = await connect({ servers: nats.url });
  const stream = `BENCH_RAW_${workers}`;
  const subject = `bench.raw${workers}`;
  const jsm = await addWorkQueue(nc, stream, subject, 'raw');
  const children: ChildProcess[] = [];
  const close = async () => {
    for (const c of children) if (c.connected) c.send({ type: 'exit' } satisfies ToWorker);
    await Promise.all(
      children.map((c) =>
        c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)),
      ),
    );
    await jsm.streams.delete(stream).catch(() => {});
    await nc.close();
  };
  try {
    const inbox: FromWorker[][] = [];
    for (let w = 0; w < workers; w++) {
      const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      inbox.push([]);
      child.on('message', (m: FromWorker) => inbox[w]!.push(m));
      const config: RawWorkerConfig = {
        url: nats.url,
        stream,
        consumer: 'raw',
        subject,
        index: w,
        workers,
        inFlight: Math.ceil(IN_FLIGHT / workers),
      };
      child.send({ type: 'config', config } satisfies ToWorker);
    }
    const take = async (w: number, type: FromWorker['type']): Promise<FromWorker> => {
      const t0 = Date.now();
      for (;;) {
        const box = inbox[w]!;
        const err = box.find((m) => m.type === 'error');
        if (err) throw new Error(`raw JetStream worker ${w}: ${(err as { message: string }).message}`);
        const i = box.findIndex((m) => m.type === type);
        if (i >= 0) return box.splice(i, 1)[0]!;
        if (Date.now() - t0 > 60_000) throw new Error(`raw JetStream worker ${w} sent no ${type} within 60 s`);
        await sleep(10);
      }
    };
    for (let w = 0; w < workers; w++) await take(w, 'ready');
    const consumed = () =>
      children.reduce(
        (sum, _, w) => sum + inbox[w]!.reduce((s, m) => (m.type === 'progress' ? Math.max(s, m.consumed) : s), 0),
        0,
      );
    const round = async (name: string, n: number, label: string | undefined, rate?: number): Promise<RawBatch> => {
      const payloads = Array.from({ length: n }, (_, i) => rawPayload(i, 0));
      const bar = label === undefined ? undefined : progress(label, n);
      const load0 = loadavg()[0]!;
      const meter = await cpuMeter({
        ...(natsPid !== undefined && { 'nats-server': () => [natsPid] }),
        [`raw client processes (${workers})`]: () => children.map((c) => c.pid!),
      });
      for (const c of children)
        c.send({ type: 'go', name, payloads, ...(rate !== undefined && { rate }) } satisfies ToWorker);
      const t0 = Date.now();
      for (;;) {
        await sleep(50);
        const done = consumed();
        bar?.update(Math.min(done, n));
        if (done >= n) break;
        if (Date.now() - t0 > 120_000) throw new Error(`raw JetStream: ${done} of ${n} consumed after 120 s`);
      }
      for (const c of children) c.send({ type: 'stop' } satisfies ToWorker);
      const results: RawRoundResult[] = [];
      for (let w = 0; w < workers; w++) results.push((await take(w, 'result')) as RawRoundResult & { type: 'result' });
      const cpu = await meter.stop();
      bar?.end();
      for (const box of inbox) box.length = 0;
      const start = Math.min(...results.map((r) => r.first_publish_at));
      const end = Math.max(...results.map((r) => r.last_consumed_at));
      return {
        workers,
        n,
        consumed: results.reduce((s, r) => s + r.consumed, 0),
        puback_ms: summarize(results.flatMap((r) => r.puback_ms)),
        e2e_ms: summarize(results.flatMap((r) => r.e2e_ms)),
        per_s: (n / (end - start)) * 1000,
        duration_s: (end - start) / 1000,
        cpu,
        load_1m: { before: load0, after: loadavg()[0]! },
      };
    };
    await round('warmup', WARMUP, undefined);
    return { round, close };
  } catch (e) {
    await close();
    throw e;
  }
}

// ------------------------------------------------------------------------------ one node count

interface NodeCountResult {
  nodes: number;
  raw: RawBatch;
  agree: NodeBatch;
  /** At PACED_SHARE of the agree batch's delivered/s, open loop: latency below saturation. */
  paced: { rate: number; nodes: NodeBatch; raw: RawBatch };
  inform?: NodeBatch;
  startup_ms: number[];
}

async function measureNodeCount(
  k: number,
  nats: NatsServer,
  natsPid: number | undefined,
  db: pg.Pool,
  own: OwnPostgres,
): Promise<NodeCountResult> {
  const clients = await startRawClients(nats, k, natsPid);
  const nodesLabel = `${k} node${k === 1 ? '' : 's'}`;
  const rawLabel = `raw JetStream, ${k} client process${k === 1 ? '' : 'es'}`;
  let raw: RawBatch;
  try {
    raw = await clients.round('measured', N, rawLabel);
  } catch (e) {
    await clients.close();
    throw e;
  }
  const stamp = `${Date.now()}_${k}`;
  const names: ClusterNames = clusterNames(stamp);
  const dir = tempDir('caxton-bench-nodes-');
  const nodes: Node[] = [];
  try {
    const startup_ms: number[] = [];
    // One after the other: the first creates the schema, the stream and the consumer.
    for (let i = 0; i < k; i++) {
      const t0 = Date.now();
      nodes.push(
        await startNode(dir.path, `node-${String.fromCharCode(97 + i)}`, names, {
          natsUrl: nats.url,
          pgUrl: own.url,
          ...(POOL_SIZE && { poolSize: Number(POOL_SIZE) }),
          ...(STEP_TX && { stepTransactions: Number(STEP_TX) }),
          ...(process.env.BENCH_CLUSTER_NODE_PROFILE && { profileDir: process.env.BENCH_CLUSTER_NODE_PROFILE }),
        }),
      );
      startup_ms.push(Date.now() - t0);
    }
    await deploySink(nodes);
    const groups: Record<string, () => number[] | Promise<number[]>> = Object.fromEntries(
      nodes.map((n) => [`caxton serve ${n.name}`, () => [n.pid]]),
    );
    if (natsPid !== undefined) groups['nats-server'] = () => [natsPid];
    // The suite's own PostgreSQL instance: its postmaster and every backend and helper process it started.
    groups["PostgreSQL (this suite's instance)"] = () => own.pids();
    groups["of which the nodes' backends"] = async () =>
      (
        await db.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'caxton-node-%'`)
      ).rows.map((r) => r.pid);
    await runBatch(nodes, db, names.schema, 'agree', WARMUP, undefined, groups);
    const agree = await runBatch(
      nodes,
      db,
      names.schema,
      'agree',
      N,
      `${nodesLabel}: agree (no agent run), completed`,
      groups,
    );
    const rate = PACED_RATE ?? Math.max(1, Math.round(agree.delivered_per_s * PACED_SHARE));
    const count = Math.min(N, Math.max(100, Math.round(rate * PACED_SECONDS)));
    const pacedNodes = await runBatch(
      nodes,
      db,
      names.schema,
      'agree',
      count,
      `${nodesLabel}: agree at ${rate}/s, completed`,
      groups,
      rate,
    );
    const pacedRaw = await clients.round('paced', count, `${rawLabel} at ${rate}/s`, rate);
    const inform = INFORMS
      ? await runBatch(
          nodes,
          db,
          names.schema,
          'inform',
          N,
          `${nodesLabel}: inform (scripted agent run), completed`,
          groups,
        )
      : undefined;
    return {
      nodes: k,
      raw,
      agree,
      paced: { rate, nodes: pacedNodes, raw: pacedRaw },
      ...(inform && { inform }),
      startup_ms,
    };
  } catch (e) {
    for (const n of nodes) note(`node ${n.name} log:\n${logTail(n.log)}`);
    throw e;
  } finally {
    await clients.close();
    await Promise.all(nodes.map(stopNode));
    dir.remove();
    await db.query(`DROP SCHEMA IF EXISTS "${names.schema}" CASCADE`).catch(() => {});
  }
}

// ------------------------------------------------------------------------------ the report

/** Each process's share of one core, and what the rest of the machine (other sessions on this shared host) used meanwhile. */
function cpuLine(c: CpuReport): string {
  const ours = Object.entries(c.processes)
    .filter(([name]) => !name.startsWith('of which'))
    .reduce((sum, [, s]) => sum + s.cpu_s, 0);
  const others = Math.max(0, c.machine.busy_s - ours);
  const parts = Object.entries(c.processes).map(([name, s]) => `${name} ${fmt(s.pct_of_core, 0)} %`);
  return `${parts.join(', ')}, everything else on the machine ${fmt((others / c.wall_s) * 100, 0)} %; machine ${fmt(c.machine.pct_of_all_cores, 0)} % busy (${c.machine.cores} cores)`;
}

/**
 * CPU milliseconds per message of each process in `c` (the `of which` parts left out of the
 * total), and the rate the machine's cores could carry at that cost if nothing else ran: why a
 * batch is as fast as it is, in the units a design can change.
 */
function cpuPerMessage(
  c: CpuReport,
  messages: number,
): { total_ms: number; outside_ms: number; parts: string; ceiling_per_s: number } {
  const per = (cpu_s: number) => (cpu_s * 1000) / Math.max(1, messages);
  const own = Object.entries(c.processes).filter(([name]) => !name.startsWith('of which'));
  const total_ms = per(own.reduce((sum, [, x]) => sum + x.cpu_s, 0));
  // Everything but the caxton serve processes: PostgreSQL, nats-server, this driver.
  const outside_ms = per(
    own.filter(([name]) => !name.startsWith('caxton serve')).reduce((sum, [, x]) => sum + x.cpu_s, 0),
  );
  const parts = own.map(([name, x]) => `${name} ${fmt(per(x.cpu_s), 2)}`).join(', ');
  return { total_ms, outside_ms, parts, ceiling_per_s: (c.machine.cores * 1000) / total_ms };
}

export interface NodesReport {
  rows: Row[];
  notes: string[];
  raw: unknown;
}

/** Everything above for each node count (1 and 3 by default), on a nats-server of its own. */
export async function measureNodes(): Promise<NodesReport> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
  setPoolConnections(IN_FLIGHT + 8);
  const nats = await startNatsServer();
  const natsPid = pidWithArgs('nats-server', nats.storeDir);
  const own = await startOwnPostgres();
  const db = new pg.Pool({ connectionString: own.url, max: 2 });
  // An idle session ended by the server (its shutdown at the end) is not the benchmark's failure.
  db.on('error', (e) => note(`PostgreSQL session of the driver: ${e.message}`));
  const results: NodeCountResult[] = [];
  try {
    for (const k of NODE_COUNTS) results.push(await measureNodeCount(k, nats, natsPid, db, own));
  } finally {
    await db.end();
    await own.stop();
    await nats.stop();
    rmSync(nats.storeDir, { recursive: true, force: true });
  }
  const rows: Row[] = [];
  const notes: string[] = [];
  for (const r of results) {
    const nodes = `${r.nodes} node${r.nodes === 1 ? '' : 's'}`;
    const ratio = r.agree.delivered_per_s / r.raw.per_s;
    const three = r.nodes === 3;
    rows.push(
      {
        metric: `${nodes} (separate caxton serve processes): durable messages delivered/s, ${r.agree.n} one-way agree, ${IN_FLIGHT} in flight`,
        value: `${fmt(r.agree.delivered_per_s, 0)}/s (${r.agree.delivered}/${r.agree.n} in ${fmt(r.agree.duration_s)} s)`,
        baseline: `raw JetStream publish+consume, ${r.raw.workers} client process${r.raw.workers === 1 ? '' : 'es'}: ${fmt(r.raw.per_s, 0)}/s`,
        target: three ? '≥ 0.5 of raw; design: 50,000/s' : '≥ 0.5 of raw',
        verdict: ratio >= 0.5 && (!three || r.agree.delivered_per_s >= 50_000) ? 'pass' : 'fail',
      },
      {
        metric: `${nodes}: ratio to raw JetStream`,
        value: fmt(ratio, 2),
        baseline: '1.00',
        target: '≥ 0.5',
        verdict: ratio >= 0.5 ? 'pass' : 'fail',
      },
      {
        metric: `${nodes}: submission to delivered (row done) in that batch (a backlog builds), p50 / p99`,
        value: `${fmt(r.agree.e2e_ms.p50)} / ${fmt(r.agree.e2e_ms.p99)} ms`,
        baseline: `raw publish to consumed ${fmt(r.raw.e2e_ms.p50)} / ${fmt(r.raw.e2e_ms.p99)} ms`,
        ...(three && {
          target: 'p99 ≤ 15 ms',
          verdict: r.agree.e2e_ms.p99 <= 15 ? ('pass' as const) : ('fail' as const),
        }),
      },
      {
        metric: `${nodes}: submission to delivered at ${r.paced.rate}/s (${PACED_RATE === undefined ? `${fmt(PACED_SHARE * 100, 0)} % of the above` : 'a fixed rate'}, open loop, ${r.paced.nodes.n} messages), p50 / p99`,
        value: `${fmt(r.paced.nodes.e2e_ms.p50)} / ${fmt(r.paced.nodes.e2e_ms.p99)} ms (${fmt(r.paced.nodes.delivered_per_s, 0)}/s delivered)`,
        baseline: `raw at the same rate ${fmt(r.paced.raw.e2e_ms.p50)} / ${fmt(r.paced.raw.e2e_ms.p99)} ms`,
        ...(three && {
          target: 'p99 ≤ 15 ms',
          verdict: r.paced.nodes.e2e_ms.p99 <= 15 ? ('pass' as const) : ('fail' as const),
        }),
      },
      {
        metric: `${nodes}: accepted (POST /api/v1/messages → 202), p50 / p99; accepted/s`,
        value: `${fmt(r.agree.accept_ms.p50)} / ${fmt(r.agree.accept_ms.p99)} ms; ${fmt(r.agree.accepted_per_s, 0)}/s`,
        baseline: `raw publish → PubAck ${fmt(r.raw.puback_ms.p50)} / ${fmt(r.raw.puback_ms.p99)} ms`,
      },
    );
    const caxtonCpu = cpuPerMessage(r.agree.cpu, r.agree.delivered);
    const rawCpu = cpuPerMessage(r.raw.cpu, r.raw.consumed);
    rows.push({
      metric: `${nodes}: CPU per message, every process involved (ms; the rate ${r.agree.cpu.machine.cores} cores could carry at that cost, nothing else running)`,
      value: `${fmt(caxtonCpu.total_ms, 2)} ms (${fmt(caxtonCpu.ceiling_per_s, 0)}/s: ${fmt(caxtonCpu.ceiling_per_s / r.raw.per_s, 2)} of raw)`,
      baseline: `raw ${fmt(rawCpu.total_ms, 2)} ms (${fmt(rawCpu.ceiling_per_s, 0)}/s)`,
    });
    // Half of raw JetStream on these cores leaves this much CPU per message for every process; what
    // the nodes do not control (PostgreSQL, NATS, the HTTP client) is set beside it, so a run shows
    // whether the target could be met even by a node that cost nothing.
    const budget = (r.agree.cpu.machine.cores * 1000) / (r.raw.per_s / 2);
    rows.push({
      metric: `${nodes}: CPU per message outside the caxton serve processes (PostgreSQL, nats-server, this driver), beside the budget for ≥ 0.5 of raw (every process, ${r.agree.cpu.machine.cores} cores)`,
      value: `${fmt(caxtonCpu.outside_ms, 2)} ms (${fmt((100 * caxtonCpu.outside_ms) / budget, 0)} % of the budget)`,
      baseline: `budget ${fmt(budget, 2)} ms`,
    });
    notes.push(
      `${nodes}, CPU per message (ms) over the agree batch: ${caxtonCpu.parts}; over the raw batch: ${rawCpu.parts}.`,
    );
    if (r.inform)
      rows.push({
        metric: `${nodes}: the same with inform (the agent runs, scripted model, no latency): delivered/s; submission to delivered p50 / p99`,
        value: `${fmt(r.inform.delivered_per_s, 0)}/s; ${fmt(r.inform.e2e_ms.p50)} / ${fmt(r.inform.e2e_ms.p99)} ms`,
        baseline: `ratio to raw ${fmt(r.inform.delivered_per_s / r.raw.per_s, 2)}`,
      });
    const sessions = (b: NodeBatch) =>
      Object.entries(b.pg_sessions)
        .filter(([, v]) => v >= 0.5)
        .map(([k, v]) => `${k} ${fmt(v, 0)} %`)
        .join(', ');
    notes.push(
      `${nodes}, agree: accepted → delivered p50 / p99 ${fmt(r.agree.after_accept_ms.p50)} / ${fmt(r.agree.after_accept_ms.p99)} ms; at most ${r.agree.peak_pending} deliveries pending at once; the nodes' PostgreSQL sessions (sampled every 100 ms): ${sessions(r.agree)}.`,
    );
    const inside = (b: NodeBatch) =>
      b.inside
        .map(
          (x) =>
            `${x.node} ran ${x.deliveries} deliveries, ${fmt(x.delivery_mean_ms)} ms each on average (fetched to acked), held ${fmt(x.held_mean, 1)} at once on average (max ${x.held_max}), answered POST /messages in ${fmt(x.post_mean_ms)} ms on average, ran ${fmt(x.steps_per_tx, 1)} conversation steps per PostgreSQL transaction`,
        )
        .join('; ');
    notes.push(`${nodes}, inside the nodes during the agree batch: ${inside(r.agree)}.`);
    notes.push(
      `${nodes}, agree at ${r.paced.rate}/s: accepted p50 / p99 ${fmt(r.paced.nodes.accept_ms.p50)} / ${fmt(r.paced.nodes.accept_ms.p99)} ms, at most ${r.paced.nodes.peak_pending} pending; CPU: ${cpuLine(r.paced.nodes.cpu)}.`,
    );
    notes.push(
      `${nodes}, CPU over the agree batch (${fmt(r.agree.cpu.wall_s)} s; 100 % = one core): ${cpuLine(r.agree.cpu)}.`,
    );
    if (r.inform)
      notes.push(
        `${nodes}, CPU over the inform batch (${fmt(r.inform.cpu.wall_s)} s): ${cpuLine(r.inform.cpu)}; at most ${r.inform.peak_pending} pending.`,
      );
    notes.push(`${nodes}, CPU over the raw JetStream batch (${fmt(r.raw.cpu.wall_s)} s): ${cpuLine(r.raw.cpu)}.`);
    notes.push(
      `${nodes}: 1-minute load average ${fmt(r.raw.load_1m.before)} before the raw batch, ${fmt(r.agree.load_1m.before)} → ${fmt(r.agree.load_1m.after)} over the agree batch; nodes ready in ${r.startup_ms.map((ms) => fmt(ms / 1000, 1)).join(', ')} s.`,
    );
    for (const b of [r.agree, r.paced.nodes, r.inform]) {
      if (!b) continue;
      if (b.accepted < b.n || b.delivered < b.accepted || b.not_completed > 0)
        notes.push(
          `${nodes} ${b.performative}: ${b.n - b.accepted} submissions refused, ${b.accepted - b.delivered} accepted but not delivered, ${b.not_completed} conversations failed or expired: ${JSON.stringify(b.failures.slice(0, 3))}`,
        );
    }
  }
  notes.push(
    `Each node is its own process; nats-server, PostgreSQL, the raw clients and this driver (HTTP client, completion polling) share the machine's cores with them. Warm-up: ${WARMUP} messages before each measured batch.`,
  );
  return {
    rows,
    notes,
    raw: {
      messages: N,
      in_flight: IN_FLIGHT,
      warmup: WARMUP,
      paced_share: PACED_SHARE,
      paced_seconds: PACED_SECONDS,
      results,
    },
  };
}

export const clusterNodesSuite: Suite = {
  name: 'cluster-nodes',
  description: 'durable messages through 1 and 3 caxton serve processes (NATS JetStream + PostgreSQL) vs raw JetStream',
  async run(): Promise<SuiteReport> {
    return measureNodes();
  },
};
