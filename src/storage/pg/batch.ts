/**
 * What the cluster's append-only logs in PostgreSQL (the event store, the tool audit) share: a
 * writer that never makes its callers wait, and retention applied by one node at a time.
 */
import type pg from 'pg';
import { isUnreachable } from './errors.js';
import { inTransaction } from './tx.js';

export interface PgBatchWriterOptions<T> extends PgBatchTuning {
  /** Writes one batch (one multi-row INSERT); rejects when it could not. */
  write: (batch: T[]) => Promise<void>;
}

/** How a store's batches are written (every store on PgBatchWriter takes these in its options). */
export interface PgBatchTuning {
  /** How long a record may wait for company before it is written (default 50 ms). */
  flushMs?: number;
  /** Rows per INSERT; a full batch is written at once (default 500). */
  batchSize?: number;
  /** At most this many records wait while PostgreSQL is unreachable; beyond it the oldest are dropped (default 50,000). */
  maxBuffered?: number;
  /** How long to wait before writing again after PostgreSQL was unreachable (default 1 s). */
  retryMs?: number;
  /** A write failed (at most one call per `reportMs` while it keeps failing). */
  onError?: (e: unknown) => void;
  /** Records were dropped: `n` now, `total` since start (the buffer bound, or a batch PostgreSQL refused). */
  onDropped?: (n: number, total: number) => void;
  /** Least time between two onError reports (default 30 s). */
  reportMs?: number;
}

/**
 * Buffers records and writes them in batches, off the caller's path: `push` is an array push (and
 * a timer), it never blocks and never throws. When PostgreSQL is unreachable the batch goes back
 * to the front of the buffer and is tried again after `retryMs`; the buffer is bounded, the oldest
 * records dropped beyond the bound (counted: `dropped`, onDropped). A batch PostgreSQL refuses
 * (not a connection failure) is dropped and reported, as SQLite's stores do with a failed write.
 */
export class PgBatchWriter<T> {
  readonly #o: Required<Omit<PgBatchWriterOptions<T>, 'onError' | 'onDropped'>> & Pick<PgBatchWriterOptions<T>, 'onError' | 'onDropped'>;
  #pending: T[] = [];
  #timer: NodeJS.Timeout | undefined;
  #draining: Promise<void> | undefined;
  #failing = false;
  #lastReport = 0;
  #closed = false;
  /** Records dropped since start. */
  dropped = 0;

  constructor(opts: PgBatchWriterOptions<T>) {
    // What a store's options leave undefined keeps its default.
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as PgBatchWriterOptions<T>;
    this.#o = { flushMs: 50, batchSize: 500, maxBuffered: 50_000, retryMs: 1000, reportMs: 30_000, ...given };
  }

  /** Records waiting to be written. */
  get buffered(): number {
    return this.#pending.length;
  }

