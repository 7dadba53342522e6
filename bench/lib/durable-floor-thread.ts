/**
 * The floor engine of bench/lib/durable-floor.ts with its group commits on a worker thread: the
 * same four statements, run by a better-sqlite3 connection of the thread's own to the same WAL
 * file, with the same pragmas. The event loop builds each group's rows (the message's JSON body
 * included) as flat arrays of SQLite values and posts them; the thread runs each group in one
 * transaction and answers with the delivery ids once its COMMIT returned. A send resolves, and a
 * message is acknowledged, only on that answer: accepted = committed and delivered = acknowledged
 * as in the single-thread engine. What it measures is how much of the loop's cost can run beside
 * the engine's JavaScript on a second core, and what handing rows over costs.
 *
 * Groups are cut at `maxGroup` messages, posted as soon as they fill, so the thread commits one
 * group while the event loop builds the next or acknowledges the last: the pipeline is what lets
 * the two cores overlap when every send of a burst arrives in the same turn.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { AclMessage } from '../../src/messaging/index.js';
import { DURABLE_SQL } from './durable-floor.js';

/** Values per message in an accept group and in an acknowledgement group. */
const ACCEPT_VALUES = 8;
const ACK_VALUES = 5;

/**
 * The start of both worker scripts (CommonJS, evaluated): better-sqlite3 loaded from the path this
 * process resolved (as src/storage/checkpointer.ts does), a connection to the WAL file with the
 * server's pragmas, and `cpu()`, this thread's own CPU in ms from /proc/thread-self/schedstat
 * (process.cpuUsage() counts every thread), read as bench/lib/proc-cpu.ts reads a thread's.
 */
const WORKER_START = `
const { parentPort, workerData } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('foreign_keys = ON');
db.pragma('busy_timeout = 5000');
db.pragma('journal_size_limit = 67108864');
db.pragma('mmap_size = 268435456');
const cpu = () => Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
`;

/** The floor engine's worker: an accept group's rows and delivery ids, an acknowledgement group's rows. */
const WORKER_SOURCE = `${WORKER_START}
const [M, D, C, A] = workerData.sql.map((s) => db.prepare(s));
const accept = db.transaction((v) => {
  const ids = new Float64Array(v.length / ${ACCEPT_VALUES});
  for (let i = 0, k = 0; i < v.length; i += ${ACCEPT_VALUES}, k++) {
    M.run(v[i], v[i + 1], v[i + 2], v[i + 3], v[i + 4], v[i + 5], v[i + 6]);
    ids[k] = Number(D.run(v[i], v[i + 7], v[i + 4]).lastInsertRowid);
  }
  return ids;
});
const done = db.transaction((v) => {
  for (let i = 0; i < v.length; i += ${ACK_VALUES}) {
    A.run(v[i + 1], v[i]);
    C.run(v[i + 2], 'completed', v[i + 3], v[i + 4], v[i + 1], v[i + 1], null, 'delivered');
  }
});
parentPort.on('message', (m) => {
  if (m.k === 'a') {
    const ids = accept(m.v);
    parentPort.postMessage(ids, [ids.buffer]);
  } else if (m.k === 'd') {
    done(m.v);
    parentPort.postMessage(null);
  } else if (m.k === 'cpu') {
    parentPort.postMessage({ cpu: cpu() });
  } else {
    db.close();
    parentPort.close();
  }
});
`;

interface Accepting {
  m: AclMessage;
  resolve: () => void;
}

/**
 * The floor engine with its commits on a worker thread over the database file at `path` (WAL,
 * its schema already migrated); `handler` is called once per message, after its accept committed.
 */
