import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AgentRegistry } from '../../agents/index.js';
import { assertAgentAllowed } from '../../auth/index.js';
import type {
  AgentResponse,
  Executor,
  InvokeRequest,
  SuspendedExecution,
  SuspendedExecutionStore,
} from '../../execution/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { timeOrderedUuid } from '../../shared/ids.js';
import { admitAndOpenSse, callerOf, limitOf } from '../caller.js';
import { toEnvelope } from '../envelope.js';
import { requestTraceparent } from '../request-trace.js';
import {
  MemoryResponseStore,
  type ResponseStore,
  type StoredResponse,
  type TranscriptMessage,
} from './response-store.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { disconnectHook, wantsEventStream } from '../sse-stream.js';
import { openAiPayload } from './openai-errors.js';
import { continues } from './chat-messages.js';
import { runMetadata } from './run-metadata.js';
import {
  itemsToMessages,
  newId,
  outputText,
  outputToMessages,
  responseObject,
  ResponseEvents,
  type FunctionCallOutput,
  type OutputItem,
  type ResponseState,
} from './responses-objects.js';
import { formatOf, responsesToInvoke, withResponsesParam, type MessageSource } from './responses-invoke.js';
import { assertResponsesSupported, inputItems, responsesBody, type ResponsesBody } from './responses-params.js';
import { replyCheckFor } from './structured-output.js';
import { docResponses, onFirstRequest } from '../lazy-schemas.js';

/**
 * OpenAI's Responses API on Caxton agents (docs/openai.md, "Responses"): POST /v1/responses runs
 * the agent named by `model` on the same execution as /v1/chat/completions — the input items are
 * translated into chat messages, then into an InvokeRequest (responses-invoke.ts) — and answers
 * with a `response` object or its event stream. Responses are stored (unless `store: false`) for
 * `previous_response_id`, GET and DELETE, and belong to the principal that created them. A
 * response that ends in function calls also leaves its execution suspended (the execution core's
 * store, under the response id), so the follow-up carrying the function outputs resumes it exactly.
 */

const principalOf = (req: FastifyRequest): string | null => req.principal?.id ?? null;

function notFound(id: string, param: string): CaxtonError {
  return new CaxtonError(
    'response_not_found',
    `no stored response "${id.slice(0, 200)}": it does not exist, has expired, was created with store: false, or belongs to another caller`,
    {
      param,
      id: id.slice(0, 200),
    },
  );
}

/** A background response's id names its run's: `resp_` + the run id's time-ordered uuid. */
const responseIdOf = (runId: string): string => `resp_${runId.slice('exec_'.length)}`;
const runIdOf = (responseId: string): string => `exec_${responseId.slice('resp_'.length)}`;

/** The state of a response whose execution answered `res` (its text checked against text.format). */
function finished(state: ResponseState, res: AgentResponse, text: string): void {
  const incomplete = incompleteOf(res);
  const calls = callsOf(res);
  state.status = incomplete ? 'incomplete' : 'completed';
  state.output = [
    ...(text !== '' || calls.length === 0
      ? [
          {
            type: 'message' as const,
            id: newId('msg'),
            status: state.status,
            role: 'assistant' as const,
            content: [outputText(text)],
          },
        ]
      : []),
    ...calls.map((c): FunctionCallOutput => ({
      type: 'function_call',
      id: newId('fc'),
      ...c,
      status: 'completed',
    })),
  ];
  state.usage = res.usage;
  if (incomplete) state.incomplete = incomplete;
  const metadata = runMetadata(res);
  if (metadata) state.run_metadata = metadata;
}

function incompleteOf(r: AgentResponse): ResponseState['incomplete'] {
  // max_turns (the agent's own tool-turn limit) is reported as chat completions reports it: as a length stop.
  if (r.finish_reason === 'length' || r.finish_reason === 'max_turns') return 'max_output_tokens';
  if (r.finish_reason === 'content_filter') return 'content_filter';
  return undefined;
}

/** The model's pending client tool calls as function_call items' fields (arguments as JSON text). */
function callsOf(r: AgentResponse): Omit<FunctionCallOutput, 'id' | 'status' | 'type'>[] {
  return (r.pending_tool_calls ?? []).map((c) => ({
    call_id: c.id,
    name: c.name,
    arguments: JSON.stringify(c.arguments),
  }));
}

