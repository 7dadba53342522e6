import { conversationScopeSql, messageScopeSql } from '../../auth/index.js';
import type { Db, Migration } from '../../storage/index.js';
import { scrubSecrets } from '../../shared/secrets.js';
import {
  MAX_ATTEMPT_ERRORS,
  messageRow,
  type AclMessage,
  type Conversation,
  type ConversationFilter,
  type DeadLetterFilter,
  type DeliveryRow,
  type MessageFilter,
  type MessageId,
  type Page,
  type StoredMessage,
  type SubscriptionRow,
} from '../index.js';

export const MESSAGING_MIGRATIONS: readonly Migration[] = [
  {
    id: 'messaging-001-create',
    sql: `
      CREATE TABLE messages (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        id              TEXT NOT NULL UNIQUE,
        conversation_id TEXT NOT NULL,
        performative    TEXT NOT NULL,
        sender          TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        body            TEXT NOT NULL,
        routed_to       TEXT NOT NULL
      );
      CREATE INDEX messages_conversation ON messages (conversation_id, seq);
      CREATE TABLE deliveries (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id  TEXT NOT NULL,
        receiver    TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_at     INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        updated_at  TEXT NOT NULL
      );
      CREATE INDEX deliveries_message ON deliveries (message_id);
      CREATE INDEX deliveries_open ON deliveries (state) WHERE state <> 'done';
      CREATE TABLE conversations (
        id           TEXT PRIMARY KEY,
        protocol     TEXT,
        state        TEXT NOT NULL,
        initiator    TEXT NOT NULL,
        participants TEXT NOT NULL,
        capability   TEXT,
        turns        INTEGER NOT NULL,
        max_turns    INTEGER NOT NULL,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        expires_at   TEXT,
        reason       TEXT
      );
      CREATE INDEX conversations_state ON conversations (state, updated_at);
      CREATE TABLE subscriptions (
        id              TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        subscriber      TEXT NOT NULL,
        capability      TEXT,
        agent           TEXT,
        content         TEXT NOT NULL,
        created_at      TEXT NOT NULL
      );
    `,
  },
  {
    // GET /api/v1/messages filters: index lookups, not scans of up to [messaging] max_messages rows
    // on the event loop (a filtered count over 500,000 rows took ~100 ms; with these, under 6 ms).
    // The price is on every write: ~1.3 µs more per message and delivery row in SQLite alone.
    id: 'messaging-002-message-filters',
    sql: `
      CREATE INDEX messages_sender ON messages (sender COLLATE NOCASE, seq);
      CREATE INDEX messages_performative ON messages (performative, seq);
      CREATE INDEX deliveries_receiver ON deliveries (receiver COLLATE NOCASE, message_id);
    `,
  },
  {
    // Each failed attempt's error with its time, newest last, at most MAX_ATTEMPT_ERRORS (JSON):
    // written by the same UPDATE that records the failure, so a failure costs no extra statement.
    id: 'messaging-003-attempts',
    sql: 'ALTER TABLE deliveries ADD COLUMN errors TEXT;',
  },
];

/**
 * SQLite's expression for the `errors` column with one more attempt (`?` the time, `?` the error)
 * appended and the oldest dropped beyond MAX_ATTEMPT_ERRORS.
 */
const APPEND_ERROR = `json_insert(CASE WHEN json_array_length(coalesce(errors, '[]')) >= ${MAX_ATTEMPT_ERRORS} THEN json_remove(errors, '$[0]') ELSE coalesce(errors, '[]') END, '$[#]', json_object('at', ?, 'error', ?))`;

/** A LIKE pattern matching `text` literally anywhere (with ESCAPE '\\'). */
const containing = (text: string): string => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

interface ConversationRow extends Omit<Conversation, 'participants'> {
  participants: string;
}

/** An SQLite placeholder for each value, pushed onto `args` in order. */
const param =
  (args: unknown[]) =>
  (v: string): string => (args.push(v), '?');

function conversationOf(r: ConversationRow): Conversation {
  return { ...r, participants: JSON.parse(r.participants) as string[] };
}

/**
 * The messaging tables in the data dir's SQLite: messages, deliveries (the durable queue and the
 * dead-letter queue), conversations and subscriptions. Every method is synchronous; writes are
 * meant to run inside the group commit (see group-commit.ts) so many messages share a transaction.
 */
export class MessageStore {
  readonly #s;
  /** Conversation objects whose row exists (written or read here). */
  readonly #known = new WeakSet<Conversation>();

