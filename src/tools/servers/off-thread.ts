/**
 * A tool server's sandbox on its own worker thread, for calls that may run long or block.
 *
 * WebAssembly host calls are synchronous, so an HTTP request from a module blocks the thread it
 * runs on until the response arrives (host-http.ts waits with `Atomics.wait`, bounded by the call's
 * deadline); and a module given much fuel, or a JavaScript module, computes for as long as its
 * budget allows. On the server's main thread either would stall every other request. Such servers
 * (tool-server.ts decides, ADR 0018) run their calls here instead: the same sandbox, built in the worker
 * from the same compiled module, limits and grants; the calling thread awaits the answer. Audit and
 * schema checks stay with the caller (tool-server.ts).
 *
 * One worker per server, started on the first call; calls to one server run one at a time, as
 * they do in-thread. The worker is ended (worker.terminate: its whole heap, WebAssembly memories
 * and QuickJS runtime go with it, which is the only way to give back a WebAssembly memory that
 * grew) when:
 *  - it does not answer within the call's deadline plus slack (a runaway): the call fails with
 *    `timeout`;
 *  - a call dropped an instance that took more than 32 MiB (trap, fuel, memory, stack, timeout):
 *    that memory is given back at once rather than kept for the next one;
 *  - it has been idle for `idleMs`; or it dies.
 * The next call starts a new one. The key-value state (vars) lives on here, copied back from the
 * worker whenever a call changes it, so it survives a new worker as it survives a new instance.
 * Log lines come back as messages, no more than the sandbox lets a call write (meter.ts), so a
 * guest logging in a loop cannot flood this thread's queue.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DatabaseRoot } from './sqlite-access.js';
import type { Listener } from '../../shared/host-grants.js';
import type { PathRoot } from './fs-access.js';
import type { CallResult, LogLevel, PreparedModule, SandboxLimits } from './wasm/index.js';

/** Everything the worker needs to build the sandbox (structured-cloneable). */
export interface OffThreadInit {
  /** A WebAssembly module (compiled), or `js`: a JavaScript module for QuickJS. */
  prepared?: PreparedModule;
  js?: { source: string; file: string };
  limits: SandboxLimits;
  manifestHosts: string[];
  operatorHosts: string[];
  /** The process's listeners when the worker starts (host-grants.ts: reached only by address and port). */
  own: Listener[];
  roots: PathRoot[];
  databases: DatabaseRoot[];
  config: [string, string][];
  /** The key-value state the sandbox starts with (kept by the parent across workers). */
  vars?: [string, Uint8Array | string][];
  /** Whether the parent takes the module's log lines (set by OffThreadSandbox; none are sent otherwise). */
  log?: boolean;
}

export type WorkerRequest = {
  type: 'call';
  id: number;
  name: string;
  input: Uint8Array;
  deadline: number;
  traceparent?: string;
};
export type WorkerReply =
  | { type: 'ready' }
  | { type: 'init-failed'; error: string }
  | {
      type: 'result';
      id: number;
      result: CallResult;
      stats: { calls: number; failures: number; instantiations: number };
      memory_bytes: number;
      /** The call dropped the instance: the worker should be replaced to give its memory back. */
      dropped: boolean;
      /** The whole state, when the call changed it. */
      vars?: [string, Uint8Array | string][];
    }
  | { type: 'log'; level: LogLevel; message: string };

/** How long past a call's deadline the worker may take before it is presumed stuck. */
const SLACK_MS = 1_000;
/** Deadline of a call that has none (the sandbox's own timeout applies inside the worker). */
const NO_DEADLINE_MS = 60_000;
/** An idle worker is ended after this long (its memory given back; the next call starts one). */
export const DEFAULT_IDLE_MS = 30_000;

