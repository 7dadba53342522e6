/**
 * The stored shapes of messaging — messages, deliveries, subscriptions and the pages and filters
 * of their reads — as both stores (sqlite/, cluster/) write and read them.
 */
import { COPY_ROOT } from '../shared/objects.js';
import { scrubSecrets } from '../shared/secrets.js';
import type { ConversationState } from './conversation.js';
import { messageJson, type AclMessage, type ConversationId, type MessageId } from './message.js';

/** The failed attempts a delivery row keeps (the oldest go first); the last error is also in `last_error`. */
export const MAX_ATTEMPT_ERRORS = 20;

/** One failed attempt of a delivery: when it failed and why (scrubbed of secrets like `last_error`). */
export interface AttemptError {
  at: string;
  error: string;
}

/** The stored `errors` column (JSON, or null before any failure) as a list; damaged text reads as none. */
export function attemptErrorsOf(raw: unknown): AttemptError[] {
  let v = raw;
  if (typeof raw === 'string') {
    try {
      v = JSON.parse(raw) as unknown;
    } catch {
      return [];
    }
  }
  if (!Array.isArray(v)) return [];
  return (v as { at?: unknown; error?: unknown }[])
    .filter((e) => typeof e?.at === 'string' && typeof e.error === 'string')
    .map((e) => ({ at: e.at as string, error: e.error as string }));
}

/** A delivery row as the read side serves it: its failed attempts as a list instead of the stored column. */
export type DeliveryView = Omit<DeliveryRow, 'errors'> & { attempt_errors: AttemptError[] };

export function deliveryView(d: DeliveryRow): DeliveryView {
  const { errors, ...rest } = d;
  return { ...COPY_ROOT, ...rest, attempt_errors: attemptErrorsOf(errors) };
}

export type DeliveryState = 'pending' | 'done' | 'dead';

export interface DeliveryRow {
  id: number;
  message_id: MessageId;
  receiver: string;
  state: DeliveryState;
  attempts: number;
  next_at: number;
  last_error: string | null;
  updated_at: string;
  /** The failed attempts as stored (SQLite's JSON text, PostgreSQL's jsonb; see `attemptErrorsOf`); absent on rows the engine builds itself. */
  errors?: string | AttemptError[] | null;
}

export interface StoredMessage {
  message: AclMessage;
  routed_to: string[];
}

export interface SubscriptionRow {
  id: string;
  conversation_id: ConversationId;
  subscriber: string;
  capability: string | null;
  agent: string | null;
  content: string;
  created_at: string;
}

export interface Page<T> {
  items: T[];
  total: number;
}

/** Which dead letters to list: text anywhere in the receiver's name, or in the last error (any case, taken literally). */
export interface DeadLetterFilter {
  receiver?: string;
  error?: string;
  /** Only dead letters of messages naming no agent outside these globs (a reader's agent scope, src/auth/scope-read.ts). */
  agents?: readonly string[];
}

/** Which messages to list; every field narrows (exact match; `receiver`: delivered, or being delivered, to it). */
export interface MessageFilter {
  performative?: string;
  sender?: string;
  receiver?: string;
  conversation_id?: string;
  /** Only messages naming no agent outside these globs (a reader's agent scope, src/auth/scope-read.ts). */
  agents?: readonly string[];
}

/** Which conversations to list; every field narrows. */
export interface ConversationFilter {
  state?: ConversationState;
  /** Only conversations this party sent or received a message in. */
  participant?: string;
  /** Only conversations with no agent outside these globs among their participants (a reader's agent scope). */
  agents?: readonly string[];
}

/**
 * A message's row, in the column order both stores write (id, conversation_id, performative,
 * sender, created_at, body, routed_to). The body is scrubbed of the configured secrets (ADR 0017):
 * a last line of defence behind the boundaries where outside text enters (a provider error quoted
 * in a failure reply or dead letter).
 */
export function messageRow(
  m: AclMessage,
  routedTo: readonly string[],
): [string, string, string, string, string, string, string] {
  return [
    m.id,
    m.conversation_id,
    m.performative,
    m.sender,
    m.timestamp,
    scrubSecrets(messageJson(m, false)),
    JSON.stringify(routedTo),
  ];
}
