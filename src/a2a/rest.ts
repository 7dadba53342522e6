/**
 * The HTTP+JSON binding of A2A 1.0 (the protocol's `google.api.http` paths), under the same base
 * path as the JSON-RPC endpoint, over the same AgentA2aHandler:
 *  - POST /a2a/NAME/message:send, /a2a/NAME/message:stream (server-sent events);
 *  - GET /a2a/NAME/tasks (ListTasks), GET /a2a/NAME/tasks/ID (GetTask);
 *  - POST /a2a/NAME/tasks/ID:cancel; GET or POST /a2a/NAME/tasks/ID:subscribe (events);
 *  - POST and GET /a2a/NAME/tasks/ID/pushNotificationConfigs, GET and DELETE .../CONFIG_ID;
 *  - GET /a2a/NAME/extendedAgentCard.
 * Every route carries the JSON-RPC endpoint's policy (agents:invoke on an agent in the key's
 * scope); what a call may read, start or decide is the handler's (the core's), whichever binding
 * it came by; each call is one audit row `a2a.<Method>` (src/audit/actions.ts). Bodies and answers
 * are the protocol's JSON (the SDK's codecs); an A2A error is the binding's error body with its
 * HTTP status, any other is Caxton's envelope. No tenant paths: the cards name no tenant.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  A2A_VERSION_HEADER,
  AgentCard as AgentCardCodec,
  ListTaskPushNotificationConfigsResponse,
  ListTasksResponse,
  SendMessageRequest,
  SendMessageResponse,
  StreamResponse,
  Task as TaskCodec,
  TaskPushNotificationConfig,
  taskStateFromJSON,
  TaskState,
  type AgentCard,
  type ListTasksRequest,
} from '@a2a-js/sdk';
import {
  A2AError,
  RequestMalformedError,
  restStatusFor,
  toRestErrorBody,
  VersionNotSupportedError,
} from '@a2a-js/sdk/errors';
import { ServerCallContext, validateVersion } from '@a2a-js/sdk/server';
import type { Access } from '../auth/index.js';
import { A2A_BASE } from './card.js';
import type { AgentA2aHandler } from './handler.js';
import { dataFrame, pipeSse, type SseFormat } from './sse.js';

/** One request's call: the agent's card, the handler acting for the caller, aborted when the client goes. */
export interface A2aCall {
  card: AgentCard;
  handler: AgentA2aHandler;
  gone: AbortController;
}

export interface A2aEndpoint {
  /** The agent the request names (not found unless exposed), as its caller's call. */
  open(req: FastifyRequest<{ Params: { agent: string } }>, reply: FastifyReply): A2aCall;
  /** The open streams, ended when the server closes. */
  streams: Set<() => void>;
}

type Req = FastifyRequest<{
  Params: { agent: string; task?: string; config?: string };
  Querystring: Record<string, string | undefined>;
}>;

/** The binding's name in cards and version checks. */
export const REST_BINDING = 'HTTP+JSON';

const ACCESS: Access = { permission: 'agents:invoke', agentParam: 'agent' };

const restFrames: SseFormat = {
  event: (v) => dataFrame(StreamResponse.toJSON(v as StreamResponse)),
  error: (e) => {
    const err = asA2a(e);
    return `event: error\n${dataFrame(toRestErrorBody(err, restStatusFor(err)))}`;
  },
};

/** The protocol version the client asks for (its A2A-Version header; none is the SDK's default, 0.3). */
export function requestedVersion(req: FastifyRequest): string {
  const header = req.headers[A2A_VERSION_HEADER.toLowerCase()];
  return new ServerCallContext({ ...(typeof header === 'string' && header !== '' && { requestedVersion: header }) })
    .requestedVersion;
}

/** An error as the protocol's; an error that is not one is an internal failure (its message kept). */
function asA2a(e: unknown): A2AError {
  if (e instanceof A2AError) return e;
  return new A2AError({ message: e instanceof Error ? e.message : 'internal error' });
}

function whole(v: string | undefined, field: string, min: number, max: number): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new RequestMalformedError(`${field}: expected a whole number from ${min} to ${max}`);
  return n;
}

