/**
 * A remote A2A agent as a capability provider (docs/a2a.md, `[a2a_agents.NAME]`): a real
 * @a2a-js/sdk server started here provides capability `translate`; Caxton reads its card at start,
 * lists it as a remote agent with that capability, and a Caxton agent's send_message by capability
 * reaches it (with the configured credential) and gets its answer back as an inform, its failure
 * as a failure, its question as a query-ref (a waiting send_message ends on it). A remote agent whose card says it streams is called
 * with SendStreamingMessage, its answer's chunks relayed to a streamed invoke as they come. The
 * model is the strict stand-in (llm-stub).
 */
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminKeyOf, bearer } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { openaiProvider, setTestKeys } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type StubHit } from '../execution/helpers/llm-stub.js';
import { waitUntil } from '../helpers/wait.js';
import { startRemoteAgent, type RemoteAgent } from './helpers/remote-agent.js';

let stub: LlmStub;
let remote: RemoteAgent;
let streamer: RemoteAgent;
let srv: TestServer;
let admin: string;

type Msg = { role: string; content: string | null };
const messagesOf = (hit: StubHit): Msg[] => hit.body.messages as Msg[];

beforeAll(async () => {
  setTestKeys();
  remote = await startRemoteAgent();
  streamer = await startRemoteAgent({ streaming: true });
  // The asker sends its request to capability `translate` and waits; then it answers with what came back.
  stub = await startLlmStub((hit) => {
    const tools = messagesOf(hit).filter((m) => m.role === 'tool');
    if (tools.length > 0) return { content: `reply: ${tools[0]!.content}` };
    const request = messagesOf(hit)
      .filter((m) => m.role === 'user')
      .at(-1)!.content!;
    return {
      tool_calls: [
        {
          id: 's-1',
          name: 'send_message',
          arguments: { capability: 'translate', performative: 'request', content: request, wait: true },
        },
      ],
    };
  });
  const dir = makeTempDir('caxton-a2a-remote-');
  process.env.TRANSLATOR_KEY_TEST = 'remote-secret-1';
  srv = await startTestServer({
    dir,
    toml: stringify({
      auth: { enabled: true },
      a2a_agents: {
        translator: { url: remote.url, api_key_env: 'TRANSLATOR_KEY_TEST' },
        streamer: { url: streamer.url, capabilities: ['stream-translate'] },
      },
      // Public cards here (the inbound tests keep them behind credentials).
      a2a: { expose: ['asker'], public_cards: true },
      llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url, { max_retries: 0 }) } },
    }),
    agentFiles: {
      'asker.toml': stringify({ name: 'asker', system_prompt: 'ASK', tools: ['send_message'] }),
    },
  });
  admin = adminKeyOf(srv.dataDir);
}, 60_000);

afterAll(async () => {
  await srv?.close();
  await stub?.close();
  await remote?.close();
  await streamer?.close();
  delete process.env.TRANSLATOR_KEY_TEST;
  removeTempDirs();
});

async function get<T>(path: string): Promise<T> {
  const r = await fetch(`${srv.url}${path}`, { headers: bearer(admin) });
  expect(r.status, path).toBe(200);
  return (await r.json()) as T;
}

async function ask(request: string): Promise<string> {
  const r = await fetch(`${srv.url}/api/v1/agents/asker/invoke`, {
    method: 'POST',
    headers: { ...bearer(admin), 'content-type': 'application/json' },
    body: JSON.stringify({ request }),
  });
  const body = (await r.json()) as { content: string };
  expect(r.status, JSON.stringify(body)).toBe(200);
  return body.content;
}

