/**
 * Where rollouts are kept: the one port the rollout controller uses, whether the rows live in this
 * node's SQLite (`RolloutStore`, sqlite-rollout-state.ts) or, on a cluster, in the cluster's PostgreSQL beside
 * agent versions and pins (`PgRolloutState`, pg-rollout-state.ts), where every node reads the same rows.
 * A rollout's state (strategy, stage, versions, start, outcome) and its canary figures per stage
 * and version (executions, failures, a latency histogram) are here, so any node can promote or
 * roll back, and the judge, wherever it runs, judges the figures of every node.
 */
import type { CanaryPlan } from './canary.js';
import type { Rollout, RolloutState, RolloutStrategy } from './rollouts.js';

/** A rollout about to start (its candidate's version is being written in the same transaction). */
export interface NewRollout {
  name: string;
  strategy: RolloutStrategy;
  stable: number;
  candidate: number;
  by?: string | undefined;
  plan?: CanaryPlan | undefined;
  /** A canary whose [[rollout.checks]] run first: it gets no traffic on any node until `checked`. */
  checking?: boolean | undefined;
}

/** What the canary judge reads of one version in one stage (canary.ts `judgeStage`). */
export interface WindowFigures {
  readonly n: number;
  readonly errors: number;
  readonly errorRate: number;
  p99(): number | null;
  figures(): { requests: number; errors: number; error_rate: number; p99_ms: number | null };
}

/** A canary's figures in its current stage; `stable` is the stage before's at 100 % (the stable version then gets no new conversation). */
export interface StageFigures {
  candidate: WindowFigures;
  stable: WindowFigures;
}

/** The other rollouts a node sees after reading the shared rows: started and ended since its last read. */
export interface RolloutChanges {
  added: Rollout[];
  ended: Rollout[];
}

/**
 * The rollouts, their canary figures, and which node judges the canaries. The running rollouts
 * are answered from memory (`running`, `runningAll`: read on every resolution of an agent); a
 * shared store refreshes them (`refresh`) and reads one agent's afresh before a change of it
 * (`reload`). `tx` is the transaction the candidate's (or the promotion's) version is written in:
 * the rollout's row goes with it, or neither does.
 */
export interface RolloutStatePort {
  /** The rows are the cluster's (another node may change them), not only this node's. */
  readonly shared: boolean;
  running(name: string): Rollout | undefined;
  runningAll(): Rollout[];
  /** The newest rollout of an agent, running or ended. */
  latest(name: string): Rollout | undefined | Promise<Rollout | undefined>;
  start(n: NewRollout, tx?: unknown): Rollout | Promise<Rollout>;
  /** A canary moves to `stage`; the rollout as it now is (unchanged when it ended meanwhile). */
  advance(r: Rollout, stage: number): Rollout | Promise<Rollout>;
  /** Ends `r` when it is still running; otherwise throws 'conflict' saying how it ended. */
  endRunning(
    r: Rollout,
    state: Exclude<RolloutState, 'running'>,
    by: string | undefined,
    reason: string | null,
    tx?: unknown,
  ): Rollout | Promise<Rollout>;
  /** Ends `r` if it still runs (the agent was removed, its candidate could not be recorded). */
  end(
    r: Rollout,
    state: Exclude<RolloutState, 'running'>,
    by: string | undefined,
    reason: string | null,
  ): Rollout | Promise<Rollout>;
  /** One execution of `version` under the canary `r`, in its current stage (a shared store adds it to the cluster's totals in batches). */
  count(r: Rollout, version: number, ok: boolean, ms: number): void;
  /** The figures the judge reads for `r`'s current stage (every node's). */
  figures(r: Rollout): StageFigures | Promise<StageFigures>;
  /**
   * Runs one round of the canary judge when this node is the judge now (true), else not (false):
   * a shared store lets one node at a time judge, under a PostgreSQL advisory lock.
   */
  asJudge(fn: () => Promise<void>): Promise<boolean>;
  /** A shared store: whether `r`'s checks still run (a node that did not start it learns it here). */
  checking?(r: Rollout): boolean;
  /** A shared store: `r`'s checks passed (its share of new conversations starts on every node). */
  checked?(r: Rollout): Promise<void>;
  /** Reads the running rollouts again; `prepare` runs before the others' changes count here. */
  refresh?(prepare?: (changes: RolloutChanges) => Promise<void>): Promise<void>;
  /** Reads one agent's running rollout afresh (before a change of the agent); `prepare` as for `refresh`. */
  reload?(name: string, prepare?: (changes: RolloutChanges) => Promise<void>): Promise<void>;
  /** Writes the figures still waiting. */
  close?(): Promise<void>;
}

/** Latency histogram buckets: bucket b holds latencies up to `bucketMs(b)` (25 % apart; the last holds the rest). */
export const LATENCY_BUCKETS = 96;
const GROWTH = 1.25;

export function latencyBucket(ms: number): number {
  if (!(ms > 0)) return 0;
  return Math.min(LATENCY_BUCKETS - 1, Math.max(0, Math.ceil(Math.log(ms + 1) / Math.log(GROWTH))));
}

/** The upper bound of a bucket (ms). */
export function bucketMs(b: number): number {
  return GROWTH ** b - 1;
}

/**
 * A version's figures in one stage as counts per latency bucket: how the nodes of a cluster add
 * theirs together. Its p99 is the upper bound of the bucket it falls in (within 25 %).
 */
export class BucketWindow implements WindowFigures {
  n = 0;
  errors = 0;
  readonly buckets = new Map<number, number>();

  add(bucket: number, requests: number, errors: number): void {
    this.n += requests;
    this.errors += errors;
    this.buckets.set(bucket, (this.buckets.get(bucket) ?? 0) + requests);
  }

  get errorRate(): number {
    return this.n === 0 ? 0 : this.errors / this.n;
  }

  p99(): number | null {
    if (this.n === 0) return null;
    const rank = Math.ceil(0.99 * this.n);
    let seen = 0;
    for (const b of [...this.buckets.keys()].sort((x, y) => x - y)) {
      seen += this.buckets.get(b)!;
      if (seen >= rank) return bucketMs(b);
    }
    return null;
  }

  figures(): { requests: number; errors: number; error_rate: number; p99_ms: number | null } {
    return { requests: this.n, errors: this.errors, error_rate: this.errorRate, p99_ms: this.p99() };
  }
}

/**
 * Picks a canary's figures for its current stage from its windows by stage: at 100 % the stable
 * version's come from the latest earlier stage that had any.
 */
export function stageFigures(
  r: Rollout,
  windowOf: (stage: number, version: number) => WindowFigures | undefined,
  empty: () => WindowFigures,
): StageFigures {
  const candidate = windowOf(r.stage, r.candidate_version) ?? empty();
  let stable = windowOf(r.stage, r.stable_version);
  if (r.plan?.stages[r.stage] === 100)
    for (let s = r.stage - 1; s >= 0; s--) {
      const earlier = windowOf(s, r.stable_version);
      if (earlier && earlier.n > 0) {
        stable = earlier;
        break;
      }
    }
  return { candidate, stable: stable ?? empty() };
}
