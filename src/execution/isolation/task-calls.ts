/**
 * The child side of `TaskContext.call` in `worker` and `process` mode: numbers each call, sends
 * it to the parent and settles it when the parent's answer arrives. Like protocol.ts it has no
 * runtime dependencies beyond that module, so the worker entry and process runner stay light.
 */
import { codedError, fromWireError, type ChildMessage, type ParentMessage } from './protocol.js';

interface PendingCall {
  jobId: number;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

type Answer = Extract<ParentMessage, { type: 'call-result' | 'call-error' }>;

export class TaskCalls {
  #next = 1;
  readonly #pending = new Map<number, PendingCall>();

  constructor(private readonly send: (message: ChildMessage) => void) {}

  /** Sends job `jobId`'s call; rejects (never throws) when it cannot be sent. */
  call(jobId: number, method: unknown, args: unknown): Promise<unknown> {
    if (typeof method !== 'string' || method === '') {
      return Promise.reject(
        codedError('invalid_request', `ctx.call: the method must be a non-empty string, got ${typeof method}`),
      );
    }
    const callId = this.#next++;
    return new Promise<unknown>((resolve, reject) => {
      try {
        this.send({ type: 'call', id: jobId, callId, method, args });
      } catch (e) {
        reject(
          codedError(
            'invalid_request',
            `the arguments of host call "${method}" cannot be sent to the parent: ${e instanceof Error ? e.message : String(e)}`,
          ),
        );
        return;
      }
      this.#pending.set(callId, { jobId, resolve, reject });
    });
  }

  /** Settles the call an answer is for; answers to unknown or forgotten calls are ignored. */
  answer(m: Answer): void {
    const pending = this.#pending.get(m.callId);
    if (!pending) return;
    this.#pending.delete(m.callId);
    if (m.type === 'call-result') pending.resolve(m.value);
    else pending.reject(fromWireError(m.error));
  }

  /**
   * Rejects the calls job `jobId` is waiting on with `reason` (the job was cancelled: the parent
   * answers none of them any more, and the job is expected to end soon, not to hang on them).
   */
  cancelJob(jobId: number, reason: unknown): void {
    for (const [callId, pending] of this.#pending) {
      if (pending.jobId !== jobId) continue;
      this.#pending.delete(callId);
      pending.reject(reason);
    }
  }

  /**
   * Forgets the calls still pending when job `jobId` ended: their answers (the parent sends none
   * once the job is over) are ignored and their promises never settle. Rejecting them instead
   * could raise an unhandled rejection in code the job left behind, and that kills the thread.
   */
  endJob(jobId: number): void {
    for (const [callId, pending] of this.#pending) if (pending.jobId === jobId) this.#pending.delete(callId);
  }
}

/** What `ctx.call` rejects with once the job it belongs to has returned or failed. */
export function jobEndedError(method: unknown): Error {
  return codedError('invalid_request', `host call "${String(method)}" was made after its job had ended`);
}
