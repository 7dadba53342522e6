/**
 * Fuzzing the HTTP API through a real server on 127.0.0.1 (scripted LLM provider, SQLite memory,
 * the built-in tools): REST bodies (agents in every format, messages, invoke, memory writes and
 * imports, tool deploys and calls) and the OpenAI-compatible chat completions. Every answer must
 * be below 500, every error must carry the one envelope, no request may take longer than the
 * hang limit, and the server must still answer /health afterwards. See docs/fuzzing.md.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import {
  corpus,
  documents,
  FUZZ_SEED,
  fuzz,
  hostileJson,
  hostileString,
  preview,
  testTimeout,
  yamlAliasBomb,
} from './harness.js';

/**
 * A request costing more than this much CPU time is a finding. The server runs in this process,
 * so the process's CPU time over the request is the server's work for it (plus what runs beside
 * it: deliveries, embedding) — unlike wall time, not inflated by a loaded CI machine. Wall time is
 * bounded too, at ten times this, by aborting the request.
 */
const HTTP_HANG_MS = Number(process.env.CAXTON_FUZZ_HTTP_HANG_MS ?? 3000);

interface FuzzRequest {
  method: 'POST' | 'PUT';
  path: string;
  contentType: string;
  body: string;
}

const root = new URL('../../', import.meta.url);
const read = (rel: string): string => readFileSync(new URL(rel, root), 'utf8');

const agentToml = (name: string) =>
  `name = "${name}"\ndescription = "fuzz"\ncapabilities = ["fuzzing"]\nsystem_prompt = "You are ${name}."\n[parameters]\nk = { a = [1, { b = "c" }] }\n`;
const AGENT_DOCS: [string, string][] = [
  ['application/toml', agentToml('fz')],
  ['application/toml', read('examples/agents/assistant.toml')],
  ['text/markdown', read('examples/agents/code-reviewer.md')],
  ['text/markdown', `---\nname: fzmd\ndescription: x\n${yamlAliasBomb(3, 3)}\n---\nYou help.\n`],
  [
    'application/json',
    JSON.stringify({
      name: 'fzjson',
      description: 'd',
      capabilities: ['fuzzing'],
      system_prompt: 'p',
      parameters: { a: [1, { b: 2 }] },
    }),
  ],
  ['text/plain', agentToml('fzplain')],
];
const MESSAGES = [
  JSON.stringify({
    performative: 'request',
    sender: 'client',
    receivers: ['echo'],
    content: 'hello',
    protocol: 'fipa-request',
  }),
  JSON.stringify({
    performative: 'inform',
    sender: 'client',
    capability: 'testing',
    content: { a: [1, 2], 'X-k': 'v' },
    'X-priority': 1,
  }),
  JSON.stringify({ performative: 'query-ref', receivers: ['nobody'], content: 'q', reply_by: '2030-01-01T00:00:00Z' }),
];
const INVOKES = [
  JSON.stringify({ request: 'hi', context: { k: [1, 'two'] }, parameters: { p: 1 } }),
  JSON.stringify({ request: 'x', capability: 'testing', conversation_id: 'c-1' }),
];
const CHAT = [
  JSON.stringify({
    model: 'echo',
    messages: [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hello' },
    ],
  }),
  JSON.stringify({ model: 'echo', messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], user: 'u' }),
];
const MEMORY_ENTITIES = [
  JSON.stringify({
    entities: [{ name: 'fz', entityType: 't', observations: ['o'], metadata: { k: [1, { x: 'y' }] } }],
  }),
];
const MEMORY_IMPORT_JSON = [
  JSON.stringify({
    format: 'caxton-memory',
    version: 1,
    entities: [{ scope: 'workspace', name: 'fzi', entityType: 't', observations: ['o'] }],
    relations: [],
  }),
];
const MEMORY_JSONL = [
  '{"type":"entity","name":"FA","entityType":"t","observations":["o"]}\n{"type":"relation","from":"FA","to":"FA","relationType":"self"}',
];
const TOOL_CALLS = [
  JSON.stringify({ args: { expression: '1+2' } }),
  JSON.stringify({ args: { text: 'a,b\n1,2' }, timeout_ms: 500 }),
];
const TOOL_DEPLOYS = [
  JSON.stringify({
    manifest: read('tools/builtin/csv_parser/caxton-tool.toml').replace('name = "csv_parser"', 'name = "fz_tool"'),
    wasm: 'AGFzbQEAAAA=',
  }),
];

