/**
 * The rows floor of bench/cluster.ts: the component floor's parts (fastify, PostgreSQL, JetStream)
 * writing and reading exactly the rows a cluster node writes and reads for a one-way message, in
 * the statements' forms a node sends them, and nothing else: no validation, routing, agent run,
 * audit or metrics. It answers whether a target is reachable with Caxton's row pattern at all,
 * whatever the node's own code costs.
 *
 * Per message, as a node does (the statements copied from a node's PostgreSQL log,
 * `log_min_duration_statement = 0`, one-way `agree`s one per POST and 100 per POST):
 *  - accept, in groups: `BEGIN; INSERT messages …; INSERT deliveries …; COMMIT` in one round trip,
 *    the message's one-way conversation kept as JSON in its row, the delivery ids reserved from
 *    the sequence in blocks; then the JetStream publish, awaiting its PubAck, then the 202;
 *  - take: one read of the fetched deliveries' rows per consumer turn, with the kept conversation
 *    of a first attempt;
 *  - acknowledge, in groups: `BEGIN;` the conversations' advisory locks, the done-marks as one
 *    `UPDATE … FROM (VALUES …) WHERE` the row is as taken `RETURNING`, and `COMMIT`, in one round
 *    trip; then the JetStream ack. No conversation row (the view derives it from the done row);
 *  - the agent events of a turn as one batch row (the event store's statement).
 *
 * The tables and indexes are the cluster's own (its migrations, in a schema of this server's).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type pg from 'pg';
import { MESSAGE_MIGRATIONS } from '../../src/messaging/postgres/pg-message-tables.js';
import { EVENT_STORE_MIGRATIONS } from '../../src/observability/pg-agent-events.js';
import { writeChunk, type BatchRow } from '../../src/observability/pg-event-chunks.js';
import { PgStatsHistory } from '../../src/observability/pg-stats-history.js';
import { literal, migrateSchema, quotedSchema } from '../../src/storage/pg/index.js';

/**
 * Steps per group at most, as a node's step groups (`[cluster.state]` defaults). One group of a
 * kind at a time, as the component floor: the next starts when the previous one committed, so
 * groups are as large as the load makes them, the fewest transactions per message.
 */
const GROUP = 64;
const ID_BLOCK = 256;

/**
 * A failed write or read, said once per kind on stderr (the suite's): the messages it held stay
 * unacknowledged, and the suite then reports the repetition as not drained.
 */
const failed = new Set<string>();
export const report =
  (what: string) =>
  (e: unknown): void => {
    if (failed.has(what)) return;
    failed.add(what);
    console.error(`rows floor: ${what} failed: ${e instanceof Error ? e.message : String(e)}`);
  };

/** Runs queued items through `write` in groups of at most GROUP, one group at a time. */
export function grouped<T>(write: (batch: T[]) => Promise<void>): (item: T) => Promise<void> {
  const queue: { item: T; done: (e?: unknown) => void }[] = [];
  let running = false;
  const pump = (): void => {
    if (!running && queue.length > 0) {
      const batch = queue.splice(0, GROUP);
      running = true;
      write(batch.map((b) => b.item))
        .then(
          () => batch.forEach((b) => b.done()),
          (e: unknown) => batch.forEach((b) => b.done(e)),
        )
        .finally(() => {
          running = false;
          pump();
        });
    }
  };
  return (item) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ item, done: (e) => (e === undefined ? resolve() : reject(e as Error)) });
      // The first of a turn waits for the turn's others, as a node's groups do.
      if (queue.length === 1) queueMicrotask(pump);
    });
}

/**
 * A transaction sent as one multi-statement query (one round trip, as a node sends its groups);
 * a failure leaves the session in the aborted transaction, rolled back here before it is reused.
 */
export async function inOneTrip(pool: pg.Pool, sql: string): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query(sql);
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    c.release();
  }
}