  push(x: T): void {
    if (this.#closed) return;
    this.#pending.push(x);
    this.#bound();
    this.#schedule();
  }

  /** Writes what is buffered (resolves when written, or when PostgreSQL turned out unreachable: never rejects). */
  async flush(): Promise<void> {
    while (this.#draining) await this.#draining;
    if (this.#pending.length === 0) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#draining = this.#drain();
    try {
      await this.#draining;
    } finally {
      this.#draining = undefined;
    }
    if (this.#pending.length > 0) this.#schedule();
  }

  /** Writes what it can (one attempt) and stops; what could not be written is counted as dropped. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#failing = false;
    await this.flush();
    this.#closed = true;
    clearTimeout(this.#timer);
    const left = this.#pending.length;
    this.#pending = [];
    if (left > 0) this.#drop(left);
  }

  #schedule(): void {
    if (this.#timer || this.#draining || this.#closed) return;
    const delay = this.#failing ? this.#o.retryMs : this.#pending.length >= this.#o.batchSize ? 0 : this.#o.flushMs;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, delay);
    this.#timer.unref();
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, this.#o.batchSize);
      try {
        await this.#o.write(batch);
        this.#failing = false;
      } catch (e) {
        if (isUnreachable(e) && !this.#closed) {
          // Back to the front, in order; tried again after retryMs.
          this.#pending.unshift(...batch);
          this.#bound();
          this.#report(e);
          this.#failing = true;
          return;
        }
        this.#drop(batch.length);
        this.#report(e);
      }
    }
  }

  #bound(): void {
    const over = this.#pending.length - this.#o.maxBuffered;
    if (over > 0) {
      this.#pending.splice(0, over);
      this.#drop(over);
    }
  }

  #drop(n: number): void {
    this.dropped += n;
    this.#o.onDropped?.(n, this.dropped);
  }

  #report(e: unknown): void {
    const now = Date.now();
    if (now - this.#lastReport < this.#o.reportMs) return;
    this.#lastReport = now;
    this.#o.onError?.(e);
  }
}

/**
 * One run of retention on an append-only log table (`id` bigserial, `timeColumn` epoch ms): rows
 * older than `retentionMs`, then the oldest beyond `maxRows`, in batches, as SQLite's tableRule
 * (src/storage/retention.ts). One node at a time: the run holds a transaction-scoped try-lock
 * named after the table; a node that does not get it skips (`skipped`).
 */
export function pruneLogTable(
  pool: pg.Pool,
  o: { schema: string; table: string; timeColumn: string; retentionMs: number; maxRows: number; batch?: number; maxBatches?: number },
): Promise<{ deleted: number; skipped: boolean; more: boolean }> {
  const t = `${o.schema}.${o.table}`;
  const batch = o.batch ?? 5000;
  return inTransaction(pool, 'BEGIN', async (c) => {
    const lock = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS ok', [`caxton-retention:${t}`]);
    if (!lock.rows[0]!.ok) return { deleted: 0, skipped: true, more: false };
    let deleted = 0;
    for (let i = 0; i < (o.maxBatches ?? 20); i++) {
      const cutoff = Date.now() - o.retentionMs;
      const old = (await c.query(`DELETE FROM ${t} WHERE id IN (SELECT id FROM ${t} WHERE ${o.timeColumn} < $1 ORDER BY ${o.timeColumn} LIMIT $2)`, [cutoff, batch])).rowCount ?? 0;
      const cut = (await c.query<{ id: string }>(`SELECT id FROM ${t} ORDER BY id DESC LIMIT 1 OFFSET $1`, [o.maxRows])).rows[0];
      const over = cut ? ((await c.query(`DELETE FROM ${t} WHERE id IN (SELECT id FROM ${t} WHERE id <= $1 ORDER BY id LIMIT $2)`, [cut.id, batch])).rowCount ?? 0) : 0;
      deleted += old + over;
      if (old < batch && over < batch) return { deleted, skipped: false, more: false };
    }
    return { deleted, skipped: false, more: true };
  });
}

export interface PgLogTableOptions<T> extends PgBatchTuning {
  pool: pg.Pool;
  /** The quoted schema. */
  schema: string;
  table: string;
  /** The column of each row's time (epoch ms) that retention compares. */
  timeColumn: string;
  retentionMs: number;
  /** At most this many rows are kept, cluster-wide. */
  maxRows: number;
  /** How often retention runs (default 60 s; also after every max_rows / 10 records written here). */
  sweepIntervalMs?: number;
  /** Writes one batch (one multi-row INSERT); rejects when it could not. */
  write: (batch: T[]) => Promise<void>;
}

/**
 * An append-only log table of the cluster (the event store, the tool audit): records batched by a
 * PgBatchWriter, and retention (`pruneLogTable`) at start, every `sweepIntervalMs` and after every
 * max_rows / 10 records written by this node, one run at a time. The store around it owns the
 * INSERT and the reads.
 */
export class PgLogTable<T> {
  readonly #o: PgLogTableOptions<T>;
  readonly #writer: PgBatchWriter<T>;
  readonly #sweep: NodeJS.Timeout;
  #sinceSweep = 0;
  #pruning: Promise<unknown> | undefined;
  #closed = false;

  constructor(opts: PgLogTableOptions<T>) {
    this.#o = opts;
    this.#writer = new PgBatchWriter<T>({
      ...opts,
      write: async (batch) => {
        await opts.write(batch);
        this.#sinceSweep += batch.length;
        if (this.#sinceSweep >= Math.max(100, Math.floor(opts.maxRows / 10))) this.#prune();
      },
    });
    this.#sweep = setInterval(() => this.#prune(), opts.sweepIntervalMs ?? 60_000);
    this.#sweep.unref();
    this.#prune();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Records dropped since start (see PgBatchWriter). */
  get dropped(): number {
    return this.#writer.dropped;
  }

  /** Queues a record; never blocks, never throws (dropped once closed). */
  push(x: T): void {
    if (!this.#closed) this.#writer.push(x);
  }

  /** Writes what is queued (never rejects: an unreachable PostgreSQL leaves it queued). */
  flush(): Promise<void> {
    return this.#writer.flush();
  }

  /** Applies retention now, to completion unless another node is at it; resolves with the records deleted. */
  async prune(): Promise<{ deleted: number; skipped: boolean }> {
    await this.#pruning; // this node's own run first (it holds the lock)
    return this.#runPrune();
  }

  async #runPrune(): Promise<{ deleted: number; skipped: boolean }> {
    await this.#writer.flush();
    let deleted = 0;
    for (;;) {
      const o = this.#o;
      const r = await pruneLogTable(o.pool, { schema: o.schema, table: o.table, timeColumn: o.timeColumn, retentionMs: o.retentionMs, maxRows: o.maxRows });
      deleted += r.deleted;
      if (r.skipped || !r.more) return { deleted, skipped: r.skipped };
    }
  }

  #prune(): void {
    this.#sinceSweep = 0;
    if (this.#pruning || this.#closed) return;
    this.#pruning = this.#runPrune()
      .catch((e: unknown) => this.#o.onError?.(e))
      .finally(() => (this.#pruning = undefined));
  }

  /** Writes what is queued (one attempt) and stops; later records are dropped. Does not end the pool (its owner does). */
  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#sweep);
    await this.#writer.close();
    this.#closed = true;
    await this.#pruning;
  }
}
