/**
 * Reads are filtered by the caller's agent scope (src/auth/scope-read.ts): a key limited to `a-*`
 * sees the traffic of a-one and nothing of b-secret, on every surface (REST lists and single
 * reads, the conversation stream, the agent events, MCP resources, memory), while a key without
 * an agents scope sees everything. An out-of-scope item reads as a missing one.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSse } from '../execution/helpers/caxton.js';
import { http } from '../helpers/http.js';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

interface Msg {
  id: string;
  sender: string;
  receivers: string[];
  routed_to: string[];
  conversation_id: string;
}
interface Conv {
  id: string;
  participants: string[];
}

let srv: TestServer;
let admin: string;
let scoped: string;
let open: string;
/** Conversations with a-one and with b-secret, in the order they were sent. */
const convs: { a: string[]; b: string[] } = { a: [], b: [] };
let bMessage: string;

const get = <T>(key: string, path: string) => http<T>(srv.url, 'GET', path, { headers: bearer(key) });
const post = <T>(key: string, path: string, body: unknown) =>
  http<T>(srv.url, 'POST', path, { body: JSON.stringify(body), contentType: 'application/json', headers: bearer(key) });

const namesB = (parties: readonly string[]) => parties.some((p) => p === 'b-secret');
const msgNamesB = (m: Msg) => namesB([m.sender, ...m.receivers, ...m.routed_to]);

async function send(receiver: string): Promise<string> {
  const r = await post<{ conversation_id: string; conversation: { state: string } }>(
    admin,
    '/api/v1/messages?wait=20',
    { performative: 'request', receiver, content: `hello ${receiver}` },
  );
  expect(r.status, r.text).toBe(200);
  expect(r.json.conversation.state).toBe('completed');
  return r.json.conversation_id;
}

/** The stored events an event stream replays after its `ready` event (the stream is then closed). */
async function replayedEvents(key: string, path: string): Promise<{ agent: string }[]> {
  const ac = new AbortController();
  const res = await fetch(srv.url + path, { headers: bearer(key), signal: ac.signal });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      const events = parseSse(text.slice(0, text.lastIndexOf('\n\n') + 2));
      const ready = events.find((e) => e.event === 'ready');
      if (ready && events.length - 1 >= (ready.json as { replayed: number }).replayed)
        return events.filter((e) => e.event !== 'ready').map((e) => e.json as { agent: string });
    }
  } finally {
    ac.abort();
  }
  throw new Error(`the event stream ended early: ${text}`);
}

async function mcp(key: string): Promise<Client> {
  const client = new Client({ name: 'scope-reads', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), { requestInit: { headers: bearer(key) } }),
  );
  return client;
}

beforeAll(async () => {
  const dir = makeTempDir('caxton-scope-reads-');
  writeFileSync(
    join(dir, 'replies.toml'),
    'fallback = "noted"\n\n[[rules]]\nmatch = "slow"\nlatency_ms = 1500\ncontent = "done slowly"\n',
  );
  srv = await startTestServer({
    dir,
    toml: '[auth]\nenabled = true\n\n[llm]\ndefault_provider = "s"\n[llm.providers.s]\ntype = "scripted"\nscript = "replies.toml"\n',
    agentFiles: {
      'a-one.toml': 'name = "a-one"\nsystem_prompt = "You are a."\n',
      'b-secret.toml': 'name = "b-secret"\nsystem_prompt = "You keep secrets."\n',
    },
  });
  admin = adminKeyOf(srv.dataDir);
  scoped = await createKey(srv.url, admin, 'reader-a', { role: 'developer', agents: ['a-*'] });
  open = await createKey(srv.url, admin, 'reader-all', { role: 'developer' });
  // Interleaved, so that filtered pages have out-of-scope rows between the visible ones.
  for (let i = 0; i < 3; i++) {
    convs.a.push(await send('a-one'));
    convs.b.push(await send('b-secret'));
  }
  const listed = await get<{ messages: Msg[] }>(admin, `/api/v1/messages?conversation_id=${convs.b[0]}`);
  bMessage = listed.json.messages[0]!.id;
  for (const scope of ['agent:b-secret', 'agent:a-one']) {
    const r = await post(admin, `/api/v1/memory/entities?scope=${scope}`, {
      entities: [{ name: 'Plan', entityType: 'note', observations: [`kept in ${scope}`] }],
    });
    expect(r.status, r.text).toBe(201);
  }
}, 60_000);

afterAll(async () => {
  await srv?.close();
  removeTempDirs();
});

