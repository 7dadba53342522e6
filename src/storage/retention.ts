import type { Db } from './database.js';

/**
 * Retention: the one pruning mechanism for every table that grows with traffic (agent events,
 * messages and their deliveries, conversations, dead letters, the tool audit). Each table says
 * *what* is due as a {@link RetentionRule} (a function deleting at most `limit` due rows); the
 * {@link Pruner} decides *when* and *how much at a time*: small batches, one transaction each,
 * with the event loop free between them, so pruning a backlog of a million rows never blocks a
 * request for more than one batch. After pruning, freed pages go back to the file system
 * (`PRAGMA incremental_vacuum`, see openDatabase: new databases use auto_vacuum = INCREMENTAL), so a
 * database under retention is bounded on disk, not only in rows.
 */
export interface RetentionRule {
  /** For logs: "messages", "tool_audit"... */
  readonly name: string;
  /**
   * Deletes a batch of due rows (past the retention, or the oldest beyond the count limit), about
   * `limit` rows at most; says how many it deleted and whether more may be due.
   */
  prune(limit: number): { deleted: number; more: boolean };
}

/** Rows deleted per transaction: small enough that a batch takes a few milliseconds. */
export const PRUNE_BATCH = 500;

/**
 * A rule for an append-only table with an INTEGER PRIMARY KEY `id` growing with time and an
 * indexed time column: rows older than `retentionMs` go, then the oldest beyond `maxRows` (those
 * matching `evictFirst` before the others).
 * `time` is the column's unit: ms since the epoch or ISO-8601 text (compared as text: every value
 * is written by `toISOString()`, so text order is time order).
 */
export function tableRule(
  db: Db,
  opts: {
    name: string;
    table: string;
    timeColumn: string;
    time: 'ms' | 'iso';
    retentionMs: number;
    maxRows: number;
    /**
     * Rows (an SQL condition) that go first, oldest first, when the table holds more than
     * `maxRows`: the others go only once none of these is left to make room.
     */
    evictFirst?: string;
  },
): RetentionRule {
  const { table, timeColumn } = opts;
  const count = db.prepare(`SELECT count(*) FROM ${table}`).pluck();
  const first =
    opts.evictFirst === undefined
      ? undefined
      : db.prepare(
          `DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} WHERE ${opts.evictFirst} ORDER BY id LIMIT ?)`,
        );
  const old = db.prepare(
    `DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} WHERE ${timeColumn} < ? ORDER BY ${timeColumn} LIMIT ?)`,
  );
  const cut = db.prepare(`SELECT id FROM ${table} ORDER BY id DESC LIMIT 1 OFFSET ?`).pluck();
  const over = db.prepare(
    `DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} WHERE id <= ? ORDER BY id LIMIT ?)`,
  );
  return {
    name: opts.name,
    prune(limit) {
      const cutoff = Date.now() - opts.retentionMs;
      const n = old.run(opts.time === 'ms' ? cutoff : new Date(cutoff).toISOString(), limit).changes;
      if (n >= limit) return { deleted: n, more: true };
      let f = 0;
      if (first) {
        const excess = (count.get() as number) - opts.maxRows;
        if (excess > 0) f = first.run(Math.min(excess, limit - n)).changes;
        if (n + f >= limit) return { deleted: n + f, more: true };
      }
      const last = cut.get(opts.maxRows) as number | undefined;
      const m = last === undefined ? 0 : over.run(last, limit - n - f).changes;
      return { deleted: n + f + m, more: n + f + m >= limit };
    },
  };
}

export interface PrunerOptions {
  /** How often the rules run (default 60 s). */
  intervalMs?: number;
  batch?: number;
  onError?: (e: unknown, rule: string) => void;
  /** Called after a run that deleted rows (for an info log line). */
  onPruned?: (deleted: Record<string, number>, vacuumedPages: number) => void;
}

/**
 * Runs retention rules: on a timer, when poked (a writer saw many inserts), or to completion on
 * demand (`runSync`, at start and in tests). One run at a time; a run yields to the event loop
 * between batches.
 */
export class Pruner {
  readonly #db: Db;
  readonly #rules: RetentionRule[] = [];
  readonly #batch: number;
  readonly #opts: PrunerOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<Record<string, number>> | undefined;
  #again = false;
  #closed = false;

