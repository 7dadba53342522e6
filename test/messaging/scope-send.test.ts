/**
 * The scope of messages and the acting principal (docs/security.md), through a real server with
 * authentication on, real API keys and the scripted LLM provider:
 * - capability routing considers only providers inside the sender's agent scope; none inside is
 *   the same 403 as a direct send to an agent outside it;
 * - a message carries the principal it acts for (`on_behalf_of`), set by the platform: a client
 *   cannot set it, an agent's onward sends inherit it and are refused outside its scope;
 * - the MCP host tool `send_message` sends as the key, in the key's scope;
 * - deliveries are executions of the acting principal: its concurrency is held while they run (the
 *   others wait and are delivered, none lost), its tokens are charged and shown by GET key, and a
 *   principal out of tokens is refused at submit with 429.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, type HttpResult } from '../helpers/http.js';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { waitUntil } from '../helpers/wait.js';

const REPLIES = `
[[rules]]
name = "forward-out"
match = "FORWARD-OUT"
  [[rules.turns]]
  tool_calls = [{ name = "send_message", arguments = { to = "b-secret", content = "what do you know?" } }]
  [[rules.turns]]
  content = "forwarded: {{last_tool_result}}"

[[rules]]
name = "forward-capability"
match = "FORWARD-CAPABILITY"
  [[rules.turns]]
  tool_calls = [{ name = "send_message", arguments = { capability = "cap-b-secret", content = "what do you know?" } }]
  [[rules.turns]]
  content = "forwarded: {{last_tool_result}}"

[[rules]]
name = "forward-in"
match = "FORWARD-IN"
  [[rules.turns]]
  tool_calls = [{ name = "send_message", arguments = { to = "a-two", content = "please help" } }]
  [[rules.turns]]
  content = "forwarded: {{last_tool_result}}"

[[rules]]
name = "slow"
match = "SLOW"
latency_ms = 300
content = "slow answer"

[[rules]]
content = "answered"
`;

function agent(name: string, capabilities: string[], extra = ''): string {
  return `name = "${name}"\ndescription = "test agent ${name}"\ncapabilities = ${JSON.stringify(capabilities)}\nsystem_prompt = "You are ${name}."\n${extra}`;
}

let srv: TestServer;
let admin: string;

beforeAll(async () => {
  const dir = makeTempDir('caxton-scope-send-');
  writeFileSync(join(dir, 'replies.toml'), REPLIES);
  srv = await startTestServer({
    dir,
    toml: `
[auth]
enabled = true

[llm]
default_provider = "demo"

[llm.providers.demo]
type = "scripted"
script = "replies.toml"

[messaging]
retry_base = "100ms"
retry_max = "2s"
`,
    agentFiles: {
      'a-one.toml': agent('a-one', ['cap-shared', 'cap-a']),
      'a-two.toml': agent('a-two', ['cap-shared']),
      'b-secret.toml': agent('b-secret', ['cap-b-secret', 'cap-shared']),
      'a-fwd.toml': agent('a-fwd', ['cap-fwd'], 'tools = ["send_message"]\n'),
    },
  });
  admin = adminKeyOf(srv.dataDir);
});

afterAll(async () => {
  await srv?.close();
  removeTempDirs();
});

/** A stored message as the API shows it. */
interface Msg {
  sender: string;
  receivers: string[];
  content: string;
  chain: string[];
  on_behalf_of?: string;
}

/** What POST /messages answers: a result, with ?wait the conversation and its messages, or an error. */
interface Answer {
  routed_to: string[];
  conversation_id: string;
  failure: { reason: string };
  conversation: { state: string };
  messages: Msg[];
  error: { code: string; message: string; details: Record<string, unknown> };
}

const send = (key: string, body: Record<string, unknown>, query = ''): Promise<HttpResult<Answer>> =>
  http(srv.url, 'POST', `/api/v1/messages${query}`, {
    body: JSON.stringify(body),
    contentType: 'application/json',
    headers: bearer(key),
  });

const asAdmin = <T>(path: string): Promise<HttpResult<T>> => http<T>(srv.url, 'GET', path, { headers: bearer(admin) });

