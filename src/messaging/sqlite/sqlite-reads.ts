import { CaxtonError } from '../../shared/errors.js';
import { COPY_ROOT } from '../../shared/objects.js';
import {
  deliveryView,
  withFailed,
  type AclMessage,
  type BusReads,
  type Conversation,
  type ConversationFilter,
  type ConversationId,
  type DeadLetterFilter,
  type DeliveryView,
  type MessageFilter,
  type Page,
  type StoredMessage,
} from '../index.js';
import type { MessageStore } from './sqlite-message-store.js';

/** What the reads need from the bus: its write barrier, its open conversations and its store. */
export interface ReadSources {
  /** Resolves once every write accepted so far has committed (a read never misses an accepted message). */
  settled(): Promise<void>;
  /** The conversation as the bus holds it (open ones in memory, the rest from the store). */
  conversation(id: ConversationId): Conversation | undefined;
  /** Resolves once every open conversation has its row (some are kept in memory until they end). */
  conversationRows(): Promise<void>;
  store: MessageStore;
}

/**
 * The read side of messaging (REST GET routes, `caxton conversations`, `caxton dlq`): each read
 * first waits for the writes in flight, so what a caller was told is accepted is also readable.
 * Reads never change state; replaying a dead letter is the bus's (`MessageBus.replay`).
 */
export class MessageReads implements BusReads {
  readonly #src: ReadSources;

  constructor(src: ReadSources) {
    this.#src = src;
  }

  async getConversation(
    id: string,
    opts: { limit?: number; offset?: number } = {},
  ): Promise<{ conversation: Conversation; messages: StoredMessage[] }> {
    await this.#src.settled();
    const c = this.#src.conversation(id as ConversationId);
    if (!c) throw new CaxtonError('conversation_not_found', `no conversation with id "${id}"`, { id });
    const limit = opts.limit ?? 1000;
    const offset = opts.offset ?? 0;
    const messages = this.#src.store.messagesOf(id, limit, offset);
    const all = offset === 0 && messages.length < limit ? messages : this.#src.store.messagesOf(id, 100_000, 0);
    return { conversation: withFailed({ ...c }, all), messages };
  }

  async listConversations(
    q: ConversationFilter & { limit?: number; offset?: number } = {},
  ): Promise<Page<Conversation>> {
    await this.#src.settled();
    await this.#src.conversationRows();
    return this.#src.store.listConversations({ ...q, limit: q.limit ?? 50, offset: q.offset ?? 0 });
  }

  async getMessage(id: string): Promise<(StoredMessage & { deliveries: DeliveryView[] }) | undefined> {
    await this.#src.settled();
    const s = this.#src.store.getMessage(id);
    return s && { ...COPY_ROOT, ...s, deliveries: this.#src.store.deliveriesOf(id).map(deliveryView) };
  }

  /** Messages newest first, narrowed by the filter. */
  async listMessages(q: MessageFilter & { limit?: number; offset?: number } = {}): Promise<Page<StoredMessage>> {
    await this.#src.settled();
    const { limit, offset, ...filter } = q;
    return this.#src.store.listMessages(filter, limit ?? 50, offset ?? 0);
  }

  async deadLetters(
    q: DeadLetterFilter & { limit?: number; offset?: number } = {},
  ): Promise<Page<DeliveryView & { message: AclMessage }>> {
    await this.#src.settled();
    const { limit, offset, ...filter } = q;
    const page = this.#src.store.deadLetters(limit ?? 50, offset ?? 0, filter);
    return {
      total: page.total,
      items: page.items.map((d) => ({ ...deliveryView(d), message: this.#messageOf(d) })),
    };
  }

  async deadLetter(id: number): Promise<DeliveryView & { message: AclMessage }> {
    await this.#src.settled();
    const d = this.#src.store.getDelivery(id);
    if (!d || d.state !== 'dead') throw new CaxtonError('not_found', `no dead letter with id ${id}`, { id });
    return { ...deliveryView(d), message: this.#messageOf(d) };
  }

  // A delivery row references its message by a foreign key (sqlite-message-store.ts): the message is always there.
  #messageOf(d: { message_id: string }): AclMessage {
    return this.#src.store.getMessage(d.message_id)!.message;
  }
}