  constructor(readonly db: Db) {
    this.#s = {
      insertMessage: db.prepare(
        'INSERT INTO messages (id, conversation_id, performative, sender, created_at, body, routed_to) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      insertDelivery: db.prepare(
        "INSERT INTO deliveries (id, message_id, receiver, state, updated_at) VALUES (?, ?, ?, 'pending', ?)",
      ),
      lastDelivery: db.prepare(
        "SELECT max(coalesce((SELECT max(id) FROM deliveries), 0), coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'), 0)) AS id",
      ),
      ack: db.prepare("UPDATE deliveries SET state = 'done', attempts = attempts + 1, updated_at = ? WHERE id = ?"),
      retry: db.prepare(
        `UPDATE deliveries SET state = 'pending', attempts = ?, next_at = ?, last_error = ?, updated_at = ?, errors = ${APPEND_ERROR} WHERE id = ?`,
      ),
      dead: db.prepare(
        `UPDATE deliveries SET state = 'dead', attempts = ?, last_error = ?, updated_at = ?, errors = ${APPEND_ERROR} WHERE id = ?`,
      ),
      discard: db.prepare("DELETE FROM deliveries WHERE id = ? AND state = 'dead'"),
      replay: db.prepare(
        "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = 0, updated_at = ? WHERE id = ? AND state = 'dead'",
      ),
      reroute: db.prepare('UPDATE deliveries SET receiver = ?, updated_at = ? WHERE id = ?'),
      upsertConversation: db.prepare(
        `INSERT INTO conversations (id, protocol, state, initiator, participants, capability, turns, max_turns, created_at, updated_at, expires_at, reason)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET protocol = excluded.protocol, state = excluded.state, participants = excluded.participants,
           turns = excluded.turns, max_turns = excluded.max_turns, updated_at = excluded.updated_at, expires_at = excluded.expires_at, reason = excluded.reason`,
      ),
      updateConversation: db.prepare(
        'UPDATE conversations SET protocol = ?, state = ?, participants = ?, turns = ?, max_turns = ?, updated_at = ?, expires_at = ?, reason = ? WHERE id = ?',
      ),
      insertSubscription: db.prepare(
        'INSERT OR IGNORE INTO subscriptions (id, conversation_id, subscriber, capability, agent, content, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      deleteSubscription: db.prepare('DELETE FROM subscriptions WHERE conversation_id = ?'),
      hasMessage: db.prepare('SELECT 1 FROM messages WHERE id = ?').pluck(),
      getMessage: db.prepare('SELECT body, routed_to FROM messages WHERE id = ?'),
      messagesOf: db.prepare(
        'SELECT body, routed_to FROM messages WHERE conversation_id = ? ORDER BY seq LIMIT ? OFFSET ?',
      ),
      lastMessagesOf: db.prepare(
        'SELECT body, routed_to FROM (SELECT seq, body, routed_to FROM messages WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq',
      ),
      getConversation: db.prepare('SELECT * FROM conversations WHERE id = ?'),
      openConversations: db.prepare("SELECT * FROM conversations WHERE state IN ('initiated', 'in_progress')"),
      openDeliveries: db.prepare("SELECT * FROM deliveries WHERE state = 'pending' ORDER BY id"),
      getDelivery: db.prepare('SELECT * FROM deliveries WHERE id = ?'),
      deliveriesOf: db.prepare('SELECT * FROM deliveries WHERE message_id = ? ORDER BY id'),
      deadLetters: db.prepare("SELECT * FROM deliveries WHERE state = 'dead' ORDER BY id LIMIT ? OFFSET ?"),
      deadCount: db.prepare("SELECT count(*) FROM deliveries WHERE state = 'dead'").pluck(),
      subscriptions: db.prepare('SELECT * FROM subscriptions ORDER BY created_at'),
    };
  }

  // ---- writes (run inside a transaction) ----

  // Rows are scrubbed of the configured secrets (ADR 0017): a last line of defence behind the
  // boundaries where outside text enters (a provider error quoted in a failure reply or dead letter).
  insertMessage(m: AclMessage, routedTo: readonly string[]): void {
    this.#s.insertMessage.run(...messageRow(m, routedTo));
  }

  /** A pending delivery under an id the bus chose (it numbers deliveries itself: `lastDeliveryId`), so a step knows it before its commit. */
  insertDelivery(id: number, messageId: MessageId, receiver: string, now: string): void {
    this.#s.insertDelivery.run(id, messageId, receiver, now);
  }

