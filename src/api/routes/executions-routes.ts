import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { agentVisible, readScopeOf } from '../../auth/index.js';
import { executionReaderOf, traceReadBy, type ExecutionLog } from '../../execution/index.js';
import type { SpanStore } from '../../observability/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { timeField } from './time-field.js';
import { errorEnvelopeSchema, pageQueryFields, recordedToolCallSchema } from '../schemas.js';
import { docResponses, onFirstRequest, onUse } from '../lazy-schemas.js';

export interface ExecutionRouteDeps {
  /** The execution records; absent (`[executions] enabled = false`): 404 executions_disabled. */
  records?: ExecutionLog | undefined;
  /** This node's recent spans; absent (`[tracing] local_spans = 0`): a trace holds only its executions. */
  spans?: SpanStore | undefined;
}

const text = onUse(() => z.string().min(1).max(200).optional());

const listQuery = onUse(() =>
  z.object({
    agent: text().describe('only executions of this agent'),
    version: text().describe("only executions of this version (the agent definition's `version`)"),
    principal: text().describe('only executions run for this principal (key:…, oidc:…)'),
    conversation: text().describe('only executions in this conversation'),
    message: text().describe(
      'only the executions that handled this message (its deliveries; give its conversation too for an index lookup)',
    ),
    status: z.enum(['ok', 'error'], { error: 'expected "ok" or "error"' }).optional(),
    since: timeField('only executions started at or after this time'),
    until: timeField('only executions started before this time'),
    ...pageQueryFields(1000),
  }),
);

const summaryShape = onUse(() => ({
  id: z.string(),
  agent: z.string(),
  version: z.string(),
  version_number: z
    .number()
    .int()
    .nullable()
    .describe("which version of the agent's history ran (what NAME@VERSION addresses), when known"),
  addressed: z.boolean().describe('whether the caller addressed that version (NAME@VERSION)'),
  principal: z.string().nullable(),
  conversation_id: z.string().nullable(),
  message_id: z.string().nullable(),
  status: z.enum(['ok', 'error']),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  started_at: z.string(),
  finished_at: z.string(),
  duration_ms: z.number(),
  isolation: z.string().nullable(),
  provider: z.string().nullable(),
  model: z.string().nullable(),
  finish_reason: z.string().nullable(),
  usage: z.object({ input_tokens: z.number(), output_tokens: z.number() }),
  turns: z.number().int(),
  trace_id: z.string().nullable(),
  shadow: z.boolean(),
  node: z.string().nullable(),
  steps_not_stored: z.number().int(),
}));
const summarySchema = onUse(() => z.object({ ...summaryShape(), tool_calls: z.number().int() }));
const viewSchema = onUse(() =>
  z.object({
    ...summaryShape(),
    request: z.string(),
    answer: z.string().nullable(),
    model_turns: z.array(
      z.object({
        turn: z.number().int(),
        provider: z.string(),
        model: z.string(),
        input_tokens: z.number(),
        output_tokens: z.number(),
        latency_ms: z.number(),
        finish_reason: z.string(),
        tool_calls: z.number().int(),
      }),
    ),
    tool_calls: z.array(recordedToolCallSchema()),
    links: z.object({ trace: z.string().nullable() }),
  }),
);
const spanSchema = onUse(() =>
  z.object({
    trace_id: z.string(),
    span_id: z.string(),
    parent_span_id: z.string().nullable(),
    name: z.string(),
    kind: z.string(),
    start: z.string(),
    duration_ms: z.number(),
    status: z.enum(['unset', 'ok', 'error']),
    status_message: z.string().optional(),
    attributes: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  }),
);

/**
 * Executions as records (GET /executions, GET /executions/{id}) and traces without a tracing
 * backend (GET /traces/{id}): both read as the caller's reader (executionReaderOf: its agent scope
 * and the threads it may read), applied in the query; an execution it may not read is 404, as
 * one that does not exist.
 */
