/**
 * What the engine's steps share besides the ports: the timestamps they write, the effects a step
 * collects until it commits, and the notification an inform becomes for one of its subscribers.
 */
import type { BusEvent } from '../bus-events.js';
import { newMessageId, type AclMessage, type ConversationId, type MessageId } from '../message.js';
import type { SubscriptionRow } from '../rows.js';
import type { Answer, Outgoing, StepStore } from './ports.js';

/**
 * An ISO timestamp formatter that keeps its last millisecond's string: steps ask for the same
 * instant many times in a row. Each kind of instant ("now", "now + ttl") gets its own, so they do
 * not evict each other.
 */
export function isoClock(): (t?: number) => string {
  let at = NaN;
  let text = '';
  return (t = Date.now()) => {
    if (t !== at) {
      at = t;
      text = new Date(t).toISOString();
    }
    return text;
  };
}

/** An ISO timestamp for "now" (`isoClock`). */
export const iso = isoClock();

/** What a step that collected nothing of a kind holds for it: shared, never written to. */
const NONE: readonly never[] = Object.freeze([]);

/**
 * A step's effects: messages to hand out and events to emit once it commits, informs to forward to
 * subscribers. A step mostly collects one or two of each: a list is made on its first item, sized
 * for it, rather than an empty one per kind per step whose first push reserves room for sixteen.
 */
export class StepWork {
  outgoing: readonly Outgoing[] = NONE;
  events: readonly BusEvent[] = NONE;
  notify: readonly AclMessage[] = NONE;

  hand(o: Outgoing): void {
    if (this.outgoing === NONE) this.outgoing = [o];
    else (this.outgoing as Outgoing[]).push(o);
  }

  event(e: BusEvent): void {
    if (this.events === NONE) this.events = [e];
    else (this.events as BusEvent[]).push(e);
  }

  inform(m: AclMessage): void {
    if (this.notify === NONE) this.notify = [m];
    else (this.notify as AclMessage[]).push(m);
  }
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
  // Made once an inform has (or may have) subscribers: mostly none has, and nothing is allocated.
  let out: Subscribers | undefined;
  for (let i = 0; i < informs.length; i++) {
    const m = informs[i]!;
    const subs = store.subscriptionsFor(m.capability, m.sender);
    if (!Array.isArray(subs)) {
      // Awaited where the notifications are sent; until then a refusal must not count as unhandled.
      subs.catch(() => undefined);
    } else if (subs.length === 0 && out === undefined) continue;
    out ??= Array.from({ length: i }, () => []);
    out.push(subs);
  }
  return out;
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
