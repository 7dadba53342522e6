/**
 * TOML agents with Claude Code permission rules on a real server (its own SQLite, durable runs,
 * a real stdio MCP server mounted as `mini`, the strict OpenAI stand-in as the model):
 * `permission_mode = "plan"` refuses a write; `disallowed_tools` and the workspace's deny rules
 * (`mcp__mini__shout`, `WebFetch(domain:127.0.0.1)`) refuse their calls in context and worker
 * isolation while the other tools run; a rule in `require_approval` stops the run for a person;
 * every refusal is in the tool audit as denied; and Caxton's own MCP endpoint refuses the denied
 * MCP tool too, under the same rule.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../mcp/helpers.js';
import { openaiProvider, removeTempDirs, setTestKeys, startCaxton, tempDir, type Caxton } from './helpers/caxton.js';
import { startLlmStub, type LlmStub, type StubHit } from './helpers/llm-stub.js';
import { toolResultsOf } from './helpers/wire.js';
import { waitUntil } from '../helpers/wait.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const MINI = join(repoRoot, 'test/mcp/fixtures/mini-server.mjs');

/** What each agent's model does, told apart by its system prompt: its calls, then the results joined. */
const CALLS: Record<string, { tool: string; arguments: Record<string, unknown> }[]> = {
  'Plan only.': [{ tool: 'workspace.write', arguments: { file_path: 'notes.txt', content: 'x' } }],
  'Use the tools.': [
    { tool: 'mini.count.words', arguments: { text: 'one two three' } },
    { tool: 'mini.shout', arguments: { text: 'hello' } },
    { tool: 'mini.get-length', arguments: { text: 'hello' } },
    { tool: 'web.fetch', arguments: { url: 'http://127.0.0.1:9/page', prompt: 'x' } },
  ],
  'Fetch it.': [{ tool: 'web.fetch', arguments: { url: 'http://localhost:9/page', prompt: 'x' } }],
  'Fetch for the operator.': [{ tool: 'web.fetch', arguments: { url: 'http://localhost:9/op', prompt: 'x' } }],
};

function script(hit: StubHit) {
  const system = (hit.body.messages as { role: string; content: string }[]).find((m) => m.role === 'system')!.content;
  const calls = Object.entries(CALLS).find(([prompt]) => system.includes(prompt))![1];
  const results = toolResultsOf(hit);
  if (results.length > 0) return { content: results.map((r) => r.content).join('\n---\n') };
  const wire = (hit.body.tools as { function: { name: string } }[]).map((t) => t.function.name);
  // The wire name of a Caxton tool: dots and dashes may be spelled otherwise for the API.
  const named = (tool: string) => wire.find((n) => n.replace(/[^a-z]/g, '') === tool.replace(/[^a-z]/g, ''))!;
  return { tool_calls: calls.map((c, i) => ({ id: `c${i}`, name: named(c.tool), arguments: c.arguments })) };
}

let stub: LlmStub;
let cx: Caxton;

async function deploy(toml: string): Promise<void> {
  const r = await fetch(`${cx.url}/api/v1/agents`, {
    method: 'POST',
    headers: { 'content-type': 'application/toml' },
    body: toml,
  });
  expect(r.status, await r.text()).toBe(201);
}

async function audit(agent: string, execution: string): Promise<Json[]> {
  const r = await fetch(`${cx.url}/api/v1/tools/audit?agent=${encodeURIComponent(agent)}&limit=50`);
  return ((await r.json()) as Json).records.filter((x: Json) => x.execution_id === execution);
}

beforeAll(async () => {
  setTestKeys();
  stub = await startLlmStub(script);
  const ws = tempDir('caxton-ws-');
  mkdirSync(ws, { recursive: true });
  cx = await startCaxton({
    config: {
      llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } },
      tools: { http_client: { allowed_hosts: ['127.0.0.1', 'localhost'] } },
      workspace: {
        path: ws,
        write: true,
        permissions: { deny: ['mcp__mini__shout', 'WebFetch(domain:127.0.0.1)'] },
      },
      mcp_servers: { mini: { command: process.execPath, args: [MINI] } },
      approvals: { rules: [{ tools: ['WebFetch(domain:localhost)'], agents: ['fetcher-op'] }] },
    },
  });
  await cx.server.tools.ready;
  await deploy(
    'name = "planner"\ncapabilities = ["planning"]\nsystem_prompt = "Plan only."\ntools = ["Read", "Write"]\npermission_mode = "plan"\n',
  );
  for (const isolation of ['context', 'worker'])
    await deploy(
      `name = "user-${isolation}"
capabilities = ["using"]
system_prompt = "Use the tools."
tools = ["mcp__mini", "WebFetch"]
disallowed_tools = ["mcp__mini__get-length"]

[execution]
isolation = "${isolation}"
`,
    );
  await deploy(
    'name = "fetcher"\ncapabilities = ["fetching"]\nsystem_prompt = "Fetch it."\ntools = ["WebFetch"]\n\n[execution]\nrequire_approval = ["WebFetch(domain:localhost)"]\n',
  );
  await deploy(
    'name = "fetcher-op"\ncapabilities = ["fetching"]\nsystem_prompt = "Fetch for the operator."\ntools = ["WebFetch"]\n',
  );
}, 60_000);

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

