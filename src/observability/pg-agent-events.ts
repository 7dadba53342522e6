/**
 * The agent event store of a cluster, in PostgreSQL (ADR 0043): the single
 * node's `agent_events` (src/observability/sqlite-agent-events.ts) in the cluster schema, shared by every node,
 * so GET /api/v1/events answers the same history on each and it outlives any node.
 *
 *  - **Same events.** The columns of SQLite's table (id, ts, type, category, agent, trace_id,
 *    span_id, data) plus `node`, the node that recorded the event, as the view `agent_events`;
 *    stored one row per written batch (src/observability/pg-event-chunks.ts, ADR 0141). The
 *    filters are written once (`eventWhere`, `eventOrder`), and one suite runs against both
 *    stores (test/observability/pg-events.test.ts).
 *  - **Writes never wait.** `record` queues; what a window of the event loop queued goes in one
 *    row of up to 500 events (TurnBatcher). With PostgreSQL unreachable the events wait, up to a
 *    bound, then the oldest are dropped and counted.
 *  - **Each event once.** A node records what happened on it (createAgentEvents with `shared`
 *    skips relayed bus events and directory-applied registry changes).
 *  - **Live followers on every node.** After its INSERT a node emits its events (with their ids)
 *    to its own followers and publishes them on core NATS (`relayEvents`); the other nodes emit
 *    them to theirs without storing them again (a node subscribes only while it has followers,
 *    ADR 0156). Core NATS is at most once, so each publication
 *    is numbered per node and an idle node repeats its number: a node that sees a number skipped
 *    (its link to NATS was down) reads what it missed from the table, and its followers hear
 *    every event of a live node once, in that node's order.
 *  - **Retention** (`[events] retention`, `max_rows`) is applied by one node at a time.
 */
import { EventEmitter } from 'node:events';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { scrubSecrets } from '../shared/secrets.js';
import { CONFIRM_WAIT_MS, settledWithin, wantedByListeners, WhileWanted } from '../shared/while-wanted.js';
import {
  migrateSchema,
  PgLogTable,
  quotedSchema,
  stateUnavailable,
  type PgBatchTuning,
  type PgMigration,
} from '../storage/pg/index.js';
import { categoryOf, type AgentEvent, type AgentEventInput, type EventLog, type EventQuery } from './agent-events.js';
import {
  CHUNK_MIGRATION,
  countEvents,
  ID_BLOCK_MIGRATION,
  eventsWrittenBy,
  findEvents,
  pruneEvents,
  wellFormed,
  writeChunk,
  type BatchRow,
} from './pg-event-chunks.js';

export const EVENT_STORE_MIGRATIONS: readonly PgMigration[] = [
  {
    id: 'cluster-events-001',
    sql: (s) => `
      CREATE TABLE ${s}.agent_events (
        id        bigserial PRIMARY KEY,
        ts        bigint NOT NULL,
        type      text NOT NULL,
        category  text NOT NULL,
        agent     text NOT NULL,
        trace_id  text,
        span_id   text,
        data      text NOT NULL,
        node      text NOT NULL
      );
      CREATE INDEX agent_events_ts ON ${s}.agent_events (ts);
      CREATE INDEX agent_events_agent ON ${s}.agent_events (agent, id);
      CREATE INDEX agent_events_type ON ${s}.agent_events (type, id);
      CREATE INDEX agent_events_category ON ${s}.agent_events (category, id);
    `,
  },
  {
    // A filter by category is asked as its types (eventWhere), along agent_events_type: an index on
    // the category would be one more B-tree entry for every event, which no query reads.
    id: 'cluster-events-002-no-category-index',
    sql: (s) => `DROP INDEX IF EXISTS ${s}.agent_events_category;`,
  },
  CHUNK_MIGRATION,
  ID_BLOCK_MIGRATION,
];

export interface PgEventStoreOptions extends PgBatchTuning {
  pool: pg.Pool;
  /** The cluster schema (`[cluster.state] schema`); migrated by `PgEventStore.migrate`. */
  schema: string;
  /** This node's name (`[cluster] node`): the `node` column of what it records. */
  node: string;
  /** Rows older than this many ms are deleted. */
  retentionMs: number;
  /** At most this many rows are kept (cluster-wide). */
  maxRows: number;
  /** How often retention runs (default 60 s; also after every max_rows / 10 events written here). */
  sweepIntervalMs?: number;
}

type Relay = (events: AgentEvent[]) => void;

