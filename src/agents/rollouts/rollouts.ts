/**
 * Rollouts of an agent's new version. Blue-green: the candidate version is
 * recorded (a version like any deploy) but not put live; it answers only when addressed as
 * `NAME@VERSION` until it is promoted (it becomes the live version) or rolled back (the rollout
 * ends, the live version stays). Canary: the candidate also gets a rising share of new
 * conversations, stage by stage (canary.ts judges each stage). One rollout per agent at a time.
 * The rows survive restarts: a running rollout is running again after a restart, at its stage.
 */
import type { CanaryPlan } from './canary.js';

/** Pins older than this are dropped (a conversation open for a month has long outlived its rollout). */
export const PIN_MAX_AGE_MS = 30 * 24 * 3_600_000;

export type RolloutStrategy = 'blue-green' | 'canary' | 'shadow';

export type RolloutState = 'running' | 'promoted' | 'rolled_back';

export interface Rollout {
  id: number;
  agent: string;
  strategy: RolloutStrategy;
  /** The version live when the rollout started (what unaddressed requests get while it runs). */
  stable_version: number;
  /** The new version under trial. */
  candidate_version: number;
  state: RolloutState;
  started_at: string;
  started_by: string | null;
  ended_at: string | null;
  ended_by: string | null;
  /** Why it ended (a rollback's reason). */
  reason: string | null;
  /** Canary only: the plan, the stage reached (index into plan.stages) and when it began. */
  plan: CanaryPlan | null;
  stage: number;
  stage_started_at: string;
}

/** Where a shadow copy's comparison goes: the running shadow rollout whose stable version answered. */
export type ShadowTarget = Pick<Rollout, 'id' | 'agent' | 'candidate_version'>;

/** A rollout's row, as both stores (SQLite in sqlite-rollout-state.ts, PostgreSQL in pg-rollout-state.ts) hold it. */
export interface RolloutRow {
  id: number;
  name: string;
  strategy: string;
  stable_version: number;
  candidate_version: number;
  state: string;
  started_at: string;
  started_by: string | null;
  ended_at: string | null;
  ended_by: string | null;
  reason: string | null;
  plan: string | null;
  stage: number;
  stage_started_at: string | null;
}

export const rolloutOfRow = (r: RolloutRow): Rollout => ({
  id: r.id,
  agent: r.name,
  strategy: r.strategy as RolloutStrategy,
  stable_version: r.stable_version,
  candidate_version: r.candidate_version,
  state: r.state as RolloutState,
  started_at: r.started_at,
  started_by: r.started_by,
  ended_at: r.ended_at,
  ended_by: r.ended_by,
  reason: r.reason,
  plan: r.plan === null ? null : (JSON.parse(r.plan) as CanaryPlan),
  stage: r.stage,
  stage_started_at: r.stage_started_at ?? r.started_at,
});

/**
 * Where conversations are pinned to a version of an agent: this node's SQLite (`RolloutStore`, sqlite-rollout-state.ts), or,
 * on a cluster node, the cluster's PostgreSQL (src/agents/rollouts/pg-pins.ts), so that a conversation whose
 * turns reach different nodes keeps one version on all of them.
 */
export interface ConversationPinsPort {
  /** Whether conversations of the agent may be pinned (it has had a rollout): only then is `pin` asked. */
  hasHistory(name: string): boolean;
  /**
   * The version a conversation runs on: the one it was pinned to, else `choose` (pinned now; the
   * first pin of a conversation wins). Synchronous: a store that reads over the network answers
   * from what `load` read.
   */
  pin(conversation: string, name: string, choose: number | (() => number)): number;
  /**
   * A store that reads over the network: reads the conversation's pin before `pin` is asked
   * (undefined: nothing to read); when it has none, pins what `draw` gives (the version `pin`
   * would choose now; undefined: not pinned), so the first pin is settled before the execution.
   */
  load?(conversation: string, name: string, draw?: () => number | undefined): Promise<void> | undefined;
  /** The agent has a rollout now (this node's or another's): its conversations get pinned from here on. */
  remember?(name: string): void;
}

/** A conversation's pin as a single node keeps it (`created_at`: epoch ms). */
export interface StoredPin {
  conversation_id: string;
  key: string;
  version: number;
  created_at: number;
}
