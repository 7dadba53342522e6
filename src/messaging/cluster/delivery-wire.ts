/**
 * A delivery as the stream carries it, and what a node decides when it is handed one: the wire
 * (row id, receiver, message, and on a first hand-out what its take would read) and `mayTake`.
 */
import type { AclMessage, Outgoing } from '../index.js';
import { agentKey } from '../../agents/index.js';
import { messageJson } from '../index.js';
import type { ConversationRow, KeptHandOut, TakeRow } from '../postgres/index.js';
import type { HandOut } from './delivery-groups.js';

/** Agent names may hold `.`, a NATS subject separator: it travels as `~`, which names never hold. */
export const subjectToken = (agent: string): string => agentKey(agent).replace(/\./g, '~');

/**
 * Whether a fetched delivery is to be run here, given its row; when not, it is settled: acked as a
 * duplicate (its row is done, dead or rerouted since: the ack after the commit was lost, or a
 * recovery's copy; or this node holds it already under another stream copy), its handle refreshed
 * (JetStream's redelivery of one this node holds), or naked until its retry time.
 */
export function mayTake(
  row: TakeRow,
  m: HandOut,
  receiver: string,
  held: ReadonlyMap<number, HandOut> & { set(id: number, m: HandOut): unknown },
): boolean {
  if (row.state !== 'pending' || agentKey(row.receiver) !== agentKey(receiver)) {
    m.ack();
    return false;
  }
  const mine = held.get(row.id);
  if (mine) {
    if (mine.seq === m.seq) held.set(row.id, m);
    else m.ack();
    return false;
  }
  const wait = row.next_at - Date.now();
  if (wait > 50) {
    m.nak(wait); // a retry published again early (a recovery): not before its time
    return false;
  }
  return true;
}

/** One delivery on the wire: its row id, receiver and message (the row is the truth; this saves a read). */
export interface Wire {
  id: number;
  receiver: string;
  message: AclMessage;
  /**
   * Only on the first hand-out of a delivery that marks its one-way conversation kept, published
   * by the node whose step inserted it: what the take would read of its row. Taken at JetStream's
   * delivery count 1, the row is not read (#take).
   */
  kept?: { at: string; opening: ConversationRow };
}

/** The keys wireOf writes: a field added to Wire fails to compile until wireOf writes it too. */
const _wireKeys: Record<keyof Wire, true> = { id: true, receiver: true, message: true, kept: true };

/** `JSON.stringify` of the delivery's Wire, around the message's text made once (messageJson). */
export function wireOf(o: Outgoing, kept?: KeptHandOut): string {
  // The conversation's JSON as stored goes in as it is: no escaping here, one parse with the wire there.
  const k = kept ? `,"kept":{"at":${JSON.stringify(kept.at)},"opening":${kept.opening}}` : '';
  return `{"id":${o.id},"receiver":${JSON.stringify(o.receiver)},"message":${messageJson(o.message)}${k}}`;
}

/** The delivery's envelope around the message (row id, receiver, JSON keys), with room to spare. */
export const WIRE_OVERHEAD = 512;