export function threadedEngine(path: string, handler: (m: AclMessage) => void, maxGroup = 1_000) {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      module: createRequire(import.meta.url).resolve('better-sqlite3'),
      path,
      sql: DURABLE_SQL,
    },
  });
  /** Groups handed to the thread, in the order it answers them. */
  const inFlight: (
    { k: 'a'; group: Accepting[] } | { k: 'd'; group: AclMessage[] } | { k: 'cpu'; resolve: (ms: number) => void }
  )[] = [];
  let accepting: Accepting[] = [];
  let values: unknown[] = [];
  let acking: AclMessage[] = [];
  let ackValues: unknown[] = [];
  let acceptScheduled = false;
  let ackScheduled = false;
  let acked: (m: AclMessage) => void = () => {};

  const postAccepts = () => {
    acceptScheduled = false;
    if (accepting.length === 0) return;
    inFlight.push({ k: 'a', group: accepting });
    worker.postMessage({ k: 'a', v: values });
    accepting = [];
    values = [];
  };
  const postAcks = () => {
    ackScheduled = false;
    if (acking.length === 0) return;
    inFlight.push({ k: 'd', group: acking });
    worker.postMessage({ k: 'd', v: ackValues });
    acking = [];
    ackValues = [];
  };
  const ack = (m: AclMessage, delivery: number) => {
    handler(m);
    acking.push(m);
    ackValues.push(delivery, m.timestamp, m.conversation_id, m.sender, JSON.stringify([m.sender, m.receivers[0]]));
    if (acking.length >= maxGroup) postAcks();
    else if (!ackScheduled) {
      ackScheduled = true;
      setImmediate(postAcks);
    }
  };
  worker.on('message', (answer: Float64Array | null | { cpu: number }) => {
    const g = inFlight.shift()!;
    if (g.k === 'a') {
      const ids = answer as Float64Array;
      for (let i = 0; i < g.group.length; i++) {
        const a = g.group[i]!;
        a.resolve();
        const id = ids[i]!;
        void Promise.resolve().then(() => ack(a.m, id));
      }
    } else if (g.k === 'd') {
      for (const m of g.group) acked(m);
    } else g.resolve((answer as { cpu: number }).cpu);
  });

  return {
    send(m: AclMessage): Promise<void> {
      return new Promise<void>((resolve) => {
        accepting.push({ m, resolve });
        values.push(
          m.id,
          m.conversation_id,
          m.performative,
          m.sender,
          m.timestamp,
          JSON.stringify(m),
          JSON.stringify(m.receivers),
          m.receivers[0],
        );
        if (accepting.length >= maxGroup) postAccepts();
        else if (!acceptScheduled) {
          acceptScheduled = true;
          setImmediate(postAccepts);
        }
      });
    },
    /** Called after each acknowledgement commits. */
    onAcked(fn: (m: AclMessage) => void): void {
      acked = fn;
    },
    /** The worker thread's CPU so far, in ms (answered after every group posted before it). */
    workerCpuMs(): Promise<number> {
      return new Promise((resolve) => {
        inFlight.push({ k: 'cpu', resolve });
        worker.postMessage({ k: 'cpu' });
      });
    },
    /** Closes the thread's connection and ends the thread. */
    async close(): Promise<void> {
      const exited = new Promise<void>((r) => worker.once('exit', () => r()));
      worker.postMessage({ k: 'close' });
      await exited;
    },
  };
}

/** A call per argument count up to 12 (the bus's widest row): a spread per statement costs more than the call. */
const ARITIES = Array.from(
  { length: 13 },
  (_, n) => `case ${n}: s.run(${Array.from({ length: n }, (_, k) => `v[a + ${k}]`).join(', ')}); break;`,
).join('\n      ');

/**
 * CommonJS worker for `statementThread`: runs each posted batch, `[statement, argument count,
 * ...arguments]…`, in one transaction, and answers once its COMMIT returned.
 */
const STATEMENTS_SOURCE = `${WORKER_START}
const st = [];
const batch = db.transaction((v) => {
  for (let i = 0; i < v.length; ) {
    const s = st[v[i]], n = v[i + 1], a = i + 2;
    switch (n) {
      ${ARITIES}
      default: s.run(...v.slice(a, a + n));
    }
    i = a + n;
  }
});
parentPort.on('message', (m) => {
  if (m === 'cpu') parentPort.postMessage(cpu());
  else if (m === 'close') { db.close(); parentPort.close(); }
  else {
    for (const sql of m.add) st.push(db.prepare(sql));
    batch(m.v);
    parentPort.postMessage(null);
  }
});
`;

/**
 * A worker thread with its own connection to the WAL file at `path` that runs batches of the
 * statements `sql` (by index; statements added to `sql` later are prepared with the next batch),
 * each batch in one transaction.
 */
export function statementThread(path: string, sql: readonly string[]) {
  const worker = new Worker(STATEMENTS_SOURCE, {
    eval: true,
    workerData: { module: createRequire(import.meta.url).resolve('better-sqlite3'), path },
  });
  let sent = 0;
  const waiting: ((v: unknown) => void)[] = [];
  worker.on('message', (v: unknown) => waiting.shift()!(v));
  const ask = <T>(m: unknown) =>
    new Promise<T>((resolve) => {
      waiting.push(resolve as (v: unknown) => void);
      worker.postMessage(m);
    });
  return {
    /** Resolves once the batch committed. */
    commit: (values: unknown[]) => {
      const add = sql.slice(sent);
      sent = sql.length;
      return ask<void>({ add, v: values });
    },
    /** The thread's CPU so far, ms (answered after the batches posted before it). */
    cpuMs: () => ask<number>('cpu'),
    async close(): Promise<void> {
      const exited = new Promise<void>((r) => worker.once('exit', () => r()));
      worker.postMessage('close');
      await exited;
    },
  };
}
