import { CaxtonError, describeError } from '../../shared/errors.js';
import { answerHostCall } from './job-control.js';
import type { JobHooks } from './pool-member.js';
import { toWireError, type ChildMessage, type ParentMessage } from './protocol.js';
import { taskErrorFromWire } from './task-error.js';

interface PendingJob {
  hooks: JobHooks;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  /** Set once the caller's signal aborted: the caller has its answer, the member still runs the job. */
  cancelled?: NodeJS.Timeout;
}

export interface MemberJobsOptions {
  /** Sends to the member; throws when the message cannot be cloned. */
  send(message: ParentMessage): void;
  /** Whether the member can still receive (host call answers are dropped otherwise). */
  usable(): boolean;
  /** How long a cancelled job may keep running before `onStuck` is called. */
  cancelGraceMs: number;
  /** A cancelled job did not end within the grace: the member must be killed. */
  onStuck(): void;
  /** A job ended on the member's side (replied), cancelled or not. */
  onEnded(): void;
  /** 'worker thread' or 'isolated process', for messages. */
  where: string;
}

/**
 * The parent's side of the jobs running on one member, many at once: numbers them, routes each
 * one's events, host calls and outcome by id, and cancels one by asking the member to abort its
 * signal, so a cancelled job costs neither the member nor the jobs beside it, unless it ignores
 * the request for `cancelGraceMs`.
 */
export class MemberJobs {
  readonly #o: MemberJobsOptions;
  readonly #jobs = new Map<number, PendingJob>();
  #next = 1;
  /** The sticky values (RunOptions.sticky) this member was last sent, by name. */
  readonly #sent = new Map<string, unknown>();
  /** Cancelled jobs not yet ended: the pool reads it for every job it places, so it is kept, not counted. */
  #cancelling = 0;

  constructor(options: MemberJobsOptions) {
    this.#o = options;
  }

  /** Jobs the member is running, cancelled ones included until they end. */
  get size(): number {
    return this.#jobs.size;
  }

  /** Cancelled jobs that have not ended yet. */
  get cancelling(): number {
    return this.#cancelling;
  }

  start(payload: unknown, hooks: JobHooks, signal: AbortSignal): Promise<unknown> {
    const id = this.#next++;
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = (): void => this.#cancel(id, job, signal.reason);
      const job: PendingJob = {
        hooks,
        resolve: (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
        reject: (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      try {
        const message = hooks.sticky
          ? this.#runMessage(id, payload, hooks.sticky)
          : { type: 'run' as const, id, payload };
        this.#o.send(message);
        this.#remember(message);
      } catch (e) {
        reject(
          new CaxtonError(
            'invalid_request',
            `the payload cannot be sent to the ${this.#o.where}: ${describeError(e)}`,
            undefined,
            { cause: e },
          ),
        );
        return;
      }
      this.#jobs.set(id, job);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A run whose sticky properties the member already holds are named, not sent again. */
  #runMessage(id: number, payload: unknown, sticky: readonly string[]): ParentMessage {
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return { type: 'run', id, payload };
    const rest: Record<string, unknown> = { ...(payload as Record<string, unknown>) };
    const stick: Record<string, unknown> = {};
    const reuse: string[] = [];
    for (const key of sticky) {
      if (!Object.hasOwn(rest, key)) continue;
      const value = rest[key];
      delete rest[key];
      if (this.#sent.has(key) && this.#sent.get(key) === value) reuse.push(key);
      else stick[key] = value;
    }
    return { type: 'run', id, payload: rest, stick, reuse };
  }

  /** Records the sticky values a run message carried, once it was accepted for sending (it throws first otherwise). */
  #remember(message: ParentMessage): void {
    if (message.type !== 'run' || message.stick === undefined) return;
    for (const [key, value] of Object.entries(message.stick)) this.#sent.set(key, value);
  }

  /** Handles a job's message from the member. */
  receive(m: Extract<ChildMessage, { id: number }>): void {
    const job = this.#jobs.get(m.id);
    if (!job) return;
    switch (m.type) {
      case 'event':
        if (!job.cancelled) job.hooks.onEvent(m.event);
        return;
      case 'call': {
        if (job.cancelled) return;
        const current = (): boolean => this.#jobs.get(m.id) === job && !job.cancelled && this.#o.usable();
        answerHostCall(m, job.hooks, current, (r) => this.#o.send(r), this.#o.where);
        return;
      }
      case 'result':
      case 'error':
        this.#jobs.delete(m.id);
        if (job.cancelled) this.#ended(job.cancelled);
        else if (m.type === 'result') job.resolve(m.value);
        else job.reject(taskErrorFromWire(m.error));
        this.#o.onEnded();
    }
  }

  /** The member is gone: every job still waiting on it fails with `error`. */
  failAll(error: CaxtonError): void {
    const jobs = [...this.#jobs.values()];
    this.#jobs.clear();
    for (const job of jobs) {
      if (job.cancelled) this.#ended(job.cancelled);
      else job.reject(error);
    }
  }

  #ended(cancelled: NodeJS.Timeout): void {
    clearTimeout(cancelled);
    this.#cancelling--;
  }

  #cancel(id: number, job: PendingJob, reason: unknown): void {
    job.reject(reason);
    this.#cancelling++;
    job.cancelled = setTimeout(() => {
      if (this.#jobs.get(id) === job) this.#o.onStuck();
    }, this.#o.cancelGraceMs);
    job.cancelled.unref();
    try {
      this.#o.send({ type: 'cancel', id, reason: toWireError(reason) });
    } catch {
      // The channel is gone: the member's exit fails or forgets the job.
    }
  }
}