export async function executionRecordRoutes(app: FastifyInstance, deps: ExecutionRouteDeps): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const records = (): ExecutionLog => {
    if (!deps.records)
      throw new CaxtonError(
        'not_found',
        'execution records are disabled ([executions] enabled = false in caxton.toml)',
        { reason: 'executions_disabled' },
      );
    return deps.records;
  };

  r.get(
    '/executions',
    {
      schema: {
        summary: 'Finished executions, newest first',
        description:
          'Every execution of every surface (invoke, /v1, MCP, message deliveries), newest first, in pages: pass `next_cursor` as `cursor` for the next. `since`/`until` are ISO 8601 times or durations ago ("1h").',
        tags: ['observability'],
        querystring: onFirstRequest(() => listQuery()),
        response: docResponses(() => ({
          200: z.object({ executions: z.array(summarySchema()), next_cursor: z.string().optional() }),
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      const q = req.query;
      return records().list({
        ...(q.agent !== undefined && { agent: q.agent }),
        ...(q.version !== undefined && { version: q.version }),
        ...(q.principal !== undefined && { principal: q.principal }),
        ...(q.conversation !== undefined && { conversation_id: q.conversation }),
        ...(q.message !== undefined && { message_id: q.message }),
        ...(q.status !== undefined && { status: q.status }),
        ...(q.since !== undefined && { since: q.since }),
        ...(q.until !== undefined && { until: q.until }),
        ...(q.cursor !== undefined && { before: Number(q.cursor) }),
        ...executionReaderOf(req.principal),
        limit: q.limit,
      });
    },
  );

  r.get(
    '/executions/:id',
    {
      schema: {
        summary: 'One execution: its model turns, tool calls, tokens, latency and error',
        description:
          'Arguments, results, the request and the answer are scrubbed of secrets and cut at a fixed size with a marker. `links.trace` reads its spans (GET /traces/{id}).',
        tags: ['observability'],
        params: onFirstRequest(() => z.object({ id: z.string().min(1).max(200) })),
        response: docResponses(() => ({ 200: viewSchema(), 404: errorEnvelopeSchema })),
      },
    },
    async (req) => {
      const v = await records().get(req.params.id, executionReaderOf(req.principal));
      if (!v) throw new CaxtonError('not_found', `no execution "${req.params.id}"`, { id: req.params.id });
      return { ...v, links: { trace: v.trace_id === null ? null : `/api/v1/traces/${v.trace_id}` } };
    },
  );

  r.get(
    '/traces/:id',
    {
      schema: {
        summary: "A trace's spans as this node kept them, and its executions",
        description:
          "Spans come from this node's own recent spans (`[tracing] local_spans`), bounded: old traces are gone, and on a cluster each node holds the spans of what it ran. Executions of the trace come from the execution records (every node's). Spans naming an agent outside the caller's scope are left out, and so are the spans of an execution the caller may not read (another principal's chat thread turn) and every span under them.",
        tags: ['observability'],
        params: onFirstRequest(() =>
          z.object({
            id: z.string().regex(/^[0-9a-f]{32}$/, { error: 'expected a trace id: 32 lowercase hex digits' }),
          }),
        ),
        response: docResponses(() => ({
          200: z.object({ trace_id: z.string(), spans: z.array(spanSchema()), executions: z.array(summarySchema()) }),
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      const id = req.params.id;
      const p = req.principal;
      const inScope = (deps.spans?.trace(id) ?? []).filter((s) => {
        const agent = s.attributes['caxton.agent'];
        return typeof agent !== 'string' || agentVisible(p, agent);
      });
      const { executions, spans, hidden } = await traceReadBy(deps.records, id, inScope, p);
      // A trace none of whose executions the caller sees, and none of whose spans name an agent it sees, is not revealed.
      const seen =
        readScopeOf(p) === undefined && hidden === 0
          ? spans.length > 0
          : spans.some((s) => typeof s.attributes['caxton.agent'] === 'string');
      if (executions.length === 0 && !seen) throw new CaxtonError('not_found', `no trace "${id}" on this node`, { id });
      return { trace_id: id, spans, executions };
    },
  );
}
