import { msSince, summarize, type Summary } from './stats.js';

/** Sends one request (keep-alive, through Node's built-in fetch/undici) and reads the whole body. */
export async function request(url: string, init?: RequestInit): Promise<{ status: number; body: string; ms: number }> {
  const t0 = process.hrtime.bigint();
  const res = await fetch(url, init);
  const body = await res.text();
  return { status: res.status, body, ms: msSince(t0) };
}

export interface SequentialResult {
  latency_ms: Summary;
  errors: number;
  /** Sequential requests per second (one in flight). */
  req_per_s: number;
}

/**
 * Sends `n` requests one after the other (after `warmup` unmeasured ones) and summarizes their
 * latency as seen by the client: connection reuse, request, server work, body read. `init`
 * (method, headers, body) is used for every request; GET when absent.
 */
export async function sequential(
  n: number,
  next: (i: number) => string,
  opts: { warmup?: number; expectStatus?: number; init?: RequestInit } = {},
): Promise<SequentialResult> {
  const expect = opts.expectStatus ?? 200;
  for (let i = 0; i < (opts.warmup ?? 200); i++) await request(next(i), opts.init);
  const samples = new Float64Array(n);
  let errors = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const r = await request(next(i), opts.init);
    if (r.status !== expect) errors++;
    samples[i] = r.ms;
  }
  const total = msSince(t0);
  return { latency_ms: summarize(samples), errors, req_per_s: (n / total) * 1000 };
}

export interface PoolResult {
  total_ms: number;
  per_s: number;
  latency_ms: Summary;
  /** Median latency of each tenth of the requests, in order: shows drift as the run goes on. */
  p50_by_tenth_ms: number[];
  failures: { index: number; status: number; body: string }[];
}

/**
 * Runs `n` requests with at most `concurrency` in flight. `make(i)` builds request i lazily so
 * the caller never holds all bodies at once (matters when measuring memory).
 */
export async function pool(
  n: number,
  concurrency: number,
  make: (i: number) => { url: string; init: RequestInit; expectStatus: number },
  onProgress?: (done: number) => void,
): Promise<PoolResult> {
  const samples = new Float64Array(n);
  const failures: PoolResult['failures'] = [];
  let nextIndex = 0;
  let done = 0;
  const t0 = process.hrtime.bigint();
  const worker = async () => {
    for (let i = nextIndex++; i < n; i = nextIndex++) {
      const { url, init, expectStatus } = make(i);
      const r = await request(url, init);
      samples[i] = r.ms;
      if (r.status !== expectStatus && failures.length < 20)
        failures.push({ index: i, status: r.status, body: r.body.slice(0, 500) });
      onProgress?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  const total = msSince(t0);
  const tenth = Math.max(1, Math.floor(n / 10));
  const p50_by_tenth_ms: number[] = [];
  for (let from = 0; from + tenth <= n; from += tenth)
    p50_by_tenth_ms.push(summarize(samples.subarray(from, from + tenth)).p50);
  return { total_ms: total, per_s: (n / total) * 1000, latency_ms: summarize(samples), p50_by_tenth_ms, failures };
}
