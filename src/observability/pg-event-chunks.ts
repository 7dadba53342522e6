/**
 * How a cluster's agent events lie in PostgreSQL (ADR 0141): one row per written batch, not one
 * per event. A batch is what a node's events writer flushed at once (up to 500 events): its events
 * as a JSON array in id order, with the bounds and sets the reads narrow by (ids, times, agents,
 * types). Each delivered message costs its three events (`message.sent`, `message.received`,
 * `execution.finished`) a share of one row instead of three rows and their index entries.
 *
 * The ids come from one sequence shared by every node, in each batch's order, so an id still
 * orders events cluster-wide and the API's cursors (`after_id`, `before_id`) and the relay's
 * read-back (`writtenBy`) mean what they meant. The view `agent_events` shows the events as the
 * table of one row per event had them (the same columns), for an operator's SQL.
 */
import type pg from 'pg';
import { globSql } from '../storage/glob-sql.js';
import { inTransaction, type PgMigration } from '../storage/pg/index.js';
import { eventOfRow, eventOrder, eventWhere, wantedTypes, type AgentEvent, type EventQuery } from './agent-events.js';

const T = 'agent_event_chunks';

/** The columns of one event, from an element `e` of a batch's array. */
const EVENT_COLUMNS = `(e->>'id')::bigint AS id, (e->>'ts')::bigint AS ts, e->>'type' AS type, e->>'category' AS category,
  e->>'agent' AS agent, e->>'trace_id' AS trace_id, e->>'span_id' AS span_id, e->>'data' AS data`;

/** One event as an element of a batch's array (`data` is the scrubbed JSON text, kept as written). */
const EVENT_JSON = `json_build_object('id', id, 'ts', ts, 'type', type, 'category', category, 'agent', agent,
  'trace_id', trace_id, 'span_id', span_id, 'data', data)`;

/**
 * From one row per event to one row per batch: the rows there are become batches of up to 500 by
 * node, in id order, and read the same; the sequence goes on from the last id.
 */
export const CHUNK_MIGRATION: PgMigration = {
  id: 'cluster-events-003-chunks',
  sql: (s) => `
    CREATE SEQUENCE ${s}.agent_event_ids;
    CREATE TABLE ${s}.${T} (
      first_id  bigint PRIMARY KEY,
      last_id   bigint NOT NULL,
      ts_min    bigint NOT NULL,
      ts_max    bigint NOT NULL,
      n         integer NOT NULL,
      agents    text[] NOT NULL,
      types     text[] NOT NULL,
      node      text NOT NULL,
      events    json NOT NULL
    );
    CREATE INDEX ${T}_last ON ${s}.${T} (last_id);
    CREATE INDEX ${T}_node ON ${s}.${T} (node, last_id);
    CREATE INDEX ${T}_ts ON ${s}.${T} (ts_min);
    CREATE INDEX ${T}_agents ON ${s}.${T} USING gin (agents);
    CREATE INDEX ${T}_types ON ${s}.${T} USING gin (types);
    INSERT INTO ${s}.${T} (first_id, last_id, ts_min, ts_max, n, agents, types, node, events)
      SELECT min(id), max(id), min(ts), max(ts), count(*), array_agg(DISTINCT agent), array_agg(DISTINCT type), node,
             json_agg(${EVENT_JSON} ORDER BY id)
      FROM (SELECT *, (row_number() OVER (PARTITION BY node ORDER BY id) - 1) / 500 AS part FROM ${s}.agent_events) x
      GROUP BY node, part;
    SELECT setval('${s}.agent_event_ids', (SELECT coalesce(max(id), 0) + 1 FROM ${s}.agent_events), false);
    DROP TABLE ${s}.agent_events;
    CREATE VIEW ${s}.agent_events AS
      SELECT ${EVENT_COLUMNS}, c.node FROM ${s}.${T} c, json_array_elements(c.events) AS e;
  `,
};

/** One event of a batch as written: time, type, category, agent, trace id, span id, data (the scrubbed JSON text). */
export type BatchRow = readonly [number, string, string, string, string | null, string | null, string];

/**
 * `text` with each lone surrogate as U+FFFD, as the driver's UTF-8 encoding of a text parameter
 * would have it: JSON.stringify writes a lone surrogate as a `\uD800` escape, which PostgreSQL's
 * json refuses. (String.prototype.toWellFormed, Node 20, not in the ES2023 lib's types.)
 */
export const wellFormed = (text: string): string => (text as unknown as { toWellFormed(): string }).toWellFormed();

/**
 * Ids are handed out a block at a time (ID_BLOCK, the sequence's increment): one `nextval` gives
 * a batch its first id and the rest follow it. Ids stay unique and ordered cluster-wide, with gaps
 * between batches, which no cursor minds.
 */
export const ID_BLOCK = 500;

