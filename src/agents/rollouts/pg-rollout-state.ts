/**
 * The rollouts of a cluster in its PostgreSQL (ADR 0054), beside agent versions and pins: the
 * port a single node serves from its SQLite (rollout-state.ts, sqlite-rollout-state.ts), so every node reads the same rows.
 *
 * - `rollouts`: one row per rollout (strategy, stage, versions, start, outcome); at most one
 *   running per agent (a unique index: two nodes starting one at once, the second answers 409). A
 *   start, promotion or rollback writes its row in the transaction of the version it records, so
 *   any node can end any rollout and two nodes ending one at once record one end.
 * - Running rollouts are answered from memory (read on every resolution of an agent), read again
 *   every second (`refresh`, driven by the controller) and for one agent before a change of it.
 *   A read that overlaps a write of this node is not kept, down to the write's COMMIT: a start or
 *   end written in a version's transaction (a client of this pool) counts as written when that
 *   client goes back to the pool, since a read made before then may not see it yet.
 * - `rollout_figures`: a canary's executions per stage, version and latency bucket (a histogram,
 *   so the p99 of every node's executions together is known). Each node adds its counts in one
 *   statement a second (`requests = requests + n`), so the judge reads the cluster's totals.
 * - The judge runs on one node at a time: each round holds a transaction-scoped try-lock
 *   (`pg_try_advisory_xact_lock`, as retention does); the nodes that do not get it skip the round,
 *   and when the judging node stops, the next node's round takes the lock.
 */
import type pg from 'pg';
import { CaxtonError } from '../../shared/errors.js';
import { guardReads, migrateSchema, quotedSchema, type PgMigration } from '../../storage/pg/index.js';
import { agentKey } from '../definition.js';
import {
  BucketWindow,
  latencyBucket,
  stageFigures,
  type NewRollout,
  type RolloutChanges,
  type RolloutStatePort,
  type StageFigures,
} from './rollout-state.js';
import { rolloutOfRow, type Rollout, type RolloutRow, type RolloutState } from './rollouts.js';

const MIGRATIONS: readonly PgMigration[] = [
  {
    id: 'cluster-rollouts-001',
    sql: (s) => `
      CREATE TABLE ${s}.rollouts (
        id                serial PRIMARY KEY,
        key               text NOT NULL,
        name              text NOT NULL,
        strategy          text NOT NULL,
        stable_version    integer NOT NULL,
        candidate_version integer NOT NULL,
        state             text NOT NULL,
        plan              text,
        stage             integer NOT NULL DEFAULT 0,
        checking          boolean NOT NULL DEFAULT false,
        started_at        text NOT NULL,
        started_by        text,
        stage_started_at  text NOT NULL,
        updated_at        text NOT NULL,
        ended_at          text,
        ended_by          text,
        reason            text
      );
      CREATE UNIQUE INDEX rollouts_running ON ${s}.rollouts (key) WHERE state = 'running';
      CREATE INDEX rollouts_key ON ${s}.rollouts (key, id);
      CREATE TABLE ${s}.rollout_figures (
        rollout_id integer NOT NULL,
        stage      integer NOT NULL,
        version    integer NOT NULL,
        bucket     smallint NOT NULL,
        requests   bigint NOT NULL,
        errors     bigint NOT NULL,
        PRIMARY KEY (rollout_id, stage, version, bucket)
      );
    `,
  },
];

/** The longest a write's transaction is waited for before this node's reads are kept again (ms). */
const UNSETTLED_MS = 60_000;

/** Counts waiting to be written at most (beyond it, the oldest are dropped: PostgreSQL has been away long). */
const MAX_PENDING = 10_000;

/** The shared row has the checking flag and always a stage start. */
interface Row extends RolloutRow {
  checking: boolean;
  stage_started_at: string;
}

const COLUMNS =
  'id, name, strategy, stable_version, candidate_version, state, plan, stage, checking, started_at, started_by, stage_started_at, ended_at, ended_by, reason';

export interface PgRolloutStateOptions {
  pool: pg.Pool;
  /** The cluster's schema (created if missing). */
  schema: string;
  /** How often this node's canary counts are added to the shared figures (ms; default 1000). */
  flushMs?: number;
  /** Counts that could not be written (kept and tried again, up to a bound). */
  onError?: (e: unknown) => void;
}

type Querier = Pick<pg.Pool, 'query'>;

