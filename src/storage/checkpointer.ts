/**
 * WAL checkpoints of a database on a worker thread, with a connection of its own (ADR 0076).
 *
 * SQLite checkpoints a WAL database inside the commit that takes the WAL past
 * `wal_autocheckpoint` pages (1,000 by default): that commit copies the WAL's pages into the
 * database file and fsyncs both, a few milliseconds on the thread that committed. On the server
 * that thread is the event loop, and the append-only records commit every few requests, so about
 * one request in 150 waited for a checkpoint. Here the server's connection leaves checkpoints to
 * a worker that runs a PASSIVE one every `intervalMs`: PASSIVE never takes the writer's lock nor
 * waits for readers, so the event loop's reads and commits go on while it copies and fsyncs, and
 * the next commit after a complete checkpoint starts the WAL from its beginning again.
 *
 * Nothing is weaker for it: a commit is on disk in the WAL as before (`synchronous = NORMAL`),
 * and the WAL is fsynced at every checkpoint, now at least every `intervalMs` while there is
 * something to copy instead of once per 1,000 pages. If the worker cannot start or dies, or falls
 * behind, the server's connection still checkpoints itself past `SAFETY_PAGES`, so the WAL stays
 * bounded whatever happens to the worker.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Db } from './database.js';

/** How often the worker checkpoints, in ms. */
export const CHECKPOINT_INTERVAL_MS = 200;
/** The server's connection checkpoints itself past this many WAL pages (~40 MB): only if the worker fell behind or is gone. */
const SAFETY_PAGES = 10_000;
/** SQLite's own default, restored when the worker is gone. */
const DEFAULT_PAGES = 1_000;
/** How long close() waits for the worker to close its connection, in ms. */
const CLOSE_WAIT_MS = 5_000;

/**
 * CommonJS, evaluated as the worker's script: better-sqlite3 is loaded from the path the server
 * resolved (an eval'd worker has no module of its own to resolve from). `done[0]` turns 1 once
 * the connection is closed, for the server's close(), which waits for it synchronously.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const done = new Int32Array(workerData.done);
let db;
try {
  db = new Database(workerData.path, { fileMustExist: true });
  db.pragma('wal_autocheckpoint = 0');
} catch (e) {
  Atomics.store(done, 0, 1);
  Atomics.notify(done, 0);
  throw e;
}
let reported = -Infinity;
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (e) {
    // A lasting failure (a full disk) fails every interval: reported once a minute.
    if (Date.now() - reported < 60000) return;
    reported = Date.now();
    parentPort.postMessage({ error: String((e && e.message) || e) });
  }
}, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  try { db.close(); } finally {
    Atomics.store(done, 0, 1);
    Atomics.notify(done, 0);
    parentPort.close();
  }
});
`;

export interface CheckpointerOptions {
  /** Default CHECKPOINT_INTERVAL_MS. */
  intervalMs?: number;
  /** Start the worker this many ms later (default 0: at once), so that it does not compete with the server's start. */
  startAfterMs?: number;
  /** The worker failed (it could not open the database, or died): the server's connection checkpoints itself again. */
  onError?: (e: unknown) => void;
}

/** The worker that checkpoints one database. */
export interface Checkpointer {
  /** Closes the worker's connection (synchronously: the database's own close() after it is then the last, and removes the WAL). */
  close(): void;
}

/** Moves `db`'s WAL checkpoints to a worker thread. `db` must be a file database in WAL mode. */
export function checkpointInBackground(db: Db, opts: CheckpointerOptions = {}): Checkpointer {
  let worker: Worker | undefined;
  let done: Int32Array | undefined;
  let closed = false;

  const gone = (e: unknown) => {
    if (closed) return;
    worker = undefined;
    if (db.open) db.pragma(`wal_autocheckpoint = ${DEFAULT_PAGES}`);
    opts.onError?.(e);
  };

  const start = () => {
    if (closed || !db.open || db.memory) return;
    const sab = new SharedArrayBuffer(4);
    done = new Int32Array(sab);
    const w = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        module: createRequire(import.meta.url).resolve('better-sqlite3'),
        path: db.name,
        intervalMs: opts.intervalMs ?? CHECKPOINT_INTERVAL_MS,
        done: sab,
      },
    });
    w.unref();
    w.on('message', (m: { error?: string }) => {
      if (m.error !== undefined) opts.onError?.(new Error(`WAL checkpoint: ${m.error}`));
    });
    w.on('error', gone);
    w.on('exit', (code) => {
      if (worker === w) gone(new Error(`the WAL checkpoint worker exited (${code})`));
    });
    worker = w;
    db.pragma(`wal_autocheckpoint = ${SAFETY_PAGES}`);
  };

  const timer = opts.startAfterMs ? setTimeout(start, opts.startAfterMs) : undefined;
  timer?.unref();
  if (!timer) start();

  return {
    close() {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      const w = worker;
      worker = undefined;
      if (!w || !done) return;
      w.postMessage('close');
      Atomics.wait(done, 0, 0, CLOSE_WAIT_MS);
      void w.terminate();
    },
  };
}
