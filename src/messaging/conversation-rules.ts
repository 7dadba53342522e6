/**
 * How a new conversation looks and how a message counts in its conversation (turns, participants,
 * expiry): decided the same way by both buses.
 */
import type { MessagingConfig } from './messaging-config.js';
import { isTerminal, type Conversation } from './conversation.js';
import { isoClock } from './engine/step-work.js';
import type { AclMessage } from './message.js';
import { expectsReply } from './performatives.js';
import type { RouteDecision } from './router.js';

/** Conversation expiries (now + ttl): within one millisecond every new conversation gets the same. */
const expiryIso = isoClock();

/** A new conversation started by `m`: its turn budget is the tightest of its receivers' (not for endless protocols). */
export function newConversation(
  m: AclMessage,
  now: string,
  decision: RouteDecision,
  cfg: MessagingConfig,
  endless: boolean,
): Conversation {
  let maxTurns = cfg.max_conversation_turns;
  if (decision.ok && !endless)
    for (const r of decision.receivers) maxTurns = Math.min(maxTurns, Math.max(2, r.definition.conversation.max_turns));
  // The one receiver most messages have is listed already, as `touchConversation` would add it:
  // the list is then made at its size instead of grown.
  const only = decision.ok && decision.receivers.length === 1 ? decision.receivers[0]!.agent : m.sender;
  return {
    id: m.conversation_id,
    protocol: m.protocol ?? null,
    state: 'initiated',
    initiator: m.sender,
    participants: only === m.sender ? [m.sender] : [m.sender, only],
    capability: m.capability ?? null,
    turns: 0,
    max_turns: maxTurns,
    created_at: now,
    updated_at: now,
    expires_at: expiryIso(Date.now() + cfg.conversation_ttl),
    reason: null,
  };
}

/**
 * Counts a message in its conversation: turns, participants, activity, and its expiry (the ttl, or
 * the reply_by of a message expecting a reply; none for an endless protocol).
 */
export function touchConversation(
  conv: Conversation,
  m: AclMessage,
  receivers: readonly string[],
  now: string,
  ttl: number,
  endless: boolean,
): void {
  conv.turns++;
  conv.updated_at = now;
  if (!conv.participants.includes(m.sender)) conv.participants.push(m.sender);
  for (const r of receivers) if (!conv.participants.includes(r)) conv.participants.push(r);
  if (isTerminal(conv.state)) return;
  if (endless) {
    conv.expires_at = null;
    return;
  }
  let expires = Date.now() + ttl;
  if (m.reply_by && m.performative !== 'cfp' && expectsReply(m.performative))
    expires = Math.min(expires, Date.parse(m.reply_by));
  conv.expires_at = expiryIso(expires);
}
