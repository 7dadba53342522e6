import autocannon from 'autocannon';

export interface LoadOptions {
  url: string;
  /** Seconds. */
  duration?: number;
  connections?: number;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /**
   * Run the load generator in worker threads (default 1) so it does not share the event loop
   * with the in-process server under test; 0 runs it on the main thread.
   */
  workers?: number;
}

export interface LoadResult {
  url: string;
  duration_s: number;
  connections: number;
  workers: number;
  requests: number;
  req_per_s: number;
  latency_ms: { mean: number; p50: number; p90: number; p99: number; max: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}

/** Runs autocannon against `url` and keeps the figures the reports use. */
export async function load(opts: LoadOptions): Promise<LoadResult> {
  const workers = opts.workers ?? 1;
  const r = await autocannon({
    url: opts.url,
    duration: opts.duration ?? 5,
    connections: opts.connections ?? 10,
    method: opts.method ?? 'GET',
    ...(opts.headers && { headers: opts.headers }),
    ...(opts.body !== undefined && { body: opts.body }),
    ...(workers > 0 && { workers }),
  });
  return {
    url: opts.url,
    duration_s: r.duration,
    connections: r.connections,
    workers,
    requests: r.requests.total,
    req_per_s: r.requests.average,
    latency_ms: {
      mean: r.latency.average,
      p50: r.latency.p50,
      p90: r.latency.p90,
      p99: r.latency.p99,
      max: r.latency.max,
    },
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
  };
}