describe('REST reads by agent scope', () => {
  it('lists only messages naming agents in scope, with totals and pages that count only those', async () => {
    const all = await get<{ messages: Msg[]; total: number }>(scoped, '/api/v1/messages?limit=1000');
    expect(all.status, all.text).toBe(200);
    expect(all.json.messages.length).toBeGreaterThan(0);
    expect(all.json.messages.filter(msgNamesB)).toEqual([]);
    expect(all.json.total).toBe(all.json.messages.length);
    // One at a time: every page is full until the visible ones run out.
    const paged: string[] = [];
    for (let offset = 0; offset < all.json.total; offset++) {
      const page = await get<{ messages: Msg[]; total: number }>(scoped, `/api/v1/messages?limit=1&offset=${offset}`);
      expect(page.json.messages).toHaveLength(1);
      expect(page.json.total).toBe(all.json.total);
      paged.push(page.json.messages[0]!.id);
    }
    expect(paged).toEqual(all.json.messages.map((m) => m.id));
    // A filter naming b-secret finds nothing, rather than its messages.
    expect((await get<{ messages: Msg[] }>(scoped, '/api/v1/messages?receiver=b-secret')).json.messages).toEqual([]);
    const everything = await get<{ messages: Msg[]; total: number }>(open, '/api/v1/messages?limit=1000');
    expect(everything.json.messages.filter(msgNamesB).length).toBeGreaterThan(0);
    expect(everything.json.total).toBeGreaterThan(all.json.total);
  });

  it('a message or conversation out of scope reads as a missing one (404)', async () => {
    const msg = await get<{ error: { code: string } }>(scoped, `/api/v1/messages/${bMessage}`);
    const none = await get<{ error: { code: string } }>(scoped, '/api/v1/messages/msg_none');
    expect(msg.status).toBe(404);
    expect(msg.json.error.code).toBe(none.json.error.code);
    const conv = await get<{ error: { code: string } }>(scoped, `/api/v1/conversations/${convs.b[0]}`);
    const noConv = await get<{ error: { code: string } }>(scoped, '/api/v1/conversations/conv_none');
    expect(conv.status).toBe(404);
    expect(conv.json.error.code).toBe(noConv.json.error.code);
    expect(conv.text).not.toContain('b-secret');
    expect((await get(scoped, `/api/v1/conversations/${convs.a[0]}`)).status).toBe(200);
    expect((await get(open, `/api/v1/messages/${bMessage}`)).status).toBe(200);
    expect((await get(open, `/api/v1/conversations/${convs.b[0]}`)).status).toBe(200);
  });

  it('lists only conversations whose agents are all in scope, paged full', async () => {
    const list = await get<{ conversations: Conv[]; total: number }>(scoped, '/api/v1/conversations?limit=1000');
    expect(list.json.conversations.map((c) => c.id).sort()).toEqual([...convs.a].sort());
    expect(list.json.total).toBe(convs.a.length);
    const second = await get<{ conversations: Conv[] }>(scoped, '/api/v1/conversations?limit=1&offset=1');
    expect(second.json.conversations).toHaveLength(1);
    expect(second.json.conversations[0]!.participants).not.toContain('b-secret');
    const everything = await get<{ conversations: Conv[]; total: number }>(open, '/api/v1/conversations?limit=1000');
    expect(everything.json.total).toBe(convs.a.length + convs.b.length);
  });

  it('the conversation stream of b-secret is not found; that of a-one streams', async () => {
    expect((await get(scoped, `/api/v1/conversations/${convs.b[0]}/events`)).status).toBe(404);
    const stream = await get(scoped, `/api/v1/conversations/${convs.a[0]}/events`);
    expect(stream.status).toBe(200);
    const events = parseSse(stream.text);
    expect(events.filter((e) => e.event === 'message').length).toBeGreaterThan(0);
    expect(events.at(-1)?.event).toBe('end');
    expect(stream.text).not.toContain('b-secret');
    const all = await get(open, `/api/v1/conversations/${convs.b[0]}/events`);
    expect(all.status).toBe(200);
    expect(all.text).toContain('b-secret');
  });

  it('a conversation stream ends, unseen, once the conversation draws in an agent out of scope', async () => {
    const started = await post<{ conversation_id: string }>(admin, '/api/v1/messages', {
      performative: 'request',
      receiver: 'a-one',
      content: 'slow work',
    });
    expect(started.status, started.text).toBe(202);
    const id = started.json.conversation_id;
    const stream = get(scoped, `/api/v1/conversations/${id}/events`);
    await new Promise((r) => setTimeout(r, 300));
    const joined = await post(admin, '/api/v1/messages', {
      performative: 'request',
      receiver: 'b-secret',
      content: 'slow secret',
      conversation_id: id,
    });
    expect(joined.status, joined.text).toBe(202);
    const seen = await stream;
    expect(seen.status).toBe(200);
    expect(parseSse(seen.text).some((e) => e.event === 'message')).toBe(true);
    expect(seen.text).not.toContain('b-secret');
    expect(seen.text).not.toContain('slow secret');
    expect((await get(scoped, `/api/v1/conversations/${id}`)).status).toBe(404);
  });

  it('agent events: only those about agents in scope', async () => {
    const scopedEvents = await get<{ events: { agent: string }[] }>(scoped, '/api/v1/events?limit=1000');
    expect(scopedEvents.status, scopedEvents.text).toBe(200);
    expect(scopedEvents.json.events.length).toBeGreaterThan(0);
    expect(scopedEvents.json.events.filter((e) => e.agent !== 'a-one')).toEqual([]);
    const streamed = await replayedEvents(scoped, '/api/v1/events/stream?since=1h&limit=1000');
    expect(streamed.length).toBeGreaterThan(0);
    expect(streamed.filter((e) => e.agent !== 'a-one')).toEqual([]);
    expect(
      (await replayedEvents(open, '/api/v1/events/stream?since=1h&limit=1000')).some((e) => e.agent === 'b-secret'),
    ).toBe(true);
    const all = await get<{ events: { agent: string }[] }>(open, '/api/v1/events?limit=1000');
    expect(all.json.events.some((e) => e.agent === 'b-secret')).toBe(true);
    // Asking for b-secret by name finds nothing.
    expect((await get<{ events: unknown[] }>(scoped, '/api/v1/events?agent=b-secret')).json.events).toEqual([]);
  });
});