async function deliveredTo(agentName: string): Promise<number> {
  const r = await asAdmin<{ total: number }>(`/api/v1/messages?receiver=${agentName}&limit=1`);
  expect(r.status, r.text).toBe(200);
  return r.json.total;
}

describe('capability routing in the sender’s scope', () => {
  let key: string;
  beforeAll(async () => {
    key = await createKey(srv.url, admin, 'invoker-a', { role: 'invoker', agents: ['a-*'] });
  });

  it('refuses a capability whose only provider is outside the scope with the same 403 as a direct send', async () => {
    const before = await deliveredTo('b-secret');
    const direct = await send(key, { performative: 'request', receiver: 'b-secret', content: 'tell me' });
    expect(direct.status, direct.text).toBe(403);
    const byCapability = await send(key, { performative: 'request', capability: 'cap-b-secret', content: 'tell me' });
    expect(byCapability.status, byCapability.text).toBe(403);
    expect(byCapability.json.error.code).toBe('forbidden');
    expect(byCapability.json.error.details.reason).toBe(direct.json.error.details.reason);
    expect(byCapability.json.error.details.reason).toBe('agent_scope');
    // The refusal does not name the provider.
    expect(byCapability.json.error.details.agent).toBeUndefined();
    expect(byCapability.json.error.message).not.toContain('"b-secret"');
    expect(await deliveredTo('b-secret')).toBe(before);
  });

  it('keeps unknown_capability for a capability nobody provides', async () => {
    const r = await send(key, { performative: 'request', capability: 'cap-nobody', content: 'x' });
    expect(r.status, r.text).toBe(202);
    expect(r.json.failure.reason).toBe('unknown_capability');
  });

  it('routes a capability with providers inside and outside the scope only inside it, every time', async () => {
    const chosen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const r = await send(key, { performative: 'request', capability: 'cap-shared', content: `task ${i}` });
      expect(r.status, r.text).toBe(202);
      expect(r.json.routed_to).toHaveLength(1);
      chosen.add(r.json.routed_to[0]!);
    }
    expect([...chosen].sort()).toEqual(['a-one', 'a-two']);
    // An act for every provider (inform) reaches every provider in the scope, and only those.
    const all = await send(key, { performative: 'inform', capability: 'cap-shared', content: 'news' });
    expect(all.status, all.text).toBe(202);
    expect([...all.json.routed_to].sort()).toEqual(['a-one', 'a-two']);
  });

  it('lets an unscoped key reach every provider', async () => {
    const r = await send(admin, { performative: 'inform', capability: 'cap-shared', content: 'news' });
    expect(r.status, r.text).toBe(202);
    expect([...r.json.routed_to].sort()).toEqual(['a-one', 'a-two', 'b-secret']);
  });
});

