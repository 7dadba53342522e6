/**
 * Stats history of a cluster, over its PostgreSQL: the shared `executions` and `deliveries`
 * tables hold every node's rows, so whichever node is asked answers for the cluster.
 */
import type pg from 'pg';
import { migrateSchema, quotedSchema, stateUnavailable, type PgMigration } from '../storage/pg/index.js';
import { BucketHistory } from './history.js';
import type { BucketRowSet, DeliveryBucketRow, ExecutionBucketRow, HistoryWindow } from './history.js';

const MIGRATIONS: readonly PgMigration[] = [
  {
    id: 'cluster-observability-history-001',
    sql: (s) =>
      `CREATE INDEX IF NOT EXISTS deliveries_finished ON ${s}.deliveries (updated_at) WHERE state <> 'pending';`,
  },
];

export class PgStatsHistory extends BucketHistory {
  readonly #pool: pg.Pool;
  readonly #s: string;
  readonly #flush: () => Promise<void>;

  /** Adds the deliveries index (the messaging tables must exist: open after the message store). */
  static migrate(pool: pg.Pool, schema: string): Promise<void> {
    return migrateSchema(pool, schema, MIGRATIONS);
  }

  /** `flush`: writes what this node has queued, so a poll right after an execution counts it. */
  constructor(pool: pg.Pool, schema: string, flush: () => Promise<void> = () => Promise.resolve()) {
    super();
    this.#pool = pool;
    this.#s = quotedSchema(schema);
    this.#flush = flush;
  }

  async rows(w: HistoryWindow): Promise<BucketRowSet> {
    await this.#flush();
    const s = this.#s;
    try {
      const tables = await this.#pool.query<{ e: string | null; d: string | null }>(
        `SELECT to_regclass($1) AS e, to_regclass($2) AS d`,
        [`${s}.executions`, `${s}.deliveries`],
      );
      const has = tables.rows[0]!;
      const executions = has.e
        ? (
            await this.#pool.query<ExecutionBucketRow>(
              `SELECT ((ts - $1) / $2)::int AS k, count(*) AS n, count(*) FILTER (WHERE status = 'error') AS errors,
                      sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                      percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50,
                      percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95
               FROM ${s}.executions WHERE ts >= $1 AND ts < $3 GROUP BY 1`,
              [w.from, w.bucket, w.to],
            )
          ).rows
        : undefined;
      const deliveries = has.d
        ? (
            await this.#pool.query<DeliveryBucketRow>(
              `SELECT floor((extract(epoch FROM updated_at::timestamptz) * 1000 - $1) / $2)::int AS k,
                      count(*) FILTER (WHERE state = 'done') AS done, count(*) FILTER (WHERE state = 'dead') AS dead
               FROM ${s}.deliveries
               WHERE state <> 'pending' AND updated_at >= $3 AND updated_at < $4 GROUP BY 1`,
              [w.from, w.bucket, new Date(w.from).toISOString(), new Date(w.to).toISOString()],
            )
          ).rows
        : undefined;
      return { ...(executions && { executions }), ...(deliveries && { deliveries }) };
    } catch (e) {
      throw stateUnavailable(e);
    }
  }
}
