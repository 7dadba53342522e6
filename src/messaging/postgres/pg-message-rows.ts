/**
 * What the cluster's bus reads of its message state outside a conversation step: a message, a
 * conversation, delivery rows, subscriptions and the gauges' counts, each one query on the pool.
 * The read side the API serves (filters, pages, scopes) is pg-reads.ts.
 */
import type pg from 'pg';
import type { Conversation, ConversationState, DeliveryRow, Page, StoredMessage, SubscriptionRow } from '../index.js';
import { inTransaction, intArray } from '../../storage/pg/index.js';
import {
  conversationByIdSql,
  conversationOf,
  deliveryOf,
  storedOf,
  type ConversationRow,
} from './pg-message-tables.js';

/** What a delivery fetched from JetStream is checked and run against (jetstream-queue.ts). */
export type TakeRow = Pick<DeliveryRow, 'id' | 'receiver' | 'state' | 'attempts' | 'next_at'> & {
  /** The row marks its conversation kept with its message (ADR 0080). */
  kept: boolean;
  /**
   * Published only as first stored: never claimed by the reconciliation sweep, never replayed or
   * rerouted (no hand-out tag). With JetStream's delivery count 1 and no attempt, no run of its
   * message can have started before.
   */
  fresh: boolean;
  /**
   * A first attempt still pending that marks its conversation kept: the conversation's JSON as its
   * message keeps it, and the row as a step reads it (no attempt yet, so no error). The store
   * then acknowledges it without reading it again (PgMessageStore's optimistic steps). Otherwise null.
   * The conversation as read (JSON text), or as a first hand-out carried it (parsed with its wire).
   */
  keptFirst: { opening: string | ConversationRow; row: Record<string, unknown> } | null;
};

export class PgMessageRows {
  protected readonly s: string;

  protected constructor(
    readonly pool: pg.Pool,
    schema: string,
  ) {
    this.s = `"${schema}"`;
  }

  /** The schema, quoted, for the read side (pg-reads.ts) over the same tables. */
  get quotedSchema(): string {
    return this.s;
  }

  /** The active subscriptions to a capability or to an agent (by name, any case). */
  async subscriptionsFor(capability: string | undefined, agent: string): Promise<SubscriptionRow[]> {
    return (
      await this.pool.query<SubscriptionRow>(
        `SELECT * FROM ${this.s}.subscriptions WHERE (capability IS NOT NULL AND capability = $1) OR (agent IS NOT NULL AND lower(agent) = lower($2)) ORDER BY created_at, id`,
        [capability ?? null, agent],
      )
    ).rows;
  }

  /**
   * The subscriptions of several (capability, agent) pairs in one query, each pair's as
   * `subscriptionsFor` returns them (the informs accepted in one turn ask together).
   */
  async subscriptionsForMany(
    keys: readonly { capability: string | undefined; agent: string }[],
  ): Promise<SubscriptionRow[][]> {
    const capabilities = [...new Set(keys.flatMap((k) => (k.capability === undefined ? [] : [k.capability])))];
    const agents = [...new Set(keys.map((k) => k.agent))];
    const rows = (
      await this.pool.query<SubscriptionRow & { agent_folded: string | null }>(
        `SELECT *, lower(agent) AS agent_folded FROM ${this.s}.subscriptions WHERE (capability IS NOT NULL AND capability = ANY($1)) OR (agent IS NOT NULL AND lower(agent) = ANY(SELECT lower(a) FROM unnest($2::text[]) AS a)) ORDER BY created_at, id`,
        [capabilities, agents],
      )
    ).rows;
    if (rows.length === 0) return keys.map(() => []);
    // lower() folds as PostgreSQL does: each pair's agent is folded the same way, in the same query's terms.
    const folded = new Map(
      (
        await this.pool.query<{ a: string; f: string }>('SELECT a, lower(a) AS f FROM unnest($1::text[]) AS a', [
          agents,
        ])
      ).rows.map((r) => [r.a, r.f]),
    );
    return keys.map((k) =>
      rows
        .filter(
          (r) =>
            (r.capability !== null && k.capability !== undefined && r.capability === k.capability) ||
            (r.agent_folded !== null && r.agent_folded === folded.get(k.agent)),
        )
        .map(({ agent_folded: _, ...r }) => r),
    );
  }

  /** Open conversations (one-way ones kept with their message counted by their delivery, ADR 0080), dead letters and deliveries waiting for a retry (their next attempt later than now), for the node's gauges (one round trip). */
  async counts(): Promise<{ open: number; dead: number; retrying: number }> {
    // Along the partial indexes of open conversations and unfinished deliveries, whatever the
    // statistics say: right after a burst they still count most rows open or pending, and the
    // planner scanned both tables (97–113 ms on 60,000 finished rows, every 2 s on every node).
    const r = await inTransaction(this.pool, null, async (_c, _started, batch) => {
      batch.later('SET LOCAL enable_seqscan = off', []);
      return (
        await batch.now<{ open: string; dead: string; retrying: string }>(
          `SELECT (SELECT count(*) FROM ${this.s}.conversations WHERE state IN ('initiated', 'in_progress')) + (SELECT count(*) FROM ${this.s}.deliveries WHERE state = 'pending' AND kept_until IS NOT NULL) AS open, (SELECT count(*) FROM ${this.s}.deliveries WHERE state = 'dead') AS dead,
           (SELECT count(*) FROM ${this.s}.deliveries WHERE state = 'pending' AND next_at > $1) AS retrying`,
          [Date.now()],
        )
      ).rows[0]!;
    });
    return { open: Number(r.open), dead: Number(r.dead), retrying: Number(r.retrying) };
  }

