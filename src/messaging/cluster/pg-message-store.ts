/**
 * The message state of a cluster in PostgreSQL (ADR 0043): the
 * messaging tables of the single-node store (src/messaging/store.ts) — messages, delivery rows,
 * conversations, subscriptions — shared by every node, with the two guarantees the cluster's bus
 * rests on:
 *
 *  - **one step of a conversation at a time, cluster-wide**: `inConversation` runs a step in one
 *    transaction holding the conversation's transaction-scoped advisory lock (the row may not
 *    exist yet when the first message creates it, so the lock is on its id, not on the row). Two
 *    nodes answering one Contract Net serialize there; different conversations never wait for
 *    each other's locks. Under load, steps of different conversations share one transaction
 *    (group commit, step-groups.ts; ADR 0046), each still seeing only its own conversation.
 *  - **each deadline handled once**: `expired` takes the conversations whose `expires_at` passed
 *    with `FOR UPDATE SKIP LOCKED`, so nodes sweeping at the same time split them.
 *
 * The cluster's bus (cluster-bus.ts) runs on it. The DDL is PostgreSQL's own (bigserial,
 * timestamptz-free ISO text kept as in SQLite so rows read the same), not shared with the SQLite
 * migration: the two differ in every id column.
 */
import type pg from 'pg';
import type {
  AclMessage,
  Conversation,
  ConversationState,
  ConversationStep,
  DeliveryRow,
  Page,
  StoredMessage,
  SubscriptionRow,
} from '../index.js';
import { scrubSecrets } from '../../shared/secrets.js';
import {
  escapeLiteral,
  inTransaction,
  isUnreachable,
  literal,
  migrateSchema,
  quotedSchema,
  StatementBatch,
  type PgMigration,
} from '../../storage/pg/index.js';
import { StepGroups, type StepGroupsOptions } from './step-groups.js';

const MIGRATIONS: readonly PgMigration[] = [
  {
    id: 'cluster-messaging-001',
    sql: (s) => `
      CREATE TABLE ${s}.messages (
        seq             bigserial PRIMARY KEY,
        id              text NOT NULL UNIQUE,
        conversation_id text NOT NULL,
        performative    text NOT NULL,
        sender          text NOT NULL,
        created_at      text NOT NULL,
        body            text NOT NULL,
        routed_to       text NOT NULL
      );
      CREATE INDEX messages_conversation ON ${s}.messages (conversation_id, seq);
      CREATE TABLE ${s}.deliveries (
        id          bigserial PRIMARY KEY,
        message_id  text NOT NULL,
        receiver    text NOT NULL,
        state       text NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
        attempts    integer NOT NULL DEFAULT 0,
        next_at     bigint NOT NULL DEFAULT 0,
        last_error  text,
        updated_at  text NOT NULL
      );
      CREATE INDEX deliveries_message ON ${s}.deliveries (message_id);
      CREATE INDEX deliveries_open ON ${s}.deliveries (state) WHERE state <> 'done';
      CREATE TABLE ${s}.conversations (
        id           text PRIMARY KEY,
        protocol     text,
        state        text NOT NULL,
        initiator    text NOT NULL,
        participants text NOT NULL,
        capability   text,
        turns        integer NOT NULL,
        max_turns    integer NOT NULL,
        created_at   text NOT NULL,
        updated_at   text NOT NULL,
        expires_at   text,
        reason       text
      );
      CREATE INDEX conversations_state ON ${s}.conversations (state, updated_at);
      CREATE INDEX conversations_expiry ON ${s}.conversations (expires_at) WHERE state IN ('initiated', 'in_progress');
    `,
  },
  {
    // FIPA-Subscribe's subscriptions, read when an inform is accepted on any node.
    id: 'cluster-messaging-002',
    sql: (s) => `
      CREATE TABLE ${s}.subscriptions (
        id              text PRIMARY KEY,
        conversation_id text NOT NULL,
        subscriber      text NOT NULL,
        capability      text,
        agent           text,
        content         text NOT NULL,
        created_at      text NOT NULL
      );
      CREATE INDEX subscriptions_capability ON ${s}.subscriptions (capability) WHERE capability IS NOT NULL;
      CREATE INDEX subscriptions_agent ON ${s}.subscriptions (lower(agent)) WHERE agent IS NOT NULL;
      CREATE INDEX subscriptions_conversation ON ${s}.subscriptions (conversation_id);
    `,
  },
  {
    // The read side's filters (pg-reads.ts), as SQLite's messaging-002: index lookups, not scans.
    // Names fold ASCII case only, like SQLite's NOCASE: the translate() is pg-reads.ts's `folded`,
    // and a query must spell it the same to use these (test/messaging/cluster/pg-reads.test.ts checks).
    id: 'cluster-messaging-003',
    sql: (s) => `
      CREATE INDEX messages_sender_folded ON ${s}.messages (translate(sender, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), seq);
      CREATE INDEX messages_performative ON ${s}.messages (performative, seq);
      CREATE INDEX deliveries_receiver_folded ON ${s}.deliveries (translate(receiver, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), message_id);
      CREATE INDEX conversations_participants ON ${s}.conversations USING gin ((participants::jsonb) jsonb_path_ops);
      CREATE INDEX conversations_created ON ${s}.conversations (created_at DESC, id);
    `,
  },
  {
    // A delivery is stored before it is published (commit, then publish): until JetStream's PubAck
    // is recorded, `unpublished_since` (epoch ms) is set, and the republish sweep sends it again
    // with the same Nats-Msg-Id (`d<id><publish_tag>`), so a copy that did reach the stream is
    // dropped by JetStream's duplicate window. Rows from before this migration count as published.
    id: 'cluster-messaging-004',
    sql: (s) => `
      ALTER TABLE ${s}.deliveries ADD COLUMN unpublished_since bigint, ADD COLUMN publish_tag text NOT NULL DEFAULT '';
      CREATE INDEX deliveries_unpublished ON ${s}.deliveries (unpublished_since) WHERE unpublished_since IS NOT NULL;
    `,
  },
  {
    // When the reconciliation sweep last published a pending delivery again (epoch ms): one node
    // takes a row per period, so nodes sweeping together do not each add a copy.
    id: 'cluster-messaging-005',
    sql: (s) => `ALTER TABLE ${s}.deliveries ADD COLUMN reconciled_at bigint;`,
  },
];

