/**
 * One write-behind writer per SQLite database for its append-only records: the audit trail, the
 * tool audit and the agent events each write through a lane of it, and what all lanes queued is
 * inserted in ONE transaction at the end of the event-loop turn, at most once per
 * TURN_WRITER_WINDOW_MS (a TurnBatcher).
 *
 * Rows of one store that fail (a constraint, a bug) are dropped and reported to that store alone,
 * the other lanes' rows still commit: the batch is first written in one plain transaction, and only
 * when a lane throws is it rolled back and written again with each lane in a savepoint. Savepoints
 * are not taken up front because in WAL mode every page a savepoint changes is copied to a
 * statement journal, which spills past 64 KB to a temporary file created, written and unlinked
 * within the commit: on a commit of a few dozen invokes' records that doubled the inserts' time
 * on the event loop (ADR 0094). A failed commit (disk full) drops the whole batch, each lane
 * counting its own rows.
 */
import { TurnBatcher } from '../shared/turn-batcher.js';
import type { Db } from './database.js';

/** Records that may wait, all lanes together; a full queue is written at once (back-pressure). */
export const TURN_WRITER_MAX_QUEUE = 1000;
/**
 * Least time between two transactions of the writer, in ms: what a kill -9 may lose when the
 * server is busy. A transaction's cost is mostly the pages it writes (each table's and index's
 * last page), so batching one window of rows instead of one turn's cuts the cost per row several
 * times under load (`npm run bench -- audit-events`; docs/benchmarks.md, "Today's targets").
 */
export const TURN_WRITER_WINDOW_MS = 10;

export interface WriteLaneOptions<T, R> {
  /** Inserts one batch of this lane's records, inside the writer's transaction. */
  write: (batch: T[]) => R;
  /** After the transaction committed, with what `write` returned (a store emits its rows to followers here). */
  committed?: (result: R, batch: T[]) => void;
  /** This lane's rows could not be written (they are dropped and counted in `dropped`). */
  onError?: (e: unknown) => void;
  /** A record of this lane found the writer's queue full: the queue was written on the caller's turn. */
  onFull?: () => void;
}

/** Where one store queues its records. */
export interface WriteLane<T> {
  /** Queues a record: written at the end of this turn (or at once when the queue is full). Never throws. */
  push(x: T): void;
  /** Writes everything queued (every lane's), synchronously. */
  flush(): void;
  /** Writes what is queued; later records of this lane are ignored. */
  close(): void;
  /** This lane's records dropped because writing failed. */
  readonly dropped: number;
  /** This lane's records that found the queue full. */
  readonly full: number;
}

interface Item {
  lane: Lane<unknown, unknown>;
  value: unknown;
}

class Lane<T, R> implements WriteLane<T> {
  dropped = 0;
  full = 0;
  closed = false;
  constructor(
    readonly writer: SqliteTurnWriter,
    readonly o: WriteLaneOptions<T, R>,
  ) {}

  push(x: T): void {
    if (!this.closed) this.writer.push(this as Lane<unknown, unknown>, x);
  }

  flush(): void {
    this.writer.flush();
  }

  close(): void {
    if (this.closed) return;
    this.writer.flush();
    this.closed = true;
  }

  failed(n: number, e: unknown): void {
    this.dropped += n;
    if (e !== undefined) this.o.onError?.(e);
  }
}

type Done = { lane: Lane<unknown, unknown>; result: unknown; values: unknown[] }[];

/** A lane's `write` threw inside the plain transaction: it is rolled back, and written again lane by lane. */
class LaneFailed {
  constructor(readonly error: unknown) {}
}

class SqliteTurnWriter {
  readonly #db: Db;
  readonly #batcher: TurnBatcher<Item>;
  // The transactions and each lane's savepoint are wrapped once: better-sqlite3 builds four wrapper
  // functions with their properties on every `db.transaction()` call (~10 KB), and a flush per
  // invoke would make that a fifth of what the server allocates for the request.
  /** Every lane in one transaction without savepoints: the common case, where no lane fails. */
  readonly #plain: (groups: Map<Lane<unknown, unknown>, unknown[]>, done: Done) => void;
  /** Each lane in a savepoint of its own, after a lane failed in the plain transaction. */
  readonly #isolated: (groups: Map<Lane<unknown, unknown>, unknown[]>, done: Done) => void;
  readonly #savepoint: (lane: Lane<unknown, unknown>, values: unknown[]) => unknown;

  constructor(db: Db) {
    this.#db = db;
    this.#savepoint = db.transaction((lane: Lane<unknown, unknown>, values: unknown[]) => lane.o.write(values));
    this.#isolated = db.transaction((groups: Map<Lane<unknown, unknown>, unknown[]>, done: Done) => {
      for (const [lane, values] of groups) {
        try {
          done.push({ lane, result: this.#savepoint(lane, values), values });
        } catch (e) {
          lane.failed(values.length, e);
        }
      }
    });
    this.#plain = db.transaction((groups: Map<Lane<unknown, unknown>, unknown[]>, done: Done) => {
      for (const [lane, values] of groups) {
        let result: unknown;
        try {
          result = lane.o.write(values);
        } catch (e) {
          throw new LaneFailed(e);
        }
        done.push({ lane, result, values });
      }
    });
    this.#batcher = new TurnBatcher<Item>({
      maxQueue: TURN_WRITER_MAX_QUEUE,
      windowMs: TURN_WRITER_WINDOW_MS,
      write: (batch) => this.#write(batch),
    });
  }

  lane<T, R>(o: WriteLaneOptions<T, R>): WriteLane<T> {
    return new Lane(this, o);
  }

  push(lane: Lane<unknown, unknown>, value: unknown): void {
    const full = this.#batcher.full;
    this.#batcher.push({ lane, value });
    if (this.#batcher.full !== full) {
      lane.full++;
      lane.o.onFull?.();
    }
  }

  flush(): void {
    // The writer is synchronous: written when this returns.
    void this.#batcher.flush();
  }

  /** Never throws: each lane hears of its own failures. */
  #write(batch: Item[]): void {
    const groups = new Map<Lane<unknown, unknown>, unknown[]>();
    for (const it of batch) {
      const g = groups.get(it.lane);
      if (g) g.push(it.value);
      else groups.set(it.lane, [it.value]);
    }
    if (!this.#db.open) {
      // Shut down out of order (the database before its stores): nothing can be stored any more.
      for (const [lane, values] of groups) lane.failed(values.length, undefined);
      return;
    }
    const done: Done = [];
    try {
      this.#plain(groups, done);
    } catch (e) {
      done.length = 0;
      if (!(e instanceof LaneFailed)) {
        for (const [lane, values] of groups) lane.failed(values.length, e);
        return;
      }
      // Rolled back: written again with each lane in a savepoint, so that the failing lane alone loses its rows.
      try {
        this.#isolated(groups, done);
      } catch (e2) {
        for (const d of done) d.lane.failed(d.values.length, e2);
        return;
      }
    }
    for (const d of done) {
      try {
        d.lane.o.committed?.(d.result, d.values);
      } catch (e) {
        d.lane.o.onError?.(e);
      }
    }
  }
}

const writers = new WeakMap<Db, SqliteTurnWriter>();

/** A lane of `db`'s one turn writer (created with the first lane). */
export function writeLane<T, R = void>(db: Db, o: WriteLaneOptions<T, R>): WriteLane<T> {
  let w = writers.get(db);
  if (!w) writers.set(db, (w = new SqliteTurnWriter(db)));
  return w.lane(o);
}