export class PgEventStore extends EventEmitter<{ event: [AgentEvent] }> implements EventLog {
  readonly #o: PgEventStoreOptions;
  readonly #s: string;
  readonly #log: PgLogTable<AgentEventInput>;
  #relay: Relay | undefined;
  #listening: (() => Promise<void>) | undefined;

  /** Creates the table in the cluster schema if missing (with the schema's other stores' migrations table). */
  static migrate(pool: pg.Pool, schema: string): Promise<void> {
    return migrateSchema(pool, schema, EVENT_STORE_MIGRATIONS);
  }

  constructor(opts: PgEventStoreOptions) {
    super();
    this.setMaxListeners(0);
    this.#o = opts;
    this.#s = quotedSchema(opts.schema);
    this.#log = new PgLogTable<AgentEventInput>({
      ...opts,
      schema: this.#s,
      table: 'agent_events',
      timeColumn: 'ts',
      write: (batch) => this.#write(batch),
      prune: () => pruneEvents(opts.pool, this.#s, opts.retentionMs, opts.maxRows),
    });
  }

  /** Events dropped since start (the buffer bound, or a batch PostgreSQL refused). */
  get dropped(): number {
    return this.#log.dropped;
  }

  /** Events recorded and not yet written (the writer's lag, in events). */
  get unwritten(): number {
    return this.#log.queued;
  }

  /** Queues an event; it is written, then streamed to followers, at the end of the turn. Never blocks, never throws. */
  record(e: AgentEventInput): void {
    if (this.#log.closed) return;
    if (e.time === undefined) e.time = Date.now();
    this.#log.push(e);
  }

  /** Writes what is queued (never rejects: an unreachable PostgreSQL leaves it queued). */
  flush(): Promise<void> {
    return this.#log.flush();
  }

  async #write(batch: AgentEventInput[]): Promise<void> {
    const rows = batch.map((e): BatchRow => [
      e.time ?? Date.now(),
      wellFormed(e.type),
      categoryOf(e.type),
      wellFormed(e.agent),
      e.trace_id == null ? null : wellFormed(e.trace_id),
      e.span_id == null ? null : wellFormed(e.span_id),
      scrubSecrets(JSON.stringify(e.data)), // ADR 0017
    ]);
    const ids = await writeChunk(this.#o.pool, this.#s, rows, this.#o.node);
    const written = batch.map((e, i): AgentEvent => ({
      id: ids[i]!,
      time: new Date(e.time ?? 0).toISOString(),
      type: e.type,
      category: categoryOf(e.type),
      agent: e.agent,
      trace_id: e.trace_id ?? null,
      span_id: e.span_id ?? null,
      data: e.data,
    }));
    // Written: nothing after this point may fail the batch (it would count stored events as dropped).
    try {
      if (this.listenerCount('event') > 0) for (const e of written) this.emit('event', e);
    } catch (e) {
      this.#o.onError?.(e);
    }
    try {
      this.#relay?.(written);
    } catch {
      // NATS closed or the batch too large: the other nodes' followers miss it, GET /events has it.
    }
  }

  /** Other nodes' events, heard over NATS: streamed to this node's followers, not stored again. */
  deliver(events: readonly AgentEvent[]): void {
    if (this.#log.closed || this.listenerCount('event') === 0) return;
    for (const e of events) this.emit('event', e);
  }

  /** Where this node's written events are published for the other nodes (relayEvents sets it). */
  relayTo(relay: Relay | undefined): void {
    this.#relay = relay;
  }

  /** Resolves once the other nodes' events published from now on reach this node's followers (relayEvents). */
  listening(): Promise<void> {
    return this.#listening?.() ?? Promise.resolve();
  }

  /** How `listening` learns that the relay's subscription is confirmed (relayEvents sets it while subscribed). */
  listenedBy(confirmed: (() => Promise<void>) | undefined): void {
    this.#listening = confirmed;
  }

  /** Whether anything on this node follows the events live (an SSE stream): relayed gaps are filled only then. */
  get following(): boolean {
    return this.listenerCount('event') > 0;
  }

  /** Events `node` wrote with `after` < id ≤ `upTo`, oldest first, at most `limit`: what this node's followers missed of it. */
  async writtenBy(node: string, after: number, upTo: number, limit: number): Promise<AgentEvent[]> {
    try {
      return await eventsWrittenBy(this.#o.pool, this.#s, node, after, upTo, limit);
    } catch (e) {
      throw stateUnavailable(e);
    }
  }

  async find(q: EventQuery = {}): Promise<AgentEvent[]> {
    await this.#log.flush();
    try {
      return await findEvents(this.#o.pool, this.#s, q);
    } catch (e) {
      throw stateUnavailable(e);
    }
  }

  async size(): Promise<number> {
    await this.#log.flush();
    try {
      return await countEvents(this.#o.pool, this.#s);
    } catch (e) {
      throw stateUnavailable(e);
    }
  }

  /** Applies retention now, to completion unless another node is at it (`skipped`); resolves with the rows deleted. */
  prune(): Promise<{ deleted: number; skipped: boolean }> {
    return this.#log.prune();
  }

  /** Writes what is queued (one attempt) and stops; later records are dropped. Does not end the pool (its owner does). */
  async close(): Promise<void> {
    if (this.#log.closed) return;
    await this.#log.close();
    this.#relay = undefined;
    this.removeAllListeners();
  }
}

/**
 * One publication of a node's events. `seq` counts the node's publications since `epoch` (its
 * relay's start); a tick (no events, every `tickMs`) repeats the last `seq` with `last`, the id
 * of the node's newest event, so a gap shows even when the node writes nothing more.
 */
interface EventsWire {
  node: string;
  epoch: string;
  seq: number;
  events: AgentEvent[];
  last?: number;
}

/** What this node has heard of another's publications. */
interface Heard {
  epoch: string;
  seq: number;
  last: number;
  /** Deliveries of that node's events, one after another (a gap's read from PostgreSQL keeps its place). */
  chain: Promise<void>;
  /** Deliveries waiting on `chain`: while any do, the next waits too. */
  pending: number;
  /** When this node last heard from it (ms). */
  heardAt: number;
  /**
   * The newest of its events delivered here (its ids grow in the order they are delivered): what a
   * node that was only slow publishes after it was read back is not delivered again.
   */
  delivered: number;
  /** Read back already for its current silence. */
  silent: boolean;
}

export interface RelayEventsOptions {
  nc: NatsConnection;
  subject: string;
  node: string;
  store: PgEventStore;
  /** Events per publication (default 100). */
  chunk?: number;
  /** How often a node that has published repeats its number (default 2 s): how soon an idle node's gap shows. */
  tickMs?: number;
  /** Most events read back for one gap (default 10,000); beyond, followers miss the rest (GET /events has them). */
  maxFill?: number;
  /**
   * A node not heard for this long (default 3 ticks) is read back once from PostgreSQL: what it
   * wrote and did not publish before it died (or lost NATS) reaches this node's followers.
   */
  silentMs?: number;
  /** How long the node stays subscribed after its last follower left (default 30 s). */
  lingerMs?: number;
  /** A gap that could not be read back, or was larger than `maxFill`. */
  onGap?: (info: { node: string; error?: unknown; truncated?: boolean }) => void;
}

/** How long a node stays subscribed to the other nodes' live events after its last follower left. */
const RELAY_LINGER_MS = 30_000;

const lastId = (events: readonly AgentEvent[]): number => (events.length > 0 ? events[events.length - 1]!.id : 0);

/**
 * Live events between nodes: what `store` writes is published on `subject` (core NATS, in
 * numbered chunks, with a tick while idle), and what the other nodes publish there is delivered
 * to this node's followers; a skipped number is read back from PostgreSQL first. Returns the stop.
 */
export function relayEvents(o: RelayEventsOptions): () => void {
  const chunk = o.chunk ?? 100;
  const maxFill = o.maxFill ?? 10_000;
  const epoch = `${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}`;
  let seq = 0;
  let last = 0;
  const heard = new Map<string, Heard>();

  /** Delivers what was not delivered yet of a node's events (ids above `h.delivered`). */
  const deliver = (h: Heard, events: readonly AgentEvent[]): void => {
    const fresh = events.length > 0 && events[0]!.id <= h.delivered ? events.filter((e) => e.id > h.delivered) : events;
    if (fresh.length === 0) return;
    h.delivered = lastId(fresh);
    o.store.deliver(fresh);
  };

  const fill = async (node: string, h: Heard, after: number, upTo: number): Promise<void> => {
    const from = Math.max(after, h.delivered);
    if (upTo <= from || !o.store.following) return;
    try {
      const missed = await o.store.writtenBy(node, from, upTo, maxFill);
      if (missed.length === maxFill) o.onGap?.({ node, truncated: true });
      deliver(h, missed);
    } catch (error) {
      o.onGap?.({ node, error });
    }
  };

  const hear = (w: EventsWire): void => {
    const h = heard.get(w.node);
    if (!h || h.epoch !== w.epoch) {
      // A node first heard, or started again: its numbers start here.
      const started: Heard = {
        epoch: w.epoch,
        seq: w.seq,
        last: Math.max(lastId(w.events), w.last ?? 0),
        chain: Promise.resolve(),
        pending: 0,
        heardAt: Date.now(),
        delivered: h?.delivered ?? 0,
        silent: false,
      };
      heard.set(w.node, started);
      deliver(started, w.events);
      return;
    }
    h.heardAt = Date.now();
    h.silent = false;
    const expected = w.events.length > 0 ? h.seq + 1 : h.seq;
    if (w.seq < expected) return; // not newer than what was heard (a tick overtaken by its node's next chunk)
    const gap =
      w.seq > expected ? { after: h.last, upTo: w.events.length > 0 ? w.events[0]!.id - 1 : (w.last ?? 0) } : undefined;
    h.seq = w.seq;
    h.last = Math.max(h.last, lastId(w.events), w.last ?? 0);
    const events = w.events;
    if (!gap && h.pending === 0) {
      deliver(h, events);
      return;
    }
    h.pending++;
    h.chain = h.chain.then(async () => {
      try {
        if (gap) await fill(w.node, h, gap.after, gap.upTo);
        // Filtered when delivered, not when heard: a read-back queued before it may deliver some of them first.
        deliver(h, events);
      } catch {
        // A follower that threw: the others were served (EventEmitter stops at the thrower; so did the direct path).
      } finally {
        h.pending--;
      }
    });
  };

  const stopFollowing = followOthers(o, hear, () => heard.clear());
  const publish = (w: EventsWire) => {
    if (!o.nc.isClosed()) o.nc.publish(o.subject, JSON.stringify(w));
  };
  o.store.relayTo((events) => {
    for (let i = 0; i < events.length; i += chunk) {
      const part = events.slice(i, i + chunk);
      seq++;
      last = Math.max(last, lastId(part));
      publish({ node: o.node, epoch, seq, events: part });
    }
  });
  const tickMs = o.tickMs ?? 2_000;
  const silentMs = o.silentMs ?? 3 * tickMs;
  /** A node silent for `silentMs`: what it wrote after the last event delivered here is read back, once per silence, in its place in the chain. */
  const sweep = () => {
    const now = Date.now();
    for (const [node, h] of heard) {
      if (h.silent || now - h.heardAt < silentMs) continue;
      h.silent = true;
      h.pending++;
      h.chain = h.chain.then(async () => {
        try {
          await fill(node, h, h.delivered, Number.MAX_SAFE_INTEGER);
          h.last = Math.max(h.last, h.delivered);
        } catch {
          // A follower that threw: nothing to undo.
        } finally {
          h.pending--;
        }
      });
    }
  };
  const tick = setInterval(() => {
    if (seq > 0) publish({ node: o.node, epoch, seq, events: [], last });
    sweep();
  }, tickMs);
  tick.unref();
  return () => {
    clearInterval(tick);
    o.store.relayTo(undefined);
    stopFollowing();
  };
}

/**
 * Subscribes to the other nodes' publications only while `o.store` has followers (and for
 * `o.lingerMs` after the last left): otherwise each of them would wake this node to deliver to
 * nobody. `unheard` is told when it unsubscribes: each node's numbers start again at its next
 * publication heard. Returns the stop.
 */
function followOthers(o: RelayEventsOptions, hear: (w: EventsWire) => void, unheard: () => void): () => void {
  const subscribe = (): (() => void) => {
    if (o.nc.isClosed()) return () => {};
    const sub = o.nc.subscribe(o.subject, {
      callback: (err, msg) => {
        if (err) return;
        let w: EventsWire;
        try {
          w = JSON.parse(new TextDecoder().decode(msg.data)) as EventsWire;
        } catch {
          return; // not ours
        }
        if (w.node === o.node || typeof w.epoch !== 'string' || typeof w.seq !== 'number' || !Array.isArray(w.events))
          return;
        try {
          hear(w);
        } catch {
          // A follower that threw: nothing to undo.
        }
      },
    });
    // A round trip after the SUB: the server has it, so what is published after this reaches us.
    // Bounded: with NATS away a follower goes on without it (a gap is read back once NATS is back).
    const confirmed = settledWithin(o.nc.flush(), CONFIRM_WAIT_MS);
    o.store.listenedBy(() => confirmed);
    return () => {
      o.store.listenedBy(undefined);
      sub.unsubscribe();
      unheard();
    };
  };
  const wanted = new WhileWanted(subscribe, o.lingerMs ?? RELAY_LINGER_MS);
  const detach = wantedByListeners(wanted, o.store as EventEmitter, 'event');
  wanted.start();
  return () => {
    detach();
    wanted.close();
  };
}
