/**
 * "a provider's error text leaks the API key" (ADR 0017), end to end through a real
 * `caxton serve` (dist/cli/main.js, its real stdout):
 *  - the LLM provider is a real HTTP server that answers 401 with a body echoing the Authorization
 *    value it received — raw, URL-encoded, base64 inside `Basic`, JSON-escaped — and the key
 *    reaches Caxton only through `api_key_env`;
 *  - a mounted MCP server (stdio) echoes its configured token in tool output, tool errors and stderr.
 * Every exit is then searched for every encoding of both secrets: invoke (JSON and SSE),
 * /v1/chat/completions (plain and streamed), MCP `ask_<agent>` and tool calls over /mcp, a message
 * whose agent fails (conversation, failure reply, dead letter after retries), events, logs (API and
 * stdout), the tool audit, and caxton.db with its -wal file as raw bytes, before and after a
 * checkpoint. `caxton mcp` (stdio) is checked the same way, stderr included.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  cleanEnv,
  cleanup,
  CLI,
  startServe,
  stopServe,
  tempDir,
  type ServeProcess,
} from '../cli/helpers/cli.js';
import { openaiCompletion, parseBody, refuseInvalid, sendJson, warmUp } from '../helpers/llm-standin.js';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), 'fixtures/leaky-mcp-server.mjs');

// Characters that make the encodings differ from the raw text: '/', '+', '"', '\\', '='.
const KEY = `sk-leak-${randomBytes(12).toString('hex')}"/+\\=`;
const TOKEN = `tok+${randomBytes(12).toString('hex')}/mcp=`;

/**
 * Every form a secret may take, computed here independently of src/shared/secrets.ts: as written,
 * JSON-escaped, URL-encoded (lower- and upper-case hex), form-encoded, hex, and the characters of
 * base64 / base64url that depend only on the secret, at the three byte alignments.
 */
function encodings(secret: string): string[] {
  const bytes = Buffer.from(secret);
  const out = [
    secret,
    JSON.stringify(secret).slice(1, -1),
    encodeURIComponent(secret),
    encodeURIComponent(secret).toLowerCase(),
    new URLSearchParams({ k: secret }).toString().slice(2),
    bytes.toString('hex'),
  ];
  for (let k = 0; k < 3; k++) {
    const start = Math.ceil((8 * k) / 6);
    const end = Math.floor((8 * (k + bytes.length)) / 6);
    out.push(
      Buffer.concat([Buffer.alloc(k), bytes])
        .toString('base64')
        .slice(start, end),
      Buffer.concat([Buffer.alloc(k), bytes])
        .toString('base64url')
        .slice(start, end),
    );
  }
  return [...new Set(out)];
}
const FORBIDDEN = [...encodings(KEY), ...encodings(TOKEN)];

/** Fails naming the place and the form when any encoding of a secret occurs in `text`. */
function expectClean(where: string, text: string | Buffer): void {
  const hay = typeof text === 'string' ? Buffer.from(text) : text;
  for (const form of FORBIDDEN)
    expect(hay.includes(Buffer.from(form)), `${where} contains a secret (as "${form}")`).toBe(false);
}

