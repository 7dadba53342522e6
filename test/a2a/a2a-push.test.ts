/**
 * A2A push notifications (docs/a2a.md), driven by the real @a2a-js/sdk client against a real
 * server with authentication on, and a webhook HTTP server on 127.0.0.1 (allowed by naming the
 * address in `[a2a] push_allowed_hosts`, as web.fetch's tests name it in theirs): the task's
 * changes reach the webhook with the token and a signature it can check, a failing webhook is
 * retried, a webhook the outbound rules refuse is refused when set, the configs are read, listed
 * and deleted by their owner only, and they outlive a restart.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SendMessageRequest, TaskState, type Message, type Task } from '@a2a-js/sdk';
import type { Client } from '@a2a-js/sdk/client';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import { clientFor as sdkClient } from './helpers/client.js';
import { openaiProvider, setTestKeys } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type StubHit } from '../execution/helpers/llm-stub.js';

interface Hit {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}

let stub: LlmStub;
let srv: TestServer;
let admin: string;
let dir: string;
let toml: string;
let hook: Server;
let hookUrl: string;
const hits: Hit[] = [];
/** Path → how many more requests to answer 500. */
const failing = new Map<string, number>();

type Msg = { role: string; content: string | null };
const messagesOf = (hit: StubHit): Msg[] => hit.body.messages as Msg[];

const agentFiles = {
  'p-chat.toml': stringify({ name: 'p-chat', system_prompt: 'CHAT' }),
  'p-writer.toml': stringify({
    name: 'p-writer',
    system_prompt: 'WRITE',
    tools: ['calculator'],
    execution: { require_approval: ['calculator'] },
  }),
};