export const ID_BLOCK_MIGRATION: PgMigration = {
  id: 'cluster-events-004-id-blocks',
  sql: (s) => `ALTER SEQUENCE ${s}.agent_event_ids INCREMENT BY ${ID_BLOCK};`,
};

/**
 * Writes a batch as one row per ID_BLOCK events; resolves with the events' ids, in the batch's
 * order. The row is built here, not by PostgreSQL: parsing each event out of a JSON parameter and
 * building it again (`json_array_elements`, `json_build_object`, `json_agg`) with a `nextval` per
 * event cost the server about 50 µs an event, the largest statement of a node delivering messages.
 * What it receives now is one JSON text it only checks, its bounds and its sets.
 */
export async function writeChunk(pool: pg.Pool, s: string, rows: readonly BatchRow[], node: string): Promise<number[]> {
  const ids: number[] = [];
  for (let at = 0; at < rows.length; at += ID_BLOCK) {
    const block = rows.slice(at, at + ID_BLOCK);
    const r = await pool.query<{ id: string }>(`SELECT nextval('${s}.agent_event_ids') AS id`);
    const first = Number(r.rows[0]!.id);
    let tsMin = Infinity;
    let tsMax = -Infinity;
    const agents = new Set<string>();
    const types = new Set<string>();
    const events = block.map(([ts, type, category, agent, trace_id, span_id, data], i) => {
      if (ts < tsMin) tsMin = ts;
      if (ts > tsMax) tsMax = ts;
      agents.add(agent);
      types.add(type);
      ids.push(first + i);
      return JSON.stringify({ id: first + i, ts, type, category, agent, trace_id, span_id, data });
    });
    await pool.query(
      `INSERT INTO ${s}.${T} (first_id, last_id, ts_min, ts_max, n, agents, types, node, events)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        first,
        first + block.length - 1,
        tsMin,
        tsMax,
        block.length,
        [...agents],
        [...types],
        node,
        `[${events.join(',')}]`,
      ],
    );
  }
  return ids;
}

interface PageRow {
  n: string;
  edge: string | null;
  id: string | null;
  ts: string;
  type: string;
  category: string;
  agent: string;
  trace_id: string | null;
  span_id: string | null;
  data: string;
}

/**
 * An EventQuery over the batches: pages of batches in the order asked (newest last id first, or
 * oldest first id first), narrowed by their bounds and sets (the GIN indexes on agents and types),
 * their events filtered as one table's rows were (`eventWhere`), until the page's edge shows that
 * no batch not read yet holds an event that would make the answer.
 */
export async function findEvents(pool: pg.Pool, s: string, q: EventQuery): Promise<AgentEvent[]> {
  const limit = q.limit ?? 100;
  if (limit <= 0) return [];
  const asc = q.order === 'asc';
  const key = asc ? 'first_id' : 'last_id';
  let out: AgentEvent[] = [];
  let edge: number | undefined;
  for (let page = 16; ; page = Math.min(page * 4, 4096)) {
    const args: unknown[] = [];
    const param = (v: unknown) => `$${args.push(v)}`;
    const where: string[] = [];
    if (q.after !== undefined) where.push(`last_id > ${param(q.after)}`);
    if (q.before !== undefined) where.push(`first_id < ${param(q.before)}`);
    if (q.since !== undefined) where.push(`ts_max >= ${param(q.since)}`);
    if (q.agent !== undefined) where.push(`agents @> ARRAY[${param(q.agent)}::text]`);
    if (q.agents !== undefined)
      where.push(`EXISTS (SELECT 1 FROM unnest(agents) AS agent WHERE ${globSql('pg', 'agent', q.agents, param)})`);
    const types = wantedTypes(q);
    if (types.length > 0) where.push(`types && ${param(types)}::text[]`);
    if (edge !== undefined) where.push(asc ? `first_id > ${param(edge)}` : `last_id < ${param(edge)}`);
    const sql = `WITH c AS MATERIALIZED (
        SELECT first_id, last_id, events FROM ${s}.${T}${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}
        ORDER BY ${key} ${asc ? 'ASC' : 'DESC'} LIMIT ${param(page)}
      ), b AS (SELECT count(*) AS n, ${asc ? 'max(first_id)' : 'min(last_id)'} AS edge FROM c)
      SELECT b.n, b.edge, ev.* FROM b LEFT JOIN LATERAL (
        SELECT * FROM (SELECT ${EVENT_COLUMNS} FROM c, json_array_elements(c.events) AS e) v${eventWhere(q, param, 'pg')}${eventOrder(q, param)}
      ) ev ON true`;
    const rows = (await pool.query<PageRow>(sql, args)).rows;
    const read = Number(rows[0]?.n ?? 0);
    const found = rows.filter((r) => r.id !== null).map((r) => eventOfRow(r as PageRow & { id: string }));
    if (found.length > 0) {
      out = out.concat(found).sort((a, b) => (asc ? a.id - b.id : b.id - a.id));
      if (out.length > limit) out.length = limit;
    }
    if (read < page || rows[0]?.edge == null) return out;
    edge = Number(rows[0].edge);
    // Batches not read yet hold only ids below (desc) or above (asc) the edge.
    if (out.length === limit && (asc ? out[limit - 1]!.id <= edge : out[limit - 1]!.id >= edge)) return out;
  }
}

/** Events `node` wrote with `after` < id ≤ `upTo`, oldest first, at most `limit`. */
export async function eventsWrittenBy(
  pool: pg.Pool,
  s: string,
  node: string,
  after: number,
  upTo: number,
  limit: number,
): Promise<AgentEvent[]> {
  const r = await pool.query(
    `SELECT * FROM (SELECT ${EVENT_COLUMNS} FROM ${s}.${T} c, json_array_elements(c.events) AS e
       WHERE c.node = $1 AND c.last_id > $2 AND c.first_id <= $3) v
     WHERE id > $2 AND id <= $3 ORDER BY id LIMIT $4`,
    [node, after, upTo, limit],
  );
  return r.rows.map(eventOfRow);
}

/** How many events are stored. */
export async function countEvents(pool: pg.Pool, s: string): Promise<number> {
  return Number((await pool.query<{ n: string }>(`SELECT coalesce(sum(n), 0) AS n FROM ${s}.${T}`)).rows[0]!.n);
}

/** Rewrites the batches `select` picks, keeping their events `keep` holds for (`id`, `ts` of each); none is left empty. */
function rewrite(c: pg.PoolClient, s: string, select: string, keep: string, args: unknown[]): Promise<unknown> {
  return c.query(
    `UPDATE ${s}.${T} t SET first_id = k.first_id, last_id = k.last_id, ts_min = k.ts_min, ts_max = k.ts_max, n = k.n,
            agents = k.agents, types = k.types, events = k.events
     FROM (
       SELECT o.first_id AS old, min(v.id) AS first_id, max(v.id) AS last_id, min(v.ts) AS ts_min, max(v.ts) AS ts_max,
              count(*)::int AS n, array_agg(DISTINCT v.e->>'agent') AS agents, array_agg(DISTINCT v.e->>'type') AS types,
              json_agg(v.e ORDER BY v.id) AS events
       FROM ${s}.${T} o, LATERAL (SELECT e, (e->>'id')::bigint AS id, (e->>'ts')::bigint AS ts FROM json_array_elements(o.events) AS e) v
       WHERE ${select} AND ${keep}
       GROUP BY o.first_id
     ) k WHERE t.first_id = k.old`,
    args,
  );
}

/**
 * One run of retention, exact to the event: events older than `retentionMs`, then the oldest
 * beyond `maxRows` (by id). Whole batches go with a DELETE; a batch that straddles the line is
 * written again without the events past it. One node at a time, under a transaction's try-lock.
 */
export function pruneEvents(
  pool: pg.Pool,
  s: string,
  retentionMs: number,
  maxRows: number,
): Promise<{ deleted: number; skipped: boolean; more: boolean }> {
  return inTransaction(pool, 'BEGIN', async (c) => {
    const lock = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS ok', [
      `caxton-retention:${s}.agent_events`,
    ]);
    if (!lock.rows[0]!.ok) return { deleted: 0, skipped: true, more: false };
    const total = async () =>
      Number((await c.query<{ n: string }>(`SELECT coalesce(sum(n), 0) AS n FROM ${s}.${T}`)).rows[0]!.n);
    const before = await total();
    const cutoff = Date.now() - retentionMs;
    await c.query(`DELETE FROM ${s}.${T} WHERE ts_min < $1 AND ts_max < $1`, [cutoff]);
    await rewrite(c, s, 'o.ts_min < $1', 'v.ts >= $1', [cutoff]);
    const excess = (await total()) - maxRows;
    if (excess > 0) {
      // The excess-th smallest id lies among the batches that start at or before the last id of
      // the first batches (by first id) holding `excess` events: no later batch has a smaller id.
      const cut = (
        await c.query<{ id: string }>(
          `WITH b AS (SELECT max(last_id) AS bound FROM (
             SELECT last_id, n, sum(n) OVER (ORDER BY first_id) AS acc FROM ${s}.${T}) x WHERE acc - n < $1)
           SELECT (e->>'id')::bigint AS id FROM ${s}.${T} c, b, json_array_elements(c.events) AS e
           WHERE c.first_id <= b.bound ORDER BY 1 OFFSET $1 - 1 LIMIT 1`,
          [excess],
        )
      ).rows[0];
      if (cut) {
        await c.query(`DELETE FROM ${s}.${T} WHERE last_id <= $1`, [cut.id]);
        await rewrite(c, s, 'o.first_id <= $1', 'v.id > $1', [cut.id]);
      }
    }
    return { deleted: before - (await total()), skipped: false, more: false };
  });
}
