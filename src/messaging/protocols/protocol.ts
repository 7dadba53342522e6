import type { MessagingConfig } from '../config.js';
import type { Conversation, ConversationState } from '../conversation.js';
import type { AclMessage, ConversationId } from '../message.js';
import type { Performative, Protocol } from '../performatives.js';
import type { MessageStore } from '../store.js';
import type { SendHints, SubmitResult } from '../submission.js';

/** What a protocol may ask of the bus that runs it. */
export interface ProtocolContext {
  readonly config: MessagingConfig;
  /** The bus's message store: conversations' messages, subscription rows. */
  readonly store: MessageStore;
  readonly log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
  /** An open conversation (undefined once it ended). */
  open(id: ConversationId): Conversation | undefined;
  /** Deliveries of the conversation not acknowledged yet. */
  outstanding(id: ConversationId): number;
  /** Whether `name` is a deployed agent (not an outside client). */
  isAgent(name: string): boolean;
  /** Sends a message the platform makes on an agent's behalf (Contract Net decisions, notifications). */
  send(m: AclMessage, hints: SendHints): Promise<SubmitResult>;
  /** Moves a conversation's state; saved with the writes in flight. */
  setState(conv: Conversation, to: ConversationState, reason: string | null): void;
  /** Ends a conversation; saved with the writes in flight, or on its own at the next commit. */
  finish(conv: Conversation, to: ConversationState, reason: string | null): void;
  /** Records in `conv` a platform-made message that has no receiver to deliver to (a notification to an outside subscriber). */
  record(conv: Conversation, m: AclMessage): void;
  /** Runs `write` in the bus's next commit (subscription rows). */
  write(write: () => void): void;
}

/**
 * One interaction protocol, run by the platform on behalf of the conversation's initiator. The bus
 * calls these hooks; each is optional and synchronous (state changes are saved with the write the
 * bus is about to make).
 */
export interface ConversationProtocol {
  /** The `protocol` parameter this one runs (null: conversations without one). */
  readonly name: Protocol | null;
  /** Its conversations last until cancelled: they never expire, and their turn budget is the server's, not the receivers'. */
  readonly endless?: boolean;
  /**
   * A message was accepted (committed) in `conv`, whatever the conversation's protocol: a protocol
   * may act on messages outside its own conversations (a subscription forwards any inform).
   */
  onAccepted?(m: AclMessage, conv: Conversation, receivers: readonly string[]): void;
  /** The acts that answer `original` when its receiver answered `performative` (a request gets `agree` first). */
  replyActs?(original: AclMessage, performative: Performative): Performative[];
  /** A receiver replied `reply` to `original` in a conversation of this protocol (before the acknowledgement is written). */
  onReply?(reply: AclMessage, original: AclMessage, conv: Conversation): void;
  /** A delivery of `m` in a conversation of this protocol was acknowledged (after its replies). */
  onAcknowledged?(m: AclMessage, conv: Conversation): void;
  /** A conversation of this protocol ended: drop what is kept for it (its deadline timer). */
  onEnded?(conv: Conversation): void;
  /** At start: picks up a conversation of this protocol a previous run left open; one it cannot read is told to `skipped`. */
  recover?(conv: Conversation, skipped: (reason: string) => void): void;
  /** Loads what a previous run left (subscriptions), once at start before the conversations are recovered. */
  load?(): void;
  /** The bus stops: clears timers. */
  close?(): void;
}

/** The default reply act: an `agree` answers only a subscribe; to anything else it becomes an `inform`. */
export function defaultReplyActs(original: AclMessage, performative: Performative): Performative[] {
  return [performative === 'agree' && original.performative !== 'subscribe' ? 'inform' : performative];
}

/** A negative answer that ends a request, a query or an unnamed conversation as failed. */
export function isNegative(p: Performative): boolean {
  return p === 'failure' || p === 'refuse' || p === 'not-understood';
}

/** FIPA-Request and FIPA-Query: an `inform` completes the conversation, a negative answer fails it. */
export function endOnAnswer(ctx: ProtocolContext, reply: AclMessage, conv: Conversation): void {
  if (reply.performative === 'inform') ctx.finish(conv, 'completed', null);
  else if (isNegative(reply.performative)) ctx.finish(conv, 'failed', `${reply.sender} answered ${reply.performative}`);
}
