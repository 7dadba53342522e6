/**
 * The isolation layer alone, no HTTP and no agent: a warm `process` pool against `context` in the
 * same run, on the echo job of test/fixtures/isolation/tasks.mjs. Sequential latency per job
 * (what the pool adds to a request) and throughput with 16 jobs in flight.
 * Run: `npm run build && node --import tsx bench/process-pool.ts` (env BENCH_JOBS, BENCH_SECONDS).
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createIsolation, type Isolation, type IsolationMode } from '../src/execution/isolation/index.js';
import { fmt, fmtMs, msSince, summarize } from './lib/stats.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 2000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const IN_FLIGHT = 16;
const taskModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../test/fixtures/isolation/tasks.mjs');
const payload = { op: 'echo', request: 'hello', n: 42 };

async function measure(mode: IsolationMode, iso: Isolation) {
  await iso.warm();
  for (let i = 0; i < 200; i++) await iso.run(payload, { timeoutMs: 30_000 });
  const samples = new Float64Array(JOBS);
  for (let i = 0; i < JOBS; i++) {
    const t = process.hrtime.bigint();
    await iso.run(payload, { timeoutMs: 30_000 });
    samples[i] = msSince(t);
  }
  let done = 0;
  const t0 = process.hrtime.bigint();
  const until = Date.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (Date.now() < until) {
        await iso.run(payload, { timeoutMs: 30_000 });
        done++;
      }
    }),
  );
  const perS = (done / msSince(t0)) * 1000;
  return { mode, latency: summarize(samples), perS, stats: iso.stats() };
}

const load0 = os.loadavg()[0]!;
const results = [];
for (const mode of ['context', 'process'] as const) {
  const iso = createIsolation(mode, { taskModule, poolSize: 2, output: 'ignore' });
  try {
    results.push(await measure(mode, iso));
  } finally {
    await iso.close();
  }
}
const [ctx, proc] = results as [(typeof results)[0], (typeof results)[0]];
console.log(`load average ${fmt(load0, 2)} before, ${fmt(os.loadavg()[0]!, 2)} after, ${os.cpus().length} cores`);
for (const r of results) {
  console.log(
    `${r.mode}: sequential p50 ${fmtMs(r.latency.p50)} / p99 ${fmtMs(r.latency.p99)}; ${fmt(r.perS, 0)} jobs/s with ${IN_FLIGHT} in flight; ${JSON.stringify(r.stats)}`,
  );
}
console.log(
  `process adds ${fmtMs(proc.latency.p50 - ctx.latency.p50)} p50 per job over context; throughput ${fmt(proc.perS / ctx.perS, 2)}× context`,
);
