import { storeWriteError, type GroupCommit, type JoinedWrite } from '../../storage/index.js';
import {
  endless,
  isTerminal,
  type AclMessage,
  type Answer,
  type Conversation,
  type ConversationId,
  type DeliveryChange,
  type DeliveryRow,
  type EngineStep,
  type MessageId,
  type StepStore,
  type StoredMessage,
  type SubscriptionRow,
} from '../index.js';
import type { MessageStore } from './sqlite-message-store.js';

const NO_SUBSCRIPTIONS: SubscriptionRow[] = Object.freeze([]) as unknown as SubscriptionRow[];

/**
 * The engine's step store on one node: the data dir's SQLite behind the group commit. Open
 * conversations live in memory (the process is the only writer); a step changes them in place and
 * queues its row writes, which commit with the other steps of the same turn of the event loop.
 * A step whose commit fails (a full disk) is undone: its conversation is put back as it was and
 * nothing it did is handed out or emitted. Steps of one conversation run one at a time, so each
 * sees what the one before it decided, committed or not yet.
 */
export class SqliteSteps implements StepStore {
  /**
   * A one-way conversation's row is written once, by the step that ends it (ADR 0080): until then
   * it is an open conversation in memory (`#kept`), and its message and delivery rows are on disk.
   */
  readonly defersOneWay = true;
  readonly #store: MessageStore;
  readonly #commit: GroupCommit;
  /** Open conversations (terminal ones are read from the store). */
  readonly open = new Map<ConversationId, Conversation>();
  /** Conversations changed since the last commit (saved in it: `saveDirty`). */
  readonly #dirty = new Set<Conversation>();
  /**
   * Conversations that ended since the last commit: until it lands the store still holds their
   * previous row, and a step that runs next must see the ended state, not read that row back.
   */
  readonly #ended = new Map<ConversationId, Conversation>();
  /**
   * Open conversations with no row yet: one-way conversations kept with their message. A list
   * read writes their rows first (`writeKept`); a restart rebuilds them from their message
   * (`MessageBus`'s recovery).
   */
  readonly #kept = new Set<Conversation>();
  /** Pending deliveries per conversation. */
  readonly #outstanding = new Map<string, number>();
  #subscriptions: SubscriptionRow[] = [];
  /**
   * Conversations with a step running, each with the steps waiting behind it (null: none yet, so
   * an uncontended step allocates nothing for its turn).
   */
  readonly #locks = new Map<string, (() => void)[] | null>();
  /**
   * The conversation whose step is running within an `inConversationNow` call right now: a step
   * that returns a value holds its conversation only for that call, which this field marks
   * without a `#locks` entry (added only when another step of it asks meanwhile).
   */
  #running: string | undefined;
  #lastDelivery = 0;
  /**
   * The pending delivery rows this process wrote, as committed: a step about one of them (its
   * acknowledgement, retry or dead letter) reads it here instead of from SQLite, as the process is
   * the only writer. A row leaves when it stops being pending; rows a previous run left are read
   * from the store.
   */
  readonly #pendingRows = new Map<number, DeliveryRow>();
  /** Told each message stored and conversation ended (retention runs every so many). */
  readonly #counted: () => void;

  constructor(store: MessageStore, commit: GroupCommit, counted: () => void = () => {}) {
    this.#store = store;
    this.#commit = commit;
    this.#counted = counted;
  }

