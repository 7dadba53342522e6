/**
 * Durable runs of a cluster, in PostgreSQL: `runs` and `run_steps` in the cluster schema, shared
 * by every node, so a run whose node died is resumed by another from its last committed step.
 *
 *  - **group commit**: the writes every run queued in one turn of the event loop (new runs, their
 *    steps, resumes, ends) go to PostgreSQL as one multi-statement query, which it runs as one
 *    transaction: a step costs its run a share of one round trip, and `append` resolves once it
 *    committed. The steps of the batch are one multi-row INSERT.
 *  - **one run per key**: new runs are inserted, in the batch, with ON CONFLICT (key) DO NOTHING
 *    RETURNING id; the start of a key whose INSERT made nothing reads the run the winner made.
 *  - **leases**: the node running a run holds it until `lease_until`, renewed for every run it
 *    holds by one UPDATE per heartbeat. Another node takes a run over only once its lease expired
 *    (its node died or lost PostgreSQL), in one UPDATE whose WHERE is that condition, so two
 *    nodes never both take it; until then a start of the same key on another node is refused as
 *    busy (retried later, without spending an attempt, by the message bus). At its start a node
 *    also takes back the runs recorded under its own name (an earlier process of it); while it
 *    runs, its periodic look takes only runs still running whose lease expired (`Takeover`).
 *  - **lost runs**: the heartbeat's UPDATE answers the runs it renewed; a run it holds and did not
 *    renew was cancelled through another node (or taken over after this node's lease ran out),
 *    and is stopped here (`onLost`) without writing anything more of it.
 *  - **lazy runs**: a run without a key that nobody reads by id before it acts is written with its
 *    first step that must be on disk, and not at all when it has none (as on SQLite). A keyed run
 *    is written at once: its INSERT is what makes one run of a key across nodes. A message's
 *    first run is lazy too, but only while it is short: one still going `writeAfterMs` after it
 *    opened is written then, so a second delivery of its message (the queue's ack wait outlived
 *    by a stalled node) finds it held here instead of starting the run again.
 *  - **retention**: finished runs past `retentionMs`, or beyond `maxRows` finished runs (the
 *    oldest first), with their steps, deleted by one node at a time (a transaction-scoped try-lock).
 */
import type pg from 'pg';
import { CaxtonError } from '../../shared/errors.js';
import { scrubSecretsIn } from '../../shared/secrets.js';
import { Ticks } from '../../shared/ticks.js';
import {
  inTransaction,
  isUnreachable,
  literal,
  migrateSchema,
  quotedSchema,
  stateUnavailable,
  type Literal,
  type PgMigration,
} from '../../storage/pg/index.js';
import type { AgentResponse, InvokeRequest } from '../types.js';
import {
  cancelledRunError,
  UnwrittenRuns,
  newRunRecord,
  type OpenedRun,
  type RunJournal,
  type RunQuery,
  type RunRecord,
  type RunStart,
  type RunStep,
  type RunWithSteps,
  type Takeover,
} from './run-model.js';

const MIGRATIONS: readonly PgMigration[] = [
  {
    id: 'cluster-runs-001',
    sql: (s) => `
      CREATE TABLE ${s}.runs (
        id          text PRIMARY KEY,
        key         text UNIQUE,
        agent       text NOT NULL,
        origin      text NOT NULL,
        status      text NOT NULL,
        principal   text,
        request     text NOT NULL,
        created_at  bigint NOT NULL,
        updated_at  bigint NOT NULL,
        resumes     integer NOT NULL DEFAULT 0,
        error       text,
        response    text,
        node        text NOT NULL,
        lease_until timestamptz NOT NULL
      );
      CREATE INDEX runs_running ON ${s}.runs (created_at) WHERE status = 'running';
      CREATE INDEX runs_finished ON ${s}.runs (updated_at) WHERE status IN ('completed', 'failed', 'cancelled');
      CREATE TABLE ${s}.run_steps (
        run_id text NOT NULL,
        seq    integer NOT NULL,
        ts     bigint NOT NULL,
        step   text NOT NULL,
        PRIMARY KEY (run_id, seq)
      );
    `,
  },
  { id: 'cluster-runs-002-version', sql: (s) => `ALTER TABLE ${s}.runs ADD COLUMN IF NOT EXISTS version text;` },
];

/** How long a node holds a run without renewing it (default; `[cluster] run_lease`), and how often it renews (a third of it). */
export const RUN_LEASE_MS = 15_000;

/** Finished runs deleted in one transaction of the retention sweep; it goes on while batches are full. */
const PRUNE_BATCH = 5000;

