import type { Db } from './database.js';

/** A write that settles through its own promise (`run`). */
interface Op {
  run: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * A write that shares its batch's one promise (`join`): the object itself is queued, so a caller
 * that already holds an object per write (a conversation step) allocates nothing more for it.
 */
export interface JoinedWrite {
  run(): void;
  readonly resolve?: undefined;
}

/** What a batch's joined writers learn: undefined when all committed, else the error of each one that failed. */
export type JoinFailures = ReadonlyMap<JoinedWrite, unknown> | undefined;

/**
 * Group commit: writes requested in the same turn of the event loop share one SQLite transaction,
 * and each caller's promise settles only once that transaction has committed. "Accepted" therefore
 * always means "on disk" (WAL, synchronous=NORMAL: it survives a crash of the process), while the
 * cost of a commit is spread over every message in the batch. A failing write fails alone: the
 * batch is retried one write per transaction so the others still commit.
 */
export class GroupCommit {
  /** In the order they were asked for: a conversation's later step writes after its earlier one. */
  #ops: (Op | JoinedWrite)[] = [];
  /** The promise every joined write of the batch being filled waits on. */
  #batch: { promise: Promise<JoinFailures>; resolve: (f: JoinFailures) => void } | undefined;
  #scheduled = false;
  #closed = false;
  #flushing: Promise<void> | undefined;
  #flushed!: () => void;
  /** Wrapped once: better-sqlite3 builds its wrapper functions anew on every `db.transaction()` call. */
  readonly #all: (ops: readonly (Op | JoinedWrite)[], results: unknown[]) => void;
  readonly #one: (op: Op | JoinedWrite) => unknown;

  constructor(
    private readonly db: Db,
    /** Runs inside every batch's transaction, after its writes (e.g. to save changed conversations). */
    private readonly beforeCommit: () => void = () => {},
    /** Runs after a transaction committed (e.g. to forget what beforeCommit saved). */
    private readonly afterCommit: () => void = () => {},
    private readonly maxBatch = 10_000,
  ) {
    this.#all = db.transaction((ops: readonly (Op | JoinedWrite)[], results: unknown[]) => {
      for (let i = 0; i < ops.length; i++) results[i] = ops[i]!.run();
      this.beforeCommit();
    });
    this.#one = db.transaction((op: Op | JoinedWrite) => {
      const v = op.run();
      this.beforeCommit();
      return v;
    });
  }

  get pending(): number {
    return this.#ops.length;
  }

  /** The writes waiting for the next batch, in the order they were asked for. */
  get queued(): readonly (Op | JoinedWrite)[] {
    return this.#ops;
  }

  run<T>(write: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('the store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.#ops.push({ run: write, resolve: resolve as (v: unknown) => void, reject });
      this.#queued();
    });
  }

  /**
   * Queues `w` in the next batch; resolves once the batch committed, with the writes that failed
   * (then each alone: the others of the batch still committed). One promise per batch, not per write.
   */
  join(w: JoinedWrite): Promise<JoinFailures> {
    if (this.#closed) return Promise.reject(new Error('the store is closed'));
    let batch = this.#batch;
    if (!batch) {
      let resolve!: (f: JoinFailures) => void;
      const promise = new Promise<JoinFailures>((r) => (resolve = r));
      this.#batch = batch = { promise, resolve };
    }
    this.#ops.push(w);
    this.#queued();
    return batch.promise;
  }

  #queued(): void {
    if (this.#ops.length >= this.maxBatch) this.flush();
    else this.#schedule();
  }

  /** Makes sure a commit happens soon even when no write is queued (to save what beforeCommit saves). */
  touch(): void {
    if (!this.#closed) this.#schedule();
  }

  /** Resolves once everything requested so far has committed. */
  settled(): Promise<void> {
    if (this.#ops.length === 0 && !this.#scheduled) return Promise.resolve();
    this.#flushing ??= new Promise<void>((r) => (this.#flushed = r));
    return this.#flushing;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.flush());
  }

  flush(): void {
    this.#scheduled = false;
    const ops = this.#ops;
    const batch = this.#batch;
    this.#ops = [];
    this.#batch = undefined;
    if (ops.length > 0) {
      const results: unknown[] = new Array(ops.length);
      let failed: Map<JoinedWrite, unknown> | undefined;
      try {
        this.#all(ops, results);
        this.afterCommit();
        for (let i = 0; i < ops.length; i++) ops[i]!.resolve?.(results[i]);
      } catch {
        for (const op of ops) {
          try {
            const r = this.#one(op);
            this.afterCommit();
            op.resolve?.(r);
          } catch (e) {
            if (op.resolve) op.reject(e);
            else (failed ??= new Map()).set(op, e);
          }
        }
      }
      batch?.resolve(failed);
    } else {
      try {
        this.#all(ops, []);
        this.afterCommit();
      } catch {
        /* nothing waits on it; the next batch saves the same state again */
      }
    }
    if (this.#ops.length === 0 && this.#flushing) {
      const done = this.#flushed;
      this.#flushing = undefined;
      done();
    }
  }

  close(): void {
    this.flush();
    this.#closed = true;
  }
}