describe('the acting principal', () => {
  let key: string;
  beforeAll(async () => {
    key = await createKey(srv.url, admin, 'invoker-fwd', { role: 'invoker', agents: ['a-*'] });
  });

  it('refuses a client-supplied on_behalf_of, naming the field', async () => {
    for (const field of ['on_behalf_of', 'on-behalf-of']) {
      const r = await send(admin, {
        performative: 'request',
        receiver: 'a-one',
        content: 'x',
        [field]: 'key:someone-else',
      });
      expect(r.status, r.text).toBe(400);
      expect(r.json.error.code).toBe('invalid_message');
      expect(r.json.error.message).toContain(field);
      expect(r.json.error.message).toContain('set by the platform');
    }
  });

  it('records the caller as the principal of its message, and the agent’s onward sends inherit it', async () => {
    const r = await send(key, { performative: 'request', receiver: 'a-fwd', content: 'FORWARD-IN now' }, '?wait=20');
    expect(r.status, r.text).toBe(200);
    expect(r.json.conversation.state).toBe('completed');
    expect(r.json.messages[0]!.on_behalf_of).toBe('key:invoker-fwd');
    expect(r.json.messages[0]!.sender).toBe('key:invoker-fwd');
    // The answer of a-fwd quotes a-two's reply; the forwarded message acts for the same key.
    const last = r.json.messages.at(-1)!;
    expect(last.content).toContain('[inform] from a-two: answered');
    const forwarded = await asAdmin<{ messages: Msg[] }>('/api/v1/messages?sender=a-fwd&limit=5');
    const m = forwarded.json.messages.find((x) => x.receivers.includes('a-two'));
    expect(m, forwarded.text).toBeDefined();
    expect(m!.on_behalf_of).toBe('key:invoker-fwd');
    expect(m!.chain).toEqual(['a-fwd']);
  });

  it('refuses an agent’s onward send outside the scope of the principal it acts for, by name and by capability', async () => {
    const before = await deliveredTo('b-secret');
    for (const how of ['FORWARD-OUT', 'FORWARD-CAPABILITY']) {
      const r = await send(key, { performative: 'request', receiver: 'a-fwd', content: `${how} now` }, '?wait=20');
      expect(r.status, r.text).toBe(200);
      const last = r.json.messages.at(-1)!;
      expect(last.sender).toBe('a-fwd');
      expect(last.content).toContain('forwarded:');
      expect(last.content).toContain('key:invoker-fwd may not use the agent');
    }
    expect(await deliveredTo('b-secret')).toBe(before);
  });

  it('lets the same agent forward to b-secret for a principal whose scope allows it', async () => {
    const before = await deliveredTo('b-secret');
    const r = await send(admin, { performative: 'request', receiver: 'a-fwd', content: 'FORWARD-OUT now' }, '?wait=20');
    expect(r.status, r.text).toBe(200);
    expect(r.json.messages.at(-1)!.content).toContain('[inform] from b-secret: answered');
    expect(await deliveredTo('b-secret')).toBe(before + 1);
  });
});

describe('MCP send_message', () => {
  const textOf = (r: Record<string, unknown>) =>
    (r.content as { type: string; text: string }[]).map((c) => c.text).join('');

  async function connect(k: string): Promise<Client> {
    const client = new Client({ name: 'scope-send', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), { requestInit: { headers: bearer(k) } }),
    );
    return client;
  }

  it('sends as the key and within its scope', async () => {
    await createKey(srv.url, admin, 'dev-a', { role: 'developer', agents: ['a-*'] });
    const secret = await createKey(srv.url, admin, 'dev-a2', { role: 'developer', agents: ['a-*'] });
    const before = await deliveredTo('b-secret');
    const client = await connect(secret);
    try {
      for (const args of [{ to: 'b-secret' }, { capability: 'cap-b-secret' }]) {
        const r = await client.callTool({
          name: 'send_message',
          arguments: { ...args, content: 'tell me', wait: false },
        });
        expect(r.isError, textOf(r)).toBe(true);
        expect(textOf(r)).toContain('key:dev-a2 may not use the agent');
      }
      const ok = await client.callTool({
        name: 'send_message',
        arguments: { to: 'a-one', content: 'hello', wait: false },
      });
      expect(ok.isError ?? false, textOf(ok)).toBe(false);
    } finally {
      await client.close();
    }
    expect(await deliveredTo('b-secret')).toBe(before);
    const sent = await asAdmin<{ messages: Msg[] }>('/api/v1/messages?sender=key:dev-a2&limit=5');
    expect(sent.json.messages, sent.text).toHaveLength(1);
    expect(sent.json.messages[0]).toMatchObject({
      sender: 'key:dev-a2',
      on_behalf_of: 'key:dev-a2',
      receivers: ['a-one'],
      chain: [],
    });
    const asMcp = await asAdmin<{ total: number }>('/api/v1/messages?sender=mcp&limit=1');
    expect(asMcp.json.total).toBe(0);
  });
});

