/**
 * MCP both ways through a real Caxton server (startServer, HTTP on 127.0.0.1):
 *  - `[mcp_servers.NAME]` mounts server-everything (stdio child); an agent (scripted LLM) calls
 *    `everything.echo` under its allowlist; the call is audited; GET /api/v1/mcp/servers.
 *  - Caxton served at POST /mcp: the official SDK client and the MCP Inspector CLI list and call
 *    Caxton's tools and agents (`ask_<agent>`).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError, type Progress } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { waitUntil } from '../helpers/wait.js';
import { caxtonToml, INSPECTOR, killChildren, run, writeFixture } from './helpers.js';

const agent = (name: string, tools: string[]) => `
name = "${name}"
description = "MCP test agent ${name}"
capabilities = ["testing"]
tools = ${JSON.stringify(tools)}
system_prompt = "You are ${name}."
`;

const agentFiles = {
  'helper.toml': agent('helper', ['everything.*']),
  'locked.toml': agent('locked', ['calculator']),
  // Host tools run in the server whatever the isolation: a worker reaches them over the host-call bridge.
  'isolated.toml': `${agent('isolated', ['everything.echo'])}\n[execution]\nisolation = "worker"\n`,
  // A parameterised agent, offered as a prompt with arguments request, tone and audience.
  'writer.toml': `${agent('writer', [])}user_prompt_template = "Write for {{parameters.audience}} in a {{parameters.tone}} tone: {{request}}"\n[parameters]\ntone = "plain"\naudience = "engineers"\n`,
};

/** The JSON-RPC error a client call was refused with. */
async function rpcError(p: Promise<unknown>): Promise<McpError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(McpError);
  return e as McpError;
}

let t: TestServer;

beforeAll(async () => {
  const dir = makeTempDir('caxton-mcp-server-');
  writeFixture(dir);
  t = await startTestServer({ dir, toml: caxtonToml(), agentFiles });
});

afterAll(async () => {
  await t?.close();
  await killChildren();
  removeTempDirs();
});

async function invoke(name: string, request: string): Promise<{ status: number; body: { content: string } }> {
  const res = await fetch(`${t.url}/api/v1/agents/${name}/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ request }),
  });
  return { status: res.status, body: (await res.json()) as { content: string } };
}

describe('mounted MCP servers in a running Caxton', () => {
  it('an agent allowed everything.* calls the MCP tool; the call is audited', async () => {
    const r = await invoke('helper', 'echo ping');
    expect(r.status).toBe(200);
    expect(r.body.content).toBe('The tool said: Echo: echo ping');
    const { value } = await waitUntil(
      async () => {
        const recs = await t.server.toolAudit.find({ tool: 'everything.*' });
        return recs.length > 0 && recs;
      },
      { what: 'an audit record' },
    );
    expect(value[0]).toMatchObject({ agent: 'helper', server: 'everything', tool: 'everything.echo', outcome: 'ok' });
    expect(value[0]!.execution_id).toMatch(/^exec_/);
  });

  it('an agent in a worker thread calls it too, over the host-call bridge', async () => {
    const r = await invoke('isolated', 'echo from a worker');
    expect(r.status).toBe(200);
    expect(r.body.content).toBe('The tool said: Echo: echo from a worker');
  });

  it('an agent without it in its allowlist is refused, and the tool is not run', async () => {
    const before = (await t.server.toolAudit.find({ tool: 'everything.*' })).length;
    const r = await invoke('locked', 'echo ping');
    expect(r.status).toBe(200);
    expect(r.body.content).toContain('tool "everything.echo" is not allowed for agent "locked"');
    // The refusal is audited (outcome not_allowed); no call of the tool is.
    const after = await t.server.toolAudit.find({ tool: 'everything.*' });
    expect(after.length).toBe(before + 1);
    expect(after[0]).toMatchObject({ agent: 'locked', tool: 'everything.echo', outcome: 'not_allowed' });
  });

  it('GET /api/v1/mcp/servers shows each server with state, tool count and last error', async () => {
    const res = await fetch(`${t.url}/api/v1/mcp/servers`);
    expect(res.status).toBe(200);
    const { servers } = (await res.json()) as {
      servers: { name: string; state: string; tools: number; last_error: string | null }[];
    };
    expect(servers.map((s) => s.name)).toEqual(['broken', 'everything']);
    expect(servers[0]).toMatchObject({ name: 'broken', tools: 0 });
    expect(['failed', 'reconnecting']).toContain(servers[0]!.state);
    expect(servers[0]!.last_error).toMatch(/ENOENT/);
    expect(servers[1]).toMatchObject({ name: 'everything', state: 'ready', last_error: null });
    expect(servers[1]!.tools).toBeGreaterThan(5);
    const doc = (await (await fetch(`${t.url}/api/v1/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/v1/mcp/servers', '/mcp']));
  });
});

