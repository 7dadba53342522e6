import type { Delivery } from './dispatcher.js';
import type { GroupCommit } from './group-commit.js';
import type { AclMessage, MessageId } from './message.js';
import type { DeadLetterFilter, DeliveryRow, MessageStore, Page } from './store.js';
import type { LoadView } from './strategy.js';

/** A delivery a previous run left pending, and when it may run again (epoch ms; 0: now). */
export interface PendingDelivery {
  delivery: Delivery;
  next_at: number;
}

/**
 * The durable delivery queue the bus delivers through: one delivery per (message, receiver),
 * acknowledged, retried, dead-lettered, rerouted or replayed. Every write resolves once it is
 * durable. The messages that belong to a queue change travel in the same write (the accepted
 * message with its deliveries; an acknowledgement with the replies it produced; a dead letter with
 * its failure reply), so "accepted" and "acknowledged" each stay one atomic step.
 *
 * Storing a delivery and handing it to the consumer are separate (`enqueue`, then `dispatch`): the
 * bus counts a delivery as outstanding in its conversation before its handler can run, and a
 * handler may answer synchronously.
 *
 * The SQLite implementation (sqlite-queue.ts) is the `deliveries` table behind the group commit,
 * with the in-memory Dispatcher handing deliveries out; another one (JetStream) plugs in through
 * `BusOptions.queue` without touching the bus or the protocols.
 */
export interface DeliveryQueue extends LoadView {
  /** Deliveries waiting or running (not counting those waiting for a retry). */
  readonly size: number;
  readonly running: number;
  /** Deliveries waiting for their retry time. */
  readonly delayed: number;
  /** Stores `message` with one pending delivery per receiver, and `alongside` (messages that need no delivery). */
  enqueue(message: AclMessage, receivers: readonly string[], alongside: readonly AclMessage[], now: string): Promise<Delivery[]>;
  /** Hands a stored delivery to the consumer: now, or after `delayMs` (a retry with backoff). */
  dispatch(d: Delivery, delayMs?: number): void;
  /** The delivery is done; `replies` (what it produced) are stored in the same write. */
  ack(d: Delivery, replies: readonly AclMessage[], now: string): Promise<void>;
  /** The delivery failed and runs again at `nextAt` (epoch ms); call `dispatch` with the delay. */
  retry(d: Delivery, nextAt: number, error: string, now: string): Promise<void>;
  /** The delivery is dead (an operator may replay it); `replies` are stored in the same write. */
  deadLetter(d: Delivery, error: string, replies: readonly AclMessage[], now: string): Promise<void>;
  /** The delivery goes to another receiver. */
  reroute(d: Delivery, receiver: string, now: string): Promise<void>;
  /** Puts a dead letter back as pending with fresh attempts; `alongside` runs in the same write. False: it was not dead. */
  replay(id: number, now: string, alongside: () => void): Promise<boolean>;
  /** What a previous run left pending, oldest first; a delivery whose message cannot be read is skipped and told to `onSkipped`. */
  recover(onSkipped: (messageId: MessageId, reason: string) => void): { pending: PendingDelivery[]; found: number };
  get(id: number): DeliveryRow | undefined;
  ofMessage(messageId: string): DeliveryRow[];
  deadLetters(limit: number, offset: number, filter?: DeadLetterFilter): Page<DeliveryRow>;
  deadCount(): number;
  /** Stops handing out deliveries; running ones are abandoned after `graceMs` (they stay pending). */
  stop(graceMs: number): Promise<void>;
}

/** What the bus gives a queue it builds: its message store, its group commit, and the consumer to hand deliveries to. */
export interface DeliveryQueueDeps {
  store: MessageStore;
  commit: GroupCommit;
  /** Deliveries `agent` may run at once. */
  concurrency(agent: string): number;
  /** Runs one delivery and finalizes it (acknowledged, retried, dead); never rejects. */
  deliver(d: Delivery, signal: AbortSignal): Promise<void> | void;
}

export type DeliveryQueueFactory = (deps: DeliveryQueueDeps) => DeliveryQueue;