  /** Loads the open conversations and subscriptions a previous run left; a damaged conversation row is told to `onSkipped`. */
  load(onSkipped: (id: string, reason: string) => void): void {
    for (const c of this.#store.openConversations(onSkipped)) this.open.set(c.id, c);
    this.#subscriptions = this.#store.subscriptions();
    this.#lastDelivery = this.#store.lastDeliveryId();
  }

  /** A delivery a previous run left pending (or a replayed one) counts in its conversation. */
  pending(conversation: string): void {
    this.#outstanding.set(conversation, (this.#outstanding.get(conversation) ?? 0) + 1);
  }

  /** Saves the conversations steps changed: runs inside every group commit's transaction. */
  saveDirty(): void {
    for (const c of this.#dirty) this.#store.saveConversation(c);
  }

  /** After a group commit. */
  committed(): void {
    this.#dirty.clear();
    this.#ended.clear();
  }

  conversation(id: string): Conversation | undefined {
    return (
      this.open.get(id as ConversationId) ?? this.#ended.get(id as ConversationId) ?? this.#store.getConversation(id)
    );
  }

  inConversation<T>(id: string, fn: (s: EngineStep) => Answer<T>): Promise<T> {
    return this.inConversationNow(id, fn);
  }

  /**
   * A step of a free conversation runs within this call, and one that returns its result as a
   * value holds the conversation only for that call; a step waiting for its turn, or returning a
   * promise, continues asynchronously. Either way the result is handed back once the commit lands.
   */
  inConversationNow<T>(id: string, fn: (s: EngineStep) => Answer<T>): Promise<T> {
    if (this.#running === id || this.#locks.has(id)) return this.#afterTurn(id, fn);
    const outer = this.#running;
    this.#running = id;
    const step = new SqliteStep(this, this.#store, id);
    let out: Answer<T>;
    try {
      out = fn(step);
    } catch (e) {
      this.#running = outer;
      step.undo();
      this.#releaseNow(id);
      return Promise.reject(e);
    }
    this.#running = outer;
    if (out instanceof Promise) {
      // Held until the promise settles: from here on the lock is an entry of `#locks`.
      if (!this.#locks.has(id)) this.#locks.set(id, null);
      return this.#finishing(id, step, out);
    }
    this.#releaseNow(id);
    return this.#committing(step, out);
  }

  /** A step that held its conversation only within the call ended: a step that asked meanwhile is next. */
  #releaseNow(id: string): void {
    if (this.#locks.has(id)) this.#release(id);
  }

  /** Waits for the conversation's turn (handed by the step before it, `#release`, in the order they asked), then runs the step. */
  async #afterTurn<T>(id: string, fn: (s: EngineStep) => Answer<T>): Promise<T> {
    let waiting = this.#locks.get(id);
    if (!waiting) this.#locks.set(id, (waiting = []));
    await new Promise<void>((r) => waiting.push(r));
    const step = new SqliteStep(this, this.#store, id);
    let out: T;
    try {
      const r = fn(step);
      out = r instanceof Promise ? await r : r;
    } catch (e) {
      step.undo();
      throw e;
    } finally {
      this.#release(id);
    }
    return this.#committing(step, out);
  }

  /** The rest of a step that returned a promise: the conversation is held until it settles. */
  async #finishing<T>(id: string, step: SqliteStep, pending: Promise<T>): Promise<T> {
    let out: T;
    try {
      out = await pending;
    } catch (e) {
      step.undo();
      throw e;
    } finally {
      this.#release(id);
    }
    return this.#committing(step, out);
  }

  /** `out` once the step's writes committed; a step whose commit failed (a full disk) is undone and fails. */
  #committing<T>(step: SqliteStep, out: T): Promise<T> {
    // The batch's one promise: what failed in it is named per step.
    return this.#commit.join(step).then(
      (failed) => {
        if (failed?.has(step)) {
          step.undo();
          throw failed.get(step);
        }
        step.done();
        return out;
      },
      (e: unknown) => {
        step.undo();
        throw e;
      },
    );
  }

  /** The conversation's next waiting step runs, or nothing holds it any more. */
  #release(id: string): void {
    const next = this.#locks.get(id)?.shift();
    if (next) next();
    else this.#locks.delete(id);
  }

  async expired(
    now: string,
    limit: number,
    fn: (s: EngineStep & { readonly conversation: Conversation }) => Promise<void>,
  ): Promise<number> {
    const t = Date.parse(now);
    const due = [...this.open.values()]
      .filter((c) => c.expires_at !== null && Date.parse(c.expires_at) <= t && !endless(c.protocol))
      .slice(0, limit);
    let handled = 0;
    for (const c of due) {
      await this.inConversation(c.id, async (s) => {
        const conv = s.conversation;
        // Ended or moved meanwhile by a step that ran first.
        if (!conv || isTerminal(conv.state) || conv.expires_at === null || Date.parse(conv.expires_at) > Date.now())
          return;
        handled++;
        await fn(s as EngineStep & { readonly conversation: Conversation });
      });
    }
    return handled;
  }

  async retry(id: number, attempts: number, nextAt: number, error: string, now: string): Promise<boolean> {
    await this.#commit.run(() => this.#store.retry(id, attempts, nextAt, error, now));
    const row = this.#pendingRows.get(id);
    if (row) this.#pendingRows.set(id, { ...row, attempts, next_at: nextAt, last_error: error, updated_at: now });
    return true;
  }

  getMessage(id: string): StoredMessage | undefined {
    return this.#store.getMessage(id);
  }

  getConversation(id: string): Conversation | undefined {
    return this.conversation(id);
  }

  subscriptionsFor(capability: string | undefined, agent: string): SubscriptionRow[] {
    // Asked for every inform accepted: with no subscription at all, nothing is allocated.
    if (this.#subscriptions.length === 0) return NO_SUBSCRIPTIONS;
    const name = agent.toLowerCase();
    return this.#subscriptions.filter(
      (s) =>
        (s.capability !== null && s.capability === capability) || (s.agent !== null && s.agent.toLowerCase() === name),
    );
  }

  callerError(e: unknown): unknown {
    return storeWriteError(e) ?? e;
  }

  isDuplicateId(): boolean {
    // Sends of one id on this node wait for each other (the engine's in-flight map).
    return false;
  }

  // ---- what a step changes (SqliteStep calls these)

  nextDeliveryId(): number {
    return ++this.#lastDelivery;
  }

  /** A pending row this process wrote (undefined: not known here, read the store). */
  pendingRow(id: number): DeliveryRow | undefined {
    return this.#pendingRows.get(id);
  }

  /** A committed step wrote delivery rows: pending ones are remembered, the rest forgotten. */
  rowsCommitted(rows: RowList): void {
    for (let i = 0; i < rows.length; i += 2) {
      const id = rows[i] as number;
      const row = rows[i + 1] as DeliveryRow | undefined;
      if (row?.state === 'pending') this.#pendingRows.set(id, row);
      else this.#pendingRows.delete(id);
    }
  }

  outstanding(conversation: string): number {
    return this.#outstanding.get(conversation) ?? 0;
  }

  addOutstanding(conversation: string, n: number): void {
    const v = (this.#outstanding.get(conversation) ?? 0) + n;
    if (v <= 0) this.#outstanding.delete(conversation);
    else this.#outstanding.set(conversation, v);
  }

  /**
   * The messages of `conversation` that steps stored and that wait for the next commit, oldest
   * first. Steps of one conversation run one at a time, so they are those of its steps queued in
   * the group commit (once it lands, the store has them). Looked up here, where a protocol reads
   * its conversation (rarely), rather than listed per message stored (on every one).
   */
  uncommitted(conversation: string, into: StoredMessage[]): void {
    for (const w of this.#commit.queued) if (w instanceof SqliteStep) w.storedIn(conversation, into);
  }

  /** A one-way conversation opened by a step: open in memory, with no row until a step saves it. */
  keep(c: Conversation): void {
    this.open.set(c.id, c);
    this.#kept.add(c);
  }

  isKept(c: Conversation): boolean {
    return this.#kept.has(c);
  }

  /**
   * Writes the rows of the conversations kept with their message, as they are now, and resolves
   * once they committed: a read of the table (a list) then sees every conversation, as it would
   * had each row been written at its accept. Fails as a sender's write would (a full disk): the
   * list would otherwise miss conversations whose messages were accepted.
   */
  writeKept(): Promise<void> {
    if (this.#kept.size === 0) return Promise.resolve();
    let written: Conversation[] = [];
    return this.#commit
      .run(() => {
        written = [...this.#kept];
        for (const c of written) this.#store.saveConversation(c);
      })
      .then(
        () => {
          for (const c of written) this.#kept.delete(c);
        },
        (e: unknown) => {
          throw this.callerError(e);
        },
      );
  }

  save(c: Conversation): void {
    // Its row is written with this step's commit (undone with the step if that fails).
    this.#kept.delete(c);
    if (isTerminal(c.state)) {
      this.#ended.set(c.id, c);
      if (this.open.delete(c.id)) this.#counted();
    } else {
      this.#ended.delete(c.id);
      this.open.set(c.id, c);
    }
    this.#dirty.add(c);
  }

  forget(c: Conversation): void {
    this.#kept.delete(c);
    this.open.delete(c.id);
    this.#ended.delete(c.id);
    this.#dirty.delete(c);
  }

  counted(): void {
    this.#counted();
  }

  subscribed(row: SubscriptionRow): void {
    if (!this.#subscriptions.some((s) => s.conversation_id === row.conversation_id)) this.#subscriptions.push(row);
  }

  unsubscribed(conversation: string): void {
    this.#subscriptions = this.#subscriptions.filter((s) => s.conversation_id !== conversation);
  }
}

/**
 * Delivery rows a step read or wrote, as id, row, id, row…: a step touches one or two, where a
 * Map per step would cost more than the search.
 */
type RowList = (number | DeliveryRow | undefined)[];

/** Where `id`'s row sits in `rows` (-1: not there). */
function rowAt(rows: RowList | undefined, id: number): number {
  if (rows) for (let i = 0; i < rows.length; i += 2) if (rows[i] === id) return i + 1;
  return -1;
}

/** Sets `id`'s row in `rows` (created on the first). */
function setRow(rows: RowList | undefined, id: number, row: DeliveryRow | undefined): RowList {
  if (!rows) return [id, row];
  const at = rowAt(rows, id);
  if (at >= 0) rows[at] = row;
  else rows.push(id, row);
  return rows;
}

/** What a step writes, each with its arguments after it in `SqliteStep.#writes` (no closure per write). */
const enum W {
  Message,
  Delivery,
  Ack,
  Other,
}

/** How many entries of `SqliteStep.#writes` each kind of write takes, its kind included. */
const WIDTH: Readonly<Record<W, number>> = { [W.Message]: 3, [W.Delivery]: 5, [W.Ack]: 3, [W.Other]: 2 };

/**
 * One step: reads answer from memory and the store at once, writes wait for the step's commit
 * (so a method returns its value, not a promise: the engine then never suspends for it).
 */
class SqliteStep implements EngineStep, JoinedWrite {
  readonly #steps: SqliteSteps;
  readonly #store: MessageStore;
  readonly #id: string;
  /** Whether the step has looked at its conversation (a step starting one never needs to read it). */
  #loaded = false;
  #conversation: Conversation | undefined;
  /** The conversation as it was, to put back when the step fails. */
  #before: Conversation | undefined;
  #wasOpen = false;
  /** Whether the conversation had no row yet when the step read it (kept with its message). */
  #wasKept = false;
  #created: Conversation | undefined;
  /** The step's row writes in order: a kind (`W`) followed by its arguments. */
  readonly #writes: unknown[] = [];
  #after: (() => void)[] | undefined;
  #outstanding = 0;
  /** Delivery rows as the step first read them. */
  #rows: RowList | undefined;
  /** Delivery rows as the step leaves them (undefined: not pending any more). */
  #written: RowList | undefined;

  constructor(steps: SqliteSteps, store: MessageStore, id: string) {
    this.#steps = steps;
    this.#store = store;
    this.#id = id;
  }

  get conversation(): Conversation | undefined {
    if (!this.#loaded) {
      this.#loaded = true;
      const c = this.#steps.conversation(this.#id);
      this.#conversation = c;
      this.#before = c && { ...c, participants: [...c.participants] };
      this.#wasOpen = c !== undefined && this.#steps.open.get(c.id) === c;
      this.#wasKept = c !== undefined && this.#steps.isKept(c);
    }
    return this.#conversation;
  }

  messages(): Promise<StoredMessage[]> {
    const stored = this.#store.messagesOf(this.#id, 100_000);
    // A step's messages stay listed here a moment after their commit: each is counted once.
    const ids = new Set(stored.map((s) => s.message.id));
    const unsaved: StoredMessage[] = [];
    this.#steps.uncommitted(this.#id, unsaved);
    this.storedIn(this.#id, unsaved);
    return Promise.resolve([...stored, ...unsaved.filter((s) => !ids.has(s.message.id))]);
  }

  /** The messages this step stored, if it is a step of `conversation`. */
  storedIn(conversation: string, into: StoredMessage[]): void {
    if (conversation !== this.#id) return;
    const w = this.#writes;
    for (let i = 0; i < w.length; i += WIDTH[w[i] as W])
      if (w[i] === W.Message)
        into.push({ message: w[i + 1] as AclMessage, routed_to: [...(w[i + 2] as readonly string[])] });
  }

  saveConversation(c: Conversation): void {
    // A conversation the step never read is one it created, unless the process holds it open.
    const existing = this.#loaded || this.#steps.open.get(c.id) === c ? this.conversation : undefined;
    if (c !== existing && this.#created === undefined) this.#created = c;
    this.#steps.save(c);
  }

  insertMessage(m: AclMessage, routedTo: readonly string[], opening?: Conversation): void {
    if (opening) {
      // Dated by its message, the one record of it a restart finds (MessageBus rebuilds it from it).
      opening.created_at = opening.updated_at = m.timestamp;
      this.#created ??= opening;
      this.#steps.keep(opening);
    }
    this.#steps.counted();
    this.#writes.push(W.Message, m, [...routedTo]);
  }

  insertDelivery(messageId: string, receiver: string, now: string): number {
    const id = this.#steps.nextDeliveryId();
    this.#writes.push(W.Delivery, id, messageId, receiver, now);
    this.#written = setRow(this.#written, id, {
      id,
      message_id: messageId as MessageId,
      receiver,
      state: 'pending',
      attempts: 0,
      next_at: 0,
      last_error: null,
      updated_at: now,
    });
    this.#count(1);
    return id;
  }

  delivery(id: number): DeliveryRow | undefined {
    return this.#row(id);
  }

  #row(id: number): DeliveryRow | undefined {
    const at = rowAt(this.#rows, id);
    if (at >= 0) return this.#rows![at] as DeliveryRow | undefined;
    const row = this.#steps.pendingRow(id) ?? this.#store.getDelivery(id);
    this.#rows = setRow(this.#rows, id, row);
    return row;
  }

  setDelivery(id: number, to: DeliveryChange, now: string): void {
    const row = this.#row(id);
    const was = row?.state;
    if (was === 'pending' && to.state !== 'pending') this.#count(-1);
    if (was !== 'pending' && to.state === 'pending') this.#count(1);
    // The row as each write below leaves it, while it stays pending.
    let next: DeliveryRow | undefined;
    if (to.state === 'done') this.#writes.push(W.Ack, id, now);
    else if (to.state === 'dead') this.#other(() => this.#store.dead(id, to.attempts, to.last_error ?? '', now));
    else if (to.receiver !== undefined) {
      const receiver = to.receiver;
      this.#other(() => this.#store.reroute(id, receiver, now));
      next = row && { ...row, receiver, updated_at: now };
    } else if (was === 'dead') {
      this.#other(() => this.#store.replay(id, now));
      next = row && { ...row, state: 'pending', attempts: 0, next_at: 0, updated_at: now };
    } else {
      this.#other(() => this.#store.retry(id, to.attempts, to.next_at ?? 0, to.last_error ?? '', now));
      next = row && {
        ...row,
        state: 'pending',
        attempts: to.attempts,
        next_at: to.next_at ?? 0,
        last_error: to.last_error ?? '',
        updated_at: now,
      };
    }
    this.#written = setRow(this.#written, id, next);
  }

  outstanding(): number {
    return this.#steps.outstanding(this.#id);
  }

  insertSubscription(row: SubscriptionRow): void {
    this.#other(() => this.#store.insertSubscription(row));
    (this.#after ??= []).push(() => this.#steps.subscribed(row));
  }

  deleteSubscription(conversationId: string): void {
    this.#other(() => this.#store.deleteSubscription(conversationId));
    (this.#after ??= []).push(() => this.#steps.unsubscribed(conversationId));
  }

  /** A write off the one-way path (retry, dead letter, reroute, replay, subscriptions): a closure is cheap enough there. */
  #other(write: () => void): void {
    this.#writes.push(W.Other, write);
  }

  /** Runs the step's row writes in order (inside the group commit's transaction). */
  run(): void {
    const w = this.#writes;
    const store = this.#store;
    for (let i = 0; i < w.length;) {
      switch (w[i] as W) {
        case W.Message:
          store.insertMessage(w[i + 1] as AclMessage, w[i + 2] as readonly string[]);
          i += 3;
          break;
        case W.Delivery:
          store.insertDelivery(w[i + 1] as number, w[i + 2] as MessageId, w[i + 3] as string, w[i + 4] as string);
          i += 5;
          break;
        case W.Ack:
          store.ack(w[i + 1] as number, w[i + 2] as string);
          i += 3;
          break;
        default:
          (w[i + 1] as () => void)();
          i += 2;
      }
    }
  }

  /** The step committed. */
  done(): void {
    if (this.#written) this.#steps.rowsCommitted(this.#written);
    if (this.#after) for (const a of this.#after) a();
  }

  /** The step failed: its conversation is as before, its messages and deliveries never were. */
  undo(): void {
    this.#steps.addOutstanding(this.#id, -this.#outstanding);
    if (this.#created) this.#steps.forget(this.#created);
    const c = this.#conversation;
    if (c && this.#before) {
      Object.assign(c, this.#before);
      if (this.#wasOpen) this.#steps.open.set(c.id, c);
      if (this.#wasKept) this.#steps.keep(c);
    }
  }

  #count(n: number): void {
    this.#outstanding += n;
    this.#steps.addOutstanding(this.#id, n);
  }
}