describe('Caxton served over Streamable HTTP at /mcp', () => {
  let client: Client;
  beforeAll(async () => {
    client = new Client({ name: 'vitest', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`)));
  });
  afterAll(async () => {
    await client?.close();
  });

  it('lists the chosen built-ins, the host tools (mounted MCP tools included) and ask_<agent>', async () => {
    const { tools } = await client.listTools();
    const names = tools.map((x) => x.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'calculator',
        'current_time',
        'send_message',
        'everything.echo',
        'ask_helper',
        'ask_locked',
        'ask_isolated',
      ]),
    );
    expect(names).not.toContain('llm.chat');
    const ask = tools.find((x) => x.name === 'ask_helper')!;
    expect(ask.inputSchema).toMatchObject({ type: 'object', required: ['request'] });
    expect(ask.description).toContain('MCP test agent helper');
    expect(client.getServerVersion()?.name).toBe('caxton');
  });

  it('calls a built-in, a mounted MCP tool and an agent', async () => {
    expect(await client.callTool({ name: 'calculator', arguments: { expression: '6 * 7' } })).toMatchObject({
      content: [{ type: 'text', text: '42' }],
    });
    expect(await client.callTool({ name: 'everything.echo', arguments: { message: 'relayed' } })).toMatchObject({
      content: [{ type: 'text', text: 'Echo: relayed' }],
    });
    const asked = await client.callTool({ name: 'ask_helper', arguments: { request: 'echo from MCP' } });
    expect(asked).toMatchObject({
      content: [{ type: 'text', text: 'The tool said: Echo: echo from MCP' }],
      structuredContent: { agent: 'helper', finish_reason: 'stop' },
    });
    expect(asked.isError).toBeFalsy();
  });

  it("continues a trace context given in the call's _meta", async () => {
    const traceparent = '00-5555555555555555555555555555aaaa-6666666666666666-01';
    const asked = await client.callTool({
      name: 'ask_helper',
      arguments: { request: 'echo traced' },
      _meta: { traceparent },
    });
    expect(asked.isError).toBeFalsy();
    // The execution it started records the trace (agent event store, performance event).
    const { value: events } = await waitUntil(
      async () => {
        const r = (await (await fetch(`${t.url}/api/v1/events?type=execution.finished&agent=helper`)).json()) as {
          events: { trace_id: string | null }[];
        };
        const hit = r.events.filter((e) => e.trace_id === '5555555555555555555555555555aaaa');
        return hit.length > 0 && hit;
      },
      { timeoutMs: 5000, what: 'the traced execution event' },
    );
    expect(events.length).toBe(1);
  });

  it('answers an unknown tool with JSON-RPC -32602, and bad arguments or failures with isError results', async () => {
    const unknown = await rpcError(client.callTool({ name: 'llm.chat', arguments: {} }));
    expect(unknown.code).toBe(ErrorCode.InvalidParams);
    expect(unknown.message).toContain('Unknown tool: "llm.chat" is not offered by this Caxton server');
    expect((await rpcError(client.callTool({ name: 'ask_nobody', arguments: { request: 'x' } }))).code).toBe(
      ErrorCode.InvalidParams,
    );
    // On the wire the message is plain, as the SDK's own errors are (no "MCP error -32602: " inside it: clients add that).
    const raw = await fetch(`${t.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-06-18',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'llm.chat', arguments: {} },
      }),
    });
    const data = (await raw.text()).split('\n').find((l) => l.startsWith('data: '));
    expect(JSON.parse(data!.slice('data: '.length))).toMatchObject({
      id: 7,
      error: { code: -32602, message: expect.stringMatching(/^Unknown tool: "llm\.chat"/) },
    });
    expect(await client.callTool({ name: 'ask_helper', arguments: {} })).toMatchObject({
      isError: true,
      content: [{ text: '"request" must be a non-empty string' }],
    });
  });

  it('advertises prompts, resources and logging, but no listChanged over stateless HTTP', async () => {
    const caps = client.getServerCapabilities()!;
    expect(caps).toMatchObject({ tools: {}, prompts: {}, resources: {}, logging: {} });
    expect(caps.tools!.listChanged).toBeUndefined();
    expect(caps.prompts!.listChanged).toBeUndefined();
    expect(caps.resources!.listChanged).toBeUndefined();
  });

  it('accepts logging/setLevel (and refuses a level that does not exist)', async () => {
    await expect(client.setLoggingLevel('warning')).resolves.toEqual({});
    // Refused by the SDK's own request validation, which answers -32603 rather than -32602 (SDK 1.32).
    await rpcError(client.setLoggingLevel('loud' as 'info'));
  });

  it('offers each agent as a prompt: request plus its declared parameters', async () => {
    const { prompts } = await client.listPrompts();
    expect(prompts.map((p) => p.name)).toEqual(['helper', 'isolated', 'locked', 'writer']);
    const writer = prompts.find((p) => p.name === 'writer')!;
    expect(writer.description).toBe('MCP test agent writer');
    expect(writer.arguments).toEqual([
      { name: 'request', description: 'What to ask the agent', required: true },
      { name: 'tone', description: 'Agent parameter {{parameters.tone}} (default: "plain")', required: false },
      {
        name: 'audience',
        description: 'Agent parameter {{parameters.audience}} (default: "engineers")',
        required: false,
      },
    ]);
    expect(prompts.find((p) => p.name === 'helper')!.arguments).toEqual([
      { name: 'request', description: 'What to ask the agent', required: true },
    ]);

    const got = await client.getPrompt({ name: 'writer', arguments: { request: 'release notes', tone: 'cheerful' } });
    expect(got.messages).toEqual([
      { role: 'user', content: { type: 'text', text: 'You are writer.' } },
      { role: 'user', content: { type: 'text', text: 'Write for engineers in a cheerful tone: release notes' } },
    ]);
  });

  it('refuses an unknown prompt, a missing request and an undeclared argument with -32602', async () => {
    const none = await rpcError(client.getPrompt({ name: 'nobody', arguments: { request: 'x' } }));
    expect(none.code).toBe(ErrorCode.InvalidParams);
    expect(none.message).toContain('prompt "nobody" is not offered');
    const missing = await rpcError(client.getPrompt({ name: 'writer', arguments: {} }));
    expect(missing.message).toContain('argument "request" is required');
    const extra = await rpcError(client.getPrompt({ name: 'writer', arguments: { request: 'x', colour: 'red' } }));
    expect(extra.message).toContain(
      'argument "colour" is not a parameter of the agent "writer" (it takes: request, tone, audience)',
    );
  });

  it('offers agent definitions as resources, with a template', async () => {
    const { resources } = await client.listResources();
    expect(resources.map((r) => r.uri)).toEqual([
      'caxton://agents/helper',
      'caxton://agents/isolated',
      'caxton://agents/locked',
      'caxton://agents/writer',
    ]);
    expect(resources[0]).toMatchObject({ mimeType: 'application/json', description: 'MCP test agent helper' });
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((x) => x.uriTemplate)).toEqual([
      'caxton://agents/{name}',
      'caxton://conversations/{id}',
      'caxton://memory/{scope}/{name}',
    ]);
    expect(resourceTemplates.every((x) => x.mimeType === 'application/json')).toBe(true);

    const read = await client.readResource({ uri: 'caxton://agents/writer' });
    expect(read.contents).toHaveLength(1);
    const body = JSON.parse((read.contents[0] as { text: string }).text) as {
      definition: { name: string; parameters: Record<string, unknown> };
      revision: number;
    };
    expect(body.definition).toMatchObject({ name: 'writer', parameters: { tone: 'plain', audience: 'engineers' } });
    expect(body.revision).toBeGreaterThanOrEqual(1);

    const missing = await rpcError(client.readResource({ uri: 'caxton://agents/nobody' }));
    expect(missing.code).toBe(-32002);
    expect((await rpcError(client.readResource({ uri: 'file:///etc/passwd' }))).code).toBe(-32002);
    expect((await rpcError(client.listResources({ cursor: 'not-a-cursor' }))).code).toBe(ErrorCode.InvalidParams);
  });

  it('offers a conversation as a resource: listed after the agents, read as its messages in order', async () => {
    const sent = await fetch(`${t.url}/api/v1/messages?wait=20`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ performative: 'request', receiver: 'helper', content: 'hello over the bus' }),
    });
    expect(sent.status).toBe(200);
    const { conversation_id: id } = (await sent.json()) as { conversation_id: string };
    const uri = `caxton://conversations/${encodeURIComponent(id)}`;
    const { resources } = await client.listResources();
    expect(resources.map((r) => r.uri)).toContain(uri);
    expect(resources.find((r) => r.uri === uri)).toMatchObject({
      mimeType: 'application/json',
      title: `Conversation ${id} (completed)`,
    });

    const read = await client.readResource({ uri });
    const body = JSON.parse((read.contents[0] as { text: string }).text) as {
      conversation: { id: string; state: string };
      messages: { performative: string; sender: string; receivers: string[]; timestamp: string; content: unknown }[];
    };
    expect(body.conversation).toMatchObject({ id, state: 'completed' });
    expect(body.messages.map((m) => [m.performative, m.sender, m.receivers])).toEqual([
      ['request', 'user', ['helper']],
      ['agree', 'helper', ['user']],
      ['inform', 'helper', ['user']],
    ]);
    expect(body.messages[0]!.content).toBe('hello over the bus');
    expect(body.messages[2]!.content).toMatch(/^You said: .*hello over the bus/s);
    expect(body.messages.every((m) => !Number.isNaN(Date.parse(m.timestamp)))).toBe(true);
    expect((await rpcError(client.readResource({ uri: 'caxton://conversations/conv_nope' }))).code).toBe(-32002);
  });

  it('offers memory entities through the template (entity, observations, relations); not listed', async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${t.url}/api/v1/memory${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect(
      (
        await post('/entities', {
          scope: 'workspace',
          entities: [
            { name: 'Ada Lovelace', entityType: 'person', observations: ['wrote the first program'] },
            { name: 'Analytical Engine', entityType: 'machine', observations: [] },
          ],
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await post('/relations', {
          scope: 'workspace',
          relations: [{ from: 'Ada Lovelace', to: 'Analytical Engine', relationType: 'programmed' }],
        })
      ).status,
    ).toBe(201);

    const read = await client.readResource({ uri: 'caxton://memory/workspace/Ada%20Lovelace' });
    expect(read.contents[0]).toMatchObject({
      uri: 'caxton://memory/workspace/Ada%20Lovelace',
      mimeType: 'application/json',
    });
    const body = JSON.parse((read.contents[0] as { text: string }).text) as {
      entity: Record<string, unknown>;
      relations: unknown[];
    };
    expect(body.entity).toMatchObject({
      scope: 'workspace',
      name: 'Ada Lovelace',
      entityType: 'person',
      observations: ['wrote the first program'],
    });
    expect(body.relations).toEqual([
      { scope: 'workspace', from: 'Ada Lovelace', to: 'Analytical Engine', relationType: 'programmed' },
    ]);
    expect((await client.listResources()).resources.some((r) => r.uri.startsWith('caxton://memory/'))).toBe(false);
    expect((await rpcError(client.readResource({ uri: 'caxton://memory/global/Ada%20Lovelace' }))).code).toBe(-32002);
    expect((await rpcError(client.readResource({ uri: 'caxton://memory/nowhere/Ada' }))).code).toBe(
      ErrorCode.InvalidParams,
    );
  });

  it('sends progress while ask_<agent> runs when the client gave a progress token', async () => {
    const seen: Progress[] = [];
    const asked = await client.callTool(
      { name: 'ask_helper', arguments: { request: 'echo with progress' } },
      undefined,
      { onprogress: (p) => seen.push(p) },
    );
    expect(asked).toMatchObject({ content: [{ text: 'The tool said: Echo: echo with progress' }] });
    expect(seen.map((p) => p.message)).toEqual([
      'turn 1: calling everything.echo',
      expect.stringMatching(/^everything\.echo answered \(\d+ ms\)$/),
    ]);
    expect(seen.map((p) => p.progress)).toEqual([1, 2]);
  });

  it('GET and DELETE /mcp answer 405 (stateless endpoint); a foreign browser Origin is refused', async () => {
    expect((await fetch(`${t.url}/mcp`)).status).toBe(405);
    expect((await fetch(`${t.url}/mcp`, { method: 'DELETE' })).status).toBe(405);
    const res = await fetch(`${t.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        origin: 'http://evil.example',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    expect(res.status).toBe(403);
  });
});

describe('the MCP Inspector CLI against /mcp', () => {
  it('lists tools and calls one', async () => {
    const list = await run(
      process.execPath,
      [INSPECTOR, '--cli', `${t.url}/mcp`, '--transport', 'http', '--method', 'tools/list'],
      { timeoutMs: 60_000 },
    );
    expect(list.code, list.stderr).toBe(0);
    const names = (JSON.parse(list.stdout) as { tools: { name: string }[] }).tools.map((x) => x.name);
    expect(names).toEqual(expect.arrayContaining(['calculator', 'everything.echo', 'ask_helper']));

    const call = await run(
      process.execPath,
      [
        INSPECTOR,
        '--cli',
        `${t.url}/mcp`,
        '--transport',
        'http',
        '--method',
        'tools/call',
        '--tool-name',
        'ask_helper',
        '--tool-arg',
        'request=echo inspected',
      ],
      { timeoutMs: 60_000 },
    );
    expect(call.code, call.stderr).toBe(0);
    expect(JSON.parse(call.stdout)).toMatchObject({
      content: [{ type: 'text', text: 'The tool said: Echo: echo inspected' }],
    });
  });
});
