import { EventEmitter } from 'node:events';
import { trace, type Span } from '@opentelemetry/api';
import {
  globSql,
  Pruner,
  tableRule,
  writeLane,
  type Db,
  type Migration,
  type SqlDialect,
  type WriteLane,
} from '../storage/index.js';
import { relayedFrom } from '../shared/relayed.js';
import { RecordedSpan } from './span-recorder.js';
import { hasTraceparentShape, spanHandingOn, SpanTraceContext, ZERO_TRACE } from './trace-context.js';
import { scrubSecrets } from '../shared/secrets.js';

/**
 * The agent event store: what happened to and between agents, as the design documents'
 * AgentEvent (agent, timestamp, trace_id, span_id, event data) of three kinds:
 *
 * - lifecycle (LifecycleEvent): `agent.deployed`, `agent.updated`, `agent.removed`, `agent.invalid_file`;
 *   and a run's wait for a person (ApprovalData): `run.awaiting_approval`, `run.approval_decided`
 * - communication (CommunicationEvent): `message.sent` (one per accepted message, by its sender,
 *   with the receivers it was routed to) and `message.received` (one per delivery to an agent)
 * - performance (PerformanceEvent): `execution.finished` (agent, duration, tokens, status)
 *
 * Events are written in batches: `record()` only queues, and at the end of the event-loop turn the
 * database's one transaction of that turn (src/storage/turn-writer.ts, shared with the audit trail
 * and the tool audit) inserts everything queued, so a busy bus pays an array push per event. Rows older than the
 * retention and beyond `max_rows` are deleted by the storage Pruner (src/storage/retention.ts), in
 * small batches.
 */

export const EVENT_CATEGORIES = ['lifecycle', 'communication', 'performance'] as const;
export type EventCategory = (typeof EVENT_CATEGORIES)[number];

export const EVENT_TYPES = [
  'agent.deployed',
  'agent.updated',
  'agent.removed',
  'agent.invalid_file',
  'rollout.started',
  'rollout.stage_advanced',
  'rollout.promoted',
  'rollout.rolled_back',
  'run.awaiting_approval',
  'run.approval_decided',
  'message.sent',
  'message.received',
  'execution.finished',
] as const;
export type AgentEventType = (typeof EVENT_TYPES)[number];

const CATEGORY: Record<AgentEventType, EventCategory> = {
  'agent.deployed': 'lifecycle',
  'agent.updated': 'lifecycle',
  'agent.removed': 'lifecycle',
  'agent.invalid_file': 'lifecycle',
  'rollout.started': 'lifecycle',
  'rollout.stage_advanced': 'lifecycle',
  'rollout.promoted': 'lifecycle',
  'rollout.rolled_back': 'lifecycle',
  'run.awaiting_approval': 'lifecycle',
  'run.approval_decided': 'lifecycle',
  'message.sent': 'communication',
  'message.received': 'communication',
  'execution.finished': 'performance',
};

export function categoryOf(type: AgentEventType): EventCategory {
  return CATEGORY[type];
}

/** LifecycleEvent: the agent's state before and after, and why. */
export interface LifecycleData {
  old_state: string | null;
  new_state: string;
  reason: string | null;
  origin?: 'file' | 'api' | 'a2a';
  revision?: number;
  file?: string;
  errors?: string[];
}

/** CommunicationEvent: one ACL message. */
export interface CommunicationData {
  message_id: string;
  conversation_id: string;
  performative: string;
  sender: string;
  receivers: string[];
  protocol?: string;
  in_reply_to?: string;
  /** message.received: the delivery attempt (1 for the first). */
  attempt?: number;
}

/** PerformanceEvent: one finished execution. */
export interface PerformanceData {
  execution_id: string | null;
  conversation_id: string | null;
  status: string;
  duration_ms: number;
  input_tokens: number;
  output_tokens: number;
  turns: number;
  tool_calls: number;
  provider: string | null;
  model: string | null;
}

/**
 * A run's call that waits for a person, and the decision on it. Names the call, never its
 * arguments (GET /api/v1/runs/{id} shows them): events are figures and names.
 */
export interface ApprovalData {
  run_id: string;
  tool: string;
  call_id: string;
  /** run.approval_decided only. */
  decision?: 'approved' | 'denied';
  decided_by?: string;
}

export type AgentEventData = LifecycleData | CommunicationData | PerformanceData | ApprovalData;