export async function responsesRoutes(
  app: FastifyInstance,
  opts: {
    executor: Executor;
    registry: AgentRegistry;
    bodyLimit: number;
    store?: ResponseStore;
    suspended?: SuspendedExecutionStore;
  },
): Promise<void> {
  const ctx: ResponsesContext = {
    executor: opts.executor,
    registry: opts.registry,
    bodyLimit: opts.bodyLimit,
    store: opts.store ?? new MemoryResponseStore(),
    suspended: opts.suspended,
  };
  // As for chat completions: every error of these routes leaves in OpenAI's shape.
  app.addHook('onSend', (_req, reply, payload, done) => done(null, openAiPayload(reply, payload) as typeof payload));
  createResponseRoute(app, ctx);
  storedResponseRoutes(app, ctx);
}

/** What the routes and their steps share: the executor, the agents, and where responses are kept. */
interface ResponsesContext {
  executor: Executor;
  registry: AgentRegistry;
  bodyLimit: number;
  store: ResponseStore;
  suspended: SuspendedExecutionStore | undefined;
}

/** The transcript the request continues (stored if it is), the invoke request, and the execution it resumes. */
async function prepare(
  ctx: ResponsesContext,
  req: FastifyRequest,
  body: ResponsesBody,
): Promise<{ transcript: TranscriptMessage[]; invoke: InvokeRequest; resumed?: SuspendedExecution }> {
  const { store, registry, suspended } = ctx;
  const itemSources: number[][] = [];
  const added = itemsToMessages(inputItems(body.input), itemSources);
  const principal = principalOf(req);
  let history: TranscriptMessage[] = [];
  if (body.previous_response_id) {
    const stored = store.get(body.previous_response_id, principal);
    if (!stored) throw notFound(body.previous_response_id, 'previous_response_id');
    history = stored.messages;
  }
  const transcript = [...history, ...added];
  const userTemplate = registry.find(body.model)?.definition.user_prompt_template ?? '';
  // The previous response ended in function calls and its execution is still suspended: the
  // input (function outputs, maybe new user turns) continues that execution exactly, with the
  // instructions it started with — unless the request no longer offers those calls' tools (continues).
  const waiting = body.previous_response_id && suspended ? await suspended.get(body.previous_response_id) : undefined;
  const offered = new Set((body.tools ?? []).map((t) => String(t.name)));
  const own =
    waiting && waiting.agent === body.model && (waiting.principal ?? null) === principal && continues(waiting, offered)
      ? waiting
      : undefined;
  // Otherwise `instructions` go where a chat client's system messages go, and are not stored: a
  // response continuing this one does not inherit them (as at OpenAI).
  const instructions: TranscriptMessage[] =
    !own && body.instructions ? [{ role: 'system', content: body.instructions }] : [];
  const sources: MessageSource[] = own
    ? itemSources
    : [
        ...instructions.map(() => 'instructions' as const),
        ...history.map(() => 'previous_response_id' as const),
        ...itemSources,
      ];
  const { invoke, resumed } = await responsesToInvoke(own ? added : [...instructions, ...transcript], sources, body, {
    userTemplate,
    principal,
    store: suspended,
    resume: own,
  });
  const tp = requestTraceparent(req);
  return {
    transcript,
    invoke: { ...invoke, ...(tp !== undefined && { traceparent: tp }), ...callerOf(req) },
    ...(resumed && { resumed }),
  };
}

/** Keeps the response (store: true) and, when it ended in function calls, its suspended execution. */
async function save(
  ctx: ResponsesContext,
  req: FastifyRequest,
  body: ResponsesBody,
  transcript: TranscriptMessage[],
  res: AgentResponse,
  response: Record<string, unknown>,
  output: OutputItem[],
): Promise<void> {
  const { store, suspended } = ctx;
  if (body.store === false) return;
  const rec: StoredResponse = {
    id: response.id as string,
    agent: body.model,
    principal: principalOf(req),
    messages: [...transcript, ...outputToMessages(output)],
    response,
  };
  store.save(rec);
  const pending = res.pending_tool_calls ?? [];
  if (suspended && res.finish_reason === 'tool_calls' && res.transcript && pending.length > 0) {
    const p = principalOf(req);
    await suspended.save({
      id: rec.id,
      agent: body.model,
      ...(p !== null && { principal: p }),
      transcript: res.transcript,
      pending_call_ids: pending.map((c) => c.id),
      expires_at: Date.now() + suspended.ttlMs,
    });
  }
}