/** A task path segment: `ID`, `ID:cancel` or `ID:subscribe`. */
function taskVerb(segment: string): { id: string; verb: '' | 'cancel' | 'subscribe' | 'unknown' } {
  const at = segment.lastIndexOf(':');
  if (at < 0) return { id: segment, verb: '' };
  const verb = segment.slice(at + 1);
  return { id: segment.slice(0, at), verb: verb === 'cancel' || verb === 'subscribe' ? verb : 'unknown' };
}

function listQuery(q: Record<string, string | undefined>): ListTasksRequest {
  let status = TaskState.TASK_STATE_UNSPECIFIED;
  if (q.status !== undefined && q.status !== '') {
    status = taskStateFromJSON(/^\d+$/.test(q.status) ? Number(q.status) : q.status);
    if (status === TaskState.UNRECOGNIZED)
      throw new RequestMalformedError('status: expected a task state such as TASK_STATE_WORKING');
  }
  const pageSize = whole(q.pageSize, 'pageSize', 1, 100);
  const historyLength = whole(q.historyLength, 'historyLength', 0, 1_000);
  return {
    tenant: '',
    contextId: q.contextId ?? '',
    status,
    ...(pageSize !== undefined && { pageSize }),
    pageToken: q.pageToken ?? '',
    ...(historyLength !== undefined && { historyLength }),
    statusTimestampAfter: undefined,
    includeArtifacts: q.includeArtifacts === 'true',
  };
}

/** A2A's own media type for JSON bodies, which the binding accepts beside `application/json`. */
const A2A_JSON = /^application\/a2a\+json\b/i;

/**
 * A request without a body has nothing to parse, whatever content type it names: clients (the SDK's
 * among them) send `Content-Type: application/json` on a cancel or a delete with no body, which the
 * server's JSON parser would refuse as an empty body. A body sent as `application/a2a+json` is JSON
 * and goes through the server's one bounded JSON parser, as `application/json`.
 */
function bodyType(req: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  const h = req.headers;
  if (h['transfer-encoding'] === undefined && (h['content-length'] === undefined || h['content-length'] === '0'))
    delete h['content-type'];
  else if (h['content-type'] !== undefined && A2A_JSON.test(h['content-type']))
    h['content-type'] = h['content-type'].replace(A2A_JSON, 'application/json');
  done();
}

/** A send's request, refused unless it has a message with an id (whichever binding it came by). */
export function checkedSend(params: SendMessageRequest): SendMessageRequest {
  if (params.message === undefined) throw new RequestMalformedError('message: expected the message to send');
  if (params.message.messageId === '') throw new RequestMalformedError('message.messageId: expected an id');
  return params;
}

