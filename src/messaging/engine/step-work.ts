/**
 * What the engine's steps share besides the ports: the timestamps they write, the effects a step
 * collects until it commits, and the notification an inform becomes for one of its subscribers.
 */
import type { BusEvent } from '../events.js';
import { newMessageId, type AclMessage, type ConversationId, type MessageId } from '../message.js';
import type { SubscriptionRow } from '../store.js';
import type { Answer, Outgoing, StepStore } from './ports.js';

let isoAt = NaN;
let isoText = '';
/** An ISO timestamp; the same millisecond's string is shared, as a step asks for "now" several times. */
export const iso = (t = Date.now()): string => {
  if (t !== isoAt) {
    isoAt = t;
    isoText = new Date(t).toISOString();
  }
  return isoText;
};

/** A step's effects: messages to hand out and events to emit once it commits, informs to forward to subscribers. */
export class StepWork {
  readonly outgoing: Outgoing[] = [];
  readonly events: BusEvent[] = [];
  readonly notify: AclMessage[] = [];
}

/**
 * A step's body as a generator: it yields each answer of the store that is a promise (or may be
 * one) and is resumed with its value. Written once for both stores, it runs as one plain call on a
 * store answering at once.
 */
export type StepBody<T> = Generator<unknown, T, unknown>;

/**
 * Runs a step body: resumed at once with a value, so on a store that answers at once the step
 * allocates no promise and never suspends. From the first promise on, it continues asynchronously.
 */
export function drive<T>(body: StepBody<T>): Answer<T> {
  let r = body.next();
  while (!r.done) {
    if (r.value instanceof Promise) return driveLater(body, r.value);
    r = body.next(r.value);
  }
  return r.value;
}

async function driveLater<T>(body: StepBody<T>, first: Promise<unknown>): Promise<T> {
  let next: unknown = first;
  for (;;) {
    let value: unknown = next;
    let failed = false;
    if (next instanceof Promise) {
      try {
        value = await next;
      } catch (e) {
        failed = true;
        value = e;
      }
    }
    // A rejected answer is thrown where the body yielded it.
    const r = failed ? body.throw(value) : body.next(value);
    if (r.done) return r.value;
    next = r.value;
  }
}

/** The subscribers of each inform in turn: a list, or a promise of one from a store that answers later. */
export type Subscribers = (SubscriptionRow[] | Promise<SubscriptionRow[]>)[];

/**
 * The subscribers of each accepted inform, or undefined when the store answered at once that none
 * has any. A store answering later is asked for all of them in the same turn, so it can batch them.
 */
export function subscribersOf(store: StepStore, informs: readonly AclMessage[]): Subscribers | undefined {
  let any = false;
  const out = informs.map((m) => {
    const subs = store.subscriptionsFor(m.capability, m.sender);
    if (!Array.isArray(subs)) {
      // Awaited where the notifications are sent; until then a refusal must not count as unhandled.
      subs.catch(() => undefined);
      any = true;
    } else if (subs.length > 0) any = true;
    return subs;
  });
  return any ? out : undefined;
}

/** The inform `m` as a notification along a subscription's conversation (to nobody when the subscriber is not an agent). */
export function notificationOf(m: AclMessage, sub: SubscriptionRow, isAgent: boolean): AclMessage {
  return {
    id: newMessageId(),
    performative: 'inform',
    sender: m.sender,
    receivers: isAgent ? [sub.subscriber] : [],
    content: m.content,
    conversation_id: sub.conversation_id as ConversationId,
    protocol: 'fipa-subscribe',
    in_reply_to: sub.id as MessageId,
    ...(m.ontology !== undefined && { ontology: m.ontology }),
    ...(m.language !== undefined && { language: m.language }),
    params: { 'X-notification-of': m.id },
    timestamp: iso(),
    chain: m.chain,
    ...(m.on_behalf_of !== undefined && { on_behalf_of: m.on_behalf_of }),
  };
}