interface Row {
  id: string;
  key: string | null;
  agent: string;
  version: string | null;
  origin: string;
  status: string;
  principal: string | null;
  request: string;
  created_at: string;
  updated_at: string;
  resumes: number;
  error: string | null;
  response: string | null;
  node: string;
}

const COLUMNS =
  'id, key, agent, version, origin, status, principal, request, created_at, updated_at, resumes, error, response, node';

function recordOf(r: Row): RunRecord {
  return {
    id: r.id,
    key: r.key,
    agent: r.agent,
    version: r.version ?? null,
    origin: r.origin as RunRecord['origin'],
    status: r.status as RunRecord['status'],
    principal: r.principal,
    request: JSON.parse(r.request) as InvokeRequest,
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
    resumes: r.resumes,
    error: r.error === null ? null : (JSON.parse(r.error) as RunRecord['error']),
    response: r.response === null ? null : (JSON.parse(r.response) as AgentResponse),
    node: r.node,
  };
}

/**
 * Which runs a claim by node `node` (an SQL parameter) may take. A takeover takes only a run still
 * running: what it read may since have paused or ended (a paused run is taken by the decision's
 * resume). While this process runs (`expired`), only a run whose lease expired: one recorded under
 * this node's name may be one this process runs, between the write that ends its turn and the
 * next. At a start (`left`), also one recorded under this node's name, whatever its lease: an
 * earlier process of this node left it. Without a takeover (a decision's resume, a repeated
 * request), also a run waiting for a decision or one that failed.
 */
function takeoverSql(takeover: Takeover | undefined, node = '$2'): string {
  const left = `status = 'running' AND (lease_until < now() OR node = ${node})`;
  if (takeover === 'expired') return `status = 'running' AND lease_until < now()`;
  if (takeover === 'left') return left;
  return `(status IN ('failed', 'awaiting_approval') OR (${left}))`;
}

/** A start of a run another node holds: the caller tries again once that node's lease may have run out. */
function heldElsewhere(run: string, node: string, leaseMs: number): CaxtonError {
  return new CaxtonError(
    'rate_limited',
    `run ${run} is running on node ${node}; it is taken over here only if that node stops renewing its lease (${Math.ceil(leaseMs / 1000)} s)`,
    { limit: 'concurrency', retry_after: Math.ceil(leaseMs / 1000), run, node },
  );
}

export interface PgRunJournalOptions {
  pool: pg.Pool;
  /** The cluster schema (`[cluster.state] schema`); migrated by `PgRunJournal.migrate`. */
  schema: string;
  /** This node's name: the holder of the runs it runs. */
  node: string;
  retentionMs: number;
  /** The most finished runs kept; the oldest go first (default 100,000). */
  maxRows?: number;
  /** How long a run stays held without a heartbeat (default RUN_LEASE_MS); renewed every third of it. */
  leaseMs?: number;
  /**
   * How long a message's first run may go on unwritten (default a third of `leaseMs`): past it,
   * its row is written so that a second delivery of its message finds the run held here. Shorter
   * than the time the message queue gives a node before it hands the delivery to another.
   */
  writeAfterMs?: number;
  /** How often retention runs (default 60 s). */
  sweepIntervalMs?: number;
  onError?: (e: unknown) => void;
}

/**
 * One queued write, with the run it belongs to: a statement (`sql`), or a row of the batch's one
 * INSERT of new runs (`open`) or of steps (`row`).
 */
type Write =
  | { sql: string; row?: undefined; open?: undefined; run: string }
  | { row: string; sql?: undefined; open?: undefined; run: string }
  | { open: string; sql?: undefined; row?: undefined; run: string };

interface Batch {
  writes: Write[];
  /** Each learns the ids of the runs the batch's INSERT made (a keyed run another start made first is not among them). */
  waiters: { resolve: (created: ReadonlySet<string>) => void; reject: (e: unknown) => void; runs: Set<string> }[];
}

export class PgRunJournal implements RunJournal {
  readonly #o: PgRunJournalOptions;
  readonly #s: string;
  readonly #pool: pg.Pool;
  readonly #leaseMs: number;
  /** The next step number of each run this node holds. */
  readonly #seq = new Map<string, number>();
  /** The runs this node holds whose row is committed: those the heartbeat renews, and misses when they are lost. */
  readonly #rowed = new Set<string>();
  /** Lazy runs opened here and not written yet: what their row is made of, and the steps held back with it. */
  readonly #unwritten = new UnwrittenRuns<{ start: RunStart; now: number }>();
  /** Runs lost (cancelled or taken over elsewhere) while they ran here, with the error that stops them. */
  readonly #lost = new Map<string, Error>();
  /** Lazy keyed runs whose row is being written: their steps wait for it. */
  readonly #keying = new Map<string, Promise<void>>();
  readonly #lostListeners: ((id: string, reason: Error) => void)[] = [];
  /** The batch being filled, and the writing of batches (one at a time, in order), while it runs. */
  #batch: Batch | undefined;
  #writing: Promise<void> | undefined;
  #scheduled = false;
  /** The lease heartbeat, the long-run writes and the prune; closing waits for a heartbeat in flight. */
  readonly #ticks = new Ticks();
  #pruning: Promise<unknown> | undefined;
  #closed = false;

