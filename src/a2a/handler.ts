/**
 * One exposed agent's A2A operations on Caxton's durable runs (src/execution/runs): SendMessage
 * starts a run (or answers the approval a run waits on), GetTask / ListTasks / SubscribeToTask read
 * and follow runs, CancelTask cancels one. The SDK's JsonRpcTransportHandler speaks JSON-RPC and
 * calls this; every check is the core's: the caller's agent scope (route policy and runVisibleTo),
 * reading runs (readRunAs / listRunsAs, a caller's own tasks without observe:read), deciding
 * (decideAs), the caller's limits (DurableRuns.start). The push notification configs of a task
 * are the caller's own (push-store.ts), set only on a task it may read and only for a webhook the
 * outbound rules allow (push.ts). Made per request: it holds the caller.
 */
import { randomUUID } from 'node:crypto';
import {
  ContentTypeNotSupportedError,
  PushNotificationNotSupportedError,
  RequestMalformedError,
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError,
} from '@a2a-js/sdk/errors';
import type {
  AgentCard,
  CancelTaskRequest,
  DeleteTaskPushNotificationConfigRequest,
  GetTaskPushNotificationConfigRequest,
  GetTaskRequest,
  ListTaskPushNotificationConfigsRequest,
  ListTaskPushNotificationConfigsResponse,
  ListTasksRequest,
  ListTasksResponse,
  Message,
  SendMessageRequest,
  StreamResponse,
  SubscribeToTaskRequest,
  Task,
  TaskPushNotificationConfig,
} from '@a2a-js/sdk';
import type { A2ARequestHandler } from '@a2a-js/sdk/server';
import { agentOfRef, type LimitSet, type Principal } from '../auth/index.js';
import {
  assertRunPermission,
  decideAs,
  listRunsAs,
  readRunAs,
  type ChatThreads,
  type DurableRuns,
  type InvokeRequest,
  type RunWithSteps,
} from '../execution/index.js';
import { isCaxtonError } from '../shared/errors.js';
import type { Workspace } from '../tools/workspace/index.js';
import { filesArtifact } from './files.js';
import { followRun } from './follow.js';
import type { PushNotifier } from './push.js';
import type { PushConfig } from './push-store.js';
import { ENDED, endEvents, runStatusOf, stepEvents, taskOf, waitingCalls } from './tasks.js';

/** The caller of one request, and how its outcome reaches the audit row. */
export interface A2aCaller {
  principal: Principal | undefined;
  limits: LimitSet | undefined;
  /** Aborted when the client goes away: a blocking send stops waiting (the run goes on). */
  signal: AbortSignal;
  refused(): void;
  failed(code: string): void;
}

export interface A2aHandlerDeps {
  runs: DurableRuns;
  threads: ChatThreads;
  /** The agent this endpoint serves, as deployed (its card). */
  agent: string;
  card: () => AgentCard;
  caller: A2aCaller;
  /** Push notifications, when `[a2a] push_notifications` is on. */
  push?: PushNotifier | undefined;
  /** The workspace grant, whose files a completed task carries (files.ts); none without `[workspace] path`. */
  workspace?: Workspace | undefined;
}

const MAX_PAGE = 100;
/** Configs one principal may set on one task. */
export const MAX_PUSH_CONFIGS = 10;
/** A config id: as a context id. */
const CONFIG_ID = /^[A-Za-z0-9._:-]{1,200}$/;
/** An authentication scheme: an HTTP auth scheme's token (RFC 9110). */
const AUTH_SCHEME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,50}$/;
const MAX_REQUEST_CHARS = 1_000_000;

/** A context id: the conversation a run belongs to (letters, digits and `._:-`, as conversation ids are). */
const CONTEXT_ID = /^[A-Za-z0-9._:-]{1,200}$/;

/** The calls a run waits on, as one key ('' when none). */
const waitKey = (got: RunWithSteps): string =>
  got.run.status === 'awaiting_approval'
    ? waitingCalls(got.steps)
        .map((w) => w.call_id)
        .join(' ')
    : '';

