import { describeError } from '../../shared/errors.js';
import type { Conversation } from '../conversation.js';
import { newMessageId, type AclMessage } from '../message.js';
import type { SubscriptionRow } from '../store.js';
import type { ConversationProtocol, ProtocolContext } from './protocol.js';

const iso = (t = Date.now()) => new Date(t).toISOString();

/**
 * FIPA-Subscribe: the provider's `agree` records the subscription (in the `subscriptions` table);
 * from then on every `inform` that starts a conversation, sent to the subscribed capability or by
 * the subscribed agent, is forwarded to the subscriber as a notification, until the subscriber
 * sends `cancel`. Its conversations never expire.
 */
export class SubscribeProtocol implements ConversationProtocol {
  readonly name = 'fipa-subscribe';
  readonly endless = true;
  /** Active subscriptions by target ("cap:NAME" or "agent:NAME"). */
  readonly #subs = new Map<string, SubscriptionRow[]>();

  constructor(private readonly ctx: ProtocolContext) {}

  load(): void {
    for (const s of this.ctx.store.subscriptions()) this.#add(s);
  }

  onAccepted(m: AclMessage, conv: Conversation): void {
    if (m.performative === 'cancel') {
      if (conv.protocol === 'fipa-subscribe') this.#end(conv, 'cancelled by the subscriber');
    }
    if (m.performative === 'inform' && m.in_reply_to === undefined) this.#notify(m);
  }

  onReply(reply: AclMessage, original: AclMessage, conv: Conversation): void {
    if (original.performative !== 'subscribe') return;
    if (reply.performative === 'agree') this.#start(original, reply.sender, conv);
    else this.ctx.finish(conv, 'failed', `${reply.sender} answered ${reply.performative}`);
  }

  #add(s: SubscriptionRow): void {
    const key = s.capability !== null ? `cap:${s.capability}` : `agent:${(s.agent ?? '').toLowerCase()}`;
    const list = this.#subs.get(key) ?? [];
    list.push(s);
    this.#subs.set(key, list);
  }

  #start(sub: AclMessage, provider: string, conv: Conversation): void {
    const row: SubscriptionRow = {
      id: sub.id,
      conversation_id: conv.id,
      subscriber: sub.sender,
      capability: sub.capability ?? null,
      agent: sub.capability === undefined ? provider : null,
      content: typeof sub.content === 'string' ? sub.content : JSON.stringify(sub.content),
      created_at: iso(),
    };
    if ([...this.#subs.values()].some((l) => l.some((x) => x.conversation_id === conv.id))) return;
    this.#add(row);
    this.ctx.write(() => this.ctx.store.insertSubscription(row));
  }

  #end(conv: Conversation, reason: string): void {
    for (const [k, list] of this.#subs) {
      const rest = list.filter((s) => s.conversation_id !== conv.id);
      if (rest.length === 0) this.#subs.delete(k);
      else this.#subs.set(k, rest);
    }
    this.ctx.write(() => this.ctx.store.deleteSubscription(conv.id));
    this.ctx.finish(conv, 'completed', reason);
  }

  /** Forwards an inform to the subscribers of its capability or of its sender. */
  #notify(m: AclMessage): void {
    const targets = [...(m.capability !== undefined ? (this.#subs.get(`cap:${m.capability}`) ?? []) : []), ...(this.#subs.get(`agent:${m.sender.toLowerCase()}`) ?? [])];
    for (const s of targets) {
      if (s.subscriber === m.sender) continue;
      const conv = this.ctx.open(s.conversation_id);
      if (!conv) continue;
      const isAgent = this.ctx.isAgent(s.subscriber);
      const note: AclMessage = {
        id: newMessageId(),
        performative: 'inform',
        sender: m.sender,
        receivers: isAgent ? [s.subscriber] : [],
        content: m.content,
        conversation_id: s.conversation_id,
        protocol: 'fipa-subscribe',
        in_reply_to: s.id,
        ...(m.ontology !== undefined && { ontology: m.ontology }),
        ...(m.language !== undefined && { language: m.language }),
        params: { 'X-notification-of': m.id },
        timestamp: iso(),
        chain: m.chain,
        ...(m.on_behalf_of !== undefined && { on_behalf_of: m.on_behalf_of }),
      };
      if (isAgent) {
        this.ctx.send(note, { newId: true }).catch((e: unknown) => this.ctx.log.warn({ subscription: s.id, err: describeError(e) }, 'could not notify a subscriber'));
      } else {
        if (conv.turns + 1 > conv.max_turns) {
          this.#end(conv, `turn limit reached: at most ${conv.max_turns} messages per conversation`);
          continue;
        }
        this.ctx.record(conv, note);
      }
    }
  }
}
