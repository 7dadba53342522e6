/**
 * Every tool source is one catalogue, through a real server (startTestServer,
 * HTTP on 127.0.0.1) with server-everything mounted as `everything` (a stdio child) and a broken
 * MCP server: REST lists and calls an MCP tool and `calculator`; the compiled CLI (`caxton tool
 * list|show|call`, `caxton status`) against the same server; caxton_tool_calls_total counts the
 * calls with `via`.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, parseJson, runCli } from '../cli/helpers/cli.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { waitUntil } from '../helpers/wait.js';
import { caxtonToml, killChildren, writeFixture } from '../mcp/helpers.js';

let t: TestServer;

beforeAll(async () => {
  assertBuilt();
  const dir = makeTempDir('caxton-catalogue-');
  writeFixture(dir);
  // [mcp] host_tools: the mounted server's tools are offered over /mcp too (the via="mcp" path).
  t = await startTestServer({ dir, toml: caxtonToml('\n[mcp]\nhost_tools = ["everything.*"]\n') });
});

afterAll(async () => {
  await t?.close();
  await killChildren();
  removeTempDirs();
});

interface Source {
  name: string;
  kind: string;
  state: string;
  origin: string;
  error: string | null;
  tools: string[];
  mcp?: { state: string; last_error: string | null; reconnects: number; attempts: number; transport: string };
}

async function get<T>(path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${t.url}${path}`);
  return { status: res.status, body: (await res.json()) as T };
}

async function call(
  server: string,
  tool: string,
  args: Record<string, unknown>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${t.url}/api/v1/tools/${server}/${tool}/call`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ args }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const cli = (args: string[]) => runCli(['--server', t.url, ...args], { cwd: t.dir, timeoutMs: 30_000 });

async function metricValue(labels: Record<string, string>): Promise<number> {
  const text = await t.server.metrics.registry.metrics();
  for (const line of text.split('\n')) {
    if (!line.startsWith('caxton_tool_calls_total{')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

describe('GET /api/v1/tools: every source with its kind and state', () => {
  it('lists the MCP servers, the built-in group and the host group beside the tool servers', async () => {
    const { status, body } = await get<{ servers: Source[] }>('/api/v1/tools');
    expect(status).toBe(200);
    const by = new Map(body.servers.map((s) => [s.name, s]));
    expect(by.get('everything')).toMatchObject({ kind: 'mcp', state: 'ready', origin: 'config', error: null });
    expect(by.get('everything')!.tools).toContain('everything.echo');
    // It retries with backoff (500 ms, doubling): between attempts it is failed, during one reconnecting.
    expect(by.get('broken')).toMatchObject({ kind: 'mcp' });
    expect(['failed', 'reconnecting']).toContain(by.get('broken')!.state);
    expect(by.get('broken')!.error).toMatch(/connecting failed/);
    expect(by.get('builtin')).toMatchObject({ kind: 'builtin', state: 'loaded' });
    expect(by.get('builtin')!.tools).toEqual(expect.arrayContaining(['calculator', 'current_time', 'llm.chat']));
    expect(by.get('host')).toMatchObject({ kind: 'host', state: 'loaded' });
    expect(by.get('host')!.tools).toContain('send_message');
    // The host group holds only the host's own tools, not those of MCP servers.
    expect(by.get('host')!.tools.some((n) => n.startsWith('everything.'))).toBe(false);
    for (const s of body.servers) expect(['wasm', 'javascript', 'mcp', 'builtin', 'host']).toContain(s.kind);
  });

  it('shows an MCP server: its tools, state, last error and reconnect attempts', async () => {
    const ok = await get<Source & { tool_specs: { name: string; input_schema: unknown }[] }>(
      '/api/v1/tools/everything',
    );
    expect(ok.status).toBe(200);
    expect(ok.body.mcp).toMatchObject({ state: 'ready', last_error: null, reconnects: 0, transport: 'stdio' });
    expect(ok.body.tool_specs.find((s) => s.name === 'everything.echo')?.input_schema).toMatchObject({
      type: 'object',
    });
    const bad = await get<Source>('/api/v1/tools/broken');
    expect(bad.body.mcp!.state).toBe('failed');
    expect(bad.body.mcp!.attempts).toBeGreaterThanOrEqual(1);
    expect(bad.body.mcp!.last_error).toMatch(/connecting failed/);
    const none = await get<{ error: { code: string; message: string } }>('/api/v1/tools/nothing_here');
    expect(none.status).toBe(404);
    expect(none.body.error.code).toBe('tool_not_found');
  });
});

describe('POST /api/v1/tools/{server}/{tool}/call for every kind', () => {
  it('calls an MCP server tool, audited as agent "api", counted with via="rest"', async () => {
    const before = await metricValue({ tool: 'everything.echo', via: 'rest' });
    const r = await call('everything', 'echo', { message: 'catalogue' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      tool: 'everything.echo',
      kind: 'mcp',
      is_error: false,
      outcome: 'ok',
      content: 'Echo: catalogue',
    });
    const recs = await t.server.toolAudit.find({ tool: 'everything.echo', agent: 'api' });
    expect(recs.some((x) => x.execution_id === r.body.execution_id && x.outcome === 'ok')).toBe(true);
    expect(await metricValue({ tool: 'everything.echo', via: 'rest', status: 'ok' })).toBe(before + 1);
  });

  it('calls calculator through the builtin group, audited under server "builtin"', async () => {
    const r = await call('builtin', 'calculator', { expression: '(2 + 3) * 4' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      tool: 'calculator',
      kind: 'builtin',
      is_error: false,
      outcome: 'ok',
      content: '20',
    });
    const { value } = await waitUntil(
      async () =>
        (await t.server.toolAudit.find({ server: 'builtin' })).find((x) => x.execution_id === r.body.execution_id),
      { what: 'the audit record' },
    );
    expect(value).toMatchObject({ agent: 'api', tool: 'calculator', outcome: 'ok' });
  });

  it('answers unknown tools of an MCP server and unknown single names with 404 tool_not_found', async () => {
    const a = await call('everything', 'nope', {});
    expect(a.status).toBe(404);
    expect((a.body.error as { code: string; message: string }).message).toMatch(
      /MCP server "everything" has no tool "nope"/,
    );
    const b = await call('builtin', 'calculater', {});
    expect(b.status).toBe(404);
    expect((b.body.error as { message: string }).message).toMatch(/did you mean "calculator"/);
  });

  it('a failed MCP server that never listed tools answers 404 naming its state, not a 5xx', async () => {
    // "broken" never connected, so it has no tools: the call names that.
    const r = await call('broken', 'anything', {});
    expect(r.status).toBe(404);
    expect((r.body.error as { message: string }).message).toMatch(/state: (failed|reconnecting)/);
  });
});

describe('the CLI against the running server', () => {
  it('caxton tool list shows every source with a KIND column', async () => {
    const r = await cli(['tool', 'list']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^NAME\s+KIND\s+VERSION\s+ORIGIN\s+STATE\s+TOOLS/);
    expect(lines.find((l) => l.startsWith('everything '))).toMatch(/\bmcp\b.*\bready\b.*\becho\b/);
    expect(lines.find((l) => l.startsWith('broken '))).toMatch(/\bmcp\b.*\b(failed|reconnecting)\b/);
    expect(lines.find((l) => l.startsWith('builtin '))).toMatch(/\bbuiltin\b.*calculator/);
    const only = parseJson<{ servers: Source[] }>(await cli(['--json', 'tool', 'list', '--kind', 'mcp']));
    expect(only.servers.map((s) => s.name).sort()).toEqual(['broken', 'everything']);
  });

  it('caxton tool show NAME shows an MCP server connection: state, last error, reconnects', async () => {
    const r = await cli(['tool', 'show', 'broken']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/kind:\s+mcp/);
    expect(r.stdout).toMatch(/state:\s+(failed|reconnecting)/); // between retries, or during one
    expect(r.stdout).toMatch(/last error:\s+connecting failed/);
    expect(r.stdout).toMatch(/reconnects 0; failed attempts \d+/);
  });

  it('caxton tool call reaches an MCP tool and calculator', async () => {
    const echo = await cli(['tool', 'call', 'everything.echo', '--args', '{"message": "from the cli"}']);
    expect(echo.code, echo.stderr).toBe(0);
    expect(echo.stdout.trim()).toBe('Echo: from the cli');
    const calc = await cli(['tool', 'call', 'calculator', '--args', '{"expression": "6 * 7"}']);
    expect(calc.code, calc.stderr).toBe(0);
    expect(calc.stdout.trim()).toBe('42');
    const bad = await cli(['tool', 'call', 'calculator', '--args', '{"expression": "6 *"}']);
    expect(bad.code).toBe(1);
  });

  it('caxton status counts tool sources by kind', async () => {
    const json = parseJson<{
      tool_sources: { total: number; by_kind: Record<string, number>; unavailable: { name: string }[] };
    }>(await cli(['--json', 'status']));
    // host: the `host` group and the toolkit's groups workspace, web, todo and team.
    expect(json.tool_sources.by_kind).toMatchObject({ mcp: 2, builtin: 1, host: 5 });
    expect(json.tool_sources.total).toBe(Object.values(json.tool_sources.by_kind).reduce((a, b) => a + b, 0));
    expect(json.tool_sources.unavailable.map((u) => u.name)).toContain('broken');
    const text = await cli(['status']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/tool sources\s+\d+ \(.*mcp 2.*builtin 1.*host 5.*\)/);
  });
});

describe('caxton_tool_calls_total{via}', () => {
  it('counts a direct tools/call over /mcp with via="mcp"', async () => {
    const before = await metricValue({ tool: 'everything.echo', via: 'mcp' });
    const client = new Client({ name: 'catalogue-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`)));
    try {
      const r = await client.callTool({ name: 'everything.echo', arguments: { message: 'over mcp' } });
      expect(r.isError).not.toBe(true);
    } finally {
      await client.close();
    }
    expect(await metricValue({ tool: 'everything.echo', via: 'mcp', status: 'ok' })).toBe(before + 1);
    // The REST calls above were not counted as agent or mcp calls.
    expect(await metricValue({ tool: 'calculator', via: 'agent' })).toBe(0);
    expect(await metricValue({ tool: 'calculator', via: 'rest', status: 'ok' })).toBeGreaterThanOrEqual(1);
  });
});