export class PgRolloutState implements RolloutStatePort {
  readonly shared = true;
  readonly #pool: pg.Pool;
  readonly #s: string;
  readonly #onError: PgRolloutStateOptions['onError'];
  /** Running rollouts by agent key. */
  #cache = new Map<string, Rollout>();
  /** Canaries whose checks still run, by id. */
  readonly #checking = new Set<number>();
  /** Bumped by every write of this node: a refresh read before one does not replace what it wrote. */
  #writes = 0;
  /** The transactions holding a write of this node not yet committed (or rolled back), with when each wrote. */
  readonly #unsettled = new Map<unknown, number>();
  /** A transaction's client back in the pool: its writes are committed or gone. */
  readonly #onRelease = (_err: unknown, client: unknown): void => {
    if (this.#unsettled.delete(client)) this.#writes++;
  };
  /** This node's counts not yet written: `rollout:stage:version:bucket` → counts. */
  #pending = new Map<string, { requests: number; errors: number }>();
  readonly #flushTimer: NodeJS.Timeout;
  #flushing: Promise<void> | undefined;

  private constructor(o: PgRolloutStateOptions) {
    this.#pool = o.pool;
    this.#s = quotedSchema(o.schema);
    this.#onError = o.onError;
    this.#flushTimer = setInterval(() => void this.flush(), o.flushMs ?? 1000);
    this.#flushTimer.unref();
    this.#pool.on('release', this.#onRelease);
  }

  static migrate(pool: pg.Pool, schema: string): Promise<void> {
    return migrateSchema(pool, schema, MIGRATIONS);
  }

  /** Creates the tables if missing and reads the running rollouts. */
  static async open(o: PgRolloutStateOptions): Promise<PgRolloutState> {
    await PgRolloutState.migrate(o.pool, o.schema);
    const state = new PgRolloutState(o);
    await state.refresh();
    return guardReads(state);
  }

  running(name: string): Rollout | undefined {
    return this.#cache.get(agentKey(name));
  }

  runningAll(): Rollout[] {
    return [...this.#cache.values()];
  }

  checking(r: Rollout): boolean {
    return this.#checking.has(r.id);
  }

  async latest(name: string): Promise<Rollout | undefined> {
    const r = await this.#pool.query<Row>(
      `SELECT ${COLUMNS} FROM ${this.#s}.rollouts WHERE key = $1 ORDER BY id DESC LIMIT 1`,
      [agentKey(name)],
    );
    return r.rows[0] && rolloutOfRow(r.rows[0]);
  }

