/**
 * ADR 0024 — what limits per principal cost on the request path.
 *
 * `PrincipalLimiter.admitRequest` runs on every authenticated request, so it must stay far below
 * the authentication budget (≤ 20 µs p50 for an API key). Calls take tens of nanoseconds, below
 * what one hrtime reading resolves, so each sample is the mean over a batch of BATCH calls; p50 and
 * p99 are over the batches. The baseline is a no-op function of the same shape measured in the same
 * run and loop. Scenarios: one busy principal under its limit; 10,000 principals in turn (a Map that
 * no longer fits the L1 cache); a refused principal; a principal without limits (no state kept);
 * and beginExecution + release. The sweep that drops idle states runs at most once a minute: its
 * cost over 100,000 states is reported separately.
 */
import { PrincipalLimiter, type LimitSet, type RequestAdmission } from '../src/auth/limits.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt, summarize, type Summary } from './lib/stats.js';

const BATCH = 1_000;
const SAMPLES = 2_000;
const PRINCIPALS = 10_000;

/** ns per call: p50/p99 over SAMPLES batches of BATCH calls of `fn(i)`. */
function measure(fn: (i: number) => unknown): Summary {
  for (let i = 0; i < 50 * BATCH; i++) fn(i); // warm up: let the JIT settle
  const samples = new Float64Array(SAMPLES);
  let sink = 0;
  let i = 0;
  for (let s = 0; s < SAMPLES; s++) {
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < BATCH; k++) if (fn(i++) !== undefined) sink++;
    samples[s] = Number(process.hrtime.bigint() - t0) / BATCH;
  }
  if (sink < 0) console.error(sink); // keeps the calls observable
  return summarize(samples);
}

const ns = (v: number) => `${fmt(v, 1)} ns`;

export const limitsSuite: Suite = {
  name: 'limits',
  description: 'limits per principal: admitRequest and beginExecution cost per call (ADR 0024)',
  async run(): Promise<SuiteReport> {
    const ids = Array.from({ length: PRINCIPALS }, (_, i) => `key:bench-${i}`);
    const high: LimitSet = {
      requests_per_minute: 1e12,
      concurrent_executions: 1e6,
      tokens: 1e15,
      tokens_period_ms: 60_000,
    };
    const ok: RequestAdmission = { ok: true };
    const noop = (_id: string, _l: LimitSet | undefined): RequestAdmission => ok;

    const limiter = new PrincipalLimiter();
    const baseline = measure((i) => noop(ids[i % PRINCIPALS]!, high));
    const one = measure(() => limiter.admitRequest('key:busy', high));
    const many = measure((i) => limiter.admitRequest(ids[i % PRINCIPALS]!, high));
    limiter.admitRequest('key:refused', { requests_per_minute: 1 });
    const refused = measure(() => limiter.admitRequest('key:refused', { requests_per_minute: 1 }));
    const unlimited = measure(() => limiter.admitRequest('key:free', undefined));
    const exec = measure((i) => {
      const s = limiter.beginExecution({
        principalId: ids[i % PRINCIPALS]!,
        principalLimits: high,
        agent: 'support',
        agentLimits: high,
      });
      if (s.ok) s.release({ tokens: 100 });
      return s;
    });

    // The sweep: 100,000 states whose buckets have refilled (a clock moved past the minute).
    let t = Date.now();
    const swept = new PrincipalLimiter({ now: () => t, sweepIntervalMs: 3_600_000 });
    for (let i = 0; i < 100_000; i++) swept.admitRequest(`key:s${i}`, { requests_per_minute: 100 });
    t += 60_000;
    const s0 = process.hrtime.bigint();
    swept.sweep();
    const sweepMs = Number(process.hrtime.bigint() - s0) / 1e6;
    const left = swept.size;

    const base = `${ns(baseline.p50)} / ${ns(baseline.p99)} (no-op)`;
    const row = (metric: string, s: Summary, target?: number): Row => ({
      metric: `${metric}, ns per call p50 / p99`,
      value: `${ns(s.p50)} / ${ns(s.p99)}`,
      baseline: base,
      ...(target !== undefined && {
        target: `p50 ≤ ${target} ns`,
        verdict: s.p50 <= target ? ('pass' as const) : ('fail' as const),
      }),
    });
    const rows: Row[] = [
      row('admitRequest, one principal under its limit', one, 1_000),
      row(`admitRequest, ${PRINCIPALS.toLocaleString('en-US')} principals in turn`, many, 1_000),
      row('admitRequest, refused (bucket empty)', refused, 1_000),
      row('admitRequest, principal without limits', unlimited),
      row(
        `beginExecution + release, principal and agent limits, ${PRINCIPALS.toLocaleString('en-US')} principals`,
        exec,
      ),
      {
        metric: 'sweep of 100,000 idle states, ms (runs at most once a minute)',
        value: fmt(sweepMs),
        baseline: '-',
        ...(left !== 0 && { verdict: 'fail' as const, target: '0 left' }),
      },
    ];
    return {
      rows,
      notes: [
        `Each sample is the mean of ${BATCH} calls; ${SAMPLES} samples per row. The no-op baseline is the loop and call overhead.`,
      ],
      raw: {
        batch: BATCH,
        samples: SAMPLES,
        baseline,
        one,
        many,
        refused,
        unlimited,
        exec,
        sweep_ms: sweepMs,
        sweep_left: left,
      },
    };
  },
};