/** Words a client answers an approval with (case and trailing punctuation aside). */
const APPROVE = new Set(['approve', 'approved', 'yes', 'y', 'ok', 'allow']);
const DENY = new Set(['deny', 'denied', 'no', 'n', 'reject']);

/** The text and data of a message; a file part is refused (nothing here reads files yet). */
function contentOf(m: Message): { text: string; data: unknown[] } {
  const texts: string[] = [];
  const data: unknown[] = [];
  for (const p of m.parts) {
    const c = p.content;
    if (c?.$case === 'text') texts.push(c.value);
    else if (c?.$case === 'data') data.push(c.value);
    else
      throw new ContentTypeNotSupportedError(
        `message.parts: a ${c?.$case ?? 'empty'} part is not taken; send text parts (and data parts for structured input)`,
      );
  }
  return { text: texts.join('\n'), data };
}

/** An approval answer: a data part {"decision": "approved"|"denied", "reason"?, "call_id"?}, or a text starting approve/deny. */
function decisionOf(m: Message): { decision: 'approved' | 'denied'; reason?: string; callId?: string } {
  const { text, data } = contentOf(m);
  for (const d of data) {
    if (typeof d !== 'object' || d === null) continue;
    const o = d as Record<string, unknown>;
    if (o.decision === 'approved' || o.decision === 'denied')
      return {
        decision: o.decision,
        ...(typeof o.reason === 'string' && { reason: o.reason.slice(0, 2_000) }),
        ...(typeof o.call_id === 'string' && { callId: o.call_id }),
      };
  }
  const [first = '', ...rest] = text.trim().split(/\s+/);
  const word = first.toLowerCase().replace(/[.!,:;]+$/, '');
  const reason = rest.join(' ').slice(0, 2_000);
  if (APPROVE.has(word)) return { decision: 'approved', ...(reason !== '' && { reason }) };
  if (DENY.has(word)) return { decision: 'denied', ...(reason !== '' && { reason }) };
  throw new RequestMalformedError(
    'message: the task waits for approval of a tool call: answer "approve" or "deny" (a reason may follow), or a data part {"decision": "approved" | "denied", "reason": "..."}',
  );
}

/** Caxton's error in the protocol's terms; the caller's mistakes and refusals keep Caxton's message. */
export function toA2aError(e: unknown, caller: A2aCaller): unknown {
  if (!isCaxtonError(e)) return e;
  if (e.code === 'forbidden' || e.code === 'unauthenticated' || e.code === 'tool_not_allowed') caller.refused();
  else caller.failed(e.code);
  switch (e.code) {
    case 'not_found':
      return new TaskNotFoundError(e.message);
    case 'invalid_request':
    case 'validation_failed':
    case 'payload_too_large':
    case 'input_too_deep':
      return new RequestMalformedError(e.message);
    case 'forbidden':
    case 'rate_limited':
    case 'queue_full':
    case 'conflict':
    case 'not_supported':
      return new UnsupportedOperationError(`${e.code}: ${e.message}`);
    default:
      return e;
  }
}

export class AgentA2aHandler implements A2ARequestHandler {
  constructor(private readonly d: A2aHandlerDeps) {}

