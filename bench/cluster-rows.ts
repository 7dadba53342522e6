/**
 * What PostgreSQL writes for one delivered message: row writes (tuples inserted, updated and
 * deleted) and committed transactions per delivered one-way `inform` to a model-driven agent
 * (scripted provider, its run included), read as pg_stat_database differences around a batch, with
 * the rows of each table (pg_stat_user_tables) beside them, and the node's own CPU per message.
 *
 * One node at a time on the suite's own nats-server and PostgreSQL instance, each repetition a fresh
 * node on a fresh schema: it is started, given the agent, warmed up, measured over
 * BENCH_CLUSTER_ROWS_MESSAGES informs sent BATCH (100) per POST, BENCH_CLUSTER_ROWS_IN_FLIGHT POSTs at a
 * time, until every one was delivered and the node's sweeps since had a chance to run, then stopped.
 * With BENCH_CLUSTER_ROWS_BASE_MAIN (another build's dist/cli/main.js) the two builds alternate,
 * repetition by repetition, in one run: the same-run baseline. BENCH_CLUSTER_ROWS_CLIENT_IDS=1 gives
 * each inform an id of the client's.
 *
 * Needs `npm run build`, nats-server and PostgreSQL 15's binaries.
 */
import pg from 'pg';
import { startNatsServer } from '../test/helpers/nats-server.js';
import {
  api,
  CAXTON_MAIN,
  closePool,
  clusterNames,
  content,
  deploySink,
  sleep,
  SINK,
  startNode,
  stopNode,
  type Node,
} from './lib/caxton-nodes.js';
import { startOwnPostgres } from './lib/own-postgres.js';
import { cpuMeter, processTree } from './lib/proc-cpu.js';
import { note } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt, verdict } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const N = Number(process.env.BENCH_CLUSTER_ROWS_MESSAGES ?? 2_000);
const WARMUP = Number(process.env.BENCH_CLUSTER_ROWS_WARMUP ?? 300);
const REPS = Number(process.env.BENCH_CLUSTER_ROWS_REPS ?? 2);
const IN_FLIGHT = Number(process.env.BENCH_CLUSTER_ROWS_IN_FLIGHT ?? 4);
const BATCH = 100;
const BASE_MAIN = process.env.BENCH_CLUSTER_ROWS_BASE_MAIN;
/** Each inform carries an id of the client's (`bench-N`): what a client that retries sends. */
const CLIENT_IDS = process.env.BENCH_CLUSTER_ROWS_CLIENT_IDS === '1';
/** After the last delivery, how long the node runs on before the window closes: its sweeps, and the statistics its idle PostgreSQL sessions flush (PostgreSQL 15: within 10 s). */
const TAIL_MS = 11_000;

interface Stats {
  xacts: number;
  writes: number;
  tables: Map<string, number>;
}

async function stats(db: pg.Pool, schema: string): Promise<Stats> {
  const d = (
    await db.query<{ x: string; w: string }>(
      `SELECT sum(xact_commit) AS x, sum(tup_inserted + tup_updated + tup_deleted) AS w FROM pg_stat_database`,
    )
  ).rows[0]!;
  const t = await db.query<{ t: string; w: string }>(
    `SELECT relname AS t, n_tup_ins + n_tup_upd + n_tup_del AS w FROM pg_stat_all_tables WHERE schemaname = $1`,
    [schema],
  );
  return { xacts: Number(d.x), writes: Number(d.w), tables: new Map(t.rows.map((r) => [r.t, Number(r.w)])) };
}

/** Deliveries the node finished (its /metrics). */
async function delivered(n: Node): Promise<number> {
  const text = await (await fetch(n.metricsUrl)).text();
  let v = 0;
  for (const m of text.matchAll(/^caxton_message_processing_duration_seconds_count\{[^}]*\} (\S+)$/gm))
    v += Number(m[1]);
  return v;
}

async function send(node: Node, n: number, offset: number): Promise<number> {
  let next = 0;
  let accepted = 0;
  const posts = Math.ceil(n / BATCH);
  await Promise.all(
    Array.from({ length: Math.min(IN_FLIGHT, posts) }, async () => {
      for (let p = next++; p < posts; p = next++) {
        const items = Array.from({ length: Math.min(BATCH, n - p * BATCH) }, (_, j) => ({
          ...(CLIENT_IDS && { id: `bench-${offset + p * BATCH + j}` }),
          performative: 'inform',
          receiver: SINK,
          content: content(offset + p * BATCH + j),
        }));
        const r = await api(node, 'POST', '/api/v1/messages', JSON.stringify(items));
        const results = (r.json as { results?: { status: number }[] }).results ?? [];
        accepted += results.filter((x) => x.status === 202).length;
        if (results.length !== items.length) note(`POST answered ${r.status}: ${JSON.stringify(r.json).slice(0, 300)}`);
      }
    }),
  );
  return accepted;
}

