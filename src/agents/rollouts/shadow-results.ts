/**
 * What a shadow rollout recorded (ADR 0041): for each live request copied to the
 * candidate, both answers, whether they agree, and each side's latency and tokens. The rows are in
 * the data dir's SQLite (sqlite-shadow-results.ts; on a cluster, in its PostgreSQL beside the rollouts: pg-shadow-results.ts,
 * every node's comparisons in one report), so the report survives a restart; at most
 * `MAX_ROWS_PER_ROLLOUT` are kept per rollout (the oldest go first).
 */
import { z } from 'zod';

export const MAX_ROWS_PER_ROLLOUT = 1000;

export type ShadowComparison = ShadowResult['method'];
/** Stored text is cut here: the report needs examples, not whole transcripts. */
const TEXT_LIMIT = 2000;

/** One comparison of a live answer with the candidate's. */
export const shadowResultSchema = z.object({
  rollout_id: z.number().int(),
  request: z.string(),
  stable_answer: z.string(),
  /** Undefined when the candidate failed (`candidate_error` says why). */
  candidate_answer: z.string().optional(),
  candidate_error: z.string().optional(),
  agree: z.boolean(),
  /** Cosine similarity of the two answers by the embedding model, when they differ and memory is on. */
  similarity: z.number().optional(),
  /** What decided `agree`: the text, the embedding similarity, or the judge agent. */
  method: z.enum(['exact', 'similarity', 'judge']),
  stable_ms: z.number(),
  candidate_ms: z.number(),
  stable_tokens: z.number(),
  candidate_tokens: z.number(),
});

export type ShadowResult = z.infer<typeof shadowResultSchema>;

/** A shadow rollout's report: agreement, and latency and token cost side by side. */
export interface ShadowReport {
  compared: number;
  agreements: number;
  agreement_rate: number | null;
  /** How answers were compared: `exact` (same text, whitespace and case aside), or also `similarity` by the embedding model. */
  comparison: ShadowComparison;
  /** The mean similarity of the answers that differed in text (null: none measured). */
  mean_similarity: number | null;
  candidate_errors: number;
  /** Copies not run because too many were running already (the candidate never slows the live path). */
  skipped: number;
  stable: { p50_ms: number | null; p99_ms: number | null; tokens: number };
  candidate: { p50_ms: number | null; p99_ms: number | null; tokens: number };
  /** The newest disagreements, for a look at what differs. */
  disagreements: {
    request: string;
    stable_answer: string;
    candidate_answer: string | null;
    candidate_error: string | null;
  }[];
}

export const cut = (s: string) => (s.length > TEXT_LIMIT ? `${s.slice(0, TEXT_LIMIT)}…` : s);

function percentile(sorted: number[], q: number): number | null {
  return sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

/** Where shadow comparisons are kept: this node's SQLite (`ShadowResultStore`, sqlite-shadow-results.ts) or a cluster's PostgreSQL. */
export interface ShadowResultsPort {
  /** How the shadow runner compares answers (it says so when it starts). */
  comparison: ShadowComparison;
  record(r: ShadowResult): void;
  skipped(rolloutId: number): void;
  report(rolloutId: number): ShadowReport | Promise<ShadowReport>;
}

/** A comparison as the report reads it. */
export interface ShadowRow {
  agree: boolean | number;
  similarity: number | null;
  method: ShadowComparison;
  candidate_error: string | null;
  stable_ms: number;
  candidate_ms: number;
  stable_tokens: number;
  candidate_tokens: number;
}

/** The report of a rollout's comparisons (`rows`, oldest first), its newest disagreements and its skipped copies. */
export function shadowReport(
  rows: readonly ShadowRow[],
  disagreements: ShadowReport['disagreements'],
  skipped: number,
  runnerComparison: ShadowComparison,
): ShadowReport {
  const agreements = rows.filter((r) => r.agree === 1 || r.agree === true).length;
  const side = (ms: number[], tokens: number) => {
    const s = [...ms].sort((a, b) => a - b);
    return { p50_ms: percentile(s, 0.5), p99_ms: percentile(s, 0.99), tokens };
  };
  const ok = rows.filter((r) => r.candidate_error === null);
  // What decided the newest comparison that needed more than the text (a judge, or the similarity), else the runner's way.
  const decided = [...rows].reverse().find((r) => r.method !== 'exact')?.method;
  const comparison = decided ?? runnerComparison;
  const measured = rows.filter((r) => r.similarity !== null).map((r) => r.similarity!);
  return {
    compared: rows.length,
    agreements,
    agreement_rate: rows.length === 0 ? null : agreements / rows.length,
    comparison,
    mean_similarity: measured.length === 0 ? null : measured.reduce((a, b) => a + b, 0) / measured.length,
    candidate_errors: rows.length - ok.length,
    skipped,
    stable: side(
      rows.map((r) => r.stable_ms),
      rows.reduce((n, r) => n + r.stable_tokens, 0),
    ),
    candidate: side(
      ok.map((r) => r.candidate_ms),
      rows.reduce((n, r) => n + r.candidate_tokens, 0),
    ),
    disagreements,
  };
}

/**
 * Whether two answers agree as text: the same once whitespace is collapsed and case ignored. (The
 * shadow runner also counts answers whose embedding similarity reaches its threshold.)
 */
export function answersAgree(a: string, b: string): boolean {
  const norm = (s: string) => s.trim().replace(/\s+/g, ' ').toLowerCase();
  return norm(a) === norm(b);
}
