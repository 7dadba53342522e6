/**
 * Caxton agents served over A2A (docs/a2a.md), driven by the real @a2a-js/sdk client against a real
 * server with authentication on: the card, a message answered, a task streamed to completion with a
 * tool call in between, tasks listed and cancelled, a conversation continued in the same context,
 * a run waiting for approval seen as input-required and finished after the client's answer, and a
 * key scoped to other agents refused. The model is the strict stand-in (llm-stub).
 */
import { existsSync, readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { join, resolve } from 'node:path';
import { AgentCard, SendMessageRequest, TaskState, type Message, type StreamResponse, type Task } from '@a2a-js/sdk';
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

const APPEND = resolve(import.meta.dirname, '../execution/fixtures/append-server.mjs');

let stub: LlmStub;
let srv: TestServer;
let admin: string;
let outFile: string;

type Msg = { role: string; content: string | null };
const messagesOf = (hit: StubHit): Msg[] => hit.body.messages as Msg[];
const lastUser = (hit: StubHit): string =>
  messagesOf(hit)
    .filter((m) => m.role === 'user')
    .at(-1)!.content!;

beforeAll(async () => {
  setTestKeys();
  // calc: one calculator call, then an answer quoting its result. writer: one journal.append (which
  // waits for approval), then "written". slow: answers only after a long while (cancelled first).
  // chat: answers with how many user turns it saw (a continued context shows the earlier ones).
  stub = await startLlmStub((hit) => {
    const system = messagesOf(hit)[0]?.content ?? '';
    const tools = messagesOf(hit).filter((m) => m.role === 'tool');
    if (system.includes('CALC')) {
      if (tools.length > 0) return { content: `the answer is ${tools[0]!.content}` };
      return { tool_calls: [{ id: 'c-1', name: 'calculator', arguments: { expression: '6*7' } }] };
    }
    if (system.includes('WRITE')) {
      if (tools.length > 0) return { content: `written: ${tools[0]!.content}` };
      const wire = (hit.body.tools as { function: { name: string } }[])[0]!.function.name;
      return { tool_calls: [{ id: 'w-1', name: wire, arguments: { line: lastUser(hit) } }] };
    }
    if (system.includes('SLOW')) return { content: 'late', delayMs: 60_000 };
    const users = messagesOf(hit).filter((m) => m.role === 'user').length;
    return { content: `turn ${users}: ${lastUser(hit)}` };
  });
  const dir = makeTempDir('caxton-a2a-');
  outFile = join(dir, 'out.txt');
  srv = await startTestServer({
    dir,
    toml: stringify({
      auth: { enabled: true },
      a2a: { expose: ['a-*', 'b-*'] },
      llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url, { max_retries: 0 }) } },
      mcp_servers: { journal: { command: process.execPath, args: [APPEND], env: { OUT_FILE: outFile } } },
    }),
    agentFiles: {
      'a-calc.toml': stringify({
        name: 'a-calc',
        description: 'Does arithmetic',
        documentation: 'Computes with the calculator tool.\n\nMore detail here.',
        capabilities: ['arithmetic'],
        system_prompt: 'CALC',
        tools: ['calculator'],
      }),
      'a-writer.toml': stringify({
        name: 'a-writer',
        system_prompt: 'WRITE',
        tools: ['journal.append'],
        execution: { require_approval: ['journal.append'] },
      }),
      'a-chat.toml': stringify({ name: 'a-chat', system_prompt: 'CHAT' }),
      'a-slow.toml': stringify({ name: 'a-slow', system_prompt: 'SLOW' }),
      'b-other.toml': stringify({ name: 'b-other', system_prompt: 'CHAT' }),
      'hidden.toml': stringify({ name: 'hidden', system_prompt: 'CHAT' }),
    },
  });
  admin = adminKeyOf(srv.dataDir);
}, 60_000);

afterAll(async () => {
  await srv?.close();
  await stub?.close();
  removeTempDirs();
});

const clientFor = (key: string, agent: string): Promise<Client> => sdkClient(srv.url, key, agent);