  get #p(): Principal | undefined {
    return this.d.caller.principal;
  }

  async #guard<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw toA2aError(e, this.d.caller);
    }
  }

  /** The run `id` of this endpoint's agent, if the caller may read it (its own, or any with observe:read). */
  async #read(id: string): Promise<RunWithSteps> {
    if (id.trim() === '') throw new RequestMalformedError('id: expected a task id (the run id, exec_...)');
    const got = await readRunAs(this.d.runs, this.#p, id, { own: true });
    if (agentOfRef(got.run.agent).toLowerCase() !== this.d.agent.toLowerCase())
      throw new TaskNotFoundError(`no task "${id}" of agent "${this.d.agent}"`);
    return got;
  }

  /** The task a run is, with the files it wrote once it has completed. */
  #asTask(got: RunWithSteps, historyLength?: number): Task {
    return taskOf(got.run, got.steps, historyLength, filesArtifact(this.d.workspace, got.run, got.steps));
  }

  getAgentCard(): Promise<AgentCard> {
    return Promise.resolve(this.d.card());
  }

  getAuthenticatedExtendedAgentCard(): Promise<AgentCard> {
    return Promise.resolve(this.d.card());
  }

  /**
   * Starts a run for a new message, or answers the approval the message's task waits on; answers
   * the run's id and how many of its steps the caller has seen (those before the answer). A push
   * notification config sent along is checked first and set on the task.
   */
  async #begin(params: SendMessageRequest): Promise<{ id: string; seen: number }> {
    const wanted = params.configuration?.taskPushNotificationConfig;
    if (wanted === undefined) return this.#open(params);
    const push = this.d.push;
    if (push === undefined) return this.#noPush();
    const checked = await this.#checked(push, wanted, '');
    const begun = await this.#open(params);
    await this.#saved(push, { ...checked, taskId: begun.id });
    return begun;
  }

  async #open(params: SendMessageRequest): Promise<{ id: string; seen: number }> {
    const m = params.message;
    if (m === undefined) throw new RequestMalformedError('message: expected the message to send');
    if (m.taskId !== '') {
      const { run } = await this.#read(m.taskId);
      if (run.status !== 'awaiting_approval')
        throw new UnsupportedOperationError(
          ENDED.has(run.status)
            ? `task ${run.id} has ended (${run.status}): send a new message with its contextId "${run.request.conversation_id ?? run.id}" (and no taskId) to go on in the same context`
            : `task ${run.id} is working and takes no message now; follow it with SubscribeToTask, or cancel it`,
        );
      const d = decisionOf(m);
      const { steps } = await this.#read(run.id);
      await decideAs(this.d.runs, this.#p, run.id, d);
      return { id: run.id, seen: steps.length };
    }
    const { text, data } = contentOf(m);
    if (text.trim() === '' && data.length === 0)
      throw new RequestMalformedError('message.parts: expected a text part with the request');
    if (text.length > MAX_REQUEST_CHARS)
      throw new RequestMalformedError(
        `message.parts: the text is ${text.length} characters; at most ${MAX_REQUEST_CHARS}`,
      );
    const context = m.contextId !== '' ? m.contextId : `a2a-${randomUUID()}`;
    if (!CONTEXT_ID.test(context))
      throw new RequestMalformedError(
        'message.contextId: expected up to 200 letters, digits and "._:-" (a contextId this server answered with)',
      );
    const history = m.contextId === '' ? [] : await this.d.threads.history(this.#p, this.d.agent, context);
    const request: InvokeRequest = {
      request: text.trim() === '' ? JSON.stringify(data.length === 1 ? data[0] : data) : text,
      conversation_id: context,
    };
    if (text.trim() !== '' && data.length > 0)
      request.context = data.length === 1 ? (data[0] as Record<string, unknown>) : data;
    if (history.length > 0) request.history = history;
    if (this.#p !== undefined) request.principal = this.#p.id;
    const id = await this.d.runs.start(this.d.agent, request, {
      origin: 'a2a',
      ...(this.#p !== undefined && { limit: { principalId: this.#p.id, limits: this.d.caller.limits } }),
    });
    return { id, seen: 0 };
  }

  sendMessage(params: SendMessageRequest): Promise<Task> {
    return this.#guard(async () => {
      const { id } = await this.#begin(params);
      const historyLength = params.configuration?.historyLength;
      let last: RunWithSteps | undefined;
      if (params.configuration?.returnImmediately !== true)
        for await (const got of followRun(this.d.runs, id, this.d.caller.signal)) last = got;
      last ??= await this.#read(id);
      return this.#asTask(last, historyLength);
    });
  }

  /**
   * The run as a stream: the task first, then each step after the first `seen`, then how it
   * stopped. A follower that joined a run already waiting for `waitingAtStart` (those calls) goes
   * on past that wait, to the end or to the next one.
   */
  async *#stream(id: string, seen: number, waitingAtStart = ''): AsyncGenerator<StreamResponse, void, undefined> {
    const stop = (got: RunWithSteps): boolean => {
      if (ENDED.has(got.run.status)) return true;
      if (got.run.status !== 'awaiting_approval') return false;
      const key = waitKey(got);
      return key !== '' && key !== waitingAtStart;
    };
    let sent = -1;
    for await (const got of followRun(this.d.runs, id, this.d.caller.signal, stop)) {
      const { run, steps } = got;
      if (sent < 0) {
        yield { payload: { $case: 'task', value: this.#asTask(got) } };
        sent = seen;
      }
      for (; sent < steps.length; sent++) yield* stepEvents(run, steps[sent]!, sent);
      if (stop(got)) {
        yield* endEvents(run, steps, filesArtifact(this.d.workspace, run, steps));
        return;
      }
    }
  }

  async *sendMessageStream(params: SendMessageRequest): AsyncGenerator<StreamResponse, void, undefined> {
    const { id, seen } = await this.#guard(() => this.#begin(params));
    yield* this.#stream(id, seen);
  }

  async *resubscribe(params: SubscribeToTaskRequest): AsyncGenerator<StreamResponse, void, undefined> {
    const first = await this.#guard(() => this.#read(params.id));
    if (ENDED.has(first.run.status))
      throw new UnsupportedOperationError(`task ${first.run.id} has ended (${first.run.status}): read it with GetTask`);
    yield* this.#stream(first.run.id, first.steps.length, waitKey(first));
  }

  getTask(params: GetTaskRequest): Promise<Task> {
    return this.#guard(async () => {
      return this.#asTask(await this.#read(params.id), params.historyLength);
    });
  }

  listTasks(params: ListTasksRequest): Promise<ListTasksResponse> {
    return this.#guard(async () => {
      const size = params.pageSize ?? 50;
      if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE)
        throw new RequestMalformedError(`pageSize: expected a whole number from 1 to ${MAX_PAGE}`);
      if (params.pageToken !== '' && !/^exec_[0-9a-f-]{36}$/.test(params.pageToken))
        throw new RequestMalformedError('pageToken: expected the nextPageToken of a previous page');
      const status = params.status === 0 ? undefined : runStatusOf(params.status);
      const page = await listRunsAs(this.d.runs, this.#p, {
        agent: this.d.agent,
        ...(status !== undefined && { status }),
        ...(params.pageToken !== '' && { cursor: params.pageToken }),
        limit: size,
        own: true,
      });
      const context = params.contextId;
      const runs =
        context === '' ? page.runs : page.runs.filter((r) => (r.request.conversation_id ?? r.id) === context);
      const tasks = runs.map((r) => {
        const t = taskOf(r, undefined, params.historyLength);
        return params.includeArtifacts === true ? t : { ...t, artifacts: [] };
      });
      return { tasks, nextPageToken: page.next ?? '', pageSize: size, totalSize: tasks.length };
    });
  }

  cancelTask(params: CancelTaskRequest): Promise<Task> {
    return this.#guard(async () => {
      const { run } = await this.#read(params.id);
      // Cancelling stops work on the agent's behalf: the REST route's permission (POST /runs/{id}/cancel).
      assertRunPermission(this.#p, 'agents:invoke');
      if (ENDED.has(run.status)) throw new TaskNotCancelableError(`task ${run.id} has already ended (${run.status})`);
      await this.d.runs.cancel(run.id);
      return this.#asTask(await this.#read(run.id));
    });
  }

  #noPush(): Promise<never> {
    return Promise.reject(
      new PushNotificationNotSupportedError(
        'push notifications are off on this server ([a2a] push_notifications); follow a task with SubscribeToTask or GetTask',
      ),
    );
  }

  /** The task a push notification config names, if the caller may read it. */
  #task(taskId: string): Promise<RunWithSteps> {
    if (taskId.trim() === '')
      throw new RequestMalformedError('taskId: expected the id of the task (its run id, exec_...)');
    return this.#read(taskId);
  }

  /** The caller's key in the config store ('' with authentication off). */
  get #owner(): string {
    return this.#p?.id ?? '';
  }

  /** A config as the client sent it, checked (the webhook's URL under the outbound rules), for task `taskId`. */
  async #checked(push: PushNotifier, p: TaskPushNotificationConfig, taskId: string): Promise<PushConfig> {
    const id = p.id === '' ? randomUUID() : p.id;
    if (!CONFIG_ID.test(id))
      throw new RequestMalformedError('id: expected up to 200 letters, digits and "._:-", or none (one is made)');
    if (p.url.length > 2_000) throw new RequestMalformedError('url: at most 2000 characters');
    const refused = await push.refusal(p.url);
    if (refused !== undefined) throw new RequestMalformedError(`url: ${refused}`);
    if (p.token.length > 1_000 || /[\r\n]/.test(p.token))
      throw new RequestMalformedError('token: expected up to 1000 characters on one line');
    const auth = p.authentication;
    if (auth !== undefined && (auth.scheme !== '' || auth.credentials !== '')) {
      if (!AUTH_SCHEME.test(auth.scheme))
        throw new RequestMalformedError(
          'authentication.scheme: expected an HTTP authentication scheme such as "Bearer"',
        );
      if (auth.credentials === '' || auth.credentials.length > 4_000 || /[\r\n]/.test(auth.credentials))
        throw new RequestMalformedError('authentication.credentials: expected up to 4000 characters on one line');
    }
    return {
      taskId,
      principal: this.#owner,
      id,
      url: p.url,
      token: p.token,
      authScheme: auth?.scheme ?? '',
      authCredentials: auth?.scheme ? auth.credentials : '',
    };
  }

  async #saved(push: PushNotifier, c: PushConfig): Promise<TaskPushNotificationConfig> {
    const mine = await push.store.list(c.taskId, c.principal);
    if (mine.length >= MAX_PUSH_CONFIGS && !mine.some((m) => m.id === c.id))
      throw new UnsupportedOperationError(
        `task ${c.taskId} has ${mine.length} push notification configs of yours, the most there may be; delete one first`,
      );
    await push.store.put(c);
    push.follow(c.taskId);
    return wireConfig(c);
  }

  createTaskPushNotificationConfig(p: TaskPushNotificationConfig): Promise<TaskPushNotificationConfig> {
    const push = this.d.push;
    if (push === undefined) return this.#noPush();
    return this.#guard(async () => {
      const { run } = await this.#task(p.taskId);
      return this.#saved(push, await this.#checked(push, p, run.id));
    });
  }

  getTaskPushNotificationConfig(p: GetTaskPushNotificationConfigRequest): Promise<TaskPushNotificationConfig> {
    const push = this.d.push;
    if (push === undefined) return this.#noPush();
    return this.#guard(async () => {
      const { run } = await this.#task(p.taskId);
      const c = await push.store.get(run.id, this.#owner, p.id);
      if (c === undefined)
        throw new TaskNotFoundError(`no push notification config "${p.id}" of yours on task ${run.id}`);
      return wireConfig(c);
    });
  }

  listTaskPushNotificationConfigs(
    p: ListTaskPushNotificationConfigsRequest,
  ): Promise<ListTaskPushNotificationConfigsResponse> {
    const push = this.d.push;
    if (push === undefined) return this.#noPush();
    return this.#guard(async () => {
      const { run } = await this.#task(p.taskId);
      return { configs: (await push.store.list(run.id, this.#owner)).map(wireConfig), nextPageToken: '' };
    });
  }

  deleteTaskPushNotificationConfig(p: DeleteTaskPushNotificationConfigRequest): Promise<void> {
    const push = this.d.push;
    if (push === undefined) return this.#noPush();
    return this.#guard(async () => {
      const { run } = await this.#task(p.taskId);
      if (!(await push.store.delete(run.id, this.#owner, p.id)))
        throw new TaskNotFoundError(`no push notification config "${p.id}" of yours on task ${run.id}`);
    });
  }
}

/** A stored config as the protocol's. */
function wireConfig(c: PushConfig): TaskPushNotificationConfig {
  return {
    tenant: '',
    id: c.id,
    taskId: c.taskId,
    url: c.url,
    token: c.token,
    authentication: c.authScheme === '' ? undefined : { scheme: c.authScheme, credentials: c.authCredentials },
  };
}
