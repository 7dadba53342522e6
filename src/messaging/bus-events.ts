import { CaxtonError } from '../shared/errors.js';
import { isTerminal, type Conversation } from './conversation.js';
import type { AclMessage, ConversationId } from './message.js';

/** What the bus emits: a message it stored, or a conversation's new state. */
export type BusEvent =
  | { type: 'message'; conversation_id: ConversationId; message: AclMessage; routed_to: string[] }
  | { type: 'state'; conversation_id: ConversationId; conversation: Conversation };

/** Who hears the events: the bus itself (an EventEmitter), seen through the two calls used here. */
export interface EventSink {
  listenerCount(event: 'event'): number;
  emit(event: 'event', e: BusEvent): boolean;
}

type Waiter = (c?: Conversation) => void;

/**
 * The bus's events and the callers waiting for a conversation to end (POST /messages?wait,
 * `caxton message send --wait`). The engine emits a step's events once the step committed, so a
 * listener never hears of a message that a failed write dropped. A conversation's waiters wake on
 * its terminal state event, on close, at their timeout, or early when its reply could not be
 * stored for a full disk (`markUnstored`): they then get a 507 instead of waiting for a reply that
 * is not on disk.
 */
export class ConversationEvents {
  readonly #sink: EventSink;
  readonly #waiters = new Map<ConversationId, Set<Waiter>>();
  /** Conversations with an acknowledgement not stored for a full disk, and how many. */
  readonly #unstored = new Map<ConversationId, number>();

  constructor(sink: EventSink) {
    this.#sink = sink;
  }

  /** Emits a committed step's events in order, and wakes whoever waits for a conversation that ended. */
  emit(events: readonly BusEvent[]): void {
    for (const e of events) {
      if (this.#sink.listenerCount('event') > 0) this.#sink.emit('event', e);
      // The conversation is copied for its waiters only: most conversations end with nobody waiting.
      if (e.type === 'state' && isTerminal(e.conversation.state) && this.#waiters.has(e.conversation_id))
        this.#wakeAll(e.conversation_id, { ...e.conversation });
    }
  }

  /**
   * Resolves with the conversation once it ends (its terminal event), or with `current()` when
   * `timeoutMs` passes, the signal aborts or the bus closes. `now` is its state when the caller
   * looked; throws 507 when a reply of it could not be stored.
   */
  async wait(
    now: Conversation,
    timeoutMs: number,
    current: () => Conversation | undefined,
    signal?: AbortSignal,
  ): Promise<Conversation> {
    const id = now.id;
    this.assertStored(id);
    if (isTerminal(now.state) || signal?.aborted) return { ...now };
    const c = await new Promise<Conversation>((resolve) => {
      let set = this.#waiters.get(id);
      if (!set) this.#waiters.set(id, (set = new Set()));
      const done: Waiter = (c) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        set.delete(done);
        resolve(c ?? { ...(current() ?? now) });
      };
      const onAbort = () => done();
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      signal?.addEventListener('abort', onAbort, { once: true });
      set.add(done);
    });
    this.assertStored(id);
    return c;
  }

  /** A reply of `conv` could not be stored (a full disk): counted until stored or given up, and its waiters wake now. */
  markUnstored(conv: ConversationId): void {
    this.#unstored.set(conv, (this.#unstored.get(conv) ?? 0) + 1);
    this.#wakeAll(conv);
  }

  /** One reply of `conv` marked unstored was stored at last (or given up). */
  settleUnstored(conv: ConversationId): void {
    const n = (this.#unstored.get(conv) ?? 1) - 1;
    if (n <= 0) this.#unstored.delete(conv);
    else this.#unstored.set(conv, n);
  }

  /** A reply of `id` could not be stored for a full disk: its waiter gets a 507. */
  assertStored(id: ConversationId): void {
    if (!this.#unstored.has(id)) return;
    throw new CaxtonError(
      'insufficient_storage',
      'the disk holding the data dir is full: the agent answered, but its reply could not be stored. The delivery stays pending and its reply is stored once there is room (or it is delivered again after a restart); free some space on the server, then read the conversation',
      { retry_after: 30, conversation_id: id },
    );
  }

  /** The bus closed: every waiter gets the conversation as it is now. */
  close(): void {
    for (const [, ws] of this.#waiters) for (const w of ws) w();
    this.#waiters.clear();
  }

  #wakeAll(conv: ConversationId, c?: Conversation): void {
    const ws = this.#waiters.get(conv);
    if (!ws) return;
    this.#waiters.delete(conv);
    for (const w of ws) w(c);
  }
}
