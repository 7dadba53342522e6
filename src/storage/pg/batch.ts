/**
 * What the cluster's append-only logs in PostgreSQL (the event store, the tool audit) share: a
 * writer that never makes its callers wait (TurnBatcher: what a turn queued goes in one INSERT,
 * one INSERT at a time; while PostgreSQL is unreachable the batch waits, up to a bound, the
 * oldest dropped and counted beyond it), and retention applied by one node at a time.
 */
import type pg from 'pg';
import { TurnBatcher } from '../../shared/turn-batcher.js';
import { isUnreachable } from './errors.js';
import { inTransaction } from './tx.js';

/** How a store's batches are written (TurnBatcher: every store on PgLogTable takes these in its options). */
export interface PgBatchTuning {
  /** Least time between two INSERTs of a store, in ms (default 0: what each turn queued, one INSERT at a time). */
  flushMs?: number;
  /** Rows per INSERT (default 500). */
  batchSize?: number;
  /** At most this many records wait (while PostgreSQL is unreachable, or behind a running INSERT); beyond it the oldest are dropped (default 50,000). */
  maxBuffered?: number;
  /** How long to wait before writing again after PostgreSQL was unreachable (default 1 s). */
  retryMs?: number;
  /** A write failed (at most one call per `reportMs` while it keeps failing). */
  onError?: (e: unknown) => void;
  /** Records were dropped: `n` now, `total` since start (the buffer bound, or a batch PostgreSQL refused). */
  onDropped?: (n: number, total: number) => void;
  /** A record found the buffer full (back-pressure). */
  onFull?: () => void;
  /** Least time between two onError reports (default 30 s). */
  reportMs?: number;
}

/**
 * One run of retention on an append-only log table (`id` bigserial, `timeColumn` epoch ms): rows
 * older than `retentionMs`, then the oldest beyond `maxRows`, in batches, as SQLite's tableRule
 * (src/storage/retention.ts). One node at a time: the run holds a transaction-scoped try-lock
 * named after the table; a node that does not get it skips (`skipped`).
 */
export function pruneLogTable(
  pool: pg.Pool,
  o: {
    schema: string;
    table: string;
    timeColumn: string;
    retentionMs: number;
    maxRows: number;
    batch?: number;
    maxBatches?: number;
  },
): Promise<{ deleted: number; skipped: boolean; more: boolean }> {
  const t = `${o.schema}.${o.table}`;
  const batch = o.batch ?? 5000;
  return inTransaction(pool, 'BEGIN', async (c) => {
    const lock = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS ok', [
      `caxton-retention:${t}`,
    ]);
    if (!lock.rows[0]!.ok) return { deleted: 0, skipped: true, more: false };
    let deleted = 0;
    for (let i = 0; i < (o.maxBatches ?? 20); i++) {
      const cutoff = Date.now() - o.retentionMs;
      const old =
        (
          await c.query(
            `DELETE FROM ${t} WHERE id IN (SELECT id FROM ${t} WHERE ${o.timeColumn} < $1 ORDER BY ${o.timeColumn} LIMIT $2)`,
            [cutoff, batch],
          )
        ).rowCount ?? 0;
      const cut = (await c.query<{ id: string }>(`SELECT id FROM ${t} ORDER BY id DESC LIMIT 1 OFFSET $1`, [o.maxRows]))
        .rows[0];
      const over = cut
        ? ((
            await c.query(`DELETE FROM ${t} WHERE id IN (SELECT id FROM ${t} WHERE id <= $1 ORDER BY id LIMIT $2)`, [
              cut.id,
              batch,
            ])
          ).rowCount ?? 0)
        : 0;
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
  /** One run of retention, where the table is not one row per record (default `pruneLogTable` on `table`). */
  prune?: () => Promise<{ deleted: number; skipped: boolean; more: boolean }>;
}

/**
 * An append-only log table of the cluster (the event store, the tool audit): records batched by a
 * TurnBatcher, and retention (`pruneLogTable`) at start, every `sweepIntervalMs` and after every
 * max_rows / 10 records written by this node, one run at a time. The store around it owns the
 * INSERT and the reads.
 */
export class PgLogTable<T> {
  readonly #o: PgLogTableOptions<T>;
  readonly #writer: TurnBatcher<T>;
  readonly #sweep: NodeJS.Timeout;
  #sinceSweep = 0;
  #pruning: Promise<unknown> | undefined;
  #closed = false;

  constructor(opts: PgLogTableOptions<T>) {
    this.#o = opts;
    this.#writer = new TurnBatcher<T>({
      maxQueue: opts.maxBuffered ?? 50_000,
      maxBatch: opts.batchSize ?? 500,
      windowMs: opts.flushMs ?? 0,
      retryable: isUnreachable,
      retryMs: opts.retryMs ?? 1000,
      reportMs: opts.reportMs ?? 30_000,
      ...(opts.onError && { onError: opts.onError }),
      ...(opts.onDropped && { onDropped: opts.onDropped }),
      ...(opts.onFull && { onFull: opts.onFull }),
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

  /** Records dropped since start (the buffer bound, or a batch PostgreSQL refused). */
  get dropped(): number {
    return this.#writer.dropped;
  }

  /** Records queued and not written yet. */
  get queued(): number {
    return this.#writer.queued;
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
      const r = o.prune
        ? await o.prune()
        : await pruneLogTable(o.pool, {
            schema: o.schema,
            table: o.table,
            timeColumn: o.timeColumn,
            retentionMs: o.retentionMs,
            maxRows: o.maxRows,
          });
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

/**
 * A batch's rows as one array per column, for a single `INSERT … SELECT … FROM unnest($1::T[], …)`:
 * one statement and one parameter per column whatever the batch's size.
 */
export function columnsOf<T>(batch: readonly T[], width: number, values: (row: T) => readonly unknown[]): unknown[][] {
  const cols: unknown[][] = Array.from({ length: width }, () => []);
  for (const row of batch) {
    const v = values(row);
    for (let i = 0; i < width; i++) cols[i]!.push(v[i]);
  }
  return cols;
}