  static migrate(pool: pg.Pool, schema: string): Promise<void> {
    return migrateSchema(pool, schema, MIGRATIONS);
  }

  constructor(o: PgRunJournalOptions) {
    this.#o = o;
    this.#s = quotedSchema(o.schema);
    this.#pool = o.pool;
    this.#leaseMs = o.leaseMs ?? RUN_LEASE_MS;
    const writeAfter = o.writeAfterMs ?? Math.floor(this.#leaseMs / 3);
    this.#ticks.every(
      Math.floor(this.#leaseMs / 3),
      () => this.heartbeat(),
      (e) => o.onError?.(e),
    );
    this.#ticks.every(Math.max(100, Math.floor(writeAfter / 2)), () => this.#writeLong(writeAfter));
    this.#ticks.every(o.sweepIntervalMs ?? 60_000, () => this.#prune());
  }

  /** The runs this node holds (their lease renewed by the heartbeat). */
  get held(): readonly string[] {
    return [...this.#seq.keys()];
  }

  /** `now() + lease` in SQL. */
  get #until(): string {
    return `now() + interval '${this.#leaseMs} milliseconds'`;
  }

  async #query<R extends pg.QueryResultRow>(sql: string, args: readonly unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.#pool.query<R>(sql, args as unknown[]);
    } catch (e) {
      throw stateUnavailable(e);
    }
  }

  /** A new run's row as SQL values (its request scrubbed of secrets, as JSON), and the scrubbed request. */
  #rowOf(start: RunStart, now: number): { row: string; request: InvokeRequest } {
    const request = scrubSecretsIn(start.request);
    const values: Literal[] = [
      start.id,
      start.key,
      start.agent,
      start.version ?? null,
      start.origin,
      'running',
      start.principal,
      JSON.stringify(request),
      now,
      now,
      this.#o.node,
    ];
    return { row: `(${values.map(literal).join(', ')}, ${this.#until})`, request };
  }

  async open(start: RunStart): Promise<OpenedRun> {
    const now = Date.now();
    this.#seq.set(start.id, 0);
    // A lazy run's row values (its request scrubbed, as JSON, then SQL literals) are made when it
    // is written: a run that writes nothing pays for none of it.
    const lazy = start.lazy === true && (start.key === null || start.firstDelivery === true);
    if (lazy) {
      // With no key, nothing else can start this run. A message's first delivery: no run of its key
      // can exist yet, so the key's INSERT waits for the first step that must be on disk (before any
      // side effect), and a run that records none (one model turn, no tool call) writes nothing; a
      // redelivery of its pending delivery runs it again.
      this.#unwritten.open(start.id, { start, now });
      return { run: newRunRecord(start, start.request, now, this.#o.node), steps: [], created: true };
    }
    const { row, request } = this.#rowOf(start, now);
    const run = newRunRecord(start, request, now, this.#o.node);
    if (start.key === null) {
      // Nothing else can start this run: its row commits with its first step, not awaited here.
      this.#insert(start.id, row);
      return { run, steps: [], created: true };
    }
    const created = this.#enqueue({ open: row, run: start.id });
    // Shared with the other writes of the batch; ON CONFLICT (key) DO NOTHING makes one run of a key across nodes.
    let made: boolean;
    try {
      made = (await created).has(start.id);
    } finally {
      this.#seq.delete(start.id);
    }
    if (made) {
      this.#seq.set(start.id, 0);
      this.#rowed.add(start.id);
      return { run, steps: [], created: true };
    }
    // Another start made it first (here or on another node): take it if it is free, else it is busy.
    const existing = (await this.#query<Row>(`SELECT ${COLUMNS} FROM ${this.#s}.runs WHERE key = $1`, [start.key]))
      .rows[0];
    if (existing === undefined) throw new CaxtonError('internal', `run of key ${start.key} vanished while opened`);
    if (existing.status !== 'running')
      return { run: recordOf(existing), steps: await this.#stepsOf(existing.id), created: false };
    const taken = await this.#claim(existing.id);
    if (taken === undefined) {
      const now2 = (await this.#query<Row>(`SELECT ${COLUMNS} FROM ${this.#s}.runs WHERE id = $1`, [existing.id]))
        .rows[0];
      if (now2 !== undefined && now2.status !== 'running')
        return { run: recordOf(now2), steps: await this.#stepsOf(now2.id), created: false };
      throw heldElsewhere(existing.id, now2?.node ?? existing.node, this.#leaseMs);
    }
    // Its steps read after it was taken: the node that held it can add none since.
    return { run: taken, steps: await this.#stepsOf(taken.id), created: false };
  }

  /**
   * Takes a run for this node: a running one whose lease ran out or that is recorded under this
   * node's name, or one that ended without an answer (a failed run resumed, as on SQLite);
   * undefined when another node holds it or it completed.
   */
  async #claim(id: string, takeover?: Takeover): Promise<RunRecord | undefined> {
    const r = await this.#query<Row>(
      `UPDATE ${this.#s}.runs SET node = $2, lease_until = ${this.#until}, status = 'running'
       WHERE id = $1 AND ${takeoverSql(takeover)}
       RETURNING ${COLUMNS}`,
      [id, this.#o.node],
    );
    const row = r.rows[0];
    if (row === undefined) return undefined;
    this.#lost.delete(id);
    this.#seq.set(id, await this.#nextSeq(id));
    this.#rowed.add(id);
    return recordOf(row);
  }

  /** The step number after the last one stored of run `id`. */
  async #nextSeq(id: string): Promise<number> {
    const max = (
      await this.#query<{ max: number | null }>(`SELECT max(seq) AS max FROM ${this.#s}.run_steps WHERE run_id = $1`, [
        id,
      ])
    ).rows[0]?.max;
    return max === null || max === undefined ? 0 : max + 1;
  }

  /** Queues a new run's row, not awaited: it commits before the run's first step (same batch or an earlier one). */
  #insert(id: string, row: string): void {
    this.#enqueue({ open: row, run: id }).then(
      () => {
        if (this.#seq.has(id) && !this.#lost.has(id)) this.#rowed.add(id);
      },
      (e: unknown) => this.#o.onError?.(e),
    );
  }

  /**
   * Writes a lazy run's row (once) before anything else of it; answers the steps it held back, and
   * for a keyed run the wait for its INSERT (`keyed`), which must have made the run before any
   * step of it is written.
   */
  #written(id: string): { held: readonly RunStep[]; keyed?: Promise<void> } {
    const lazy = this.#unwritten.take(id);
    if (lazy === undefined) {
      const keyed = this.#keying.get(id);
      return keyed === undefined ? { held: [] } : { held: [], keyed };
    }
    const { row } = this.#rowOf(lazy.row.start, lazy.row.now);
    if (lazy.row.start.key !== null) {
      // Until it committed, a step of this run waits for it (the key may turn out another run's).
      const keyed = this.#insertKeyed(id, row);
      this.#keying.set(id, keyed);
      const settled = (): void => void this.#keying.delete(id);
      keyed.then(settled, settled);
      return { held: lazy.held, keyed };
    }
    this.#insert(id, row);
    return { held: lazy.held };
  }

  /**
   * Writes the rows of the messages' first runs opened more than `afterMs` ago and still
   * unwritten, with the steps they held back. One whose key another delivery's run already holds
   * is lost here: it stops, and its delivery is tried again later to find that run.
   */
  #writeLong(afterMs: number): void {
    if (this.#closed) return;
    for (const id of this.#unwritten.openedBefore(Date.now() - afterMs, (row) => row.start.key !== null)) {
      const { held, keyed } = this.#written(id);
      (keyed ?? Promise.resolve()).then(
        () => this.#appendHeld(id, held).catch((e: unknown) => this.#o.onError?.(e)),
        (e: unknown) => {
          if (this.#lost.get(id) !== e) return this.#o.onError?.(e);
          // Ended here meanwhile: nothing is left to stop, and nothing more of it is written anyway.
          if (!this.#seq.has(id)) return void this.#lost.delete(id);
          for (const l of this.#lostListeners) l(id, e as Error);
        },
      );
    }
  }

  /**
   * A lazy keyed run's row, awaited. When another start made the key's run first (its delivery
   * was published again while that run went on elsewhere), this run stops here, before anything
   * of it is written: the delivery is tried again later without spending an attempt, and that
   * redelivery opens the key's run as any other does.
   */
  async #insertKeyed(id: string, row: string): Promise<void> {
    const made = (await this.#enqueue({ open: row, run: id })).has(id);
    if (made) {
      if (this.#seq.has(id) && !this.#lost.has(id)) this.#rowed.add(id);
      return;
    }
    const e = new CaxtonError(
      'rate_limited',
      `run ${id} is not recorded: another delivery of its message started the run first; it is delivered again to find that run`,
      { limit: 'concurrency', retry_after: 1, run: id },
    );
    this.#lost.set(id, e);
    throw e;
  }

  async #stepsOf(id: string): Promise<RunStep[]> {
    const r = await this.#query<{ step: string }>(
      `SELECT step FROM ${this.#s}.run_steps WHERE run_id = $1 ORDER BY seq`,
      [id],
    );
    return r.rows.map((x) => JSON.parse(x.step) as RunStep);
  }

  append(id: string, given: readonly RunStep[]): Promise<void> {
    if (given.length === 0) return Promise.resolve();
    // Stopped here: nothing more of it is written (its row says who cancelled or holds it).
    const lost = this.#lost.get(id);
    if (lost !== undefined) return Promise.reject(lost);
    // A lazy run holds back what a resume could do without until it records something that must be on disk.
    if (this.#unwritten.hold(id, given)) return Promise.resolve();
    const { held, keyed } = this.#written(id);
    const steps = held.length === 0 ? given : [...held, ...given];
    if (keyed !== undefined) return keyed.then(() => this.#appendHeld(id, steps));
    return this.#appendHeld(id, steps);
  }

  /** Queues the steps of run `id` (a run this process holds, else `#appendUnheld`); resolves once they committed. */
  #appendHeld(id: string, steps: readonly RunStep[]): Promise<void> {
    if (steps.length === 0) return Promise.resolve();
    const lost = this.#lost.get(id);
    if (lost !== undefined) return Promise.reject(lost);
    const first = this.#seq.get(id);
    if (first === undefined) return this.#appendUnheld(id, steps);
    this.#seq.set(id, first + steps.length);
    const rows = stepRows(id, first, steps);
    let p: Promise<unknown> = Promise.resolve();
    for (const row of rows) p = this.#enqueue({ row, run: id });
    return p.then(() => undefined);
  }

  /**
   * Steps of a run no process here holds: a decision on a run waiting for approval, recorded by
   * whichever node was asked, after the steps stored. Rare, so not batched. A decision is written
   * only while its call has none: of two sent through two nodes, the second is told the run
   * changed (409), whether they collide on a step number or one follows the other.
   */
  async #appendUnheld(id: string, steps: readonly RunStep[]): Promise<void> {
    const rows = stepRows(id, await this.#nextSeq(id), steps);
    const undecided = steps.flatMap((x) =>
      x.kind === 'approval'
        ? [
            `NOT EXISTS (SELECT 1 FROM ${this.#s}.run_steps WHERE run_id = ${literal(id)} AND step::jsonb @> ${literal(JSON.stringify({ kind: 'approval', turn: x.turn, id: x.id }))}::jsonb)`,
          ]
        : [],
    );
    const into = `INSERT INTO ${this.#s}.run_steps (run_id, seq, ts, step)`;
    const sql =
      undecided.length === 0
        ? `${into} VALUES ${rows.join(', ')}`
        : `${into} SELECT * FROM (VALUES ${rows.join(', ')}) AS v WHERE ${undecided.join(' AND ')}`;
    const changed = (): CaxtonError =>
      new CaxtonError(
        'conflict',
        `run ${id} changed while this was recorded (another node recorded a decision or a step of it at the same time): read the run again`,
        { run: id },
      );
    let written: number;
    try {
      written = (await this.#pool.query(sql)).rowCount ?? 0;
    } catch (e) {
      if ((e as { code?: unknown }).code === '23505') throw changed();
      throw stateUnavailable(e);
    }
    if (written === 0) throw changed();
  }

  /**
   * Marks a run taken over here running again: a run stored by another node (`unfinished`) is
   * claimed first, and refused as busy when that node still holds it.
   */
  async resumed(id: string, takeover?: Takeover): Promise<void> {
    // A takeover never takes a run this process holds: its own run found between two of its writes.
    const held = this.#seq.has(id);
    if (held ? takeover !== undefined : (await this.#claim(id, takeover)) === undefined) {
      const row = (await this.#query<Row>(`SELECT ${COLUMNS} FROM ${this.#s}.runs WHERE id = $1`, [id])).rows[0];
      if (row?.status === 'cancelled') throw cancelledRunError(id);
      throw heldElsewhere(id, row?.node ?? 'unknown', this.#leaseMs);
    }
    try {
      await this.#enqueue({
        sql: `UPDATE ${this.#s}.runs SET status = 'running', resumes = resumes + 1, updated_at = ${Date.now()} WHERE id = ${literal(id)} AND node = ${literal(this.#o.node)}`,
        run: id,
      });
    } catch (e) {
      // Taken here and not marked: its lease is not renewed, so another node may take it on.
      if (!held) this.release(id);
      throw e;
    }
  }

  finish(
    id: string,
    outcome:
      | { status: 'completed'; response: AgentResponse }
      | { status: 'failed' | 'cancelled'; error: { code: string; message: string } },
  ): Promise<void> {
    const held = this.#seq.delete(id);
    this.#rowed.delete(id);
    // Never written: it recorded no step, so there is nothing to keep (its execution record says how it ended).
    if (this.#unwritten.drop(id)) return Promise.resolve();
    // Lost while it ran here: its row already says how it ended, or which node runs it now.
    if (this.#lost.delete(id)) return Promise.resolve();
    const error = outcome.status === 'completed' ? null : JSON.stringify(scrubSecretsIn(outcome.error));
    const response = outcome.status === 'completed' ? JSON.stringify(scrubSecretsIn(outcome.response)) : null;
    // A run this node holds is ended only while it still does (a node that lost its lease, to a
    // node that took the run over, must not end that node's run); a cancel of a stored run ends it anyway.
    const guard = held ? ` AND node = ${literal(this.#o.node)}` : " AND status IN ('running', 'awaiting_approval')";
    return this.#enqueue({
      sql: `UPDATE ${this.#s}.runs SET status = ${literal(outcome.status)}, error = ${literal(error)}, response = ${literal(response)}, updated_at = ${Date.now()} WHERE id = ${literal(id)}${guard}`,
      run: id,
    }).then(() => undefined);
  }

  /**
   * The run waits for a person: it no longer runs here (its lease is not renewed), and the node
   * that records the decision takes it (`resumed` claims a waiting run whatever its lease).
   */
  paused(id: string): Promise<void> {
    const { held, keyed } = this.#written(id);
    if (held.length > 0 || keyed !== undefined)
      (keyed ?? Promise.resolve()).then(() => this.#appendHeld(id, held)).catch((e: unknown) => this.#o.onError?.(e));
    this.#seq.delete(id);
    this.#rowed.delete(id);
    if (this.#lost.delete(id)) return Promise.resolve();
    return this.#enqueue({
      sql: `UPDATE ${this.#s}.runs SET status = 'awaiting_approval', updated_at = ${Date.now()} WHERE id = ${literal(id)} AND node = ${literal(this.#o.node)} AND status = 'running'`,
      run: id,
    }).then(() => undefined);
  }

  /** Stops renewing the run's lease: it no longer runs here, and another node may take it once the lease expires. */
  release(id: string): void {
    this.#seq.delete(id);
    this.#rowed.delete(id);
    this.#unwritten.drop(id);
  }

  onLost(listener: (id: string, reason: Error) => void): void {
    this.#lostListeners.push(listener);
  }

  async get(id: string): Promise<RunWithSteps | undefined> {
    await this.#drain();
    const row = (await this.#query<Row>(`SELECT ${COLUMNS} FROM ${this.#s}.runs WHERE id = $1`, [id])).rows[0];
    return row && { run: recordOf(row), steps: await this.#stepsOf(id) };
  }

  async list(q: RunQuery): Promise<RunRecord[]> {
    await this.#drain();
    const where: string[] = [];
    const args: (string | number)[] = [];
    const p = (v: string | number): string => `$${args.push(v)}`;
    // An agent's runs under its name and under NAME@VERSION: '@' sorts just before 'A' (in byte order).
    if (q.agent !== undefined)
      where.push(
        `(agent = ${p(q.agent)} OR (agent COLLATE "C" >= ${p(`${q.agent}@`)} AND agent COLLATE "C" < ${p(`${q.agent}A`)}))`,
      );
    if (q.status !== undefined) where.push(`status = ${p(q.status)}`);
    if (q.origin !== undefined) where.push(`origin = ${p(q.origin)}`);
    if (q.principal !== undefined) where.push(`principal = ${p(q.principal)}`);
    if (q.before !== undefined) where.push(`id COLLATE "C" < ${p(q.before)}`);
    const sql = `SELECT ${COLUMNS} FROM ${this.#s}.runs${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id COLLATE "C" DESC LIMIT ${p(q.limit)}`;
    return (await this.#query<Row>(sql, args)).rows.map(recordOf);
  }

  /**
   * Runs left running whose node stopped renewing their lease and, at a start (`left`), those
   * recorded under this node's name by an earlier process of it.
   */
  async unfinished(limit: number, takeover: Takeover = 'left'): Promise<RunRecord[]> {
    await this.#drain();
    const r = await this.#query<Row>(
      `SELECT ${COLUMNS} FROM ${this.#s}.runs WHERE ${takeoverSql(takeover, '$3')}
         AND NOT (id = ANY($1::text[])) ORDER BY created_at LIMIT $2`,
      takeover === 'left' ? [this.held, limit, this.#o.node] : [this.held, limit],
    );
    return r.rows.map(recordOf);
  }

  /**
   * Renews the lease of every run this node holds, in one UPDATE; resolves with how many were
   * renewed. A run it holds that the UPDATE did not renew is no longer this node's to run: it is
   * lost (`onLost`).
   */
  async heartbeat(): Promise<number> {
    const held = [...this.#rowed];
    if (held.length === 0 || this.#closed) return 0;
    const r = await this.#query<{ id: string }>(
      `UPDATE ${this.#s}.runs SET lease_until = ${this.#until} WHERE id = ANY($1::text[]) AND node = $2 AND status = 'running' RETURNING id`,
      [held, this.#o.node],
    );
    const renewed = new Set(r.rows.map((x) => x.id));
    // Still held after the UPDATE: a run that ended or paused meanwhile is not lost.
    const lost = held.filter((id) => !renewed.has(id) && this.#rowed.has(id));
    if (lost.length > 0) await this.#lose(lost);
    return renewed.size;
  }

  /** Stops holding runs another node cancelled or took over, and tells the listeners why. */
  async #lose(ids: readonly string[]): Promise<void> {
    const rows = (
      await this.#query<{ id: string; status: string; node: string }>(
        `SELECT id, status, node FROM ${this.#s}.runs WHERE id = ANY($1::text[])`,
        [ids],
      )
    ).rows;
    for (const id of ids) {
      if (!this.#rowed.delete(id)) continue;
      this.#seq.delete(id);
      const row = rows.find((x) => x.id === id);
      const reason =
        row?.status === 'cancelled'
          ? new CaxtonError('cancelled', 'the run was cancelled')
          : row?.status === 'running'
            ? heldElsewhere(id, row.node, this.#leaseMs)
            : new CaxtonError(
                'conflict',
                `run ${id} is ${row === undefined ? 'gone' : `${row.status.replace('_', ' ')} on node ${row.node}`}: it no longer runs on node ${this.#o.node}`,
                { run: id },
              );
      this.#lost.set(id, reason);
      for (const l of this.#lostListeners) l(id, reason);
    }
  }

  /**
   * Queues a write; resolves once its batch committed. A batch is what was queued while the one
   * before it was written (or, when none was, in this turn): one query at a time, as large as the
   * load makes it.
   */
  #enqueue(w: Write): Promise<ReadonlySet<string>> {
    if (this.#closed) return Promise.reject(new CaxtonError('not_ready', 'the run journal is closed'));
    const b = (this.#batch ??= { writes: [], waiters: [] });
    b.writes.push(w);
    const p = new Promise<ReadonlySet<string>>((resolve, reject) =>
      b.waiters.push({ resolve, reject, runs: new Set([w.run]) }),
    );
    this.#kick();
    return p;
  }

  /** Starts writing after this turn's promise jobs (every run that records a step in this turn joins the batch), unless a write runs. */
  #kick(): void {
    if (this.#writing !== undefined || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#pump();
    });
  }

  /** Writes the batches queued, one after another, until none is left. Never rejects. */
  #pump(): Promise<void> {
    this.#writing ??= (async () => {
      while (this.#batch !== undefined) {
        const b = this.#batch;
        this.#batch = undefined;
        await this.#write(b);
      }
    })().finally(() => {
      this.#writing = undefined;
      // Queued after the loop's last look: written next.
      if (this.#batch !== undefined) this.#kick();
    });
    return this.#writing;
  }

  /** Waits until everything queued so far is committed (or failed). */
  async #drain(): Promise<void> {
    while (this.#batch !== undefined || this.#writing !== undefined) await this.#pump();
  }

  async #write(b: Batch): Promise<void> {
    if (b.writes.length === 0) return;
    try {
      const created = await this.#run(b.writes);
      for (const w of b.waiters) w.resolve(created);
    } catch (e) {
      const runs = new Set(b.writes.map((w) => w.run));
      // A statement PostgreSQL refused fails the batch: each run's writes are tried alone, so
      // one run's fault is not every run's.
      if (runs.size > 1 && !isUnreachable(e)) {
        for (const run of runs) {
          const mine = b.writes.filter((w) => w.run === run);
          const waiting = b.waiters.filter((w) => w.runs.has(run));
          try {
            const created = await this.#run(mine);
            for (const w of waiting) w.resolve(created);
          } catch (e2) {
            for (const w of waiting) w.reject(stateUnavailable(e2));
          }
        }
        return;
      }
      for (const w of b.waiters) w.reject(stateUnavailable(e));
    }
  }

  /** Sends `writes` as one query (one implicit transaction); resolves with the ids of the runs its INSERT made. */
  async #run(writes: readonly Write[]): Promise<ReadonlySet<string>> {
    const { text, opens } = statementsOf(this.#s, writes);
    const out = (await this.#pool.query(text)) as unknown as
      pg.QueryResult<{ id: string }> | pg.QueryResult<{ id: string }>[];
    if (!opens) return new Set();
    const first = Array.isArray(out) ? out[0]! : out;
    return new Set(first.rows.map((r) => r.id));
  }

  /**
   * Deletes one batch of finished runs past retention or beyond `maxRows`, with their steps, unless
   * another node is at it; resolves with the runs deleted.
   */
  prune(): Promise<{ deleted: number; skipped: boolean }> {
    const s = this.#s;
    return inTransaction(this.#pool, 'BEGIN', async (c) => {
      const lock = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS ok', [
        `caxton-retention:${s}.runs`,
      ]);
      if (!lock.rows[0]!.ok) return { deleted: 0, skipped: true };
      const finished = "status IN ('completed', 'failed', 'cancelled')";
      // The newest finished run beyond maxRows: it and every older one go.
      const cut = (
        await c.query<{ updated_at: string }>(
          `SELECT updated_at FROM ${s}.runs WHERE ${finished} ORDER BY updated_at DESC LIMIT 1 OFFSET $1`,
          [this.#o.maxRows ?? 100_000],
        )
      ).rows[0];
      const before = Math.max(Date.now() - this.#o.retentionMs, cut === undefined ? 0 : Number(cut.updated_at) + 1);
      const ids = (
        await c.query<{ id: string }>(
          `SELECT id FROM ${s}.runs WHERE ${finished} AND updated_at < $1 ORDER BY updated_at LIMIT ${PRUNE_BATCH}`,
          [before],
        )
      ).rows.map((r) => r.id);
      if (ids.length === 0) return { deleted: 0, skipped: false };
      await c.query(`DELETE FROM ${s}.run_steps WHERE run_id = ANY($1::text[])`, [ids]);
      const d = await c.query(`DELETE FROM ${s}.runs WHERE id = ANY($1::text[])`, [ids]);
      return { deleted: d.rowCount ?? 0, skipped: false };
    });
  }

  #prune(): void {
    if (this.#pruning || this.#closed) return;
    this.#pruning = (async () => {
      // A full batch may leave more due: the next, each in its own short transaction.
      for (let i = 0; i < 100 && !this.#closed; i++) if ((await this.prune()).deleted < PRUNE_BATCH) return;
    })()
      .catch((e: unknown) => this.#o.onError?.(e))
      .finally(() => (this.#pruning = undefined));
  }

  /** Commits what is queued and stops its timers; the runs it held keep their lease until it runs out. Does not end the pool. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#ticks.stop();
    await this.#drain();
    this.#closed = true;
    await this.#pruning;
  }
}

/** The rows of `steps` of run `id`, numbered from `first`, as VALUES of an INSERT into run_steps. */
function stepRows(id: string, first: number, steps: readonly RunStep[]): string[] {
  const now = Date.now();
  return steps.map((st, i) => `(${literal(id)}, ${first + i}, ${now}, ${literal(JSON.stringify(scrubSecretsIn(st)))})`);
}

/**
 * The batch as one multi-statement query (one implicit transaction): new runs first (one INSERT,
 * answering the ids it made), then the steps' one INSERT, then the updates in order.
 */
function statementsOf(s: string, writes: readonly Write[]): { text: string; opens: boolean } {
  const opens: string[] = [];
  const rows: string[] = [];
  const updates: string[] = [];
  for (const w of writes) {
    if (w.open !== undefined) opens.push(w.open);
    else if (w.row !== undefined) rows.push(w.row);
    else updates.push(w.sql);
  }
  const text = [
    ...(opens.length > 0
      ? [
          `INSERT INTO ${s}.runs (id, key, agent, version, origin, status, principal, request, created_at, updated_at, node, lease_until)
           VALUES ${opens.join(', ')} ON CONFLICT (key) DO NOTHING RETURNING id`,
        ]
      : []),
    ...(rows.length > 0 ? [`INSERT INTO ${s}.run_steps (run_id, seq, ts, step) VALUES ${rows.join(', ')}`] : []),
    ...updates,
  ].join(';\n');
  return { text, opens: opens.length > 0 };
}
