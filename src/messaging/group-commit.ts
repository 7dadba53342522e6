import type { Statement } from 'better-sqlite3';
import type { Db } from '../storage/index.js';
import {
  commitBatch,
  CommitThread,
  runRecorded,
  ThreadWriteError,
  type BatchAnswer,
  type Recorded,
  type RecordedBatch,
  type Recorder,
} from './commit-thread.js';

/** A write that settles through its own promise (`run`). */
interface Op {
  run: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** Whether it reads what it writes (a count of rows changed): it runs on the event loop's connection. */
  readsBack: boolean;
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

/** What runs around every batch's writes: inside its transaction after them, and once it is known whether they committed. */
export interface CommitHooks<T> {
  /** Runs inside every batch's transaction, after its writes (e.g. to save changed conversations); what it returns is handed to the next two. */
  beforeCommit(): T;
  /** What that `beforeCommit` wrote committed. */
  afterCommit(saved: T): void;
  /** A transaction failed whole, `beforeCommit`'s writes with it: the next must write them again. */
  notCommitted?(): void;
}

interface Batch {
  ops: (Op | JoinedWrite)[];
  joined: { promise: Promise<JoinFailures>; resolve: (f: JoinFailures) => void } | undefined;
}

/**
 * Batches the thread holds at once. Each turn's writes are posted as they would commit on the
 * event loop, so the thread commits one while the event loop fills the next; beyond this many the
 * writes wait for an answer and go as one batch.
 */
const MAX_IN_FLIGHT = 64;
/** Writes in a batch posted to the thread: small enough that it commits one while the event loop fills the next. */
const THREAD_BATCH = 1000;

const NO_HOOKS: CommitHooks<undefined> = { beforeCommit: () => undefined, afterCommit: () => {} };

/**
 * Group commit: writes requested in the same turn of the event loop share one SQLite transaction,
 * and each caller's promise settles only once that transaction has committed. "Accepted" therefore
 * always means "on disk" (WAL, synchronous=NORMAL: it survives a crash of the process), while the
 * cost of a commit is spread over every message in the batch. A failing write fails alone: the
 * batch is retried one write per transaction so the others still commit.
 *
 * With a `CommitThread`, a batch's writes are recorded as data (the store's `Recorder`) and
 * committed by the thread while the event loop fills the next batch; one batch is in flight at a
 * time. A batch holding a write that reads what it wrote (`run`) waits for the one in flight and
 * runs on the event loop's connection, so that writes still commit in the order they were asked.
 */
export class GroupCommit<T = unknown> {
  /** In the order they were asked for: a conversation's later step writes after its earlier one. */
  #ops: (Op | JoinedWrite)[] = [];
  /** The promise every joined write of the batch being filled waits on. */
  #batch: Batch['joined'];
  /** Whether a queued write must run on the event loop's connection. */
  #readsBack = false;
  /** The batches posted to the thread and not yet answered, oldest first (it commits them in order). */
  readonly #inFlight: Batch[] = [];
  #scheduled = false;
  #closed = false;
  #flushing: Promise<void> | undefined;
  #flushed!: () => void;
  /** Wrapped once: better-sqlite3 builds its wrapper functions anew on every `db.transaction()` call. */
  readonly #all: (ops: readonly (Op | JoinedWrite)[], results: unknown[]) => T;
  readonly #one: (op: Op | JoinedWrite) => [unknown, T];
  readonly #hooks: CommitHooks<T>;
  readonly #thread: { commits: CommitThread; recorder: Recorder } | undefined;
  /** The recorded statements prepared on the event loop's connection, once a thread died. */
  #here: Statement[] | undefined;