const json = (path: string, seeds: string[], method: FuzzRequest['method'] = 'POST') =>
  documents(seeds).map((body): FuzzRequest => ({ method, path, contentType: 'application/json', body }));

const TARGETS: Record<string, fc.Arbitrary<FuzzRequest>> = {
  'http-agents': fc.oneof(
    fc
      .tuple(
        fc.constantFrom(...AGENT_DOCS),
        fc.constantFrom('/api/v1/agents', '/api/v1/agents/validate', '/api/v1/agents/fz'),
      )
      .chain(([[type, doc], path]) =>
        documents([doc]).map((body): FuzzRequest => ({
          method: path.endsWith('/fz') ? 'PUT' : 'POST',
          path,
          contentType: type,
          body,
        })),
      ),
    fc.record({
      method: fc.constant('POST' as const),
      path: fc.constant('/api/v1/agents'),
      contentType: fc.constantFrom(
        'application/json',
        'text/plain',
        'application/toml',
        'text/markdown',
        'image/png',
        'application/json; charset=latin1',
        '',
      ),
      body: hostileString,
    }),
  ),
  'http-messages': json('/api/v1/messages', MESSAGES),
  'http-invoke': fc.oneof(
    json('/api/v1/agents/echo/invoke', INVOKES),
    hostileJson.map((v): FuzzRequest => ({
      method: 'POST',
      path: '/api/v1/agents/echo/invoke',
      contentType: 'application/json',
      body: JSON.stringify({ request: 'hi', context: v }),
    })),
  ),
  'http-openai': fc.oneof(
    json('/v1/chat/completions', CHAT),
    fc
      .array(fc.record({ role: fc.constantFrom('system', 'user', 'assistant', 'tool', 'x'), content: hostileJson }), {
        minLength: 1,
        maxLength: 4,
      })
      .map((messages): FuzzRequest => ({
        method: 'POST',
        path: '/v1/chat/completions',
        contentType: 'application/json',
        body: JSON.stringify({ model: 'echo', messages }),
      })),
  ),
  'http-memory': fc.oneof(
    json('/api/v1/memory/entities', MEMORY_ENTITIES),
    json('/api/v1/memory/import', MEMORY_IMPORT_JSON),
    documents(MEMORY_JSONL).map((body): FuzzRequest => ({
      method: 'POST',
      path: '/api/v1/memory/import?scope=workspace',
      contentType: 'application/x-ndjson',
      body,
    })),
    json('/api/v1/memory/search', [JSON.stringify({ query: 'o', limit: 3 })]),
  ),
  'http-tools': fc.oneof(
    json('/api/v1/tools/calculator/evaluate/call', TOOL_CALLS),
    json('/api/v1/tools/csv_parser/parse/call', TOOL_CALLS),
    json('/api/v1/tools', TOOL_DEPLOYS),
  ),
};