  /** The highest delivery id ever given (deleted rows included). */
  lastDeliveryId(): number {
    return Number((this.#s.lastDelivery.get() as { id: number }).id);
  }

  ack(id: number, now: string): void {
    this.#s.ack.run(now, id);
  }

  // A failed attempt is recorded here and only here: its error joins the row's `errors` list.
  retry(id: number, attempts: number, nextAt: number, error: string, now: string): void {
    const e = scrubSecrets(error);
    this.#s.retry.run(attempts, nextAt, e, now, now, e, id);
  }

  dead(id: number, attempts: number, error: string, now: string): void {
    const e = scrubSecrets(error);
    this.#s.dead.run(attempts, e, now, now, e, id);
  }

  /** Deletes the dead letters among `ids` (a row replayed meanwhile is not dead, and stays); returns those deleted. */
  discardDead(ids: readonly number[]): number[] {
    return ids.filter((id) => this.#s.discard.run(id).changes > 0);
  }

  /**
   * Deletes those of `ids` that are finished conversations with nothing of theirs pending or dead,
   * with their messages, deliveries and subscriptions (as retention would, now); returns how many.
   */
  dropSettledConversations(ids: readonly string[]): number {
    const settled = this.db.prepare(
      `SELECT 1 FROM conversations c WHERE c.id = ? AND c.state IN ('completed', 'failed', 'expired')
         AND NOT EXISTS (SELECT 1 FROM messages m JOIN deliveries d ON d.message_id = m.id WHERE m.conversation_id = c.id AND d.state <> 'done')`,
    );
    const steps = [
      'DELETE FROM deliveries WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = ?)',
      'DELETE FROM messages WHERE conversation_id = ?',
      'DELETE FROM subscriptions WHERE conversation_id = ?',
      'DELETE FROM conversations WHERE id = ?',
    ].map((sql) => this.db.prepare(sql));
    let n = 0;
    for (const id of new Set(ids)) {
      if (settled.get(id) === undefined) continue;
      for (const st of steps) st.run(id);
      n++;
    }
    return n;
  }

  replay(id: number, now: string): boolean {
    return this.#s.replay.run(now, id).changes > 0;
  }

  reroute(id: number, receiver: string, now: string): void {
    this.#s.reroute.run(receiver, now, id);
  }

  /** Inserts or updates a conversation. Rows this store wrote or read are updated in place (cheaper than an upsert). */
  saveConversation(c: Conversation): void {
    if (this.#known.has(c)) {
      const r = this.#s.updateConversation.run(
        c.protocol,
        c.state,
        JSON.stringify(c.participants),
        c.turns,
        c.max_turns,
        c.updated_at,
        c.expires_at,
        c.reason === null ? null : scrubSecrets(c.reason),
        c.id,
      );
      if (r.changes > 0) return;
    }
    this.#s.upsertConversation.run(
      c.id,
      c.protocol,
      c.state,
      c.initiator,
      JSON.stringify(c.participants),
      c.capability,
      c.turns,
      c.max_turns,
      c.created_at,
      c.updated_at,
      c.expires_at,
      c.reason === null ? null : scrubSecrets(c.reason),
    );
    this.#known.add(c);
  }

  insertSubscription(s: SubscriptionRow): void {
    this.#s.insertSubscription.run(
      s.id,
      s.conversation_id,
      s.subscriber,
      s.capability,
      s.agent,
      scrubSecrets(s.content),
      s.created_at,
    );
  }

  deleteSubscription(conversationId: string): void {
    this.#s.deleteSubscription.run(conversationId);
  }

  // ---- reads ----

  hasMessage(id: string): boolean {
    return this.#s.hasMessage.get(id) !== undefined;
  }

  getMessage(id: string): StoredMessage | undefined {
    const r = this.#s.getMessage.get(id) as { body: string; routed_to: string } | undefined;
    return r && { message: JSON.parse(r.body) as AclMessage, routed_to: JSON.parse(r.routed_to) as string[] };
  }

  messagesOf(conversationId: string, limit = 1000, offset = 0): StoredMessage[] {
    return (this.#s.messagesOf.all(conversationId, limit, offset) as { body: string; routed_to: string }[]).map(
      (r) => ({
        message: JSON.parse(r.body) as AclMessage,
        routed_to: JSON.parse(r.routed_to) as string[],
      }),
    );
  }

  /** The last `limit` messages of a conversation, oldest first. */
  lastMessagesOf(conversationId: string, limit: number): AclMessage[] {
    return (this.#s.lastMessagesOf.all(conversationId, limit) as { body: string }[]).map(
      (r) => JSON.parse(r.body) as AclMessage,
    );
  }

  getConversation(id: string): Conversation | undefined {
    const r = this.#s.getConversation.get(id) as ConversationRow | undefined;
    if (!r) return undefined;
    const c = conversationOf(r);
    this.#known.add(c);
    return c;
  }