/**
 * The A2A JSON Schema bundle (test/fixtures/a2a): its definitions refer to each other as
 * `a2a.v1.<Name>.jsonschema.json`, each registered under that id; protobuf's Struct, Value and
 * Timestamp (not in the bundle) take any JSON.
 */
function cardValidator() {
  const bundle = JSON.parse(readFileSync(resolve(import.meta.dirname, '../fixtures/a2a/a2a.json'), 'utf8')) as {
    definitions: Record<string, Record<string, unknown>>;
  };
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  for (const [title, schema] of Object.entries(bundle.definitions))
    ajv.addSchema({ ...schema, $id: `a2a.v1.${title.replaceAll(' ', '')}.jsonschema.json` });
  for (const any of ['Struct', 'Value', 'Timestamp']) ajv.addSchema({ $id: `google.protobuf.${any}.jsonschema.json` });
  return ajv.getSchema('a2a.v1.AgentCard.jsonschema.json')!;
}

let n = 0;
function send(text: string, more: { contextId?: string; taskId?: string; returnImmediately?: boolean } = {}) {
  return SendMessageRequest.fromJSON({
    message: {
      messageId: `m-${++n}`,
      role: 'ROLE_USER',
      parts: [{ text }],
      ...(more.contextId !== undefined && { contextId: more.contextId }),
      ...(more.taskId !== undefined && { taskId: more.taskId }),
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

describe('Caxton agents as A2A agents', () => {
  it('serves a card the SDK resolves, with skills from capabilities and the auth schemes', async () => {
    const client = await clientFor(admin, 'a-calc');
    const card = await client.getAgentCard();
    expect(card.name).toBe('a-calc');
    expect(card.skills.map((s) => s.id)).toEqual(['arithmetic']);
    expect(card.skills[0]!.description).toContain('Computes with the calculator tool.');
    expect(card.skills[0]!.description).not.toContain('More detail');
    expect(card.supportedInterfaces[0]).toMatchObject({
      url: `${srv.url}/a2a/a-calc`,
      protocolBinding: 'JSONRPC',
      protocolVersion: '1.0',
    });
    expect(card.capabilities?.streaming).toBe(true);
    // Push notifications are off unless [a2a] push_notifications (test/a2a/a2a-push.test.ts).
    expect(card.capabilities?.pushNotifications).toBe(false);
    const push = await fetch(`${srv.url}/a2a/a-calc`, {
      method: 'POST',
      headers: { ...bearer(admin), 'content-type': 'application/json', 'A2A-Version': '1.0' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'CreateTaskPushNotificationConfig',
        params: { taskId: 'exec_x', url: 'https://example.com/hook' },
      }),
    });
    expect(((await push.json()) as { error: { message: string } }).error.message).toContain(
      'push notifications are off on this server ([a2a] push_notifications)',
    );
    expect(Object.keys(card.securitySchemes).sort()).toEqual(['apiKey', 'bearer']);
    // The wire form round-trips through the SDK's codec unchanged (the card is the protocol's JSON).
    const wire = (await (
      await fetch(`${srv.url}/a2a/a-calc/.well-known/agent-card.json`, { headers: bearer(admin) })
    ).json()) as unknown;
    expect(AgentCard.toJSON(AgentCard.fromJSON(wire))).toEqual(wire);
    // And it is valid under the protocol's own JSON Schema.
    const validate = cardValidator();
    expect(validate(wire), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...(wire as object), unknownField: 1 })).toBe(false);
  });

  it('lists the exposed agents a key sees in the catalogue; an agent not exposed has no card', async () => {
    const all = await fetch(`${srv.url}/a2a/agents`, { headers: bearer(admin) });
    const names = ((await all.json()) as { agents: { name: string }[] }).agents.map((a) => a.name);
    expect(names).toEqual(['a-calc', 'a-chat', 'a-slow', 'a-writer', 'b-other']);
    const hidden = await fetch(`${srv.url}/a2a/hidden/.well-known/agent-card.json`, { headers: bearer(admin) });
    expect(hidden.status).toBe(404);
    const anonymous = await fetch(`${srv.url}/a2a/a-calc/.well-known/agent-card.json`);
    expect(anonymous.status).toBe(401);
  });

  it('answers a message with a completed task whose id is the run id', async () => {
    const client = await clientFor(admin, 'a-chat');
    const task = asTask(await client.sendMessage(send('hello')));
    expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(textOf(task)).toBe('turn 1: hello');
    const run = await fetch(`${srv.url}/api/v1/runs/${task.id}`, { headers: bearer(admin) });
    expect(((await run.json()) as { origin: string; agent: string }).origin).toBe('a2a');
    const again = await client.getTask({ tenant: '', id: task.id });
    expect(again.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
  });

  it('streams a task to completion with the tool call in between', async () => {
    const client = await clientFor(admin, 'a-calc');
    const events: StreamResponse[] = [];
    for await (const e of client.sendMessageStream(send('what is 6*7?'))) events.push(e);
    const cases = events.map((e) => e.payload?.$case);
    expect(cases[0]).toBe('task');
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
      {
        $case: 'text',
        value: 'the answer is 42',
      },
    );
    const last = events.at(-1)!;
    expect(last.payload?.$case === 'statusUpdate' && last.payload.value.status?.state).toBe(
      TaskState.TASK_STATE_COMPLETED,
    );
  });

  it('continues a conversation in the same context', async () => {
    const client = await clientFor(admin, 'a-chat');
    const first = asTask(await client.sendMessage(send('one')));
    const second = asTask(await client.sendMessage(send('two', { contextId: first.contextId })));
    expect(second.contextId).toBe(first.contextId);
    expect(second.id).not.toBe(first.id);
    expect(textOf(second)).toBe('turn 2: two');
    const listed = await client.listTasks({
      tenant: '',
      contextId: first.contextId,
      status: TaskState.TASK_STATE_UNSPECIFIED,
      pageToken: '',
      statusTimestampAfter: undefined,
      includeArtifacts: true,
    });
    expect(listed.tasks.map((t) => t.id)).toEqual([second.id, first.id]);
  });

  it('lists and cancels tasks', async () => {
    const client = await clientFor(admin, 'a-slow');
    const task = asTask(await client.sendMessage(send('take your time', { returnImmediately: true })));
    expect(task.status?.state).toBe(TaskState.TASK_STATE_WORKING);
    const listed = await client.listTasks({
      tenant: '',
      contextId: '',
      status: TaskState.TASK_STATE_WORKING,
      pageToken: '',
      statusTimestampAfter: undefined,
    });
    expect(listed.tasks.map((t) => t.id)).toContain(task.id);
    const cancelled = await client.cancelTask({ tenant: '', id: task.id, metadata: undefined });
    expect(cancelled.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    await expect(client.cancelTask({ tenant: '', id: task.id, metadata: undefined })).rejects.toThrow(/already ended/);
  });

  it('shows a run waiting for approval as input-required, and completes it after the answer', async () => {
    const client = await clientFor(admin, 'a-writer');
    const waiting = asTask(await client.sendMessage(send('line-1')));
    expect(waiting.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    const text = waiting.status?.message?.parts.map((p) => (p.content?.$case === 'text' ? p.content.value : ''));
    expect(text?.join(' ')).toContain('journal.append');
    expect(existsSync(outFile)).toBe(false);
    const events: StreamResponse[] = [];
    for await (const e of client.sendMessageStream(
      send('approve looks fine', { taskId: waiting.id, contextId: waiting.contextId }),
    ))
      events.push(e);
    const last = events.at(-1)!;
    expect(last.payload?.$case === 'statusUpdate' && last.payload.value.status?.state).toBe(
      TaskState.TASK_STATE_COMPLETED,
    );
    expect(readFileSync(outFile, 'utf8').trim()).toBe('line-1');
    const done = await client.getTask({ tenant: '', id: waiting.id });
    expect(textOf(done)).toContain('written');
  });

  it('completes an input-required task decided in Caxton itself', async () => {
    const client = await clientFor(admin, 'a-writer');
    const waiting = asTask(await client.sendMessage(send('line-2')));
    expect(waiting.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    const r = await fetch(`${srv.url}/api/v1/runs/${waiting.id}/approve`, {
      method: 'POST',
      headers: { ...bearer(admin), 'content-type': 'application/json' },
      body: '{}',
    });
    expect(r.status).toBe(200);
    await waitUntil(
      async () =>
        (await client.getTask({ tenant: '', id: waiting.id })).status?.state === TaskState.TASK_STATE_COMPLETED,
      {
        timeoutMs: 20_000,
        what: 'the approved task completed',
      },
    );
  });

  it('follows an input-required task with SubscribeToTask until the decision finishes it', async () => {
    const client = await clientFor(admin, 'a-writer');
    const waiting = asTask(await client.sendMessage(send('line-3')));
    expect(waiting.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    const events: StreamResponse[] = [];
    const followed = (async () => {
      for await (const e of client.resubscribeTask({ tenant: '', id: waiting.id })) events.push(e);
    })();
    await waitUntil(() => events.length > 0, { timeoutMs: 10_000, what: 'the subscription opened' });
    const r = await fetch(`${srv.url}/api/v1/runs/${waiting.id}/deny`, {
      method: 'POST',
      headers: { ...bearer(admin), 'content-type': 'application/json' },
      body: '{"reason": "not this line"}',
    });
    expect(r.status).toBe(200);
    await followed;
    const said = events.flatMap((e) =>
      e.payload?.$case === 'statusUpdate'
        ? (e.payload.value.status?.message?.parts ?? []).map((p) =>
            p.content?.$case === 'text' ? p.content.value : '',
          )
        : [],
    );
    expect(
      said.some((t) => t.startsWith('denied by ')),
      JSON.stringify(said),
    ).toBe(true);
    const last = events.at(-1)!;
    expect(last.payload?.$case === 'statusUpdate' && last.payload.value.status?.state).toBe(
      TaskState.TASK_STATE_COMPLETED,
    );
  });

  it('answers the extended card, and records every call in the audit trail', async () => {
    const client = await clientFor(admin, 'a-chat');
    // The client's transport, as the client itself calls it (with the protocol version it speaks).
    const extended = await client.transport.getExtendedAgentCard(
      { tenant: '' },
      { serviceParameters: { 'A2A-Version': '1.0' } },
    );
    expect(extended.name).toBe('a-chat');
    const r = await fetch(`${srv.url}/api/v1/audit?action=a2a.*&limit=1000`, { headers: bearer(admin) });
    const rows = ((await r.json()) as { records: { action: string; target: string | null; principal: string }[] })
      .records;
    const actions = new Set(rows.map((e) => e.action));
    for (const a of ['a2a.SendMessage', 'a2a.SendStreamingMessage', 'a2a.GetTask', 'a2a.ListTasks', 'a2a.CancelTask'])
      expect(actions, a).toContain(a);
    expect(rows.every((e) => e.principal === 'key:admin' || e.principal.startsWith('key:'))).toBe(true);
    expect(rows.some((e) => e.target?.startsWith('a-slow/exec_'))).toBe(true);
  });

  it('refuses a key scoped to other agents, and hides tasks it did not start', async () => {
    const scoped = await createKey(srv.url, admin, 'b-only', { role: 'invoker', agents: ['b-*'] });
    await expect(clientFor(scoped, 'a-chat')).rejects.toThrow(/403/);
    const other = await clientFor(scoped, 'b-other');
    const mine = asTask(await other.sendMessage(send('hi')));
    expect(mine.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    // An admin's task of the same agent: the invoker (no observe:read) sees only its own.
    const adminClient = await clientFor(admin, 'b-other');
    const theirs = asTask(await adminClient.sendMessage(send('hello')));
    await expect(other.getTask({ tenant: '', id: theirs.id })).rejects.toThrow(/no run/);
    const listed = await other.listTasks({
      tenant: '',
      contextId: '',
      status: TaskState.TASK_STATE_UNSPECIFIED,
      pageToken: '',
      statusTimestampAfter: undefined,
    });
    expect(listed.tasks.map((t) => t.id)).toEqual([mine.id]);
    // The catalogue shows it only the agents in its scope.
    const cat = await fetch(`${srv.url}/a2a/agents`, { headers: bearer(scoped) });
    expect(((await cat.json()) as { agents: { name: string }[] }).agents.map((a) => a.name)).toEqual(['b-other']);
  });
});
