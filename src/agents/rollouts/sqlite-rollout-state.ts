/**
 * A single node's rollouts and conversation pins in its SQLite: the adapter of `RolloutStatePort`
 * (rollout-state.ts) and `ConversationPinsPort` (rollouts.ts) whose PostgreSQL counterparts, on a
 * cluster, are pg-rollout-state.ts and pg-pins.ts. One class holds both because the rollouts and the
 * pins share one migration and an agent's pins follow from its having had a rollout.
 */
import type { Db, Migration } from '../../storage/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { agentKey } from '../definition.js';
import { MemoryFigures } from './rollout-state-memory.js';
import type { NewRollout, RolloutStatePort, StageFigures } from './rollout-state.js';
import {
  PIN_MAX_AGE_MS,
  rolloutOfRow,
  type ConversationPinsPort,
  type Rollout,
  type RolloutRow,
  type RolloutState,
  type StoredPin,
} from './rollouts.js';

export const AGENT_ROLLOUT_MIGRATION: Migration = {
  id: 'agents-003-rollouts',
  sql: `CREATE TABLE agent_rollouts (
      id                INTEGER PRIMARY KEY AUTOINCREMENT,
      key               TEXT NOT NULL,
      name              TEXT NOT NULL,
      strategy          TEXT NOT NULL,
      stable_version    INTEGER NOT NULL,
      candidate_version INTEGER NOT NULL,
      state             TEXT NOT NULL,
      started_at        TEXT NOT NULL,
      started_by        TEXT,
      ended_at          TEXT,
      ended_by          TEXT,
      reason            TEXT
    );
    CREATE UNIQUE INDEX agent_rollouts_running ON agent_rollouts (key) WHERE state = 'running';
    CREATE INDEX agent_rollouts_key ON agent_rollouts (key, id);
    CREATE TABLE agent_conversation_versions (
      conversation_id TEXT NOT NULL,
      key             TEXT NOT NULL,
      version         INTEGER NOT NULL,
      created_at      INTEGER NOT NULL,
      PRIMARY KEY (conversation_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX agent_conversation_versions_age ON agent_conversation_versions (created_at);`,
};

/** Canary rollouts: the plan and the stage reached, so a restart resumes there. */
export const AGENT_CANARY_MIGRATION: Migration = {
  id: 'agents-004-canary',
  sql: `ALTER TABLE agent_rollouts ADD COLUMN plan TEXT;
    ALTER TABLE agent_rollouts ADD COLUMN stage INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE agent_rollouts ADD COLUMN stage_started_at TEXT;`,
};

const COLUMNS =
  'id, name, strategy, stable_version, candidate_version, state, started_at, started_by, ended_at, ended_by, reason, plan, stage, stage_started_at';

/**
 * A single node's rollouts (its SQLite), behind the port a cluster's PostgreSQL also serves
 * (rollout-state.ts). The canary figures are in memory: after a restart a canary resumes at its
 * saved stage with fresh figures (its hold time counts from the stage's saved start).
 */
export class RolloutStore implements ConversationPinsPort, RolloutStatePort {
  readonly shared = false;
  readonly #figures = new MemoryFigures();
  readonly #insert;
  readonly #running;
  readonly #latest;
  readonly #end;
  readonly #advance;
  /** Running rollouts by agent key: read on every resolution of an agent, so kept in memory. */
  readonly #cache = new Map<string, Rollout>();
  readonly #pin;
  readonly #pinned;
  readonly #prunePins;
  readonly #oldestPins;
  readonly #dropPin;
  readonly #db: Db;
  #pinsSincePrune = 0;
  /** Agents that have had a rollout (their conversations are pinned to a version); only grows. */
  readonly #everRolled = new Set<string>();