  constructor(db: Db, opts: PrunerOptions = {}) {
    this.#db = db;
    this.#opts = opts;
    this.#batch = opts.batch ?? PRUNE_BATCH;
  }

  add(rule: RetentionRule): this {
    this.#rules.push(rule);
    return this;
  }

  /** Starts the periodic runs (unref'd: they never keep the process alive). */
  start(): this {
    if (this.#timer || this.#closed) return this;
    this.#timer = setInterval(() => void this.run(), this.#opts.intervalMs ?? 60_000);
    this.#timer.unref();
    return this;
  }

  /** Asks for a run soon (a run in progress is followed by another). */
  poke(): void {
    if (this.#closed) return;
    if (this.#running) this.#again = true;
    else void this.run();
  }

  /**
   * Runs every rule until nothing is due, one batch per event-loop turn, then reclaims free pages.
   * Called during a run, it waits for that run and then runs again (rows may have become due since).
   */
  run(): Promise<Record<string, number>> {
    if (this.#running) return this.#running.then(() => this.run());
    const p = this.#runAsync().finally(() => {
      this.#running = undefined;
      if (this.#again && !this.#closed) {
        this.#again = false;
        void this.run();
      }
    });
    this.#running = p;
    return p;
  }

  async #runAsync(): Promise<Record<string, number>> {
    const deleted: Record<string, number> = {};
    for (const rule of this.#rules) {
      deleted[rule.name] = 0;
      for (;;) {
        if (this.#closed || !this.#db.open) return deleted;
        const r = this.#step(rule);
        deleted[rule.name] = (deleted[rule.name] ?? 0) + r.deleted;
        if (!r.more) break;
        await new Promise((r) => setImmediate(r));
      }
    }
    const pages = await this.#vacuum();
    this.#report(deleted, pages);
    return deleted;
  }

  /** The same, synchronously (at start, before requests are served; tests). */
  runSync(): Record<string, number> {
    const deleted: Record<string, number> = {};
    for (const rule of this.#rules) {
      deleted[rule.name] = 0;
      for (;;) {
        if (!this.#db.open) return deleted;
        const r = this.#step(rule);
        deleted[rule.name] = (deleted[rule.name] ?? 0) + r.deleted;
        if (!r.more) break;
      }
    }
    let pages = 0;
    for (let n = this.#vacuumStep(); n > 0; n = this.#vacuumStep()) pages += n;
    this.#report(deleted, pages);
    return deleted;
  }

  /** At most one batch of one rule, synchronously (a writer's bounded share of the work). */
  step(name: string): { deleted: number; more: boolean } {
    const rule = this.#rules.find((r) => r.name === name);
    return rule && this.#db.open ? this.#step(rule) : { deleted: 0, more: false };
  }

  #step(rule: RetentionRule): { deleted: number; more: boolean } {
    try {
      return this.#db.transaction(() => rule.prune(this.#batch))();
    } catch (e) {
      this.#opts.onError?.(e, rule.name);
      return { deleted: 0, more: false };
    }
  }

  /** Returns free pages to the file system, a batch at a time (a no-op unless auto_vacuum = INCREMENTAL). */
  async #vacuum(): Promise<number> {
    let pages = 0;
    for (let n = this.#vacuumStep(); n > 0 && !this.#closed; n = this.#vacuumStep()) {
      pages += n;
      await new Promise((r) => setImmediate(r));
    }
    return pages;
  }

  #vacuumStep(): number {
    if (!this.#db.open) return 0;
    try {
      if ((this.#db.pragma('auto_vacuum', { simple: true }) as number) !== 2) return 0;
      const free = this.#db.pragma('freelist_count', { simple: true }) as number;
      if (free === 0) return 0;
      const n = Math.min(free, VACUUM_PAGES);
      this.#db.pragma(`incremental_vacuum(${n})`);
      return n;
    } catch (e) {
      this.#opts.onError?.(e, 'incremental_vacuum');
      return 0;
    }
  }

  #report(deleted: Record<string, number>, pages: number): void {
    if (pages > 0 || Object.values(deleted).some((n) => n > 0)) this.#opts.onPruned?.(deleted, pages);
  }

  /** Stops the timer; a run in progress stops at its next batch. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }
}

/** Pages freed per incremental_vacuum step (4 MiB at the default 4 KiB page). */
const VACUUM_PAGES = 1024;
