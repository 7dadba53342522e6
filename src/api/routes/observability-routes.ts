import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  agentVisible,
  agentsVisibleTo,
  capabilitiesVisibleTo,
  logLinesVisibleTo,
  readScopeOf,
  type Principal,
} from '../../auth/index.js';
import type { AgentService } from '../../agents/index.js';
import type { ServerConfig } from '../../config/index.js';
import type { MessagingBus } from '../../messaging/index.js';
import type { MemoryComponent } from '../../memory/index.js';
import {
  EVENT_CATEGORIES,
  EVENT_TYPES,
  eventMatches,
  type AgentEvent,
  type AgentEventType,
  type EventCategory,
  type EventReads,
} from '../../observability/agent-events.js';
import { LOG_LEVELS, LogBuffer, type LogLevel, type LogRecord } from '../../observability/log-buffer.js';
import type { StatusSampler } from '../../observability/status.js';
import { CaxtonError } from '../../shared/errors.js';
import { closest } from '../../shared/suggest.js';
import { parseDuration } from '../../shared/units.js';
import { timeField } from './time-field.js';
import type { ToolServerManager } from '../../tools/servers/manager.js';
import type { ToolCatalogue } from '../../tools/catalogue.js';
import { dependencyStateSchema, errorEnvelopeSchema } from '../schemas.js';
import { keepOpen, openSse, wantsEventStream } from '../sse-stream.js';
import type { Lifecycle } from './system-routes.js';
import { docResponses, onFirstRequest, onUse } from '../lazy-schemas.js';

export interface ObservabilityRouteDeps {
  /** The agent event store (SQLite, or the cluster's in PostgreSQL); absent (`[events] enabled = false`): /events answers 404 events_disabled. */
  events?: EventReads;
  logs?: LogBuffer;
  sampler: StatusSampler;
  service: AgentService;
  config: ServerConfig;
  lifecycle: Lifecycle;
  bus?: MessagingBus;
  tools?: ToolServerManager;
  /** Every tool source: `tool_sources` of the overview counts them by kind. */
  catalogue?: ToolCatalogue;
  memory?: MemoryComponent;
}

// ------------------------------------------------------------------------------ query fields

const FILTERS = [...EVENT_TYPES, ...EVENT_CATEGORIES] as readonly string[];

// The fields and response schemas are built on their first use (a request, or the OpenAPI
// document), so a start registers the routes without constructing them.

/** `since`: an ISO 8601 time, or a duration ("30s", "5m", "2h") meaning that long ago. */
const sinceField = z.lazy(() => timeField('only entries at or after this time'));

const typeField = z.lazy(() =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      const out: (AgentEventType | EventCategory)[] = [];
      for (const t of v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '')) {
        if (!FILTERS.includes(t)) {
          const guess = closest(t, FILTERS);
          ctx.addIssue({
            code: 'custom',
            message: `unknown event type ${JSON.stringify(t)}${guess ? `; did you mean "${guess}"?` : ''}; expected one of: ${FILTERS.join(', ')}`,
          });
          return z.NEVER;
        }
        out.push(t as AgentEventType | EventCategory);
      }
      return out;
    })
    .describe(`event types or categories, comma-separated: ${FILTERS.join(', ')}`),
);

const levelField = z.lazy(() =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      const l = v.toLowerCase();
      if (!(LOG_LEVELS as readonly string[]).includes(l)) {
        const guess = closest(l, LOG_LEVELS);
        ctx.addIssue({
          code: 'custom',
          message: `unknown log level ${JSON.stringify(v)}${guess ? `; did you mean "${guess}"?` : ''}; expected one of: ${LOG_LEVELS.join(', ')}`,
        });
        return z.NEVER;
      }
      return l as LogLevel;
    })
    .describe(`this level and above: ${LOG_LEVELS.join(', ')}`),
);

const limitField = (def: number, max: number) =>
  z.coerce
    .number({ error: 'expected a number' })
    .int({ error: 'expected a whole number' })
    .min(1, { error: 'at least 1' })
    .max(max, { error: `at most ${max}` })
    .default(def);
const cursorField = z.coerce
  .number({ error: 'expected a number' })
  .int({ error: 'expected a whole number' })
  .min(0, { error: 'at least 0' })
  .optional();
const agentField = z.string().min(1).max(200).optional();
const followField = z
  .string()
  .optional()
  .describe('present (any value): stream as server-sent events instead (same as Accept: text/event-stream)');

