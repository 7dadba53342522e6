/**
 * The HTTP+JSON binding of A2A (docs/a2a.md), driven by the real @a2a-js/sdk client with its REST
 * transport against a real server with authentication on: the card lists both bindings, a message
 * answered, a task streamed to completion with a tool call in between, read, listed in its
 * context, cancelled, push notification configs set, read, listed and deleted, every call in the
 * audit trail as the same method as over JSON-RPC, and a key scoped to other agents refused. The
 * model is the strict stand-in (llm-stub).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SendMessageRequest, TaskState, type Message, type StreamResponse, type Task } from '@a2a-js/sdk';
import type { Client } from '@a2a-js/sdk/client';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { clientFor as sdkClient } from './helpers/client.js';
import { openaiProvider, setTestKeys } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type StubHit } from '../execution/helpers/llm-stub.js';

let stub: LlmStub;
let srv: TestServer;
let admin: string;
let hook: Server;
let hookUrl: string;

type Msg = { role: string; content: string | null };
const messagesOf = (hit: StubHit): Msg[] => hit.body.messages as Msg[];
const lastUser = (hit: StubHit): string =>
  messagesOf(hit)
    .filter((m) => m.role === 'user')
    .at(-1)!.content!;

beforeAll(async () => {
  setTestKeys();
  // CALC: one calculator call, then an answer quoting it. SLOW: answers only after a long while.
  // CHAT: how many user turns it saw (a continued context shows the earlier ones).
  stub = await startLlmStub((hit) => {
    const system = messagesOf(hit)[0]?.content ?? '';
    const tools = messagesOf(hit).filter((m) => m.role === 'tool');
    if (system.includes('CALC')) {
      if (tools.length > 0) return { content: `the answer is ${tools[0]!.content}` };
      return { tool_calls: [{ id: 'c-1', name: 'calculator', arguments: { expression: '6*7' } }] };
    }
    if (system.includes('SLOW')) return { content: 'late', delayMs: 60_000 };
    const users = messagesOf(hit).filter((m) => m.role === 'user').length;
    return { content: `turn ${users}: ${lastUser(hit)}` };
  });
  hook = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200).end());
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
  srv = await startTestServer({
    dir: makeTempDir('caxton-a2a-rest-'),
    toml: stringify({
      auth: { enabled: true },
      a2a: { expose: ['r-*', 'o-*'], push_notifications: true, push_allowed_hosts: ['127.0.0.1'] },
      llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url, { max_retries: 0 }) } },
    }),
    agentFiles: {
      'r-calc.toml': stringify({ name: 'r-calc', system_prompt: 'CALC', tools: ['calculator'] }),
      'r-chat.toml': stringify({ name: 'r-chat', system_prompt: 'CHAT' }),
      'r-slow.toml': stringify({ name: 'r-slow', system_prompt: 'SLOW' }),
      'o-other.toml': stringify({ name: 'o-other', system_prompt: 'CHAT' }),
    },
  });
  admin = adminKeyOf(srv.dataDir);
}, 60_000);

afterAll(async () => {
  await srv?.close();
  await stub?.close();
  await new Promise((r) => hook?.close(r));
  removeTempDirs();
});

const restClient = (key: string, agent: string): Promise<Client> => sdkClient(srv.url, key, agent, 'HTTP+JSON');

let n = 0;
function send(text: string, more: { contextId?: string; returnImmediately?: boolean } = {}) {
  return SendMessageRequest.fromJSON({
    message: {
      messageId: `r-${++n}`,
      role: 'ROLE_USER',
      parts: [{ text }],
      ...(more.contextId !== undefined && { contextId: more.contextId }),
    },
    ...(more.returnImmediately === true && { configuration: { returnImmediately: true } }),
  });
}

const asTask = (r: Message | Task): Task => {
  if (!('status' in r)) throw new Error(`expected a task, got a message: ${JSON.stringify(r)}`);
  return r;
};
const textOf = (t: Task): string =>
  t.artifacts.flatMap((a) => a.parts.map((p) => (p.content?.$case === 'text' ? p.content.value : ''))).join('');
const list = (client: Client, contextId = '', status = TaskState.TASK_STATE_UNSPECIFIED) =>
  client.listTasks({ tenant: '', contextId, status, pageToken: '', statusTimestampAfter: undefined });

describe('A2A over HTTP+JSON', () => {
  it('lists both bindings in the card, and the SDK picks HTTP+JSON when asked', async () => {
    const client = await restClient(admin, 'r-chat');
    const card = await client.getAgentCard();
    expect(card.supportedInterfaces.map((i) => [i.protocolBinding, i.url])).toEqual([
      ['JSONRPC', `${srv.url}/a2a/r-chat`],
      ['HTTP+JSON', `${srv.url}/a2a/r-chat`],
    ]);
    expect(client.transport.protocolName).toBe('HTTP+JSON');
  });

  it('answers a message, reads the task back, and continues its context', async () => {
    const client = await restClient(admin, 'r-chat');
    const first = asTask(await client.sendMessage(send('hello')));
    expect(first.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(textOf(first)).toBe('turn 1: hello');
    const again = await client.getTask({ tenant: '', id: first.id, historyLength: 1 });
    expect(again.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(again.history).toHaveLength(1);
    const second = asTask(await client.sendMessage(send('two', { contextId: first.contextId })));
    expect(textOf(second)).toBe('turn 2: two');
    expect((await list(client, first.contextId)).tasks.map((t) => t.id)).toEqual([second.id, first.id]);
  });

  it('streams a task to completion with the tool call in between', async () => {
    const client = await restClient(admin, 'r-calc');
    const events: StreamResponse[] = [];
    for await (const e of client.sendMessageStream(send('what is 6*7?'))) events.push(e);
    expect(events[0]?.payload?.$case).toBe('task');
    const said = events.flatMap((e) =>
      e.payload?.$case === 'statusUpdate'
        ? (e.payload.value.status?.message?.parts ?? []).map((p) =>
            p.content?.$case === 'text' ? p.content.value : '',
          )
        : [],
    );
    expect(said).toContain('calling calculator');
    expect(said).toContain('calculator answered');
    const artifact = events.find((e) => e.payload?.$case === 'artifactUpdate');
    expect(artifact?.payload?.$case === 'artifactUpdate' && artifact.payload.value.artifact?.parts[0]?.content).toEqual(
      { $case: 'text', value: 'the answer is 42' },
    );
    const last = events.at(-1)!;
    expect(last.payload?.$case === 'statusUpdate' && last.payload.value.status?.state).toBe(
      TaskState.TASK_STATE_COMPLETED,
    );
  });

  it('lists and cancels tasks; a cancelled task cannot be cancelled again', async () => {
    const client = await restClient(admin, 'r-slow');
    const task = asTask(await client.sendMessage(send('take your time', { returnImmediately: true })));
    expect(task.status?.state).toBe(TaskState.TASK_STATE_WORKING);
    expect((await list(client, '', TaskState.TASK_STATE_WORKING)).tasks.map((t) => t.id)).toContain(task.id);
    const cancelled = await client.cancelTask({ tenant: '', id: task.id, metadata: undefined });
    expect(cancelled.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    await expect(client.cancelTask({ tenant: '', id: task.id, metadata: undefined })).rejects.toThrow(/already ended/);
    await expect(client.getTask({ tenant: '', id: 'exec_00000000-0000-4000-8000-000000000000' })).rejects.toThrow(
      /no run/,
    );
  });

  it("sets, reads, lists and deletes a task's push notification configs", async () => {
    const client = await restClient(admin, 'r-chat');
    const task = asTask(await client.sendMessage(send('push me')));
    const set = await client.createTaskPushNotificationConfig({
      tenant: '',
      id: 'cfg-1',
      taskId: task.id,
      url: hookUrl,
      token: 'tok',
      authentication: undefined,
    });
    expect(set).toMatchObject({ id: 'cfg-1', taskId: task.id, url: hookUrl });
    const got = await client.getTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'cfg-1' });
    expect(got.token).toBe('tok');
    const listed = await client.listTaskPushNotificationConfig({
      tenant: '',
      taskId: task.id,
      pageSize: 0,
      pageToken: '',
    });
    expect(listed.configs.map((c) => c.id)).toEqual(['cfg-1']);
    await client.deleteTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'cfg-1' });
    await expect(client.getTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'cfg-1' })).rejects.toThrow(
      /no push notification config/,
    );
    // A webhook the outbound rules refuse is refused when set, as over JSON-RPC.
    await expect(
      client.createTaskPushNotificationConfig({
        tenant: '',
        id: 'cfg-2',
        taskId: task.id,
        url: 'http://10.0.0.1/hook',
        token: '',
        authentication: undefined,
      }),
    ).rejects.toThrow(/url:/);
  });

  it('answers bad input with the binding’s error body, and the extended card', async () => {
    const headers = { ...bearer(admin), 'content-type': 'application/json', 'A2A-Version': '1.0' };
    const bad = await fetch(`${srv.url}/a2a/r-chat/message:send`, { method: 'POST', headers, body: '{}' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      error: { code: 400, status: 'INVALID_ARGUMENT', message: 'message: expected the message to send' },
    });
    const verb = await fetch(`${srv.url}/a2a/r-chat/tasks/exec_x:pause`, { method: 'POST', headers });
    expect(verb.status).toBe(400);
    const old = await fetch(`${srv.url}/a2a/r-chat/tasks`, { headers: { ...bearer(admin), 'A2A-Version': '0.3' } });
    expect(old.status).toBe(400);
    expect(((await old.json()) as { error: { message: string } }).error.message).toContain("'0.3' is not supported");
    const typed = await fetch(`${srv.url}/a2a/r-chat/message:send`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/a2a+json' },
      body: JSON.stringify(SendMessageRequest.toJSON(send('typed'))),
    });
    expect(typed.status).toBe(200);
    expect(JSON.stringify(await typed.json())).toContain('typed');
    const card = await fetch(`${srv.url}/a2a/r-chat/extendedAgentCard`, { headers });
    expect(((await card.json()) as { name: string }).name).toBe('r-chat');
    const hidden = await fetch(`${srv.url}/a2a/nobody/tasks`, { headers });
    expect(hidden.status).toBe(404);
  });

  it('records every call in the audit trail as its method', async () => {
    const r = await fetch(`${srv.url}/api/v1/audit?action=a2a.*&limit=1000`, { headers: bearer(admin) });
    const rows = ((await r.json()) as { records: { action: string; target: string | null }[] }).records;
    const actions = new Set(rows.map((e) => e.action));
    for (const a of [
      'a2a.SendMessage',
      'a2a.SendStreamingMessage',
      'a2a.GetTask',
      'a2a.ListTasks',
      'a2a.CancelTask',
      'a2a.CreateTaskPushNotificationConfig',
      'a2a.GetTaskPushNotificationConfig',
      'a2a.ListTaskPushNotificationConfigs',
      'a2a.DeleteTaskPushNotificationConfig',
      'a2a.GetExtendedAgentCard',
      'a2a.invalid',
    ])
      expect(actions, a).toContain(a);
    expect(rows.some((e) => e.action === 'a2a.CancelTask' && e.target?.startsWith('r-slow/exec_'))).toBe(true);
  });

  it('refuses a key scoped to other agents, and hides tasks it did not start', async () => {
    const scoped = await createKey(srv.url, admin, 'o-only', { role: 'invoker', agents: ['o-*'] });
    await expect(restClient(scoped, 'r-chat')).rejects.toThrow(/403/);
    const refused = await fetch(`${srv.url}/a2a/r-chat/message:send`, {
      method: 'POST',
      headers: { ...bearer(scoped), 'content-type': 'application/json', 'A2A-Version': '1.0' },
      body: JSON.stringify(SendMessageRequest.toJSON(send('let me in'))),
    });
    expect(refused.status).toBe(403);
    const other = await restClient(scoped, 'o-other');
    const mine = asTask(await other.sendMessage(send('hi')));
    expect(mine.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    const theirs = asTask(await (await restClient(admin, 'o-other')).sendMessage(send('hello')));
    await expect(other.getTask({ tenant: '', id: theirs.id })).rejects.toThrow(/no run/);
    expect((await list(other)).tasks.map((t) => t.id)).toEqual([mine.id]);
    const denied = await fetch(`${srv.url}/api/v1/audit?action=a2a.SendMessage&outcome=denied`, {
      headers: bearer(admin),
    });
    const rows = ((await denied.json()) as { records: { target: string | null }[] }).records;
    expect(rows.some((e) => e.target === 'r-chat')).toBe(true);
  });
});
