import { isTerminal, type Conversation } from '../conversation.js';
import type { AclMessage } from '../message.js';
import { expectsReply } from '../performatives.js';
import { isNegative, type ConversationProtocol, type ProtocolContext } from './protocol.js';

/**
 * Conversations without a `protocol`: one that asked for replies ends with the last of them
 * (failed on a negative one); one of one-way messages (inform...) completes when every delivery is
 * acknowledged.
 */
export class PlainProtocol implements ConversationProtocol {
  readonly name = null;

  constructor(private readonly ctx: ProtocolContext) {}

  onReply(reply: AclMessage, original: AclMessage, conv: Conversation): void {
    if (expectsReply(original.performative) && this.ctx.outstanding(conv.id) === 0) {
      this.ctx.finish(conv, isNegative(reply.performative) ? 'failed' : 'completed', null);
    }
  }

  onAcknowledged(m: AclMessage, conv: Conversation): void {
    if (isTerminal(conv.state) || expectsReply(m.performative)) return;
    if (this.ctx.outstanding(conv.id) > 0) return;
    this.ctx.setState(conv, 'completed', 'delivered');
  }
}
