/**
 * An append-only audit table in the data dir's SQLite database, the one base of the audit trail
 * (`audit_log`, audit-store.ts) and the tool audit (`tool_audit`, tool-audit.ts): its migrations run,
 * rows are queued and written at the end of the event-loop turn in the database's one transaction
 * of that turn (src/storage/turn-writer.ts), and retention by age and count is the storage
 * Pruner's, poked every tenth of `maxRows` written, in small batches off the caller's path. A
 * cluster's tool audit is the same table in PostgreSQL, on storage's PgLogTable (pg-tool-audit.ts).
 */
import { migrate, Pruner, tableRule, writeLane, type Db, type Migration, type WriteLane } from '../storage/index.js';

export interface SqliteLogTableOptions<T, R> {
  table: string;
  migrations: readonly Migration[];
  /** Rows older than this go. */
  retentionMs: number;
  /** At most this many rows are kept. */
  maxRows: number;
  /** Rows (an SQL condition) evicted first when the table holds more than `maxRows`. */
  evictFirst?: string;
  /** Called once the table is migrated: prepares the insert and returns what writes one batch, inside the turn's transaction. */
  writer: () => (batch: T[]) => R;
  /** After the batch committed, with what `write` returned. */
  committed?: (result: R, batch: T[]) => void;
  onError?: (e: unknown) => void;
  /** A row found the write queue full (back-pressure: the queue was written on the caller's turn). */
  onFull?: () => void;
}

export class SqliteLogTable<T, R = void> {
  readonly #lane: WriteLane<T>;
  readonly #pruner: Pruner;
  readonly #table: string;
  readonly #pruneEvery: number;
  #sincePrune = 0;
  #closed = false;

  constructor(db: Db, o: SqliteLogTableOptions<T, R>) {
    migrate(db, o.migrations);
    this.#table = o.table;
    const onError = o.onError ?? (() => {});
    this.#pruneEvery = Math.max(100, Math.floor(o.maxRows / 10));
    this.#pruner = new Pruner(db, { onError })
      .add(
        tableRule(db, {
          name: o.table,
          table: o.table,
          timeColumn: 'time',
          time: 'ms',
          retentionMs: o.retentionMs,
          maxRows: o.maxRows,
          ...(o.evictFirst !== undefined && { evictFirst: o.evictFirst }),
        }),
      )
      .start();
    this.#pruner.poke();
    this.#lane = writeLane(db, {
      write: o.writer(),
      committed: (result, batch) => {
        o.committed?.(result, batch);
        this.#written(batch.length);
      },
      onError,
      ...(o.onFull && { onFull: o.onFull }),
    });
  }

  /** Rows dropped because writing failed (the error goes to onError). */
  get dropped(): number {
    return this.#lane.dropped;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Queues a row; ignored once closed. Never blocks, never throws. */
  push(row: T): void {
    if (!this.#closed) this.#lane.push(row);
  }

  /** Writes what is queued (this table's rows and the database's other queued records), synchronously. */
  flush(): void {
    this.#lane.flush();
  }

  #written(n: number): void {
    this.#sincePrune += n;
    if (this.#sincePrune >= this.#pruneEvery) {
      this.#sincePrune = 0;
      this.#pruner.poke();
    }
  }

  /** Applies retention now; resolves with the rows deleted. */
  async prune(): Promise<number> {
    this.flush();
    return (await this.#pruner.run())[this.#table] ?? 0;
  }

  /** Writes what is queued and stops accepting rows. Does not close the database (its owner does). */
  close(): void {
    this.#lane.close();
    this.#closed = true;
    this.#pruner.close();
  }
}
