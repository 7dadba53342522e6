/**
 * What the warm pool needs from one worker thread or child process ("member").
 */

/** Why a member can no longer take jobs. */
export type MemberFate =
  | 'alive' // can take (another) job
  | 'spent' // finished its last job and is being replaced (process mode: recycling rules)
  | 'killed' // terminated by the runner (timeout, cancellation, close)
  | 'crashed'; // died on its own (exit, crash, out of memory, killed from outside)

/** The parent's side of one job: where its events go and who answers its host calls. */
export interface JobHooks {
  onEvent(event: unknown): void;
  /** Answers `ctx.call`; always returns a promise (see hostCaller in job-control.ts). */
  onCall(method: string, args: unknown): Promise<unknown>;
}

export interface PoolMember {
  /** Resolves once the task module is loaded; rejects (CaxtonError) if the member fails to start. */
  readonly ready: Promise<void>;
  /** Resolves once the thread/process is gone. Never rejects. */
  readonly gone: Promise<void>;
  readonly fate: MemberFate;
  /**
   * Runs one job. Rejects with the task's error (member stays usable), with a crash error
   * ('isolation_failure', member gone) or, when `signal` aborts, with `signal.reason` after
   * killing the member. Host calls of the job are answered through `hooks.onCall` while the job
   * runs; an answer that settles after the job ended is dropped.
   */
  execute(payload: unknown, hooks: JobHooks, signal: AbortSignal): Promise<unknown>;
  /** Kills the thread/process (idempotent). */
  kill(): void;
  /**
   * Whether the member keeps the parent's event loop alive. Members hold it while starting and
   * while running a job; the pool releases it while they wait idle, so an isolation that was
   * never closed does not keep the parent running.
   */
  setActive(active: boolean): void;
}
