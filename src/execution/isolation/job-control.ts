import { CaxtonError, describeError } from '../../shared/errors.js';
import type { RunOptions } from './types.js';

/**
 * One job's deadline and cancellation folded into a single AbortSignal whose `reason` is the
 * CaxtonError the job must fail with ('timeout', 'cancelled', or whatever `fail` was given).
 */
export interface JobControl {
  readonly signal: AbortSignal;
  /** Names what the job is doing, for the timeout message. */
  phase: 'waiting' | 'running';
  /** Fails the job with `error` (aborting it like a timeout would). */
  fail(error: CaxtonError): void;
  /** Releases the timer and listener; call once the job has settled. */
  done(): void;
}

export function startJobControl(opts: RunOptions, executor: string): JobControl {
  const { timeoutMs } = opts;
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new CaxtonError('invalid_request', `timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}`);
  }
  const controller = new AbortController();
  const control: JobControl = {
    signal: controller.signal,
    phase: 'waiting',
    fail: (error) => controller.abort(error),
    done: () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onCancel);
    },
  };
  const timer = setTimeout(() => {
    const what =
      control.phase === 'waiting'
        ? `while waiting for a free ${executor}`
        : `; ${executor === 'context' ? 'its signal was aborted' : `the ${executor} running it was killed`}`;
    controller.abort(new CaxtonError('timeout', `the job timed out after ${timeoutMs} ms${what}`, { timeoutMs }));
  }, timeoutMs);
  const onCancel = (): void => {
    const reason: unknown = opts.signal?.reason;
    const why = reason === undefined || (reason instanceof Error && reason.name === 'AbortError') ? '' : `: ${describeError(reason)}`;
    controller.abort(new CaxtonError('cancelled', `the job was cancelled${why}`, undefined, { cause: reason }));
  };
  if (opts.signal?.aborted) onCancel();
  else opts.signal?.addEventListener('abort', onCancel, { once: true });
  return control;
}

/**
 * Rejects with the signal's reason as soon as it aborts; otherwise settles like `work`.
 * A later rejection of `work` is always observed (never an unhandled rejection).
 */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}
