/**
 * The tables of a cluster's message state in PostgreSQL (ADR 0043) and how their rows read: the
 * messaging tables of the single-node store (src/messaging/sqlite/sqlite-message-store.ts) — messages, delivery rows,
 * conversations, subscriptions — in PostgreSQL's own DDL (bigserial, ISO text timestamps kept as in
 * SQLite so rows read the same), not shared with the SQLite migration: the two differ in every id
 * column.
 */
import type { AclMessage, Conversation, DeliveryRow, StoredMessage } from '../index.js';
import { MAX_ATTEMPT_ERRORS } from '../index.js';
import type { PgMigration } from '../../storage/pg/index.js';

/** Why a one-way conversation completed: its one delivery was (the engine's reason, protocols/steps.ts afterReply). */
export const KEPT_ENDED_REASON = 'delivered';

export const MESSAGE_MIGRATIONS: readonly PgMigration[] = [
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
    // and a query must spell it the same to use these (test/messaging/postgres/pg-reads.test.ts checks).
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
  {
    // Each failed attempt's error with its time, newest last, at most MAX_ATTEMPT_ERRORS, as
    // SQLite's messaging-003-attempts: written by the UPDATE that records the failure.
    id: 'cluster-messaging-006-attempts',
    sql: (s) => `ALTER TABLE ${s}.deliveries ADD COLUMN errors jsonb;`,
  },
  {
    // A one-way conversation (ADR 0080) is kept with the message that opens it, as the JSON of its
    // conversation row, until a step ends or continues it: that step writes the row. Its one
    // delivery carries the conversation's deadline (`kept_until`, epoch ms) while it is kept, so the
    // gauge and the deadline sweep find kept conversations among the unfinished deliveries
    // (deliveries_open) with no join and no JSON. `conversations_read` is what every read of
    // conversations goes through: the rows, and the kept conversations whose delivery is pending.
    id: 'cluster-messaging-007-one-way',
    sql: (s) => `
      ALTER TABLE ${s}.messages ADD COLUMN conversation text;
      ALTER TABLE ${s}.deliveries ADD COLUMN kept_until bigint;
      CREATE VIEW ${s}.conversations_read AS
        SELECT id, protocol, state, initiator, participants, capability, turns, max_turns, created_at, updated_at, expires_at, reason
          FROM ${s}.conversations
        UNION ALL
        SELECT m.conversation_id, o.protocol, o.state, o.initiator, o.participants, o.capability, o.turns, o.max_turns, o.created_at, o.updated_at, o.expires_at, o.reason
          FROM ${s}.deliveries d
          JOIN ${s}.messages m ON m.id = d.message_id
          CROSS JOIN LATERAL json_populate_record(NULL::${s}.conversations, m.conversation::json) o
          WHERE d.state = 'pending' AND d.kept_until IS NOT NULL;
    `,
  },
  {
    // One partial index of the unfinished rows, keyed by (state, unpublished_since), serves the open
    // rows and their publish marks: every query of the marks also names `state = 'pending'` (the
    // republish sweep reads its range in mark order), so an index of the marked rows alone would be
    // one more B-tree entry per stored delivery that no query needs. The reconciliation claim, the
    // gauges, the deadline sweep and the dead letters read its `state` prefix.
    id: 'cluster-messaging-008-open-index',
    sql: (s) => `
      CREATE INDEX deliveries_open_marked ON ${s}.deliveries (state, unpublished_since) WHERE state <> 'done';
      DROP INDEX ${s}.deliveries_open;
      DROP INDEX ${s}.deliveries_unpublished;
      ALTER INDEX ${s}.deliveries_open_marked RENAME TO deliveries_open;
    `,
  },
  {
    // No index on a conversation's state: each conversation row written (every one-way message's,
    // every turn's update) would enter it, and its readers have other paths. The open states are
    // conversations_expiry's predicate (the gauge, the deadline sweep); retention's idle cutoff is
    // also a cutoff on created_at (a conversation is never updated before it is created:
    // conversations_created); a list filtered by state counts its rows by a scan, as the unfiltered list does.
    id: 'cluster-messaging-009-no-state-index',
    sql: (s) => `DROP INDEX ${s}.conversations_state;`,
  },
  {
    // When the node running a pending delivery last said it still holds it (epoch ms): nothing else
    // writes a row while its agent runs, so without it the reconciliation sweep would take a long
    // run's delivery for one the stream lost, and another node would run it again.
    id: 'cluster-messaging-010-held',
    sql: (s) => `ALTER TABLE ${s}.deliveries ADD COLUMN held_at bigint;`,
  },
  {
    // A one-way conversation kept with its message that its delivery completed is read from that
    // delivery, done: no row is written for it (ADR 0138). `deliveries_kept_done` holds those
    // deliveries (one B-tree entry at the done-marking, where the row cost a heap tuple and four
    // index entries), so the view's third branch and retention read them without scanning every
    // finished delivery. Conversations completed before this migration have their row, which the
    // view's NOT EXISTS prefers: existing databases read the same.
    id: 'cluster-messaging-011-ended-kept',
    sql: (s) => `
      CREATE INDEX deliveries_kept_done ON ${s}.deliveries (message_id) WHERE state = 'done' AND kept_until IS NOT NULL;
      CREATE OR REPLACE VIEW ${s}.conversations_read AS
        SELECT id, protocol, state, initiator, participants, capability, turns, max_turns, created_at, updated_at, expires_at, reason
          FROM ${s}.conversations
        UNION ALL
        SELECT m.conversation_id, o.protocol, o.state, o.initiator, o.participants, o.capability, o.turns, o.max_turns, o.created_at, o.updated_at, o.expires_at, o.reason
          FROM ${s}.deliveries d
          JOIN ${s}.messages m ON m.id = d.message_id
          CROSS JOIN LATERAL json_populate_record(NULL::${s}.conversations, m.conversation::json) o
          WHERE d.state = 'pending' AND d.kept_until IS NOT NULL
        UNION ALL
        SELECT m.conversation_id, o.protocol, 'completed', o.initiator, o.participants, o.capability, o.turns, o.max_turns, o.created_at, d.updated_at, NULL, '${KEPT_ENDED_REASON}'
          FROM ${s}.deliveries d
          JOIN ${s}.messages m ON m.id = d.message_id
          CROSS JOIN LATERAL json_populate_record(NULL::${s}.conversations, m.conversation::json) o
          WHERE d.state = 'done' AND d.kept_until IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM ${s}.conversations c WHERE c.id = m.conversation_id);
    `,
  },
];