  /** The store answers (readiness: PostgreSQL reachable). */
  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  /** Messages by id, in one query (the submissions of one turn checked for duplicates together). */
  async getMessages(ids: readonly string[]): Promise<Map<string, StoredMessage>> {
    const rows = (
      await this.pool.query<{ id: string; body: string; routed_to: string }>(
        `SELECT id, body, routed_to FROM ${this.s}.messages WHERE id = ANY($1::text[])`,
        [ids],
      )
    ).rows;
    return new Map(rows.map((r) => [r.id, storedOf(r)]));
  }

  async getMessage(id: string): Promise<StoredMessage | undefined> {
    const r = (
      await this.pool.query<{ body: string; routed_to: string }>(
        `SELECT body, routed_to FROM ${this.s}.messages WHERE id = $1`,
        [id],
      )
    ).rows[0];
    return r && storedOf(r);
  }

  async getConversation(id: string): Promise<Conversation | undefined> {
    const r = (await this.pool.query<ConversationRow>(conversationByIdSql(this.s), [id])).rows[0];
    return r && conversationOf(r);
  }

  async listConversations(q: {
    state?: ConversationState;
    limit: number;
    offset: number;
  }): Promise<Page<Conversation>> {
    const where = q.state ? 'WHERE state = $1' : '';
    const args: unknown[] = q.state ? [q.state] : [];
    const total = Number(
      (await this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.s}.conversations_read ${where}`, args))
        .rows[0]!.n,
    );
    const rows = (
      await this.pool.query<ConversationRow>(
        `SELECT * FROM ${this.s}.conversations_read ${where} ORDER BY created_at DESC, id LIMIT $${args.length + 1} OFFSET $${args.length + 2}`,
        [...args, q.limit, q.offset],
      )
    ).rows;
    return { items: rows.map(conversationOf), total };
  }

  /** Delivery rows by id, in one query (the rows a fetch from JetStream brought, read together). */
  async getDeliveries(ids: readonly number[]): Promise<Map<number, DeliveryRow>> {
    const rows = (await this.pool.query(`SELECT * FROM ${this.s}.deliveries WHERE id = ANY($1::bigint[])`, [ids]))
      .rows as Record<string, unknown>[];
    return new Map(rows.map((r) => [Number(r.id), deliveryOf(r)]));
  }

  /**
   * The rows of deliveries fetched from JetStream, by id, in one query: only the columns their
   * check reads (not the attempts' errors, a JSON array parsed per row), whether the row marks
   * its conversation kept (the store then steps it from its row alone, ADR 0091), and for a first
   * attempt of such a row what its acknowledgement runs on (`keptFirst`, ADR 0154). Not a prepared statement (ADR 0089):
   * in the cluster suite its cached generic plan, made while the table was small, took 1.05 ms a
   * call as a burst filled the table (pg_stat_statements), where parsing and planning each call
   * costs about 0.2 ms in all.
   */
  async deliveriesToTake(ids: readonly number[]): Promise<Map<number, TakeRow>> {
    const { rows } = await this.pool.query<{
      id: string;
      message_id: string;
      receiver: string;
      state: DeliveryRow['state'];
      attempts: number;
      next_at: string;
      updated_at: string;
      kept: boolean;
      fresh: boolean;
      opening: string | null;
    }>(
      // The kept conversation as a subquery, not a join (as a step's BEGIN reads it): one index lookup per row that has one.
      `SELECT id, message_id, receiver, state, attempts, next_at, updated_at, kept_until IS NOT NULL AS kept,
              reconciled_at IS NULL AND publish_tag = '' AS fresh,
              CASE WHEN kept_until IS NOT NULL AND state = 'pending' AND attempts = 0
                THEN (SELECT m.conversation FROM ${this.s}.messages m WHERE m.id = d.message_id) END AS opening
       FROM ${this.s}.deliveries d WHERE id = ANY($1::bigint[])`,
      [intArray(ids)],
    );
    const out = new Map<number, TakeRow>();
    for (const r of rows) {
      const id = Number(r.id);
      const { opening } = r;
      out.set(id, {
        id,
        receiver: r.receiver,
        state: r.state,
        attempts: r.attempts,
        next_at: Number(r.next_at),
        kept: r.kept,
        fresh: r.fresh,
        keptFirst:
          opening === null
            ? null
            : {
                opening,
                row: {
                  id,
                  message_id: r.message_id,
                  receiver: r.receiver,
                  state: r.state,
                  attempts: r.attempts,
                  next_at: r.next_at,
                  last_error: null,
                  updated_at: r.updated_at,
                  errors: null,
                },
              },
      });
    }
    return out;
  }

  async getDelivery(id: number): Promise<DeliveryRow | undefined> {
    return (await this.getDeliveries([id])).get(id);
  }

  async deliveriesOf(messageId: string): Promise<DeliveryRow[]> {
    return (
      await this.pool.query(`SELECT * FROM ${this.s}.deliveries WHERE message_id = $1 ORDER BY id`, [messageId])
    ).rows.map((r) => deliveryOf(r as Record<string, unknown>));
  }

  async deadLetters(limit: number, offset: number): Promise<Page<DeliveryRow>> {
    const items = (
      await this.pool.query(`SELECT * FROM ${this.s}.deliveries WHERE state = 'dead' ORDER BY id LIMIT $1 OFFSET $2`, [
        limit,
        offset,
      ])
    ).rows.map((r) => deliveryOf(r as Record<string, unknown>));
    const total = Number(
      (await this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.s}.deliveries WHERE state = 'dead'`))
        .rows[0]!.n,
    );
    return { items, total };
  }
}
