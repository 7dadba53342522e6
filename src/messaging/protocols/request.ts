import type { Conversation } from '../conversation.js';
import type { AclMessage } from '../message.js';
import type { Performative } from '../performatives.js';
import { defaultReplyActs, endOnAnswer, type ConversationProtocol, type ProtocolContext } from './protocol.js';

/**
 * FIPA-Request: the receiver's answer to a `request` is preceded by the `agree` the protocol
 * requires (the platform sends it on the agent's behalf); `inform` completes the conversation,
 * `failure`, `refuse` or `not-understood` fail it.
 */
export class RequestProtocol implements ConversationProtocol {
  readonly name = 'fipa-request';

  constructor(private readonly ctx: ProtocolContext) {}

  replyActs(original: AclMessage, performative: Performative): Performative[] {
    const agreeFirst = original.performative === 'request' && (performative === 'inform' || performative === 'failure');
    return agreeFirst ? ['agree', ...defaultReplyActs(original, performative)] : defaultReplyActs(original, performative);
  }

  onReply(reply: AclMessage, _original: AclMessage, conv: Conversation): void {
    endOnAnswer(this.ctx, reply, conv);
  }
}
