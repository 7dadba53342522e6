/**
 * A tool server's sandbox on its own worker thread, for modules that make HTTP requests.
 *
 * WebAssembly host calls are synchronous, so an HTTP request from a module blocks the thread it
 * runs on until the response arrives (http.ts waits with `Atomics.wait`, bounded by the call's
 * deadline). On the server's main thread that would stall every other request for as long as the
 * remote host takes. Servers granted HTTP therefore run their calls here instead: the same
 * `WasmSandbox`, built in the worker from the same compiled module, limits and grants; the
 * calling thread awaits the answer. Audit and schema checks stay with the caller (server.ts).
 *
 * One worker per server, started on the first call; calls to one server run one at a time, as
 * they do in-thread. A worker that dies or does not answer within the call's deadline (plus
 * slack) is terminated; the next call starts a new one (a fresh instance, like a re-instantiation
 * after a trap).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DatabaseRoot } from './sqlite-access.js';
import type { PathRoot } from './fs-access.js';
import type { CallResult, LogLevel, PreparedModule, SandboxLimits } from './sandbox.js';

/** Everything the worker needs to build the sandbox (structured-cloneable). */
export interface OffThreadInit {
  /** A WebAssembly module (compiled), or `js`: a JavaScript module for QuickJS. */
  prepared?: PreparedModule;
  js?: { source: string; file: string };
  limits: SandboxLimits;
  manifestHosts: string[];
  operatorHosts: string[];
  roots: PathRoot[];
  databases: DatabaseRoot[];
  config: [string, string][];
}

export type WorkerRequest = { type: 'call'; id: number; name: string; input: Uint8Array; deadline: number; traceparent?: string };
export type WorkerReply =
  | { type: 'ready' }
  | { type: 'init-failed'; error: string }
  | { type: 'result'; id: number; result: CallResult; stats: { calls: number; failures: number; instantiations: number }; memory_bytes: number }
  | { type: 'log'; level: LogLevel; message: string };

/** How long past a call's deadline the worker may take before it is presumed stuck. */
const SLACK_MS = 1_000;
/** Deadline of a call that has none (the sandbox's own timeout applies inside the worker). */
const NO_DEADLINE_MS = 60_000;

/** The compiled worker module (workers load JavaScript: from src, use the build in dist/). */
function workerPath(): string {
  const here = fileURLToPath(import.meta.url);
  const js = here.replace(/off-thread\.(ts|js)$/, 'sandbox-worker.js');
  if (existsSync(js)) return js;
  return js.replace(/([\\/])src([\\/])tools([\\/])wasm([\\/])sandbox-worker\.js$/, '$1dist$2tools$3wasm$4sandbox-worker.js');
}

interface Pending {
  resolve(r: CallResult): void;
  timer: NodeJS.Timeout;
}

export class OffThreadSandbox {
  readonly #init: OffThreadInit;
  readonly #log: ((level: LogLevel, message: string) => void) | undefined;
  #worker: Worker | undefined;
  #ready: Promise<string | undefined> | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  /** Counters of workers that are gone, and of the current one as it last reported them. */
  #retired = { calls: 0, failures: 0, instantiations: 0 };
  #current = { calls: 0, failures: 0, instantiations: 0 };
  memoryBytes = 0;

  get stats(): { calls: number; failures: number; instantiations: number } {
    return { calls: this.#retired.calls + this.#current.calls, failures: this.#retired.failures + this.#current.failures, instantiations: this.#retired.instantiations + this.#current.instantiations };
  }

  constructor(init: OffThreadInit, log?: (level: LogLevel, message: string) => void) {
    this.#init = init;
    this.#log = log;
  }

  #start(): Promise<string | undefined> {
    const w = new Worker(workerPath(), { workerData: this.#init });
    w.unref();
    this.#worker = w;
    const ready = new Promise<string | undefined>((resolve) => {
      w.on('message', (m: WorkerReply) => {
        switch (m.type) {
          case 'ready':
            return resolve(undefined);
          case 'init-failed':
            return resolve(m.error);
          case 'log':
            return this.#log?.(m.level, m.message);
          case 'result': {
            const p = this.#pending.get(m.id);
            if (!p) return;
            this.#pending.delete(m.id);
            clearTimeout(p.timer);
            this.#current = m.stats;
            this.memoryBytes = m.memory_bytes;
            return p.resolve(m.result);
          }
          default: {
            const never: never = m;
            return never;
          }
        }
      });
      w.on('error', (e) => {
        resolve(`the sandbox worker failed: ${e.message}`);
        this.#lost(w, `the sandbox worker failed: ${e.message}`);
      });
      w.on('exit', (code) => {
        resolve(`the sandbox worker exited (code ${code})`);
        this.#lost(w, `the sandbox worker exited (code ${code})`);
      });
    });
    return ready;
  }

  #lost(w: Worker, why: string, outcome: CallResult['outcome'] = 'trap'): void {
    if (this.#worker !== w) return;
    this.#worker = undefined;
    this.#ready = undefined;
    this.#retired = this.stats;
    this.#current = { calls: 0, failures: 0, instantiations: 0 };
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      this.#retired.calls++;
      this.#retired.failures++;
      p.resolve({ outcome, error: why, fuel_used: 0, memory_bytes: 0, duration_us: 0 });
    }
  }

  async call(name: string, input: Uint8Array, deadline = Infinity, traceparent?: string): Promise<CallResult> {
    this.#ready ??= this.#start();
    const failed = await this.#ready;
    if (failed !== undefined) {
      this.#lost(this.#worker!, failed);
      return { outcome: 'trap', error: failed, fuel_used: 0, memory_bytes: 0, duration_us: 0 };
    }
    const w = this.#worker!;
    const id = this.#nextId++;
    const due = Number.isFinite(deadline) ? deadline : Date.now() + Math.min(NO_DEADLINE_MS, this.#init.limits.timeoutMs);
    return new Promise<CallResult>((resolve) => {
      const timer = setTimeout(
        () => {
          // The worker did not answer in time (a host call outlived the deadline): start afresh.
          void w.terminate();
          this.#lost(w, 'the call did not finish within its deadline; its sandbox worker was stopped', 'timeout');
        },
        Math.max(0, due - Date.now()) + SLACK_MS,
      );
      timer.unref();
      this.#pending.set(id, { resolve, timer });
      w.postMessage({ type: 'call', id, name, input, deadline: due, ...(traceparent !== undefined && { traceparent }) } satisfies WorkerRequest);
    });
  }

  close(): void {
    const w = this.#worker;
    if (w) {
      this.#lost(w, 'the tool server was closed');
      void w.terminate();
    }
  }
}