export function restRoutes(app: FastifyInstance, ep: A2aEndpoint): void {
  const base = `${A2A_BASE}/:agent`;
  const route = (
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    summary: string,
    handle: (req: Req, reply: FastifyReply, call: A2aCall) => Promise<unknown>,
  ): void => {
    app.route({
      method,
      url: `${base}${path}`,
      config: { access: ACCESS },
      schema: { summary: `A2A HTTP+JSON: ${summary}`, tags: ['a2a'], hide: true },
      onRequest: bodyType,
      handler: async (req: Req, reply) => {
        const call = ep.open(req, reply);
        try {
          try {
            validateVersion(requestedVersion(req), call.card, REST_BINDING);
          } catch (e) {
            throw new VersionNotSupportedError(e instanceof Error ? e.message : 'unsupported A2A version');
          }
          return await handle(req, reply, call);
        } catch (e) {
          // The protocol's errors in the binding's form; Caxton's own (not found, limits) as Caxton answers them.
          if (!(e instanceof A2AError)) throw e;
          const status = restStatusFor(e);
          return reply.code(status).send(toRestErrorBody(e, status));
        }
      },
    });
  };

  /** A stream: refused before its first event as a plain error answer, else events to the end. */
  const stream = async (req: Req, reply: FastifyReply, call: A2aCall, events: AsyncGenerator<unknown>) => {
    const first = await events.next();
    return pipeSse(req, reply, first, events, restFrames, call.gone, ep.streams);
  };

  const sendRequest = (body: unknown): SendMessageRequest => checkedSend(SendMessageRequest.fromJSON(body ?? {}));

  route('POST', '/message::send', 'send a message', async (req, reply, { handler }) => {
    const task = await handler.sendMessage(sendRequest(req.body));
    return reply.send(SendMessageResponse.toJSON({ payload: { $case: 'task', value: task } }));
  });

  route('POST', '/message::stream', 'send a message and follow its task', (req, reply, call) =>
    stream(req, reply, call, call.handler.sendMessageStream(sendRequest(req.body))),
  );

  route('GET', '/tasks', 'list tasks', async (req, reply, { handler }) => {
    const params = listQuery(req.query);
    const page = ListTasksResponse.toJSON(await handler.listTasks(params)) as Record<string, unknown>;
    const tasks = (page.tasks as Record<string, unknown>[] | undefined) ?? [];
    return reply.send({
      ...page,
      tasks: params.includeArtifacts === true ? tasks.map((t) => ({ artifacts: [], ...t })) : tasks,
      nextPageToken: page.nextPageToken ?? '',
      pageSize: page.pageSize ?? 0,
      totalSize: page.totalSize ?? 0,
    });
  });

  const onTask = async (req: Req, reply: FastifyReply, call: A2aCall, method: 'GET' | 'POST'): Promise<unknown> => {
    const { id, verb } = taskVerb(req.params.task ?? '');
    if (verb === 'subscribe') return stream(req, reply, call, call.handler.resubscribe({ tenant: '', id }));
    if (verb === 'cancel' && method === 'POST')
      return reply.send(TaskCodec.toJSON(await call.handler.cancelTask({ tenant: '', id, metadata: undefined })));
    if (verb === '' && method === 'GET') {
      const historyLength = whole(req.query.historyLength, 'historyLength', 0, 1_000);
      const task = await call.handler.getTask({
        tenant: '',
        id,
        ...(historyLength !== undefined && { historyLength }),
      });
      return reply.send(TaskCodec.toJSON(task));
    }
    throw new RequestMalformedError(
      `${method} tasks/${req.params.task}: expected GET tasks/ID, POST tasks/ID:cancel or tasks/ID:subscribe`,
    );
  };
  route('GET', '/tasks/:task', 'read a task, or follow it (ID:subscribe)', (req, reply, call) =>
    onTask(req, reply, call, 'GET'),
  );
  route('POST', '/tasks/:task', 'cancel a task (ID:cancel), or follow it (ID:subscribe)', (req, reply, call) =>
    onTask(req, reply, call, 'POST'),
  );

  const configs = '/tasks/:task/pushNotificationConfigs';
  route('POST', configs, 'set a push notification config on a task', async (req, reply, { handler }) => {
    const body = typeof req.body === 'object' && req.body !== null ? req.body : {};
    const wanted = TaskPushNotificationConfig.fromJSON({ ...body, taskId: req.params.task ?? '' });
    const saved = await handler.createTaskPushNotificationConfig(wanted);
    return reply.code(201).send(TaskPushNotificationConfig.toJSON(saved));
  });
  route('GET', configs, "the caller's push notification configs of a task", async (req, reply, { handler }) => {
    const list = await handler.listTaskPushNotificationConfigs({
      tenant: '',
      taskId: req.params.task ?? '',
      pageSize: 0,
      pageToken: '',
    });
    return reply.send(ListTaskPushNotificationConfigsResponse.toJSON(list));
  });
  route('GET', `${configs}/:config`, 'one push notification config', async (req, reply, { handler }) => {
    const got = await handler.getTaskPushNotificationConfig({
      tenant: '',
      taskId: req.params.task ?? '',
      id: req.params.config ?? '',
    });
    return reply.send(TaskPushNotificationConfig.toJSON(got));
  });
  route('DELETE', `${configs}/:config`, 'delete a push notification config', async (req, reply, { handler }) => {
    await handler.deleteTaskPushNotificationConfig({
      tenant: '',
      taskId: req.params.task ?? '',
      id: req.params.config ?? '',
    });
    return reply.code(204).send();
  });

  route('GET', '/extendedAgentCard', "the agent's card as the caller sees it", async (_req, reply, { handler }) =>
    reply.send(AgentCardCodec.toJSON(await handler.getAuthenticatedExtendedAgentCard())),
  );
}
