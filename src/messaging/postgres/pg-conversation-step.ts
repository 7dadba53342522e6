/**
 * One conversation step of the PostgreSQL StepStore (pg-message-store.ts): the engine's reads and
 * writes while it holds the conversation. Reads that must see the rows go to PostgreSQL at once
 * (`b.now`); writes join the step's statement batch (`b.later`), committed with the step's group.
 */
import { messageRow, type AclMessage, type Conversation, type ConversationStep, type DeliveryRow } from '../index.js';
import type { DeliveryChange, StoredMessage, SubscriptionRow } from '../index.js';
import { scrubSecrets } from '../../shared/secrets.js';
import { escapeLiteral, type StatementBatch } from '../../storage/pg/index.js';
import { appendAttemptError, deliveryOf, endsAsKept, openingJson, storedOf } from './pg-message-tables.js';

/** Where a step's conversation is: its row, kept with its message (no row yet), or nowhere yet. */
export type Held = 'row' | 'kept' | 'none';

/** The outstanding count read with BEGIN, and how the step's own writes changed it since. */
export interface PendingCount {
  base: number;
  delta: number;
  /** False once the step changed a row whose earlier state it does not know: outstanding() queries again. */
  valid: boolean;
}

/** The delivery row a step locked and read with BEGIN (inConversation's opts.delivery). */
export interface LockedDelivery {
  id: number;
  row: Record<string, unknown> | undefined;
  /**
   * The row is as the node read it when it took the delivery, not read under the lock: the step's
   * done-marking of it is not written but kept (`optimisticDone`), for the store to write with a
   * condition that the row is still as read (PgMessageStore's optimistic steps).
   */
  optimistic?: boolean;
}

/** An optimistic step's done-marking (LockedDelivery.optimistic), as the store writes it. */
export interface OptimisticDone {
  id: number;
  attempts: number;
  at: string;
}

/**
 * What the first hand-out of a delivery that marks its one-way conversation kept carries, so that
 * the node taking it can acknowledge it without reading its row (jetstream-queue.ts): the row's
 * `updated_at` as inserted (the done-marking's condition) and the conversation's JSON as its
 * message keeps it.
 */
export interface KeptHandOut {
  at: string;
  opening: string;
}

/** What a step asks of its store. */
export interface StepHost {
  /** A delivery id from the store's reserved block, if one is left. */
  takeId(): number | undefined;
  /**
   * A delivery this step inserted marks its conversation kept: the row's updated_at and the
   * conversation's JSON as written, for its first hand-out to carry (KeptHandOut).
   */
  keptInserted(id: number, hint: KeptHandOut): void;
  /** The SQL counting the pending deliveries of the conversations `where` selects. */
  pendingSql(where: string): string;
}

export class PgConversationStep implements ConversationStep {
  readonly conversation: Conversation | undefined;
  readonly #s: string;
  readonly #b: StatementBatch;
  readonly #id: string;
  readonly #held: Held;
  #locked: LockedDelivery | undefined;
  readonly #pending: PendingCount | undefined;
  readonly #host: StepHost;
  readonly #lockedState: DeliveryRow['state'] | undefined;
  /** The conversation of each message this step inserted (whether its deliveries count as this conversation's). */
  readonly #inserted = new Map<string, string>();
  /** The deadline (epoch ms) and JSON of the one-way conversation each message this step inserted keeps. */
  readonly #keptUntil = new Map<string, { until: number; json: string }>();
  /** Deliveries this step finished (done or dead). */
  #finished = 0;
  #exists: boolean;
  /** The kept conversation as the step found it (its steps change `conversation` in place). */
  readonly #opened: Conversation | undefined;
  readonly #optimistic: boolean;
  /** The done-marking of an optimistic step's delivery, not written (see LockedDelivery.optimistic). */
  optimisticDone: OptimisticDone | undefined;
  /** An optimistic step read its delivery again after marking it done: its commit cannot stand for what it read. */
  #strayed = false;

  constructor(
    schema: string,
    b: StatementBatch,
    id: string,
    conversation: Conversation | undefined,
    held: Held,
    locked: LockedDelivery | undefined,
    pending: PendingCount | undefined,
    host: StepHost,
  ) {
    this.conversation = conversation;
    this.#s = schema;
    this.#b = b;
    this.#id = id;
    this.#held = held;
    this.#locked = locked;
    this.#pending = pending;
    this.#host = host;
    this.#lockedState = locked?.row?.state as DeliveryRow['state'] | undefined;
    this.#optimistic = locked?.optimistic === true;
    this.#exists = held === 'row';
    this.#opened =
      held === 'kept' && conversation ? { ...conversation, participants: [...conversation.participants] } : undefined;
  }

