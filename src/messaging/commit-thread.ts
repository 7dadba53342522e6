import { createRequire } from 'node:module';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { Db } from '../storage/index.js';

/**
 * A batch's writes as data: `[statement, argument count, ...arguments]` per statement, where the
 * statement is an index into the recorder's texts, or its complement (`~index`) for a statement
 * that runs only when the one before it changed no row (an update falling back to an insert).
 */
export type Recorded = unknown[];

/** Runs `v[from, to)` on `stmts`; self-contained, as its source is the thread's code too. */
export function runRecorded(
  stmts: { run(...a: unknown[]): { changes: number } }[],
  v: Recorded,
  from: number,
  to: number,
): void {
  let last = 1;
  for (let i = from; i < to;) {
    let at = v[i] as number;
    const n = v[i + 1] as number;
    const onlyIfNone = at < 0;
    if (onlyIfNone) at = ~at;
    if (!onlyIfNone || last === 0) last = stmts[at]!.run(...v.slice(i + 2, i + 2 + n)).changes;
    i += 2 + n;
  }
}

/** What a batch's thread tells: the writes that failed each alone, and whether the batch's tail committed with any of them. */
export interface BatchAnswer {
  /** undefined: the batch committed whole. Else `[write index, SQLite code, message]` of each that failed. */
  failed?: [number, string | undefined, string][];
  tailCommitted: boolean;
}

/** A batch's recorded writes and where each ends in `v` (the tail, `beforeCommit`'s rows, follows the last). */
export interface RecordedBatch {
  v: Recorded;
  ends: number[];
}

/**
 * Commits a recorded batch in one transaction on `db`; when that fails, each write in one of its
 * own with the tail, so a full disk fails the writes it fails and no other. Self-contained (its
 * source is the thread's code too), so it takes `run` (`runRecorded`) as an argument.
 */
export function commitBatch(
  db: Db,
  stmts: { run(...a: unknown[]): { changes: number } }[],
  run: typeof runRecorded,
  b: RecordedBatch,
): BatchAnswer {
  try {
    db.transaction(() => run(stmts, b.v, 0, b.v.length))();
    return { tailCommitted: true };
  } catch {
    const failed: [number, string | undefined, string][] = [];
    let tailCommitted = false;
    const tail = b.ends.length > 0 ? b.ends[b.ends.length - 1]! : 0;
    const one = db.transaction((from: number, to: number) => {
      run(stmts, b.v, from, to);
      run(stmts, b.v, tail, b.v.length);
    });
    for (let i = 0, from = 0; i < b.ends.length; from = b.ends[i]!, i++) {
      try {
        one(from, b.ends[i]!);
        tailCommitted = true;
      } catch (e) {
        failed.push([i, (e as { code?: string } | null)?.code, String((e as Error | null)?.message)]);
      }
    }
    return { failed, tailCommitted };
  }
}

/** A batch posted to the thread: its writes, where each ends in `v`, and the tail (from the last end on). */
interface Batch extends RecordedBatch {
  add: string[];
}

/**
 * The statements a `MessageStore` writes with, run at once or recorded as data for the commit
 * thread. While `values` is set (a batch being recorded) a write appends to it instead of running.
 */
export class Recorder {
  values: Recorded | undefined;
  readonly sql: string[] = [];
  #sent = 0;

  /** A write of `text`: runs `stmt` now, or is recorded while a batch is (`onlyIfNone`: see `Recorded`). */
  write(db: Db, text: string, onlyIfNone = false): (...a: unknown[]) => { changes: number } {
    const stmt = db.prepare(text);
    const at = this.sql.push(text) - 1;
    const code = onlyIfNone ? ~at : at;
    return (...a: unknown[]) => {
      const v = this.values;
      if (v === undefined) return stmt.run(...a);
      v.push(code, a.length);
      for (const x of a) v.push(x);
      return RECORDED;
    };
  }

