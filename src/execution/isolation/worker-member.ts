import { Worker } from 'node:worker_threads';
import { CaxtonError, describeError } from '../../shared/errors.js';
import { entryScript } from './entry-script.js';
import { MemberJobs } from './member-jobs.js';
import type { JobHooks, MemberFate, PoolMember } from './pool-member.js';
import { Outbox, unpack } from './outbox.js';
import { isChildMessage, type ChildMessage, type ParentMessage, type WireError } from './protocol.js';
import { describeWire } from './task-error.js';

export interface WorkerMemberOptions {
  moduleUrl: string;
  maxOldGenerationSizeMb: number;
  execArgv: string[];
  env: Record<string, string> | undefined;
  output: 'inherit' | 'ignore';
  /** How long a cancelled job may run on before the thread is terminated. */
  cancelGraceMs: number;
}

/** One pooled worker thread running worker-entry.js; runs many jobs at once, reused across jobs. */
export class WorkerMember implements PoolMember {
  readonly ready: Promise<void>;
  readonly gone: Promise<void>;
  #fate: MemberFate = 'alive';
  readonly #worker: Worker;
  readonly #limitMb: number;
  readonly #jobs: MemberJobs;
  #killedFor: string | undefined;
  #initError: WireError | undefined;
  #lastError: Error | undefined;
  #isReady = false;
  #readyResolve!: () => void;
  #readyReject!: (e: Error) => void;

  constructor(o: WorkerMemberOptions) {
    this.#limitMb = o.maxOldGenerationSizeMb;
    this.ready = new Promise<void>((resolve, reject) => {
      this.#readyResolve = resolve;
      this.#readyReject = reject;
    });
    this.ready.catch(() => {}); // observed by the pool; avoid unhandled rejections
    const ignore = o.output === 'ignore';
    this.#worker = new Worker(entryScript('worker-entry'), {
      workerData: { taskModule: o.moduleUrl },
      resourceLimits: { maxOldGenerationSizeMb: o.maxOldGenerationSizeMb },
      execArgv: o.execArgv,
      env: o.env ? { ...process.env, ...o.env } : process.env,
      stdout: ignore,
      stderr: ignore,
    });
    if (ignore) {
      this.#worker.stdout.resume();
      this.#worker.stderr.resume();
    }
    const outbox = new Outbox<ParentMessage>((batch) => this.#worker.postMessage(batch));
    this.#jobs = new MemberJobs({
      send: (m) => outbox.send(m),
      usable: () => this.#usable(),
      cancelGraceMs: o.cancelGraceMs,
      onStuck: () => {
        this.#killedFor ??= `a cancelled job on it did not stop within ${o.cancelGraceMs} ms`;
        this.kill();
      },
      onEnded: () => {
        if (this.#fate === 'draining' && this.#jobs.size === 0) this.kill();
      },
      where: 'worker thread',
    });
    this.#worker.on('message', (batch: unknown) => {
      for (const m of unpack(batch)) this.#onMessage(m);
    });
    this.#worker.on('error', (e) => {
      this.#lastError = e;
    });
    this.gone = new Promise<void>((resolve) => {
      this.#worker.once('exit', (code) => {
        this.#onExit(code);
        resolve();
      });
    });
  }

  get fate(): MemberFate {
    return this.#fate;
  }

  get cancelling(): number {
    return this.#jobs.cancelling;
  }

  execute(payload: unknown, hooks: JobHooks, signal: AbortSignal): Promise<unknown> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    if (!this.#usable()) return Promise.reject(this.#crashError());
    return this.#jobs.start(payload, hooks, signal);
  }

  drain(): void {
    if (this.#fate !== 'alive') return;
    this.#fate = 'draining';
    if (this.#jobs.size === 0) this.kill();
  }

  #usable(): boolean {
    return this.#fate === 'alive' || this.#fate === 'draining';
  }

  kill(): void {
    if (this.#usable()) this.#fate = this.#fate === 'draining' && this.#jobs.size === 0 ? 'spent' : 'killed';
    void this.#worker.terminate();
  }

  setActive(active: boolean): void {
    if (active) this.#worker.ref();
    else this.#worker.unref();
  }

  #onMessage(m: unknown): void {
    if (!isChildMessage(m)) return;
    const msg: ChildMessage = m;
    switch (msg.type) {
      case 'ready':
        this.#isReady = true;
        this.#readyResolve();
        return;
      case 'init-error':
        this.#initError = msg.error;
        return;
      case 'fatal':
        return;
      default:
        this.#jobs.receive(msg);
    }
  }

  #onExit(code: number): void {
    if (!this.#isReady) {
      const why = this.#initError
        ? describeWire(this.#initError)
        : this.#lastError
          ? describeError(this.#lastError)
          : `exited with code ${code}`;
      this.#readyReject(new CaxtonError('isolation_failure', `a worker thread could not load the task module: ${why}`));
    }
    if (this.#usable()) this.#fate = 'crashed';
    this.#jobs.failAll(this.#crashError(code));
  }

  #crashError(code?: number): CaxtonError {
    if (this.#killedFor !== undefined) {
      return new CaxtonError(
        'isolation_failure',
        `the worker thread was terminated during the request: ${this.#killedFor}`,
        {
          reason: 'killed',
        },
      );
    }
    const e = this.#lastError as (Error & { code?: string }) | undefined;
    if (e?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      return new CaxtonError(
        'isolation_failure',
        `the worker thread ran out of memory (heap limit ${this.#limitMb} MB) during the request and was stopped`,
        {
          reason: 'out_of_memory',
          limitMb: this.#limitMb,
        },
      );
    }
    if (e) {
      return new CaxtonError(
        'isolation_failure',
        `the worker thread crashed during the request: ${describeError(e)}`,
        { reason: 'crash' },
        { cause: e },
      );
    }
    return new CaxtonError(
      'isolation_failure',
      `the worker thread exited with code ${code ?? 'unknown'} during the request`,
      {
        reason: 'exit',
        exitCode: code,
      },
    );
  }
}
