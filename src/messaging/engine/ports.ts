import type { Conversation } from '../conversation.js';
import type { Delivery } from '../dispatcher.js';
import type { AclMessage } from '../message.js';
import type { DeliveryRow, StoredMessage, SubscriptionRow } from '../rows.js';
import type { LoadView } from '../strategy.js';

/**
 * A step's answer: at once where the store holds it in memory (SQLite on one node, whose writes
 * wait for the step's commit), or later where it asks a server (PostgreSQL). The engine awaits only
 * a promise, so a step on a synchronous store is not suspended once per read and write.
 */
export type Answer<T> = T | Promise<T>;

/**
 * One step of a conversation: what the engine reads and writes while it holds the conversation.
 * Everything a step writes commits together or not at all; a store may run a step again when its
 * commit failed as part of a group, so a step keeps its effects in what it returns.
 */
export interface EngineStep {
  /** The conversation as the step found it (undefined: not created yet). */
  readonly conversation: Conversation | undefined;
  /** The conversation's messages, oldest first (those this step stored included). */
  messages(): Promise<StoredMessage[]>;
  saveConversation(c: Conversation): Answer<void>;
  /**
   * `opening`: the conversation this message opens, on a store that `defersOneWay`; the store keeps
   * it with the message instead of a conversation row, and gives it back as the step's
   * `conversation` (still `initiated`, and with no row: `saveConversation` then creates it) to the
   * next step of the conversation.
   */
  insertMessage(m: AclMessage, routedTo: readonly string[], opening?: Conversation): Answer<void>;
  /** A pending delivery row; returns its id. */
  insertDelivery(messageId: string, receiver: string, now: string): Answer<number>;
  /** A delivery row, held until the step commits (undefined: no such row). */
  delivery(id: number): Answer<DeliveryRow | undefined>;
  /**
   * Changes a delivery row (its state, attempts, error, receiver). `publish_tag` names a fresh
   * hand-out of the same row (a replay, a reroute), for a queue that drops repeated hand-outs.
   */
  setDelivery(id: number, to: DeliveryChange, now: string): Answer<void>;
  /** This conversation's deliveries still pending. */
  outstanding(): Answer<number>;
  /** The message stored under `id`, read in the step (only on a store that `checksIdsOnInsert`). */
  storedMessage?(id: string): Answer<StoredMessage | undefined>;
  insertSubscription(row: SubscriptionRow): Answer<void>;
  deleteSubscription(conversationId: string): Answer<void>;
}

/** What `setDelivery` changes. */
export interface DeliveryChange {
  state: DeliveryRow['state'];
  attempts: number;
  last_error?: string | null;
  receiver?: string;
  next_at?: number;
  publish_tag?: string;
}

/** A step on a store that answers every read and write later (PostgreSQL). */
export interface ConversationStep extends EngineStep {
  saveConversation(c: Conversation): Promise<void>;
  insertMessage(m: AclMessage, routedTo: readonly string[], opening?: Conversation): Promise<void>;
  insertDelivery(messageId: string, receiver: string, now: string): Promise<number>;
  delivery(id: number): Promise<DeliveryRow | undefined>;
  setDelivery(id: number, to: DeliveryChange, now: string): Promise<void>;
  outstanding(): Promise<number>;
  insertSubscription(row: SubscriptionRow): Promise<void>;
  deleteSubscription(conversationId: string): Promise<void>;
}

