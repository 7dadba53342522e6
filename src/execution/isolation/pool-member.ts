/**
 * What the warm pool needs from one worker thread or child process ("member").
 */

/** Whether a member takes jobs, and if not why. */
export type MemberFate =
  | 'alive' // takes jobs
  | 'draining' // takes no new job, finishes the ones it runs, then exits (recycling rules)
  | 'spent' // drained and gone (or going)
  | 'killed' // terminated by the runner (a cancelled job ignored its cancellation, close)
  | 'crashed'; // died on its own (exit, crash, out of memory, killed from outside)

/** The parent's side of one job: where its events go and who answers its host calls. */
export interface JobHooks {
  onEvent(event: unknown): void;
  /** Answers `ctx.call`; always returns a promise (see hostCaller in job-control.ts). */
  onCall(method: string, args: unknown): Promise<unknown>;
  /** RunOptions.sticky. */
  sticky?: readonly string[];
}

export interface PoolMember {
  /** Resolves once the task module is loaded; rejects (CaxtonError) if the member fails to start. */
  readonly ready: Promise<void>;
  /** Resolves once the thread/process is gone. Never rejects. */
  readonly gone: Promise<void>;
  readonly fate: MemberFate;
  /** Cancelled jobs it still runs: it is killed if one of them outlives the cancellation grace. */
  readonly cancelling: number;
  /**
   * Runs one job beside the others the member runs. Rejects with the task's error, with a crash
   * error ('isolation_failure': the member died, and every job on it fails alike) or, as soon as
   * `signal` aborts, with `signal.reason`; the member is then asked to abort the job's own
   * signal and is killed only if the job has not ended within the cancellation grace. Host
   * calls of the job are answered through `hooks.onCall` while the job runs; an answer that
   * settles after the job ended is dropped.
   */
  execute(payload: unknown, hooks: JobHooks, signal: AbortSignal): Promise<unknown>;
  /** Takes no new job; exits once the jobs it runs have ended (idempotent). */
  drain(): void;
  /** Kills the thread/process (idempotent). */
  kill(): void;
  /**
   * Whether the member keeps the parent's event loop alive. Members hold it while starting and
   * while running jobs; the pool releases it while they wait idle, so an isolation that was
   * never closed does not keep the parent running.
   */
  setActive(active: boolean): void;
}