const windowField = onUse(() =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return 10_000;
      const ms = parseDuration(v);
      if (ms === undefined || ms < 1000 || ms > 300_000) {
        ctx.addIssue({
          code: 'custom',
          message: `expected a duration between 1s and 5m (e.g. "10s", "1m"), got ${JSON.stringify(v)}`,
        });
        return z.NEVER;
      }
      return ms;
    })
    .describe('rates are averaged over this long (default 10s, at most 5m)'),
);

// ------------------------------------------------------------------------------ response schemas

const eventSchema = onUse(() =>
  z.object({
    id: z.number().int(),
    time: z.string(),
    type: z.enum(EVENT_TYPES),
    category: z.enum(EVENT_CATEGORIES),
    agent: z.string(),
    trace_id: z.string().nullable(),
    span_id: z.string().nullable(),
    data: z
      .unknown()
      .describe(
        'lifecycle: old_state, new_state, reason (run.awaiting_approval, run.approval_decided: run_id, tool, call_id, decision, decided_by); communication: message_id, conversation_id, performative, sender, receivers; performance: execution_id, status, duration_ms, input_tokens, output_tokens',
      ),
  }),
);

const logRecordSchema = onUse(() =>
  z
    .object({ seq: z.number().int(), level: z.string(), time: z.string(), msg: z.string().optional() })
    .catchall(z.unknown()),
);

const overviewSchema = onUse(() =>
  z.object({
    version: z.string(),
    uptime_seconds: z.number().int(),
    ready: z.boolean().describe('started, and every outside dependency answering'),
    dependencies: z
      .array(dependencyStateSchema())
      .optional()
      .describe('the outside dependencies /ready checks (PostgreSQL, NATS), with why one failed'),
    degraded: z
      .array(z.object({ name: z.string(), problem: z.string(), fix: z.string() }))
      .optional()
      .describe(
        'configuration that will make work fail although the server serves (a provider with no key, a missing script), each with its fix',
      ),
    time: z.string(),
    metrics_enabled: z
      .boolean()
      .describe('rates come from the metrics counters: with [metrics] enabled = false they stay 0'),
    agents: z.object({
      total: z.number().int(),
      from_files: z.number().int(),
      from_api: z.number().int(),
      capabilities: z.number().int(),
      invalid_files: z.number().int(),
      invalid_paths: z.array(z.string()).optional().describe('the invalid agent files'),
    }),
    rates: z.object({
      window_seconds: z.number(),
      executions_per_second: z.number(),
      messages_per_second: z.number(),
      errors_per_second: z.number(),
      execution_error_rate: z.number().nullable(),
      message_error_rate: z.number().nullable(),
      http_requests_per_second: z.number(),
    }),
    totals: z.object({
      executions: z.number(),
      execution_errors: z.number(),
      messages: z.number(),
      message_failures: z.number(),
      errors: z.number(),
    }),
    queue: z
      .object({
        depth: z.number().int(),
        queued: z.number().int(),
        running: z.number().int(),
        retrying: z.number().int(),
        max_queue: z.number().int(),
        open_conversations: z.number().int(),
      })
      .nullable(),
    dead_letters: z.number().int().nullable(),
    memory: z
      .object({
        entities: z.number().int(),
        relations: z.number().int(),
        observations: z.number().int(),
        database_bytes: z.number().int().optional(),
      })
      .optional()
      .describe('absent when memory is disabled'),
    tool_servers: z
      .object({
        total: z.number().int(),
        loaded: z.number().int(),
        failed: z.number().int(),
        tools: z.number().int(),
        servers: z.array(
          z.object({ name: z.string(), origin: z.string(), state: z.string(), tools: z.number().int() }),
        ),
      })
      .nullable(),
    tool_sources: z
      .object({
        total: z.number().int(),
        by_kind: z.object({
          wasm: z.number().int(),
          javascript: z.number().int(),
          mcp: z.number().int(),
          builtin: z.number().int(),
          host: z.number().int(),
        }),
        tools: z.number().int(),
        unavailable: z
          .array(z.object({ name: z.string(), kind: z.string(), state: z.string(), error: z.string().nullable() }))
          .describe('tool servers that failed to load and MCP servers not ready'),
      })
      .optional()
      .describe('every tool source (tool servers, MCP servers, built-in and host tools), counted by kind'),
    events: z.object({ enabled: z.boolean(), stored: z.number().int().nullable() }),
    process: z.object({ rss_bytes: z.number().int(), heap_used_bytes: z.number().int() }),
    config: z.object({ file: z.string().nullable(), agents_dir: z.string(), data_dir: z.string() }),
  }),
);

// ------------------------------------------------------------------------------ routes