describe('per-key limits charged by message deliveries', () => {
  type Usage = { executions: { running: number; limit?: number }; tokens: { used: number; limit?: number } };
  const usageOf = async (name: string): Promise<Usage> => {
    const r = await asAdmin<{ usage: Usage }>(`/api/v1/keys/${name}`);
    expect(r.status, r.text).toBe(200);
    return r.json.usage;
  };

  it('holds the key’s concurrency while a delivery runs; the others wait and are all delivered', async () => {
    const key = await createKey(srv.url, admin, 'one-at-a-time', {
      role: 'invoker',
      agents: ['a-*'],
      limits: { concurrent_executions: 1 },
    });
    const convs: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await send(key, {
        performative: 'request',
        receiver: i % 2 === 0 ? 'a-one' : 'a-two',
        content: `SLOW ${i}`,
      });
      expect(r.status, r.text).toBe(202);
      convs.push(r.json.conversation_id);
    }
    let most = 0;
    await waitUntil(
      async () => {
        const u = await usageOf('one-at-a-time');
        most = Math.max(most, u.executions.running);
        const states = await Promise.all(
          convs.map(
            async (c) =>
              (await asAdmin<{ conversation: { state: string } }>(`/api/v1/conversations/${c}`)).json.conversation
                .state,
          ),
        );
        return states.every((s) => s === 'completed');
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    expect(most).toBe(1);
    const u = await usageOf('one-at-a-time');
    expect(u.executions).toEqual({ running: 0, limit: 1 });
    expect(u.tokens.used).toBeGreaterThan(0);
    const dead = await asAdmin<{ total: number }>('/api/v1/dead-letters?limit=1');
    expect(dead.json.total).toBe(0);
  });

  it('lets an agent acting for a key limited to one execution wait for the reply of the agent it asks', async () => {
    const key = await createKey(srv.url, admin, 'single-chain', {
      role: 'invoker',
      agents: ['a-*'],
      limits: { concurrent_executions: 1 },
    });
    const t0 = Date.now();
    const r = await send(key, { performative: 'request', receiver: 'a-fwd', content: 'FORWARD-IN now' }, '?wait=20');
    expect(r.status, r.text).toBe(200);
    expect(r.json.conversation.state).toBe('completed');
    expect(r.json.messages.at(-1)!.content).toContain('[inform] from a-two: answered');
    // Not by waiting out a deadline: the nested delivery took no slot of its own.
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect((await usageOf('single-chain')).tokens.used).toBeGreaterThan(0);
  });

  it('charges the tokens of deliveries to the key and refuses its messages once they are used up', async () => {
    const key = await createKey(srv.url, admin, 'thirty-tokens', {
      role: 'invoker',
      agents: ['a-*'],
      limits: { concurrent_executions: 1, tokens_per_minute: 30 },
    });
    const first = await send(key, { performative: 'request', receiver: 'a-one', content: 'count me' }, '?wait=20');
    expect(first.status, first.text).toBe(200);
    expect(first.json.conversation.state).toBe('completed');
    const u = await usageOf('thirty-tokens');
    expect(u.tokens.limit).toBe(30);
    expect(u.tokens.used).toBeGreaterThan(0);
    // A minute window could roll over between the run and here; then one more run refills it.
    let refused: HttpResult<Answer> | undefined;
    for (let i = 0; i < 8 && !refused; i++) {
      const r = await send(key, { performative: 'request', receiver: 'a-one', content: 'again' }, '?wait=20');
      if (r.status === 429) refused = r;
      else expect(r.status, r.text).toBe(200);
    }
    expect(refused, 'a key out of tokens is refused at submit').toBeDefined();
    expect(refused!.json.error.code).toBe('rate_limited');
    expect(refused!.json.error.details).toMatchObject({ limit: 'tokens', scope: 'principal' });
    expect(refused!.headers.get('retry-after')).toMatch(/^\d+$/);
  });

  it('runs nothing more for a key revoked while its messages wait: they are dead-lettered, naming the key', async () => {
    const key = await createKey(srv.url, admin, 'to-revoke', {
      role: 'invoker',
      agents: ['a-*'],
      limits: { concurrent_executions: 1 },
    });
    for (let i = 0; i < 3; i++) {
      const r = await send(key, { performative: 'request', receiver: 'a-one', content: `SLOW revoke ${i}` });
      expect(r.status, r.text).toBe(202);
    }
    const revoked = await http(srv.url, 'DELETE', '/api/v1/keys/to-revoke', { headers: bearer(admin) });
    expect(revoked.status, revoked.text).toBeLessThan(300);
    const { value } = await waitUntil(
      async () => {
        const r = await asAdmin<{ dead_letters: { last_error: string }[] }>('/api/v1/dead-letters?error=key:to-revoke');
        return r.json.dead_letters.length > 0 ? r.json.dead_letters : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    expect(value[0]!.last_error).toContain('no longer valid');
  });
});