/** The `[messaging]` retention keys the cluster applies (max_messages is the single node's only). */
export interface MessagingRetentionLimits {
  retention: number;
  max_conversations: number;
  dead_letter_retention: number;
  max_dead_letters: number;
}

export interface PgMessageStoreOptions {
  pool: pg.Pool;
  /** The schema holding the tables (created if missing). */
  schema: string;
  /** Group commit of conversation steps (step-groups.ts): steps per group (default 64), groups at once (default 4; a server passes `[cluster.state] step_transactions`). */
  groups?: Partial<StepGroupsOptions>;
}

/** What one conversation step may do, inside its transaction and lock. */
export type { ConversationStep };

interface ConversationRow extends Omit<Conversation, 'participants'> {
  participants: string;
}

const conversationOf = (r: ConversationRow): Conversation => ({
  ...r,
  participants: JSON.parse(r.participants) as string[],
});
const storedOf = (r: { body: string; routed_to: string }): StoredMessage => ({
  message: JSON.parse(r.body) as AclMessage,
  routed_to: JSON.parse(r.routed_to) as string[],
});
// bigint columns arrive as strings; the publishing columns stay inside the cluster.
export const deliveryOf = (r: Record<string, unknown>): DeliveryRow => ({
  id: Number(r.id),
  message_id: r.message_id as DeliveryRow['message_id'],
  receiver: r.receiver as string,
  state: r.state as DeliveryRow['state'],
  attempts: r.attempts as number,
  next_at: Number(r.next_at),
  last_error: r.last_error as string | null,
  updated_at: r.updated_at as string,
});

/** A stored delivery whose publish was not confirmed (see migration cluster-messaging-004). */
export interface UnpublishedDelivery {
  id: number;
  receiver: string;
  /** The Nats-Msg-Id suffix it was (or was to be) published with. */
  tag: string;
  message: AclMessage;
}

/** A conversation step waiting for its group (step-groups.ts). */
interface QueuedStep {
  key: string;
  delivery: number | undefined;
  step: (s: ConversationStep) => Promise<unknown>;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

/** A group's transaction is void: a step failed after some of its writes were sent (its steps run again alone). */
class GroupVoid extends Error {
  constructor() {
    super('a step of the group failed after its writes were sent');
  }
}

/** Delivery ids a node reserves at once from the table's sequence (see `#takeId`). */
const ID_BLOCK = 256;

/** The outstanding count read with BEGIN, and how the step's own writes changed it since. */
interface PendingCount {
  base: number;
  delta: number;
  /** False once the step changed a row whose earlier state it does not know: outstanding() queries again. */
  valid: boolean;
}

export class PgMessageStore {
  readonly #pool: pg.Pool;
  readonly #s: string;
  /**
   * Delivery ids taken from the sequence ahead of use, oldest first. A step's delivery row then
   * goes with its COMMIT like its other writes (its id known without a round trip of its own);
   * ids are unique as before but no longer in commit order across nodes, and a node that stops
   * leaves a gap of the ones it did not use.
   */
  #ids: number[] = [];
  #reserving: Promise<void> | undefined;
  readonly #groups: StepGroups<QueuedStep>;
  readonly #groupStats = { transactions: 0, steps: 0, voided: 0 };

