/**
 * What bench/cluster.ts reads around each repetition: the suite's PostgreSQL activity and the
 * nodes' step counters, the machine's dirty pages and the suite's cores at rest, and the loops that
 * drive a workload and wait for its drain.
 */
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import { sleep, wallNow, type Node } from './caxton-nodes.js';
import { cpuMeter } from './proc-cpu.js';
import { note } from './progress.js';

/** Counters of the suite's PostgreSQL: transactions committed, autovacuum and autoanalyze runs, checkpoints, WAL bytes. */
export interface PgActivity {
  xacts: number;
  autovacuums: number;
  autoanalyzes: number;
  checkpoints: number;
  wal_bytes: number;
  /** Conversation-step transactions and the steps they ran, summed over the workload's nodes (their metrics). */
  step_xacts: number;
  steps: number;
}

/** A counter's value in a node's Prometheus text (0 when absent). */
async function nodeCounter(n: Node, name: string): Promise<number> {
  const text = await fetch(n.metricsUrl).then(
    (r) => r.text(),
    () => '',
  );
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

export async function pgActivity(db: pg.Pool, nodes: readonly Node[] = []): Promise<PgActivity> {
  let step_xacts = 0;
  let steps = 0;
  for (const n of nodes) {
    step_xacts += await nodeCounter(n, 'caxton_cluster_step_transactions_total');
    steps += await nodeCounter(n, 'caxton_cluster_steps_total');
  }
  const { rows } = await db.query<Record<keyof PgActivity, string>>(
    `SELECT (SELECT sum(xact_commit) FROM pg_stat_database) AS xacts,
       (SELECT coalesce(sum(autovacuum_count), 0) FROM pg_stat_all_tables) AS autovacuums,
       (SELECT coalesce(sum(autoanalyze_count), 0) FROM pg_stat_all_tables) AS autoanalyzes,
       (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter) AS checkpoints,
       (SELECT pg_current_wal_lsn() - '0/0'::pg_lsn) AS wal_bytes`,
  );
  const r = rows[0]!;
  return {
    xacts: Number(r.xacts),
    autovacuums: Number(r.autovacuums),
    autoanalyzes: Number(r.autoanalyzes),
    checkpoints: Number(r.checkpoints),
    wal_bytes: Number(r.wal_bytes),
    step_xacts,
    steps,
  };
}

export const pgDelta = (a: PgActivity, b: PgActivity): PgActivity => ({
  xacts: b.xacts - a.xacts,
  autovacuums: b.autovacuums - a.autovacuums,
  autoanalyzes: b.autoanalyzes - a.autoanalyzes,
  checkpoints: b.checkpoints - a.checkpoints,
  wal_bytes: b.wal_bytes - a.wal_bytes,
  step_xacts: b.step_xacts - a.step_xacts,
  steps: b.steps - a.steps,
});

export const zeroPg = (): PgActivity => ({
  xacts: 0,
  autovacuums: 0,
  autoanalyzes: 0,
  checkpoints: 0,
  wal_bytes: 0,
  step_xacts: 0,
  steps: 0,
});
export const sumPg = (a: PgActivity, b: PgActivity): PgActivity => ({
  xacts: a.xacts + b.xacts,
  autovacuums: a.autovacuums + b.autovacuums,
  autoanalyzes: a.autoanalyzes + b.autoanalyzes,
  checkpoints: a.checkpoints + b.checkpoints,
  wal_bytes: a.wal_bytes + b.wal_bytes,
  step_xacts: a.step_xacts + b.step_xacts,
  steps: a.steps + b.steps,
});

/** Runs `send` from `inFlight` loops until `until` (wall clock), or open loop at `rate` a second. */
export async function drive(until: number, inFlight: number, send: (i: number) => Promise<void>, rate?: number) {
  let next = 0;
  if (rate !== undefined) {
    const t0 = wallNow();
    const sent: Promise<void>[] = [];
    for (let i = 0; ; i++) {
      const at = t0 + (i * 1000) / rate;
      if (at >= until) break;
      const wait = at - wallNow();
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

/** Waits until `done`, at most `drainMs`; false (and a note) when it did not come. */
export async function waitFor(what: string, done: () => Promise<boolean> | boolean, drainMs: number): Promise<boolean> {
  const t0 = Date.now();
  while (!(await done())) {
    if (Date.now() - t0 > drainMs) {
      note(`${what}: not drained within ${drainMs / 1000} s; counting what was delivered`);
      return false;
    }
    await sleep(100);
  }
  return true;
}

/** Cores the processes the suite started (not this driver) used over `ms`. */
export async function suiteCores(groups: Record<string, () => number[]>, ms: number): Promise<number> {
  const meter = await cpuMeter(groups);
  await sleep(ms);
  const r = await meter.stop();
  const cpu = Object.entries(r.processes)
    .filter(([name]) => !name.startsWith('bench driver'))
    .reduce((sum, [, x]) => sum + x.cpu_s, 0);
  return cpu / r.wall_s;
}

/** The machine's file pages waiting to be written back (kB, /proc/meminfo Dirty + Writeback); NaN where unknown. */
export function dirtyKb(): number {
  try {
    const m = readFileSync('/proc/meminfo', 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(m)?.[1] ?? Number.NaN);
    return kb('Dirty') + kb('Writeback');
  } catch {
    return Number.NaN;
  }
}