/** Where the engine keeps conversations, messages and delivery rows (SQLite on one node, PostgreSQL in a cluster). */
export interface StepStore {
  /**
   * The store keeps a one-way conversation (no protocol, one receiver, an act that expects no
   * reply) with its message until the conversation's next step, and its reads show it from there:
   * its row is written once, by the step that ends it (ADR 0080).
   */
  readonly defersOneWay?: boolean;
  /**
   * A repeated client-chosen message id is found by the message's INSERT (its unique key fails the
   * step, `isDuplicateId`), so the engine reads no id before the step; a step that would refuse
   * the message (its conversation ended, or at its turn limit) reads it then (`storedMessage`).
   */
  readonly checksIdsOnInsert?: boolean;
  /**
   * Runs `step` holding conversation `id`; resolves once what it wrote is committed. `delivery`:
   * the row the step is about. `fresh`: the id was made in this process for this step (a new
   * conversation nothing else can name yet), so a store may skip reading and locking it.
   */
  inConversation<T>(
    id: string,
    step: (s: EngineStep) => Promise<T>,
    opts?: { delivery?: number; fresh?: boolean },
  ): Promise<T>;
  /**
   * Only on a store whose steps answer every read and write at once (SQLite on one node):
   * `inConversation` for a step that may return its result as a value. When the conversation is
   * free, the step runs within this call, up to the queueing of its commit, so the one promise it
   * costs is its commit's.
   */
  inConversationNow?<T>(
    id: string,
    step: (s: EngineStep) => Answer<T>,
    opts?: { delivery?: number; fresh?: boolean },
  ): Promise<T>;
  /** Runs `step` on up to `limit` open conversations whose deadline passed, each in its own step. */
  expired(
    now: string,
    limit: number,
    step: (s: EngineStep & { readonly conversation: Conversation }) => Promise<void>,
  ): Promise<number>;
  /** A failed attempt of a pending delivery runs again at `nextAt`; false when the row is not pending any more. */
  retry(id: number, attempts: number, nextAt: number, error: string, now: string): Promise<boolean>;
  getMessage(id: string): Promise<StoredMessage | undefined> | StoredMessage | undefined;
  getConversation(id: string): Promise<Conversation | undefined> | Conversation | undefined;
  /** The active subscriptions to a capability or to an agent (by name, any case). */
  subscriptionsFor(capability: string | undefined, agent: string): Promise<SubscriptionRow[]> | SubscriptionRow[];
  /** What a caller is told when a write of its own failed (a full disk, an unreachable database). */
  callerError(e: unknown): unknown;
  /** Whether a failed accept step lost a race for a client-chosen message id. */
  isDuplicateId(e: unknown): boolean;
}

/** A delivery the engine hands to the queue once the step that made it committed. */
export interface Outgoing {
  id: number;
  receiver: string;
  message: AclMessage;
  /** Attempts made already (a rerouted delivery keeps its count). */
  attempts?: number;
  /** The fresh hand-out's tag (a replay's or a reroute's; none for a first hand-out). */
  tag?: string;
}

/**
 * Hands stored deliveries to the node's consumers: the in-process dispatcher on one node, a
 * JetStream work queue in a cluster. The engine decides what becomes of each delivery; the queue
 * only moves it.
 */
export interface DeliveryQueue extends LoadView {
  /**
   * Undelivered deliveries (the back-pressure figure of `max_queue`): those this node holds, and on
   * a queue shared by nodes those waiting in it as far as this node knows, read without waiting.
   */
  readonly backlog: number;
  /**
   * The same figure read at its source, when `backlog` reaches `max_queue`: a queue other nodes
   * also take from, whose quick figure cannot see what they took since this node last looked.
   */
  exactBacklog?(): Promise<number>;
  /** Refuses a message the queue could not carry (a cluster's NATS max_payload). */
  admit?(m: AclMessage): void;
  /**
   * Hands out deliveries a committed step made; rejects when they could not be handed out (the
   * rows stay pending). A queue in the process hands them out at once and returns nothing.
   */
  publish(out: readonly Outgoing[]): Answer<void>;
  /** The deliveries of a message accepted before (sent again with the same id): handed out again where the queue may have lost them. */
  again(stored: StoredMessage): Promise<void>;
  /** The delivery is finished here (acknowledged, dead, rerouted or finished elsewhere). */
  done(d: Delivery, how: 'ack' | 'dead'): void;
  /** The delivery runs again after `delayMs`. */
  retry(d: Delivery, delayMs: number): void;
  /**
   * Finishing a delivery failed for a reason of the store (a full disk, PostgreSQL away):
   * `finish` writes its outcome again. The queue decides: try the write later, or run the delivery again.
   */
  unfinished(d: Delivery, e: unknown, finish: () => Promise<void>): void;
}
