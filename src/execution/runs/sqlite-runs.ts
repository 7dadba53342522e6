/**
 * Durable runs in the node's SQLite (caxton.db). A step is one row; the steps queued by every run
 * in one turn of the event loop share one transaction (GroupCommit), so a step costs its run a
 * share of a commit, and each `append` resolves only once its rows are on disk (WAL,
 * synchronous=NORMAL: they survive a crash of the process). Finished runs are kept for
 * `retentionMs` and then deleted with their steps by the storage Pruner.
 */
import { scrubSecretsIn } from '../../shared/secrets.js';
import { GroupCommit, Pruner, type Db, type Migration, type RetentionRule } from '../../storage/index.js';
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
} from './run-model.js';

export const RUNS_MIGRATIONS: readonly Migration[] = [
  {
    id: 'runs-001-create',
    sql: `
      CREATE TABLE runs (
        id             TEXT PRIMARY KEY,
        key            TEXT UNIQUE,
        agent          TEXT NOT NULL,
        origin         TEXT NOT NULL,
        status         TEXT NOT NULL,
        principal      TEXT,
        request        TEXT NOT NULL,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        resumes        INTEGER NOT NULL DEFAULT 0,
        error          TEXT,
        response       TEXT
      ) WITHOUT ROWID;
      CREATE INDEX runs_running ON runs (created_at) WHERE status = 'running';
      CREATE INDEX runs_finished ON runs (updated_at) WHERE status IN ('completed', 'failed', 'cancelled');
      CREATE TABLE run_steps (
        run_id TEXT NOT NULL,
        seq    INTEGER NOT NULL,
        ts     INTEGER NOT NULL,
        steps  TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
      ) WITHOUT ROWID;
    `,
  },
  { id: 'runs-002-version', sql: 'ALTER TABLE runs ADD COLUMN version TEXT;' },
];

interface Row {
  id: string;
  key: string | null;
  agent: string;
  version: string | null;
  origin: string;
  status: string;
  principal: string | null;
  request: string;
  created_at: number;
  updated_at: number;
  resumes: number;
  error: string | null;
  response: string | null;
}

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
    created_at: r.created_at,
    updated_at: r.updated_at,
    resumes: r.resumes,
    error: r.error === null ? null : (JSON.parse(r.error) as RunRecord['error']),
    response: r.response === null ? null : (JSON.parse(r.response) as AgentResponse),
    node: null,
  };
}

export interface SqliteRunJournalOptions {
  db: Db;
  /** How long a finished run and its steps are kept. */
  retentionMs: number;
  /** The most finished runs kept; the oldest go first (default 100,000). */
  maxRows?: number;
  onError?: (e: unknown) => void;
}

const FINISHED = "status IN ('completed', 'failed', 'cancelled')";

/**
 * Finished runs past their retention or beyond `maxRows` finished runs (the oldest first), with
 * their steps, in the Pruner's batches. Runs still running or waiting for a person are kept.
 */
function finishedRunsRule(db: Db, retentionMs: number, maxRows: number): RetentionRule {
  const due = db.prepare(`SELECT id FROM runs WHERE ${FINISHED} AND updated_at < ? ORDER BY updated_at LIMIT ?`);
  const cut = db.prepare(`SELECT updated_at FROM runs WHERE ${FINISHED} ORDER BY updated_at DESC LIMIT 1 OFFSET ?`);
  const delSteps = db.prepare('DELETE FROM run_steps WHERE run_id = ?');
  const delRun = db.prepare('DELETE FROM runs WHERE id = ?');
  return {
    name: 'runs',
    prune(limit) {
      const oldest = cut.pluck().get(maxRows) as number | undefined;
      const before = Math.max(Date.now() - retentionMs, oldest === undefined ? 0 : oldest + 1);
      const ids = due.pluck().all(before, limit) as string[];
      for (const id of ids) {
        delSteps.run(id);
        delRun.run(id);
      }
      return { deleted: ids.length, more: ids.length >= limit };
    },
  };
}

const NO_STEPS: RunStep[] = [];

export class SqliteRunJournal implements RunJournal {
  readonly #db: Db;
  readonly #commits: GroupCommit;
  readonly #pruner: Pruner;
  /** The next step number of each run this process appends to. */
  readonly #seq = new Map<string, number>();
  readonly #stmts;
  readonly #onError: ((e: unknown) => void) | undefined;