/** What callers record; the store adds id and category. */
export interface AgentEventInput {
  type: AgentEventType;
  /** The agent the event is about (for message.sent: the sender; message.received: the receiver). */
  agent: string;
  /** ms since epoch (default now). */
  time?: number;
  trace_id?: string | null;
  span_id?: string | null;
  data: AgentEventData;
}

export interface AgentEvent {
  id: number;
  time: string;
  type: AgentEventType;
  category: EventCategory;
  agent: string;
  trace_id: string | null;
  span_id: string | null;
  data: AgentEventData;
}

export interface EventQuery {
  agent?: string;
  /**
   * Only events about agents matching one of these globs: a reader's agent scope, narrowed in the
   * query so a page is full. The rule itself (and the check of live events) is src/auth/scope-read.ts.
   */
  agents?: readonly string[];
  /** Event types and/or categories; empty or absent: all. */
  types?: readonly (AgentEventType | EventCategory)[];
  /** ms since epoch, inclusive. */
  since?: number;
  /** Only events with a larger id (a cursor: the last id seen). */
  after?: number;
  /** Only events with a smaller id (paging back). */
  before?: number;
  limit?: number;
  /** 'desc' (default): newest first; 'asc': oldest first. */
  order?: 'asc' | 'desc';
}

/**
 * The read side of an event store: what the routes (GET /api/v1/events, its SSE follow, the status
 * overview) depend on. Two implementations answer it alike: the node's SQLite EventStore and the
 * cluster's PgEventStore (src/observability/pg-agent-events.ts); test/observability/pg-events.test.ts runs one
 * suite against both.
 */
export interface EventReads {
  /** The events matching `q` (EventQuery: filters, id cursors, order, limit 100 by default); what is queued is written first. */
  find(q?: EventQuery): Promise<AgentEvent[]>;
  /** How many events are stored. */
  size(): Promise<number>;
  /** Live events as they are stored (and, in a cluster, as other nodes store theirs). */
  on(event: 'event', f: (e: AgentEvent) => void): unknown;
  off(event: 'event', f: (e: AgentEvent) => void): unknown;
}

/** An event store as the recorder (createAgentEvents) writes to it. `record` never blocks nor throws. */
export interface EventLog extends EventReads {
  record(e: AgentEventInput): void;
  /** Writes what is queued (as far as it can) and stops. */
  close(): void | Promise<void>;
}

/**
 * The types an EventQuery's `types` filter asks for (none: no type filter). A category is a fixed
 * set of types (CATEGORY), so it is asked as its types: one index on `type` answers both, and the
 * stores keep no index on `category`.
 */
export function wantedTypes(q: EventQuery): AgentEventType[] {
  if (!q.types || q.types.length === 0) return [];
  const types = q.types.filter((t): t is AgentEventType => (EVENT_TYPES as readonly string[]).includes(t));
  const cats = q.types.filter((t): t is EventCategory => (EVENT_CATEGORIES as readonly string[]).includes(t));
  const wanted = new Set<AgentEventType>(types);
  for (const t of EVENT_TYPES) if (cats.includes(CATEGORY[t])) wanted.add(t);
  return [...wanted];
}

/**
 * The WHERE clause of an EventQuery over the `agent_events` columns, with `param(value)` returning
 * the placeholder of each value (SQLite `?`, PostgreSQL `$n`): one definition of the filters for
 * both stores. Empty when nothing filters.
 */
export function eventWhere(q: EventQuery, param: (v: string | number) => string, dialect: SqlDialect): string {
  const where: string[] = [];
  if (q.agent !== undefined) where.push(`agent = ${param(q.agent)}`);
  if (q.agents !== undefined) where.push(globSql(dialect, 'agent', q.agents, param));
  const wanted = wantedTypes(q);
  if (wanted.length > 0) where.push(`type IN (${wanted.map((t) => param(t)).join(', ')})`);
  if (q.since !== undefined) where.push(`ts >= ${param(q.since)}`);
  if (q.after !== undefined) where.push(`id > ${param(q.after)}`);
  if (q.before !== undefined) where.push(`id < ${param(q.before)}`);
  return where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
}

/** ORDER BY and LIMIT of an EventQuery (newest first and 100 by default). */
export function eventOrder(q: EventQuery, param: (v: number) => string): string {
  return ` ORDER BY id ${q.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ${param(q.limit ?? 100)}`;
}

