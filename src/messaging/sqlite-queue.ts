import { describeError } from '../shared/errors.js';
import { Dispatcher, type Delivery } from './dispatcher.js';
import type { GroupCommit } from './group-commit.js';
import type { AclMessage, MessageId } from './message.js';
import type { DeliveryQueue, DeliveryQueueDeps, PendingDelivery } from './queue.js';
import type { DeadLetterFilter, DeliveryRow, MessageStore, Page } from './store.js';

/**
 * The delivery queue in the data dir's SQLite (the `deliveries` table of store.ts): every write
 * goes through the bus's group commit, so it shares a transaction with the conversation state the
 * bus saves before each commit. The Dispatcher hands the deliveries out (one FIFO lane per agent).
 */
export class SqliteDeliveryQueue implements DeliveryQueue {
  readonly #store: MessageStore;
  readonly #commit: GroupCommit;
  readonly #dispatcher: Dispatcher;

  constructor(deps: DeliveryQueueDeps) {
    this.#store = deps.store;
    this.#commit = deps.commit;
    this.#dispatcher = new Dispatcher({ concurrency: deps.concurrency, deliver: deps.deliver });
  }

  get size(): number {
    return this.#dispatcher.size;
  }

  get running(): number {
    return this.#dispatcher.running;
  }

  get delayed(): number {
    return this.#dispatcher.delayed;
  }

  load(agent: string): number {
    return this.#dispatcher.load(agent);
  }

  // Each write returns the group commit's own promise (no extra await), so what the bus does after
  // a commit runs in the same order relative to the other writes of the batch as before the seam.
  enqueue(message: AclMessage, receivers: readonly string[], alongside: readonly AclMessage[], now: string): Promise<Delivery[]> {
    return this.#commit.run(() => {
      this.#store.insertMessage(message, receivers);
      const out = receivers.map((receiver): Delivery => ({ id: this.#store.insertDelivery(message.id, receiver, now), message, receiver, attempts: 0 }));
      for (const m of alongside) this.#store.insertMessage(m, []);
      return out;
    });
  }

  dispatch(d: Delivery, delayMs?: number): void {
    if (delayMs === undefined) this.#dispatcher.enqueue(d);
    else this.#dispatcher.later(d, delayMs);
  }

  ack(d: Delivery, replies: readonly AclMessage[], now: string): Promise<void> {
    return this.#commit.run(() => {
      this.#store.ack(d.id, now);
      for (const r of replies) this.#store.insertMessage(r, []);
    });
  }

  retry(d: Delivery, nextAt: number, error: string, now: string): Promise<void> {
    return this.#commit.run(() => this.#store.retry(d.id, d.attempts, nextAt, error, now));
  }

  deadLetter(d: Delivery, error: string, replies: readonly AclMessage[], now: string): Promise<void> {
    return this.#commit.run(() => {
      this.#store.dead(d.id, d.attempts, error, now);
      for (const r of replies) this.#store.insertMessage(r, []);
    });
  }

  reroute(d: Delivery, receiver: string, now: string): Promise<void> {
    return this.#commit.run(() => this.#store.reroute(d.id, receiver, now));
  }

  replay(id: number, now: string, alongside: () => void): Promise<boolean> {
    return this.#commit.run(() => {
      if (!this.#store.replay(id, now)) return false;
      alongside();
      return true;
    });
  }

  recover(onSkipped: (messageId: MessageId, reason: string) => void): { pending: PendingDelivery[]; found: number } {
    const rows = this.#store.openDeliveries();
    const cache = new Map<string, AclMessage>();
    const pending: PendingDelivery[] = [];
    for (const r of rows) {
      let m = cache.get(r.message_id);
      if (!m) {
        try {
          m = this.#store.getMessage(r.message_id)?.message;
          if (m === null || typeof m !== 'object' || typeof m.conversation_id !== 'string') throw new Error('not an ACL message');
        } catch (e) {
          onSkipped(r.message_id, `its stored body is damaged (${describeError(e)}); delivery ${r.id} is not retried`);
          continue;
        }
        cache.set(r.message_id, m);
      }
      pending.push({ delivery: { id: r.id, message: m, receiver: r.receiver, attempts: r.attempts }, next_at: r.next_at });
    }
    return { pending, found: rows.length };
  }

  get(id: number): DeliveryRow | undefined {
    return this.#store.getDelivery(id);
  }

  ofMessage(messageId: string): DeliveryRow[] {
    return this.#store.deliveriesOf(messageId);
  }

  deadLetters(limit: number, offset: number, filter?: DeadLetterFilter): Page<DeliveryRow> {
    return this.#store.deadLetters(limit, offset, filter);
  }

  deadCount(): number {
    return this.#store.deadCount();
  }

  stop(graceMs: number): Promise<void> {
    return this.#dispatcher.stop(graceMs);
  }
}

/** The default `BusOptions.queue`. */
export const sqliteQueue = (deps: DeliveryQueueDeps): DeliveryQueue => new SqliteDeliveryQueue(deps);
