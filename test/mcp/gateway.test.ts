/**
 * Caxton's /mcp as a gateway to a mounted server (`[mcp_servers.NAME] gateway = true`,
 * src/mcp/gateway.ts): the server's tools under their own names with results and progress passed
 * through, its prompts, resources, templates and completions beside Caxton's, Caxton's own names
 * winning a collision, the caller's tool scope deciding by the Caxton name `NAME.tool`, and the
 * configured secrets scrubbed from everything passed through. A real server with authentication,
 * API keys, the MCP SDK client, and the conformance fixture server as the mounted server.
 */
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Progress } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { repoRoot } from './helpers.js';

const EVERYTHING = join(repoRoot, 'test/mcp/conformance/everything-server.mjs');
/** Passed to the mounted server's environment under a secret-looking name: Caxton scrubs it everywhere. */
const SECRET = 'gw-secret-4f9a2c71';
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';

let srv: TestServer;
let admin: string;
const as = bearer;

const keyFor = (name: string, body: Record<string, unknown>) => createKey(srv.url, admin, name, body);

async function withClient<T>(key: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ name: 'gateway-test', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), { requestInit: { headers: as(key) } }),
  );
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as { code: number; message: string },
  );

async function metric(tool: string, via: string): Promise<number> {
  for (const line of (await srv.server.metrics.registry.metrics()).split('\n'))
    if (line.startsWith('caxton_tool_calls_total{') && line.includes(`tool="${tool}"`) && line.includes(`via="${via}"`))
      return Number(line.slice(line.lastIndexOf(' ') + 1));
  return 0;
}

beforeAll(async () => {
  srv = await startTestServer({
    toml: `
[auth]
enabled = true

[mcp_servers.everything]
command = ${JSON.stringify(process.execPath)}
args = [${JSON.stringify(EVERYTHING)}]
env = { API_TOKEN = "${SECRET}" }
gateway = true
`,
    agentFiles: { 'helper.toml': 'name = "helper"\ndescription = "Helps"\nsystem_prompt = "Help."\n' },
  });
  admin = adminKeyOf(srv.dataDir);
});

afterAll(async () => {
  await srv?.close();
  removeTempDirs();
});

describe('the gateway: tools', () => {
  it('offers the mounted tools under their own names, and Caxton keeps its own name in a collision', async () => {
    await withClient(admin, async (c) => {
      const tools = (await c.listTools()).tools;
      const names = tools.map((t) => t.name);
      expect(names).toContain('test_simple_text');
      expect(names).toContain('ask_helper');
      // Not also as host tools NAME.tool: one name per tool at /mcp.
      expect(names.filter((n) => n.startsWith('everything.'))).toEqual([]);
      // The built-in calculator wins the fixture's calculator.
      expect(names.filter((n) => n === 'calculator')).toHaveLength(1);
      expect(tools.find((t) => t.name === 'calculator')!.description).not.toContain('fixture');
      const calc = await c.callTool({ name: 'calculator', arguments: { expression: '6 * 7' } });
      expect(JSON.stringify(calc.content)).toContain('42');
      // The server's own schema as it wrote it (JSON Schema 2020-12 keywords kept).
      expect(tools.find((t) => t.name === 'json_schema_2020_12_tool')!.inputSchema).toMatchObject({
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        $defs: { address: {} },
        additionalProperties: false,
      });
    });
  });

  it('passes results through unchanged (image, embedded resource, isError) and forwards progress with the client’s token', async () => {
    await withClient(admin, async (c) => {
      expect(await c.callTool({ name: 'test_image_content' })).toMatchObject({
        content: [{ type: 'image', data: PNG, mimeType: 'image/png' }],
      });
      expect(await c.callTool({ name: 'test_embedded_resource' })).toMatchObject({
        content: [
          {
            type: 'resource',
            resource: { uri: 'test://embedded-resource', text: 'This is an embedded resource content.' },
          },
        ],
      });
      expect(await c.callTool({ name: 'test_error_handling' })).toMatchObject({
        isError: true,
        content: [{ text: 'This tool intentionally returns an error for testing' }],
      });
      const seen: Progress[] = [];
      await c.callTool({ name: 'test_tool_with_progress' }, undefined, { onprogress: (p) => seen.push(p) });
      expect(seen).toEqual([
        { progress: 0, total: 100 },
        { progress: 50, total: 100 },
        { progress: 100, total: 100 },
      ]);
    });
  });

  it('counts and names a gateway call by its Caxton name (caxton_tool_calls_total{via="mcp"})', async () => {
    const before = await metric('everything.test_simple_text', 'mcp');
    await withClient(admin, (c) => c.callTool({ name: 'test_simple_text' }));
    expect(await metric('everything.test_simple_text', 'mcp')).toBe(before + 1);
    // Agents and the REST catalogue still see the host tool everything.test_simple_text.
    const listed = await http<{ servers: { name: string; tools: { name: string }[] }[] }>(
      srv.url,
      'GET',
      '/api/v1/tools',
      { headers: as(admin) },
    );
    expect(JSON.stringify(listed.json)).toContain('everything.test_simple_text');
  });
});

