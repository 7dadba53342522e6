import type { Db } from '../storage/index.js';

interface Op {
  run: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit: writes requested in the same turn of the event loop share one SQLite transaction,
 * and each caller's promise settles only once that transaction has committed. "Accepted" therefore
 * always means "on disk" (WAL, synchronous=NORMAL: it survives a crash of the process), while the
 * cost of a commit is spread over every message in the batch. A failing write fails alone: the
 * batch is retried one write per transaction so the others still commit.
 */
export class GroupCommit {
  #ops: Op[] = [];
  #scheduled = false;
  #closed = false;
  #flushing: Promise<void> | undefined;
  #flushed!: () => void;

  constructor(
    private readonly db: Db,
    /** Runs inside every batch's transaction, after its writes (e.g. to save changed conversations). */
    private readonly beforeCommit: () => void = () => {},
    /** Runs after a transaction committed (e.g. to forget what beforeCommit saved). */
    private readonly afterCommit: () => void = () => {},
    private readonly maxBatch = 10_000,
  ) {}

  get pending(): number {
    return this.#ops.length;
  }

  run<T>(write: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('the message store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.#ops.push({ run: write, resolve: resolve as (v: unknown) => void, reject });
      if (this.#ops.length >= this.maxBatch) this.flush();
      else this.#schedule();
    });
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
    this.#ops = [];
    if (ops.length > 0) {
      const results: unknown[] = new Array(ops.length);
      try {
        this.db.transaction(() => {
          for (let i = 0; i < ops.length; i++) results[i] = ops[i]!.run();
          this.beforeCommit();
        })();
        this.afterCommit();
        for (let i = 0; i < ops.length; i++) ops[i]!.resolve(results[i]);
      } catch {
        for (const op of ops) {
          try {
            const r = this.db.transaction(() => {
              const v = op.run();
              this.beforeCommit();
              return v;
            })();
            this.afterCommit();
            op.resolve(r);
          } catch (e) {
            op.reject(e);
          }
        }
      }
    } else {
      try {
        this.db.transaction(() => this.beforeCommit())();
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
