/**
 * The read side of a cluster's message state (ADR 0043): MessageReads (src/messaging/sqlite/sqlite-reads.ts)
 * over the PostgreSQL tables of pg-message-store.ts, with the same methods, results, filters and
 * errors, so the REST routes and the CLI read a cluster as they read one node.
 *
 * No write barrier to wait for (MessageReads waits for SQLite's group commit): a step's rows are
 * readable from every node once its transaction commits. A page's total and items come from one
 * snapshot, as they do from SQLite's single synchronous call.
 */
import type pg from 'pg';
import { conversationScopeSql, messageScopeSql } from '../../auth/index.js';
import type {
  AclMessage,
  Conversation,
  ConversationFilter,
  DeadLetterFilter,
  DeliveryView,
  MessageFilter,
  Page,
  StoredMessage,
} from '../index.js';
import { deliveryView, withFailed } from '../index.js';
import { CaxtonError } from '../../shared/errors.js';
import { COPY_ROOT } from '../../shared/objects.js';
import type { PgMessageStore } from './pg-message-store.js';
import { conversationByIdSql, deliveryOf } from './pg-message-tables.js';
import { inTransaction } from '../../storage/pg/index.js';

/** `expr` with ASCII letters lower-cased, as SQLite's NOCASE and LIKE compare (the indexes of cluster-messaging-003 are on it). */
const folded = (expr: string): string =>
  `translate(${expr}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')`;

/** A LIKE pattern matching `text` literally anywhere (with ESCAPE '\\'), as store.ts's. */
const containing = (text: string): string => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

interface ConversationRow extends Omit<Conversation, 'participants'> {
  participants: string;
}

interface MessageRow {
  body: string;
  routed_to: string;
}

const conversationOf = (r: ConversationRow): Conversation => ({
  ...r,
  participants: JSON.parse(r.participants) as string[],
});
const storedOf = (r: MessageRow): StoredMessage => ({
  message: JSON.parse(r.body) as AclMessage,
  routed_to: JSON.parse(r.routed_to) as string[],
});
const deadLetterOf = (r: Record<string, unknown>): DeliveryView & { message: AclMessage } => ({
  ...COPY_ROOT,
  ...deliveryView(deliveryOf(r)),
  message: JSON.parse(r.body as string) as AclMessage,
});

/** Conditions joined by AND, with their $n arguments numbered in order. */
class Where {
  readonly #parts: string[] = [];
  readonly args: unknown[] = [];

  constructor(...fixed: string[]) {
    this.#parts.push(...fixed);
  }

  /** `cond` with `$?` standing for `arg`. */
  add(cond: string, arg: unknown): void {
    this.args.push(arg);
    this.#parts.push(cond.replace('$?', () => `$${this.args.length}`));
  }

  /** `build(param)`, where `param(arg)` adds an argument and returns its placeholder. */
  addBuilt(build: (param: (arg: unknown) => string) => string): void {
    this.#parts.push(
      build((arg) => {
        this.args.push(arg);
        return `$${this.args.length}`;
      }),
    );
  }

  toString(): string {
    return this.#parts.length > 0 ? `WHERE ${this.#parts.join(' AND ')}` : '';
  }

  /** The placeholders of `limit` and `offset` after the filter's own. */
  page(): string {
    return `LIMIT $${this.args.length + 1} OFFSET $${this.args.length + 2}`;
  }
}

export interface PgMessageReadsOptions {
  store: PgMessageStore;
}

export class PgMessageReads {
  readonly #pool: pg.Pool;
  readonly #s: string;

  constructor(opts: PgMessageReadsOptions) {
    this.#pool = opts.store.pool;
    this.#s = opts.store.quotedSchema;
  }

  async getConversation(
    id: string,
    opts: { limit?: number; offset?: number } = {},
  ): Promise<{ conversation: Conversation; messages: StoredMessage[] }> {
    return this.#snapshot(async (c) => {
      const row = (await c.query<ConversationRow>(conversationByIdSql(this.#s), [id])).rows[0];
      if (!row) throw new CaxtonError('conversation_not_found', `no conversation with id "${id}"`, { id });
      const messages = (
        await c.query<MessageRow>(
          `SELECT body, routed_to FROM ${this.#s}.messages WHERE conversation_id = $1 ORDER BY seq LIMIT $2 OFFSET $3`,
          [id, opts.limit ?? 1000, opts.offset ?? 0],
        )
      ).rows.map(storedOf);
      const limit = opts.limit ?? 1000;
      const all =
        (opts.offset ?? 0) === 0 && messages.length < limit
          ? messages
          : (
              await c.query<MessageRow>(
                `SELECT body, routed_to FROM ${this.#s}.messages WHERE conversation_id = $1 ORDER BY seq`,
                [id],
              )
            ).rows.map(storedOf);
      return { conversation: withFailed(conversationOf(row), all), messages };
    });
  }

  async listConversations(
    q: ConversationFilter & { limit?: number; offset?: number } = {},
  ): Promise<Page<Conversation>> {
    const w = new Where();
    if (q.state) w.add('state = $?', q.state);
    // An element of the JSON array equal to the name, case and all (as json_each's `value = ?`).
    if (q.participant) w.add('participants::jsonb @> jsonb_build_array($?::text)', q.participant);
    if (q.agents) w.addBuilt((param) => conversationScopeSql('pg', 'participants', q.agents!, param));
    return this.#snapshot(async (c) => {
      const total = Number(
        (await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.#s}.conversations_read ${w}`, w.args)).rows[0]!
          .n,
      );
      const rows = (
        await c.query<ConversationRow>(
          `SELECT * FROM ${this.#s}.conversations_read ${w} ORDER BY created_at DESC, id ${w.page()}`,
          [...w.args, q.limit ?? 50, q.offset ?? 0],
        )
      ).rows;
      return { items: rows.map(conversationOf), total };
    });
  }