/** The compiled worker module (workers load JavaScript: from src, use the build in dist/). */
function workerPath(): string {
  const here = fileURLToPath(import.meta.url);
  const js = here.replace(/off-thread\.(ts|js)$/, 'sandbox-worker.js');
  if (existsSync(js)) return js;
  return js.replace(
    /([\\/])src([\\/])tools([\\/])servers([\\/])sandbox-worker\.js$/,
    '$1dist$2tools$3servers$4sandbox-worker.js',
  );
}

interface Pending {
  resolve(r: CallResult): void;
  timer: NodeJS.Timeout;
}

type Counters = { calls: number; failures: number; instantiations: number };

/** One worker and the calls sent to it. */
interface Slot {
  worker: Worker;
  ready: Promise<string | undefined>;
  pending: Map<number, Pending>;
  counters: Counters;
  /** No new calls go to it: ended once its pending calls are answered. */
  retiring: boolean;
  ended: boolean;
}

export interface OffThreadOptions {
  log?: (level: LogLevel, message: string) => void;
  /** End the worker after this long without calls (default DEFAULT_IDLE_MS). */
  idleMs?: number;
}

export class OffThreadSandbox {
  readonly #init: OffThreadInit;
  readonly #log: ((level: LogLevel, message: string) => void) | undefined;
  readonly #idleMs: number;
  #slot: Slot | undefined;
  #idle: NodeJS.Timeout | undefined;
  #nextId = 1;
  #vars: [string, Uint8Array | string][] = [];
  /** Counters of workers that are gone. */
  #retired: Counters = { calls: 0, failures: 0, instantiations: 0 };
  /** Workers started, and ended (for tests and diagnostics). */
  workersStarted = 0;
  workersEnded = 0;
  memoryBytes = 0;

  get stats(): Counters {
    const c = this.#slot?.counters ?? { calls: 0, failures: 0, instantiations: 0 };
    return {
      calls: this.#retired.calls + c.calls,
      failures: this.#retired.failures + c.failures,
      instantiations: this.#retired.instantiations + c.instantiations,
    };
  }

  /** Whether a worker is running now. */
  get running(): boolean {
    return this.#slot !== undefined;
  }

  constructor(init: OffThreadInit, opts: OffThreadOptions | ((level: LogLevel, message: string) => void) = {}) {
    const o = typeof opts === 'function' ? { log: opts } : opts;
    this.#init = init;
    this.#log = o.log;
    this.#idleMs = o.idleMs ?? DEFAULT_IDLE_MS;
    this.#vars = init.vars ?? [];
  }

  #start(): Slot {
    const w = new Worker(workerPath(), {
      workerData: { ...this.#init, vars: this.#vars, log: this.#log !== undefined } satisfies OffThreadInit,
    });
    w.unref();
    this.workersStarted++;
    let ready!: (why: string | undefined) => void;
    const slot: Slot = {
      worker: w,
      ready: new Promise((r) => (ready = r)),
      pending: new Map(),
      counters: { calls: 0, failures: 0, instantiations: 0 },
      retiring: false,
      ended: false,
    };
    w.on('message', (m: WorkerReply) => {
      switch (m.type) {
        case 'ready':
          return ready(undefined);
        case 'init-failed':
          return ready(m.error);
        case 'log':
          return this.#log?.(m.level, m.message);
        case 'result': {
          const p = slot.pending.get(m.id);
          if (!p) return;
          slot.pending.delete(m.id);
          clearTimeout(p.timer);
          slot.counters = m.stats;
          this.memoryBytes = m.memory_bytes;
          if (m.vars) this.#vars = m.vars;
          // The instance was dropped: replace the worker so the memory it took is given back.
          if (m.dropped) this.#retire(slot);
          else if (slot.retiring && slot.pending.size === 0) this.#end(slot);
          this.#armIdle();
          return p.resolve(m.result);
        }
        default: {
          const never: never = m;
          return never;
        }
      }
    });
    w.on('error', (e) => {
      ready(`the sandbox worker failed: ${e.message}`);
      this.#lost(slot, `the sandbox worker failed: ${e.message}`);
    });
    w.on('exit', (code) => {
      ready(`the sandbox worker exited (code ${code})`);
      this.#lost(slot, `the sandbox worker exited (code ${code})`);
    });
    return slot;
  }