beforeAll(async () => {
  setTestKeys();
  // WRITE: one calculator call (which waits for approval), then an answer. Else: a plain answer.
  stub = await startLlmStub((hit) => {
    const system = messagesOf(hit)[0]?.content ?? '';
    const tools = messagesOf(hit).filter((m) => m.role === 'tool');
    if (system.includes('WRITE')) {
      if (tools.length > 0) return { content: `done: ${tools[0]!.content}` };
      return { tool_calls: [{ id: 'k-1', name: 'calculator', arguments: { expression: '2+2' } }] };
    }
    return { content: 'hello back' };
  });
  hook = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      const left = failing.get(path) ?? 0;
      const status = left > 0 ? 500 : 200;
      if (left > 0) failing.set(path, left - 1);
      hits.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}`;
  dir = makeTempDir('caxton-a2a-push-');
  toml = stringify({
    auth: { enabled: true },
    a2a: { expose: ['p-*'], push_notifications: true, push_allowed_hosts: ['127.0.0.1'] },
    llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url, { max_retries: 0 }) } },
  });
  srv = await startTestServer({ dir, toml, agentFiles });
  admin = adminKeyOf(srv.dataDir);
}, 60_000);

afterAll(async () => {
  await srv?.close();
  await stub?.close();
  await new Promise((r) => hook?.close(r));
  removeTempDirs();
});

const clientFor = (key: string, agent: string): Promise<Client> => sdkClient(srv.url, key, agent);

let n = 0;
function send(text: string, more: { taskId?: string; contextId?: string; push?: Record<string, unknown> } = {}) {
  return SendMessageRequest.fromJSON({
    message: {
      messageId: `pm-${++n}`,
      role: 'ROLE_USER',
      parts: [{ text }],
      ...(more.taskId !== undefined && { taskId: more.taskId }),
      ...(more.contextId !== undefined && { contextId: more.contextId }),
    },
    ...(more.push !== undefined && { configuration: { taskPushNotificationConfig: more.push } }),
  });
}

const asTask = (r: Message | Task): Task => {
  if (!('status' in r)) throw new Error(`expected a task, got a message: ${JSON.stringify(r)}`);
  return r;
};

const config = (taskId: string, path: string, token: string, id = '') => ({
  tenant: '',
  id,
  taskId,
  url: `${hookUrl}${path}`,
  token,
  authentication: undefined,
});

/** The task states a path received, in order (taken deliveries only). */
const statesAt = (path: string): string[] =>
  hits
    .filter((h) => h.path === path && h.status === 200)
    .map((h) => (JSON.parse(h.body) as { task: { status: { state: string } } }).task.status.state);

const signed = (h: Hit, token: string): boolean => {
  const ts = String(h.headers['x-caxton-timestamp']);
  const want = `sha256=${createHmac('sha256', token).update(`${ts}.${h.body}`).digest('hex')}`;
  return h.headers['x-caxton-signature'] === want;
};

describe('A2A push notifications', () => {
  it('says so in the card', async () => {
    const card = await (await clientFor(admin, 'p-chat')).getAgentCard();
    expect(card.capabilities?.pushNotifications).toBe(true);
  });

  it('sends each change of a task to its webhook, with the token and a valid signature', async () => {
    const client = await clientFor(admin, 'p-writer');
    const waiting = asTask(await client.sendMessage(send('add')));
    expect(waiting.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    const set = await client.createTaskPushNotificationConfig(config(waiting.id, '/changes', 'tok-changes-1'));
    expect(set).toMatchObject({ taskId: waiting.id, url: `${hookUrl}/changes`, token: 'tok-changes-1' });
    expect(set.id).not.toBe('');
    await waitUntil(() => statesAt('/changes').length >= 1, { timeoutMs: 10_000, what: 'the first notification' });
    await client.sendMessage(send('approve', { taskId: waiting.id, contextId: waiting.contextId }));
    await waitUntil(() => statesAt('/changes').includes('TASK_STATE_COMPLETED'), {
      timeoutMs: 20_000,
      what: 'the completed notification',
    });
    const states = statesAt('/changes');
    expect(states[0]).toBe('TASK_STATE_INPUT_REQUIRED');
    expect(states.at(-1)).toBe('TASK_STATE_COMPLETED');
    const got = hits.filter((h) => h.path === '/changes');
    for (const h of got) {
      expect(h.headers['x-a2a-notification-token']).toBe('tok-changes-1');
      expect(h.headers['content-type']).toBe('application/a2a+json');
      expect(signed(h, 'tok-changes-1')).toBe(true);
      expect(signed(h, 'another-token')).toBe(false);
      expect((JSON.parse(h.body) as { task: { id: string } }).task.id).toBe(waiting.id);
    }
    const done = JSON.parse(got.at(-1)!.body) as { task: { artifacts: { parts: { text: string }[] }[] } };
    expect(done.task.artifacts[0]!.parts[0]!.text).toBe('done: 4');
  });

  it('takes a config sent with the message', async () => {
    const client = await clientFor(admin, 'p-chat');
    const task = asTask(
      await client.sendMessage(send('hi', { push: { url: `${hookUrl}/with-message`, token: 'tok-msg' } })),
    );
    await waitUntil(() => statesAt('/with-message').includes('TASK_STATE_COMPLETED'), {
      timeoutMs: 10_000,
      what: 'the notification of the task sent with its config',
    });
    const listed = await client.listTaskPushNotificationConfig({
      tenant: '',
      taskId: task.id,
      pageSize: 0,
      pageToken: '',
    });
    expect(listed.configs.map((c) => c.url)).toEqual([`${hookUrl}/with-message`]);
  });

  it('retries a webhook that fails twice, then is taken', async () => {
    const client = await clientFor(admin, 'p-chat');
    const task = asTask(await client.sendMessage(send('hello')));
    failing.set('/flaky', 2);
    await client.createTaskPushNotificationConfig(config(task.id, '/flaky', 'tok-flaky'));
    await waitUntil(() => statesAt('/flaky').length === 1, { timeoutMs: 15_000, what: 'the third try taken' });
    const tries = hits.filter((h) => h.path === '/flaky');
    expect(tries.map((h) => h.status)).toEqual([500, 500, 200]);
    // The same notification each time, signed each time.
    expect(new Set(tries.map((h) => JSON.parse(h.body) as unknown).map((b) => JSON.stringify(b))).size).toBe(1);
    expect(tries.every((h) => signed(h, 'tok-flaky'))).toBe(true);
  });

  it('refuses, when set, a webhook the outbound rules refuse', async () => {
    const client = await clientFor(admin, 'p-chat');
    const task = asTask(await client.sendMessage(send('hello')));
    const refused = (url: string) => client.createTaskPushNotificationConfig({ ...config(task.id, '', 't'), url });
    await expect(refused('http://10.0.0.1/hook')).rejects.toThrow(
      /url: host "10\.0\.0\.1" is not in \[a2a\] push_allowed_hosts/,
    );
    await expect(refused(`http://localhost:${new URL(hookUrl).port}/hook`)).rejects.toThrow(/push_allowed_hosts/);
    await expect(refused('ftp://127.0.0.1/hook')).rejects.toThrow(/url: ftp: is not taken/);
    await expect(refused('not a url')).rejects.toThrow(/is not a URL/);
    const listed = await client.listTaskPushNotificationConfig({
      tenant: '',
      taskId: task.id,
      pageSize: 0,
      pageToken: '',
    });
    expect(listed.configs).toEqual([]);
  });

  it('gets, lists and deletes configs; another principal reads none of them', async () => {
    const client = await clientFor(admin, 'p-chat');
    const task = asTask(await client.sendMessage(send('hello')));
    const a = await client.createTaskPushNotificationConfig(config(task.id, '/a', 'tok-a', 'cfg-a'));
    await client.createTaskPushNotificationConfig(config(task.id, '/b', 'tok-b', 'cfg-b'));
    expect(a.id).toBe('cfg-a');
    const got = await client.getTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'cfg-a' });
    expect(got).toMatchObject({ id: 'cfg-a', url: `${hookUrl}/a`, token: 'tok-a' });
    const list = () =>
      client.listTaskPushNotificationConfig({ tenant: '', taskId: task.id, pageSize: 0, pageToken: '' });
    expect((await list()).configs.map((c) => c.id)).toEqual(['cfg-a', 'cfg-b']);
    await client.deleteTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'cfg-a' });
    expect((await list()).configs.map((c) => c.id)).toEqual(['cfg-b']);
    await expect(client.getTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'cfg-a' })).rejects.toThrow(
      /no push notification config "cfg-a"/,
    );
    await expect(client.deleteTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'cfg-a' })).rejects.toThrow(
      /no push notification config/,
    );

    // Another admin reads the task (every run and thread), but not another principal's configs.
    const other = await clientFor(await createKey(srv.url, admin, 'push-admin-2', { role: 'admin' }), 'p-chat');
    expect((await other.getTask({ tenant: '', id: task.id })).id).toBe(task.id);
    await expect(other.getTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'cfg-b' })).rejects.toThrow(
      /no push notification config "cfg-b"/,
    );
    const theirs = await other.listTaskPushNotificationConfig({
      tenant: '',
      taskId: task.id,
      pageSize: 0,
      pageToken: '',
    });
    expect(theirs.configs).toEqual([]);
    await expect(other.deleteTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'cfg-b' })).rejects.toThrow(
      /no push notification config/,
    );
    // An operator or an invoker sees not even the task (another principal's conversation).
    const operator = await clientFor(await createKey(srv.url, admin, 'push-operator', { role: 'operator' }), 'p-chat');
    await expect(
      operator.listTaskPushNotificationConfig({ tenant: '', taskId: task.id, pageSize: 0, pageToken: '' }),
    ).rejects.toThrow(/no run/);
    const invoker = await clientFor(await createKey(srv.url, admin, 'push-invoker', { role: 'invoker' }), 'p-chat');
    await expect(invoker.getTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'cfg-b' })).rejects.toThrow(
      /no run/,
    );
    await expect(invoker.createTaskPushNotificationConfig(config(task.id, '/x', 'tok-x'))).rejects.toThrow(/no run/);
    expect((await list()).configs.map((c) => c.id)).toEqual(['cfg-b']);

    const r = await fetch(`${srv.url}/api/v1/audit?action=a2a.*&limit=1000`, { headers: bearer(admin) });
    const rows = ((await r.json()) as { records: { action: string; target: string | null }[] }).records;
    for (const action of [
      'a2a.CreateTaskPushNotificationConfig',
      'a2a.GetTaskPushNotificationConfig',
      'a2a.ListTaskPushNotificationConfigs',
      'a2a.DeleteTaskPushNotificationConfig',
    ])
      expect(
        rows.some((e) => e.action === action && e.target === `p-chat/${task.id}`),
        action,
      ).toBe(true);
  });

  it('keeps the configs across a restart, and sends the rest of a task’s changes', async () => {
    const client = await clientFor(admin, 'p-writer');
    const waiting = asTask(await client.sendMessage(send('add')));
    await client.createTaskPushNotificationConfig(config(waiting.id, '/restart', 'tok-restart', 'cfg-r'));
    await waitUntil(() => statesAt('/restart').length >= 1, { timeoutMs: 10_000, what: 'the first notification' });
    await srv.close();
    srv = await startTestServer({ dir, toml });
    const again = await clientFor(admin, 'p-writer');
    const got = await again.getTaskPushNotificationConfig({ tenant: '', taskId: waiting.id, id: 'cfg-r' });
    expect(got.url).toBe(`${hookUrl}/restart`);
    await again.sendMessage(send('approve', { taskId: waiting.id, contextId: waiting.contextId }));
    await waitUntil(() => statesAt('/restart').includes('TASK_STATE_COMPLETED'), {
      timeoutMs: 20_000,
      what: 'the completed notification after the restart',
    });
  }, 60_000);
});
