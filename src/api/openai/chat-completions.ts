import { agentVisible, agentsVisibleTo, assertAgentAllowed } from '../../auth/index.js';
import { admitAndOpenSse, callerOf, limitOf } from '../caller.js';
import { randomUUID } from 'node:crypto';
import { requestTraceparent } from '../request-trace.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AgentRegistry } from '../../agents/index.js';
import type { AgentResponse, Executor, SuspendedExecutionStore } from '../../execution/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { toEnvelope } from '../envelope.js';
import { openAiPayload, toOpenAiError } from './openai-errors.js';
import { runMetadata } from './run-metadata.js';
import { chatMessagesToInvoke } from './chat-messages.js';
import { assertSupported, bodyToInvoke, chatCompletionBody } from './chat-params.js';
import { replyCheckFor } from './structured-output.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { disconnectHook, wantsEventStream } from '../sse-stream.js';
import { docResponses, onFirstRequest } from '../lazy-schemas.js';

/**
 * OpenAI-compatible endpoints: any OpenAI client can talk to Caxton agents, the model name being
 * the agent name. The agent keeps its own system prompt, tools and limits; the client's system
 * messages follow the agent's system prompt (or fill {{context}} when the agent's template asks),
 * earlier turns become history, the last user message the request. Parameters Caxton cannot honour
 * are refused by name (chat-params.ts); errors take OpenAI's shape (openai-errors.ts).
 *
 * Client-defined `tools` join the agent's own: when the model calls one, the execution runs that
 * turn's server-side calls and stops (finish_reason tool_calls); it is stored as suspended
 * (src/execution/suspended.ts) until the client's tool results resume it (chat-messages.ts).
 */

function finishReason(r: AgentResponse): 'stop' | 'length' | 'content_filter' | 'tool_calls' {
  return r.finish_reason === 'max_turns' ? 'length' : r.finish_reason;
}

/** The client tool calls of a response, as OpenAI's `message.tool_calls` (arguments as JSON text). */
function wireToolCalls(r: AgentResponse) {
  return (r.pending_tool_calls ?? []).map((c) => ({
    id: c.id,
    type: 'function' as const,
    function: { name: c.name, arguments: JSON.stringify(c.arguments) },
  }));
}

function usage(r: AgentResponse) {
  return {
    prompt_tokens: r.usage.input_tokens,
    completion_tokens: r.usage.output_tokens,
    total_tokens: r.usage.total_tokens,
  };
}

export async function openAiRoutes(
  app: FastifyInstance,
  opts: { executor: Executor; registry: AgentRegistry; bodyLimit: number; suspended?: SuspendedExecutionStore },
): Promise<void> {
  // Every error of these routes — the handlers', validation's, and the auth hooks' 401/403/429 —
  // leaves in OpenAI's shape; the root error handler still logs and counts it.
  app.addHook('onSend', (_req, reply, payload, done) => done(null, openAiPayload(reply, payload) as typeof payload));
  modelRoutes(app, opts.registry);
  chatCompletionRoute(app, opts);
}