  /** The texts the thread has not prepared yet. */
  unsent(): string[] {
    const add = this.sql.slice(this.#sent);
    this.#sent = this.sql.length;
    return add;
  }
}

/** What a recorded write returns: it changed nothing yet. Callers that read `changes` do not record. */
const RECORDED = Object.freeze({ changes: 0, lastInsertRowid: 0 });

/**
 * The thread's code (CommonJS, run by `eval`: the same text under the bundle, the build and the
 * sources). One connection to the data file with the server's pragmas; each batch is one
 * transaction, and when it fails each write is retried in one of its own with the tail, so a full
 * disk fails the writes it fails and no other. The answer goes through `port`; `shared[0]` counts
 * answers, so that a synchronous close can wait on it.
 */
const SOURCE = `
const { workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const run = ${runRecorded.toString()};
const commitBatch = ${commitBatch.toString()};
const db = new Database(workerData.path);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('foreign_keys = ON');
db.pragma('busy_timeout = 5000');
db.pragma('mmap_size = 268435456');
const stmts = [];
const shared = new Int32Array(workerData.shared);
const port = workerData.port;
port.on('message', (b) => {
  if (b === 'close') {
    port.close();
    db.close();
    return;
  }
  for (const text of b.add) stmts.push(db.prepare(text));
  port.postMessage(commitBatch(db, stmts, run, b));
  Atomics.add(shared, 0, 1);
  Atomics.notify(shared, 0);
});
`;

/** An SQLite error as the thread named it, for the caller (its `code` says a full disk). */
export class ThreadWriteError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/**
 * The message store's commits on a thread of their own: SQLite's work runs beside the event loop's
 * instead of inside it, and the event loop fills the next batch while the thread commits one
 * (ADR 0105). One batch is in flight at a time; its writes resolve on the thread's answer, after
 * its COMMIT. A thread that dies hands its unanswered batch back (`onLost`).
 */
export class CommitThread {
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #answered: Int32Array;
  #posted = 0;
  #handled = 0;
  #waiting: ((a: BatchAnswer) => void)[] = [];
  #batches: Batch[] = [];
  #dead = false;

  constructor(
    path: string,
    /** Commits a batch the thread did not answer on the event loop's connection. */
    private readonly runHere: (b: RecordedBatch) => BatchAnswer,
    private readonly onLost: (e: unknown) => void,
  ) {
    const shared = new SharedArrayBuffer(4);
    this.#answered = new Int32Array(shared);
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    this.#worker = new Worker(SOURCE, {
      eval: true,
      workerData: { module: createRequire(import.meta.url).resolve('better-sqlite3'), path, shared, port: port2 },
      transferList: [port2],
    });
    this.#worker.unref();
    port1.unref();
    port1.on('message', (a: BatchAnswer) => this.#answer(a));
    this.#worker.on('error', (e) => this.#lost(e));
    this.#worker.on('exit', (code) => {
      if (this.#posted > this.#handled) this.#lost(new Error(`the commit thread exited (${code})`));
    });
  }

  get dead(): boolean {
    return this.#dead;
  }

  get inFlight(): boolean {
    return this.#posted > this.#handled;
  }

  post(add: string[], v: Recorded, ends: number[], answer: (a: BatchAnswer) => void): void {
    const b = { add, v, ends };
    this.#batches.push(b);
    this.#waiting.push(answer);
    if (this.#posted++ === this.#handled) {
      // Keeps the process alive while a batch is in flight, and only then.
      this.#worker.ref();
      this.#port.ref();
    }
    this.#port.postMessage(b);
  }

  #answer(a: BatchAnswer): void {
    this.#handled++;
    this.#batches.shift();
    if (this.#posted === this.#handled) {
      this.#worker.unref();
      this.#port.unref();
    }
    this.#waiting.shift()!(a);
  }

  #lost(e: unknown): void {
    if (this.#dead) return;
    this.#dead = true;
    this.onLost(e);
    const batches = this.#batches;
    const waiting = this.#waiting;
    this.#batches = [];
    this.#waiting = [];
    this.#handled = this.#posted;
    for (let i = 0; i < batches.length; i++) waiting[i]!(this.runHere(batches[i]!));
  }

  /** Waits, blocking, for every posted batch's answer and hands each over; then stops the thread. */
  closeSync(): void {
    while (!this.#dead && this.#posted > this.#handled) {
      const seen = Atomics.load(this.#answered, 0);
      if (seen <= this.#handled) Atomics.wait(this.#answered, 0, seen, 1_000);
      for (let m = receiveMessageOnPort(this.#port); m; m = receiveMessageOnPort(this.#port))
        this.#answer(m.message as BatchAnswer);
      if (this.#worker.threadId < 0) this.#lost(new Error('the commit thread exited'));
    }
    this.#dead = true;
    // The thread closes its connection and its end of the channel, then exits on its own.
    this.#port.postMessage('close');
  }
}