let t: TestServer;
beforeAll(async () => {
  const dir = makeTempDir('caxton-fuzz-http-');
  writeFileSync(join(dir, 'replies.toml'), 'fallback = "ok"\n');
  t = await startTestServer({
    dir,
    toml: '[server]\nmax_body_size = "2MB"\n[llm]\ndefault_provider = "demo"\n[llm.providers.demo]\ntype = "scripted"\nscript = "replies.toml"\n',
    agentFiles: {
      'echo.toml': 'name = "echo"\ndescription = "echo"\ncapabilities = ["testing"]\nsystem_prompt = "You are echo."\n',
    },
  });
  // Warm-up outside the budget and the hang limit: the first memory write loads the embedding
  // model (seconds), the first execution the scripted provider.
  const warm = await fetch(`${t.url}/api/v1/memory/entities`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: MEMORY_ENTITIES[0]!,
  });
  expect(warm.status).toBe(201);
  expect(
    (
      await fetch(`${t.url}/api/v1/agents/echo/invoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: INVOKES[0]!,
      })
    ).status,
  ).toBe(200);
  console.log(`fuzz seed ${FUZZ_SEED} (replay with CAXTON_FUZZ_SEED=${FUZZ_SEED})`);
}, 120_000);
afterAll(async () => {
  await t?.close();
  removeTempDirs();
});

/** Sends one request; checks status, envelope and time. */
async function check(target: string, r: FuzzRequest): Promise<void> {
  const what = `${target}: ${r.method} ${r.path} (${r.contentType}) body ${preview(r.body)}`;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const res = await fetch(t.url + r.path, {
    method: r.method,
    headers: r.contentType ? { 'content-type': r.contentType } : {},
    body: r.body,
    signal: AbortSignal.timeout(HTTP_HANG_MS * 10),
  });
  const text = await res.text();
  const cpu = process.cpuUsage(cpu0);
  const ms = (cpu.user + cpu.system) / 1000;
  const wallMs = performance.now() - t0;
  expect(res.status, `${what} answered ${res.status}: ${preview(text, 500)}`).toBeLessThan(500);
  expect(
    ms,
    `${what} took ${Math.round(ms)} ms of CPU (${Math.round(wallMs)} ms wall; limit ${HTTP_HANG_MS})`,
  ).toBeLessThan(HTTP_HANG_MS);
  if (res.status >= 400) {
    let body: { error?: { code?: unknown; message?: unknown; details?: unknown; request_id?: unknown } } | undefined;
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = undefined;
    }
    expect(
      body && Object.keys(body),
      `${what}: ${res.status} without the error envelope: ${preview(text, 500)}`,
    ).toEqual(['error']);
    const e = body!.error!;
    // /v1/* answers in OpenAI's shape: Caxton's envelope plus `type` and `param`.
    const fields = r.path.startsWith('/v1/')
      ? ['code', 'details', 'message', 'param', 'request_id', 'type']
      : ['code', 'details', 'message', 'request_id'];
    expect(Object.keys(e).sort(), `${what}: envelope fields`).toEqual(fields);
    expect(
      typeof e.code === 'string' &&
        typeof e.message === 'string' &&
        e.message.length > 0 &&
        typeof e.request_id === 'string',
      `${what}: envelope types ${preview(text, 500)}`,
    ).toBe(true);
  }
}

describe.each(Object.keys(TARGETS))('fuzz %s', (target) => {
  it('replays the saved corpus', async () => {
    // Every file, then one failure listing all that fail: each names its own finding.
    const failed: string[] = [];
    for (const [name, text] of corpus(target)) {
      try {
        await check(target, JSON.parse(text) as FuzzRequest);
      } catch (e) {
        failed.push(`test/fuzz/corpus/${target}/${name}: ${preview((e as Error).message, 1000)}`);
      }
    }
    if (failed.length > 0) throw new Error(`${failed.length} corpus input(s) fail:\n${failed.join('\n')}`);
  });

  it(
    'generated requests: every answer < 500 with the error envelope, none over the hang limit; the server stays up',
    async () => {
      const runs = await fuzz(
        target,
        TARGETS[target]!,
        (r) => check(target, r),
        (r) => JSON.stringify(r),
      );
      console.log(`fuzz ${target}: ${runs} requests`);
      const health = await fetch(`${t.url}/health`);
      expect(health.status).toBe(200);
    },
    testTimeout(90),
  );
});