/** A stored row as an AgentEvent (both stores keep the same columns; PostgreSQL's bigints arrive as strings). */
export function eventOfRow(r: {
  id: number | string;
  ts: number | string;
  type: string;
  category: string;
  agent: string;
  trace_id: string | null;
  span_id: string | null;
  data: string;
}): AgentEvent {
  return {
    id: Number(r.id),
    time: new Date(Number(r.ts)).toISOString(),
    type: r.type as AgentEventType,
    category: r.category as EventCategory,
    agent: r.agent,
    trace_id: r.trace_id,
    span_id: r.span_id,
    data: JSON.parse(r.data) as AgentEventData,
  };
}

/** Does `e` pass the filter (agent, types, since; not the id cursors)? For live followers. */
export function eventMatches(e: AgentEvent, q: EventQuery): boolean {
  if (q.agent !== undefined && e.agent !== q.agent) return false;
  if (q.types && q.types.length > 0 && !q.types.includes(e.type) && !q.types.includes(e.category)) return false;
  if (q.since !== undefined && Date.parse(e.time) < q.since) return false;
  return true;
}

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

/**
 * trace_id and span_id of a W3C traceparent (undefined when it is absent or malformed): read-only,
 * since the last one is kept and handed out again (an execution's record and its event ask for
 * the same one in turn). A traceparent a recorded span just handed on (a delivery's, for the
 * `message.received` event) gives the span's own ids, with no parsing.
 */
export function traceIdsOf(traceparent: string | undefined): TraceIds | undefined {
  if (traceparent === undefined) return undefined;
  if (traceparent === lastIdsOf) return lastIds;
  let ids: TraceIds | undefined;
  const made = spanHandingOn(traceparent);
  if (made !== undefined) ids = { trace_id: made.traceId, span_id: made.spanId };
  else if (hasTraceparentShape(traceparent)) {
    const traceId = traceparent.slice(3, 35);
    if (traceId !== ZERO_TRACE) ids = { trace_id: traceId, span_id: traceparent.slice(36, 52) };
  }
  lastIdsOf = traceparent;
  lastIds = ids;
  return ids;
}

type TraceIds = Readonly<{ trace_id: string; span_id: string }>;

/**
 * traceIdsOf for the traceparent `span` handed on (childTraceparent): a recording span's own ids,
 * with no parsing, kept as traceIdsOf keeps its last answer (an execution's record and then its
 * `execution.finished` event ask for them in turn).
 */
export function traceIdsHandedOn(span: Span | undefined, traceparent: string | undefined): TraceIds | undefined {
  if (traceparent === undefined || !(span instanceof RecordedSpan) || !span.isRecording())
    return traceIdsOf(traceparent);
  lastIdsOf = traceparent;
  return (lastIds = { trace_id: span.traceId, span_id: span.spanId });
}

/**
 * traceIdsOf for a message's `trace_context`: one a recorded span handed on carries its ids
 * (SpanTraceContext), so nothing is parsed; any other is its traceparent's.
 */
export function traceIdsOfContext(tc: { traceparent: string } | undefined): TraceIds | undefined {
  if (tc instanceof SpanTraceContext) return { trace_id: tc.traceId, span_id: tc.spanId };
  return traceIdsOf(tc?.traceparent);
}

let lastIdsOf: string | undefined;
let lastIds: TraceIds | undefined;

