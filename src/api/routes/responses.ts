import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AgentRegistry } from '../../agents/index.js';
import { assertAgentAllowed } from '../../auth/index.js';
import type { AgentResponse, Executor, InvokeRequest } from '../../execution/index.js';
import type { ResponseFormat } from '../../llm/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { admitAndOpenSse, callerOf, limitOf } from '../caller.js';
import { toEnvelope } from '../envelope.js';
import { requestTraceparent } from '../request-trace.js';
import { MemoryResponseStore, type ResponseStore, type StoredResponse, type TranscriptMessage } from '../response-store.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { disconnectSignal, wantsEventStream } from '../sse.js';
import { rewriteErrorPayload } from './openai-errors.js';
import { toInvoke, type ChatCompletionBody } from './openai-params.js';
import { itemsToMessages, newId, outputText, outputToMessages, responseObject, ResponseEvents, type OutputItem, type ResponseState } from './responses-objects.js';
import { assertResponsesSupported, inputItems, responsesBody, type ClientToolSupport, type ResponsesBody } from './responses-params.js';
import { replyCheckFor } from './structured-output.js';

/**
 * OpenAI's Responses API on Caxton agents (docs/openai.md, "Responses"): POST /v1/responses runs
 * the agent named by `model` on the same execution as /v1/chat/completions — the input items are
 * translated into chat messages, then into the same InvokeRequest — and answers with a `response`
 * object or its event stream. Responses are stored (unless `store: false`) for
 * `previous_response_id`, GET and DELETE, and belong to the principal that created them.
 */

/** Client function tools need the execution core's suspended executions; not there yet. */
const SUPPORT: ClientToolSupport = { functionTools: false };

const principalOf = (req: FastifyRequest): string | null => req.principal?.id ?? null;

function notFound(id: string, param: string): CaxtonError {
  return new CaxtonError('response_not_found', `no stored response "${id.slice(0, 200)}": it does not exist, has expired, was created with store: false, or belongs to another caller`, {
    param,
    id: id.slice(0, 200),
  });
}

/** `text.format` as the execution's ResponseFormat (chat completions' shape). */
function formatOf(body: ResponsesBody): ResponseFormat | undefined {
  const f = body.text?.format;
  if (f === undefined || f.type === 'text') return undefined;
  if (f.type === 'json_object') return f;
  return {
    type: 'json_schema',
    json_schema: { name: f.name, schema: f.schema, ...(f.description !== undefined && { description: f.description }), ...(f.strict !== undefined && { strict: f.strict }) },
  };
}

function incompleteOf(r: AgentResponse): ResponseState['incomplete'] {
  // max_turns (the agent's own tool-turn limit) is reported as chat completions reports it: as a length stop.
  if (r.finish_reason === 'length' || r.finish_reason === 'max_turns') return 'max_output_tokens';
  if (r.finish_reason === 'content_filter') return 'content_filter';
  return undefined;
}

