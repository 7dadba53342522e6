import { assertAgentAllowed } from '../../auth/index.js';
import { admitAndOpenSse, callerOf, limitOf } from '../caller.js';
import { randomUUID } from 'node:crypto';
import { requestTraceparent } from '../request-trace.js';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AgentRegistry } from '../../agents/index.js';
import type { AgentResponse, Executor, InvokeRequest } from '../../execution/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { toEnvelope } from '../envelope.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { disconnectSignal, wantsEventStream } from '../sse.js';

/**
 * OpenAI-compatible endpoints: any OpenAI client can talk to Caxton agents, the model name being
 * the agent name. The agent keeps its own system prompt, tools and limits; the client's system
 * messages become {{context}}, earlier turns become history, the last user message the request.
 */

const contentSchema = z.union([z.string(), z.array(z.object({ type: z.string(), text: z.string().optional() }).loose()), z.null()]);

export const chatCompletionBody = z
  .object({
    model: z.string().min(1).describe('the agent name'),
    messages: z.array(z.object({ role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']), content: contentSchema.optional() }).loose()).min(1),
    stream: z.boolean().optional(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).loose().optional(),
    user: z.string().optional(),
  })
  .loose();

function textOf(c: z.infer<typeof contentSchema> | undefined): string {
  if (c === undefined || c === null) return '';
  if (typeof c === 'string') return c;
  return c.map((p) => p.text ?? '').join('');
}

function toInvoke(body: z.infer<typeof chatCompletionBody>): InvokeRequest {
  const system = body.messages.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => textOf(m.content));
  const turns = body.messages.filter((m) => m.role === 'user' || m.role === 'assistant');
  const lastUser = turns.map((m) => m.role).lastIndexOf('user');
  if (lastUser < 0) throw new CaxtonError('invalid_request', 'messages must contain a user message', { field: 'messages' });
  return {
    request: textOf(turns[lastUser]!.content),
    ...(system.length > 0 && { context: system.join('\n\n') }),
    history: turns.slice(0, lastUser).map((m) => ({ role: m.role as 'user' | 'assistant', content: textOf(m.content) })),
  };
}

function finishReason(r: AgentResponse): 'stop' | 'length' | 'content_filter' {
  return r.finish_reason === 'max_turns' ? 'length' : r.finish_reason;
}

function usage(r: AgentResponse) {
  return { prompt_tokens: r.usage.input_tokens, completion_tokens: r.usage.output_tokens, total_tokens: r.usage.total_tokens };
}

export async function openAiRoutes(app: FastifyInstance, opts: { executor: Executor; registry: AgentRegistry; bodyLimit: number }): Promise<void> {
  const { executor, registry } = opts;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/v1/models', { schema: { summary: 'Agents as OpenAI models', tags: ['openai'] } }, async () => ({
    object: 'list',
    data: registry.list().agents.map((a) => ({ id: a.definition.name, object: 'model', created: Math.floor(Date.parse(a.deployed_at) / 1000), owned_by: 'caxton' })),
  }));

  r.post(
    '/v1/chat/completions',
    {
      schema: {
        summary: 'OpenAI-compatible chat completion with an agent (model = agent name)',
        tags: ['openai'],
        body: chatCompletionBody,
        response: { 200: z.record(z.string(), z.unknown()).describe('a chat.completion, or chat.completion.chunk events when streaming'), 400: errorEnvelopeSchema, 404: errorEnvelopeSchema },
      },
    },
    async (req, reply) => {
      const body = req.body;
      if (req.principal) assertAgentAllowed(req.principal, body.model);
      const tp = requestTraceparent(req);
      const invoke = { ...toInvoke(body), ...(tp !== undefined && { traceparent: tp }), ...callerOf(req) };
      const limit = limitOf(req);
      const id = `chatcmpl-${randomUUID()}`;
      const created = Math.floor(Date.now() / 1000);
      if (!body.stream && !wantsEventStream(req)) {
        const res = await executor.invoke(body.model, invoke, { signal: disconnectSignal(req, reply), ...(limit && { limit }) });
        return {
          id,
          object: 'chat.completion',
          created,
          model: res.agent,
          choices: [{ index: 0, message: { role: 'assistant', content: res.content, refusal: null }, finish_reason: finishReason(res), logprobs: null }],
          usage: usage(res),
        };
      }
      executor.check(body.model, invoke); // fails before the stream opens (unknown agent, oversized request), keeping the HTTP status
      const { sse, admitted } = admitAndOpenSse(executor, body.model, req, reply);
      const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) =>
        sse.send(undefined, { id, object: 'chat.completion.chunk', created, model: body.model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }], ...extra });
      chunk({ role: 'assistant', content: '' }, null);
      try {
        const res = await executor.invoke(body.model, invoke, {
          ...(admitted && { admitted }),
          signal: sse.signal,
          stream: true,
          onEvent: (e) => {
            if (e.type === 'token') chunk({ content: e.text }, null);
          },
        });
        chunk({}, finishReason(res));
        if (body.stream_options?.include_usage) sse.send(undefined, { id, object: 'chat.completion.chunk', created, model: body.model, choices: [], usage: usage(res) });
      } catch (e) {
        sse.send(undefined, toEnvelope(e, req, opts.bodyLimit).body);
      } finally {
        sse.send(undefined, '[DONE]');
        sse.end();
      }
      return reply;
    },
  );
}