  async messages(): Promise<StoredMessage[]> {
    const r = await this.#b.now<{ body: string; routed_to: string }>(
      `SELECT body, routed_to FROM ${this.#s}.messages WHERE conversation_id = $1 ORDER BY seq`,
      [this.#id],
    );
    return r.rows.map(storedOf);
  }

  /** An optimistic step that marked its delivery done and read nothing that depends on that write having been made. */
  get optimisticClean(): boolean {
    return this.optimisticDone !== undefined && !this.#strayed;
  }

  /** The ids of the messages this step inserted. */
  get inserted(): string[] {
    return [...this.#inserted.keys()];
  }

  async storedMessage(id: string): Promise<StoredMessage | undefined> {
    const r = await this.#b.now<{ body: string; routed_to: string }>(
      `SELECT body, routed_to FROM ${this.#s}.messages WHERE id = $1`,
      [id],
    );
    return r.rows[0] && storedOf(r.rows[0]);
  }

  async saveConversation(v: Conversation): Promise<void> {
    const s = this.#s;
    // The step holds the conversation's lock and read its row with BEGIN: whether the row exists
    // is known, so it is an INSERT or an UPDATE, never an upsert; a group's merge into one
    // statement of each (the UPDATE from VALUES, like a done-marking).
    const fresh = !this.#exists;
    // Completed by its one delivery, finished here, and nothing else changed: the reads derive
    // it from that delivery, done (keptJsonSql), and no row is written (ADR 0138).
    if (fresh && this.#held === 'kept' && this.#finished > 0 && this.#opened && endsAsKept(this.#opened, v)) return;
    this.#exists = true;
    // A kept conversation's row is written: its delivery stops marking it kept, unless this step
    // finished that delivery (an acknowledgement or a dead letter: the delivery is not pending).
    if (fresh && this.#held === 'kept' && this.#finished === 0)
      this.#b.later(
        `UPDATE ${s}.deliveries AS d SET kept_until = NULL FROM ${s}.messages m WHERE m.id = d.message_id AND m.conversation_id = $1 AND d.kept_until IS NOT NULL`,
        [this.#id],
      );
    this.#b.later(
      fresh
        ? `INSERT INTO ${s}.conversations (id, protocol, state, initiator, participants, capability, turns, max_turns, created_at, updated_at, expires_at, reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`
        : `UPDATE ${s}.conversations AS c SET protocol = v.protocol, state = v.state, participants = v.participants, turns = v.turns,
             max_turns = v.max_turns, updated_at = v.updated_at, expires_at = v.expires_at, reason = v.reason
           FROM (VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::integer, $8::integer, $9::text, $10::text, $11::text, $12::text))
             AS v(id, protocol, state, initiator, participants, capability, turns, max_turns, created_at, updated_at, expires_at, reason)
           WHERE c.id = v.id`,
      [
        v.id,
        v.protocol,
        v.state,
        v.initiator,
        JSON.stringify(v.participants),
        v.capability,
        v.turns,
        v.max_turns,
        v.created_at,
        v.updated_at,
        v.expires_at,
        v.reason === null ? null : scrubSecrets(v.reason),
      ],
    );
  }

  async insertMessage(m: AclMessage, routedTo: readonly string[], opening?: Conversation): Promise<void> {
    this.#inserted.set(m.id, m.conversation_id);
    const json = opening === undefined ? null : openingJson(opening);
    if (opening?.expires_at) this.#keptUntil.set(m.id, { until: Date.parse(opening.expires_at), json: json! });
    this.#b.later(
      `INSERT INTO ${this.#s}.messages (id, conversation_id, performative, sender, created_at, body, routed_to, conversation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [...messageRow(m, routedTo), json],
    );
  }

  async delivery(did: number): Promise<DeliveryRow | undefined> {
    // Locked and read with BEGIN (inConversation's opts.delivery), unless written since.
    const locked = this.#locked;
    if (locked?.id === did) return locked.row && deliveryOf(locked.row);
    if (this.optimisticDone?.id === did) this.#strayed = true;
    const r = (await this.#b.now(`SELECT * FROM ${this.#s}.deliveries WHERE id = $1 FOR UPDATE`, [did])).rows[0] as
      Record<string, unknown> | undefined;
    return r && deliveryOf(r);
  }

  async setDelivery(did: number, to: DeliveryChange, now: string): Promise<void> {
    const pending = this.#pending;
    if (pending?.valid) {
      // The count read with BEGIN stays right for the locked row, whose earlier state is known.
      if (this.#locked?.id === did && this.#lockedState !== undefined)
        pending.delta += (to.state === 'pending' ? 1 : 0) - (this.#lockedState === 'pending' ? 1 : 0);
      else pending.valid = false;
    }
    const wasLocked = this.#locked?.id === did;
    if (wasLocked) this.#locked = undefined;
    if (to.state !== 'pending') this.#finished++;
    if (
      to.state === 'done' &&
      to.last_error === undefined &&
      to.receiver === undefined &&
      to.next_at === undefined &&
      to.publish_tag === undefined
    ) {
      if (wasLocked && this.#optimistic && this.optimisticDone === undefined) {
        this.optimisticDone = { id: did, attempts: to.attempts, at: now };
        return;
      }
      // A done-marking: one UPDATE from VALUES, which a group's done-markings share. It clears
      // the publish mark too, as every finishing write does: a finished row is never published
      // again, and the UPDATE writes the whole row anyway (its state is indexed, so it is never HOT).
      this.#b.later(
        `UPDATE ${this.#s}.deliveries AS d SET state = 'done', attempts = v.attempts, updated_at = v.at, unpublished_since = NULL
             FROM (VALUES ($1::bigint, $2::integer, $3::text)) AS v(id, attempts, at) WHERE d.id = v.id`,
        [did, to.attempts, now],
      );
      return;
    }
    const tag = to.publish_tag ?? null;
    this.#b.later(
      // A failed attempt (an error given) joins the row's `errors`, as in retry and dead below.
      // Back to pending from dead (a replay), a delivery no longer marks its conversation kept: the dead letter wrote its row.
      // A finished delivery (done or dead) is never published again: its publish mark goes, as with a done-marking.
      `UPDATE ${this.#s}.deliveries SET state = $1, attempts = $2, last_error = COALESCE($3, last_error), receiver = COALESCE($4, receiver), next_at = COALESCE($5, next_at), updated_at = $6,
             publish_tag = COALESCE($8, publish_tag),
             unpublished_since = CASE WHEN $8::text IS NOT NULL THEN $9::bigint WHEN $1 = 'pending' THEN unpublished_since END,
             kept_until = CASE WHEN state = 'pending' THEN kept_until END,
             errors = CASE WHEN $3::text IS NULL THEN errors ELSE ${appendAttemptError('$6', '$3')} END WHERE id = $7`,
      [
        to.state,
        to.attempts,
        to.last_error === undefined || to.last_error === null ? null : scrubSecrets(to.last_error),
        to.receiver ?? null,
        to.next_at ?? null,
        now,
        did,
        tag,
        Date.now(),
      ],
    );
  }

  async outstanding(): Promise<number> {
    const pending = this.#pending;
    if (pending?.valid) return pending.base + pending.delta;
    const sql = this.#host.pendingSql(`= ${escapeLiteral(this.#id)}`);
    return Number((await this.#b.now<{ n: string }>(sql, [])).rows[0]!.n);
  }

  async insertSubscription(r: SubscriptionRow): Promise<void> {
    this.#b.later(
      `INSERT INTO ${this.#s}.subscriptions (id, conversation_id, subscriber, capability, agent, content, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
      [r.id, r.conversation_id, r.subscriber, r.capability, r.agent, scrubSecrets(r.content), r.created_at],
    );
  }

  async deleteSubscription(cid: string): Promise<void> {
    this.#b.later(`DELETE FROM ${this.#s}.subscriptions WHERE conversation_id = $1`, [cid]);
  }

  async insertDelivery(messageId: string, receiver: string, now: string): Promise<number> {
    const pending = this.#pending;
    if (pending?.valid) {
      const of = this.#inserted.get(messageId);
      if (of === undefined) pending.valid = false;
      else if (of === this.#id) pending.delta++;
    }
    // No publish mark: the queue marks the row only should its publish fail (JetStreamQueue.publish).
    const reserved = this.#host.takeId();
    const keeps = this.#keptUntil.get(messageId);
    const kept = keeps?.until ?? null;
    let id = reserved;
    if (id !== undefined)
      this.#b.later(
        `INSERT INTO ${this.#s}.deliveries (id, message_id, receiver, state, updated_at, unpublished_since, kept_until) VALUES ($1, $2, $3, 'pending', $4, $5, $6)`,
        [id, messageId, receiver, now, null, kept],
      );
    else {
      const r = await this.#b.now<{ id: string }>(
        `INSERT INTO ${this.#s}.deliveries (message_id, receiver, state, updated_at, unpublished_since, kept_until) VALUES ($1, $2, 'pending', $3, $4, $5) RETURNING id`,
        [messageId, receiver, now, null, kept],
      );
      id = Number(r.rows[0]!.id);
    }
    if (keeps) this.#host.keptInserted(id, { at: now, opening: keeps.json });
    return id;
  }
}