/**
 * Conversation `$1` as `conversations_read` has it, planned from the id whatever the statistics
 * say: the row, or the one-way conversation its message keeps, each of that message's deliveries
 * looked up along deliveries_message (the fence keeps a plan from starting at deliveries_open,
 * every unfinished delivery of the cluster, when the statistics are from before a burst).
 */
export const conversationByIdSql = (s: string): string =>
  `SELECT * FROM ${s}.conversations WHERE id = $1
   UNION ALL
   SELECT o.* FROM ${s}.messages m
     CROSS JOIN LATERAL (SELECT ${keptJsonSql(s, 'm')} AS json OFFSET 0) k
     CROSS JOIN LATERAL json_populate_record(NULL::${s}.conversations, k.json::json) o
   WHERE m.conversation_id = $1 AND m.conversation IS NOT NULL AND k.json IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM ${s}.conversations c WHERE c.id = $1)
   LIMIT 1`;

/**
 * The conversation message `m` (an alias) keeps, as its JSON, while it is what the conversation
 * is: its one delivery pending and marked kept (as opened), or done and still marked, ended with
 * no row written (completed when that delivery was, migration cluster-messaging-011-ended-kept).
 * NULL otherwise (no mark: a step wrote the row), or with `orStored` the stored JSON as it is. Each
 * read of a kept conversation goes through it.
 */
export const keptJsonSql = (s: string, m: string, orStored = false): string => {
  const marked = `(SELECT CASE WHEN d.state = 'done' THEN (${m}.conversation::jsonb || jsonb_build_object('state', 'completed', 'reason', '${KEPT_ENDED_REASON}', 'expires_at', NULL, 'updated_at', d.updated_at))::text ELSE ${m}.conversation END
     FROM ${s}.deliveries d WHERE d.message_id = ${m}.id AND d.state IN ('pending', 'done') AND d.kept_until IS NOT NULL ORDER BY d.id LIMIT 1)`;
  // A step reads the stored JSON when no delivery carries the mark, as it always did: a row exists then, and wins.
  return orStored
    ? `CASE WHEN ${m}.conversation IS NULL THEN NULL ELSE coalesce(${marked}, ${m}.conversation) END`
    : marked;
};

/**
 * Whether a step's write of a kept conversation (`v`, as the step left it) is what reads derive
 * once its delivery is done (keptJsonSql): completed by its delivery, nothing else changed since it
 * was opened (`opened`). Then no row is written.
 */
export function endsAsKept(opened: Conversation, v: Conversation): boolean {
  return (
    v.state === 'completed' &&
    v.reason === KEPT_ENDED_REASON &&
    v.expires_at === null &&
    v.id === opened.id &&
    v.protocol === opened.protocol &&
    v.initiator === opened.initiator &&
    v.capability === opened.capability &&
    v.turns === opened.turns &&
    v.max_turns === opened.max_turns &&
    v.created_at === opened.created_at &&
    v.participants.length === opened.participants.length &&
    v.participants.every((p, i) => p === opened.participants[i])
  );
}

/** A conversation row as the JSON a one-way conversation's message keeps (migration cluster-messaging-007-one-way). */
export const openingJson = (c: Conversation): string =>
  JSON.stringify({ ...c, participants: JSON.stringify(c.participants) });

/**
 * PostgreSQL's expression for the `errors` column with one more attempt appended (`at`, `error`:
 * the placeholders of its time and its text) and the oldest dropped beyond MAX_ATTEMPT_ERRORS.
 */
export const appendAttemptError = (at: string, error: string): string =>
  `(CASE WHEN jsonb_array_length(coalesce(errors, '[]'::jsonb)) >= ${MAX_ATTEMPT_ERRORS} THEN errors - 0 ELSE coalesce(errors, '[]'::jsonb) END) || jsonb_build_array(jsonb_build_object('at', ${at}::text, 'error', ${error}::text))`;

export interface ConversationRow extends Omit<Conversation, 'participants'> {
  participants: string;
}

export const conversationOf = (r: ConversationRow): Conversation => ({
  ...r,
  participants: JSON.parse(r.participants) as string[],
});
export const storedOf = (r: { body: string; routed_to: string }): StoredMessage => ({
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
  errors: (r.errors ?? null) as DeliveryRow['errors'],
});

/** A stored delivery whose publish was not confirmed (see migration cluster-messaging-004). */
export interface UnpublishedDelivery {
  id: number;
  receiver: string;
  /** The Nats-Msg-Id suffix it was (or was to be) published with. */
  tag: string;
  message: AclMessage;
}
