/**
 * A participant's failure in a protocol with several participants. When a delivery to one bidder
 * (or provider) is dead-lettered, the platform's `failure` reply naming that participant is the
 * record: stored in the conversation in the same step as the dead letter, it is what the
 * protocols count (the participant is no longer awaited, is sent nothing more) and what the
 * conversation's view lists as `failed_participants`. The conversation itself fails only when its
 * own rule cannot be met any more; see docs/adr/0117-a-participants-failure-is-its-own.md.
 */
import type { Conversation } from '../conversation.js';
import type { AclMessage, Content } from '../message.js';
import type { Protocol } from '../performatives.js';
import type { StoredMessage } from '../rows.js';
import { PLATFORM } from '../submission.js';

/** A participant a protocol goes on without: who, why, and the dead letter that says so. */
export interface FailedParticipant {
  agent: string;
  reason: string;
  dead_letter: number | null;
  at: string;
}

/** Whether conversations of `protocol` go on when one of their participants cannot be reached. */
export const survivesParticipants = (protocol: Protocol | null | undefined): boolean =>
  protocol === 'fipa-contract-net' ||
  protocol === 'fipa-english-auction' ||
  protocol === 'fipa-dutch-auction' ||
  protocol === 'fipa-iterated-contract-net';

/**
 * Whether a dead letter of `m` to `receiver` is that participant's alone: the protocol has
 * several participants, the receiver is not the initiator, and the message is not the award (a
 * winner that cannot be told it won leaves nobody to do the task).
 */
export function participantOnly(conv: Conversation, m: AclMessage, receiver: string): boolean {
  return (
    survivesParticipants(conv.protocol) &&
    receiver.toLowerCase() !== conv.initiator.toLowerCase() &&
    m.performative !== 'accept-proposal'
  );
}

/** The content of the platform's failure reply recording `participant`'s failure. */
export function participantFailure(participant: string, why: string, reason: string, deadLetter: number): Content {
  return { reason, message: why, dead_letter: deadLetter, participant };
}

/** The participant a stored message records as failed (the platform's failure naming it), if any. */
export function failedParticipantOf(m: AclMessage): string | undefined {
  if (m.sender !== PLATFORM || m.performative !== 'failure') return undefined;
  const c = m.content;
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return undefined;
  const p = (c as Record<string, Content>).participant;
  return typeof p === 'string' ? p : undefined;
}

/** The participants recorded as failed in these messages, in order, each once (lower case). */
export function failedNames(messages: readonly StoredMessage[]): Set<string> {
  const out = new Set<string>();
  for (const s of messages) {
    const p = failedParticipantOf(s.message);
    if (p !== undefined) out.add(p.toLowerCase());
  }
  return out;
}

/** The participants recorded as failed in these messages, each once with its first record. */
export function failedParticipants(messages: readonly StoredMessage[]): FailedParticipant[] {
  const seen = new Map<string, FailedParticipant>();
  for (const s of messages) {
    const p = failedParticipantOf(s.message);
    if (p === undefined || seen.has(p.toLowerCase())) continue;
    const c = s.message.content as Record<string, Content>;
    seen.set(p.toLowerCase(), {
      agent: p,
      reason: typeof c.message === 'string' ? c.message : String(c.reason),
      dead_letter: typeof c.dead_letter === 'number' ? c.dead_letter : null,
      at: s.message.timestamp,
    });
  }
  return [...seen.values()];
}

/** `c` with the participants its protocol went on without, when there are any (failedParticipants). */
export function withFailed(c: Conversation, messages: readonly StoredMessage[]): Conversation {
  const failed = failedParticipants(messages);
  if (failed.length > 0) c.failed_participants = failed;
  return c;
}
