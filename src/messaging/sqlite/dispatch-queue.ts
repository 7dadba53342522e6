import { traceLogFields } from '../../observability/trace-context.js';
import { describeError } from '../../shared/errors.js';
import { backoffDelay } from '../../shared/backoff.js';
import { isDiskFull } from '../../storage/index.js';
import { Dispatcher, type ConversationEvents, type Delivery, type DeliveryQueue, type Outgoing } from '../index.js';

export interface DispatchQueueOptions {
  /** Deliveries `agent` may run at once. */
  concurrency(agent: string): number;
  /** Runs one delivery and finishes it; never rejects. */
  deliver(d: Delivery, signal: AbortSignal): Promise<void> | void;
  /** Backoff of a write tried again ([messaging] retry_base, retry_max). */
  retry: { base: number; max: number };
  events: ConversationEvents;
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

/**
 * The engine's delivery queue on one node: the in-process Dispatcher (one FIFO lane per agent)
 * hands out the deliveries the SQLite steps stored. It holds every pending delivery of the
 * process, so nothing needs handing out again; a restart hands out what the rows say is pending.
 */
export class DispatchQueue implements DeliveryQueue {
  readonly #dispatcher: Dispatcher;
  readonly #o: DispatchQueueOptions;
  #closed = false;
  /** Outcomes waiting for room on the disk to be written again. */
  readonly #later = new Set<NodeJS.Timeout>();

  constructor(opts: DispatchQueueOptions) {
    this.#o = opts;
    this.#dispatcher = new Dispatcher({ concurrency: opts.concurrency, deliver: opts.deliver });
  }

  get size(): number {
    return this.#dispatcher.size;
  }

  get running(): number {
    return this.#dispatcher.running;
  }

  /** Deliveries waiting for their retry time. */
  get delayed(): number {
    return this.#dispatcher.delayed;
  }

  get backlog(): number {
    return this.#dispatcher.size + this.#dispatcher.delayed;
  }

  load(agent: string): number {
    return this.#dispatcher.load(agent);
  }

  /** Hands out a delivery now, or after `delayMs` (a restart finds it waiting for its retry). */
  dispatch(d: Delivery, delayMs?: number): void {
    if (delayMs === undefined) this.#dispatcher.enqueue(d);
    else this.#dispatcher.later(d, delayMs);
  }

  publish(out: readonly Outgoing[]): void {
    for (const o of out)
      this.#dispatcher.enqueue({ id: o.id, message: o.message, receiver: o.receiver, attempts: o.attempts ?? 0 });
  }

  again(): Promise<void> {
    return Promise.resolve();
  }

  done(): void {}

  retry(d: Delivery, delayMs: number): void {
    this.#dispatcher.later(d, delayMs);
  }

  /**
   * Writing a delivery's outcome met a full disk: nothing of it was stored, so the delivery stays
   * pending in SQLite and a restart delivers it again. Until then the write is tried again with
   * backoff, rather than the delivery: the agent has already answered, and running it again would
   * cost another model call and answer twice. Whoever waits on the conversation gets a 507 now.
   */
  unfinished(d: Delivery, e: unknown, finish: () => Promise<void>, attempt = 1): void {
    const conv = d.message.conversation_id;
    if (!isDiskFull(e)) {
      if (attempt > 1) this.#o.events.settleUnstored(conv);
      this.#o.log.error(
        { message_id: d.message.id, delivery: d.id, err: describeError(e) },
        'could not finish a delivery; it stays pending and is delivered again after a restart',
      );
      return;
    }
    const delay = backoffDelay(attempt - 1, { baseMs: this.#o.retry.base, maxMs: this.#o.retry.max });
    if (attempt === 1 || attempt % 10 === 0) {
      this.#o.log.error(
        {
          ...traceLogFields(d.message.trace_context?.traceparent),
          message_id: d.message.id,
          conversation_id: conv,
          receiver: d.receiver,
          delivery: d.id,
          attempt,
          retry_in_ms: delay,
        },
        `could not acknowledge the delivery of message ${d.message.id} to "${d.receiver}": the disk holding the data dir is full. The delivery stays pending (it is delivered again after a restart); storing its acknowledgement and reply is retried every ${Math.round(delay / 1000)} s or so. Free some space on the server`,
      );
    }
    // Counted until it is stored (or given up), so a waiter arriving between retries sees it too.
    if (attempt === 1) this.#o.events.markUnstored(conv);
    const t = setTimeout(() => {
      this.#later.delete(t);
      if (this.#closed) return;
      finish().then(
        () => {
          this.#o.events.settleUnstored(conv);
          this.#o.log.warn(
            {
              message_id: d.message.id,
              conversation_id: conv,
              receiver: d.receiver,
              delivery: d.id,
              attempts: attempt + 1,
            },
            `acknowledged the delivery of message ${d.message.id} to "${d.receiver}" now that the disk has room again`,
          );
        },
        (err: unknown) => this.unfinished(d, err, finish, attempt + 1),
      );
    }, delay);
    t.unref();
    this.#later.add(t);
  }

  /** Stops handing out deliveries; running ones are abandoned after `graceMs` (they stay pending). */
  async stop(graceMs: number): Promise<void> {
    this.#closed = true;
    await this.#dispatcher.stop(graceMs);
    // Outcomes still waiting for room stay unwritten: their deliveries are pending in SQLite.
    for (const t of this.#later) clearTimeout(t);
    this.#later.clear();
  }
}