  listConversations(q: ConversationFilter & { limit: number; offset: number }): Page<Conversation> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.state) {
      where.push('state = ?');
      args.push(q.state);
    }
    if (q.participant) {
      where.push('EXISTS (SELECT 1 FROM json_each(participants) WHERE value = ?)');
      args.push(q.participant);
    }
    if (q.agents) where.push(conversationScopeSql('sqlite', 'participants', q.agents, param(args)));
    const w = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const total = this.db
      .prepare(`SELECT count(*) FROM conversations ${w}`)
      .pluck()
      .get(...args) as number;
    const rows = this.db
      .prepare(`SELECT * FROM conversations ${w} ORDER BY rowid DESC LIMIT ? OFFSET ?`)
      .all(...args, q.limit, q.offset) as ConversationRow[];
    return { items: rows.map(conversationOf), total };
  }

  /** The open conversations; a row that cannot be read (damaged JSON) is skipped and told to `onSkipped`. */
  openConversations(onSkipped: (id: string, reason: string) => void = () => {}): Conversation[] {
    const out: Conversation[] = [];
    for (const r of this.#s.openConversations.all() as ConversationRow[]) {
      let c: Conversation;
      try {
        c = conversationOf(r);
        if (!Array.isArray(c.participants)) throw new Error('participants is not a list');
      } catch (e) {
        onSkipped(r.id, `its participants are damaged (${e instanceof Error ? e.message : String(e)})`);
        continue;
      }
      this.#known.add(c);
      out.push(c);
    }
    return out;
  }

  openDeliveries(): DeliveryRow[] {
    return this.#s.openDeliveries.all() as DeliveryRow[];
  }

  getDelivery(id: number): DeliveryRow | undefined {
    return this.#s.getDelivery.get(id) as DeliveryRow | undefined;
  }

  deliveriesOf(messageId: string): DeliveryRow[] {
    return this.#s.deliveriesOf.all(messageId) as DeliveryRow[];
  }

  deadLetters(limit: number, offset: number, filter: DeadLetterFilter = {}): Page<DeliveryRow> {
    if (filter.receiver === undefined && filter.error === undefined && filter.agents === undefined) {
      return {
        items: this.#s.deadLetters.all(limit, offset) as DeliveryRow[],
        total: this.#s.deadCount.get() as number,
      };
    }
    const where = ["state = 'dead'"];
    const args: unknown[] = [];
    if (filter.receiver !== undefined) {
      where.push("receiver LIKE ? ESCAPE '\\'");
      args.push(containing(filter.receiver));
    }
    if (filter.error !== undefined) {
      where.push("last_error LIKE ? ESCAPE '\\'");
      args.push(containing(filter.error));
    }
    if (filter.agents)
      where.push(
        `EXISTS (SELECT 1 FROM messages m WHERE m.id = deliveries.message_id AND ${messageScopeSql('sqlite', { sender: 'm.sender', routed_to: 'm.routed_to', body: 'm.body' }, filter.agents, param(args))})`,
      );
    const w = where.join(' AND ');
    const total = this.db
      .prepare(`SELECT count(*) FROM deliveries WHERE ${w}`)
      .pluck()
      .get(...args) as number;
    const items = this.db
      .prepare(`SELECT * FROM deliveries WHERE ${w} ORDER BY id LIMIT ? OFFSET ?`)
      .all(...args, limit, offset) as DeliveryRow[];
    return { items, total };
  }

  /** Messages newest first, narrowed by `filter`. */
  listMessages(filter: MessageFilter, limit: number, offset: number): Page<StoredMessage> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.conversation_id !== undefined) {
      where.push('conversation_id = ?');
      args.push(filter.conversation_id);
    }
    if (filter.performative !== undefined) {
      where.push('performative = ?');
      args.push(filter.performative);
    }
    if (filter.sender !== undefined) {
      where.push('sender = ? COLLATE NOCASE');
      args.push(filter.sender);
    }
    if (filter.receiver !== undefined) {
      // Through the delivery rows (indexed), not the routed_to JSON of every message.
      where.push('id IN (SELECT message_id FROM deliveries WHERE receiver = ? COLLATE NOCASE)');
      args.push(filter.receiver);
    }
    if (filter.agents)
      where.push(
        messageScopeSql(
          'sqlite',
          { sender: 'sender', routed_to: 'routed_to', body: 'body' },
          filter.agents,
          param(args),
        ),
      );
    const w = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const total = this.db
      .prepare(`SELECT count(*) FROM messages ${w}`)
      .pluck()
      .get(...args) as number;
    const rows = this.db
      .prepare(`SELECT body, routed_to FROM messages ${w} ORDER BY seq DESC LIMIT ? OFFSET ?`)
      .all(...args, limit, offset) as { body: string; routed_to: string }[];
    return {
      items: rows.map((r) => ({
        message: JSON.parse(r.body) as AclMessage,
        routed_to: JSON.parse(r.routed_to) as string[],
      })),
      total,
    };
  }

  deadCount(): number {
    return this.#s.deadCount.get() as number;
  }

  subscriptions(): SubscriptionRow[] {
    return this.#s.subscriptions.all() as SubscriptionRow[];
  }
}