describe('other reads naming agents', () => {
  it('the tool audit: only calls made for agents in scope', async () => {
    const call = {
      time: Date.now(),
      server: 'kit',
      tool: 'kit.run',
      args_digest: '0'.repeat(64),
      outcome: 'ok' as const,
      duration_us: 1,
      fuel_used: 0,
      memory_bytes: 0,
      input_bytes: 0,
      output_bytes: 0,
    };
    for (const agent of ['a-one', 'b-secret', 'api']) srv.server.toolAudit.record({ ...call, agent });
    const seen = await get<{ records: { agent: string }[] }>(scoped, '/api/v1/tools/audit');
    expect(seen.status, seen.text).toBe(200);
    expect(seen.json.records.map((r) => r.agent)).toEqual(['a-one']);
    expect((await get<{ records: unknown[] }>(scoped, '/api/v1/tools/audit?agent=b-secret')).json.records).toEqual([]);
    const all = await get<{ records: { agent: string }[] }>(open, '/api/v1/tools/audit');
    expect(all.json.records.map((r) => r.agent).sort()).toEqual(['a-one', 'api', 'b-secret']);
  });

  it('the log: lines naming an agent out of scope are left out; lines naming none stay', async () => {
    const line = (fields: Record<string, unknown>) =>
      srv.server.logs!.write(`${JSON.stringify({ level: 30, time: Date.now(), ...fields })}\n`);
    line({ agent: 'b-secret', msg: 'scope-test b-secret at work' });
    line({ sender: 'a-one', receiver: 'b-secret', msg: 'scope-test a-one to b-secret' });
    line({ agent: 'a-one', msg: 'scope-test a-one at work' });
    line({ msg: 'scope-test server line' });
    const logs = await get<{ logs: { msg?: string }[] }>(scoped, '/api/v1/logs?limit=10000');
    expect(logs.status, logs.text).toBe(200);
    const msgs = logs.json.logs.map((l) => l.msg).filter((m) => m?.startsWith('scope-test'));
    expect(msgs).toEqual(['scope-test a-one at work', 'scope-test server line']);
    const all = (await get<{ logs: { msg?: string }[] }>(open, '/api/v1/logs?limit=10000')).json.logs
      .map((l) => l.msg)
      .filter((m) => m?.startsWith('scope-test'));
    expect(all).toHaveLength(4);
  });
});

