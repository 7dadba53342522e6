import type { ConversationId } from './message.js';
import type { Protocol } from './performatives.js';

export type ConversationState = 'initiated' | 'in_progress' | 'completed' | 'failed' | 'expired';

export const TERMINAL_STATES: readonly ConversationState[] = ['completed', 'failed', 'expired'];

export function isTerminal(s: ConversationState): boolean {
  return s === 'completed' || s === 'failed' || s === 'expired';
}

/** A conversation as stored and served. */
export interface Conversation {
  id: ConversationId;
  protocol: Protocol | null;
  state: ConversationState;
  /** Who sent the first message. */
  initiator: string;
  /** Every party that sent or received a message, in order of appearance. */
  participants: string[];
  /** Capability the first message addressed, if any. */
  capability: string | null;
  /** Messages so far. */
  turns: number;
  /** Most messages allowed. */
  max_turns: number;
  created_at: string;
  updated_at: string;
  /** Expires at this time unless there is activity (ttl) or a reply arrives (reply_by). */
  expires_at: string | null;
  /** Why it ended, for failed and expired conversations (and the outcome for completed ones). */
  reason: string | null;
  /**
   * Participants the protocol went on without (their delivery was dead-lettered), as the reads
   * serve a conversation; derived from its messages, never stored in its row.
   */
  failed_participants?: { agent: string; reason: string; dead_letter: number | null; at: string }[];
}

/**
 * The conversation state machine: initiated → in_progress → completed | failed | expired.
 * Terminal states never change; moving backwards is refused. Returns whether it moved.
 */
export function transition(c: Conversation, to: ConversationState, reason: string | null, now: string): boolean {
  if (isTerminal(c.state) || c.state === to) return false;
  if (to === 'initiated') return false;
  c.state = to;
  c.updated_at = now;
  if (reason !== null) c.reason = reason;
  if (isTerminal(to)) c.expires_at = null;
  return true;
}