  private constructor(opts: PgMessageStoreOptions) {
    this.#pool = opts.pool;
    this.#s = `"${opts.schema}"`;
    this.#groups = new StepGroups((g) => this.#runGroup(g), {
      maxSteps: opts.groups?.maxSteps ?? 64,
      concurrent: opts.groups?.concurrent ?? 4,
    });
  }

  /** The pool and the quoted schema, for the read side (pg-reads.ts) over the same tables. */
  get pool(): pg.Pool {
    return this.#pool;
  }

  get quotedSchema(): string {
    return this.#s;
  }

  /** Creates the schema and tables if missing (nodes starting together take turns on a lock). */
  static async open(opts: PgMessageStoreOptions): Promise<PgMessageStore> {
    quotedSchema(opts.schema);
    const store = new PgMessageStore(opts);
    await migrateSchema(opts.pool, opts.schema, MIGRATIONS);
    return store;
  }

  /**
   * Runs one step of conversation `id` in a transaction holding its lock: every node's steps on
   * the same conversation run one after another, and a step sees what the previous one committed.
   * A step that throws is rolled back whole. Under load, steps of different conversations share a
   * transaction (group commit, step-groups.ts): a step's result is returned once its group
   * committed, and a group that fails as a whole runs each of its steps again alone, so a step may
   * run twice (its effects only count from the run that committed).
   */
  inConversation<T>(
    id: string,
    step: (s: ConversationStep) => Promise<T>,
    opts: { delivery?: number } = {},
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#groups.push({ key: id, delivery: opts.delivery, step, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /** Conversation-step transactions so far: how many, the steps they held, and groups voided (their steps run again alone). */
  get groupStats(): { transactions: number; steps: number; voided: number } {
    return { ...this.#groupStats };
  }

  /** Runs a group; on a failure of the group as a whole, each step again alone. Never rejects. */
  async #runGroup(group: QueuedStep[]): Promise<void> {
    this.#reserveIds();
    this.#groupStats.transactions++;
    this.#groupStats.steps += group.length;
    let settled: PromiseSettledResult<unknown>[];
    try {
      settled = await this.#groupTx(group);
    } catch (e) {
      // A statement failed, a step failed after its writes were sent, or one step's input could not
      // be written into the group's statements: which step caused it is unknown, and alone each
      // commits or fails on its own. Only an unreachable PostgreSQL fails them all as they are.
      if (group.length > 1 && !isUnreachable(e)) {
        this.#groupStats.voided++;
        await Promise.all(group.map((q) => this.#runGroup([q])));
        return;
      }
      for (const q of group) q.reject(e);
      return;
    }
    settled.forEach((r, i) => (r.status === 'fulfilled' ? group[i]!.resolve(r.value) : group[i]!.reject(r.reason)));
  }

  /**
   * One transaction for `group` (steps of distinct conversations): BEGIN, every lock and the rows
   * in one round trip, the steps, then all their writes with the COMMIT. A step that fails before
   * any of its writes was sent drops them and fails alone; after, the whole group is void.
   */
  #groupTx(group: QueuedStep[]): Promise<PromiseSettledResult<unknown>[]> {
    if (group.length === 1) {
      const q = group[0]!;
      return inTransaction(this.#pool, this.#beginOne(q.key, q.delivery), async (_c, started, batch) => {
        // The row lock too (when the row exists): a sweeping node skips a conversation a step holds.
        const results = started as unknown as pg.QueryResult[];
        const row = results[2]!.rows[0] as ConversationRow | undefined;
        const withDelivery =
          q.delivery === undefined
            ? undefined
            : {
                row: results[3]!.rows[0] as Record<string, unknown> | undefined,
                pending: Number((results[4]!.rows[0] as { n: string }).n),
              };
        return [{ status: 'fulfilled', value: await q.step(this.#stepOf(q, batch, row, withDelivery)) }];
      });
    }
    const withDelivery = group.filter((q) => q.delivery !== undefined);
    return inTransaction(this.#pool, this.#beginGroup(group, withDelivery), async (c, started, batch) => {
      const results = started as unknown as pg.QueryResult[];
      const conversations = new Map((results[2]!.rows as ConversationRow[]).map((r) => [r.id as string, r]));
      const deliveries = new Map(
        withDelivery.length === 0 ? [] : (results[3]!.rows as Record<string, unknown>[]).map((r) => [Number(r.id), r]),
      );
      const counts = new Map(
        withDelivery.length === 0
          ? []
          : (results[4]!.rows as { id: string; n: string }[]).map((r) => [r.id, Number(r.n)]),
      );
      const line = { tail: Promise.resolve() as Promise<unknown> };
      const batches = group.map(() => new StatementBatch(c, line));
      const settled = await Promise.allSettled(
        group.map((q, i) =>
          q.step(
            this.#stepOf(
              q,
              batches[i]!,
              conversations.get(q.key),
              q.delivery === undefined
                ? undefined
                : { row: deliveries.get(q.delivery), pending: counts.get(q.key) ?? 0 },
            ),
          ),
        ),
      );
      settled.forEach((r, i) => {
        const b = batches[i]!;
        if (b.failed || (r.status === 'rejected' && b.wrote)) throw new GroupVoid();
        if (r.status === 'fulfilled') batch.adopt(b);
      });
      return settled;
    });
  }

  /** The step of `q` over what its transaction read: its conversation's row and, for a step about one delivery, that row (locked) and the pending count. */
  #stepOf(
    q: QueuedStep,
    batch: StatementBatch,
    row: ConversationRow | undefined,
    withDelivery: { row: Record<string, unknown> | undefined; pending: number } | undefined,
  ): ConversationStep {
    const locked = withDelivery && { id: q.delivery!, row: withDelivery.row };
    const pending = withDelivery && { base: withDelivery.pending, delta: 0, valid: true };
    return this.#step(batch, q.key, row && conversationOf(row), locked, pending);
  }

  /** BEGIN, the lock and the row in one round trip (with `delivery`: its row locked and the pending count too). */
  #beginOne(id: string, did: number | undefined): string {
    // A simple query of several statements, run in order (so the lock is held before the row is
    // read), with the id as an escaped literal since a multi-statement query takes no parameters.
    // A step about one delivery (an acknowledgement, mostly) also counts the conversation's pending
    // deliveries here, under the lock: outstanding() then needs no round trip of its own.
    const lit = escapeLiteral(id);
    return [
      `BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('caxton-conversation:' || ${lit}, 0)); SELECT * FROM ${this.#s}.conversations WHERE id = ${lit} FOR UPDATE`,
      ...(did === undefined
        ? []
        : [`SELECT * FROM ${this.#s}.deliveries WHERE id = ${literal(did)} FOR UPDATE`, this.#pendingSql(`= ${lit}`)]),
    ].join('; ');
  }

  /**
   * The same for a group, in one round trip. Every lock is taken in one order (the locks' keys,
   * the rows' ids), so two nodes' groups never wait for each other in a cycle; the rows are read
   * once all the locks are held.
   */
  #beginGroup(group: readonly QueuedStep[], withDelivery: readonly QueuedStep[]): string {
    const ids = `ARRAY[${group.map((q) => escapeLiteral(q.key)).join(', ')}]::text[]`;
    return [
      'BEGIN',
      `SELECT pg_advisory_xact_lock(k) FROM (SELECT hashtextextended('caxton-conversation:' || id, 0) AS k FROM unnest(${ids}) AS id ORDER BY k) AS l`,
      `SELECT * FROM ${this.#s}.conversations WHERE id = ANY(${ids}) ORDER BY id FOR UPDATE`,
      ...(withDelivery.length === 0
        ? []
        : [
            `SELECT * FROM ${this.#s}.deliveries WHERE id = ANY(ARRAY[${withDelivery.map((q) => literal(q.delivery)).join(', ')}]::bigint[]) ORDER BY id FOR UPDATE`,
            this.#pendingSql(`= ANY(ARRAY[${withDelivery.map((q) => escapeLiteral(q.key)).join(', ')}]::text[])`, true),
          ]),
    ].join('; ');
  }

  /**
   * Runs `step` on up to `limit` open conversations whose deadline passed, each in its own
   * transaction, skipping those another node is handling now; returns how many it handled.
   */
  async expired(
    now: string,
    limit: number,
    step: (s: ConversationStep & { readonly conversation: Conversation }) => Promise<void>,
  ): Promise<number> {
    let handled = 0;
    // Conversations whose step lock another node holds right now: left to the next sweep.
    const busy: string[] = [];
    for (let i = 0; i < limit; i++) {
      const did = await this.#tx(async (c, batch) => {
        const row = (
          await c.query<ConversationRow>(
            `SELECT * FROM ${this.#s}.conversations WHERE state IN ('initiated', 'in_progress') AND expires_at < $1 AND NOT (id = ANY($2))
             ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
            [now, busy],
          )
        ).rows[0];
        if (!row) return 'none' as const;
        // The lock inConversation takes: never wait for it (that step may be waiting for this row).
        const locked = await c.query<{ ok: boolean }>(
          'SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS ok',
          [`caxton-conversation:${row.id}`],
        );
        if (!locked.rows[0]!.ok) {
          busy.push(row.id);
          return 'busy' as const;
        }
        await step(this.#step(batch, row.id, conversationOf(row)) as ConversationStep & { conversation: Conversation });
        return 'done' as const;
      });
      if (did === 'none') break;
      if (did === 'done') handled++;
    }
    return handled;
  }

  /** The count of pending deliveries of the conversations `where` matches (`= 'id'`), per conversation with `grouped`. */
  // Driven from the conversation's messages (LATERAL: a nested loop on deliveries_message);
  // planned from deliveries_open instead, it visited every pending delivery of the cluster.
  #pendingSql(where: string, grouped = false): string {
    const from = `FROM ${this.#s}.messages m CROSS JOIN LATERAL (SELECT 1 FROM ${this.#s}.deliveries d WHERE d.message_id = m.id AND d.state = 'pending') p WHERE m.conversation_id ${where}`;
    return grouped
      ? `SELECT m.conversation_id AS id, count(*) AS n ${from} GROUP BY m.conversation_id`
      : `SELECT count(*) AS n ${from}`;
  }

  /** Takes the next reserved delivery id (undefined when none is left: the caller asks PostgreSQL), reserving more ahead of need. */
  #takeId(): number | undefined {
    const id = this.#ids.shift();
    if (this.#ids.length < ID_BLOCK / 4) this.#reserveIds();
    return id;
  }

  /** Reserves a block of delivery ids when fewer than a quarter of one is left (one query, off any step's path). */
  #reserveIds(): void {
    if (this.#reserving || this.#ids.length >= ID_BLOCK / 4) return;
    this.#reserving = this.#pool
      .query<{ id: string }>(
        `SELECT nextval(pg_get_serial_sequence('${this.#s}.deliveries', 'id')) AS id FROM generate_series(1, ${ID_BLOCK})`,
      )
      .then(
        (r) => void this.#ids.push(...r.rows.map((x) => Number(x.id))),
        () => {}, // PostgreSQL away: steps take ids from the INSERT meanwhile, and the next step tries again
      )
      .finally(() => (this.#reserving = undefined));
  }

  #step(
    b: StatementBatch,
    id: string,
    conversation: Conversation | undefined,
    locked?: { id: number; row: Record<string, unknown> | undefined },
    pending?: PendingCount,
  ): ConversationStep {
    const s = this.#s;
    const lockedState = locked?.row?.state as DeliveryRow['state'] | undefined;
    /** The conversation of each message this step inserted (whether its deliveries count as this conversation's). */
    const inserted = new Map<string, string>();
    return {
      conversation,
      messages: async () =>
        (
          await b.now<{ body: string; routed_to: string }>(
            `SELECT body, routed_to FROM ${s}.messages WHERE conversation_id = $1 ORDER BY seq`,
            [id],
          )
        ).rows.map(storedOf),
      saveConversation: async (v) => {
        b.later(
          `INSERT INTO ${s}.conversations (id, protocol, state, initiator, participants, capability, turns, max_turns, created_at, updated_at, expires_at, reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
           ON CONFLICT (id) DO UPDATE SET protocol = excluded.protocol, state = excluded.state, participants = excluded.participants,
             turns = excluded.turns, max_turns = excluded.max_turns, updated_at = excluded.updated_at, expires_at = excluded.expires_at, reason = excluded.reason`,
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
      },
      insertMessage: async (m, routedTo) => {
        inserted.set(m.id, m.conversation_id);
        b.later(
          `INSERT INTO ${s}.messages (id, conversation_id, performative, sender, created_at, body, routed_to) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
          [
            m.id,
            m.conversation_id,
            m.performative,
            m.sender,
            m.timestamp,
            scrubSecrets(JSON.stringify(m)),
            JSON.stringify(routedTo),
          ],
        );
      },
      delivery: async (did) => {
        // Locked and read with BEGIN (inConversation's opts.delivery), unless written since.
        if (locked?.id === did) return locked.row && deliveryOf(locked.row);
        const r = (await b.now(`SELECT * FROM ${s}.deliveries WHERE id = $1 FOR UPDATE`, [did])).rows[0] as
          Record<string, unknown> | undefined;
        return r && deliveryOf(r);
      },
      setDelivery: async (did, to, now) => {
        if (pending?.valid) {
          // The count read with BEGIN stays right for the locked row, whose earlier state is known.
          if (locked?.id === did && lockedState !== undefined)
            pending.delta += (to.state === 'pending' ? 1 : 0) - (lockedState === 'pending' ? 1 : 0);
          else pending.valid = false;
        }
        if (locked?.id === did) locked = undefined;
        const tag = to.publish_tag ?? null;
        b.later(
          `UPDATE ${s}.deliveries SET state = $1, attempts = $2, last_error = COALESCE($3, last_error), receiver = COALESCE($4, receiver), next_at = COALESCE($5, next_at), updated_at = $6,
             publish_tag = COALESCE($8, publish_tag), unpublished_since = CASE WHEN $8::text IS NULL THEN unpublished_since ELSE $9::bigint END WHERE id = $7`,
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
      },
      outstanding: async () =>
        pending?.valid
          ? pending.base + pending.delta
          : Number((await b.now<{ n: string }>(this.#pendingSql(`= ${escapeLiteral(id)}`), [])).rows[0]!.n),
      insertSubscription: async (r) => {
        b.later(
          `INSERT INTO ${s}.subscriptions (id, conversation_id, subscriber, capability, agent, content, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
          [r.id, r.conversation_id, r.subscriber, r.capability, r.agent, scrubSecrets(r.content), r.created_at],
        );
      },
      deleteSubscription: async (cid) => {
        b.later(`DELETE FROM ${s}.subscriptions WHERE conversation_id = $1`, [cid]);
      },
      insertDelivery: async (messageId, receiver, now) => {
        if (pending?.valid) {
          const of = inserted.get(messageId);
          if (of === undefined) pending.valid = false;
          else if (of === id) pending.delta++;
        }
        const reserved = this.#takeId();
        if (reserved !== undefined) {
          b.later(
            `INSERT INTO ${s}.deliveries (id, message_id, receiver, state, updated_at, unpublished_since) VALUES ($1, $2, $3, 'pending', $4, $5)`,
            [reserved, messageId, receiver, now, Date.now()],
          );
          return reserved;
        }
        return Number(
          (
            await b.now<{ id: string }>(
              `INSERT INTO ${s}.deliveries (message_id, receiver, state, updated_at, unpublished_since) VALUES ($1, $2, 'pending', $3, $4) RETURNING id`,
              [messageId, receiver, now, Date.now()],
            )
          ).rows[0]!.id,
        );
      },
    };
  }

  #tx<T>(fn: (c: pg.PoolClient, batch: StatementBatch) => Promise<T>): Promise<T> {
    return inTransaction(this.#pool, 'BEGIN', (c, _started, batch) => fn(c, batch));
  }

  // ---- delivery rows (each its own statement: a row belongs to one delivery, held by one node) ----

  /** The delivery is done; the replies it produced are stored in the same transaction. */
  ack(id: number, replies: readonly AclMessage[], now: string): Promise<void> {
    return this.#tx(async (_c, batch) => {
      batch.later(
        `UPDATE ${this.#s}.deliveries SET state = 'done', attempts = attempts + 1, updated_at = $1 WHERE id = $2`,
        [now, id],
      );
      for (const r of replies) await this.#step(batch, r.conversation_id, undefined).insertMessage(r, []);
    });
  }

  /**
   * A failed attempt of a pending delivery, to be run again at `nextAt`. Only a row still pending
   * changes: false when it is done, dead or rerouted already (another node, or another copy of the
   * delivery JetStream gave this one, finished it first). Why: writing 'pending' over 'done' ran
   * the delivery again and stored a second answer (three-nodes e2e, nats-server killed).
   */
  async retry(id: number, attempts: number, nextAt: number, error: string, now: string): Promise<boolean> {
    const r = await this.#pool.query(
      `UPDATE ${this.#s}.deliveries SET attempts = $1, next_at = $2, last_error = $3, updated_at = $4 WHERE id = $5 AND state = 'pending'`,
      [attempts, nextAt, scrubSecrets(error), now, id],
    );
    return (r.rowCount ?? 0) > 0;
  }

  /** A pending delivery dead-lettered (false: it was not pending any more, as for `retry`). */
  async dead(id: number, attempts: number, error: string, now: string): Promise<boolean> {
    const r = await this.#pool.query(
      `UPDATE ${this.#s}.deliveries SET state = 'dead', attempts = $1, last_error = $2, updated_at = $3 WHERE id = $4 AND state = 'pending'`,
      [attempts, scrubSecrets(error), now, id],
    );
    return (r.rowCount ?? 0) > 0;
  }

  /** A dead letter back to pending with fresh attempts; false when it was not dead (another node replayed it first). */
  async replay(id: number, now: string): Promise<boolean> {
    const r = await this.#pool.query(
      `UPDATE ${this.#s}.deliveries SET state = 'pending', attempts = 0, next_at = 0, updated_at = $1 WHERE id = $2 AND state = 'dead'`,
      [now, id],
    );
    return (r.rowCount ?? 0) > 0;
  }

  // ---- publishing ----

  /** Records JetStream's PubAck of these deliveries (under the tag each was published with: a later replay's stays unpublished). */
  async markPublished(published: readonly { id: number; tag: string }[]): Promise<void> {
    if (published.length === 0) return;
    await this.#pool.query(
      // The rows are locked in id order, as a group of steps locks its deliveries (pg-message-store
      // #beginGroup): the two never wait for each other in a cycle.
      `UPDATE ${this.#s}.deliveries d SET unpublished_since = NULL FROM (
         SELECT x.id FROM ${this.#s}.deliveries x JOIN unnest($1::bigint[], $2::text[]) AS p(id, tag) ON x.id = p.id AND x.publish_tag = p.tag
         WHERE x.unpublished_since IS NOT NULL ORDER BY x.id FOR UPDATE OF x) AS l WHERE d.id = l.id`,
      [published.map((p) => p.id), published.map((p) => p.tag)],
    );
  }

  /** Pending deliveries stored before `before` (epoch ms) whose publish was never confirmed, oldest first. */
  async unpublished(before: number, limit: number): Promise<UnpublishedDelivery[]> {
    const rows = (
      await this.#pool.query<{ id: string; receiver: string; publish_tag: string; body: string }>(
        `SELECT d.id, d.receiver, d.publish_tag, m.body FROM ${this.#s}.deliveries d JOIN ${this.#s}.messages m ON m.id = d.message_id
         WHERE d.unpublished_since IS NOT NULL AND d.unpublished_since < $1 AND d.state = 'pending' ORDER BY d.unpublished_since LIMIT $2`,
        [before, limit],
      )
    ).rows;
    return rows.map((r) => ({
      id: Number(r.id),
      receiver: r.receiver,
      tag: r.publish_tag,
      message: JSON.parse(r.body) as AclMessage,
    }));
  }

  /**
   * Claims pending deliveries nothing touched since `before` (epoch ms: not stored, retried, or
   * published again since), oldest first, for the reconciliation sweep: whatever their publish mark
   * says, the stream may have lost them. A claimed row is not claimed again before `before` passes
   * its claim, on this node or another.
   */
  async stale(before: number, limit: number): Promise<UnpublishedDelivery[]> {
    const s = this.#s;
    const rows = (
      await this.#pool.query<{ id: string; receiver: string; publish_tag: string; body: string }>(
        `WITH claimed AS (
           UPDATE ${s}.deliveries d SET reconciled_at = $3 FROM (
             SELECT id FROM ${s}.deliveries WHERE state = 'pending' AND unpublished_since IS NULL AND updated_at < $1 AND next_at < $2
               AND (reconciled_at IS NULL OR reconciled_at < $2) ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) AS x
           WHERE d.id = x.id RETURNING d.id, d.receiver, d.publish_tag, d.message_id)
         SELECT c.id, c.receiver, c.publish_tag, m.body FROM claimed c JOIN ${s}.messages m ON m.id = c.message_id ORDER BY c.id`,
        [new Date(before).toISOString(), before, Date.now(), limit],
      )
    ).rows;
    return rows.map((r) => ({
      id: Number(r.id),
      receiver: r.receiver,
      tag: r.publish_tag,
      message: JSON.parse(r.body) as AclMessage,
    }));
  }

  // ---- retention ----

  /**
   * One batch of retention, as the single-node rules (src/messaging/retention.ts): dead letters
   * older than `dead_letter_retention` or beyond `max_dead_letters`, then finished conversations
   * with nothing undelivered or dead, idle longer than `retention` or beyond `max_conversations`
   * (oldest first), each with its messages, deliveries and subscriptions. One node at a time runs
   * it (a transaction-scoped try-lock; the others skip). Returns the rows deleted per rule and
   * whether a full batch was taken (more may be due).
   */
  prune(
    cfg: MessagingRetentionLimits,
    batch: number,
  ): Promise<{ dead_letters: number; conversations: number; more: boolean; skipped: boolean }> {
    const s = this.#s;
    return this.#tx(async (c) => {
      const lock = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS ok', [
        `caxton-retention:${s}`,
      ]);
      if (!lock.rows[0]!.ok) return { dead_letters: 0, conversations: 0, more: false, skipped: true };
      const deadCutoff = new Date(Date.now() - cfg.dead_letter_retention).toISOString();
      const dead = await c.query(
        `DELETE FROM ${s}.deliveries WHERE id IN (
           (SELECT id FROM ${s}.deliveries WHERE state = 'dead' AND updated_at < $1 ORDER BY id LIMIT $2)
           UNION (SELECT id FROM ${s}.deliveries WHERE state = 'dead' ORDER BY id DESC OFFSET $3 LIMIT $2))`,
        [deadCutoff, batch, cfg.max_dead_letters],
      );
      const cutoff = new Date(Date.now() - cfg.retention).toISOString();
      const settled = `state IN ('completed', 'failed', 'expired') AND NOT EXISTS (SELECT 1 FROM ${s}.messages m JOIN ${s}.deliveries d ON d.message_id = m.id WHERE m.conversation_id = c.id AND d.state <> 'done')`;
      const ids = (
        await c.query<{ id: string }>(
          `(SELECT id FROM ${s}.conversations c WHERE ${settled} AND updated_at < $1 ORDER BY updated_at LIMIT $2)
           UNION (SELECT id FROM ${s}.conversations c WHERE ${settled} ORDER BY updated_at DESC OFFSET $3 LIMIT $2)`,
          [cutoff, batch, cfg.max_conversations],
        )
      ).rows.map((r) => r.id);
      let conversations = 0;
      if (ids.length > 0) {
        await c.query(
          `DELETE FROM ${s}.deliveries WHERE message_id IN (SELECT id FROM ${s}.messages WHERE conversation_id = ANY($1))`,
          [ids],
        );
        await c.query(`DELETE FROM ${s}.messages WHERE conversation_id = ANY($1)`, [ids]);
        await c.query(`DELETE FROM ${s}.subscriptions WHERE conversation_id = ANY($1)`, [ids]);
        conversations = (await c.query(`DELETE FROM ${s}.conversations WHERE id = ANY($1)`, [ids])).rowCount ?? 0;
      }
      const deadLetters = dead.rowCount ?? 0;
      return {
        dead_letters: deadLetters,
        conversations,
        more: deadLetters >= batch || ids.length >= batch,
        skipped: false,
      };
    });
  }

  // ---- reads ----

  /** The active subscriptions to a capability or to an agent (by name, any case). */
  async subscriptionsFor(capability: string | undefined, agent: string): Promise<SubscriptionRow[]> {
    return (
      await this.#pool.query<SubscriptionRow>(
        `SELECT * FROM ${this.#s}.subscriptions WHERE (capability IS NOT NULL AND capability = $1) OR (agent IS NOT NULL AND lower(agent) = lower($2)) ORDER BY created_at, id`,
        [capability ?? null, agent],
      )
    ).rows;
  }

  /** Open conversations and dead letters, for the node's gauges (one round trip). */
  async counts(): Promise<{ open: number; dead: number }> {
    const r = (
      await this.#pool.query<{ open: string; dead: string }>(
        `SELECT (SELECT count(*) FROM ${this.#s}.conversations WHERE state IN ('initiated', 'in_progress')) AS open, (SELECT count(*) FROM ${this.#s}.deliveries WHERE state = 'dead') AS dead`,
      )
    ).rows[0]!;
    return { open: Number(r.open), dead: Number(r.dead) };
  }

  /** The store answers (readiness: PostgreSQL reachable). */
  async ping(): Promise<void> {
    await this.#pool.query('SELECT 1');
  }

  async getMessage(id: string): Promise<StoredMessage | undefined> {
    const r = (
      await this.#pool.query<{ body: string; routed_to: string }>(
        `SELECT body, routed_to FROM ${this.#s}.messages WHERE id = $1`,
        [id],
      )
    ).rows[0];
    return r && storedOf(r);
  }

  async getConversation(id: string): Promise<Conversation | undefined> {
    const r = (await this.#pool.query<ConversationRow>(`SELECT * FROM ${this.#s}.conversations WHERE id = $1`, [id]))
      .rows[0];
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
      (await this.#pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.#s}.conversations ${where}`, args))
        .rows[0]!.n,
    );
    const rows = (
      await this.#pool.query<ConversationRow>(
        `SELECT * FROM ${this.#s}.conversations ${where} ORDER BY created_at DESC, id LIMIT $${args.length + 1} OFFSET $${args.length + 2}`,
        [...args, q.limit, q.offset],
      )
    ).rows;
    return { items: rows.map(conversationOf), total };
  }

  /** Delivery rows by id, in one query (the rows a fetch from JetStream brought, read together). */
  async getDeliveries(ids: readonly number[]): Promise<Map<number, DeliveryRow>> {
    const rows = (await this.#pool.query(`SELECT * FROM ${this.#s}.deliveries WHERE id = ANY($1::bigint[])`, [ids]))
      .rows as Record<string, unknown>[];
    return new Map(rows.map((r) => [Number(r.id), deliveryOf(r)]));
  }

  async getDelivery(id: number): Promise<DeliveryRow | undefined> {
    return (await this.getDeliveries([id])).get(id);
  }

  async deliveriesOf(messageId: string): Promise<DeliveryRow[]> {
    return (
      await this.#pool.query(`SELECT * FROM ${this.#s}.deliveries WHERE message_id = $1 ORDER BY id`, [messageId])
    ).rows.map((r) => deliveryOf(r as Record<string, unknown>));
  }

  async deadLetters(limit: number, offset: number): Promise<Page<DeliveryRow>> {
    const items = (
      await this.#pool.query(
        `SELECT * FROM ${this.#s}.deliveries WHERE state = 'dead' ORDER BY id LIMIT $1 OFFSET $2`,
        [limit, offset],
      )
    ).rows.map((r) => deliveryOf(r as Record<string, unknown>));
    const total = Number(
      (await this.#pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.#s}.deliveries WHERE state = 'dead'`))
        .rows[0]!.n,
    );
    return { items, total };
  }
}