describe('the gateway: prompts, resources, completions', () => {
  it("lists the server's prompts after the agents', and gets them from the server", async () => {
    await withClient(admin, async (c) => {
      const names = (await c.listPrompts()).prompts.map((p) => p.name);
      expect(names[0]).toBe('helper');
      expect(names.slice(1)).toEqual([
        'test_simple_prompt',
        'test_prompt_with_arguments',
        'test_prompt_with_embedded_resource',
        'test_prompt_with_image',
      ]);
      const got = await c.getPrompt({ name: 'test_prompt_with_arguments', arguments: { arg1: 'a', arg2: 'b' } });
      expect(got.messages).toEqual([
        { role: 'user', content: { type: 'text', text: "Prompt with arguments: arg1='a', arg2='b'" } },
      ]);
      // Caxton's own prompt is still Caxton's.
      expect((await c.getPrompt({ name: 'helper', arguments: { request: 'hi' } })).messages[0]!.content).toMatchObject({
        text: 'Help.',
      });
      await expect(c.getPrompt({ name: 'no_such_prompt' })).rejects.toMatchObject({ code: -32602 });
    });
  });

  it("lists the server's resources and templates after Caxton's, reads them and completes arguments", async () => {
    await withClient(admin, async (c) => {
      const uris = (await c.listResources()).resources.map((r) => r.uri);
      expect(uris[0]).toBe('caxton://agents/helper');
      expect(uris).toEqual(expect.arrayContaining(['test://static-text', 'test://static-binary']));
      const templates = (await c.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
      expect(templates).toEqual(expect.arrayContaining(['caxton://agents/{name}', 'test://template/{id}/data']));
      expect(await c.readResource({ uri: 'test://static-binary' })).toEqual({
        contents: [{ uri: 'test://static-binary', mimeType: 'image/png', blob: PNG }],
      });
      const t = await c.readResource({ uri: 'test://template/123/data' });
      expect(JSON.parse((t.contents[0] as { text: string }).text)).toEqual({
        id: '123',
        templateTest: true,
        data: 'Data for ID: 123',
      });
      // Neither listed nor matched by a template: not found, without asking the server.
      expect(await failure(c.readResource({ uri: 'test://nothing-here' }))).toMatchObject({ code: -32002 });
      const done = await c.complete({
        ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' },
        argument: { name: 'arg1', value: 't' },
      });
      expect(done.completion.values).toEqual(['test-completion']);
      // Caxton's own prompts have nothing to complete.
      expect(
        (await c.complete({ ref: { type: 'ref/prompt', name: 'helper' }, argument: { name: 'request', value: 'x' } }))
          .completion.values,
      ).toEqual([]);
    });
  });

  it('scrubs the configured secrets from what it passes through (tool results, prompts, resources)', async () => {
    await withClient(admin, async (c) => {
      const echoed = JSON.stringify(
        await c.callTool({ name: 'json_schema_2020_12_tool', arguments: { name: SECRET } }),
      );
      expect(echoed).not.toContain(SECRET);
      expect(echoed).toContain('***');
      const prompt = JSON.stringify(
        await c.getPrompt({ name: 'test_prompt_with_arguments', arguments: { arg1: SECRET, arg2: 'b' } }),
      );
      expect(prompt).not.toContain(SECRET);
      expect(prompt).toContain("arg1='***'");
      const read = JSON.stringify(await c.readResource({ uri: `test://template/${SECRET}/data` }));
      expect(read).not.toContain(SECRET);
    });
  });
});

describe('the gateway under API keys', () => {
  it('a key whose tool scope leaves the server out sees none of it and may not call it', async () => {
    const key = await keyFor('gw-calculator-only', { role: 'developer', tools: ['calculator'] });
    await withClient(key, async (c) => {
      expect((await c.listTools()).tools.map((t) => t.name)).not.toContain('test_simple_text');
      expect((await c.listPrompts()).prompts.map((p) => p.name)).not.toContain('test_simple_prompt');
      expect((await c.listResources()).resources.map((r) => r.uri)).not.toContain('test://static-text');
      expect((await c.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate)).not.toContain(
        'test://template/{id}/data',
      );
      expect(await failure(c.readResource({ uri: 'test://static-text' }))).toMatchObject({ code: -32002 });
      expect(await failure(c.getPrompt({ name: 'test_simple_prompt' }))).toMatchObject({ code: -32602 });
      const refused = await c.callTool({ name: 'test_simple_text' });
      expect(refused.isError).toBe(true);
      expect(JSON.stringify(refused.content)).toContain('everything.test_simple_text');
    });
    // An invoker (no tools:call) sees no gateway tools, prompts or resources at all.
    const invoker = await keyFor('gw-invoker', { role: 'invoker' });
    await withClient(invoker, async (c) => {
      expect((await c.listTools()).tools.map((t) => t.name)).toEqual(['ask_helper']);
      expect((await c.listPrompts()).prompts.map((p) => p.name)).toEqual(['helper']);
    });
  });

  it('a key scoped to one tool of the server calls it but sees no prompts or resources (they need NAME.*)', async () => {
    const key = await keyFor('gw-one-tool', { role: 'developer', tools: ['everything.test_simple_text'] });
    await withClient(key, async (c) => {
      expect((await c.listTools()).tools.map((t) => t.name)).toContain('test_simple_text');
      expect(await c.callTool({ name: 'test_simple_text' })).toMatchObject({
        content: [{ type: 'text', text: 'This is a simple text response for testing.' }],
      });
      expect((await c.listPrompts()).prompts.map((p) => p.name)).not.toContain('test_simple_prompt');
    });
    const all = await keyFor('gw-whole-server', { role: 'developer', tools: ['everything.*'] });
    await withClient(all, async (c) => {
      expect((await c.listPrompts()).prompts.map((p) => p.name)).toContain('test_simple_prompt');
      expect((await c.readResource({ uri: 'test://static-text' })).contents[0]).toMatchObject({
        text: 'This is the content of the static text resource.',
      });
    });
  });
});
