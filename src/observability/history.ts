/**
 * Retained history for the console's Overview charts (GET /api/v1/stats/history): the executions
 * records and the message deliveries the node already keeps, aggregated per time bucket in SQL —
 * nothing new is recorded for it. One port, two adapters: the node's SQLite (sqlite-stats-history.ts)
 * and a cluster's PostgreSQL (pg-stats-history.ts), where every node's rows are, so any node answers
 * for the whole cluster. A range reaches back at most as far as the retention of those rows.
 */

/** The ranges the console offers, each cut into a fixed number of buckets. */
export const HISTORY_RANGES = {
  '15m': { span: 15 * 60_000, bucket: 30_000 },
  '1h': { span: 3_600_000, bucket: 60_000 },
  '6h': { span: 6 * 3_600_000, bucket: 5 * 60_000 },
  '24h': { span: 24 * 3_600_000, bucket: 15 * 60_000 },
  '7d': { span: 7 * 24 * 3_600_000, bucket: 2 * 3_600_000 },
} as const;
export type HistoryRange = keyof typeof HISTORY_RANGES;

export interface HistoryBucket {
  /** Start of the bucket, epoch ms. */
  t: number;
  executions: number;
  execution_errors: number;
  input_tokens: number;
  output_tokens: number;
  /** Nearest-rank percentiles of the executions started in the bucket; null without any. */
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  /** Deliveries that reached their receiver (done) or were given up (dead) in the bucket. */
  messages_delivered: number;
  messages_failed: number;
}

export interface History {
  from: number;
  to: number;
  bucket_ms: number;
  buckets: HistoryBucket[];
  /** Which retained rows fed it: execution records can be turned off (`[executions] enabled`). */
  sources: { executions: boolean; messages: boolean };
}

/** The port: one query per range, over every node's rows. */
export interface StatsHistory {
  history(range: HistoryRange, now?: number): Promise<History>;
}

export interface HistoryWindow {
  from: number;
  to: number;
  bucket: number;
  n: number;
}

/** The window a range covers, its end rounded up to a whole bucket so buckets stay put between polls. */
export function windowOf(range: HistoryRange, now: number): HistoryWindow {
  const { span, bucket } = HISTORY_RANGES[range];
  const to = Math.ceil((now + 1) / bucket) * bucket;
  return { from: to - span, to, bucket, n: span / bucket };
}

/** The rows each adapter's two queries return, keyed by bucket index. */
export interface ExecutionBucketRow {
  k: number | string;
  n: number | string;
  errors: number | string;
  input_tokens: number | string | null;
  output_tokens: number | string | null;
  p50: number | string | null;
  p95: number | string | null;
}
export interface DeliveryBucketRow {
  k: number | string;
  done: number | string;
  dead: number | string;
}

const num = (v: number | string | null | undefined) => (v === null || v === undefined ? 0 : Number(v));
const opt = (v: number | string | null | undefined) => (v === null || v === undefined ? null : Number(v));

/** Every bucket of the window, empty ones included, from the adapters' rows. */
export function assemble(
  w: HistoryWindow,
  executions: readonly ExecutionBucketRow[] | undefined,
  deliveries: readonly DeliveryBucketRow[] | undefined,
): History {
  const buckets: HistoryBucket[] = Array.from({ length: w.n }, (_, i) => ({
    t: w.from + i * w.bucket,
    executions: 0,
    execution_errors: 0,
    input_tokens: 0,
    output_tokens: 0,
    latency_p50_ms: null,
    latency_p95_ms: null,
    messages_delivered: 0,
    messages_failed: 0,
  }));
  for (const r of executions ?? []) {
    const b = buckets[Number(r.k)];
    if (!b) continue;
    b.executions = num(r.n);
    b.execution_errors = num(r.errors);
    b.input_tokens = num(r.input_tokens);
    b.output_tokens = num(r.output_tokens);
    b.latency_p50_ms = opt(r.p50);
    b.latency_p95_ms = opt(r.p95);
  }
  for (const r of deliveries ?? []) {
    const b = buckets[Number(r.k)];
    if (!b) continue;
    b.messages_delivered = num(r.done);
    b.messages_failed = num(r.dead);
  }
  return {
    from: w.from,
    to: w.to,
    bucket_ms: w.bucket,
    buckets,
    sources: { executions: executions !== undefined, messages: deliveries !== undefined },
  };
}

/** The bucket rows of one window; a source is absent when its table does not exist (yet). */
export interface BucketRowSet {
  executions?: ExecutionBucketRow[];
  deliveries?: DeliveryBucketRow[];
}

/** What an adapter answers: the bucket rows of any window (indices counted from its `from`). */
export interface BucketRows {
  rows(w: HistoryWindow): Promise<BucketRowSet>;
}

/**
 * A storage adapter's StatsHistory (SQLite, PostgreSQL): every bucket of the range read in full
 * from its `rows` (IncrementalHistory reads only the newest). An adapter supplies `rows` only.
 */
export abstract class BucketHistory implements StatsHistory, BucketRows {
  abstract rows(w: HistoryWindow): Promise<BucketRowSet>;

  async history(range: HistoryRange, now = Date.now()): Promise<History> {
    const w = windowOf(range, now);
    const r = await this.rows(w);
    return assemble(w, r.executions, r.deliveries);
  }
}

/** How many of the newest buckets are read again at each poll: rows land late (an execution is recorded when it ends). */
const REREAD = 2;

/**
 * A StatsHistory that reads only the newest buckets at each poll and keeps the older ones from the
 * poll before (per range): a 7-day range over 100,000 records would otherwise be aggregated in full
 * every 30 s on the event loop (686.8 ms in docs/adr/experiments.md). A bucket older than REREAD buckets is taken
 * as final; rows written later into it (an execution running longer than that) are missed until
 * the server restarts.
 */
export class IncrementalHistory implements StatsHistory {
  readonly #source: BucketRows;
  readonly #kept = new Map<HistoryRange, History>();

  constructor(source: BucketRows) {
    this.#source = source;
  }

  async history(range: HistoryRange, now = Date.now()): Promise<History> {
    const w = windowOf(range, now);
    const kept = this.#kept.get(range);
    const from = kept && kept.to > w.from ? Math.max(w.from, kept.to - REREAD * w.bucket) : w.from;
    const part: HistoryWindow = { from, to: w.to, bucket: w.bucket, n: (w.to - from) / w.bucket };
    const r = await this.#source.rows(part);
    const fresh = assemble(part, r.executions, r.deliveries);
    const old = kept ? kept.buckets.filter((b) => b.t >= w.from && b.t < from) : [];
    const h: History = { ...fresh, from: w.from, buckets: [...old, ...fresh.buckets] };
    if (h.buckets.length !== w.n) return this.#full(range, w);
    this.#kept.set(range, h);
    return h;
  }

  async #full(range: HistoryRange, w: HistoryWindow): Promise<History> {
    const r = await this.#source.rows(w);
    const h = assemble(w, r.executions, r.deliveries);
    this.#kept.set(range, h);
    return h;
  }
}