describe('remote A2A agents as capability providers', () => {
  it('lists the remote agent with the capability its card gives', async () => {
    const { agents } = await get<{
      agents: { name: string; origin: { kind: string; url?: string }; capabilities: string[] }[];
    }>('/api/v1/agents');
    const translator = agents.find((a) => a.name === 'translator');
    expect(translator).toMatchObject({ origin: { kind: 'a2a', url: remote.url }, capabilities: ['translate'] });
    const caps = await get<{ capabilities: { capability: string; agents: string[] }[] }>('/api/v1/capabilities');
    expect(caps.capabilities.find((c) => c.capability === 'translate')?.agents).toEqual(['translator']);
  });

  it("routes an agent's send_message by capability to it, and its answer comes back as an inform", async () => {
    const answer = await ask('hello world');
    expect(answer).toContain('translated: hello world');
    expect(answer).toContain('inform');
    expect(remote.calls.at(-1)).toEqual({ text: 'hello world', authorization: 'Bearer remote-secret-1' });
    // The call is an execution of the remote agent like any local one's: recorded, traced, charged to the caller.
    const { executions } = await get<{ executions: Record<string, unknown>[] }>('/api/v1/executions?limit=50');
    const call = executions.find((e) => e.agent === 'translator');
    expect(call).toMatchObject({ status: 'ok', provider: 'a2a', model: remote.url, principal: 'key:admin' });
    expect(typeof call!.trace_id).toBe('string');
  });

  it('gives a failure when the remote task fails', async () => {
    const failed = await ask('fail this one');
    expect(failed).toContain('failure');
    expect(failed).toContain('no dictionary for that');
  });

  it('answers a cfp to its capability with a propose', async () => {
    const sent = await fetch(`${srv.url}/api/v1/messages`, {
      method: 'POST',
      headers: { ...bearer(admin), 'content-type': 'application/json' },
      body: JSON.stringify({ performative: 'cfp', capability: 'translate', content: 'quote for 10 pages' }),
    });
    expect(sent.status).toBe(202);
    const { conversation_id } = (await sent.json()) as { conversation_id: string };
    let propose: { content: unknown } | undefined;
    await waitUntil(
      async () => {
        const c = await get<{ messages: { performative: string; sender: string; content: unknown }[] }>(
          `/api/v1/conversations/${conversation_id}`,
        );
        propose = c.messages.find((m) => m.sender === 'translator' && m.performative === 'propose');
        return propose !== undefined;
      },
      { timeoutMs: 20_000, what: "the remote agent's propose" },
    );
    expect(propose?.content).toBe('translated: quote for 10 pages');
  });

  it('serves public cards without credentials when [a2a] public_cards says so, never the calls', async () => {
    const card = await fetch(`${srv.url}/a2a/asker/.well-known/agent-card.json`);
    expect(card.status).toBe(200);
    expect(((await card.json()) as { name: string }).name).toBe('asker');
    const catalogue = await fetch(`${srv.url}/a2a/agents`);
    expect(((await catalogue.json()) as { agents: { name: string }[] }).agents.map((a) => a.name)).toEqual(['asker']);
    const call = await fetch(`${srv.url}/a2a/asker`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'a2a-version': '1.0' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ListTasks', params: {} }),
    });
    expect(call.status).toBe(401);
  });

  it('sends a query-ref back to the sender when the remote task needs input', async () => {
    const sent = await fetch(`${srv.url}/api/v1/messages`, {
      method: 'POST',
      headers: { ...bearer(admin), 'content-type': 'application/json' },
      body: JSON.stringify({ performative: 'request', capability: 'translate', content: 'ask me' }),
    });
    expect(sent.status).toBe(202);
    const { conversation_id } = (await sent.json()) as { conversation_id: string };
    let replies: { performative: string; sender: string; content: unknown }[] = [];
    await waitUntil(
      async () => {
        const c = await get<{ messages: { performative: string; sender: string; content: unknown }[] }>(
          `/api/v1/conversations/${conversation_id}`,
        );
        replies = c.messages.filter((m) => m.sender === 'translator');
        return replies.some((m) => m.performative === 'query-ref');
      },
      { timeoutMs: 20_000, what: 'the query-ref back' },
    );
    expect(replies.find((m) => m.performative === 'query-ref')?.content).toBe('into which language?');
  });

  it('streams from a remote agent whose card says it streams, relaying its chunks to a streamed invoke', async () => {
    const r = await fetch(`${srv.url}/api/v1/agents/streamer/invoke`, {
      method: 'POST',
      headers: { ...bearer(admin), 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ request: 'bonjour' }),
    });
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(streamer.methods.at(-1)).toBe('SendStreamingMessage');
    // The chunks as they came (the first one alone: the server cuts text only to hold back a
    // possible secret across chunks), then the whole answer.
    const tokens = [...text.matchAll(/event: token\ndata: \{"text":"([^"]*)"\}/g)].map((m) => m[1]);
    expect(tokens[0]).toBe('translated: ');
    expect(tokens.join('')).toBe('translated: bonjour');
    expect(text).toContain('"content":"translated: bonjour"');
    // A streamed remote task that needs input is still a question back.
    const asked = await fetch(`${srv.url}/api/v1/agents/streamer/invoke`, {
      method: 'POST',
      headers: { ...bearer(admin), 'content-type': 'application/json' },
      body: JSON.stringify({ request: 'ask this' }),
    });
    expect(((await asked.json()) as { content: string }).content).toBe(
      JSON.stringify({ a2a_reply: 'query-ref', content: 'into which language?' }),
    );
    // The remote that does not stream got plain SendMessage calls.
    expect(new Set(remote.methods)).toEqual(new Set(['SendMessage']));
  });

  it("ends a waiting send_message on the remote agent's question, rather than waiting out the timeout", async () => {
    // Without the question ending it, the wait lasts the agent's timeout (300 s), past this test's.
    const answer = await ask('ask me first');
    // The asker's model got the question back as its tool result, and answered with it.
    expect(answer).toContain('[query-ref] from translator: into which language?');
  });
});
