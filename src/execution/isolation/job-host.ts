/**
 * The child side of a pool member (worker thread or child process): runs many jobs at once, each
 * with its own AbortSignal (aborted when the parent sends 'cancel'), its own events and host
 * calls, all routed by job id. A member waiting on a job's model call is free to run the others.
 * Like protocol.ts it has no runtime dependencies beyond that module and task-calls.ts, so the
 * worker entry and process runner stay light.
 */
import { fromWireError, toWireError, type ChildMessage, type ParentMessage } from './protocol.js';
import { jobEndedError, type TaskCalls } from './task-calls.js';
import type { TaskFunction } from './types.js';

type Outcome = Extract<ChildMessage, { type: 'result' | 'error' }>;

export interface JobHostOptions {
  run: TaskFunction;
  calls: TaskCalls;
  /** Sends a message to the parent, then calls `then` once it is on its way. Throws when it cannot be cloned. */
  send(message: ChildMessage, then?: () => void): void;
  /**
   * Called after a job ended, before its reply: why the member must take no further job
   * (undefined when it may). `idle` says no other job is running.
   */
  retireCheck?(idle: boolean): string | undefined;
  /** Called once the member retired and its last job has replied (the process exits). */
  onRetiredIdle?(): void;
}

export class JobHost {
  readonly #o: JobHostOptions;
  readonly #jobs = new Map<number, AbortController>();
  /** The sticky payload values (RunOptions.sticky) the parent sent last, by name. */
  readonly #sticky = new Map<string, unknown>();
  #retire: string | undefined;

  constructor(options: JobHostOptions) {
    this.#o = options;
  }

  get active(): number {
    return this.#jobs.size;
  }

  /** Handles one message from the parent. */
  receive(m: ParentMessage): void {
    if (m.type === 'run') void this.#runJob(m.id, this.#payloadOf(m));
    else if (m.type === 'cancel') {
      const job = this.#jobs.get(m.id);
      if (!job || job.signal.aborted) return;
      const reason = fromWireError(m.reason);
      job.abort(reason);
      this.#o.calls.cancelJob(m.id, reason);
    } else this.#o.calls.answer(m);
  }

  /** The payload as the parent was given it: the sticky values it sent now or before put back. */
  #payloadOf(m: Extract<ParentMessage, { type: 'run' }>): unknown {
    if (m.stick === undefined && m.reuse === undefined) return m.payload;
    for (const [key, value] of Object.entries(m.stick ?? {})) this.#sticky.set(key, value);
    const payload = m.payload as Record<string, unknown>;
    for (const key of Object.keys(m.stick ?? {})) payload[key] = this.#sticky.get(key);
    for (const key of m.reuse ?? []) payload[key] = this.#sticky.get(key);
    return payload;
  }

  async #runJob(id: number, payload: unknown): Promise<void> {
    if (this.#jobs.has(id)) return; // the parent numbers jobs uniquely; a duplicate is ignored
    const controller = new AbortController();
    this.#jobs.set(id, controller);
    const { calls, send } = this.#o;
    let done = false;
    const emit = (event: unknown): void => {
      if (!done) send({ type: 'event', id, event });
    };
    const call = (method: string, args: unknown): Promise<unknown> => {
      if (done) return Promise.reject(jobEndedError(method));
      // A cancelled job's calls get its abort reason, as in `context` mode: the parent no longer answers.
      if (controller.signal.aborted) return Promise.reject(controller.signal.reason as Error);
      return calls.call(id, method, args);
    };
    let outcome: Outcome;
    try {
      outcome = { type: 'result', id, value: await this.#o.run(payload, { emit, signal: controller.signal, call }) };
    } catch (e) {
      outcome = { type: 'error', id, error: toWireError(e) };
    }
    done = true;
    calls.endJob(id);
    this.#jobs.delete(id);
    const idle = this.#jobs.size === 0;
    this.#retire ??= this.#o.retireCheck?.(idle);
    const retire = this.#retire;
    const then = retire !== undefined && idle ? this.#o.onRetiredIdle : undefined;
    this.#reply({ ...outcome, ...(retire !== undefined && { retire }) }, then);
  }

  #reply(message: Outcome, then: (() => void) | undefined): void {
    try {
      this.#o.send(message, then);
    } catch (e) {
      // Not serializable: report that instead (this one always is).
      const error = toWireError(new Error(`the task's result could not be sent back: ${(e as Error).message}`));
      this.#o.send(
        { type: 'error', id: message.id, error, ...(message.retire !== undefined && { retire: message.retire }) },
        then,
      );
    }
  }
}
