/** Latency statistics over a set of samples (milliseconds unless said otherwise). */
export interface Summary {
  n: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** The p-th percentile (0..100) of sorted samples, nearest-rank method. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(samples: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    n: sorted.length,
    min: sorted.length ? sorted[0]! : Number.NaN,
    mean: sorted.length ? sum / sorted.length : Number.NaN,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
  };
}

/** Milliseconds since `start` (a `process.hrtime.bigint()` value). */
export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Formats a number with `digits` significant decimals, dropping trailing noise for large values. */
export function fmt(v: number, digits = 2): string {
  if (!Number.isFinite(v)) return 'n/a';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 100) return v.toFixed(Math.min(digits, 1));
  return v.toFixed(digits);
}

export const fmtMs = (v: number): string => `${fmt(v)} ms`;

/** Microseconds, for in-process timings too small for milliseconds. */
export const fmtUs = (ms: number): string => `${fmt(ms * 1000, 1)} µs`;

/**
 * A 95 % percentile-bootstrap interval of the median of `xs` (`resamples` draws with replacement,
 * from a seeded generator, so a run's report can be reproduced from its raw figures). The
 * interquartile range says how much reps differ; this says how far the median itself could be off.
 */
export function medianInterval(xs: readonly number[], rand: () => number, resamples = 2000): [number, number] {
  const n = xs.length;
  const medians = new Float64Array(resamples);
  const draw = new Float64Array(n);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) draw[i] = xs[Math.floor(rand() * n)]!;
    draw.sort();
    medians[r] = n % 2 === 1 ? draw[(n - 1) / 2]! : (draw[n / 2 - 1]! + draw[n / 2]!) / 2;
  }
  medians.sort();
  return [medians[Math.floor(resamples * 0.025)]!, medians[Math.ceil(resamples * 0.975) - 1]!];
}

/** The q-quantile (0..1) of xs, interpolated between the nearest ranks; NaN when there are none. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (at - lo);
}

/** The median (of an even count, the mean of the middle two). */
export const median = (xs: readonly number[]): number => quantile(xs, 0.5);

export const verdict = (ok: boolean): 'pass' | 'fail' => (ok ? 'pass' : 'fail');
export const p50p99 = (s: { p50: number; p99: number }): string => `p50 ${fmtMs(s.p50)} / p99 ${fmtMs(s.p99)}`;

/** A number from the environment: `def` when unset or empty. */
export function envNumber(name: string, def: number): number {
  const v = process.env[name];
  return v === undefined || v === '' ? def : Number(v);
}

/** CPU µs of this process (user + system) per unit of work: `run()` does `n` units. */
export async function cpuUsPer(n: number, run: () => unknown): Promise<number> {
  const c0 = process.cpuUsage();
  await run();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

/**
 * Per-call ns of each function, p50/p99 over samples that are the mean of `batch` calls (one call is
 * below what one hrtime reading resolves), the functions alternated in `rounds` so noise hits all alike.
 */
export function perCallNs(
  fns: readonly ((i: number) => unknown)[],
  o: { batch: number; rounds: number; samples: number },
): Summary[] {
  const out = fns.map(() => new Float64Array(o.rounds * o.samples));
  let sink = 0;
  let i = 0;
  for (const fn of fns) for (let k = 0; k < 20 * o.batch; k++) if (fn(i++) !== undefined) sink++; // JIT warm-up
  for (let r = 0; r < o.rounds; r++)
    for (let v = 0; v < fns.length; v++)
      for (let s = 0; s < o.samples; s++) {
        const t0 = process.hrtime.bigint();
        for (let k = 0; k < o.batch; k++) if (fns[v]!(i++) !== undefined) sink++;
        out[v]![r * o.samples + s] = Number(process.hrtime.bigint() - t0) / o.batch;
      }
  if (sink < 0) console.error(sink); // keeps the calls observable
  return out.map((x) => summarize(x));
}
