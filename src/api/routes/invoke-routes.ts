import type { FastifyInstance } from 'fastify';
import { admitAndOpenSse, callerOf, limitOf } from '../caller.js';
import { requestTraceparent } from '../request-trace.js';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ISOLATION_MODES } from '../../agents/index.js';
import { agentOfRef } from '../../auth/principal.js';
import type { AgentResponse, ChatThreads, Executor, ExecutionEvent, InvokeRequest } from '../../execution/index.js';
import { toEnvelope } from '../envelope.js';
import { agentNameParams, errorEnvelopeSchema, idempotencyKeyOf } from '../schemas.js';
import { disconnectHook, wantsEventStream } from '../sse-stream.js';
import type { Check, Documents } from '../type-checks.js';
import { docResponses, onFirstRequest } from '../lazy-schemas.js';
import { onUse } from '../lazy-schemas.js';

export const invokeBodySchema = onUse(() =>
  z.strictObject({
    request: z
      .string()
      .min(1, { message: 'must not be empty' })
      .describe('what the agent is asked to do ({{request}})'),
    context: z
      .union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())])
      .optional()
      .describe('rendered as {{context}}'),
    parameters: z
      .record(z.string(), z.unknown())
      .optional()
      .describe("override the agent's [parameters] ({{parameters.NAME}})"),
    conversation_id: z.string().min(1).max(200).optional(),
    capability: z.string().min(1).max(200).optional().describe('fail unless the agent provides this capability'),
  }),
);

const usageSchema = onUse(() =>
  z.object({ input_tokens: z.number(), output_tokens: z.number(), total_tokens: z.number() }),
);
export const agentResponseSchema = onUse(() =>
  z.object({
    id: z.string(),
    execution_id: z.string(),
    agent: z.string(),
    conversation_id: z.string().optional(),
    content: z.string(),
    tool_calls: z.array(
      z.object({
        id: z.string(),
        name: z.string(),
        arguments: z.record(z.string(), z.unknown()),
        result: z.string(),
        is_error: z.boolean(),
        duration_ms: z.number(),
      }),
    ),
    usage: usageSchema(),
    execution_time_ms: z.number(),
    finish_reason: z.enum(['stop', 'length', 'content_filter', 'max_turns', 'tool_calls']),
    provider: z.string(),
    model: z.string(),
    turns: z.number().int(),
    isolation: z.enum(ISOLATION_MODES),
    all_tool_calls_refused: z
      .literal(true)
      .optional()
      .describe(
        "present when the model (or a WebAssembly agent's module) called tools and every call was refused (not in the agent's tools, not granted by caxton.toml, or denied by a permission rule): none ran",
      ),
  }),
);

/** The schema documents AgentResponse as this route returns it (without what only the OpenAI routes use); does not compile otherwise. */
export type AgentResponseDocumented = Check<
  Documents<
    z.output<ReturnType<typeof agentResponseSchema>>,
    Omit<AgentResponse, 'pending_tool_calls' | 'transcript' | 'model_turns'>
  >
>;

/** POST /api/v1/agents/{name}/invoke: JSON, or server-sent events with Accept: text/event-stream. */
export async function invokeRoutes(
  app: FastifyInstance,
  opts: { executor: Executor; bodyLimit: number; threads: ChatThreads },
): Promise<void> {
  const { executor } = opts;
  app.withTypeProvider<ZodTypeProvider>().post(
    '/agents/:name/invoke',
    {
      schema: {
        summary: 'Run an agent on a request',
        description:
          'With `Accept: text/event-stream` the answer streams as SSE events `token`, `tool_call`, `tool_result`, then `response` (the AgentResponse) or `error` (the error envelope). With an `Idempotency-Key` header, the same key from the same caller to the same agent is one durable run: a repeat answers with its result, joins it while it runs, or resumes it after a restart; such a run is not cancelled when the connection closes.',
        tags: ['execution'],
        params: onFirstRequest(() => agentNameParams()),
        body: onFirstRequest(() => invokeBodySchema()),
        response: docResponses(() => ({
          200: agentResponseSchema(),
          202: errorEnvelopeSchema.describe(
            'awaiting_approval: the run waits for a person before a tool call (details name the run, tool and call); GET /runs/{id} follows it',
          ),
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
          413: errorEnvelopeSchema,
          502: errorEnvelopeSchema,
          504: errorEnvelopeSchema,
        })),
      },
    },
    async (req, reply) => {
      const body = req.body;
      const tp = requestTraceparent(req);
      // A conversation continued: its earlier turns (the caller's own thread) are the model's history.
      const history =
        body.conversation_id === undefined
          ? []
          : await opts.threads.history(req.principal, agentOfRef(req.params.name), body.conversation_id);
      // Built field by field: an object literal of conditional spreads costs a copy per spread.
      const request: InvokeRequest = { request: body.request };
      if (body.context !== undefined) request.context = body.context;
      if (body.parameters !== undefined) request.parameters = body.parameters;
      if (body.conversation_id !== undefined) request.conversation_id = body.conversation_id;
      if (history.length > 0) request.history = history;
      if (body.capability !== undefined) request.capability = body.capability;
      if (tp !== undefined) request.traceparent = tp;
      const { principal } = callerOf(req);
      if (principal !== undefined) request.principal = principal;
      const limit = limitOf(req);
      const idempotencyKey = idempotencyKeyOf(req.headers);
      if (!wantsEventStream(req)) {
        // A run with an Idempotency-Key outlives its connection: the client asks again with the key.
        if (idempotencyKey !== undefined)
          return executor.invoke(req.params.name, request, limit ? { idempotencyKey, limit } : { idempotencyKey });
        const cancelOn = disconnectHook(req, reply);
        return executor.invoke(req.params.name, request, limit ? { cancelOn, limit } : { cancelOn });
      }
      await executor.check(req.params.name, request); // errors before the stream opens keep their HTTP status
      const { sse, admitted } = admitAndOpenSse(executor, req.params.name, req, reply);
      try {
        const response = await executor.invoke(req.params.name, request, {
          // A run with an Idempotency-Key outlives its stream, as it outlives a plain request.
          ...(idempotencyKey === undefined && { signal: sse.signal }),
          stream: true,
          onEvent: (e: ExecutionEvent) => {
            const { type, ...data } = e;
            sse.send(type, data);
          },
          ...(admitted && { admitted }),
          ...(idempotencyKey !== undefined && { idempotencyKey }),
        });
        sse.send('response', response);
      } catch (e) {
        const { body: env } = toEnvelope(e, req, opts.bodyLimit);
        if (!sse.signal.aborted)
          req.log.info({ code: env.error.code, message: env.error.message }, 'streamed execution failed');
        sse.send('error', env);
      } finally {
        sse.end();
      }
      return reply;
    },
  );
}
