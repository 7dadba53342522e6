import { randomBytes } from 'node:crypto';
import type { Brand } from '../shared/brand.js';
import type { Performative, Protocol } from './performatives.js';

export type MessageId = Brand<string, 'MessageId'>;
export type ConversationId = Brand<string, 'ConversationId'>;

/** Message content: text, or any JSON value (then `language` is usually "json"). */
export type Content = string | number | boolean | null | Content[] | { [k: string]: Content };

/** W3C trace context (https://www.w3.org/TR/trace-context/) carried inside the message. */
export interface TraceContext {
  traceparent: string;
  tracestate?: string;
}

/**
 * A FIPA-ACL message (FIPA SC00061G): every standard parameter, plus Caxton's own (id, target
 * capability, trace context, timestamp, and the chain of agents whose executions led to it).
 * Receivers are agent names; `sender` is an agent name or an external party such as "user".
 */
export interface AclMessage {
  readonly id: MessageId;
  readonly performative: Performative;
  readonly sender: string;
  /** Explicit receivers (agent names). Empty when the message addresses a capability. */
  readonly receivers: readonly string[];
  /** The capability addressed; the router picks the provider(s). */
  readonly capability?: string;
  /** Where replies go instead of the sender. */
  readonly reply_to?: readonly string[];
  readonly content: Content;
  readonly language?: string;
  readonly encoding?: string;
  readonly ontology?: string;
  readonly protocol?: Protocol;
  readonly conversation_id: ConversationId;
  readonly reply_with?: string;
  readonly in_reply_to?: string;
  /** ISO 8601 time by which a reply is wanted. */
  readonly reply_by?: string;
  /** User-defined parameters; every key starts with "X-". */
  readonly params: Readonly<Record<string, string>>;
  readonly trace_context?: TraceContext;
  /** ISO 8601 time the platform accepted the message. */
  readonly timestamp: string;
  /** Agents whose executions led to this message, oldest first (loop detection). */
  readonly chain: readonly string[];
  /**
   * The principal the message acts for (Principal.id), set by the platform, never by a client: the
   * authenticated caller for a message from outside; for one an agent sends while handling a
   * message, and for the platform's replies, the handled message's. Its scope decides where the
   * message may go and its limits are charged for the executions the message starts. Absent: a
   * message of the platform's own, or stored before messages carried it (unrestricted).
   */
  readonly on_behalf_of?: string;
  /**
   * With `[messaging] signing` (ADR 0059): the Ed25519 signature of the message's canonical form
   * (signature.ts) and the id of the key that made it, set by the platform when it stores the message.
   */
  readonly signature?: { readonly key: string; readonly value: string };
  /**
   * A message from outside signed by its caller (ADR 0115): the caller's registered key, who it
   * belongs to, when the caller signed and its signature, set by the platform once it verified
   * them at submission. The node's own signature covers it, so a store writer can neither add it
   * nor change it.
   */
  readonly signed_by?: SignedBy;
}

/** Who signed a message from outside, as the platform verified it when the message was submitted. */
export interface SignedBy {
  /** The caller's registered signing key (`sk_...`). */
  readonly key: string;
  /** The principal the key is registered for (`key:NAME`, `oidc:SUBJECT`...). */
  readonly principal: string;
  /** When the caller signed, ISO 8601 (within the accepted skew of the server's clock). */
  readonly signed_at: string;
  /** The caller's Ed25519 signature, base64. */
  readonly value: string;
}

let lastMs = 0;
let counter = 0;
let pool = randomBytes(0);
let poolAt = 0;

/**
 * `m` carrying `trace_context`. Copied with Object.assign, not `{ ...m, trace_context }`: V8 gives
 * a spread copy with a key its source lacks a hidden class of its own, so every traced message
 * would cost a new map (about 0.4 KB) and make the code reading messages see one shape per message.
 */
export function withTraceContext(m: AclMessage, trace_context: TraceContext): AclMessage {
  const copy: { -readonly [K in keyof AclMessage]: AclMessage[K] } = Object.assign({}, m);
  copy.trace_context = trace_context;
  return copy;
}

/**
 * A time-ordered unique id (like a ULID or UUIDv7): 12 hex digits of milliseconds, 6 of a
 * per-millisecond counter, 16 random. Ids made later sort later, so the B-tree indexes over them
 * grow at their right edge instead of splitting pages all over: a large share of the durable
 * throughput (docs/benchmarks.md, Messaging).
 */
export function timeOrderedId(): string {
  const now = Date.now();
  if (now > lastMs) {
    lastMs = now;
    counter = 0;
  } else counter++;
  if (poolAt + 8 > pool.length) {
    pool = randomBytes(8 * 1024);
    poolAt = 0;
  }
  const rnd = pool.toString('hex', poolAt, poolAt + 8);
  poolAt += 8;
  return `${lastMs.toString(16).padStart(12, '0')}${counter.toString(16).padStart(6, '0')}${rnd}`;
}

export function newMessageId(): MessageId {
  return `msg_${timeOrderedId()}` as MessageId;
}

export function newConversationId(): ConversationId {
  return `conv_${timeOrderedId()}` as ConversationId;
}

/** The content as text, for prompts and logs. */
export function contentText(c: Content): string {
  return typeof c === 'string' ? c : JSON.stringify(c);
}

/** Size of the content in bytes, as stored. */
export function contentSize(c: Content): number {
  return Buffer.byteLength(contentText(c));
}

const texts = new WeakMap<AclMessage, string>();

/**
 * `JSON.stringify(m)`, computed once per message object: a cluster node writes the same text into
 * its size check against NATS's max_payload, the message's row and each delivery it publishes.
 * A message is never changed once built (tracing, signing and replies make new objects), so the
 * text stays that of the object. `keep: false` reads the text kept, or makes it without keeping it:
 * for a path that alone needs it (a message's row on one node), where keeping it would only cost.
 */
export function messageJson(m: AclMessage, keep = true): string {
  let t = texts.get(m);
  if (t === undefined) {
    t = JSON.stringify(m);
    if (keep) texts.set(m, t);
  }
  return t;
}

/** Where a reply to `m` goes. */
export function replyAddress(m: AclMessage): readonly string[] {
  return m.reply_to && m.reply_to.length > 0 ? m.reply_to : [m.sender];
}
