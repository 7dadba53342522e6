/**
 * A worker thread with its own better-sqlite3 connection that runs batches of prepared
 * statements, each batch in one transaction: what the floors use to measure a server whose
 * writes are off the event loop. The event loop only posts arrays of primitives and, when it
 * asks, hears back each statement's last inserted row id.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** One statement run: its index in the worker's `sql` list and its parameters. */
export type SqlOp = [statement: number, params: unknown[]];

// CommonJS, evaluated: the worker needs nothing from this project, only the driver.
const PROGRAM = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');
const statements = workerData.sql.map((s) => db.prepare(s));
const run = db.transaction((ops) => {
  const ids = new Array(ops.length);
  for (let i = 0; i < ops.length; i++) ids[i] = Number(statements[ops[i][0]].run(...ops[i][1]).lastInsertRowid);
  return ids;
});
parentPort.on('message', (m) => parentPort.postMessage({ id: m.id, ids: run(m.ops) }));
`;

export class SqlWorker {
  readonly #worker: Worker;
  readonly #pending = new Map<number, (ids: number[]) => void>();
  #next = 0;
  #failed: Error | undefined;
  #drained: (() => void) | undefined;

  /** `file` must already hold the tables (migrated on the event loop's connection). */
  constructor(file: string, sql: readonly string[]) {
    this.#worker = new Worker(PROGRAM, {
      eval: true,
      workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), file, sql },
    });
    this.#worker.on('message', (m: { id: number; ids: number[] }) => {
      const done = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      done?.(m.ids);
      if (this.#pending.size === 0) this.#drained?.();
    });
    this.#worker.on('error', (e) => {
      this.#failed = e;
    });
  }

  /** Runs `ops` in one transaction on the worker; resolves with each op's last inserted row id. */
  run(ops: SqlOp[]): Promise<number[]> {
    if (this.#failed) return Promise.reject(this.#failed);
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.#worker.postMessage({ id, ops });
    });
  }

  /** Waits for every batch posted, then stops the worker. */
  async close(): Promise<void> {
    if (this.#pending.size > 0 && !this.#failed) await new Promise<void>((r) => (this.#drained = r));
    await this.#worker.terminate();
    if (this.#failed) throw this.#failed;
  }
}
