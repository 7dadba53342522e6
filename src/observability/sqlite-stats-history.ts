/**
 * Stats history over the node's SQLite (caxton.db): the `executions` records (by start time, on
 * their `ts` index) and the `deliveries` rows that finished (by `updated_at`, on the partial
 * index this file's migration adds: only rows leaving `pending` pay for it).
 */
import type { Db, Migration } from '../storage/index.js';
import { BucketHistory } from './history.js';
import type { BucketRowSet, DeliveryBucketRow, ExecutionBucketRow, HistoryWindow } from './history.js';

export const HISTORY_MIGRATIONS: readonly Migration[] = [
  {
    id: 'observability-history-001',
    sql: `CREATE INDEX IF NOT EXISTS deliveries_finished ON deliveries (updated_at) WHERE state <> 'pending';`,
  },
];

// Nearest rank: the ceil(p · n)-th smallest duration of the bucket.
const EXECUTIONS = `
  WITH b AS (
    SELECT CAST((ts - @from) / @bucket AS INTEGER) AS k, status, input_tokens, output_tokens, duration_ms
    FROM executions WHERE ts >= @from AND ts < @to
  ), r AS (
    SELECT k, duration_ms,
           ROW_NUMBER() OVER (PARTITION BY k ORDER BY duration_ms) AS rn,
           COUNT(*) OVER (PARTITION BY k) AS cnt
    FROM b
  ), p AS (
    SELECT k,
           MAX(CASE WHEN rn = (cnt * 50 + 99) / 100 THEN duration_ms END) AS p50,
           MAX(CASE WHEN rn = (cnt * 95 + 99) / 100 THEN duration_ms END) AS p95
    FROM r GROUP BY k
  )
  SELECT b.k AS k, COUNT(*) AS n, SUM(b.status = 'error') AS errors,
         SUM(b.input_tokens) AS input_tokens, SUM(b.output_tokens) AS output_tokens,
         p.p50 AS p50, p.p95 AS p95
  FROM b JOIN p ON p.k = b.k GROUP BY b.k`;

const DELIVERIES = `
  SELECT CAST(((julianday(updated_at) - 2440587.5) * 86400000.0 - @from) / @bucket AS INTEGER) AS k,
         SUM(state = 'done') AS done, SUM(state = 'dead') AS dead
  FROM deliveries
  WHERE state <> 'pending' AND updated_at >= @since AND updated_at < @until
  GROUP BY k`;

export class SqliteStatsHistory extends BucketHistory {
  readonly #db: Db;
  readonly #flush: () => void;

  /** `flush`: writes what the stores have queued, so a poll right after an execution counts it. */
  constructor(db: Db, flush: () => void = () => {}) {
    super();
    this.#db = db;
    this.#flush = flush;
  }

  #has(table: string): boolean {
    return this.#db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(table) !== undefined;
  }

  rows(w: HistoryWindow): Promise<BucketRowSet> {
    try {
      this.#flush();
      const executions = this.#has('executions')
        ? (this.#db.prepare(EXECUTIONS).all({ from: w.from, bucket: w.bucket, to: w.to }) as ExecutionBucketRow[])
        : undefined;
      const deliveries = this.#has('deliveries')
        ? (this.#db.prepare(DELIVERIES).all({
            from: w.from,
            bucket: w.bucket,
            since: new Date(w.from).toISOString(),
            until: new Date(w.to).toISOString(),
          }) as DeliveryBucketRow[])
        : undefined;
      return Promise.resolve({
        ...(executions && { executions }),
        ...(deliveries && { deliveries }),
      });
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }
}
