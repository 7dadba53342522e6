/**
 * Isolation: runs a "task module" job in-process (`context`), on a pooled worker thread
 * (`worker`) or on a pooled, pre-started OS process (`process`), reused under the recycling
 * rules of ProcessMember and process-state.ts; each member runs many jobs at once (ADR 0134).
 *
 * A task module is an ES module exporting `async function run(payload, ctx)`; `ctx.emit(event)`
 * streams progress events to the caller, `ctx.call(method, args)` asks the caller to do something
 * (answered by `RunOptions.onCall` in the caller's thread; 'not_supported' without one) and
 * `ctx.signal` is aborted on cancellation and timeout in every mode (`worker` and `process` send
 * the member a cancel message; a job that has not ended `cancelGraceMs` later gets its member
 * killed, and the jobs beside it fail). Each member runs up to `memberConcurrency` jobs at once
 * (ADR 0134). Payloads, results, events and host call arguments/answers must be
 * structured-clone serializable for `worker` and `process`.
 *
 * Errors (all CaxtonError):
 *  - the task threw: its message verbatim; its code if it is a Caxton code, else 'internal';
 *  - 'timeout' / 'cancelled': deadline passed / RunOptions.signal aborted (the job's signal is
 *    aborted in its worker/process; the member is killed only if the job ignores it);
 *  - 'isolation_failure': the worker/process died during the job (crash, exit, out of memory,
 *    killed from outside, or killed because a cancelled job beside it did not stop: details
 *    `reason` 'killed') or the task module cannot be loaded;
 *  - 'not_ready': the isolation was closed; 'invalid_request': bad timeoutMs or unsendable payload.
 *
 * `worker` and `process` start their JavaScript entry (worker-entry.js, process-runner.js) from
 * the compiled output: when this module runs from the TypeScript sources (vitest, tsx), those
 * come from dist/, so run `npm run build` first (see entry-script.ts).
 */
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CaxtonError } from '../../shared/errors.js';
import { ContextIsolation } from './context-isolation.js';
import { PooledIsolation } from './pooled-isolation.js';
import { ProcessMember } from './process-member.js';
import type { Isolation, IsolationMode, IsolationOptions } from './types.js';
import { WarmPool } from './warm-pool.js';
import { WorkerMember } from './worker-member.js';

export type {
  Isolation,
  IsolationMode,
  IsolationOptions,
  IsolationStats,
  PooledIsolationMode,
  RunOptions,
  TaskContext,
  TaskFunction,
} from './types.js';

export const DEFAULT_MAX_OLD_GENERATION_SIZE_MB = 512;
export const DEFAULT_START_TIMEOUT_MS = 30_000;
/**
 * Jobs one child process runs before it is replaced (process mode). A replacement costs a fork
 * on the server thread and 100–200 ms of CPU to start Node and load the task module, so with
 * 1,000 the starts took about a tenth of the pool's CPU at full load (ADR 0078). State that the
 * per-job check does not see lasts at most this many jobs.
 */
export const DEFAULT_PROCESS_MAX_REQUESTS = 10_000;

/**
 * Jobs one worker thread or child process runs at once. A job mostly waits on its model call,
 * with the member's event loop free, so a member can hold hundreds: two members hold 1,000
 * runs in flight (ADR 0134).
 */
export const DEFAULT_MEMBER_CONCURRENCY = 500;
/**
 * How long a cancelled or timed-out job may run on after its member was asked to abort its
 * signal, before the member is killed (failing the jobs beside it): long enough for a run to
 * reach its next await, short enough that a stuck job does not hold its neighbours long.
 */
export const DEFAULT_CANCEL_GRACE_MS = 2_000;

/** Worker threads or child processes in a pool: one per core, at least two. */
export function defaultPoolSize(): number {
  return Math.max(2, os.availableParallelism());
}

function moduleUrl(taskModule: string): string {
  if (taskModule.startsWith('file:')) return new URL(taskModule).href;
  if (path.isAbsolute(taskModule)) return pathToFileURL(taskModule).href;
  throw new CaxtonError('invalid_config', `taskModule must be an absolute path or a file: URL, got "${taskModule}"`);
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new CaxtonError('invalid_config', `${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/**
 * Creates an isolation and, for `worker`/`process`, starts its pool in the background right
 * away; await `warm()` to know when it is fully started. Close it with `close()`.
 */
export function createIsolation(mode: IsolationMode, options: IsolationOptions): Isolation {
  const url = moduleUrl(options.taskModule);
  if (mode === 'context') return new ContextIsolation(url);
  if (mode !== 'worker' && mode !== 'process') {
    throw new CaxtonError(
      'invalid_config',
      `unknown isolation mode "${String(mode)}" (expected context, worker or process)`,
    );
  }
  const member = {
    moduleUrl: url,
    maxOldGenerationSizeMb: positiveInt(
      'maxOldGenerationSizeMb',
      options.maxOldGenerationSizeMb,
      DEFAULT_MAX_OLD_GENERATION_SIZE_MB,
    ),
    execArgv: options.execArgv ?? [],
    env: options.env,
    output: options.output ?? 'inherit',
    cancelGraceMs: positiveInt('cancelGraceMs', options.cancelGraceMs, DEFAULT_CANCEL_GRACE_MS),
  };
  const pool = {
    startTimeoutMs: positiveInt('startTimeoutMs', options.startTimeoutMs, DEFAULT_START_TIMEOUT_MS),
    size: positiveInt('poolSize', options.poolSize, defaultPoolSize()),
    perMember: positiveInt('memberConcurrency', options.memberConcurrency, DEFAULT_MEMBER_CONCURRENCY),
  };
  if (mode === 'worker') {
    const workers = new WarmPool({
      ...pool,
      label: 'worker thread',
      maxJobs: Number.POSITIVE_INFINITY,
      create: () => new WorkerMember(member),
    });
    return new PooledIsolation('worker', workers, 'worker thread');
  }
  const maxJobs = positiveInt('maxRequestsPerProcess', options.maxRequestsPerProcess, DEFAULT_PROCESS_MAX_REQUESTS);
  const processes = new WarmPool({ ...pool, label: 'process', maxJobs, create: () => new ProcessMember(member) });
  return new PooledIsolation('process', processes, 'process');
}
