/**
 * Public types of the isolation layer: a generic job runner that executes a "task module"
 * in-process (`context`), on a pooled worker thread (`worker`) or on a pooled, pre-started OS
 * process (`process`). It knows nothing about what the task does.
 */

import type { IsolationMode } from '../../agents/definition.js';

/** The one isolation-mode type (src/agents/definition.ts, with ISOLATION_MODES): the agent's `[execution] isolation` names it. */
export type { IsolationMode };

/** The modes that run jobs on a pool (`PooledIsolation`). */
export type PooledIsolationMode = Exclude<IsolationMode, 'context'>;

/** What a task's `run` receives besides its payload. */
export interface TaskContext {
  /**
   * Sends a progress event to the caller's `onEvent`, in order. In `worker` and `process` mode
   * the event must be structured-clone serializable; `emit` throws synchronously if it is not.
   */
  emit(event: unknown): void;
  /**
   * Aborted when the job times out or is cancelled, in every mode. In `worker` and `process`
   * mode the job must end soon after (within `cancelGraceMs`): otherwise its thread or process
   * is killed, and every job running on it fails.
   */
  readonly signal: AbortSignal;
  /**
   * Asks the parent to do something (`RunOptions.onCall`) and resolves with its answer. Calls
   * may overlap; each is answered on its own. In `worker` and `process` mode `args` and the answer
   * are structured-cloned (passed by reference in `context` mode). Rejects:
   *  - with what `onCall` threw, as an Error with the same `name`, `message`, `code` and
   *    `details` (in `context` mode the thrown value itself);
   *  - 'not_supported' when the job was run without `onCall`;
   *  - 'invalid_request' when `args` cannot be cloned, or when the job has already ended;
   *  - with the job's abort reason once it timed out or was cancelled (in `worker` and `process`
   *    mode the calls pending at that moment too).
   * Calls still pending when the job ends are never answered (in `worker` and `process` mode).
   */
  call(method: string, args: unknown): Promise<unknown>;
}

/**
 * The function a task module exports as `run` (a named export, or `run` on the default export).
 * Threads and processes are reused across jobs, so `run` must build its state per call:
 * module-level state survives from one job to the next in every mode, and in `worker` and
 * `process` mode many jobs run at once on one thread or process. In `process` mode, process-wide
 * state (globals, process.env, the working directory, process listeners, timers left running)
 * is checked whenever no job runs on the process, and the heap (half the cap in use) after every
 * job: a process found touched takes no further job and exits once its running jobs end (ADR 0134).
 */
export type TaskFunction = (payload: unknown, ctx: TaskContext) => Promise<unknown>;

export interface RunOptions {
  /** Cancels the job: it fails with code 'cancelled' at once, and its `ctx.signal` is aborted. */
  signal?: AbortSignal;
  /** Deadline for the whole job, including any wait for a free worker/process. */
  timeoutMs: number;
  /** Receives the task's `ctx.emit` events in order. If it throws, the job fails ('internal'). */
  onEvent?: (event: unknown) => void;
  /**
   * Answers the task's `ctx.call(method, args)`, in this (the parent's) thread: its result goes
   * back to the task, what it throws becomes the task's rejection (code and details kept). It is
   * not called once the job has ended (timeout, cancellation, crash, result); an answer that
   * settles after that is dropped. Without it, `ctx.call` rejects with 'not_supported'.
   */
  onCall?: (method: string, args: unknown) => Promise<unknown>;
  /**
   * Top-level properties of the payload (an object) whose value is the same object from job to
   * job, such as the configuration every job carries. In `worker` and `process` mode each such
   * value crosses to a member only when it is not the one that member last received under that
   * name (compared by identity), and the task finds it in its payload as sent. Such a value must
   * not be changed in place once handed over. Ignored by `context`.
   */
  sticky?: readonly string[];
}

export interface IsolationOptions {
  /** Absolute path or file: URL of the task module (an ES module exporting `run`). */
  taskModule: string;
  /**
   * Number of worker threads or child processes, all started ahead of demand (default
   * max(2, os.availableParallelism())). Ignored by `context`.
   */
  poolSize?: number;
  /** `process`: jobs one child process is given before it drains and is replaced (default 10,000). */
  maxRequestsPerProcess?: number;
  /** Jobs one worker thread or child process runs at once (default 500). Ignored by `context`. */
  memberConcurrency?: number;
  /**
   * How long a cancelled or timed-out job may run on in its worker/process before the member is
   * killed, failing the jobs beside it (default 2,000 ms). Ignored by `context`.
   */
  cancelGraceMs?: number;
  /** Heap cap per worker/process in MB (default 512). Ignored by `context`. */
  maxOldGenerationSizeMb?: number;
  /** Extra Node.js flags for workers/processes. The parent's own execArgv is never inherited. */
  execArgv?: string[];
  /** Extra environment variables, layered over the parent's `process.env`. */
  env?: Record<string, string>;
  /** How long a worker/process may take to load the task module and report ready (default 30 s). */
  startTimeoutMs?: number;
  /** Whether the stdout/stderr of workers/processes reach the parent's (default 'inherit'). */
  output?: 'inherit' | 'ignore';
}

export interface IsolationStats {
  mode: IsolationMode;
  /** Configured pool size (1 for `context`). */
  size: number;
  /** Workers/processes with room for another job (`context`: 1 once the module is loaded). */
  ready: number;
  /** Jobs currently running. */
  busy: number;
  /** Workers/processes being started (loading the task module). */
  starting: number;
  /** Jobs waiting for a worker/process with room. */
  queued: number;
  /** Workers/processes started since creation. */
  started: number;
  /** Workers/processes that died unexpectedly (crash, exit, out of memory, killed from outside). */
  crashed: number;
  /** Workers/processes terminated by the runner because a cancelled or timed-out job on them did not stop. */
  killed: number;
  /**
   * Processes replaced under the recycling rules (`maxRequestsPerProcess` reached, or their jobs
   * touched process-wide state or left the heap over half its cap). Always 0 for `context` and `worker`.
   */
  recycled: number;
  /** Jobs that returned a result. */
  completed: number;
  /** Jobs that failed (task error, crash, timeout, cancellation). */
  failed: number;
}

export interface Isolation {
  readonly mode: IsolationMode;
  /** Runs one job. Rejects with a CaxtonError (see index.ts for the codes). */
  run(payload: unknown, opts: RunOptions): Promise<unknown>;
  /**
   * Resolves once the pool is fully started (every worker/spare process has loaded the task
   * module; `context`: the module is imported). Rejects with 'isolation_failure' when the task
   * module cannot be loaded. Optional before `run`, useful for benchmarks and readiness probes.
   */
  warm(): Promise<void>;
  stats(): IsolationStats;
  /** Kills every worker/process; queued and running jobs fail with 'not_ready'. Idempotent. */
  close(): Promise<void>;
}
