import { CaxtonError, describeError } from '../../shared/errors.js';
import { hostCaller, raceAbort, startJobControl } from './job-control.js';
import { loadTask } from './load-task.js';
import { taskErrorFromLocal } from './task-error.js';
import type { Isolation, IsolationStats, RunOptions, TaskContext, TaskFunction } from './types.js';

/**
 * `context` mode: the task module is imported once into this process and `run` is called
 * directly. No protection against crashes, hangs or memory: a timeout or cancellation aborts
 * `ctx.signal` and fails the job, but a task that ignores the signal keeps running.
 * Payloads, results, events and host calls (`ctx.call`, answered by `RunOptions.onCall`) are
 * passed by reference (not cloned).
 */
export class ContextIsolation implements Isolation {
  readonly mode = 'context' as const;
  #loading: Promise<TaskFunction> | undefined;
  #loaded = false;
  #closed = false;
  #busy = 0;
  #completed = 0;
  #failed = 0;

  constructor(private readonly moduleUrl: string) {}

  #load(): Promise<TaskFunction> {
    this.#loading ??= loadTask(this.moduleUrl).then(
      (run) => {
        this.#loaded = true;
        return run;
      },
      (e: unknown) => {
        this.#loading = undefined; // let a later call retry
        throw new CaxtonError(
          'isolation_failure',
          `could not load the task module ${this.moduleUrl}: ${describeError(e)}`,
          undefined,
          { cause: e },
        );
      },
    );
    return this.#loading;
  }

  async warm(): Promise<void> {
    await this.#load();
  }

  async run(payload: unknown, opts: RunOptions): Promise<unknown> {
    if (this.#closed) throw new CaxtonError('not_ready', 'the isolation pool is closed');
    const control = startJobControl(opts, 'context');
    this.#busy++;
    let settled = false;
    try {
      const run = await raceAbort(this.#load(), control.signal);
      control.phase = 'running';
      const hostCall = hostCaller(opts, control.signal);
      const ctx: TaskContext = {
        signal: control.signal,
        emit: (event: unknown): void => {
          if (settled || control.signal.aborted) return;
          try {
            opts.onEvent?.(event);
          } catch (e) {
            control.fail(
              new CaxtonError('internal', `the onEvent callback threw: ${describeError(e)}`, undefined, { cause: e }),
            );
          }
        },
        call: (method: string, args: unknown): Promise<unknown> => {
          if (typeof method !== 'string' || method === '') {
            return Promise.reject(
              new CaxtonError(
                'invalid_request',
                `ctx.call: the method must be a non-empty string, got ${typeof method}`,
              ),
            );
          }
          if (settled && !control.signal.aborted) {
            return Promise.reject(
              new CaxtonError('invalid_request', `host call "${method}" was made after its job had ended`),
            );
          }
          return hostCall(method, args);
        },
      };
      const work = (async () => run(payload, ctx))();
      const value = await raceAbort(work, control.signal);
      this.#completed++;
      return value;
    } catch (e) {
      this.#failed++;
      throw taskErrorFromLocal(control.signal.aborted ? control.signal.reason : e);
    } finally {
      settled = true;
      this.#busy--;
      control.done();
    }
  }

  stats(): IsolationStats {
    return {
      mode: this.mode,
      size: 1,
      ready: this.#loaded && !this.#closed ? 1 : 0,
      busy: this.#busy,
      starting: this.#loading && !this.#loaded ? 1 : 0,
      queued: 0,
      started: this.#loaded ? 1 : 0,
      crashed: 0,
      killed: 0,
      recycled: 0,
      completed: this.#completed,
      failed: this.#failed,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}