/** An OpenAI-compatible provider behind a proxy that echoes the Authorization value in its 401 body. */
async function echoingProvider(): Promise<{ server: Server; url: string; hits: () => number }> {
  let hits = 0;
  warmUp();
  const server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8').on('data', (c: string) => (raw += c));
    req.on('end', () => {
      if (refuseInvalid(req.method, req.url ?? '', parseBody(raw), res)) return;
      hits++;
      const auth = String(req.headers.authorization ?? '');
      const key = auth.replace(/^Bearer /, '');
      const message = `Incorrect API key provided: ${auth} (forwarded as ${encodeURIComponent(key)}, Basic ${Buffer.from(`proxy:${key}`).toString('base64')}, ${JSON.stringify(key)})`;
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': `Bearer realm="${key}"` });
      res.end(JSON.stringify({ error: { message, type: 'invalid_request_error', code: 'invalid_api_key' } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, hits: () => hits };
}

/**
 * An OpenAI-compatible model that first calls `leaky.show_token`, then answers with the tool
 * result it was sent: it records every request body, to show the model never saw the token.
 */
async function relayingModel(): Promise<{ server: Server; url: string; bodies: string[] }> {
  const bodies: string[] = [];
  warmUp();
  const server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8').on('data', (c: string) => (raw += c));
    req.on('end', () => {
      bodies.push(raw);
      const body = parseBody(raw);
      if (refuseInvalid(req.method, req.url ?? '', body, res)) return;
      const { messages, tools = [] } = body as {
        messages: { role: string; content?: string }[];
        tools?: { function: { name: string } }[];
      };
      const toolResult = messages.findLast((m) => m.role === 'tool');
      // The tool as the request named it (Caxton's `leaky.show_token` under its wire name).
      const name = tools.map((t) => t.function.name).find((n) => n.endsWith('show_token')) ?? 'show_token';
      sendJson(
        res,
        openaiCompletion(
          toolResult
            ? {
                id: 'r',
                model: 'relay',
                content: `The tool said: ${toolResult.content ?? ''}`,
                usage: { input: 1, output: 1 },
              }
            : {
                id: 'r',
                model: 'relay',
                tool_calls: [{ id: 'call_1', name, arguments: '{}' }],
                usage: { input: 1, output: 1 },
              },
        ),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, bodies };
}

function writeSetup(dir: string, providerUrl: string, relayUrl: string): string {
  mkdirSync(join(dir, 'agents'), { recursive: true });
  const agent = (name: string, extra = '') =>
    `name = "${name}"\ndescription = "fails with a leaky provider"\ncapabilities = ["leaking"]\ntools = ["leaky.*"]\nsystem_prompt = "You are ${name}."\n${extra}`;
  writeFileSync(join(dir, 'agents/leaky.toml'), agent('leaky'));
  writeFileSync(join(dir, 'agents/leaky-worker.toml'), agent('leaky-worker', '[execution]\nisolation = "worker"\n'));
  writeFileSync(join(dir, 'agents/leaky-process.toml'), agent('leaky-process', '[execution]\nisolation = "process"\n'));
  const relay = (name: string, extra = '') =>
    `name = "${name}"\ndescription = "relays a tool result"\ncapabilities = ["relaying"]\ntools = ["leaky.*"]\nsystem_prompt = "You are ${name}."\n[llm]\nprovider = "relay"\n${extra}`;
  writeFileSync(join(dir, 'agents/relay.toml'), relay('relay'));
  writeFileSync(join(dir, 'agents/relay-worker.toml'), relay('relay-worker', '[execution]\nisolation = "worker"\n'));
  const config = join(dir, 'caxton.toml');
  writeFileSync(
    config,
    `data_dir = "data"
agents_dir = "agents"

# Authentication off: this file is about provider and tool secrets (test/auth covers the keys).
[auth]
enabled = false

[logging]
level = "debug"

[llm]
default_provider = "echo"

[llm.providers.echo]
type = "openai"
base_url = "${providerUrl}"
api_key_env = "LEAK_API_KEY"
model = "gpt-test"
max_retries = 0

[llm.providers.relay]
type = "openai"
base_url = "${relayUrl}"
model = "relay"

[messaging]
max_attempts = 2
retry_base = "10ms"
retry_max = "20ms"

[mcp_servers.leaky]
command = "${process.execPath}"
args = [${JSON.stringify(FIXTURE)}]
env = { LEAKY_TOKEN = ${JSON.stringify(TOKEN)} }
`,
  );
  return config;
}

async function http(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  const res = await fetch(base + path, {
    method,
    headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: res.status, text: await res.text() };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let provider: Awaited<ReturnType<typeof echoingProvider>>;
let relayModel: Awaited<ReturnType<typeof relayingModel>>;
let dir: string;
let configPath: string;

beforeAll(async () => {
  assertBuilt();
  provider = await echoingProvider();
  relayModel = await relayingModel();
  dir = tempDir('caxton-secrets-');
  configPath = writeSetup(dir, provider.url, relayModel.url);
});

afterAll(async () => {
  await cleanup();
  await new Promise<void>((r) => provider?.server.close(() => r()));
  await new Promise<void>((r) => relayModel?.server.close(() => r()));
});

describe('a provider and an MCP server that echo their secrets (caxton serve)', () => {
  let serve: ServeProcess;
  /** Every response body and stream seen, by where it came from. */
  const seen: [string, string][] = [];

  beforeAll(async () => {
    serve = await startServe({ cwd: dir, args: ['--config', configPath], env: { LEAK_API_KEY: KEY } });
  }, 30_000);

  afterAll(async () => {
    if (serve && serve.child.exitCode === null) await stopServe(serve, 'SIGTERM', 10_000).catch(() => undefined);
  });

  it('invoke (JSON and SSE; context, worker and process isolation) answers the provider error without the key', async () => {
    for (const agent of ['leaky', 'leaky-worker', 'leaky-process']) {
      const before = provider.hits();
      const json = await http(serve.url, 'POST', `/api/v1/agents/${agent}/invoke`, { request: 'hello' });
      expect(json.status).toBe(502);
      expect(json.text).toContain('HTTP 401 unauthorized');
      expect(json.text).toContain('Incorrect API key provided: Bearer ***');
      expect(provider.hits()).toBeGreaterThan(before); // the key really went out, and came back
      seen.push([`invoke ${agent}`, json.text]);
      const sse = await http(
        serve.url,
        'POST',
        `/api/v1/agents/${agent}/invoke`,
        { request: 'hello' },
        { accept: 'text/event-stream' },
      );
      expect(sse.text).toContain('event: error');
      expect(sse.text).toContain('HTTP 401 unauthorized');
      seen.push([`invoke ${agent} SSE`, sse.text]);
    }
  });

  it('/v1/chat/completions (plain and streamed) answers it without the key', async () => {
    const plain = await http(serve.url, 'POST', '/v1/chat/completions', {
      model: 'leaky',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(plain.status).toBe(502);
    expect(plain.text).toContain('HTTP 401');
    seen.push(['chat completions', plain.text]);
    const streamed = await http(serve.url, 'POST', '/v1/chat/completions', {
      model: 'leaky',
      stream: true,
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(streamed.text).toContain('HTTP 401');
    seen.push(['chat completions stream', streamed.text]);
  });

  it('over MCP at /mcp: ask_<agent>, a tool whose output echoes its token, a tool error and an error result', async () => {
    const client = new Client({ name: 'vitest', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${serve.url}/mcp`)));
    try {
      const ask = await client.callTool({ name: 'ask_leaky', arguments: { request: 'hello' } });
      expect(ask.isError).toBe(true);
      expect(JSON.stringify(ask)).toContain('HTTP 401');
      const shown = await client.callTool({ name: 'leaky.show_token', arguments: {} });
      expect(JSON.stringify(shown)).toContain('token=***');
      const failed = await client.callTool({ name: 'leaky.fail_token', arguments: {} });
      expect(failed.isError).toBe(true);
      expect(JSON.stringify(failed)).toContain('rejected credentials token=***');
      const errorResult = await client.callTool({ name: 'leaky.error_result', arguments: {} });
      expect(errorResult.isError).toBe(true);
      for (const [k, v] of Object.entries({ ask, shown, failed, errorResult }))
        seen.push([`MCP ${k}`, JSON.stringify(v)]);
    } finally {
      await client.close();
    }
  });

  it('a tool result echoing the token reaches neither the model nor the answer (in-process and worker isolation)', async () => {
    for (const agent of ['relay', 'relay-worker']) {
      const r = await http(serve.url, 'POST', `/api/v1/agents/${agent}/invoke`, { request: 'show me' });
      expect(r.status, r.text).toBe(200);
      const res = JSON.parse(r.text) as { content: string; tool_calls: { name: string; result: string }[] };
      expect(res.content).toContain('The tool said: token=*** basic=Basic');
      expect(res.tool_calls[0]).toMatchObject({ name: 'leaky.show_token' });
      seen.push([`relay ${agent}`, r.text]);
    }
    expect(relayModel.bodies.length).toBeGreaterThanOrEqual(4);
    for (const [i, b] of relayModel.bodies.entries()) expectClean(`request ${i} to the model`, b);
  });

  it('a message to a capability whose agent fails: conversation, failure reply and dead letter hold no key', async () => {
    const sent = await http(serve.url, 'POST', '/api/v1/messages', {
      performative: 'request',
      sender: 'user',
      capability: 'leaking',
      content: 'please fail',
    });
    expect(sent.status).toBe(202);
    const conversationId = (JSON.parse(sent.text) as { conversation_id: string }).conversation_id;
    const conv = await waitFor('the conversation to fail', async () => {
      const r = await http(serve.url, 'GET', `/api/v1/conversations/${conversationId}`);
      return r.text.includes('"failure"') ? r.text : undefined;
    });
    expect(conv).toContain('HTTP 401');
    seen.push(['conversation', conv]);
    const dead = await http(serve.url, 'GET', '/api/v1/dead-letters');
    expect(dead.text).toContain('HTTP 401');
    seen.push(['dead letters', dead.text]);
    const id = (JSON.parse(dead.text) as { dead_letters: { id: number }[] }).dead_letters[0]!.id;
    seen.push(['dead letter', (await http(serve.url, 'GET', `/api/v1/dead-letters/${id}`)).text]);
    seen.push(['conversation list', (await http(serve.url, 'GET', '/api/v1/conversations')).text]);
  });

  it('events, logs (API and stdout), the tool audit and the MCP server list hold no key, and neither does any response', async () => {
    // A caller who puts the key in a URL: the request log line carries the URL, and nothing
    // scrubs it on the way in, so only the server logger's own scrubbing keeps it out of stdout.
    const probe = await http(serve.url, 'GET', `/health?leak=${encodeURIComponent(KEY)}`);
    expect(probe.status).toBe(200);
    await waitFor(
      'the request log line for /health?leak=',
      async () => (/"url":"\/health\?leak=/.test(serve.stdout()) ? true : undefined),
      5_000,
    );
    seen.push(['events', (await http(serve.url, 'GET', '/api/v1/events?limit=1000')).text]);
    const logs = await http(serve.url, 'GET', '/api/v1/logs?limit=5000');
    expect(logs.text).toContain('HTTP 401'); // the failures were logged...
    seen.push(['logs', logs.text]);
    const audit = await http(serve.url, 'GET', '/api/v1/tools/audit');
    expect(audit.text).toContain('leaky.fail_token');
    seen.push(['tool audit', audit.text]);
    seen.push(['mcp servers', (await http(serve.url, 'GET', '/api/v1/mcp/servers')).text]);
    expect(serve.stdout()).toContain('HTTP 401');
    expect(serve.stdout()).toContain('leaky: called'); // ...and the MCP server's stderr too
    seen.push(['stdout', serve.stdout()], ['stderr', serve.stderr()]);
    for (const [where, text] of seen) expectClean(where, text);
  });

  it('caxton.db and its -wal hold no encoding of either secret, before and after a checkpoint and after stopping', async () => {
    const db = join(dir, 'data', 'caxton.db');
    const files = () => [db, `${db}-wal`].filter((f) => existsSync(f));
    expect(files()).toContain(`${db}-wal`);
    for (const f of files()) expectClean(`${f} (running, not checkpointed)`, readFileSync(f));
    const conn = new Database(db);
    try {
      conn.pragma('wal_checkpoint(TRUNCATE)');
      // The rows really are there (a scrubbed copy, not nothing).
      expect(
        (conn.prepare("SELECT count(*) AS n FROM deliveries WHERE state = 'dead'").get() as { n: number }).n,
      ).toBeGreaterThan(0);
    } finally {
      conn.close();
    }
    for (const f of files()) expectClean(`${f} (after a checkpoint)`, readFileSync(f));
    await stopServe(serve, 'SIGTERM', 10_000);
    for (const f of files()) expectClean(`${f} (after stopping)`, readFileSync(f));
    expectClean('stdout after stopping', serve.stdout());
  });
});

describe('caxton mcp (stdio)', () => {
  it('scrubs the key from an ask_<agent> error and from every log line on stderr', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, 'mcp', '--config', configPath],
      cwd: dir,
      env: cleanEnv({ LEAK_API_KEY: KEY }) as Record<string, string>,
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const client = new Client({ name: 'vitest', version: '1.0.0' });
    await client.connect(transport);
    try {
      const ask = await client.callTool({ name: 'ask_leaky', arguments: { request: 'hello' } });
      expect(ask.isError).toBe(true);
      expect(JSON.stringify(ask)).toContain('HTTP 401');
      expectClean('caxton mcp ask_leaky', JSON.stringify(ask));
      const shown = await client.callTool({ name: 'leaky.show_token', arguments: {} });
      expectClean('caxton mcp leaky.show_token', JSON.stringify(shown));
    } finally {
      await client.close();
    }
    // The mounted server's stderr is logged at debug level (the configured level).
    await waitFor(
      'the MCP server stderr in the log',
      async () => (stderr.includes('leaky: called') ? true : undefined),
      5_000,
    ).catch(() => undefined);
    expect(stderr).toContain('leaky: called');
    expectClean('caxton mcp stderr', stderr);
  }, 30_000);
});
