/**
 * The lean rows floor of bench/cluster.ts: the component floor's parts writing the rows a one-way
 * message needs for its guarantees and nothing more, to answer what one row per (message,
 * receiver) would reach before any node code is written for it:
 *  - accept, in groups: one `INSERT … ON CONFLICT (message_id, receiver) DO NOTHING RETURNING id`
 *    of a row holding the message, its kept one-way conversation and its delivery state, committed
 *    before the JetStream publish and the 202 (a repeated client id is found by the insert, not a
 *    read);
 *  - take: nothing read. A first delivery (JetStream's delivery count 1) carries everything in its
 *    payload; a redelivery, which this floor does not meet, would read its row under the lock;
 *  - acknowledge, in groups: one `UPDATE … SET state = 'done' WHERE id = ANY(…) AND state =
 *    'pending' RETURNING id`, its own transaction: no lock, no pre-read, no conversation row;
 *  - events off the path: what the accepted messages' events would say, written as one batch row
 *    every EVENTS_MS (the projection a node would run from its rows), their cost counted.
 *
 * Indexes kept: the key, the unique (message_id, receiver), the conversation's history
 * (conversation_id, id) and the pending rows a sweep reads; the read indexes of the API's filters
 * are left to the projection.
 */
import type { FastifyInstance } from 'fastify';
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type pg from 'pg';
import { EVENT_STORE_MIGRATIONS } from '../../src/observability/pg-agent-events.js';
import { writeChunk, type BatchRow } from '../../src/observability/pg-event-chunks.js';
import { literal, migrateSchema, quotedSchema } from '../../src/storage/pg/index.js';
import { floorMessage, grouped, postMessages, report, sentEvent, type RowsFloorStats } from './rows-floor.js';

/** How often the events of what was accepted since are written (the projection's batch). */
const EVENTS_MS = 200;

const LEAN_MIGRATIONS = [
  {
    id: 'lean-floor-001',
    sql: (s: string) => `
      CREATE TABLE ${s}.deliveries (
        id              bigserial PRIMARY KEY,
        message_id      text NOT NULL,
        receiver        text NOT NULL,
        conversation_id text NOT NULL,
        performative    text NOT NULL,
        sender          text NOT NULL,
        created_at      text NOT NULL,
        body            text NOT NULL,
        conversation    text,
        state           text NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
        attempts        integer NOT NULL DEFAULT 0,
        updated_at      text NOT NULL,
        UNIQUE (message_id, receiver)
      );
      CREATE INDEX deliveries_conversation ON ${s}.deliveries (conversation_id, id);
      CREATE INDEX deliveries_pending ON ${s}.deliveries (updated_at) WHERE state = 'pending';
    `,
  },
];

/** Sets up the schema and registers POST /lean (one message, or an array of them) and the consumer. */
export async function leanRowsFloor(
  app: FastifyInstance,
  pool: pg.Pool,
  js: JetStreamClient,
  consume: () => Promise<AsyncIterable<JsMsg>>,
  opts: { schema: string; subject: string; wallNow: () => number },
): Promise<RowsFloorStats> {
  await migrateSchema(pool, opts.schema, LEAN_MIGRATIONS);
  await migrateSchema(pool, opts.schema, EVENT_STORE_MIGRATIONS);
  const s = quotedSchema(opts.schema);
  const stats: RowsFloorStats = { published: 0, consumedAt: [] };

  interface Accepted {
    id: string;
    conversation: string;
    body: string;
    at: string;
    opening: string;
  }
  const ids = new Map<string, number>();
  const accept = grouped<Accepted>(async (batch) => {
    const r = await pool.query<{ id: string; message_id: string }>(
      `INSERT INTO ${s}.deliveries (message_id, receiver, conversation_id, performative, sender, created_at, body, conversation, state, updated_at) VALUES ${batch
        .map(
          (a) =>
            `(${[a.id, 'bench-sink', a.conversation, 'agree', 'key:floor', a.at, a.body, a.opening, 'pending', a.at].map(literal).join(', ')})`,
        )
        .join(', ')}
       ON CONFLICT (message_id, receiver) DO NOTHING RETURNING id, message_id`,
    );
    for (const x of r.rows) ids.set(x.message_id, Number(x.id));
  });

  const acknowledge = grouped<number>(async (batch) => {
    await pool.query(
      `UPDATE ${s}.deliveries SET state = 'done', attempts = 1, updated_at = $2 WHERE id = ANY($1::bigint[]) AND state = 'pending' RETURNING id`,
      [batch, new Date().toISOString()],
    );
  });

  let events: BatchRow[] = [];
  setInterval(() => {
    if (events.length === 0) return;
    const batch = events;
    events = [];
    void writeChunk(pool, s, batch, 'floor').catch(report('a projected event batch'));
  }, EVENTS_MS).unref();

  const one = async (input: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const { id, conversation, at, body, opening } = floorMessage(input);
    await accept({ id, conversation, body, at, opening });
    const delivery = ids.get(id)!;
    ids.delete(id);
    await js.publish(
      `${opts.subject}.${String(input.receiver)}`,
      `{"sent":${opts.wallNow()},"id":${delivery},"receiver":${JSON.stringify(input.receiver)},"message":${body}}`,
      { msgID: `d${delivery}` },
    );
    stats.published++;
    events.push(sentEvent({ message_id: id, conversation_id: conversation, performative: input.performative }));
    return { id, conversation_id: conversation, status: 202 };
  };

  postMessages(app, '/lean', one);

  const it = await consume();
  void (async () => {
    for await (const m of it) {
      const p = m.json<{ id: number }>();
      void acknowledge(p.id).then(() => {
        m.ack();
        stats.consumedAt.push(opts.wallNow());
      }, report('acknowledging deliveries'));
    }
  })();
  return stats;
}