  async start(n: NewRollout, tx?: unknown): Promise<Rollout> {
    const now = new Date().toISOString();
    let r: pg.QueryResult<Row>;
    try {
      r = await this.#q(tx).query<Row>(
        `INSERT INTO ${this.#s}.rollouts (key, name, strategy, stable_version, candidate_version, state, plan, checking, started_at, started_by, stage_started_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $8, $9, $8, $8) RETURNING ${COLUMNS}`,
        [
          agentKey(n.name),
          n.name,
          n.strategy,
          n.stable,
          n.candidate,
          n.plan ? JSON.stringify(n.plan) : null,
          n.checking ?? false,
          now,
          n.by ?? null,
        ],
      );
    } catch (e) {
      if ((e as { code?: string }).code === '23505')
        throw new CaxtonError(
          'rollout_in_progress',
          `agent "${n.name}" has a rollout running already (started through another node a moment ago); end it first: caxton agent promote ${n.name}, or caxton agent rollback ${n.name}`,
          { name: n.name },
        );
      throw e;
    }
    return this.#keep(rolloutOfRow(r.rows[0]!));
  }

  async checked(r: Rollout): Promise<void> {
    await this.#pool.query(`UPDATE ${this.#s}.rollouts SET checking = false, updated_at = $2 WHERE id = $1`, [
      r.id,
      new Date().toISOString(),
    ]);
    this.#writes++;
    this.#checking.delete(r.id);
  }

  async advance(r: Rollout, stage: number): Promise<Rollout> {
    const now = new Date().toISOString();
    const row = (
      await this.#pool.query<Row>(
        `UPDATE ${this.#s}.rollouts SET stage = $2, stage_started_at = $3, updated_at = $3
         WHERE id = $1 AND state = 'running' AND stage < $2 RETURNING ${COLUMNS}`,
        [r.id, stage, now],
      )
    ).rows[0];
    return row ? this.#keep(rolloutOfRow(row)) : r;
  }

  async end(
    r: Rollout,
    state: Exclude<RolloutState, 'running'>,
    by: string | undefined,
    reason: string | null,
    tx?: unknown,
  ): Promise<Rollout> {
    const now = new Date().toISOString();
    const row = (
      await this.#q(tx).query<Row>(
        `UPDATE ${this.#s}.rollouts SET state = $2, ended_at = $3, updated_at = $3, ended_by = $4, reason = $5
         WHERE id = $1 AND state = 'running' RETURNING ${COLUMNS}`,
        [r.id, state, now, by ?? null, reason],
      )
    ).rows[0];
    this.#writes++;
    if (this.#cache.get(agentKey(r.agent))?.id === r.id) this.#cache.delete(agentKey(r.agent));
    return row ? rolloutOfRow(row) : r;
  }

  async endRunning(
    r: Rollout,
    state: Exclude<RolloutState, 'running'>,
    by: string | undefined,
    reason: string | null,
    tx?: unknown,
  ): Promise<Rollout> {
    const ended = await this.end(r, state, by, reason, tx);
    if (ended.state !== 'running') return ended;
    const now = (await this.#q(tx).query<Row>(`SELECT ${COLUMNS} FROM ${this.#s}.rollouts WHERE id = $1`, [r.id]))
      .rows[0];
    const how =
      now && now.state !== 'running'
        ? `was ${now.state.replace('_', ' ')}${now.ended_by ? ` by ${now.ended_by}` : ''}`
        : 'ended';
    throw new CaxtonError(
      'conflict',
      `the ${r.strategy} rollout of version ${r.candidate_version} of agent "${r.agent}" ${how} meanwhile; nothing more to do (caxton agent rollout status ${r.agent})`,
      { name: r.agent, rollout: now ? rolloutOfRow(now) : r },
    );
  }

  count(r: Rollout, version: number, ok: boolean, ms: number): void {
    const k = `${r.id}:${r.stage}:${version}:${latencyBucket(ms)}`;
    const c = this.#pending.get(k);
    if (c) {
      c.requests++;
      if (!ok) c.errors++;
      return;
    }
    if (this.#pending.size >= MAX_PENDING) this.#pending.delete(this.#pending.keys().next().value!);
    this.#pending.set(k, { requests: 1, errors: ok ? 0 : 1 });
  }

  /** Adds this node's counts to the shared figures, in one statement (kept for the next try when it fails). */
  flush(): Promise<void> {
    if (this.#flushing || this.#pending.size === 0) return this.#flushing ?? Promise.resolve();
    const batch = this.#pending;
    this.#pending = new Map();
    const cols: [number[], number[], number[], number[], number[], number[]] = [[], [], [], [], [], []];
    for (const [k, c] of batch) {
      const [id, stage, version, bucket] = k.split(':').map(Number) as [number, number, number, number];
      cols[0].push(id);
      cols[1].push(stage);
      cols[2].push(version);
      cols[3].push(bucket);
      cols[4].push(c.requests);
      cols[5].push(c.errors);
    }
    this.#flushing = this.#pool
      .query(
        `INSERT INTO ${this.#s}.rollout_figures AS f (rollout_id, stage, version, bucket, requests, errors)
         SELECT * FROM unnest($1::int[], $2::int[], $3::int[], $4::smallint[], $5::bigint[], $6::bigint[])
         ON CONFLICT (rollout_id, stage, version, bucket)
         DO UPDATE SET requests = f.requests + excluded.requests, errors = f.errors + excluded.errors`,
        cols,
      )
      .then(
        () => undefined,
        (e: unknown) => {
          // Tried again with the next batch (the counts since are added to these).
          for (const [k, c] of batch) {
            const now = this.#pending.get(k);
            if (now) {
              now.requests += c.requests;
              now.errors += c.errors;
            } else if (this.#pending.size < MAX_PENDING) this.#pending.set(k, c);
          }
          this.#onError?.(e);
        },
      )
      .finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  async figures(r: Rollout): Promise<StageFigures> {
    const rows = (
      await this.#pool.query<{ stage: number; version: number; bucket: number; requests: string; errors: string }>(
        `SELECT stage, version, bucket, requests, errors FROM ${this.#s}.rollout_figures WHERE rollout_id = $1 AND stage <= $2`,
        [r.id, r.stage],
      )
    ).rows;
    const windows = new Map<string, BucketWindow>();
    const add = (stage: number, version: number, bucket: number, requests: number, errors: number) => {
      const k = `${stage}:${version}`;
      let w = windows.get(k);
      if (!w) windows.set(k, (w = new BucketWindow()));
      w.add(bucket, requests, errors);
    };
    for (const x of rows) add(x.stage, x.version, x.bucket, Number(x.requests), Number(x.errors));
    // This node's counts not yet written count too.
    for (const [k, c] of this.#pending) {
      const [id, stage, version, bucket] = k.split(':').map(Number) as [number, number, number, number];
      if (id === r.id && stage <= r.stage) add(stage, version, bucket, c.requests, c.errors);
    }
    return stageFigures(
      r,
      (stage, version) => windows.get(`${stage}:${version}`),
      () => new BucketWindow(),
    );
  }

  async asJudge(fn: () => Promise<void>): Promise<boolean> {
    const c = await this.#pool.connect();
    let broken: Error | undefined;
    const onError = (e: Error) => (broken = e);
    c.on('error', onError);
    try {
      // A session-scoped try-lock held for the round only: released below, or with the connection
      // when this node dies, so that another node's next round takes it.
      const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok', [
        `caxton-canary-judge:${this.#s}`,
      ]);
      if (!got.rows[0]!.ok) return false;
      try {
        await fn();
      } finally {
        await c.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [`caxton-canary-judge:${this.#s}`]);
      }
      return true;
    } catch (e) {
      broken ??= e instanceof Error ? e : new Error(String(e));
      throw e;
    } finally {
      c.off('error', onError);
      // A connection whose unlock may not have run is closed: its lock goes with it.
      c.release(broken);
    }
  }

  async refresh(prepare?: (changes: RolloutChanges) => Promise<void>): Promise<void> {
    const writes = this.#writes;
    const rows = (await this.#pool.query<Row>(`SELECT ${COLUMNS} FROM ${this.#s}.rollouts WHERE state = 'running'`))
      .rows;
    const next = new Map<string, Rollout>();
    const checking = new Set<number>();
    for (const row of rows) {
      const r = rolloutOfRow(row);
      next.set(agentKey(r.agent), r);
      if (row.checking) checking.add(r.id);
    }
    const added = [...next.values()].filter((r) => this.#cache.get(agentKey(r.agent))?.id !== r.id);
    const ended = [...this.#cache.values()].filter((r) => next.get(agentKey(r.agent))?.id !== r.id);
    if (prepare && (added.length > 0 || ended.length > 0)) await prepare({ added, ended });
    // This node wrote meanwhile, or has a write not yet committed: what was read may be older than
    // what it wrote; the next read counts.
    if (writes !== this.#writes || this.#pendingWrite()) return;
    this.#cache = next;
    this.#checking.clear();
    for (const id of checking) this.#checking.add(id);
  }

  async reload(name: string, prepare?: (changes: RolloutChanges) => Promise<void>): Promise<void> {
    const key = agentKey(name);
    const writes = this.#writes;
    const row = (
      await this.#pool.query<Row>(`SELECT ${COLUMNS} FROM ${this.#s}.rollouts WHERE key = $1 AND state = 'running'`, [
        key,
      ])
    ).rows[0];
    const now = row && rolloutOfRow(row);
    const was = this.#cache.get(key);
    if (prepare && now?.id !== was?.id) await prepare({ added: now ? [now] : [], ended: was ? [was] : [] });
    if (writes !== this.#writes || this.#pendingWrite()) return;
    if (now) {
      this.#cache.set(key, now);
      if (row.checking) this.#checking.add(now.id);
    } else this.#cache.delete(key);
  }

  async close(): Promise<void> {
    clearInterval(this.#flushTimer);
    this.#pool.off('release', this.#onRelease);
    await this.#flushing;
    await this.flush();
  }

  #keep(r: Rollout): Rollout {
    this.#writes++;
    if (r.state === 'running') this.#cache.set(agentKey(r.agent), r);
    return r;
  }

  /** The version's transaction when there is one (its write settles when it goes back to the pool), else the pool. */
  #q(tx: unknown): Querier {
    if (tx === undefined) return this.#pool;
    this.#unsettled.set(tx, Date.now());
    return tx as Querier;
  }

  /**
   * Whether a write of this node may still be uncommitted. A transaction is given UNSETTLED_MS at
   * most: one whose client never comes back here (another pool's) must not stop this node from
   * following the cluster's rollouts for good.
   */
  #pendingWrite(): boolean {
    const now = Date.now();
    for (const [tx, since] of this.#unsettled)
      if (now - since > UNSETTLED_MS) {
        this.#unsettled.delete(tx);
        this.#writes++;
      }
    return this.#unsettled.size > 0;
  }
}
