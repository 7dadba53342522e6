/**
 * Hostile JSON request bodies against a real server (127.0.0.1, port 0, scripted LLM provider,
 * SQLite memory): every deep case answers 400 input_too_deep naming the limit (never
 * a 500), prototype keys and duplicate keys are refused naming the key and its line, the 415
 * lists every accepted content type, and 100 directory event-stream followers raise no
 * MaxListenersExceededWarning and are all removed when their streams close.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_INPUT_DEPTH } from '../../src/shared/depth.js';
import { expectErrorEnvelope, getJson, http, tomlAgent } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

/** `{"a":{"a":...{"a":leaf}}}` as text, `levels` objects deep (built as text: no recursion anywhere). */
function deepObject(levels: number, leaf = '1'): string {
  return '{"a":'.repeat(levels) + leaf + '}'.repeat(levels);
}
function deepArray(levels: number): string {
  return '['.repeat(levels) + ']'.repeat(levels);
}

let t: TestServer;
beforeAll(async () => {
  const dir = makeTempDir('caxton-hostile-');
  writeFileSync(join(dir, 'replies.toml'), 'fallback = "ok"\n');
  t = await startTestServer({
    dir,
    toml: '[server]\nmax_body_size = "4MB"\n[llm]\ndefault_provider = "demo"\n[llm.providers.demo]\ntype = "scripted"\nscript = "replies.toml"\n',
    agentFiles: { 'echo.toml': tomlAgent('echo') },
  });
}, 60_000);
afterAll(async () => {
  await t?.close();
  removeTempDirs();
});

// X-Caxton-Request: text/plain bodies need it (or a credential) because of the cross-site guard.
const post = (path: string, body: string, contentType = 'application/json') =>
  http<Json>(t.url, 'POST', path, { body, contentType, headers: { 'x-caxton-request': '1' } });

async function expectHealthy(): Promise<void> {
  const h = await getJson(t.url, '/health');
  expect(h.status).toBe(200);
}

function expectTooDeep(res: Awaited<ReturnType<typeof post>>, shape: 'caxton' | 'openai' = 'caxton'): void {
  const e = expectErrorEnvelope(res, 400, 'input_too_deep', shape);
  expect(e.message).toContain(`more than ${MAX_INPUT_DEPTH} levels`);
  expect(e.message).toMatch(/the request body|line \d+/);
  expect(e.details).toMatchObject({ limit: MAX_INPUT_DEPTH });
}