export async function responsesRoutes(app: FastifyInstance, opts: { executor: Executor; registry: AgentRegistry; bodyLimit: number; store?: ResponseStore }): Promise<void> {
  const { executor, registry } = opts;
  const store = opts.store ?? new MemoryResponseStore();
  const r = app.withTypeProvider<ZodTypeProvider>();
  // As for chat completions: every error of these routes leaves in OpenAI's shape.
  app.addHook('onSend', (_req, reply, payload, done) => done(null, rewriteErrorPayload(reply.statusCode, payload) as typeof payload));

  /** The transcript the request continues, its own messages, and the invoke request they make. */
  function prepare(req: FastifyRequest, body: ResponsesBody): { history: TranscriptMessage[]; added: TranscriptMessage[]; invoke: InvokeRequest } {
    const items = inputItems(body.input, SUPPORT);
    let history: TranscriptMessage[] = [];
    if (!(body.previous_response_id === undefined || body.previous_response_id === null)) {
      const prev = store.get(body.previous_response_id, principalOf(req));
      if (!prev) throw notFound(body.previous_response_id, 'previous_response_id');
      history = prev.messages;
    }
    const added = itemsToMessages(items);
    // `instructions` go where a chat client's system messages go, and are not stored: a response
    // continuing this one does not inherit them (as at OpenAI).
    const messages = [...(body.instructions ? [{ role: 'system' as const, content: body.instructions }] : []), ...history, ...added];
    if (!messages.some((m) => m.role === 'user')) throw new CaxtonError('invalid_request', 'input must contain a user message', { param: 'input' });
    const format = formatOf(body);
    const chat = {
      model: body.model,
      messages,
      ...(body.temperature !== undefined && { temperature: body.temperature }),
      ...(body.top_p !== undefined && { top_p: body.top_p }),
      ...(body.max_output_tokens !== undefined && { max_completion_tokens: body.max_output_tokens }),
      ...(format !== undefined && { response_format: format }),
    } as ChatCompletionBody;
    const template = registry.get(body.model)?.definition.user_prompt_template ?? '';
    const tp = requestTraceparent(req);
    return { history, added, invoke: { ...toInvoke(chat, template), ...(tp !== undefined && { traceparent: tp }), ...callerOf(req) } };
  }

  function save(req: FastifyRequest, body: ResponsesBody, transcript: TranscriptMessage[], output: OutputItem[], response: Record<string, unknown>): void {
    if (body.store === false) return;
    const rec: StoredResponse = { id: response.id as string, agent: body.model, principal: principalOf(req), messages: [...transcript, ...outputToMessages(output)], response };
    store.save(rec);
  }

  r.post(
    '/v1/responses',
    {
      schema: {
        summary: 'OpenAI Responses API with an agent (model = agent name)',
        tags: ['openai'],
        body: responsesBody,
        response: { 200: z.record(z.string(), z.unknown()).describe('a response object, or its events when streaming'), 400: errorEnvelopeSchema, 404: errorEnvelopeSchema },
      },
    },
    async (req, reply) => {
      const body = req.body;
      assertResponsesSupported(body, SUPPORT);
      if (req.principal) assertAgentAllowed(req.principal, body.model);
      // Compiled before the model is called: a schema that does not compile is the caller's 400, at no cost.
      const check = replyCheckFor(formatOf(body), 'text.format.schema');
      const { history, added, invoke } = prepare(req, body);
      const transcript = [...history, ...added];
      const limit = limitOf(req);
      const state: ResponseState = {
        id: newId('resp'),
        created_at: Math.floor(Date.now() / 1000),
        model: body.model,
        status: 'in_progress',
        output: [],
        previous_response_id: body.previous_response_id ?? undefined,
      };

      if (!body.stream && !wantsEventStream(req)) {
        const res = await executor.invoke(body.model, invoke, { signal: disconnectSignal(req, reply), ...(limit && { limit }) });
        const text = check ? check(res.agent, res.content) : res.content;
        const incomplete = incompleteOf(res);
        state.status = incomplete ? 'incomplete' : 'completed';
        state.output = [{ type: 'message', id: newId('msg'), status: state.status, role: 'assistant', content: [outputText(text)] }];
        state.usage = res.usage;
        if (incomplete) state.incomplete = incomplete;
        const response = responseObject(state, body);
        save(req, body, transcript, state.output, response);
        return response;
      }

      executor.check(body.model, invoke); // fails before the stream opens (unknown agent, oversized request), keeping the HTTP status
      const { sse, admitted } = admitAndOpenSse(executor, body.model, req, reply);
      const events = new ResponseEvents((event, data) => sse.send(event, data), state, body);
      events.start();
      try {
        const res = await executor.invoke(body.model, invoke, {
          ...(admitted && { admitted }),
          signal: sse.signal,
          stream: true,
          onEvent: (e) => {
            if (e.type === 'token') events.delta(e.text);
          },
        });
        // Streamed structured output is checked once the whole reply is in: an invalid one ends
        // the stream with response.failed instead of response.completed.
        const text = check ? check(res.agent, res.content) : res.content;
        const incomplete = incompleteOf(res);
        events.finish(text, [], { usage: res.usage, ...(incomplete && { incomplete }) });
        save(req, body, transcript, events.output, responseObject(state, body));
      } catch (e) {
        const { body: err } = toEnvelope(e, req, opts.bodyLimit);
        events.fail(err.error.code, err.error.message);
      } finally {
        sse.end();
      }
      return reply;
    },
  );

  const idParams = z.object({ id: z.string().min(1).max(200) });

  r.get(
    '/v1/responses/:id',
    {
      schema: {
        summary: 'A stored response (responses.retrieve)',
        tags: ['openai'],
        params: idParams,
        querystring: z.strictObject({}),
        response: { 200: z.record(z.string(), z.unknown()).describe('a response object'), 404: errorEnvelopeSchema },
      },
    },
    async (req) => {
      const rec = store.get(req.params.id, principalOf(req));
      if (!rec) throw notFound(req.params.id, 'response_id');
      if (req.principal) assertAgentAllowed(req.principal, rec.agent);
      return rec.response;
    },
  );

  r.delete(
    '/v1/responses/:id',
    {
      schema: {
        summary: 'Deletes a stored response (responses.delete)',
        tags: ['openai'],
        params: idParams,
        response: { 200: z.object({ id: z.string(), object: z.literal('response.deleted'), deleted: z.boolean() }), 404: errorEnvelopeSchema },
      },
    },
    async (req) => {
      if (!store.delete(req.params.id, principalOf(req))) throw notFound(req.params.id, 'response_id');
      return { id: req.params.id, object: 'response.deleted' as const, deleted: true };
    },
  );
}