  /** Takes the slot out of service: no new calls; ended once the calls sent to it are answered. */
  #retire(slot: Slot): void {
    if (this.#slot === slot) {
      this.#slot = undefined;
      this.#retired = {
        calls: this.#retired.calls + slot.counters.calls,
        failures: this.#retired.failures + slot.counters.failures,
        instantiations: this.#retired.instantiations + slot.counters.instantiations,
      };
      slot.counters = { calls: 0, failures: 0, instantiations: 0 };
      this.memoryBytes = 0;
    }
    slot.retiring = true;
    if (slot.pending.size === 0) this.#end(slot);
  }

  #end(slot: Slot): void {
    slot.retiring = true;
    if (slot.ended) return;
    slot.ended = true;
    this.workersEnded++;
    slot.worker.removeAllListeners('exit');
    slot.worker.removeAllListeners('error');
    slot.worker.on('error', () => undefined);
    void slot.worker.terminate();
  }

  /** The worker is gone (or presumed stuck): its calls fail with `outcome`. */
  #lost(slot: Slot, why: string, outcome: CallResult['outcome'] = 'trap'): void {
    const failed = slot.pending.size;
    this.#retire(slot);
    this.#retired.calls += failed;
    this.#retired.failures += failed;
    for (const [id, p] of slot.pending) {
      clearTimeout(p.timer);
      slot.pending.delete(id);
      p.resolve({ outcome, error: why, fuel_used: 0, memory_bytes: 0, duration_us: 0 });
    }
    this.#end(slot);
    if (!this.#slot) clearTimeout(this.#idle);
  }

  #armIdle(): void {
    clearTimeout(this.#idle);
    const slot = this.#slot;
    if (!slot || slot.pending.size > 0 || !Number.isFinite(this.#idleMs)) return;
    this.#idle = setTimeout(() => {
      if (this.#slot === slot && slot.pending.size === 0) this.#retire(slot);
    }, this.#idleMs);
    this.#idle.unref();
  }

  async call(name: string, input: Uint8Array, deadline = Infinity, traceparent?: string): Promise<CallResult> {
    clearTimeout(this.#idle);
    const slot = (this.#slot ??= this.#start());
    const failed = await slot.ready;
    if (failed !== undefined) {
      this.#lost(slot, failed);
      this.#retired.calls++;
      this.#retired.failures++;
      return { outcome: 'trap', error: failed, fuel_used: 0, memory_bytes: 0, duration_us: 0 };
    }
    if (slot.retiring) return this.call(name, input, deadline, traceparent);
    const id = this.#nextId++;
    const due = Number.isFinite(deadline)
      ? deadline
      : Date.now() + Math.min(NO_DEADLINE_MS, this.#init.limits.timeoutMs);
    // A WebAssembly guest computing is stopped only by fuel, not by the clock: the worker is ended
    // when the call outlives its own timeout (or the caller's deadline), plus slack.
    const stopAt = Math.min(due, Date.now() + this.#init.limits.timeoutMs);
    return new Promise<CallResult>((resolve) => {
      const timer = setTimeout(
        () => {
          // The worker did not answer in time (a runaway, or a host call outliving the deadline):
          // end it, which stops the guest wherever it is and gives its memory back.
          this.#lost(slot, 'the call did not finish within its deadline; its sandbox worker was stopped', 'timeout');
        },
        Math.max(0, stopAt - Date.now()) + SLACK_MS,
      );
      timer.unref();
      slot.pending.set(id, { resolve, timer });
      slot.worker.postMessage({
        type: 'call',
        id,
        name,
        input,
        deadline: due,
        ...(traceparent !== undefined && { traceparent }),
      } satisfies WorkerRequest);
    });
  }

  close(): void {
    clearTimeout(this.#idle);
    const slot = this.#slot;
    if (slot) this.#lost(slot, 'the tool server was closed');
  }
}