describe('MCP resources by agent scope', () => {
  it('lists and reads only conversations in scope; one of b-secret is not found', async () => {
    const client = await mcp(scoped);
    try {
      const uris = (await client.listResources()).resources.map((r) => r.uri);
      for (const id of convs.a) expect(uris).toContain(`caxton://conversations/${id}`);
      for (const id of convs.b) expect(uris).not.toContain(`caxton://conversations/${id}`);
      expect(uris).not.toContain('caxton://agents/b-secret');
      const read = await client.readResource({ uri: `caxton://conversations/${convs.a[0]}` });
      expect((read.contents[0] as { text: string }).text).toContain('a-one');
      const refused = await client.readResource({ uri: `caxton://conversations/${convs.b[0]}` }).then(
        () => undefined,
        (e: unknown) => e as { code: number; message: string },
      );
      expect(refused).toMatchObject({ code: -32002 });
      expect(refused!.message).not.toContain('b-secret');
    } finally {
      await client.close();
    }
    const all = await mcp(open);
    try {
      const uris = (await all.listResources()).resources.map((r) => r.uri);
      for (const id of convs.b) expect(uris).toContain(`caxton://conversations/${id}`);
      expect((await all.readResource({ uri: `caxton://conversations/${convs.b[0]}` })).contents).toHaveLength(1);
    } finally {
      await all.close();
    }
  });

  it('the memory of b-secret is not found through MCP', async () => {
    const client = await mcp(scoped);
    try {
      await expect(client.readResource({ uri: 'caxton://memory/agent%3Ab-secret/Plan' })).rejects.toMatchObject({
        code: -32002,
      });
      expect((await client.readResource({ uri: 'caxton://memory/agent%3Aa-one/Plan' })).contents).toHaveLength(1);
    } finally {
      await client.close();
    }
  });
});

describe('memory by agent scope', () => {
  it('agent:b-secret needs b-secret in the agents scope: export, list and search refuse it or leave it out', async () => {
    const exp = await get<{ error: { code: string; details: { reason: string } } }>(
      scoped,
      '/api/v1/memory/export?scope=agent:b-secret',
    );
    expect(exp.status, exp.text).toBe(403);
    expect(exp.json.error.details.reason).toBe('agent_scope');
    expect(exp.text).not.toContain('kept in');
    expect((await get(scoped, '/api/v1/memory/entities?scope=agent:b-secret')).status).toBe(403);
    expect(
      (await post(scoped, '/api/v1/memory/search', { query: 'Plan', scope: 'agent:b-secret', mode: 'keyword' })).status,
    ).toBe(403);
    // Without a scope: every scope the key may use, which leaves b-secret's out.
    const whole = await get(scoped, '/api/v1/memory/export');
    expect(whole.status, whole.text).toBe(200);
    expect(whole.text).toContain('kept in agent:a-one');
    expect(whole.text).not.toContain('b-secret');
    const found = await post(scoped, '/api/v1/memory/search', { query: 'Plan', mode: 'keyword' });
    expect(found.status, found.text).toBe(200);
    expect(found.text).toContain('agent:a-one');
    expect(found.text).not.toContain('b-secret');
    expect((await get(scoped, '/api/v1/memory/export?scope=agent:a-one')).status).toBe(200);
    type Stats = {
      entities: number;
      relations: number;
      observations: number;
      by_scope: Record<string, { entities: number; relations: number; observations: number }>;
      database_bytes?: number;
    };
    const stats = await get<Stats>(scoped, '/api/v1/memory/stats');
    expect(Object.keys(stats.json.by_scope)).toEqual(['agent:a-one']);
    // The totals are those of the scopes it may use: b-secret's memory is not counted in them.
    const mine = stats.json.by_scope['agent:a-one']!;
    expect([stats.json.entities, stats.json.relations, stats.json.observations]).toEqual([
      mine.entities,
      mine.relations,
      mine.observations,
    ]);
    expect(stats.json.database_bytes).toBeUndefined();
    const everything = (await get<Stats>(open, '/api/v1/memory/stats')).json;
    expect(Object.keys(everything.by_scope).sort()).toEqual(['agent:a-one', 'agent:b-secret']);
    expect(everything.entities).toBe(mine.entities + everything.by_scope['agent:b-secret']!.entities);
    expect(everything.by_scope['agent:b-secret']!.entities).toBeGreaterThan(0);
  });

  it('a key without an agents scope reads every agent memory', async () => {
    const exp = await get(open, '/api/v1/memory/export?scope=agent:b-secret');
    expect(exp.status, exp.text).toBe(200);
    expect(exp.text).toContain('kept in agent:b-secret');
    expect((await get(open, '/api/v1/memory/export')).text).toContain('kept in agent:b-secret');
  });
});