  constructor(db: Db) {
    this.#insert = db.prepare(
      `INSERT INTO agent_rollouts (key, name, strategy, stable_version, candidate_version, state, started_at, started_by, plan, stage, stage_started_at)
       VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, 0, ?) RETURNING ${COLUMNS}`,
    );
    this.#running = db.prepare(`SELECT ${COLUMNS}, key FROM agent_rollouts WHERE state = 'running'`);
    this.#latest = db.prepare(`SELECT ${COLUMNS} FROM agent_rollouts WHERE key = ? ORDER BY id DESC LIMIT 1`);
    this.#advance = db.prepare(
      `UPDATE agent_rollouts SET stage = ?, stage_started_at = ? WHERE id = ? AND state = 'running' RETURNING ${COLUMNS}`,
    );
    this.#end = db.prepare(
      `UPDATE agent_rollouts SET state = ?, ended_at = ?, ended_by = ?, reason = ? WHERE id = ? AND state = 'running' RETURNING ${COLUMNS}`,
    );
    for (const r of this.#running.all() as (RolloutRow & { key: string })[]) this.#cache.set(r.key, rolloutOfRow(r));
    for (const k of db.prepare('SELECT DISTINCT key FROM agent_rollouts').pluck().all() as string[])
      this.#everRolled.add(k);
    this.#pin = db.prepare(
      'INSERT OR IGNORE INTO agent_conversation_versions (conversation_id, key, version, created_at) VALUES (?, ?, ?, ?)',
    );
    this.#pinned = db
      .prepare('SELECT version FROM agent_conversation_versions WHERE conversation_id = ? AND key = ?')
      .pluck();
    this.#prunePins = db.prepare('DELETE FROM agent_conversation_versions WHERE created_at < ?');
    this.#oldestPins = db.prepare(
      'SELECT conversation_id, key, version, created_at FROM agent_conversation_versions ORDER BY created_at, conversation_id, key LIMIT ?',
    );
    this.#dropPin = db.prepare(
      'DELETE FROM agent_conversation_versions WHERE conversation_id = ? AND key = ? AND version = ?',
    );
    this.#db = db;
  }

  /**
   * Up to `limit` of the pins kept here, oldest first: a node that joins a cluster moves them to the
   * cluster's pins (src/agents/rollouts/pg-pins.ts `carryOver`), then drops them here (`dropPins`).
   */
  oldestPins(limit: number): StoredPin[] {
    return this.#oldestPins.all(limit) as StoredPin[];
  }

  /** Drops pins kept here (those moved to the cluster's), in one transaction. */
  dropPins(pins: readonly StoredPin[]): void {
    this.#db.transaction(() => {
      for (const p of pins) this.#dropPin.run(p.conversation_id, p.key, p.version);
    })();
  }

  /**
   * The version a conversation runs on: the one it was pinned to, else `version` (pinned now).
   * Why: one conversation never switches version part-way, whatever is promoted or rolled back.
   */
  pin(conversation: string, name: string, choose: number | (() => number)): number {
    const key = agentKey(name);
    const had = this.#pinned.get(conversation, key) as number | undefined;
    if (had !== undefined) return had;
    const version = typeof choose === 'number' ? choose : choose();
    this.#pin.run(conversation, key, version, Date.now());
    if (++this.#pinsSincePrune >= 1000) {
      this.#pinsSincePrune = 0;
      this.#prunePins.run(Date.now() - PIN_MAX_AGE_MS);
    }
    return version;
  }

  /** The agent has a rollout now (kept elsewhere: a cluster's): its conversations get pinned from here on. */
  remember(name: string): void {
    this.#everRolled.add(agentKey(name));
  }

  /** Whether the agent has ever had a rollout (only then do its conversations get pinned). */
  hasHistory(name: string): boolean {
    return this.#everRolled.has(agentKey(name));
  }

  start({ name, strategy, stable, candidate, by, plan }: NewRollout): Rollout {
    const now = new Date().toISOString();
    const r = rolloutOfRow(
      this.#insert.get(
        agentKey(name),
        name,
        strategy,
        stable,
        candidate,
        now,
        by ?? null,
        plan ? JSON.stringify(plan) : null,
        now,
      ) as RolloutRow,
    );
    this.#cache.set(agentKey(name), r);
    this.#everRolled.add(agentKey(name));
    return r;
  }

  /** The running rollout of an agent, if any. */
  running(name: string): Rollout | undefined {
    return this.#cache.get(agentKey(name));
  }

  /** Every running rollout. */
  runningAll(): Rollout[] {
    return [...this.#cache.values()];
  }

  /** The newest rollout of an agent, running or ended. */
  latest(name: string): Rollout | undefined {
    const r = this.#latest.get(agentKey(name)) as RolloutRow | undefined;
    return r && rolloutOfRow(r);
  }

  /** A canary moves to `stage` (saved: a restart resumes there). */
  advance(r: Rollout, stage: number): Rollout {
    const row = this.#advance.get(stage, new Date().toISOString(), r.id) as RolloutRow | undefined;
    if (!row) return r;
    const next = rolloutOfRow(row);
    this.#cache.set(agentKey(r.agent), next);
    return next;
  }

  end(r: Rollout, state: Exclude<RolloutState, 'running'>, by: string | undefined, reason: string | null): Rollout {
    const ended = this.#end.get(state, new Date().toISOString(), by ?? null, reason, r.id) as RolloutRow | undefined;
    this.#cache.delete(agentKey(r.agent));
    this.#figures.drop(r.id);
    return ended ? rolloutOfRow(ended) : r;
  }

  count(r: Rollout, version: number, ok: boolean, ms: number): void {
    this.#figures.count(r, version, ok, ms);
  }

  figures(r: Rollout): StageFigures {
    return this.#figures.of(r);
  }

  /** A single node is always its own judge. */
  async asJudge(fn: () => Promise<void>): Promise<boolean> {
    await fn();
    return true;
  }

  /**
   * Ends `r` as `state` when it is still running; otherwise throws 'conflict' saying how it ended.
   * Why: its judge's promotion (or rollback) and one asked by a user can start together; the
   * second to record its version must not record it too (a rollback version after a promotion
   * would leave the history saying the stable version while the candidate is live).
   */
  endRunning(
    r: Rollout,
    state: Exclude<RolloutState, 'running'>,
    by: string | undefined,
    reason: string | null,
  ): Rollout {
    const ended = this.end(r, state, by, reason);
    if (ended.state !== 'running') return ended;
    const now = this.latest(r.agent);
    const how =
      now?.id === r.id && now.state !== 'running'
        ? `was ${now.state.replace('_', ' ')}${now.ended_by ? ` by ${now.ended_by}` : ''}`
        : 'ended';
    throw new CaxtonError(
      'conflict',
      `the ${r.strategy} rollout of version ${r.candidate_version} of agent "${r.agent}" ${how} meanwhile; nothing more to do (caxton agent rollout status ${r.agent})`,
      {
        name: r.agent,
        rollout: now ?? r,
      },
    );
  }
}
