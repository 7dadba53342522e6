/**
 * A single node's shadow comparisons in its SQLite (ADR 0041), behind `ShadowResultsPort`
 * (shadow-results.ts); a cluster keeps them in its PostgreSQL (pg-shadow-results.ts). At most
 * `MAX_ROWS_PER_ROLLOUT` rows are kept per rollout (the oldest go first).
 */
import type { Db, Migration } from '../../storage/index.js';
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

export const AGENT_SHADOW_MIGRATION: Migration = {
  id: 'agents-005-shadow-results',
  sql: `CREATE TABLE agent_shadow_results (
      id                INTEGER PRIMARY KEY AUTOINCREMENT,
      rollout_id        INTEGER NOT NULL,
      at                TEXT NOT NULL,
      request           TEXT NOT NULL,
      stable_answer     TEXT NOT NULL,
      candidate_answer  TEXT,
      candidate_error   TEXT,
      agree             INTEGER NOT NULL,
      similarity        REAL,
      method            TEXT NOT NULL DEFAULT 'exact',
      stable_ms         REAL NOT NULL,
      candidate_ms      REAL NOT NULL,
      stable_tokens     INTEGER NOT NULL,
      candidate_tokens  INTEGER NOT NULL
    );
    CREATE INDEX agent_shadow_results_rollout ON agent_shadow_results (rollout_id, id);`,
};

export class ShadowResultStore implements ShadowResultsPort {
  readonly #insert;
  readonly #prune;
  readonly #rows;
  readonly #disagreements;
  /** How the shadow runner compares answers (it says so when it starts). */
  comparison: ShadowComparison = 'exact';
  /** Skipped copies per rollout (in memory: a count, not a record). */
  readonly #skipped = new Map<number, number>();

  constructor(db: Db) {
    this.#insert = db.prepare(
      `INSERT INTO agent_shadow_results (rollout_id, at, request, stable_answer, candidate_answer, candidate_error, agree, similarity, method, stable_ms, candidate_ms, stable_tokens, candidate_tokens)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#prune = db.prepare(
      'DELETE FROM agent_shadow_results WHERE rollout_id = ? AND id <= (SELECT id FROM agent_shadow_results WHERE rollout_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)',
    );
    this.#rows = db.prepare(
      'SELECT agree, similarity, method, candidate_error, stable_ms, candidate_ms, stable_tokens, candidate_tokens FROM agent_shadow_results WHERE rollout_id = ?',
    );
    this.#disagreements = db.prepare(
      'SELECT request, stable_answer, candidate_answer, candidate_error FROM agent_shadow_results WHERE rollout_id = ? AND agree = 0 ORDER BY id DESC LIMIT 5',
    );
  }

  record(r: ShadowResult): void {
    this.#insert.run(
      r.rollout_id,
      new Date().toISOString(),
      cut(r.request),
      cut(r.stable_answer),
      r.candidate_answer === undefined ? null : cut(r.candidate_answer),
      r.candidate_error ?? null,
      r.agree ? 1 : 0,
      r.similarity ?? null,
      r.method,
      r.stable_ms,
      r.candidate_ms,
      r.stable_tokens,
      r.candidate_tokens,
    );
    this.#prune.run(r.rollout_id, r.rollout_id, MAX_ROWS_PER_ROLLOUT);
  }

  skipped(rolloutId: number): void {
    this.#skipped.set(rolloutId, (this.#skipped.get(rolloutId) ?? 0) + 1);
  }

  report(rolloutId: number): ShadowReport {
    return shadowReport(
      this.#rows.all(rolloutId) as ShadowRow[],
      this.#disagreements.all(rolloutId) as ShadowReport['disagreements'],
      this.#skipped.get(rolloutId) ?? 0,
      this.comparison,
    );
  }
}
