/**
 * The paced cluster target on its own: 100 messages a second, open loop, over the nodes of a
 * cluster, for the latency of a cluster below saturation — and, with BENCH_PACED_B, the same for a
 * second build's cluster in the same run, the two alternated A B B A in equal-length repetitions on
 * one nats-server and one PostgreSQL (bench/lib/own-postgres.ts). The `cluster` suite measures the
 * same workload after its saturating ones; this one starts fresh clusters and runs nothing else,
 * so that two builds, or two settings, can be told apart on a machine other work shares.
 *
 * For each repetition it reports, beside submission → accepted (the 202) and submission →
 * delivered (the delivery row `done`, one clock, one machine):
 *
 *  - the CPU and the run-queue wait (/proc/PID/task/TID/schedstat: time runnable but not running)
 *    of the nodes, PostgreSQL, nats-server and the driver, per message. The wait is what the
 *    processes on the message's path lost to each other and to the rest of the machine for want
 *    of a core; beside the latency it says how much of it was CPU contention rather than waiting
 *    on a disk or a peer;
 *  - PostgreSQL's WAL syncs per message and their mean time (pg_stat_wal, with
 *    `track_wal_io_timing = on`, a monitoring setting that costs a clock read per WAL write and
 *    sync; every durability setting is the machine's, as in the cluster suite).
 *
 * BENCH_PACED_A / BENCH_PACED_B: the builds' `dist/cli/main.js` (A defaults to this checkout's
 * build, B to none); BENCH_PACED_ENV_A / _B: `KEY=VALUE ...` more environment for that cluster's
 * nodes (one build under two settings); BENCH_PACED_NODES (3), BENCH_PACED_PAIRS (4),
 * BENCH_PACED_REP_SECONDS (6), BENCH_CLUSTER_PACED_RATE (100).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startNatsServer } from '../test/helpers/nats-server.js';
import {
  api,
  CAXTON_MAIN,
  closePool,
  clusterNames,
  content,
  deploySink,
  setPoolConnections,
  sleep,
  SINK,
  startNode,
  stopNode,
  wallNow,
  type Node,
} from './lib/caxton-nodes.js';
import { startOwnPostgres, type OwnPostgres } from './lib/own-postgres.js';
import { pidWithArgs, processTree } from './lib/proc-cpu.js';
import { note } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt, summarize } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const BUILD_A = process.env.BENCH_PACED_A ?? CAXTON_MAIN;
const BUILD_B = process.env.BENCH_PACED_B;
const NODES = Number(process.env.BENCH_PACED_NODES ?? 3);
const PAIRS = Number(process.env.BENCH_PACED_PAIRS ?? 4);
const REP_S = Number(process.env.BENCH_PACED_REP_SECONDS ?? 6);
const RATE = Number(process.env.BENCH_CLUSTER_PACED_RATE ?? 100);
/** Pause before each repetition: the previous one's deliveries are drained by then, and its stragglers' work is done. */
const GAP_MS = 1500;
const DRAIN_MS = 60_000;

type Label = 'A' | 'B';
const GROUPS = ['nodes', 'PostgreSQL', 'nats-server', 'driver'] as const;
type Group = (typeof GROUPS)[number];

interface Cluster {
  label: Label;
  build: string;
  nodes: Node[];
  schema: string;
}

interface Rep {
  label: Label;
  load_1m: number;
  accept_ms: number[];
  e2e_ms: number[];
  refused: number;
  /** CPU and run-queue wait, ms per accepted message, by process group. */
  cpu_ms: Record<Group, number>;
  wait_ms: Record<Group, number>;
  wal_syncs_per_msg: number;
  wal_sync_ms: number;
}

const envOf = (spec: string | undefined): Record<string, string> =>
  Object.fromEntries(
    (spec ?? '')
      .split(/\s+/)
      .filter((kv) => kv.includes('='))
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );

/** CPU time and run-queue wait (ms) of every thread of `pids`. */
function schedMs(pids: readonly number[]): { run: number; wait: number } {
  let run = 0;
  let wait = 0;
  for (const pid of pids) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        const [r, w] = readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ').map(Number);
        run += r! / 1e6;
        wait += w! / 1e6;
      } catch {
        // Ended meanwhile.
      }
    }
  }
  return { run, wait };
}

async function walSyncs(db: pg.Pool): Promise<{ n: number; ms: number }> {
  const r = (await db.query<{ n: string; ms: string }>('SELECT wal_sync AS n, wal_sync_time AS ms FROM pg_stat_wal'))
    .rows[0]!;
  return { n: Number(r.n), ms: Number(r.ms) };
}