/** A floor's message as a node makes it: ids, the ACL message's JSON and its one-way conversation's kept JSON. */
export function floorMessage(input: Record<string, unknown>) {
  const id = `msg_${randomUUID().replace(/-/g, '')}`;
  const conversation = `conv_${randomUUID().replace(/-/g, '')}`;
  const at = new Date().toISOString();
  const body = JSON.stringify({
    id,
    performative: input.performative,
    sender: 'key:floor',
    receivers: [input.receiver],
    content: input.content,
    conversation_id: conversation,
    params: {},
    timestamp: at,
    chain: [],
    on_behalf_of: 'key:floor',
  });
  const opening = JSON.stringify({
    id: conversation,
    protocol: null,
    state: 'initiated',
    initiator: 'key:floor',
    participants: JSON.stringify(['key:floor', input.receiver]),
    capability: null,
    turns: 1,
    max_turns: 50,
    created_at: at,
    updated_at: at,
    expires_at: new Date(Date.now() + 3_600_000).toISOString(),
    reason: null,
  });
  return { id, conversation, at, body, opening };
}

/** The `message.sent` event row of a floor's message (the event store's batch row). */
export const sentEvent = (data: Record<string, unknown>): BatchRow => [
  Date.now(),
  'message.sent',
  'communication',
  'key:floor',
  randomUUID().replace(/-/g, ''),
  randomUUID().replace(/-/g, '').slice(0, 16),
  JSON.stringify(data),
];

/** POST `path`: one message (202) or an array of them (207), each through `one`. */
export function postMessages(
  app: FastifyInstance,
  path: string,
  one: (input: Record<string, unknown>) => Promise<Record<string, unknown>>,
): void {
  app.post(path, async (req, reply) => {
    const b = req.body as Record<string, unknown> | Record<string, unknown>[];
    if (Array.isArray(b)) return reply.code(207).send({ results: await Promise.all(b.map(one)) });
    return reply.code(202).send(await one(b));
  });
}

export interface RowsFloorStats {
  published: number;
  consumedAt: number[];
}

