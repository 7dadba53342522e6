import type { Conversation } from '../conversation.js';
import { newMessageId, type AclMessage } from '../message.js';
import type { StoredMessage } from '../rows.js';
import type { StepEffects } from './steps.js';

const iso = (t = Date.now()) => new Date(t).toISOString();

/** Whether `proposal` answered its call after the call's deadline (`reply_by`, or the platform's window). */
export const afterDeadline = (proposal: AclMessage, deadline: number): boolean =>
  Date.parse(proposal.timestamp) > deadline;

/** Whether the initiator answered `proposal` already (an accept or reject in reply to it). */
export function answered(messages: readonly StoredMessage[], proposal: AclMessage): boolean {
  const key = proposal.reply_with ?? proposal.id;
  return messages.some(
    (s) =>
      s.message.in_reply_to === key &&
      (s.message.performative === 'reject-proposal' || s.message.performative === 'accept-proposal'),
  );
}

/**
 * A proposal the call can no longer take (it came after `reply_by`, after its round closed or
 * after the award): FIPA answers every proposal, so it gets a `reject-proposal` saying why rather
 * than being kept unanswered. Sent even once the conversation ended.
 */
export function rejectLate(
  conv: Conversation,
  cfp: AclMessage,
  proposal: AclMessage,
  why: string,
  fx: StepEffects,
  reason: 'late' | 'tied' = 'late',
): void {
  conv.max_turns = Math.max(conv.max_turns, conv.turns + 2);
  fx.send({
    id: newMessageId(),
    performative: 'reject-proposal',
    sender: cfp.sender,
    receivers: [proposal.sender],
    content: { result: 'rejected', reason, message: why },
    conversation_id: conv.id,
    ...(cfp.protocol !== undefined && { protocol: cfp.protocol }),
    in_reply_to: proposal.reply_with ?? proposal.id,
    ...(cfp.ontology !== undefined && { ontology: cfp.ontology }),
    ...(cfp.trace_context !== undefined && { trace_context: cfp.trace_context }),
    params: { 'X-reject-reason': reason },
    timestamp: iso(),
    chain: cfp.chain,
    ...(cfp.on_behalf_of !== undefined && { on_behalf_of: cfp.on_behalf_of }),
  });
}
