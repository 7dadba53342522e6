import { Worker } from 'node:worker_threads';
import { CaxtonError, describeError } from '../../shared/errors.js';
import { entryScript } from './entry-script.js';
import { answerHostCall } from './job-control.js';
import type { JobHooks, MemberFate, PoolMember } from './pool-member.js';
import { isChildMessage, type ChildMessage, type ParentMessage, type WireError } from './protocol.js';
import { describeWire, taskErrorFromWire } from './task-error.js';

export interface WorkerMemberOptions {
  moduleUrl: string;
  maxOldGenerationSizeMb: number;
  execArgv: string[];
  env: Record<string, string> | undefined;
  output: 'inherit' | 'ignore';
}

interface PendingJob {
  id: number;
  hooks: JobHooks;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

let nextJobId = 1;

/** One pooled worker thread running worker-entry.js; reused across jobs. */
export class WorkerMember implements PoolMember {
  readonly ready: Promise<void>;
  readonly gone: Promise<void>;
  #fate: MemberFate = 'alive';
  readonly #worker: Worker;
  readonly #limitMb: number;
  #job: PendingJob | undefined;
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
    this.#worker.on('message', (m: unknown) => this.#onMessage(m));
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

  execute(payload: unknown, hooks: JobHooks, signal: AbortSignal): Promise<unknown> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    if (this.#fate !== 'alive') return Promise.reject(this.#crashError());
    const id = nextJobId++;
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = (): void => {
        this.#fate = 'killed';
        settle(() => reject(signal.reason));
        void this.#worker.terminate();
      };
      const settle = (then: () => void): void => {
        signal.removeEventListener('abort', onAbort);
        this.#job = undefined;
        then();
      };
      this.#job = { id, hooks, resolve: (v) => settle(() => resolve(v)), reject: (e) => settle(() => reject(e)) };
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        this.#worker.postMessage({ type: 'run', id, payload } satisfies ParentMessage);
      } catch (e) {
        settle(() =>
          reject(
            new CaxtonError(
              'invalid_request',
              `the payload cannot be sent to a worker thread: ${describeError(e)}`,
              undefined,
              { cause: e },
            ),
          ),
        );
      }
    });
  }

  kill(): void {
    if (this.#fate === 'alive') this.#fate = 'killed';
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
      default: {
        const job = this.#job;
        if (!job || job.id !== msg.id) return;
        if (msg.type === 'event') job.hooks.onEvent(msg.event);
        else if (msg.type === 'call')
          answerHostCall(
            msg,
            job.hooks,
            () => this.#job === job && this.#fate === 'alive',
            (r) => this.#worker.postMessage(r),
            'worker thread',
          );
        else if (msg.type === 'result') job.resolve(msg.value);
        else job.reject(taskErrorFromWire(msg.error));
      }
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
    if (this.#fate === 'alive') this.#fate = 'crashed';
    this.#job?.reject(this.#crashError(code));
  }

  #crashError(code?: number): CaxtonError {
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
