import type { AgentAnswer, InProcessHandler, MessageHandler } from './engine/engine.js';
import type { Conversation } from './conversation.js';
import type { Directory } from './directory.js';
import type { BusEvent } from './bus-events.js';
import type { AclMessage, ConversationId, MessageId } from './message.js';
import type { ConversationFilter, DeadLetterFilter, DeliveryView, MessageFilter, Page, StoredMessage } from './rows.js';
import type { SendHints, SubmitOptions, SubmitResult } from './submission.js';

/**
 * What the routes, the CLI and the status pages read from a bus (sqlite/sqlite-reads.ts,
 * postgres/pg-reads.ts). Each read first waits for the writes in flight, so what a caller was told
 * is accepted is also readable.
 */
export interface BusReads {
  getConversation(
    id: string,
    opts?: { limit?: number; offset?: number },
  ): Promise<{ conversation: Conversation; messages: StoredMessage[] }>;
  listConversations(q?: ConversationFilter & { limit?: number; offset?: number }): Promise<Page<Conversation>>;
  getMessage(id: string): Promise<(StoredMessage & { deliveries: DeliveryView[] }) | undefined>;
  /** Messages newest first, narrowed by the filter. */
  listMessages(q?: MessageFilter & { limit?: number; offset?: number }): Promise<Page<StoredMessage>>;
  deadLetters(
    q?: DeadLetterFilter & { limit?: number; offset?: number },
  ): Promise<Page<DeliveryView & { message: AclMessage }>>;
  /** Throws 'not_found' when there is no dead letter with this id. */
  deadLetter(id: number): Promise<DeliveryView & { message: AclMessage }>;
}

/** A dead letter to discard, with the conversation a purge may delete after it. */
export interface DiscardTarget {
  id: number;
  conversation_id: string;
}

export interface DiscardResult {
  /** The dead letters deleted. */
  discarded: number[];
  /** The conversations a purge deleted. */
  conversations: number;
}

/** The figures of GET /api/v1/messaging/stats and the status overview. */
export interface BusStats {
  queued: number;
  running: number;
  /** Deliveries waiting for their retry: this node's on one node; a cluster's across its nodes (read every 2 s). */
  retrying: number;
  open_conversations: number;
  dead_letters: number;
  max_queue: number;
}

/**
 * The message bus as the rest of the server sees it: the one delivery engine (engine/engine.ts)
 * over SQLite and the in-process dispatcher on one node (`MessageBus`, src/messaging/sqlite/sqlite-bus.ts), or over PostgreSQL
 * and JetStream in a cluster (`ClusterBus`, src/messaging/cluster/cluster-bus.ts). Routes, host tools and
 * components depend on this, never on either.
 */
export interface MessagingBus {
  readonly directory: Directory;
  readonly reads: BusReads;
  parse(body: unknown, opts?: { bodySize?: number; sender?: string }): AclMessage;
  /** Validates and sends a body from outside; `principal`: the caller it acts for, whose scope and limits apply (docs/security.md). */
  submit(body: unknown, opts?: SubmitOptions): Promise<SubmitResult>;
  send(m: AclMessage, hints?: SendHints): Promise<SubmitResult>;
  wait(id: ConversationId, timeoutMs: number, signal?: AbortSignal): Promise<Conversation>;
  replay(id: number): Promise<{ id: number; message_id: MessageId; receiver: string }>;
  /**
   * Deletes these dead letters (one replayed meanwhile stays); with `purge`, also the conversations
   * they belonged to once nothing of those is pending or dead, with their messages.
   */
  discard(letters: readonly DiscardTarget[], opts?: { purge?: boolean }): Promise<DiscardResult>;
  stats(): BusStats;
  /** Starts delivering (what a previous run left is delivered again). */
  start():
    | Promise<{ redelivering: number; open_conversations: number }>
    | { redelivering: number; open_conversations: number };
  close(graceMs?: number): Promise<void>;
  setAgentHandler(handler: MessageHandler): void;
  registerHandler(agent: string, handler: InProcessHandler): void;
  unregisterHandler(agent: string): void;
  /** The last `n` messages of a conversation, oldest first (an agent's conversation history). */
  history(conversation: ConversationId, n: number): Promise<AclMessage[]> | AclMessage[];
  on(event: 'event', f: (e: BusEvent) => void): unknown;
  off(event: 'event', f: (e: BusEvent) => void): unknown;
  /** Applies retention now (finished conversations, dead letters); the rows deleted per rule. */
  applyRetention(): Promise<Record<string, number>>;
  listenerCount(event: 'event'): number;
  /**
   * Resolves once events from every node reach this bus's listeners (at once on one node): a
   * listener that reads stored state after attaching awaits it first, so nothing falls between.
   */
  listening(): Promise<void>;
  /** Resolves once what was accepted so far is stored. */
  settled(): Promise<void>;
}

export type { AgentAnswer };