/** Sets up the schema and registers POST /rows (one message, or an array of them) and the consumer. */
export async function rowsFloor(
  app: FastifyInstance,
  pool: pg.Pool,
  js: JetStreamClient,
  consume: () => Promise<AsyncIterable<JsMsg>>,
  opts: { schema: string; subject: string; wallNow: () => number },
): Promise<RowsFloorStats> {
  const schema = opts.schema;
  await migrateSchema(pool, schema, MESSAGE_MIGRATIONS);
  await migrateSchema(pool, schema, EVENT_STORE_MIGRATIONS);
  await PgStatsHistory.migrate(pool, schema);
  const s = quotedSchema(schema);
  const stats: RowsFloorStats = { published: 0, consumedAt: [] };

  // Delivery ids reserved a block at a time, one reservation in flight, as a node reserves them.
  const ids: number[] = [];
  let reserving: Promise<void> | undefined;
  const reserve = async (): Promise<void> => {
    const r = await pool.query<{ id: string }>(
      `SELECT nextval(pg_get_serial_sequence('${s}.deliveries', 'id')) AS id FROM generate_series(1, ${ID_BLOCK})`,
    );
    ids.push(...r.rows.map((x) => Number(x.id)));
  };
  const takeId = async (): Promise<number> => {
    while (ids.length === 0) await (reserving ??= reserve().finally(() => (reserving = undefined)));
    return ids.shift()!;
  };

  interface Accepted {
    id: string;
    conversation: string;
    body: string;
    at: string;
    opening: string;
    delivery: number;
  }
  const accept = grouped<Accepted>(async (batch) => {
    const now = Date.now();
    await inOneTrip(
      pool,
      `BEGIN;
INSERT INTO ${s}.messages (id, conversation_id, performative, sender, created_at, body, routed_to, conversation) VALUES ${batch
        .map(
          (a) =>
            `(${[a.id, a.conversation, 'agree', 'key:floor', a.at, a.body, '["bench-sink"]', a.opening].map(literal).join(', ')})`,
        )
        .join(', ')};
INSERT INTO ${s}.deliveries (id, message_id, receiver, state, updated_at, unpublished_since, kept_until) VALUES ${batch
        .map(
          (a) =>
            `(${[a.delivery, a.id, 'bench-sink', 'pending', a.at, null, now + 3_600_000].map(literal).join(', ')})`,
        )
        .join(', ')};
COMMIT`,
    );
  });

  interface Taken {
    delivery: number;
    conversation: string;
    /** The row's updated_at as the take read it: the done-marking's condition. */
    readAt: string;
  }
  const acknowledge = grouped<Taken>(async (batch) => {
    const convs = `ARRAY[${batch.map((t) => literal(t.conversation)).join(', ')}]::text[]`;
    const at = new Date().toISOString();
    const values = batch.map(
      (t) => `(${t.delivery}::bigint, 1::integer, ${literal(at)}::text, ${literal(t.readAt)}::text)`,
    );
    await inOneTrip(
      pool,
      `BEGIN; SELECT pg_advisory_xact_lock(k) FROM (SELECT hashtextextended('caxton-conversation:' || id, 0) AS k FROM unnest(${convs}) AS id ORDER BY k) AS l;
UPDATE ${s}.deliveries AS d SET state = 'done', attempts = v.attempts, updated_at = v.at, unpublished_since = NULL
      FROM (VALUES ${values.join(', ')}) AS v(id, attempts, at, read_at)
      WHERE d.id = v.id AND d.state = 'pending' AND d.attempts = 0 AND d.kept_until IS NOT NULL AND d.updated_at = v.read_at
      RETURNING d.id;
COMMIT`,
    );
  });

  // The events of a turn as one batch row (the cluster event store's statement), one per message.
  let events: BatchRow[] = [];
  const event = (data: Record<string, unknown>): void => {
    if (events.length === 0)
      setImmediate(() => {
        const batch = events;
        events = [];
        void writeChunk(pool, s, batch, 'floor').catch(report('an event batch'));
      });
    events.push(sentEvent(data));
  };

  const one = async (input: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const { id, conversation, at, body, opening } = floorMessage(input);
    const delivery = await takeId();
    await accept({ id, conversation, body, at, opening, delivery });
    await js.publish(
      `${opts.subject}.${String(input.receiver)}`,
      `{"sent":${opts.wallNow()},"id":${delivery},"receiver":${JSON.stringify(input.receiver)},"message":${body}}`,
      { msgID: `d${delivery}` },
    );
    stats.published++;
    event({
      message_id: id,
      conversation_id: conversation,
      performative: input.performative,
      sender: 'key:floor',
      receivers: [input.receiver],
    });
    return { id, conversation_id: conversation, status: 202 };
  };

  postMessages(app, '/rows', one);

  const it = await consume();
  void (async () => {
    let turn: JsMsg[] = [];
    const take = async (msgs: JsMsg[]): Promise<void> => {
      const parsed = msgs.map((m) => m.json<{ id: number; message: { conversation_id: string } }>());
      const read = await pool.query<{ id: string; updated_at: string }>(
        `SELECT id, message_id, receiver, state, attempts, next_at, updated_at, kept_until IS NOT NULL AS kept,
                reconciled_at IS NULL AND publish_tag = '' AS fresh,
                CASE WHEN kept_until IS NOT NULL AND state = 'pending' AND attempts = 0
                  THEN (SELECT m.conversation FROM ${s}.messages m WHERE m.id = d.message_id) END AS opening
         FROM ${s}.deliveries d WHERE id = ANY($1::bigint[])`,
        [parsed.map((p) => p.id)],
      );
      const readAt = new Map(read.rows.map((r) => [Number(r.id), r.updated_at]));
      await Promise.all(
        parsed.map(async (p, i) => {
          await acknowledge({ delivery: p.id, conversation: p.message.conversation_id, readAt: readAt.get(p.id)! });
          msgs[i]!.ack();
          stats.consumedAt.push(opts.wallNow());
        }),
      );
    };
    for await (const m of it) {
      // What the consumer holds in one turn is read with one query, as a node's fetch is.
      if (turn.length === 0)
        setImmediate(() => {
          const msgs = turn;
          turn = [];
          void take(msgs).catch(report('taking and acknowledging deliveries'));
        });
      turn.push(m);
    }
  })();
  return stats;
}