describe('deep JSON bodies are a 400 input_too_deep, not a 500', () => {
  it('message content nested 3,000 levels', async () => {
    const body = `{"performative":"inform","sender":"tester","receivers":["echo"],"content":${deepObject(3000)}}`;
    const res = await post('/api/v1/messages', body);
    expectTooDeep(res);
    expect(res.json.error.details.path).toBe('content.a.a.a' + '.a'.repeat(MAX_INPUT_DEPTH - 4));
    await expectHealthy();
  });

  it('memory metadata nested 5,000 levels; nothing stored; 60 levels is accepted and reads back', async () => {
    const res = await post(
      '/api/v1/memory/entities',
      `{"entities":[{"name":"deep","entityType":"t","observations":[],"metadata":${deepObject(5000)}}]}`,
    );
    expectTooDeep(res);
    expect((await getJson(t.url, '/api/v1/memory/entities/deep')).status).toBe(404);
    const ok = await post(
      '/api/v1/memory/entities',
      `{"entities":[{"name":"nested","entityType":"t","observations":[],"metadata":${deepObject(60)}}]}`,
    );
    expect(ok.status, ok.text).toBe(201);
    const back = await getJson<Json>(t.url, '/api/v1/memory/entities/nested');
    expect(back.status).toBe(200);
    expect(JSON.stringify(back.json)).toContain(deepObject(60));
  });

  it('invoke context nested 100,000 levels', async () => {
    const res = await post('/api/v1/agents/echo/invoke', `{"request":"hi","context":${deepArray(100_000)}}`);
    expectTooDeep(res);
    const ok = await post('/api/v1/agents/echo/invoke', '{"request":"hi","context":{"k":[1,2]}}');
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json.content).toBe('ok');
  });

  it('agent JSON body parameters nested 2,000 levels (deploy and validate); nothing deployed', async () => {
    const doc = `{"name":"deepagent","system_prompt":"x","capabilities":["testing"],"parameters":{"p":${deepObject(2000)}}}`;
    expectTooDeep(await post('/api/v1/agents', doc));
    expectTooDeep(await post('/api/v1/agents/validate', doc));
    expectTooDeep(await post('/api/v1/agents', doc, 'text/plain'));
    expect((await getJson(t.url, '/api/v1/agents/deepagent')).status).toBe(404);
  });

  it('OpenAI-compatible chat completion with nested content parts', async () => {
    const res = await post(
      '/v1/chat/completions',
      `{"model":"echo","messages":[{"role":"user","content":${deepArray(10_000)}}]}`,
    );
    expectTooDeep(res, 'openai');
    expect(res.json.error.type).toBe('invalid_request_error');
  });

  it("MCP JSON-RPC body at /mcp, and a tool call's args", async () => {
    const rpc = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"calculator","arguments":${deepObject(20_000)}}}`;
    expectTooDeep(
      await http<Json>(t.url, 'POST', '/mcp', {
        body: rpc,
        contentType: 'application/json',
        headers: { accept: 'application/json, text/event-stream' },
      }),
    );
    expectTooDeep(await post('/api/v1/tools/calculator/evaluate/call', `{"args":${deepArray(20_000)}}`));
    await expectHealthy();
  });

  it('memory import: a deep JSON document, and a deep JSONL line named by its line number', async () => {
    expectTooDeep(
      await post(
        '/api/v1/memory/import',
        `{"format":"caxton-memory","version":1,"entities":[{"scope":"workspace","name":"x","entityType":"t","metadata":${deepObject(5000)}}]}`,
      ),
    );
    const jsonl = `{"type":"entity","name":"A","entityType":"t","observations":[]}\n{"type":"entity","name":${deepArray(50_000)}}\n`;
    const res = await post('/api/v1/memory/import?scope=workspace', jsonl, 'application/x-ndjson');
    const e = expectErrorEnvelope(res, 400, 'input_too_deep');
    expect(e.message).toMatch(/^line 2 is nested more than 64 levels deep/);
    expect(e.details).toMatchObject({ line: 2, limit: MAX_INPUT_DEPTH });
    expect((await getJson(t.url, '/api/v1/memory/entities/A')).status).toBe(404);
  });
});

describe('prototype keys and duplicate keys', () => {
  it('refuses "__proto__" naming the key and where, and pollutes nothing', async () => {
    const res = await post(
      '/api/v1/agents/echo/invoke',
      '{\n  "request": "hi",\n  "context": {"x": {"__proto__": {"polluted": true}}}\n}',
    );
    const e = expectErrorEnvelope(res, 400, 'invalid_request');
    expect(e.message).toMatch(/line 3, column \d+: the key "__proto__" is refused: it could change object prototypes/);
    expect(e.details).toMatchObject({
      key: '__proto__',
      path: 'context.x.__proto__',
      line: 3,
      reason: 'forbidden_key',
    });
    expect(({} as Json).polluted).toBeUndefined();
    const msg = await post('/api/v1/messages', '{"__proto__":{"performative":"inform"}}');
    expect(expectErrorEnvelope(msg, 400, 'invalid_message').message).toContain('"__proto__" is refused');
  });

  it('refuses "constructor.prototype" but keeps "constructor" and "prototype" as plain keys elsewhere', async () => {
    const bad = await post(
      '/api/v1/memory/entities',
      '{"entities":[{"name":"c","entityType":"t","observations":[],"metadata":{"constructor":{"prototype":{"x":1}}}}]}',
    );
    expect(expectErrorEnvelope(bad, 400, 'invalid_request').message).toContain('"constructor.prototype" is refused');
    const ok = await post(
      '/api/v1/memory/entities',
      '{"entities":[{"name":"ctor","entityType":"t","observations":[],"metadata":{"constructor":"Ada","prototype":"v2"}}]}',
    );
    expect(ok.status, ok.text).toBe(201);
  });

  it('refuses a duplicate key naming it and its line', async () => {
    const res = await post(
      '/api/v1/agents/echo/invoke',
      '{\n  "request": "first",\n  "context": "c",\n  "request": "second"\n}',
    );
    const e = expectErrorEnvelope(res, 400, 'invalid_request');
    expect(e.message).toBe(
      'the request body: line 4, column 3: the key "request" appears twice in the same object; keep one',
    );
    expect(e.details).toMatchObject({ key: 'request', line: 4, column: 3, reason: 'duplicate_key' });
    // the same key in two different objects is fine
    expect((await post('/api/v1/agents/echo/invoke', '{"request":"hi","context":{"request":1}}')).status).toBe(200);
    const agent = await post(
      '/api/v1/agents',
      '{"name":"dup","name":"dup2","system_prompt":"x","capabilities":["testing"]}',
    );
    expect(expectErrorEnvelope(agent, 400, 'invalid_request').details).toMatchObject({ key: 'name', line: 1 });
  });

  it('a 100,000-character unknown message parameter: named, shortened, not echoed whole', async () => {
    const key = 'x'.repeat(100_000);
    const res = await post(
      '/api/v1/messages',
      JSON.stringify({ performative: 'inform', receivers: ['echo'], content: 'c', [key]: 1 }),
    );
    const e = expectErrorEnvelope(res, 400, 'invalid_message');
    expect(e.message).toMatch(/^invalid message: x{100}… \(100000 characters\): unknown parameter/);
    expect(res.text.length).toBeLessThan(2000);
  });

  it('still names the line and column of a syntax error', async () => {
    const res = await post('/api/v1/memory/entities', '{"entities": [\n  {"name": "x",}\n]}');
    expect(expectErrorEnvelope(res, 400, 'invalid_request').message).toBe(
      'the request body is not valid JSON: line 2, column 16: expected a property name in double quotes but found "}"',
    );
  });
});

describe('415 lists every accepted content type', () => {
  it('agents: text/plain included', async () => {
    const e = expectErrorEnvelope(
      await post('/api/v1/agents', 'name = "x"', 'image/png'),
      415,
      'unsupported_media_type',
    ) as Json;
    expect(e.details.supported).toEqual(
      expect.arrayContaining(['application/toml', 'text/markdown', 'application/json', 'text/plain']),
    );
    for (const type of e.details.supported as string[]) expect(e.message).toContain(type);
  });
  it('a JSON route: application/json and text/plain', async () => {
    const e = expectErrorEnvelope(
      await post('/api/v1/agents/echo/invoke', '{"request":"hi"}', 'application/xml'),
      415,
      'unsupported_media_type',
    ) as Json;
    expect(e.details.supported).toEqual(expect.arrayContaining(['application/json', 'text/plain']));
    expect(e.details.supported).not.toContain('application/toml');
    expect(e.message).toContain('send one of: application/json');
  });
});

describe('directory event-stream followers', () => {
  it('100 followers: no MaxListenersExceededWarning, each gets events, all listeners removed on close', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    const directory = t.server.bus!.directory;
    const baseline = directory.listenerCount('change');
    const streams = await Promise.all(
      Array.from({ length: 100 }, async () => {
        const ac = new AbortController();
        const res = await fetch(`${t.url}/api/v1/directory/events`, { signal: ac.signal });
        expect(res.status).toBe(200);
        return { ac, reader: res.body!.getReader() };
      }),
    );
    try {
      expect(directory.listenerCount('change')).toBe(baseline + 100);
      expect((await post('/api/v1/agents', tomlAgent('watched'), 'application/toml')).status).toBe(201);
      const dec = new TextDecoder();
      await Promise.all(
        streams.map(async ({ reader }) => {
          let text = '';
          while (!text.includes('event: registered')) {
            const { value, done } = await reader.read();
            if (done) break;
            text += dec.decode(value);
          }
          expect(text).toContain('"agent":"watched"');
        }),
      );
    } finally {
      for (const s of streams) s.ac.abort();
    }
    // The server notices each closed connection; wait (bounded) until every listener is gone.
    for (let i = 0; i < 200 && directory.listenerCount('change') > baseline; i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(directory.listenerCount('change')).toBe(baseline);
    await new Promise((r) => setImmediate(r));
    process.off('warning', onWarning);
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  });
});
