import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { agentOfRef } from '../../auth/principal.js';
import type { ChatThreads } from '../../execution/index.js';
import { errorEnvelopeSchema, pageQueryFields, recordedToolCallSchema } from '../schemas.js';
import { docResponses, onFirstRequest, onUse } from '../lazy-schemas.js';

const params = z.object({ name: z.string().min(1).max(200) });

const listQuery = onUse(() =>
  z.object({
    principal: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe(
        "whose threads: yours when absent; an admin may name another principal (key:…, oidc:…) or `*` for everyone's",
      ),
    ...pageQueryFields(200),
  }),
);

const usage = z.object({ input_tokens: z.number(), output_tokens: z.number() });
const threadSummary = onUse(() =>
  z.object({
    conversation_id: z.string(),
    agent: z.string(),
    title: z.string().describe('the first message, cut at 80 characters'),
    turns: z.number().int(),
    principal: z.string().nullable().describe('who began the thread'),
    started_at: z.string(),
    last_active_at: z.string(),
    version_number: z.number().int().nullable().describe('the version its newest turn ran on'),
    target: z.string().describe('what its newest turn addressed: NAME, or NAME@VERSION'),
  }),
);
const turn = z.object({
  run: z.string().describe("the execution's id: GET /api/v1/executions/{id}"),
  request: z.string(),
  answer: z.string().nullable(),
  status: z.enum(['ok', 'error']),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  tool_calls: z.array(recordedToolCallSchema()),
  started_at: z.string(),
  duration_ms: z.number(),
  model: z.string().nullable(),
  usage,
  version: z.string(),
  version_number: z.number().int().nullable(),
  target: z.string(),
});

/**
 * Chat threads with an agent (GET /agents/{name}/threads, GET /agents/{name}/threads/{id}), read
 * from the execution records by conversation. Whose threads a caller sees is ChatThreads' rule
 * (src/execution/thread-access.ts); the agent scope is the route policy's.
 */
export async function threadRoutes(app: FastifyInstance, deps: { threads: ChatThreads }): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/agents/:name/threads',
    {
      schema: {
        summary: 'Your chat threads with an agent, newest activity first',
        description:
          "A thread is a conversation begun by a direct call (invoke, /v1, MCP) with the agent, kept as long as its executions are (`[executions] retention`). NAME@VERSION reads the agent's threads. Continue one by invoking with its `conversation_id`.",
        tags: ['agents'],
        params,
        querystring: onFirstRequest(() => listQuery()),
        response: docResponses(() => ({
          200: z.object({ threads: z.array(threadSummary()), next_cursor: z.string().optional() }),
          400: errorEnvelopeSchema,
          403: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req) =>
      deps.threads.list(req.principal, agentOfRef(req.params.name), {
        principal: req.query.principal,
        limit: req.query.limit,
        ...(req.query.cursor !== undefined && { cursor: Number(req.query.cursor) }),
      }),
  );

  r.get(
    '/agents/:name/threads/:id',
    {
      schema: {
        summary: 'One chat thread: each turn with its request, answer, tool calls and run',
        description:
          'A thread another principal began is not found (an admin reads any). Text is scrubbed of secrets and cut at a fixed size with a marker, as in the execution records.',
        tags: ['agents'],
        params: onFirstRequest(() => params.extend({ id: z.string().min(1).max(200) })),
        response: docResponses(() => ({
          200: z.object({
            conversation_id: z.string(),
            agent: z.string(),
            principal: z.string().nullable(),
            turns: z.array(turn),
          }),
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => deps.threads.get(req.principal, agentOfRef(req.params.name), req.params.id),
  );
}
