/**
 * The agent events: what happened to and between agents, as the design documents'
 * AgentEvent (agent, timestamp, trace_id, span_id, event data) of three kinds:
 *
 * - lifecycle (LifecycleEvent): `agent.deployed`, `agent.updated`, `agent.removed`, `agent.invalid_file`;
 *   and a run's wait for a person (ApprovalData): `run.awaiting_approval`, `run.approval_decided`
 * - communication (CommunicationEvent): `message.sent` (one per accepted message, by its sender,
 *   with the receivers it was routed to) and `message.received` (one per delivery to an agent)
 * - performance (PerformanceEvent): `execution.finished` (agent, duration, tokens, status)
 *
 * This file is the port: the event types, `EventLog` (what the recorder, agent-event-recorder.ts,
 * writes to and the routes read from), the query helpers both stores use and the trace ids an event
 * carries. A single node keeps its events in SQLite (`EventStore`, sqlite-agent-events.ts), a
 * cluster in its PostgreSQL (`PgEventStore`, pg-agent-events.ts).
 */
import { trace, type Span } from '@opentelemetry/api';
import { globSql, type SqlDialect } from '../storage/index.js';
import { RecordedSpan } from './span-recorder.js';
import { hasTraceparentShape, spanHandingOn, SpanTraceContext, ZERO_TRACE } from './trace-context.js';

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
  /** In a cluster: resolves once the other nodes' events reach this node's listeners (attach first, then await it). */
  listening?(): Promise<void>;
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
