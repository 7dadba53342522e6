/**
 * The write-behind queue of Caxton's append-only records (the audit trail, the tool audit, the
 * agent events, in SQLite or PostgreSQL): `push` is an array push, and everything pushed during
 * one turn of the event loop is written together at its end, in one batch. The caller never waits
 * for the write and never sees it fail.
 *
 *  - **At most one write per window** (`windowMs`): a record is written at the end of its turn
 *    when the last write is older than the window, else when the window ends. An idle server
 *    writes at once; a busy one writes one batch per window instead of one per turn, because a
 *    write costs mostly per page it touches, and rows that share pages share that cost.
 *  - **Bounded.** At most `maxQueue` records wait. A record that finds the queue full is
 *    back-pressure, counted (`onFull`): the batch is written at once on the caller's turn when no
 *    write is under way (a synchronous writer always), else the oldest records are dropped and
 *    counted (`onDropped`).
 *  - **One write at a time**, in order; what is pushed meanwhile waits for the next turn after it.
 *  - **Transient failures** (`retryable`) put the batch back at the front, to be tried again after
 *    `retryMs`; any other failure drops the batch (counted, reported).
 *  - **Drained on close**: `close()` writes what is queued (one attempt) before it resolves.
 *
 * What a hard kill (SIGKILL, power loss) loses is what was queued and not yet written: the records
 * of the last flush window (the current turn, or `windowMs` when busy) and what waits on an
 * unreachable database.
 */

export interface TurnBatcherOptions<T> {
  /**
   * Writes one batch, in order; returns (synchronous writers) or resolves once it is stored.
   * Throws or rejects when it could not.
   */
  write: (batch: T[]) => void | Promise<void>;
  /** At most this many records wait (default 10,000). */
  maxQueue?: number;
  /** At most this many records per write (default: the whole queue). */
  maxBatch?: number;
  /** Least time between the starts of two writes, in ms (default 0: one write per turn). */
  windowMs?: number;
  /** A failure worth trying again (an unreachable database): the batch waits and is retried. Default: none is. */
  retryable?: (e: unknown) => boolean;
  /** How long to wait before a retry (default 1 s). */
  retryMs?: number;
  /** A write failed (each failure, or at most one per `reportMs` while retries keep failing). */
  onError?: (e: unknown) => void;
  /** Least time between two onError reports of retried failures (default 30 s). */
  reportMs?: number;
  /** Records were dropped: `n` now, `total` since start (a full queue behind a running write, or a failed batch). */
  onDropped?: (n: number, total: number) => void;
  /** A record found the queue full (back-pressure). */
  onFull?: () => void;
}

const isThenable = (v: unknown): v is Promise<void> =>
  typeof (v as { then?: unknown } | undefined)?.then === 'function';

export class TurnBatcher<T> {
  readonly #o: TurnBatcherOptions<T>;
  readonly #maxQueue: number;
  readonly #maxBatch: number;
  #queue: T[] = [];
  #timer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  #retrying = false;
  #lastReport = -Infinity;
  #lastWrite = -Infinity;
  #closed = false;
  /** Records dropped since start. */
  dropped = 0;
  /** Records that found the queue full, since start. */
  full = 0;

  constructor(opts: TurnBatcherOptions<T>) {
    this.#o = opts;
    this.#maxQueue = Math.max(1, opts.maxQueue ?? 10_000);
    this.#maxBatch = Math.max(1, opts.maxBatch ?? this.#maxQueue);
  }

  /** Records waiting to be written. */
  get queued(): number {
    return this.#queue.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Queues a record; never blocks on a write under way, never throws. Dropped once closed. */
  push(x: T): void {
    if (this.#closed) return;
    if (this.#queue.length >= this.#maxQueue) {
      this.full++;
      this.#o.onFull?.();
      if (!this.#writing && !this.#retrying) void this.flush();
      if (this.#queue.length >= this.#maxQueue)
        this.#drop(this.#queue.splice(0, this.#queue.length - this.#maxQueue + 1).length);
    }
    this.#queue.push(x);
    this.#schedule();
  }

  /**
   * Writes what is queued. With a synchronous writer the records are stored when this returns;
   * the promise resolves once the queue is written, or once a retryable failure left it queued:
   * it never rejects.
   */
  flush(): Promise<void> {
    if (this.#writing) return this.#writing.then(() => this.flush());
    this.#cancelTimer();
    this.#retrying = false;
    while (this.#queue.length > 0) {
      const batch = this.#queue.length <= this.#maxBatch ? this.#queue : this.#queue.slice(0, this.#maxBatch);
      if (batch === this.#queue) this.#queue = [];
      else this.#queue.splice(0, batch.length);
      this.#lastWrite = performance.now();
      let r: void | Promise<void>;
      try {
        r = this.#o.write(batch);
      } catch (e) {
        if (this.#failed(batch, e)) return Promise.resolve();
        continue;
      }
      if (isThenable(r)) {
        const writing = r.then(
          () => {
            this.#writing = undefined;
            return this.flush();
          },
          (e: unknown) => {
            this.#writing = undefined;
            return this.#failed(batch, e) ? undefined : this.flush();
          },
        );
        this.#writing = writing;
        return writing;
      }
    }
    return Promise.resolve();
  }

  /** Writes what is queued (one attempt, a retryable failure included) and stops; what could not be written is counted as dropped. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    this.#cancelTimer();
    const left = this.#queue.length;
    this.#queue = [];
    if (left > 0) this.#drop(left);
  }

  /** A failed batch: back to the front for a retry (true: stop writing until then), or dropped. */
  #failed(batch: T[], e: unknown): boolean {
    if (!this.#closed && this.#o.retryable?.(e) === true) {
      this.#queue = batch.concat(this.#queue);
      const over = this.#queue.length - this.#maxQueue;
      if (over > 0) this.#drop(this.#queue.splice(0, over).length);
      const now = Date.now();
      if (now - this.#lastReport >= (this.#o.reportMs ?? 30_000)) {
        this.#lastReport = now;
        this.#o.onError?.(e);
      }
      this.#retrying = true;
      this.#cancelTimer();
      if (!this.#closed) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          void this.flush();
        }, this.#o.retryMs ?? 1000);
        this.#timer.unref();
      }
      return true;
    }
    this.#drop(batch.length);
    this.#o.onError?.(e);
    return false;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#writing || this.#retrying) return;
    const run = () => {
      this.#timer = undefined;
      void this.flush();
    };
    const wait = (this.#o.windowMs ?? 0) - (performance.now() - this.#lastWrite);
    this.#timer = wait > 0 ? setTimeout(run, wait) : setImmediate(run);
  }

  #cancelTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer as NodeJS.Timeout);
    clearImmediate(this.#timer as NodeJS.Immediate);
    this.#timer = undefined;
  }

  #drop(n: number): void {
    if (n <= 0) return;
    this.dropped += n;
    this.#o.onDropped?.(n, this.dropped);
  }
}
