/**
 * A single node's agent events in its SQLite, behind `EventLog` (agent-events.ts); a cluster keeps
 * them in its PostgreSQL (pg-agent-events.ts).
 *
 * Events are written in batches: `record()` only queues, and at the end of the event-loop turn the
 * database's one transaction of that turn (src/storage/turn-writer.ts, shared with the audit trail
 * and the tool audit) inserts everything queued, so a busy bus pays an array push per event. Rows older than the
 * retention and beyond `max_rows` are deleted by the storage Pruner (src/storage/retention.ts), in
 * small batches.
 */
import { EventEmitter } from 'node:events';
import { Pruner, tableRule, writeLane, type Db, type Migration, type WriteLane } from '../storage/index.js';
import { scrubSecrets } from '../shared/secrets.js';
import {
  categoryOf,
  eventMatches,
  eventOfRow,
  eventOrder,
  eventWhere,
  type AgentEvent,
  type AgentEventInput,
  type AgentEventType,
  type EventCategory,
  type EventLog,
  type EventQuery,
} from './agent-events.js';

export interface EventStoreOptions {
  db: Db;
  /** Rows older than this many ms are deleted. */
  retentionMs: number;
  /** At most this many rows are kept. */
  maxRows: number;
  /** How often retention is applied (default 60 s; also after every max_rows / 10 inserts). */
  sweepIntervalMs?: number;
  onError?: (e: unknown) => void;
  /** An event found the write queue full (back-pressure: the queue was written on the caller's turn). */
  onFull?: () => void;
}

export const EVENTS_MIGRATIONS: readonly Migration[] = [
  {
    id: 'events-001-create',
    sql: `
      CREATE TABLE agent_events (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        ts        INTEGER NOT NULL,
        type      TEXT NOT NULL,
        category  TEXT NOT NULL,
        agent     TEXT NOT NULL,
        trace_id  TEXT,
        span_id   TEXT,
        data      TEXT NOT NULL
      );
      CREATE INDEX agent_events_ts ON agent_events (ts);
      CREATE INDEX agent_events_agent ON agent_events (agent, id);
      CREATE INDEX agent_events_type ON agent_events (type, id);
    `,
  },
];

interface Row {
  id: number;
  ts: number;
  type: AgentEventType;
  category: EventCategory;
  agent: string;
  trace_id: string | null;
  span_id: string | null;
  data: string;
}

export class EventStore extends EventEmitter<{ event: [AgentEvent] }> implements EventLog {
  readonly #db: Db;
  readonly #opts: EventStoreOptions;
  #sinceSweep = 0;
  readonly #pruner: Pruner;
  #closed = false;
  readonly #lane: WriteLane<AgentEventInput>;

  constructor(opts: EventStoreOptions) {
    super();
    this.setMaxListeners(0);
    this.#db = opts.db;
    this.#opts = opts;
    const insert = this.#db.prepare(
      'INSERT INTO agent_events (ts, type, category, agent, trace_id, span_id, data) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.#lane = writeLane(this.#db, {
      write: (batch: AgentEventInput[]) => {
        const out: AgentEvent[] = [];
        for (const e of batch) {
          const ts = e.time ?? Date.now();
          const category = categoryOf(e.type);
          const r = insert.run(
            ts,
            e.type,
            category,
            e.agent,
            e.trace_id ?? null,
            e.span_id ?? null,
            scrubSecrets(JSON.stringify(e.data)),
          ); // ADR 0017
          out.push({
            id: Number(r.lastInsertRowid),
            time: new Date(ts).toISOString(),
            type: e.type,
            category,
            agent: e.agent,
            trace_id: e.trace_id ?? null,
            span_id: e.span_id ?? null,
            data: e.data,
          });
        }
        return out;
      },
      committed: (written) => this.#written(written),
      ...(opts.onError && { onError: opts.onError }),
      ...(opts.onFull && { onFull: opts.onFull }),
    });
    this.#pruner = new Pruner(this.#db, {
      intervalMs: opts.sweepIntervalMs ?? 60_000,
      ...(opts.onError && { onError: opts.onError }),
    }).add(
      tableRule(this.#db, {
        name: 'agent_events',
        table: 'agent_events',
        timeColumn: 'ts',
        time: 'ms',
        retentionMs: opts.retentionMs,
        maxRows: opts.maxRows,
      }),
    );
    this.sweep();
    this.#pruner.start();
  }

  /** Queues an event; it is written (and streamed to followers) at the end of this tick. */
  record(e: AgentEventInput): void {
    if (this.#closed) return;
    if (e.time === undefined) e.time = Date.now();
    this.#lane.push(e);
  }

  /** Events dropped because writing failed (the error goes to onError). */
  get dropped(): number {
    return this.#lane.dropped;
  }

  /** Writes what is queued (these events and the database's other queued records), synchronously. */
  flush(): void {
    this.#lane.flush();
  }

  /** A batch committed: retention every so many rows, then the events to live followers. */
  #written(written: AgentEvent[]): void {
    this.#sinceSweep += written.length;
    if (this.#sinceSweep >= Math.max(100, Math.floor(this.#opts.maxRows / 10))) {
      // One batch now (bounded work on this path), the rest off it.
      this.#sinceSweep = 0;
      if (this.#pruner.step('agent_events').more) this.#pruner.poke();
    }
    if (this.listenerCount('event') > 0) for (const e of written) this.emit('event', e);
  }

  /** Applies retention to completion, synchronously (at start; tests): events older than the retention, then the oldest beyond max_rows. */
  sweep(): number {
    this.#sinceSweep = 0;
    return this.#pruner.runSync().agent_events ?? 0;
  }

  /** Does `e` pass the filter (agent, types, since; not the id cursors)? For live followers. */
  static matches(e: AgentEvent, q: EventQuery): boolean {
    return eventMatches(e, q);
  }

  query(q: EventQuery = {}): AgentEvent[] {
    this.flush();
    const args: (string | number)[] = [];
    const param = (v: string | number) => (args.push(v), '?');
    const sql = `SELECT id, ts, type, category, agent, trace_id, span_id, data FROM agent_events${eventWhere(q, param, 'sqlite')}${eventOrder(q, param)}`;
    return (this.#db.prepare(sql).all(...args) as Row[]).map(eventOfRow);
  }

  /** EventReads: `query`, as a promise. */
  find(q: EventQuery = {}): Promise<AgentEvent[]> {
    try {
      return Promise.resolve(this.query(q));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  /** EventReads: `count`, as a promise. */
  size(): Promise<number> {
    try {
      return Promise.resolve(this.count());
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  count(): number {
    this.flush();
    return (this.#db.prepare('SELECT count(*) AS n FROM agent_events').get() as { n: number }).n;
  }

  /** Writes what is queued and stops the sweep; later records are dropped. */
  close(): void {
    if (this.#closed) return;
    this.#lane.close();
    this.#closed = true;
    this.#pruner.close();
    this.removeAllListeners();
  }
}