describe('a TOML agent with permission rules', () => {
  it('permission_mode = "plan" refuses a write, and the audit says denied', async () => {
    const r = await cx.invoke('planner', { request: 'note it' });
    expect(r.status, r.text).toBe(200);
    const body = r.json as Json;
    expect(body.content).toBe(
      'Error: Permission to use Write has been denied: the agent is in plan mode (permissionMode: plan), where only tools that read may run.',
    );
    const records = await audit('planner', body.execution_id);
    expect(records.map((x) => [x.server, x.tool, x.outcome])).toEqual([['workspace', 'workspace.write', 'denied']]);
  });

  for (const isolation of ['context', 'worker'])
    it(`${isolation}: deny rules refuse their calls, the others run, each refusal audited`, async () => {
      const agent = `user-${isolation}`;
      const r = await cx.invoke(agent, { request: 'go' });
      expect(r.status, r.text).toBe(200);
      const body = r.json as Json;
      const [words, shout, length, fetched] = (body.content as string).split('\n---\n');
      expect(words).toBe('3 words');
      expect(shout).toBe(
        'Error: Permission to use mini.shout has been denied: the rule "mcp__mini__shout" (caxton.toml [workspace.permissions] deny) refuses this call.',
      );
      expect(length).toBe(
        `Error: Permission to use mini.get-length has been denied: the rule "mcp__mini__get-length" (agent ${agent} disallowed_tools) refuses this call.`,
      );
      expect(fetched).toBe(
        'Error: Permission to use WebFetch has been denied: the rule "WebFetch(domain:127.0.0.1)" (caxton.toml [workspace.permissions] deny) refuses this call.',
      );
      // A worker reports its refusals to the server as they happen: wait for the four.
      await waitUntil(async () => (await audit(agent, body.execution_id)).length >= 4, {
        what: 'four tool audit records',
      });
      const records = await audit(agent, body.execution_id);
      expect(records.map((x) => [x.server, x.tool, x.outcome]).sort()).toEqual(
        [
          ['mini', 'mini.count.words', 'ok'],
          ['mini', 'mini.shout', 'denied'],
          ['mini', 'mini.get-length', 'denied'],
          ['web', 'web.fetch', 'denied'],
        ].sort(),
      );
    });

  it('a rule in require_approval stops the run for a person', async () => {
    const r = await cx.invoke('fetcher', { request: 'fetch' });
    expect(r.status, r.text).toBe(202);
    expect((r.json as Json).error).toMatchObject({
      code: 'awaiting_approval',
      details: { tool: 'web.fetch', arguments: { url: 'http://localhost:9/page', prompt: 'x' } },
    });
  });
});

describe("the operator's [[approvals.rules]]", () => {
  it('a Claude Code rule among its tools stops the agents it names for a person', async () => {
    const r = await cx.invoke('fetcher-op', { request: 'fetch' });
    expect(r.status, r.text).toBe(202);
    expect((r.json as Json).error).toMatchObject({
      code: 'awaiting_approval',
      details: { tool: 'web.fetch', arguments: { url: 'http://localhost:9/op', prompt: 'x' } },
    });
  });
});

describe("Caxton's MCP endpoint", () => {
  it('refuses a tool a workspace deny rule names, under the same rule, and audits it as denied', async () => {
    const client = new Client({ name: 'perm-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${cx.url}/mcp`)));
    try {
      const shout = await client.callTool({ name: 'mini.shout', arguments: { text: 'hello' } });
      expect(shout).toMatchObject({
        isError: true,
        content: [
          {
            type: 'text',
            text: 'Permission to use mini.shout has been denied: the rule "mcp__mini__shout" (caxton.toml [workspace.permissions] deny) refuses this call.',
          },
        ],
      });
      const words = await client.callTool({ name: 'mini.count.words', arguments: { text: 'a b' } });
      expect(words).toMatchObject({ content: [{ type: 'text', text: '2 words' }] });
    } finally {
      await client.close();
    }
    const r = await fetch(`${cx.url}/api/v1/tools/audit?server=mini&limit=50`);
    const records = ((await r.json()) as Json).records as Json[];
    expect(records.filter((x) => x.agent.startsWith('mcp')).map((x) => [x.tool, x.outcome])).toEqual(
      expect.arrayContaining([
        ['mini.shout', 'denied'],
        ['mini.count.words', 'ok'],
      ]),
    );
  });
});
