/**
 * The recorder of agent events: registry changes, accepted messages, deliveries, finished
 * executions and runs waiting for a person, each written as an event to the node's SQLite log
 * (sqlite-agent-events.ts) or the cluster's (pg-agent-events.ts), behind `EventLog` (agent-events.ts).
 */
import type { Db, Migration } from '../storage/index.js';
import { hearsOnlyLocal, relayedFrom } from '../shared/relayed.js';
import {
  activeTraceIds,
  traceIdsOf,
  traceIdsOfContext,
  type ApprovalData,
  type EventLog,
  type LifecycleData,
} from './agent-events.js';
import { EVENTS_MIGRATIONS, EventStore } from './sqlite-agent-events.js';

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
  // Shared: what other nodes relay is theirs to record, so this listener does not need to hear it.
  if (shared) hearsOnlyLocal(onBus);
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