  async getMessage(id: string): Promise<(StoredMessage & { deliveries: DeliveryView[] }) | undefined> {
    return this.#snapshot(async (c) => {
      const row = (await c.query<MessageRow>(`SELECT body, routed_to FROM ${this.#s}.messages WHERE id = $1`, [id]))
        .rows[0];
      if (!row) return undefined;
      const deliveries = (
        await c.query(`SELECT * FROM ${this.#s}.deliveries WHERE message_id = $1 ORDER BY id`, [id])
      ).rows.map((r) => deliveryView(deliveryOf(r as Record<string, unknown>)));
      return { ...COPY_ROOT, ...storedOf(row), deliveries };
    });
  }

  /** Messages newest first, narrowed by the filter. */
  async listMessages(q: MessageFilter & { limit?: number; offset?: number } = {}): Promise<Page<StoredMessage>> {
    const w = new Where();
    if (q.conversation_id !== undefined) w.add('conversation_id = $?', q.conversation_id);
    if (q.performative !== undefined) w.add('performative = $?', q.performative);
    if (q.sender !== undefined) w.add(`${folded('sender')} = ${folded('$?::text')}`, q.sender);
    // Through the delivery rows (indexed), not the routed_to JSON of every message.
    if (q.receiver !== undefined)
      w.add(
        `id IN (SELECT message_id FROM ${this.#s}.deliveries WHERE ${folded('receiver')} = ${folded('$?::text')})`,
        q.receiver,
      );
    if (q.agents)
      w.addBuilt((param) =>
        messageScopeSql('pg', { sender: 'sender', routed_to: 'routed_to', body: 'body' }, q.agents!, param),
      );
    return this.#snapshot(async (c) => {
      const total = Number(
        (await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.#s}.messages ${w}`, w.args)).rows[0]!.n,
      );
      const rows = (
        await c.query<MessageRow>(
          `SELECT body, routed_to FROM ${this.#s}.messages ${w} ORDER BY seq DESC ${w.page()}`,
          [...w.args, q.limit ?? 50, q.offset ?? 0],
        )
      ).rows;
      return { items: rows.map(storedOf), total };
    });
  }

  async deadLetters(
    q: DeadLetterFilter & { limit?: number; offset?: number } = {},
  ): Promise<Page<DeliveryView & { message: AclMessage }>> {
    const w = new Where("d.state = 'dead'");
    if (q.receiver !== undefined)
      w.add(`${folded('d.receiver')} LIKE ${folded('$?::text')} ESCAPE '\\'`, containing(q.receiver));
    if (q.error !== undefined)
      w.add(`${folded('d.last_error')} LIKE ${folded('$?::text')} ESCAPE '\\'`, containing(q.error));
    if (q.agents)
      w.addBuilt((param) =>
        messageScopeSql('pg', { sender: 'm.sender', routed_to: 'm.routed_to', body: 'm.body' }, q.agents!, param),
      );
    // No foreign key to the message here (SQLite has one): the join keeps the total and the items in step.
    const from = `${this.#s}.deliveries d JOIN ${this.#s}.messages m ON m.id = d.message_id ${w}`;
    return this.#snapshot(async (c) => {
      const total = Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${from}`, w.args)).rows[0]!.n);
      const rows = (
        await c.query(`SELECT d.*, m.body FROM ${from} ORDER BY d.id ${w.page()}`, [
          ...w.args,
          q.limit ?? 50,
          q.offset ?? 0,
        ])
      ).rows;
      return { total, items: rows.map((r) => deadLetterOf(r as Record<string, unknown>)) };
    });
  }

  async deadLetter(id: number): Promise<DeliveryView & { message: AclMessage }> {
    const none = () => new CaxtonError('not_found', `no dead letter with id ${id}`, { id });
    // Not an id PostgreSQL's bigint would take (NaN, 1.5): no such row, as in SQLite.
    if (!Number.isSafeInteger(id)) throw none();
    const r = (
      await this.#pool.query(
        `SELECT d.*, m.body FROM ${this.#s}.deliveries d JOIN ${this.#s}.messages m ON m.id = d.message_id WHERE d.id = $1 AND d.state = 'dead'`,
        [id],
      )
    ).rows[0];
    if (!r) throw none();
    return deadLetterOf(r as Record<string, unknown>);
  }

  /** The last `n` messages of a conversation, oldest first (an agent's history). */
  async lastMessagesOf(conversationId: string, n: number): Promise<StoredMessage[]> {
    if (n <= 0) return [];
    return (
      await this.#pool.query<MessageRow>(
        `SELECT body, routed_to FROM (SELECT seq, body, routed_to FROM ${this.#s}.messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT $2) last ORDER BY seq`,
        [conversationId, n],
      )
    ).rows.map(storedOf);
  }

  async deadCount(): Promise<number> {
    return Number(
      (await this.#pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.#s}.deliveries WHERE state = 'dead'`))
        .rows[0]!.n,
    );
  }

  /** Runs `fn` in a read-only transaction over one snapshot (REPEATABLE READ). */
  #snapshot<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.#pool, 'BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY', fn);
  }
}