/** `/v1/models` and `/v1/models/:model`: the agents as OpenAI models. */
function modelRoutes(app: FastifyInstance, registry: AgentRegistry): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const model = (a: { definition: { name: string }; deployed_at: string }) => ({
    id: a.definition.name,
    object: 'model',
    created: Math.floor(Date.parse(a.deployed_at) / 1000),
    owned_by: 'caxton',
  });

  r.get('/v1/models', { schema: { summary: 'Agents as OpenAI models', tags: ['openai'] } }, async (req) => ({
    object: 'list',
    data: agentsVisibleTo(req.principal, registry).agents.map(model),
  }));

  r.get(
    '/v1/models/:model',
    {
      schema: {
        summary: 'One agent as an OpenAI model (models.retrieve)',
        tags: ['openai'],
        params: onFirstRequest(() => z.object({ model: z.string().min(1).max(200) })),
        response: docResponses(() => ({
          200: z.record(z.string(), z.unknown()).describe('a model object'),
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      const name = req.params.model;
      // NAME@VERSION too: any kept version (a cluster node reads one it has not seen first).
      const reading = registry.prepare(name, undefined);
      if (reading) await reading;
      const found = registry.find(name);
      // An agent outside the caller's scope reads as a missing one, so its existence is not revealed.
      const agent = found && agentVisible(req.principal, found.definition.name as string) ? found : undefined;
      if (!agent)
        throw new CaxtonError('agent_not_found', `no agent named "${name}" is deployed; GET /v1/models lists them`, {
          name,
          param: 'model',
        });
      return model(agent);
    },
  );
}

/** `/v1/chat/completions`: one agent run, answered whole or as a stream of chunks. */
function chatCompletionRoute(
  app: FastifyInstance,
  opts: { executor: Executor; registry: AgentRegistry; bodyLimit: number; suspended?: SuspendedExecutionStore },
): void {
  const { executor, registry, suspended } = opts;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post(
    '/v1/chat/completions',
    {
      schema: {
        summary: 'OpenAI-compatible chat completion with an agent (model = agent name)',
        tags: ['openai'],
        body: onFirstRequest(() => chatCompletionBody),
        response: docResponses(() => ({
          200: z
            .record(z.string(), z.unknown())
            .describe('a chat.completion, or chat.completion.chunk events when streaming'),
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req, reply) => {
      const body = req.body;
      assertSupported(body);
      if (req.principal) assertAgentAllowed(req.principal, body.model);
      // Compiled before the model is called: a schema that does not compile is the caller's 400, at no cost.
      const check = replyCheckFor(body.response_format);
      const template = registry.find(body.model)?.definition.user_prompt_template ?? '';
      const tp = requestTraceparent(req);
      const params = bodyToInvoke(body);
      const { principal } = callerOf(req);
      const { invoke: fromMessages, resumed } = await chatMessagesToInvoke(body.messages, {
        agent: body.model,
        userTemplate: template,
        toolNames: new Set((params.client_tools ?? []).map((t) => t.name)),
        principal,
        store: suspended,
      });
      const invoke = {
        ...fromMessages,
        ...params,
        ...(tp !== undefined && { traceparent: tp }),
        ...callerOf(req),
      };
      const limit = limitOf(req);
      const id = `chatcmpl-${randomUUID()}`;
      const created = Math.floor(Date.now() / 1000);
      // After a successful execution: a suspension is stored for the follow-up, a resumed one is done.
      const settle = async (res: AgentResponse): Promise<void> => {
        if (!suspended) return;
        if (res.finish_reason === 'tool_calls' && res.pending_tool_calls && res.transcript) {
          await suspended.save({
            id: `susp_${randomUUID()}`,
            agent: res.agent,
            ...(principal !== undefined && { principal }),
            transcript: res.transcript,
            pending_call_ids: res.pending_tool_calls.map((c) => c.id),
            expires_at: Date.now() + suspended.ttlMs,
          });
        }
        if (resumed) await suspended.delete(resumed.id);
      };
      if (!body.stream && !wantsEventStream(req)) {
        const res = await executor.invoke(body.model, invoke, {
          origin: 'openai',
          cancelOn: disconnectHook(req, reply),
          ...(limit && { limit }),
        });
        await settle(res);
        return completionOf(res, id, created, check);
      }
      await executor.check(body.model, invoke); // fails before the stream opens (unknown agent, oversized request), keeping the HTTP status
      await streamCompletion({
        executor,
        req,
        reply,
        body,
        invoke,
        id,
        created,
        check,
        settle,
        bodyLimit: opts.bodyLimit,
      });
      return reply;
    },
  );
}

/** The whole chat.completion of a finished run. */
function completionOf(res: AgentResponse, id: string, created: number, check: ReplyCheck | undefined) {
  const calls = wireToolCalls(res);
  // A reply that calls tools is not the final answer: the format is checked on the final one.
  const content = calls.length > 0 ? res.content || null : check ? check(res.agent, res.content) : res.content;
  const metadata = runMetadata(res);
  return {
    id,
    object: 'chat.completion',
    created,
    model: res.agent,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content, refusal: null, ...(calls.length > 0 && { tool_calls: calls }) },
        finish_reason: finishReason(res),
        logprobs: null,
      },
    ],
    usage: usage(res),
    ...(metadata && { metadata }),
  };
}

type ReplyCheck = NonNullable<ReturnType<typeof replyCheckFor>>;

/** A run answered as chat.completion.chunk events, ended by `[DONE]` whatever happens. */
async function streamCompletion(c: {
  executor: Executor;
  req: FastifyRequest;
  reply: FastifyReply;
  body: z.infer<typeof chatCompletionBody>;
  invoke: Parameters<Executor['invoke']>[1];
  id: string;
  created: number;
  check: ReplyCheck | undefined;
  settle: (res: AgentResponse) => Promise<void>;
  bodyLimit: number;
}): Promise<void> {
  const { executor, req, reply, body, invoke, id, created, check, settle } = c;
  const { sse, admitted } = admitAndOpenSse(executor, body.model, req, reply);
  const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) =>
    sse.send(undefined, {
      id,
      object: 'chat.completion.chunk',
      created,
      model: body.model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
      ...extra,
    });
  chunk({ role: 'assistant', content: '' }, null);
  try {
    const res = await executor.invoke(body.model, invoke, {
      origin: 'openai',
      signal: sse.signal,
      stream: true,
      onEvent: (e) => {
        if (e.type === 'token') chunk({ content: e.text }, null);
      },
      ...(admitted && { admitted }),
    });
    // Streamed structured output is checked once the whole reply is in: an invalid one ends
    // the stream with an error event instead of a finish_reason.
    await settle(res);
    const calls = wireToolCalls(res);
    if (calls.length > 0) chunk({ tool_calls: calls.map((c, index) => ({ index, ...c })) }, null);
    else check?.(res.agent, res.content);
    // The chunk schema has no metadata: the last chunk carries the completion's (clients keep unknown fields).
    const metadata = runMetadata(res);
    chunk({}, finishReason(res), metadata && { metadata });
    if (body.stream_options?.include_usage)
      sse.send(undefined, {
        id,
        object: 'chat.completion.chunk',
        created,
        model: body.model,
        choices: [],
        usage: usage(res),
      });
  } catch (e) {
    const { status, body: err } = toEnvelope(e, req, c.bodyLimit);
    sse.send(undefined, toOpenAiError(status, err));
  } finally {
    sse.send(undefined, '[DONE]');
    sse.end();
  }
}
