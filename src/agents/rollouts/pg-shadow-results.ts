/**
 * What shadow rollouts compared, on a cluster (ADR 0054): the table a single node keeps in SQLite
 * (sqlite-shadow-results.ts), in the cluster's PostgreSQL beside the rollouts, so each node that copies a
 * live request to the candidate adds its comparison to the one report every node reads. At most
 * `MAX_ROWS_PER_ROLLOUT` are kept per rollout (the oldest go first); copies skipped (too many
 * running on a node) are added up in one statement a second.
 */
import type pg from 'pg';
import { guardReads, migrateSchema, quotedSchema, type PgMigration } from '../../storage/pg/index.js';
import {
  cut,
  MAX_ROWS_PER_ROLLOUT,
  shadowReport,
  type ShadowComparison,
  type ShadowReport,
  type ShadowResult,
  type ShadowResultsPort,
  type ShadowRow,
} from './shadow-results.js';

const MIGRATIONS: readonly PgMigration[] = [
  {
    id: 'cluster-shadow-results-001',
    sql: (s) => `
      CREATE TABLE ${s}.shadow_results (
        id                bigserial PRIMARY KEY,
        rollout_id        integer NOT NULL,
        at                text NOT NULL,
        request           text NOT NULL,
        stable_answer     text NOT NULL,
        candidate_answer  text,
        candidate_error   text,
        agree             boolean NOT NULL,
        similarity        double precision,
        method            text NOT NULL,
        stable_ms         double precision NOT NULL,
        candidate_ms      double precision NOT NULL,
        stable_tokens     integer NOT NULL,
        candidate_tokens  integer NOT NULL
      );
      CREATE INDEX shadow_results_rollout ON ${s}.shadow_results (rollout_id, id);
      CREATE TABLE ${s}.shadow_skipped (
        rollout_id integer PRIMARY KEY,
        skipped    bigint NOT NULL
      );
    `,
  },
];

export interface PgShadowResultsOptions {
  pool: pg.Pool;
  schema: string;
  /** How often skipped copies are added to the shared count (ms; default 1000). */
  flushMs?: number;
  /** A comparison or count that could not be written (dropped: the report misses it). */
  onError?: (e: unknown) => void;
}

export class PgShadowResults implements ShadowResultsPort {
  readonly #pool: pg.Pool;
  readonly #s: string;
  readonly #onError: PgShadowResultsOptions['onError'];
  comparison: ShadowComparison = 'exact';
  /** Skipped copies not yet written, by rollout. */
  #skipped = new Map<number, number>();
  readonly #timer: NodeJS.Timeout;
  readonly #writing = new Set<Promise<unknown>>();

  private constructor(o: PgShadowResultsOptions) {
    this.#pool = o.pool;
    this.#s = quotedSchema(o.schema);
    this.#onError = o.onError;
    this.#timer = setInterval(() => this.#flushSkipped(), o.flushMs ?? 1000);
    this.#timer.unref();
  }

  static migrate(pool: pg.Pool, schema: string): Promise<void> {
    return migrateSchema(pool, schema, MIGRATIONS);
  }

  static async open(o: PgShadowResultsOptions): Promise<PgShadowResults> {
    await PgShadowResults.migrate(o.pool, o.schema);
    return guardReads(new PgShadowResults(o));
  }

  record(r: ShadowResult): void {
    const s = this.#s;
    this.#track(
      this.#pool.query(
        `WITH added AS (
           INSERT INTO ${s}.shadow_results (rollout_id, at, request, stable_answer, candidate_answer, candidate_error, agree, similarity, method, stable_ms, candidate_ms, stable_tokens, candidate_tokens)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id)
         DELETE FROM ${s}.shadow_results WHERE rollout_id = $1 AND id <= (
           SELECT id FROM ${s}.shadow_results WHERE rollout_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $14)`,
        [
          r.rollout_id,
          new Date().toISOString(),
          cut(r.request),
          cut(r.stable_answer),
          r.candidate_answer === undefined ? null : cut(r.candidate_answer),
          r.candidate_error ?? null,
          r.agree,
          r.similarity ?? null,
          r.method,
          r.stable_ms,
          r.candidate_ms,
          r.stable_tokens,
          r.candidate_tokens,
          // The row being added is not seen by the DELETE's subquery: one fewer kept before it.
          MAX_ROWS_PER_ROLLOUT - 1,
        ],
      ),
    );
  }

  skipped(rolloutId: number): void {
    this.#skipped.set(rolloutId, (this.#skipped.get(rolloutId) ?? 0) + 1);
  }

  async report(rolloutId: number): Promise<ShadowReport> {
    const s = this.#s;
    const [rows, disagreements, skipped] = await Promise.all([
      this.#pool.query<ShadowRow>(
        `SELECT agree, similarity, method, candidate_error, stable_ms, candidate_ms, stable_tokens, candidate_tokens
         FROM ${s}.shadow_results WHERE rollout_id = $1 ORDER BY id`,
        [rolloutId],
      ),
      this.#pool.query<ShadowReport['disagreements'][number]>(
        `SELECT request, stable_answer, candidate_answer, candidate_error FROM ${s}.shadow_results
         WHERE rollout_id = $1 AND NOT agree ORDER BY id DESC LIMIT 5`,
        [rolloutId],
      ),
      this.#pool.query<{ skipped: string }>(`SELECT skipped FROM ${s}.shadow_skipped WHERE rollout_id = $1`, [
        rolloutId,
      ]),
    ]);
    const pending = this.#skipped.get(rolloutId) ?? 0;
    return shadowReport(
      rows.rows,
      disagreements.rows,
      Number(skipped.rows[0]?.skipped ?? 0) + pending,
      this.comparison,
    );
  }

  /** Writes what waits (the server's close). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#flushSkipped();
    await Promise.allSettled([...this.#writing]);
  }

  #flushSkipped(): void {
    if (this.#skipped.size === 0) return;
    const batch = this.#skipped;
    this.#skipped = new Map();
    this.#track(
      this.#pool.query(
        `INSERT INTO ${this.#s}.shadow_skipped AS k (rollout_id, skipped)
         SELECT * FROM unnest($1::int[], $2::bigint[])
         ON CONFLICT (rollout_id) DO UPDATE SET skipped = k.skipped + excluded.skipped`,
        [[...batch.keys()], [...batch.values()]],
      ),
    );
  }

  #track(p: Promise<unknown>): void {
    const t = p.catch((e: unknown) => this.#onError?.(e)).finally(() => this.#writing.delete(t));
    this.#writing.add(t);
  }
}
