/**
 * Chat threads and NAME@VERSION on a real server (127.0.0.1, port 0, authentication on, the
 * scripted model, SQLite file):
 *  - a thread is listed for the key that began it (title, turns, last activity, target) and read
 *    with its turns (request, answer, tool calls, run); continuing it gives the model its earlier
 *    turns; another key neither lists nor reads nor continues it; an admin reads it on request;
 *  - NAME@VERSION reaches any kept version (an older one after a plain redeploy) through the
 *    invoke API, /v1/chat/completions and MCP alike, recorded with its version number; a version
 *    that does not exist is a clear 404 naming it;
 *  - bad list parameters are 400 naming the field.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, type HttpResult } from '../helpers/http.js';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

/** "who": the agent's system prompt says its version; anything else: a new thread, then continued (the model counts earlier answers). */
const REPLIES = `fallback = "ok"

[[rules]]
name = "who"
match = "^who"
content = "{{system}} heard: {{request}}"

[[rules]]
name = "sum"
match = "\\\\d+\\\\s*[-+*/]\\\\s*\\\\d+"
[[rules.turns]]
tool_calls = [{ name = "calculator", arguments = { expression = "{{request}}" } }]
[[rules.turns]]
content = "The answer is {{tool_result.calculator}}."

[[rules]]
name = "chat"
[[rules.turns]]
content = "new thread: {{request}}"
[[rules.turns]]
content = "continued: {{request}}"
`;

const helper = (n: number) => `name = "helper"\ntools = ["calculator"]\nsystem_prompt = "You are helper v${n}."\n`;

let srv: TestServer;
let admin: string;
let alice: string;
let bob: string;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const call = (key: string, method: string, path: string, body?: unknown, type = 'application/json') =>
  http<Json>(srv.url, method, path, {
    headers: bearer(key),
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body), contentType: type }),
  });
const invoke = (key: string, ref: string, request: string, conversation_id?: string) =>
  call(key, 'POST', `/api/v1/agents/${ref}/invoke`, { request, ...(conversation_id && { conversation_id }) });
const expectOk = (r: HttpResult<Json>, status = 200) => expect(r.status, r.text).toBe(status);

beforeAll(async () => {
  const dir = makeTempDir('caxton-threads-');
  writeFileSync(join(dir, 'replies.toml'), REPLIES);
  srv = await startTestServer({
    dir,
    toml: `[auth]\nenabled = true\n\n[llm]\ndefault_provider = "s"\n[llm.providers.s]\ntype = "scripted"\nscript = "replies.toml"\n`,
  });
  admin = adminKeyOf(srv.dataDir);
  alice = await createKey(srv.url, admin, 'alice', { role: 'invoker' });
  bob = await createKey(srv.url, admin, 'bob', { role: 'invoker' });
  expectOk(await call(admin, 'POST', '/api/v1/agents', helper(1), 'application/toml'), 201);
  expectOk(await call(admin, 'PUT', '/api/v1/agents/helper', helper(2), 'application/toml'));
}, 60_000);

afterAll(async () => {
  await srv?.close();
  removeTempDirs();
});

