import type { Conversation } from '../conversation.js';
import type { AclMessage } from '../message.js';
import { endOnAnswer, type ConversationProtocol, type ProtocolContext } from './protocol.js';

/** FIPA-Query: `inform` completes the conversation; `failure`, `refuse` or `not-understood` fail it. */
export class QueryProtocol implements ConversationProtocol {
  readonly name = 'fipa-query';

  constructor(private readonly ctx: ProtocolContext) {}

  onReply(reply: AclMessage, _original: AclMessage, conv: Conversation): void {
    endOnAnswer(this.ctx, reply, conv);
  }
}