const body = (i: number) => ({ performative: 'agree', receiver: SINK, content: content(i) });

async function rep(
  c: Cluster,
  seconds: number,
  env: { db: pg.Pool; own: OwnPostgres; natsPid: number | undefined },
): Promise<Rep> {
  await sleep(GAP_MS);
  const pidsOf: Record<Group, () => number[]> = {
    nodes: () => c.nodes.flatMap((n) => processTree(n.pid)),
    PostgreSQL: () => env.own.pids(),
    'nats-server': () => (env.natsPid === undefined ? [] : [env.natsPid]),
    driver: () => [process.pid],
  };
  const load_1m = loadavg()[0]!;
  const sched0 = GROUPS.map((g) => schedMs(pidsOf[g]()));
  const wal0 = await walSyncs(env.db);
  const sent = new Map<string, [number, number]>();
  let refused = 0;
  const post = async (i: number) => {
    const t = wallNow();
    const r = await api(c.nodes[i % c.nodes.length]!, 'POST', '/api/v1/messages', JSON.stringify(body(i))).catch(
      () => ({ status: 0, json: undefined }),
    );
    if (r.status === 202) sent.set((r.json as { id: string }).id, [t, wallNow()]);
    else refused++;
  };
  const t0 = wallNow();
  const posts: Promise<void>[] = [];
  for (let i = 0; ; i++) {
    const at = t0 + (i * 1000) / RATE;
    if (at >= t0 + seconds * 1000) break;
    const wait = at - wallNow();
    if (wait > 1) await sleep(wait);
    posts.push(post(i));
  }
  await Promise.all(posts);
  const sched1 = GROUPS.map((g) => schedMs(pidsOf[g]()));
  const wal1 = await walSyncs(env.db);
  for (const t = Date.now(); Date.now() - t < DRAIN_MS; await sleep(100)) {
    const { rows } = await env.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM "${c.schema}".deliveries WHERE state = 'pending'`,
    );
    if (Number(rows[0]!.n) === 0) break;
  }
  const { rows } = await env.db.query<{ message_id: string; updated_at: string }>(
    `SELECT message_id, updated_at FROM "${c.schema}".deliveries WHERE state = 'done' AND message_id = ANY($1)`,
    [[...sent.keys()]],
  );
  const n = Math.max(1, sent.size);
  const syncs = wal1.n - wal0.n;
  return {
    label: c.label,
    load_1m,
    accept_ms: [...sent.values()].map(([t, e]) => e - t),
    e2e_ms: rows.map((r) => Date.parse(r.updated_at) - sent.get(r.message_id)![0]),
    refused: refused + (sent.size - rows.length),
    cpu_ms: Object.fromEntries(GROUPS.map((g, i) => [g, (sched1[i]!.run - sched0[i]!.run) / n])) as Rep['cpu_ms'],
    wait_ms: Object.fromEntries(GROUPS.map((g, i) => [g, (sched1[i]!.wait - sched0[i]!.wait) / n])) as Rep['wait_ms'],
    wal_syncs_per_msg: syncs / n,
    wal_sync_ms: syncs > 0 ? (wal1.ms - wal0.ms) / syncs : Number.NaN,
  };
}

function totalsOf(reps: Rep[]) {
  const mean = (f: (r: Rep) => number) => reps.reduce((s, r) => s + f(r), 0) / Math.max(1, reps.length);
  return {
    accept: summarize(reps.flatMap((r) => r.accept_ms)),
    e2e: summarize(reps.flatMap((r) => r.e2e_ms)),
    rep_p99: reps.map((r) => summarize(r.e2e_ms).p99),
    refused: reps.reduce((s, r) => s + r.refused, 0),
    cpu: Object.fromEntries(GROUPS.map((g) => [g, mean((r) => r.cpu_ms[g])])) as Record<Group, number>,
    wait: Object.fromEntries(GROUPS.map((g) => [g, mean((r) => r.wait_ms[g])])) as Record<Group, number>,
    wal_syncs: mean((r) => r.wal_syncs_per_msg),
    wal_sync_ms: mean((r) => r.wal_sync_ms),
    load: reps.map((r) => r.load_1m),
  };
}

export const clusterPacedSuite: Suite = {
  name: 'cluster-paced',
  description: `${RATE} msg/s open loop over a ${NODES}-node cluster${BUILD_B ? ', two builds alternated' : ''}: latency, CPU and run-queue wait per message, WAL syncs`,
  async run(): Promise<SuiteReport> {
    setPoolConnections(72);
    const dir = tempDir('caxton-bench-paced-');
    const own = await startOwnPostgres({ extra: ['-c track_wal_io_timing=on'] });
    const nats = await startNatsServer();
    const db = new pg.Pool({ connectionString: own.url, max: 2 });
    db.on('error', (e) => note(`PostgreSQL session of the driver: ${e.message}`));
    const clusters: Cluster[] = [];
    const reps: Rep[] = [];
    try {
      const builds: [Label, string][] = [['A', BUILD_A], ...(BUILD_B ? [['B', BUILD_B] as [Label, string]] : [])];
      for (const [label, build] of builds) {
        const names = clusterNames(`paced${label.toLowerCase()}${process.pid}`);
        const nodes: Node[] = [];
        clusters.push({ label, build, nodes, schema: names.schema });
        for (let i = 0; i < NODES; i++)
          nodes.push(
            await startNode(join(dir.path, label), `n${label.toLowerCase()}${i}`, names, {
              natsUrl: nats.url,
              pgUrl: own.url,
              main: build,
              env: envOf(process.env[`BENCH_PACED_ENV_${label}`]),
            }),
          );
        await deploySink(nodes);
      }
      const env = { db, own, natsPid: pidWithArgs('nats-server', nats.storeDir) };
      for (const c of clusters) await rep(c, 2, env); // warm-up, not counted
      for (let p = 0; p < PAIRS; p++) {
        const order = p % 2 === 0 ? clusters : [...clusters].reverse();
        for (const c of order) {
          const r = await rep(c, REP_S, env);
          reps.push(r);
          const a = summarize(r.accept_ms);
          const e = summarize(r.e2e_ms);
          note(
            `pair ${p + 1}/${PAIRS}, ${c.label}: accepted p50/p99 ${fmt(a.p50)}/${fmt(a.p99)} ms, delivered p50/p99 ${fmt(e.p50)}/${fmt(e.p99)} ms (load ${fmt(r.load_1m)}); run-queue wait per message: nodes ${fmt(r.wait_ms.nodes)}, PostgreSQL ${fmt(r.wait_ms.PostgreSQL)} ms; ${fmt(r.wal_syncs_per_msg)} WAL syncs per message, ${fmt(r.wal_sync_ms)} ms each`,
          );
        }
      }
    } finally {
      for (const c of clusters) await Promise.all(c.nodes.map(stopNode));
      for (const c of clusters) for (const n of c.nodes) await closePool(n.url);
      await db.end().catch(() => {});
      await nats.stop();
      await own.stop();
      dir.remove();
    }
    const rows: Row[] = [];
    const t = Object.fromEntries(clusters.map((c) => [c.label, totalsOf(reps.filter((r) => r.label === c.label))]));
    for (const c of clusters) {
      const x = t[c.label]!;
      const of = (v: Record<Group, number>) => GROUPS.map((g) => `${g} ${fmt(v[g], 3)}`).join(', ');
      rows.push(
        {
          metric: `${c.label} (${c.build}): paced ${RATE} msg/s on ${NODES} nodes, submission → delivered p50 / p99 (${x.e2e.n} messages, ${x.refused} refused or lost)`,
          value: `${fmt(x.e2e.p50)} / ${fmt(x.e2e.p99)} ms`,
          baseline: `submission → accepted (202) ${fmt(x.accept.p50)} / ${fmt(x.accept.p99)} ms; p99 per repetition ${x.rep_p99.map((v) => fmt(v, 1)).join(', ')} ms; load ${x.load.map((v) => fmt(v, 1)).join(', ')}`,
          target: '≤ 15 ms p99',
          verdict: x.e2e.p99 <= 15 ? 'pass' : 'fail',
        },
        {
          metric: `${c.label}: CPU per message (ms)`,
          value: of(x.cpu),
          baseline: `run-queue wait per message (ms): ${of(x.wait)}`,
        },
        {
          metric: `${c.label}: PostgreSQL WAL syncs per message`,
          value: fmt(x.wal_syncs),
          baseline: `${fmt(x.wal_sync_ms)} ms per sync`,
        },
      );
    }
    if (t.A && t.B)
      rows.push({
        metric: 'B against A, same run: submission → delivered p50 / p99, submission → accepted p99',
        value: `${fmt(t.B.e2e.p50 / t.A.e2e.p50)} × / ${fmt(t.B.e2e.p99 / t.A.e2e.p99)} × / ${fmt(t.B.accept.p99 / t.A.accept.p99)} ×`,
        baseline: 'A B B A ... alternated repetitions of equal length',
      });
    return { rows, raw: { reps, nodes: NODES, rate: RATE, builds: clusters.map((c) => [c.label, c.build]) } };
  },
};