describe('chat threads', () => {
  it("lists and reads the key's own thread; continuing it gives the model the earlier turns", async () => {
    const first = await invoke(alice, 'helper', 'What is 6 * 7?', 'thread-a');
    expectOk(first);
    expect(first.json.content).toBe('The answer is 42.');
    const hello = await invoke(alice, 'helper', 'hello there', 'thread-a');
    // The model was given the earlier exchange: the script's next turn.
    expect(hello.json.content).toBe('continued: hello there');
    const again = await invoke(alice, 'helper', 'and again', 'thread-a');
    expect(again.json.content).toBe('continued: and again');
    // A thread of its own starts afresh.
    expect((await invoke(alice, 'helper', 'hello there', 'thread-c')).json.content).toBe('new thread: hello there');

    const list = await call(alice, 'GET', '/api/v1/agents/helper/threads');
    expectOk(list);
    expect(list.json.threads.map((t: Json) => t.conversation_id)).toEqual(['thread-c', 'thread-a']);
    expect(list.json.threads[1]).toMatchObject({
      conversation_id: 'thread-a',
      agent: 'helper',
      title: 'What is 6 * 7?',
      turns: 3,
      principal: 'key:alice',
      version_number: 2,
      target: 'helper',
    });
    expect(Date.parse(list.json.threads[0].last_active_at)).toBeGreaterThan(0);

    const one = await call(alice, 'GET', '/api/v1/agents/helper/threads/thread-a');
    expectOk(one);
    const turns = one.json.turns as Json[];
    expect(turns.map((t) => [t.request, t.answer])).toEqual([
      ['What is 6 * 7?', 'The answer is 42.'],
      ['hello there', 'continued: hello there'],
      ['and again', 'continued: and again'],
    ]);
    expect(turns[0]!.tool_calls).toMatchObject([{ name: 'calculator', result: '42', outcome: 'ok' }]);
    expect(turns.map((t) => t.run)).toEqual([
      first.json.execution_id,
      hello.json.execution_id,
      again.json.execution_id,
    ]);
    // The agent's name in any case, or as NAME@VERSION, reads the same threads.
    expect((await call(alice, 'GET', '/api/v1/agents/HELPER@1/threads')).json.threads).toHaveLength(2);
  });

  it('another key neither lists, reads nor continues it; an admin reads it when asking for it', async () => {
    expect((await call(bob, 'GET', '/api/v1/agents/helper/threads')).json.threads).toEqual([]);
    const read = await call(bob, 'GET', '/api/v1/agents/helper/threads/thread-a');
    expect(read.status).toBe(404);
    expect(read.json.error.message).toContain('no thread "thread-a"');
    const cont = await invoke(bob, 'helper', 'let me in', 'thread-a');
    expect(cont.status).toBe(403);
    expect(cont.json.error).toMatchObject({ code: 'forbidden', details: { reason: 'not_own_thread' } });
    const theirs = await call(bob, 'GET', '/api/v1/agents/helper/threads?principal=key:alice');
    expect(theirs.status).toBe(403);
    expect(theirs.json.error.message).toContain('principal');
    // Bob's own thread is his alone.
    expectOk(await invoke(bob, 'helper', 'hi from bob', 'thread-b'));
    expect((await call(bob, 'GET', '/api/v1/agents/helper/threads')).json.threads.map((t: Json) => t.title)).toEqual([
      'hi from bob',
    ]);

    expect((await call(admin, 'GET', '/api/v1/agents/helper/threads')).json.threads).toEqual([]);
    const all = await call(admin, 'GET', '/api/v1/agents/helper/threads?principal=*');
    expect(all.json.threads.map((t: Json) => t.conversation_id)).toEqual(['thread-b', 'thread-c', 'thread-a']);
    const alices = await call(admin, 'GET', '/api/v1/agents/helper/threads?principal=key:alice');
    expect(alices.json.threads.map((t: Json) => t.conversation_id)).toEqual(['thread-c', 'thread-a']);
    expectOk(await call(admin, 'GET', '/api/v1/agents/helper/threads/thread-a'));
    // Pages: newest activity first, the cursor continues.
    const page = await call(admin, 'GET', '/api/v1/agents/helper/threads?principal=*&limit=1');
    expect(page.json.threads.map((t: Json) => t.conversation_id)).toEqual(['thread-b']);
    const next = await call(
      admin,
      'GET',
      `/api/v1/agents/helper/threads?principal=*&limit=1&cursor=${page.json.next_cursor as string}`,
    );
    expect(next.json.threads.map((t: Json) => t.conversation_id)).toEqual(['thread-c']);
  });

  it('bad list parameters are 400 naming the field', async () => {
    for (const [q, field] of [
      ['limit=0', 'limit'],
      ['limit=x', 'limit'],
      ['cursor=abc', 'cursor'],
    ] as const) {
      const r = await call(alice, 'GET', `/api/v1/agents/helper/threads?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.text).toContain(field);
    }
  });
});

describe('NAME@VERSION reaches any kept version, on every surface', () => {
  it('the invoke API: an older version answers, recorded with its number, and its thread targets it', async () => {
    const old = await invoke(alice, 'helper@1', 'who are you?', 'thread-v1');
    expectOk(old);
    expect(old.json.content).toBe('You are helper v1. heard: who are you?');
    const live = await invoke(alice, 'helper', 'who are you?');
    expect(live.json.content).toBe('You are helper v2. heard: who are you?');
    const run = await call(admin, 'GET', `/api/v1/executions/${old.json.execution_id as string}`);
    expect(run.json).toMatchObject({ agent: 'helper', version_number: 1, addressed: true });
    const liveRun = await call(admin, 'GET', `/api/v1/executions/${live.json.execution_id as string}`);
    expect(liveRun.json).toMatchObject({ version_number: 2, addressed: false });
    const threads = (await call(alice, 'GET', '/api/v1/agents/helper/threads')).json.threads as Json[];
    expect(threads.find((t) => t.conversation_id === 'thread-v1')).toMatchObject({
      target: 'helper@1',
      version_number: 1,
    });
  });

  it('a version that does not exist is a 404 naming it, and the newest', async () => {
    const r = await invoke(alice, 'helper@9', 'who?');
    expect(r.status).toBe(404);
    expect(r.json.error.code).toBe('version_not_found');
    expect(r.json.error.message).toContain('agent "helper" has no version 9 (its newest is 2');
  });

  it('/v1/chat/completions and MCP resolve it the same way', async () => {
    const chat = await call(alice, 'POST', '/v1/chat/completions', {
      model: 'helper@1',
      messages: [{ role: 'user', content: 'who is this?' }],
    });
    expectOk(chat);
    expect(chat.json.choices[0].message.content).toBe('You are helper v1. heard: who is this?');
    const missing = await call(alice, 'POST', '/v1/chat/completions', {
      model: 'helper@9',
      messages: [{ role: 'user', content: 'who?' }],
    });
    expect(missing.status).toBe(404);
    expect(missing.text).toContain('has no version 9');
    expectOk(await call(alice, 'GET', '/v1/models/helper@1'));
    expect((await call(alice, 'GET', '/v1/models/helper@9')).status).toBe(404);

    const client = new Client({ name: 'threads-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), { requestInit: { headers: bearer(alice) } }),
    );
    try {
      const asked = await client.callTool({ name: 'ask_helper', arguments: { request: 'who asks?', version: 1 } });
      expect(asked.isError).toBeFalsy();
      expect((asked.content as { text: string }[])[0]!.text).toBe('You are helper v1. heard: who asks?');
      const bad = await client.callTool({ name: 'ask_helper', arguments: { request: 'who?', version: 9 } });
      expect(bad.isError).toBe(true);
      expect((bad.content as { text: string }[])[0]!.text).toContain('has no version 9');
    } finally {
      await client.close();
    }
  });
});