  /** Opens the journal on a migrated `db` (RUNS_MIGRATIONS). */
  constructor(o: SqliteRunJournalOptions) {
    this.#db = o.db;
    this.#onError = o.onError;
    this.#commits = new GroupCommit(o.db);
    const db = o.db;
    this.#stmts = {
      byKey: db.prepare('SELECT * FROM runs WHERE key = ?'),
      byId: db.prepare('SELECT * FROM runs WHERE id = ?'),
      steps: db.prepare('SELECT steps FROM run_steps WHERE run_id = ? ORDER BY seq'),
      lastSeq: db.prepare('SELECT max(seq) FROM run_steps WHERE run_id = ?'),
      insert: db.prepare(
        `INSERT INTO runs (id, key, agent, version, origin, status, principal, request, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)`,
      ),
      step: db.prepare('INSERT INTO run_steps (run_id, seq, ts, steps) VALUES (?, ?, ?, ?)'),
      resumed: db.prepare(
        "UPDATE runs SET status = 'running', resumes = resumes + 1, updated_at = ? WHERE id = ? AND status != 'cancelled'",
      ),
      paused: db.prepare("UPDATE runs SET status = 'awaiting_approval', updated_at = ? WHERE id = ?"),
      finish: db.prepare('UPDATE runs SET status = ?, error = ?, response = ?, updated_at = ? WHERE id = ?'),
      unfinished: db.prepare("SELECT * FROM runs WHERE status = 'running' ORDER BY created_at LIMIT ?"),
    };
    this.#pruner = new Pruner(o.db, { intervalMs: 60_000, ...(o.onError && { onError: o.onError }) }).add(
      finishedRunsRule(o.db, o.retentionMs, o.maxRows ?? 100_000),
    );
    this.#pruner.start();
  }

  open(start: RunStart): Promise<OpenedRun> {
    if (start.key !== null) {
      // A run of this key may still be queued for the commit: whatever is queued is written first.
      if (this.#commits.pending > 0) this.#commits.flush();
      const row = this.#stmts.byKey.get(start.key) as Row | undefined;
      if (row) {
        const steps = this.#stepsOf(row.id);
        this.#seq.set(row.id, this.#nextSeq(row.id));
        return Promise.resolve({ run: recordOf(row), steps, created: false });
      }
    }
    const now = Date.now();
    this.#seq.set(start.id, 0);
    // A lazy run is written with its first step, and not at all when it has none: a run that
    // only asks the model has nothing a resume would reuse, and costs no row, nor the scrub and
    // JSON of its request, which wait for the write.
    if (start.lazy === true) {
      this.#unwritten.open(start.id, { start, now });
      return Promise.resolve({ run: newRunRecord(start, start.request, now, null), steps: [], created: true });
    }
    const { args, request } = rowOf(start, now);
    this.#insert(args);
    return Promise.resolve({ run: newRunRecord(start, request, now, null), steps: [], created: true });
  }

  /** Lazy runs opened here and not written yet: what their row is made of, and the steps held back with it. */
  readonly #unwritten = new UnwrittenRuns<{ start: RunStart; now: number }>();

  /** Queued, not awaited: the row commits with the run's first step (the first thing that must be on disk). */
  #insert(args: unknown[]): void {
    const { insert } = this.#stmts;
    void this.#commits.run(() => insert.run(...args)).catch((e: unknown) => this.#failed(e));
  }

  /** Writes a lazy run's row (once) before anything else of it; answers the steps it held back. */
  #written(id: string): RunStep[] {
    const lazy = this.#unwritten.take(id);
    if (lazy === undefined) return NO_STEPS;
    this.#insert(rowOf(lazy.row.start, lazy.row.now).args);
    return lazy.held;
  }

  /** A lazy run's row and held steps, queued before what follows. */
  #writeHeld(id: string): void {
    const held = this.#written(id);
    if (held.length > 0) this.append(id, held).catch((e: unknown) => this.#failed(e));
  }

  #failed(e: unknown): void {
    this.#onError?.(e);
  }

  #nextSeq(id: string): number {
    const max = this.#stmts.lastSeq.pluck().get(id) as number | null;
    return max === null ? 0 : max + 1;
  }

  #stepsOf(id: string): RunStep[] {
    return (this.#stmts.steps.pluck().all(id) as string[]).flatMap((s) => JSON.parse(s) as RunStep[]);
  }

  append(id: string, given: readonly RunStep[]): Promise<void> {
    if (given.length === 0) return Promise.resolve();
    // A lazy run holds back what a resume could do without (its memory context, a final answer)
    // until it records something that must be on disk: a tool call, an approval.
    if (this.#unwritten.hold(id, given)) return Promise.resolve();
    const held = this.#written(id);
    const steps = held.length === 0 ? given : [...held, ...given];
    // The steps committed together are one row: a step's cost is mostly its row's, and a run's
    // steps come in pairs (a reply and its first call's start, a call's end and the next one's start).
    const seq = this.#seq.get(id) ?? this.#nextSeq(id);
    this.#seq.set(id, seq + 1);
    const text = JSON.stringify(scrubSecretsIn(steps));
    const { step } = this.#stmts;
    const now = Date.now();
    return this.#commits.run(() => void step.run(id, seq, now, text));
  }

  async resumed(id: string): Promise<void> {
    this.#writeHeld(id);
    const { resumed } = this.#stmts;
    // A run cancelled meanwhile (a cancel racing a decision or a redelivery) stays cancelled.
    if ((await this.#commits.run(() => resumed.run(Date.now(), id).changes)) === 0) {
      const row = this.#stmts.byId.get(id) as Row | undefined;
      if (row?.status === 'cancelled') throw cancelledRunError(id);
    }
  }

  paused(id: string): Promise<void> {
    this.#writeHeld(id);
    this.#seq.delete(id);
    const { paused } = this.#stmts;
    return this.#commits.run(() => void paused.run(Date.now(), id));
  }

  finish(
    id: string,
    outcome:
      | { status: 'completed'; response: AgentResponse }
      | { status: 'failed' | 'cancelled'; error: { code: string; message: string } },
  ): Promise<void> {
    this.#seq.delete(id);
    // Never written: it recorded no step, so there is nothing to keep (its execution record says how it ended).
    if (this.#unwritten.drop(id)) return Promise.resolve();
    const { finish } = this.#stmts;
    const error = outcome.status === 'completed' ? null : JSON.stringify(scrubSecretsIn(outcome.error));
    const response = outcome.status === 'completed' ? JSON.stringify(scrubSecretsIn(outcome.response)) : null;
    return this.#commits.run(() => void finish.run(outcome.status, error, response, Date.now(), id));
  }

  get(id: string): Promise<RunWithSteps | undefined> {
    if (this.#commits.pending > 0) this.#commits.flush();
    const row = this.#stmts.byId.get(id) as Row | undefined;
    return Promise.resolve(row && { run: recordOf(row), steps: this.#stepsOf(id) });
  }

  list(q: RunQuery): Promise<RunRecord[]> {
    if (this.#commits.pending > 0) this.#commits.flush();
    const where: string[] = [];
    const args: (string | number)[] = [];
    const add = (clause: string, ...values: (string | number)[]): void => {
      where.push(clause);
      args.push(...values);
    };
    // An agent's runs under its name and under NAME@VERSION: '@' sorts just before 'A'.
    if (q.agent !== undefined) add('(agent = ? OR (agent >= ? AND agent < ?))', q.agent, `${q.agent}@`, `${q.agent}A`);
    if (q.status !== undefined) add('status = ?', q.status);
    if (q.origin !== undefined) add('origin = ?', q.origin);
    if (q.principal !== undefined) add('principal = ?', q.principal);
    if (q.before !== undefined) add('id < ?', q.before);
    const sql = `SELECT * FROM runs${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    args.push(q.limit);
    return Promise.resolve((this.#db.prepare(sql).all(...args) as Row[]).map(recordOf));
  }

  unfinished(limit: number): Promise<RunRecord[]> {
    if (this.#commits.pending > 0) this.#commits.flush();
    return Promise.resolve((this.#stmts.unfinished.all(limit) as Row[]).map(recordOf));
  }

  /** Deletes finished runs past their retention, to completion (tests); returns how many. */
  sweep(): number {
    return this.#pruner.runSync().runs ?? 0;
  }

  close(): void {
    this.#commits.close();
    this.#pruner.close();
  }
}

/** A new run's row values (its request scrubbed of secrets, as JSON) and the scrubbed request. */
function rowOf(start: RunStart, now: number): { args: unknown[]; request: InvokeRequest } {
  const request = scrubSecretsIn(start.request);
  const args = [
    start.id,
    start.key,
    start.agent,
    start.version ?? null,
    start.origin,
    start.principal,
    JSON.stringify(request),
    now,
    now,
  ];
  return { args, request };
}