/** `/v1/responses`: one agent run, answered whole, as a stream of events, or queued in the background. */
function createResponseRoute(app: FastifyInstance, ctx: ResponsesContext): void {
  const { executor, store, suspended } = ctx;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post(
    '/v1/responses',
    {
      schema: {
        summary: 'OpenAI Responses API with an agent (model = agent name)',
        tags: ['openai'],
        body: onFirstRequest(() => responsesBody()),
        response: docResponses(() => ({
          200: z.record(z.string(), z.unknown()).describe('a response object, or its events when streaming'),
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req, reply) => {
      const body = req.body;
      assertResponsesSupported(body);
      if (req.principal) assertAgentAllowed(req.principal, body.model);
      // Compiled before the model is called: a schema that does not compile is the caller's 400, at no cost.
      const check = replyCheckFor(formatOf(body), 'text.format.schema');
      const { transcript, invoke, resumed } = await prepare(ctx, req, body);
      try {
        await executor.check(body.model, invoke); // before a stream opens (unknown agent, oversized request, a client tool shadowing the agent's), keeping the HTTP status
      } catch (e) {
        throw withResponsesParam(e);
      }
      const limit = limitOf(req);
      const state: ResponseState = {
        id: newId('resp'),
        created_at: Math.floor(Date.now() / 1000),
        model: body.model,
        status: 'in_progress',
        output: [],
        previous_response_id: body.previous_response_id ?? undefined,
      };
      // A reply that only calls functions has no final answer yet: text.format applies to the final one.
      const checked = (res: AgentResponse): string =>
        check && res.finish_reason !== 'tool_calls' ? check(res.agent, res.content) : res.content;

      if (body.background === true) {
        // A durable run the caller does not wait for: queued now, read with GET /v1/responses/{id}.
        const runs = executor.runs;
        if (!runs)
          throw new CaxtonError(
            'unsupported_value',
            'background responses need durable runs, which this server has off ([execution] durable_runs = false)',
            { param: 'background' },
          );
        const runId = `exec_${timeOrderedUuid()}`;
        state.id = responseIdOf(runId);
        state.background = true;
        state.status = 'queued';
        await runs.start(body.model, invoke, { origin: 'openai', runId, ...(limit && { limit }) });
        const queued = responseObject(state, body);
        store.save({
          id: state.id,
          agent: body.model,
          principal: principalOf(req),
          messages: transcript,
          response: queued,
          request: { body, transcript, resumed: resumed?.id ?? null },
        });
        return queued;
      }

      if (!body.stream && !wantsEventStream(req)) {
        const res = await executor.invoke(body.model, invoke, {
          origin: 'openai',
          cancelOn: disconnectHook(req, reply),
          ...(limit && { limit }),
        });
        finished(state, res, checked(res));
        const response = responseObject(state, body);
        if (resumed) await suspended?.delete(resumed.id);
        await save(ctx, req, body, transcript, res, response, state.output);
        return response;
      }

      const { sse, admitted } = admitAndOpenSse(executor, body.model, req, reply);
      const events = new ResponseEvents((event, data) => sse.send(event, data), state, body);
      events.start();
      try {
        const res = await executor.invoke(body.model, invoke, {
          origin: 'openai',
          ...(admitted && { admitted }),
          signal: sse.signal,
          stream: true,
          onEvent: (e) => {
            if (e.type === 'token') events.delta(e.text);
          },
        });
        // Streamed structured output is checked once the whole reply is in: an invalid one ends
        // the stream with response.failed instead of response.completed.
        const text = checked(res);
        const incomplete = incompleteOf(res);
        const metadata = runMetadata(res);
        events.finish(text, callsOf(res), {
          usage: res.usage,
          ...(incomplete && { incomplete }),
          ...(metadata && { run_metadata: metadata }),
        });
        if (resumed) await suspended?.delete(resumed.id);
        await save(ctx, req, body, transcript, res, responseObject(state, body), events.output);
      } catch (e) {
        const { body: err } = toEnvelope(e, req, ctx.bodyLimit);
        events.fail(err.error.code, err.error.message);
      } finally {
        sse.end();
      }
      return reply;
    },
  );
}

/** A stored response: retrieve, cancel (in the background), delete. */
function storedResponseRoutes(app: FastifyInstance, ctx: ResponsesContext): void {
  const { executor, store, suspended } = ctx;
  const r = app.withTypeProvider<ZodTypeProvider>();
  const idParams = z.object({ id: z.string().min(1).max(200) });

  r.get(
    '/v1/responses/:id',
    {
      schema: {
        summary: 'A stored response (responses.retrieve)',
        tags: ['openai'],
        params: onFirstRequest(() => idParams),
        querystring: onFirstRequest(() => z.strictObject({})),
        response: docResponses(() => ({
          200: z.record(z.string(), z.unknown()).describe('a response object'),
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      const rec = store.get(req.params.id, principalOf(req));
      if (!rec) throw notFound(req.params.id, 'response_id');
      if (req.principal) assertAgentAllowed(req.principal, rec.agent);
      return settled(ctx, req, rec);
    },
  );
  r.post(
    '/v1/responses/:id/cancel',
    {
      schema: {
        summary: 'Cancels a background response (responses.cancel)',
        tags: ['openai'],
        params: onFirstRequest(() => idParams),
        response: docResponses(() => ({
          200: z.record(z.string(), z.unknown()).describe('a response object'),
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      const rec = store.get(req.params.id, principalOf(req));
      if (!rec) throw notFound(req.params.id, 'response_id');
      if (req.principal) assertAgentAllowed(req.principal, rec.agent);
      if (rec.request === undefined)
        throw new CaxtonError('invalid_request', `response "${req.params.id}" is not a background response`, {
          param: 'response_id',
        });
      await executor.runs?.cancel(runIdOf(rec.id));
      return settled(ctx, req, rec);
    },
  );

  r.delete(
    '/v1/responses/:id',
    {
      schema: {
        summary: 'Deletes a stored response (responses.delete)',
        tags: ['openai'],
        params: onFirstRequest(() => idParams),
        response: docResponses(() => ({
          200: z.object({ id: z.string(), object: z.literal('response.deleted'), deleted: z.boolean() }),
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      const rec = store.get(req.params.id, principalOf(req));
      if (!rec) throw notFound(req.params.id, 'response_id');
      if (req.principal) assertAgentAllowed(req.principal, rec.agent);
      store.delete(req.params.id, principalOf(req));
      await suspended?.delete(req.params.id);
      return { id: req.params.id, object: 'response.deleted' as const, deleted: true };
    },
  );
}

/**
 * A background response as its run is now: queued while the run has not ended, then the
 * response object of its outcome, stored in place of the queued one (with its messages, so
 * previous_response_id continues it).
 */
async function settled(
  ctx: ResponsesContext,
  req: FastifyRequest,
  rec: StoredResponse,
): Promise<Record<string, unknown>> {
  const { executor, store } = ctx;
  const status = rec.response.status;
  if (rec.request === undefined || !(status === 'queued' || status === 'in_progress')) return rec.response;
  const run = await executor.runs?.journal.get(runIdOf(rec.id));
  if (!run || run.run.status === 'running' || run.run.status === 'awaiting_approval') {
    const state = rec.response.status === 'queued' && run?.run.status === 'running' ? 'in_progress' : status;
    return { ...rec.response, status: state };
  }
  const { body, transcript } = rec.request as { body: ResponsesBody; transcript: TranscriptMessage[] };
  const state: ResponseState = {
    id: rec.id,
    created_at: rec.response.created_at as number,
    model: body.model,
    status: 'in_progress',
    output: [],
    previous_response_id: body.previous_response_id ?? undefined,
    background: true,
  };
  const res = run.run.response;
  if (run.run.status === 'completed' && res) {
    finished(state, res, res.content);
    const response = responseObject(state, body);
    await save(ctx, req, body, transcript, res, response, state.output);
    return response;
  }
  state.status = run.run.status === 'cancelled' ? 'cancelled' : 'failed';
  if (run.run.error) state.error = run.run.error;
  const response = responseObject(state, body);
  store.save({ ...rec, response, request: undefined });
  return response;
}