  constructor(
    private readonly db: Db,
    hooks: CommitHooks<T> = NO_HOOKS as CommitHooks<T>,
    private readonly maxBatch = 10_000,
    thread?: { path: string; recorder: Recorder; onLost: (e: unknown) => void },
  ) {
    this.#hooks = hooks;
    if (thread) {
      const { recorder } = thread;
      this.#thread = {
        commits: new CommitThread(thread.path, (b) => this.#commitRecorded(b, recorder), thread.onLost),
        recorder,
      };
    }
    this.#all = db.transaction((ops: readonly (Op | JoinedWrite)[], results: unknown[]) => {
      for (let i = 0; i < ops.length; i++) results[i] = ops[i]!.run();
      return hooks.beforeCommit();
    });
    this.#one = db.transaction((op: Op | JoinedWrite): [unknown, T] => {
      const v = op.run();
      return [v, hooks.beforeCommit()];
    });
  }

  get pending(): number {
    return this.#ops.length;
  }

  /** The writes not yet committed, in the order they were asked for: the batch in flight's, then the queued. */
  get queued(): readonly (Op | JoinedWrite)[] {
    return this.#inFlight.length === 0 ? this.#ops : [...this.#inFlight.flatMap((b) => b.ops), ...this.#ops];
  }

  /** A write whose result is read (rows changed): it runs on the event loop's connection, after any batch in flight. */
  run<R>(write: () => R): Promise<R> {
    return this.#push(write, true);
  }

  /** A write that reads nothing back: recorded for the commit thread when there is one. */
  record(write: () => void): Promise<void> {
    return this.#push(write, false);
  }

  #push<R>(write: () => R, readsBack: boolean): Promise<R> {
    if (this.#closed) return Promise.reject(new Error('the message store is closed'));
    return new Promise<R>((resolve, reject) => {
      this.#ops.push({ run: write, resolve: resolve as (v: unknown) => void, reject, readsBack });
      if (readsBack) this.#readsBack = true;
      this.#queued();
    });
  }

  /**
   * Queues `w` in the next batch; resolves once the batch committed, with the writes that failed
   * (then each alone: the others of the batch still committed). One promise per batch, not per write.
   */
  join(w: JoinedWrite): Promise<JoinFailures> {
    if (this.#closed) return Promise.reject(new Error('the message store is closed'));
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
    if (this.#ops.length >= (this.#thread ? THREAD_BATCH : this.maxBatch)) this.flush();
    else this.#schedule();
  }

  /** Makes sure a commit happens soon even when no write is queued (to save what beforeCommit saves). */
  touch(): void {
    if (!this.#closed) this.#schedule();
  }

  /** Resolves once everything requested so far has committed. */
  settled(): Promise<void> {
    if (this.#ops.length === 0 && !this.#scheduled && this.#inFlight.length === 0) return Promise.resolve();
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
    const readsBack = this.#readsBack;
    // An answer from the thread flushes what waits here: a write that reads back waits for every
    // batch in flight, so that it runs after them, and at most MAX_IN_FLIGHT are posted at once.
    if (this.#inFlight.length > 0 && (readsBack || this.#inFlight.length >= MAX_IN_FLIGHT)) return;
    const batch: Batch = { ops: this.#ops, joined: this.#batch };
    this.#ops = [];
    this.#batch = undefined;
    this.#readsBack = false;
    const thread = this.#thread;
    if (thread && !thread.commits.dead && !readsBack) this.#post(batch, thread.commits, thread.recorder);
    else this.#commitHere(batch);
    this.#settle();
  }

  #settle(): void {
    if (this.#ops.length === 0 && this.#inFlight.length === 0 && this.#flushing) {
      const done = this.#flushed;
      this.#flushing = undefined;
      done();
    }
  }

  /** Commits `batch` on the event loop's connection. */
  #commitHere({ ops, joined }: Batch): void {
    if (ops.length === 0) {
      try {
        this.#hooks.afterCommit(this.#all(ops, []));
      } catch {
        // Nothing waits on it; the next batch saves the same state again.
        this.#hooks.notCommitted?.();
      }
      return;
    }
    const results: unknown[] = new Array(ops.length);
    let failed: Map<JoinedWrite, unknown> | undefined;
    try {
      this.#hooks.afterCommit(this.#all(ops, results));
      for (let i = 0; i < ops.length; i++) ops[i]!.resolve?.(results[i]);
    } catch {
      this.#hooks.notCommitted?.();
      for (const op of ops) {
        try {
          const [r, saved] = this.#one(op);
          this.#hooks.afterCommit(saved);
          op.resolve?.(r);
        } catch (e) {
          this.#hooks.notCommitted?.();
          if (op.resolve) op.reject(e);
          else (failed ??= new Map()).set(op, e);
        }
      }
    }
    joined?.resolve(failed);
  }

  /** Records `batch`'s writes and hands them to the thread; what it answers settles them. */
  #post(batch: Batch, commits: CommitThread, recorder: Recorder): void {
    const { ops } = batch;
    const v: Recorded = [];
    const ends: number[] = new Array(ops.length);
    /** Writes that failed while recorded (a value that cannot be written): they fail alone, as a failed INSERT would. */
    let early: Map<number, unknown> | undefined;
    let saved: T;
    recorder.values = v;
    try {
      for (let i = 0; i < ops.length; i++) {
        const from = v.length;
        try {
          ops[i]!.run();
        } catch (e) {
          v.length = from;
          (early ??= new Map()).set(i, e);
        }
        ends[i] = v.length;
      }
      saved = this.#hooks.beforeCommit();
    } finally {
      recorder.values = undefined;
    }
    this.#inFlight.push(batch);
    commits.post(recorder.unsent(), v, ends, (a) => this.#answered(batch, saved, a, early));
  }

  #answered(batch: Batch, saved: T, a: BatchAnswer, early: Map<number, unknown> | undefined): void {
    this.#inFlight.shift();
    if (a.tailCommitted) this.#hooks.afterCommit(saved);
    else this.#hooks.notCommitted?.();
    let failures = early;
    for (const [i, code, message] of a.failed ?? [])
      (failures ??= new Map()).set(i, new ThreadWriteError(message, code));
    let failed: Map<JoinedWrite, unknown> | undefined;
    const { ops, joined } = batch;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      const e = failures?.get(i);
      if (e === undefined) op.resolve?.(undefined);
      else if (op.resolve) op.reject(e);
      else (failed ??= new Map()).set(op, e);
    }
    joined?.resolve(failed);
    if (this.#ops.length > 0) this.flush();
    else this.#settle();
  }

  /** A batch the thread did not answer (it died), on the event loop's connection. */
  #commitRecorded(b: RecordedBatch, recorder: Recorder): BatchAnswer {
    this.#here ??= recorder.sql.map((text) => this.db.prepare(text));
    for (let i = this.#here.length; i < recorder.sql.length; i++) this.#here.push(this.db.prepare(recorder.sql[i]!));
    return commitBatch(this.db, this.#here, runRecorded, b);
  }

  close(): void {
    this.flush();
    // Every batch the thread holds is answered before the store closes (the answers run here).
    this.#thread?.commits.closeSync();
    while (this.#ops.length > 0) {
      this.flush();
      this.#thread?.commits.closeSync();
    }
    this.#closed = true;
  }
}