/**
 * Observability: the agent event store (`/events`, SSE follow), the server's recent log lines
 * (`/logs`, SSE follow) and the live status overview (`/status/overview`).
 */
export async function observabilityRoutes(app: FastifyInstance, deps: ObservabilityRouteDeps): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });
  eventRoutes(app, deps, streams);
  logRoutes(app, deps, streams);

  r.get(
    '/status/overview',
    {
      schema: {
        summary: 'Live overview: agents, rates, queue, dead letters, memory, tool servers',
        description:
          'Rates (per second) are computed from the metrics counters sampled every second over `window` (default 10s). `caxton status` shows this.',
        tags: ['system'],
        querystring: onFirstRequest(() => z.object({ window: windowField() })),
        response: docResponses(() => ({ 200: overviewSchema(), 400: errorEnvelopeSchema })),
      },
    },
    async (req) => overview(deps, req.query.window, req.principal),
  );
}

/** `/events` and `/events/stream`: the agent event store, and following it; `streams` holds each open stream's end. */
function eventRoutes(app: FastifyInstance, deps: ObservabilityRouteDeps, streams: Set<() => void>): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const eventsQuery = z.object({
    agent: agentField.describe('only events about this agent'),
    type: typeField,
    since: sinceField,
    after: cursorField.describe('only events with a larger id (the last id you saw)'),
    limit: limitField(100, 10_000),
    follow: followField,
  });
  const requireEvents = (): EventReads => {
    if (!deps.events)
      throw new CaxtonError(
        'not_found',
        'the agent event store is disabled ([events] enabled = false in caxton.toml)',
        { reason: 'events_disabled' },
      );
    return deps.events;
  };

  const followEvents = async (
    req: FastifyRequest,
    reply: FastifyReply,
    q: z.output<typeof eventsQuery>,
  ): Promise<FastifyReply> => {
    const store = requireEvents();
    const scope = readScopeOf(req.principal);
    const filter = {
      ...(q.agent !== undefined && { agent: q.agent }),
      ...(q.type !== undefined && { types: q.type }),
      ...(scope !== undefined && { agents: scope }),
    };
    const held: AgentEvent[] = [];
    let live = false;
    const onEvent = (e: AgentEvent) => {
      if (!eventMatches(e, filter) || !agentVisible(req.principal, e.agent)) return;
      if (live) send(e);
      else held.push(e);
    };
    store.on('event', onEvent);
    // Stored events first (only when asked for: since or after), oldest first, then live ones.
    let replay: AgentEvent[] = [];
    try {
      await store.listening?.();
      const stored = {
        ...filter,
        ...(q.since !== undefined && { since: q.since }),
        ...(q.after !== undefined && { after: q.after }),
        limit: q.limit,
      };
      if (q.since !== undefined || q.after !== undefined) {
        replay = await store.find({ ...stored, order: 'asc' });
        // More matched than the limit: send the newest ones.
        if (replay.length === q.limit) replay = (await store.find({ ...stored, order: 'desc' })).reverse();
      }
    } catch (e) {
      store.off('event', onEvent);
      throw e;
    }
    // A live event is sent unless it was replayed or is at or before the cursor. Not "at or before
    // the last id sent": in a cluster, events of several nodes arrive out of id order.
    const replayed = new Set(replay.map((e) => e.id));
    const after = q.after ?? 0;
    const sse = openSse(req, reply);
    const send = (e: AgentEvent) => {
      if (e.id <= after || replayed.has(e.id)) return;
      sse.send(e.type, e);
    };
    keepOpen(sse, streams, () => store.off('event', onEvent));
    sse.send('ready', { replayed: replay.length });
    for (const e of replay) sse.send(e.type, e);
    for (const e of held.splice(0)) send(e);
    live = true;
    return reply;
  };

  r.get(
    '/events',
    {
      schema: {
        summary: 'Agent events: lifecycle, communication and performance, newest first',
        description:
          'Query the agent event store. `type` takes event types (agent.deployed, agent.updated, agent.removed, agent.invalid_file, rollout.started, rollout.stage_advanced, rollout.promoted, rollout.rolled_back, run.awaiting_approval, run.approval_decided, message.sent, message.received, execution.finished) or categories (lifecycle, communication, performance), comma-separated. ' +
          '`since` is an ISO 8601 time or a duration ago ("5m"). With `?follow` (or Accept: text/event-stream) the answer is an event stream: the stored events matching `since`/`after` oldest first, then new ones as they happen (one SSE event per agent event, named by its type).',
        tags: ['observability'],
        querystring: onFirstRequest(() => eventsQuery),
        response: docResponses(() => ({
          200: z.object({ events: z.array(eventSchema()), count: z.number().int(), limit: z.number().int() }),
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req, reply) => {
      const q = req.query;
      if (q.follow !== undefined || wantsEventStream(req)) return followEvents(req, reply, q);
      const scope = readScopeOf(req.principal);
      const events = await requireEvents().find({
        ...(q.agent !== undefined && { agent: q.agent }),
        ...(scope !== undefined && { agents: scope }),
        ...(q.type !== undefined && { types: q.type }),
        ...(q.since !== undefined && { since: q.since }),
        ...(q.after !== undefined && { after: q.after }),
        limit: q.limit,
      });
      return { events, count: events.length, limit: q.limit };
    },
  );

  r.get(
    '/events/stream',
    {
      schema: {
        summary: 'Follow agent events (server-sent events)',
        description:
          'Same filters as GET /events. Stored events matching `since` or `after` are sent first (oldest first), then new ones live. A `ready` event opens the stream; comment lines are sent every 15 s while idle.',
        tags: ['observability'],
        querystring: onFirstRequest(() => eventsQuery),
        response: docResponses(() => ({
          200: z.string().describe('text/event-stream'),
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req, reply) => followEvents(req, reply, req.query),
  );
}

/** `/logs` and `/logs/stream`: the server's recent log lines, and following them; `streams` holds each open stream's end. */
function logRoutes(app: FastifyInstance, deps: ObservabilityRouteDeps, streams: Set<() => void>): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const logsQuery = z.object({
    agent: agentField.describe('only lines about this agent (agent, sender or receiver field)'),
    level: levelField,
    since: sinceField,
    limit: limitField(100, 10_000),
    follow: followField,
  });
  const requireLogs = (): LogBuffer => {
    if (!deps.logs || deps.logs.capacity === 0)
      throw new CaxtonError(
        'not_found',
        'the server keeps no log lines in memory ([logging] buffer_lines = 0, or the server was started with its own logger)',
        { reason: 'logs_disabled' },
      );
    return deps.logs;
  };
  const followLogs = (req: FastifyRequest, reply: FastifyReply, q: z.output<typeof logsQuery>): FastifyReply => {
    const logs = requireLogs();
    const visible = logLinesVisibleTo(req.principal);
    const filter = {
      ...(q.agent !== undefined && { agent: q.agent }),
      ...(q.level !== undefined && { level: q.level }),
      ...(visible !== undefined && { visible }),
    };
    const held: LogRecord[] = [];
    let live = false;
    let last = -1;
    const stop = logs.follow((l) => {
      if (!LogBuffer.matches(l, filter)) return;
      if (live) send(l);
      else held.push(l);
    });
    const recent = logs.query({ ...filter, ...(q.since !== undefined && { since: q.since }), limit: q.limit });
    const sse = openSse(req, reply);
    const send = (l: LogRecord) => {
      if (l.seq <= last) return;
      last = l.seq;
      sse.send('log', l);
    };
    keepOpen(sse, streams, stop);
    for (const l of recent) send(l);
    for (const l of held.splice(0)) send(l);
    live = true;
    return reply;
  };

  r.get(
    '/logs',
    {
      schema: {
        summary: "The server's recent log lines (oldest first)",
        description:
          'The last `limit` lines (default 100) of the in-memory log buffer ([logging] buffer_lines) matching `agent`, `level` (that level and above) and `since`. Lines are pino JSON, secrets redacted. ' +
          'With `?follow` (or Accept: text/event-stream): those lines, then new ones as they are logged, as `log` events.',
        tags: ['observability'],
        querystring: onFirstRequest(() => logsQuery),
        response: docResponses(() => ({
          200: z.object({
            logs: z.array(logRecordSchema()),
            count: z.number().int(),
            buffered: z.number().int(),
            capacity: z.number().int(),
          }),
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req, reply) => {
      const q = req.query;
      if (q.follow !== undefined || wantsEventStream(req)) return followLogs(req, reply, q);
      const logs = requireLogs();
      const visible = logLinesVisibleTo(req.principal);
      const lines = logs.query({
        ...(visible !== undefined && { visible }),
        ...(q.agent !== undefined && { agent: q.agent }),
        ...(q.level !== undefined && { level: q.level }),
        ...(q.since !== undefined && { since: q.since }),
        limit: q.limit,
      });
      return { logs: lines, count: lines.length, buffered: logs.size, capacity: logs.capacity };
    },
  );

  r.get(
    '/logs/stream',
    {
      schema: {
        summary: 'Follow the server log (server-sent events)',
        description: 'Same filters as GET /logs: the last `limit` matching lines, then new ones live, as `log` events.',
        tags: ['observability'],
        querystring: onFirstRequest(() => logsQuery),
        response: docResponses(() => ({
          200: z.string().describe('text/event-stream'),
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req, reply) => followLogs(req, reply, req.query),
  );
}

/** The agents counted are those `reader` sees (src/auth/scope-read.ts); the other figures are the server's. */
async function overview(
  deps: ObservabilityRouteDeps,
  windowMs: number,
  reader: Principal | undefined,
): Promise<z.input<ReturnType<typeof overviewSchema>>> {
  const { service, config, lifecycle, bus, tools, memory } = deps;
  const { now, rates } = await deps.sampler.rates(windowMs);
  const all = agentsVisibleTo(reader, service.registry).agents;
  const fromFiles = all.filter((a) => a.origin.kind === 'file').length;
  const q = bus?.stats();
  const servers = tools?.list();
  const sources = deps.catalogue?.list();
  const mem = process.memoryUsage();
  let memoryStats: z.input<ReturnType<typeof overviewSchema>>['memory'];
  if (memory) {
    try {
      const s = await memory.store.stats();
      memoryStats = {
        entities: s.entities,
        relations: s.relations,
        observations: s.observations,
        ...(s.database_bytes !== undefined && { database_bytes: s.database_bytes }),
      };
    } catch {
      memoryStats = undefined;
    }
  }
  const dependencies =
    lifecycle.readiness && lifecycle.readiness.size > 0 ? await lifecycle.readiness.probe() : undefined;
  const degraded = lifecycle.problems?.() ?? [];
  const invalid = service.files.fileStatuses().filter((f) => f.state === 'invalid');
  return {
    version: lifecycle.version,
    uptime_seconds: Math.round((Date.now() - lifecycle.startedAt) / 1000),
    ready: lifecycle.state === 'ready' && (dependencies?.every((d) => d.ok) ?? true),
    ...(dependencies && dependencies.length > 0 && { dependencies }),
    ...(degraded.length > 0 && { degraded }),
    time: new Date(now.t).toISOString(),
    metrics_enabled: config.metrics.enabled,
    agents: {
      total: all.length,
      from_files: fromFiles,
      from_api: all.length - fromFiles,
      capabilities: capabilitiesVisibleTo(reader, service.registry.capabilities()).length,
      invalid_files: invalid.length,
      ...(invalid.length > 0 && { invalid_paths: invalid.map((f) => f.path) }),
    },
    rates,
    totals: {
      executions: now.executions,
      execution_errors: now.execution_errors,
      messages: now.messages,
      message_failures: now.message_failures,
      errors: now.errors,
    },
    queue: q
      ? {
          depth: q.queued + q.running + q.retrying,
          queued: q.queued,
          running: q.running,
          retrying: q.retrying,
          max_queue: q.max_queue,
          open_conversations: q.open_conversations,
        }
      : null,
    dead_letters: q ? q.dead_letters : null,
    ...(memoryStats && { memory: memoryStats }),
    tool_servers: servers
      ? {
          total: servers.length,
          loaded: servers.filter((s) => s.state === 'loaded').length,
          failed: servers.filter((s) => s.state === 'failed').length,
          tools: servers.reduce((n, s) => n + s.tools.length, 0),
          servers: servers.map((s) => ({ name: s.name, origin: s.origin, state: s.state, tools: s.tools.length })),
        }
      : null,
    ...(sources && {
      tool_sources: {
        total: sources.length,
        by_kind: {
          wasm: 0,
          javascript: 0,
          mcp: 0,
          builtin: 0,
          host: 0,
          ...Object.fromEntries(
            ['wasm', 'javascript', 'mcp', 'builtin', 'host'].map((k) => [
              k,
              sources.filter((s) => s.kind === k).length,
            ]),
          ),
        },
        tools: sources.reduce((n, s) => n + s.tools.length, 0),
        unavailable: sources
          .filter((s) => s.state !== 'loaded' && s.state !== 'ready' && s.state !== 'disabled')
          .map((s) => ({ name: s.name, kind: s.kind, state: s.state, error: s.error })),
      },
    }),
    // null: the store did not answer (the cluster's PostgreSQL unreachable).
    events: {
      enabled: deps.events !== undefined,
      stored: deps.events ? await deps.events.size().catch(() => null) : 0,
    },
    process: { rss_bytes: mem.rss, heap_used_bytes: mem.heapUsed },
    config: { file: config.source.file, agents_dir: config.agents_dir, data_dir: config.data_dir },
  };
}