/** The active span's ids, if any. */
export function activeTraceIds(): { trace_id: string; span_id: string } | undefined {
  const sc = trace.getActiveSpan()?.spanContext();
  return sc && trace.isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : undefined;
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
          const category = CATEGORY[e.type];
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

// ------------------------------------------------------------------------------ wiring

/** The parts of the server the recorder listens to (structural types: no imports of those components). */
interface RegistryLike {
  on(event: 'change', f: (e: RegistryChange) => void): unknown;
  off(event: 'change', f: (e: RegistryChange) => void): unknown;
}
interface AgentLike {
  definition: { name: string };
  origin: { kind: 'file' | 'api' | 'a2a'; path?: string };
  revision: number;
}
type RegistryChange =
  | { type: 'deployed'; agent: AgentLike; traceparent?: string }
  | { type: 'updated'; agent: AgentLike; previous: AgentLike; traceparent?: string }
  | { type: 'removed'; agent: AgentLike };
interface MessageLike {
  id: string;
  conversation_id: string;
  performative: string;
  sender: string;
  protocol?: string;
  in_reply_to?: string;
  trace_context?: { traceparent: string };
}
interface BusLike {
  on(event: 'event', f: (e: BusEventLike) => void): unknown;
  off(event: 'event', f: (e: BusEventLike) => void): unknown;
}
type BusEventLike = { type: 'message'; message: MessageLike; routed_to: string[] } | { type: 'state' };
interface ExecutionLike {
  /** Set for every execution, failed ones included (the run's id). */
  execution_id?: string;
  agent: string;
  status: string;
  duration_ms: number;
  request: { conversation_id?: string };
  response?: {
    execution_id: string;
    conversation_id?: string;
    usage: { input_tokens: number; output_tokens: number };
    turns: number;
    tool_calls: readonly unknown[];
    provider: string;
    model: string;
  };
  traceparent?: string;
}

type RunNoticeLike =
  | { type: 'changed' }
  | { type: 'awaiting_approval'; run_id: string; agent: string; tool: string; call_id: string }
  | {
      type: 'approval_decided';
      run_id: string;
      agent: string;
      tool: string;
      call_id: string;
      decision: 'approved' | 'denied';
      by: string;
    };

export interface AgentEvents {
  /** Where events go and are read from: the node's SQLite EventStore, or the cluster's PgEventStore. */
  readonly store: EventLog;
  /** For ExecutorOptions.onExecuted: one `execution.finished` per execution. */
  onExecuted(e: ExecutionLike): void;
  /** For DurableRuns.watch: `run.awaiting_approval` and `run.approval_decided`. */
  onRun(n: RunNoticeLike): void;
  /** Records `message.sent` for every message the bus accepts (and the platform's own replies). */
  observeBus(bus: BusLike): void;
  /** Wraps the bus's agent handler: one `message.received` per delivery attempt to an agent. */
  receiving<
    M extends MessageLike,
    R extends { agent: string },
    C extends { delivery: { attempts: number }; traceparent?: string },
    A,
  >(
    handler: (m: M, receiver: R, ctx: C) => A,
  ): (m: M, receiver: R, ctx: C) => A;
  /** For the agents_dir watcher: an agent file that does not parse or validate. */
  invalidFile(file: string, agent: string | undefined, errors: readonly { message: string }[]): void;
  /** Stops listening, writes what is queued. */
  close(): Promise<void>;
}

/**
 * The one entry point: an event store recording lifecycle events from the registry and, through
 * the hooks returned, `message.sent` (observeBus), `message.received` (receiving) and
 * `execution.finished` (onExecuted). The store is SQLite's on `db` (migrated here), or `store`
 * (the cluster's, in PostgreSQL).
 *
 * With `shared` (a store every node of a cluster writes to), what this node only relays is not
 * recorded: bus events heard from other nodes and registry changes applied from the cluster's
 * directory (src/shared/relayed.ts) are the other node's to record, so each event is stored once.
 * The rest is recorded where it happens: message.sent by the node whose bus accepted the message,
 * message.received and execution.finished by the node that ran the delivery, lifecycle events of
 * API agents by the node that made the change, file agents' by each node (its own agents_dir).
 */
export function createAgentEvents(opts: AgentEventsOptions): AgentEvents {
  const { store, shared } = openEventLog(opts);
  const onChange = lifecycleRecorder(store, shared);
  opts.registry.on('change', onChange);
  const onBus = sentRecorder(store, shared);
  let bus: BusLike | undefined;
  return {
    store,
    observeBus(b) {
      bus?.off('event', onBus);
      bus = b;
      b.on('event', onBus);
    },
    onExecuted(e) {
      store.record({
        type: 'execution.finished',
        agent: e.agent,
        ...traceIdsOf(e.traceparent),
        data: executionFinishedData(e),
      });
    },
    onRun(n) {
      if (n.type === 'changed') return;
      const data: ApprovalData = { run_id: n.run_id, tool: n.tool, call_id: n.call_id };
      if (n.type === 'approval_decided') {
        data.decision = n.decision;
        data.decided_by = n.by;
      }
      store.record({ type: `run.${n.type}`, agent: n.agent, ...activeTraceIds(), data });
    },
    receiving(handler) {
      return (m, receiver, ctx) => {
        store.record({
          type: 'message.received',
          agent: receiver.agent,
          ...(ctx.traceparent !== undefined ? traceIdsOf(ctx.traceparent) : traceIdsOfContext(m.trace_context)),
          data: {
            message_id: m.id,
            conversation_id: m.conversation_id,
            performative: m.performative,
            sender: m.sender,
            receivers: [receiver.agent],
            attempt: ctx.delivery.attempts + 1,
            ...(m.protocol !== undefined && { protocol: m.protocol }),
            ...(m.in_reply_to !== undefined && { in_reply_to: m.in_reply_to }),
          },
        });
        return handler(m, receiver, ctx);
      };
    },
    invalidFile(file, agent, errors) {
      store.record({
        type: 'agent.invalid_file',
        agent: agent ?? file,
        ...activeTraceIds(),
        data: {
          old_state: null,
          new_state: 'invalid',
          reason: agent
            ? 'agent file is invalid; the last good version keeps running'
            : 'agent file is invalid; not loaded',
          file,
          errors: errors.map((x) => x.message),
        },
      });
    },
    async close() {
      opts.registry.off('change', onChange);
      bus?.off('event', onBus);
      await store.close();
    },
  };
}

export type AgentEventsOptions = { registry: RegistryLike; onError?: (e: unknown) => void; onFull?: () => void } & (
  | { db: Db; retentionMs: number; maxRows: number; migrate: (db: Db, m: readonly Migration[]) => void }
  | { store: EventLog; shared: boolean }
);

/** The log given, or this node's own SQLite log (its tables migrated first). */
function openEventLog(opts: AgentEventsOptions): { store: EventLog; shared: boolean } {
  if ('store' in opts) return { store: opts.store, shared: opts.shared };
  opts.migrate(opts.db, EVENTS_MIGRATIONS);
  const store = new EventStore({
    db: opts.db,
    retentionMs: opts.retentionMs,
    maxRows: opts.maxRows,
    ...(opts.onError && { onError: opts.onError }),
    ...(opts.onFull && { onFull: opts.onFull }),
  });
  return { store, shared: false };
}

const HOW = { file: 'agent file', api: 'through the API', a2a: 'remote A2A agent ([a2a_agents])' } as const;
const stateOf = (a: AgentLike) => `deployed (revision ${a.revision})`;

/** A registry change as a lifecycle event (agent.deployed, agent.updated, agent.removed). */
function lifecycleRecorder(store: EventLog, shared: boolean): (e: RegistryChange) => void {
  return (e) => {
    if (shared && relayedFrom(e.agent) !== undefined) return;
    const ids = (e.type !== 'removed' && traceIdsOf(e.traceparent)) || activeTraceIds();
    const a = e.agent;
    const common = {
      origin: a.origin.kind,
      revision: a.revision,
      ...(a.origin.path !== undefined && { file: a.origin.path }),
    };
    const data: LifecycleData =
      e.type === 'deployed'
        ? {
            old_state: null,
            new_state: stateOf(a),
            reason: a.origin.kind === 'file' ? 'agent file loaded' : `deployed ${HOW[a.origin.kind]}`,
            ...common,
          }
        : e.type === 'updated'
          ? {
              old_state: stateOf(e.previous),
              new_state: stateOf(a),
              reason: a.origin.kind === 'file' ? 'agent file changed' : `updated ${HOW[a.origin.kind]}`,
              ...common,
            }
          : {
              old_state: stateOf(a),
              new_state: 'removed',
              reason: a.origin.kind === 'file' ? 'agent file removed' : `removed ${HOW[a.origin.kind]}`,
              ...common,
            };
    store.record({ type: `agent.${e.type}`, agent: a.definition.name, ...ids, data });
  };
}

/** A message the bus accepted as a message.sent event. */
function sentRecorder(store: EventLog, shared: boolean): (e: BusEventLike) => void {
  return (e) => {
    if (e.type !== 'message' || (shared && relayedFrom(e) !== undefined)) return;
    const m = e.message;
    store.record({
      type: 'message.sent',
      agent: m.sender,
      ...traceIdsOfContext(m.trace_context),
      data: {
        message_id: m.id,
        conversation_id: m.conversation_id,
        performative: m.performative,
        sender: m.sender,
        receivers: [...e.routed_to],
        ...(m.protocol !== undefined && { protocol: m.protocol }),
        ...(m.in_reply_to !== undefined && { in_reply_to: m.in_reply_to }),
      },
    });
  };
}

function executionFinishedData(e: Parameters<AgentEvents['onExecuted']>[0]) {
  const r = e.response;
  return {
    execution_id: e.execution_id ?? r?.execution_id ?? null,
    conversation_id: r?.conversation_id ?? e.request.conversation_id ?? null,
    status: e.status,
    duration_ms: Math.round(e.duration_ms * 1000) / 1000,
    input_tokens: r?.usage.input_tokens ?? 0,
    output_tokens: r?.usage.output_tokens ?? 0,
    turns: r?.turns ?? 0,
    tool_calls: r?.tool_calls.length ?? 0,
    provider: r?.provider ?? null,
    model: r?.model ?? null,
  };
}
