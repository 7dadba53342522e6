import type { Conversation } from '../conversation.js';
import type { AclMessage } from '../message.js';
import type { Performative, Protocol } from '../performatives.js';
import { defaultReplyActs, type ConversationProtocol } from './protocol.js';

/**
 * The protocol engine: what the bus calls at each step of a conversation. It hands every accepted
 * message to every protocol (a subscription forwards informs of any conversation), and the rest
 * to the protocol of the conversation (or, for the reply acts, of the message being answered).
 */
export class ProtocolEngine {
  readonly #all: readonly ConversationProtocol[];
  readonly #byName = new Map<Protocol | null, ConversationProtocol>();

  constructor(protocols: readonly ConversationProtocol[]) {
    this.#all = protocols;
    for (const p of protocols) this.#byName.set(p.name, p);
  }

  /** Whether conversations of `protocol` last until cancelled (no expiry, the server's turn budget). */
  endless(protocol: Protocol | null | undefined): boolean {
    return this.#byName.get(protocol ?? null)?.endless === true;
  }

  /** Once at start, before pending deliveries run again. */
  load(): void {
    for (const p of this.#all) p.load?.();
  }

  /** At start, for each open conversation. */
  recover(conv: Conversation, skipped: (reason: string) => void): void {
    this.#byName.get(conv.protocol)?.recover?.(conv, skipped);
  }

  onAccepted(m: AclMessage, conv: Conversation, receivers: readonly string[]): void {
    for (const p of this.#all) p.onAccepted?.(m, conv, receivers);
  }

  replyActs(original: AclMessage, performative: Performative): Performative[] {
    const p = this.#byName.get(original.protocol ?? null);
    return p?.replyActs ? p.replyActs(original, performative) : defaultReplyActs(original, performative);
  }

  onReply(reply: AclMessage, original: AclMessage, conv: Conversation): void {
    this.#byName.get(conv.protocol)?.onReply?.(reply, original, conv);
  }

  onAcknowledged(m: AclMessage, conv: Conversation): void {
    this.#byName.get(conv.protocol)?.onAcknowledged?.(m, conv);
  }

  onEnded(conv: Conversation): void {
    this.#byName.get(conv.protocol)?.onEnded?.(conv);
  }

  close(): void {
    for (const p of this.#all) p.close?.();
  }
}