async function until(n: Node, target: number): Promise<void> {
  const t0 = Date.now();
  let last = -1;
  let changed = Date.now();
  for (;;) {
    const d = await delivered(n);
    if (d >= target) return;
    if (d !== last) [last, changed] = [d, Date.now()];
    if (Date.now() - changed > 30_000)
      throw new Error(`stalled at ${d} of ${target} deliveries after ${Date.now() - t0} ms`);
    await sleep(100);
  }
}

interface Rep {
  build: 'base' | 'this';
  delivered: number;
  writes_per_msg: number;
  xacts_per_msg: number;
  node_cpu_ms_per_msg: number;
  tables_per_msg: Record<string, number>;
  wall_s: number;
}

export const clusterRowsSuite: Suite = {
  name: 'cluster-rows',
  description: 'PostgreSQL row writes and transactions per delivered inform (batches of 100, agent run included)',
  async run(): Promise<SuiteReport> {
    const nats = await startNatsServer();
    const own = await startOwnPostgres();
    const db = new pg.Pool({ connectionString: own.url, max: 2 });
    const tmp = tempDir('caxton-bench-rows-');
    const root = tmp.path;
    const reps: Rep[] = [];
    try {
      const builds: ('base' | 'this')[] = BASE_MAIN ? ['base', 'this'] : ['this'];
      for (let r = 0; r < REPS; r++) {
        for (const build of r % 2 === 0 ? builds : [...builds].reverse()) {
          const names = clusterNames(`rows${Date.now()}`);
          const node = await startNode(root, `node-${build}-${r}`, names, {
            natsUrl: nats.url,
            pgUrl: own.url,
            main: build === 'base' ? BASE_MAIN! : CAXTON_MAIN,
          });
          try {
            await deploySink([node]);
            const d0 = await delivered(node);
            await send(node, WARMUP, 0);
            await until(node, d0 + WARMUP);
            await sleep(TAIL_MS);
            const before = await stats(db, names.schema);
            const d1 = await delivered(node);
            const meter = await cpuMeter({ node: () => processTree(node.pid) });
            const t0 = Date.now();
            const accepted = await send(node, N, WARMUP);
            await until(node, d1 + accepted);
            await sleep(TAIL_MS);
            const cpu = await meter.stop();
            const after = await stats(db, names.schema);
            const n = (await delivered(node)) - d1;
            const tables: Record<string, number> = {};
            for (const [t, w] of after.tables) {
              const x = w - (before.tables.get(t) ?? 0);
              if (x > 0) tables[t] = x / n;
            }
            const rep: Rep = {
              build,
              delivered: n,
              writes_per_msg: (after.writes - before.writes) / n,
              xacts_per_msg: (after.xacts - before.xacts) / n,
              node_cpu_ms_per_msg: ((cpu.processes.node?.cpu_s ?? 0) * 1000) / n,
              tables_per_msg: tables,
              wall_s: (Date.now() - t0) / 1000,
            };
            reps.push(rep);
            note(`${build} rep ${r}: ${JSON.stringify(rep)}`);
          } finally {
            await stopNode(node);
            await closePool(node.url);
            await db.query(`DROP SCHEMA IF EXISTS "${names.schema}" CASCADE`).catch(() => {});
          }
        }
      }
    } finally {
      await db.end();
      await own.stop();
      await nats.stop();
      tmp.remove();
    }
    const mean = (b: Rep['build'], f: (r: Rep) => number) => {
      const xs = reps.filter((r) => r.build === b).map(f);
      return xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);
    };
    const base = (f: (r: Rep) => number) => (BASE_MAIN ? fmt(mean('base', f), 2) : '(no base build)');
    const row = (metric: string, f: (r: Rep) => number, target?: number): Row => {
      const v = mean('this', f);
      return {
        metric,
        value: fmt(v, 2),
        baseline: base(f),
        ...(target !== undefined && { target: `<= ${target}`, verdict: verdict(v <= target) }),
      };
    };
    const rows = [
      row(`row writes per delivered inform (pg_stat_database, ${N} in POSTs of ${BATCH})`, (r) => r.writes_per_msg, 5),
      row('transactions per delivered inform', (r) => r.xacts_per_msg, 0.5),
      row("the node's CPU per delivered inform (ms)", (r) => r.node_cpu_ms_per_msg),
    ];
    return { rows, notes: reps.map((r) => JSON.stringify(r)), raw: { reps } };
  },
};
