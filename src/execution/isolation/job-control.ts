import { CaxtonError, describeError } from '../../shared/errors.js';
import type { JobHooks } from './pool-member.js';
import { toWireError, type ChildMessage, type ParentMessage } from './protocol.js';
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
    throw new CaxtonError(
      'invalid_request',
      `timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}`,
    );
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
    const what = control.phase === 'waiting' ? `while waiting for a free ${executor}` : '; its signal was aborted';
    controller.abort(new CaxtonError('timeout', `the job timed out after ${timeoutMs} ms${what}`, { timeoutMs }));
  }, timeoutMs);
  const onCancel = (): void => {
    const reason: unknown = opts.signal?.reason;
    const why =
      reason === undefined || (reason instanceof Error && reason.name === 'AbortError')
        ? ''
        : `: ${describeError(reason)}`;
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

/**
 * The parent side of `ctx.call` for one job: `RunOptions.onCall`, refused once the job was aborted
 * and with 'not_supported' when there is none. Always returns a promise (never throws).
 */
export function hostCaller(opts: RunOptions, signal: AbortSignal): (method: string, args: unknown) => Promise<unknown> {
  const { onCall } = opts;
  return (method, args) => {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    if (!onCall) {
      return Promise.reject(
        new CaxtonError(
          'not_supported',
          `the task called the host method "${method}", but its job was started without a host call handler (RunOptions.onCall)`,
          { method },
        ),
      );
    }
    try {
      return Promise.resolve(onCall(method, args));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  };
}

/**
 * Runs a host call a worker thread / child process sent for its job and sends the answer back
 * with `send`, unless `current()` says by then that the job is over: then the answer is dropped
 * (the thread or process may be gone or running another job). Never throws, never rejects.
 */
export function answerHostCall(
  call: Extract<ChildMessage, { type: 'call' }>,
  hooks: JobHooks,
  current: () => boolean,
  send: (message: ParentMessage) => void,
  where: string,
): void {
  const { callId, method } = call;
  if (typeof callId !== 'number') return; // malformed: nothing to answer to
  const work =
    typeof method === 'string'
      ? hooks.onCall(method, call.args)
      : Promise.reject(new CaxtonError('invalid_request', `a host call needs a method name, got ${typeof method}`));
  const reply = (message: ParentMessage): void => {
    if (!current()) return;
    try {
      send(message);
    } catch (e) {
      // The answer cannot be cloned: the task gets that error instead.
      const error = new CaxtonError(
        'internal',
        `the answer to host call "${String(method)}" cannot be sent to the ${where}: ${describeError(e)}`,
        { method },
      );
      try {
        send({ type: 'call-error', callId, error: toWireError(error) });
      } catch {
        // the channel is gone
      }
    }
  };
  void work.then(
    (value) => reply({ type: 'call-result', callId, value }),
    (e: unknown) => reply({ type: 'call-error', callId, error: toWireError(e) }),
  );
}
