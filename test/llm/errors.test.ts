/** Failure handling, retries and timeouts, run against both HTTP clients. */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AnthropicProvider,
  LlmError,
  OpenAiProvider,
  type LlmProvider,
  type ProviderConfig,
  type StreamEvent,
} from '../../src/llm/index.js';
import {
  chunk,
  completion,
  deadUrl,
  frame,
  hang,
  json,
  jsonAsIs,
  message,
  messageStart,
  providerConfig,
  sse,
  startServer,
  text,
  type Handler,
  type TestServer,
} from './helpers/server.js';
import { waitUntil } from '../helpers/wait.js';

const KEY_ENV = 'CAXTON_TEST_ERRORS_KEY';
const servers: TestServer[] = [];
async function serve(handlers: Handler | Handler[]): Promise<TestServer> {
  const s = await startServer(handlers);
  servers.push(s);
  return s;
}
beforeAll(() => {
  process.env[KEY_ENV] = 'k';
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

interface Flavour {
  name: string;
  make(url: string, extra?: Partial<ProviderConfig>): LlmProvider;
  ok: unknown;
  /** An SSE stream that starts and then stalls. */
  startFrames: string[];
}

const flavours: Flavour[] = [
  {
    name: 'openai',
    make: (url, extra) =>
      new OpenAiProvider(
        'p',
        providerConfig({ type: 'openai', base_url: url, api_key_env: KEY_ENV, model: 'm', ...extra }),
      ),
    ok: completion({
      choices: [{ index: 0, message: { role: 'assistant', content: 'fine' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
    }),
    startFrames: [frame(chunk({ choices: [{ index: 0, delta: { content: 'partial' } }] }))],
  },
  {
    name: 'anthropic',
    make: (url, extra) =>
      new AnthropicProvider(
        'p',
        providerConfig({ type: 'anthropic', base_url: url, api_key_env: KEY_ENV, model: 'm', ...extra }),
      ),
    ok: message({
      content: [{ type: 'text', text: 'fine' }],
      stop_reason: 'end_turn',
      usage: { input_tokens: 1, output_tokens: 1 },
    }),
    startFrames: [
      frame(messageStart({ model: 'm' }), 'message_start'),
      frame(
        { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
        'content_block_start',
      ),
      frame(
        { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'partial' } },
        'content_block_delta',
      ),
    ],
  },
];

const req = { model: 'm', messages: [{ role: 'user' as const, content: 'hi' }] };

async function failure(p: Promise<unknown>): Promise<LlmError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LlmError);
  return e as LlmError;
}

async function drain(it: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const ev of it) out.push(ev);
  return out;
}

describe.each(flavours)('$name client failures', (f) => {
  it('401 → unauthorized, not retried, naming the env var', async () => {
    const s = await serve(
      json(401, { error: { message: 'Incorrect API key provided', type: 'invalid_request_error' } }),
    );
    const e = await failure(f.make(s.url).chat(req));
    expect(e.kind).toBe('unauthorized');
    expect(e.message).toContain(KEY_ENV);
    expect(e.message).toContain('Incorrect API key provided');
    expect(e.message).toContain('LLM provider "p" (model "m")');
    expect(s.hits).toHaveLength(1);
  });

  it('403 → forbidden, not retried', async () => {
    const s = await serve(json(403, { error: { message: 'no access' } }));
    expect((await failure(f.make(s.url).chat(req))).kind).toBe('forbidden');
    expect(s.hits).toHaveLength(1);
  });

  it('429 with Retry-After, then 200 → success after waiting', async () => {
    const s = await serve([json(429, { error: { message: 'slow down' } }, { 'retry-after': '1' }), json(200, f.ok)]);
    const r = await f.make(s.url, { retry_base_ms: 1 }).chat(req);
    expect(r.content).toBe('fine');
    expect(s.hits).toHaveLength(2);
    // Retry-After: 1 (s) wins over the 1 ms backoff; generous bound.
    expect(s.hits[1]!.at - s.hits[0]!.at).toBeGreaterThanOrEqual(800);
  });

  it('503 on every attempt → server_error after max_retries + 1 hits', async () => {
    const s = await serve(json(503, { error: { message: 'upstream unavailable' } }));
    const e = await failure(f.make(s.url, { max_retries: 2 }).chat(req));
    expect(e.kind).toBe('server_error');
    expect(e.httpStatus).toBe(503);
    expect(e.message).toContain('upstream unavailable');
    expect(e.message).toContain('3 attempts');
    expect(s.hits).toHaveLength(3);
  });

  it('429 on every attempt → rate_limited', async () => {
    const s = await serve(json(429, { error: { message: 'quota' } }));
    expect((await failure(f.make(s.url, { max_retries: 1 }).chat(req))).kind).toBe('rate_limited');
    expect(s.hits).toHaveLength(2);
  });

  it('fails at once when Retry-After would pass the caller deadline', async () => {
    const s = await serve(json(429, { error: { message: 'quota' } }, { 'retry-after': '30' }));
    const started = Date.now();
    const e = await failure(f.make(s.url).chat({ ...req, deadline: Date.now() + 2_000 }));
    expect(e.kind).toBe('rate_limited');
    expect(e.message).toContain('deadline');
    expect(s.hits).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('a server that never answers → timeout (retried, then given up)', async () => {
    const s = await serve(hang);
    const e = await failure(f.make(s.url, { timeout_ms: 200, max_retries: 1 }).chat(req));
    expect(e.kind).toBe('timeout');
    expect(e.code).toBe('timeout');
    expect(s.hits).toHaveLength(2);
  });

  it('a stream that stalls after starting → timeout, not retried', async () => {
    const s = await serve(sse(f.startFrames, { thenHang: true }));
    const seen: StreamEvent[] = [];
    // Long enough for the first frames to come on a loaded machine: a timeout before they came
    // would be retried, and this is about the stall after them.
    const e = await failure(
      (async () => {
        for await (const ev of f.make(s.url, { timeout_ms: 1_500 }).stream(req)) seen.push(ev);
      })(),
    );
    expect(e.kind).toBe('timeout');
    expect(seen).toEqual([{ type: 'text_delta', text: 'partial' }]);
    expect(s.hits).toHaveLength(1);
  });

  it('a non-JSON body → malformed_response', async () => {
    const s = await serve(text(200, '<html>gateway says hi</html>', 'text/html'));
    const e = await failure(f.make(s.url).chat(req));
    expect(e.kind).toBe('malformed_response');
    expect(e.message).toContain('gateway says hi');
    expect(s.hits).toHaveLength(1);
  });

  it('a JSON body of the wrong shape → malformed_response', async () => {
    const s = await serve(jsonAsIs(200, { hello: 'world' }));
    expect((await failure(f.make(s.url).chat(req))).kind).toBe('malformed_response');
  });

  it('a JSON reply to a streaming request → malformed_response', async () => {
    const s = await serve(json(200, f.ok));
    expect((await failure(drain(f.make(s.url).stream(req)))).kind).toBe('malformed_response');
  });

  it('connection refused → connection, naming the base_url', async () => {
    const url = await deadUrl();
    const e = await failure(f.make(url, { max_retries: 1 }).chat(req));
    expect(e.kind).toBe('connection');
    expect(e.message).toContain(url);
    expect(e.message).toContain('ECONNREFUSED');
  });

  it('missing env key → missing_key before any request', async () => {
    const s = await serve(json(200, f.ok));
    delete process.env.CAXTON_TEST_UNSET_KEY;
    const e = await failure(f.make(s.url, { api_key_env: 'CAXTON_TEST_UNSET_KEY' }).chat(req));
    expect(e.kind).toBe('missing_key');
    expect(e.message).toContain('CAXTON_TEST_UNSET_KEY');
    const e2 = await failure(drain(f.make(s.url, { api_key_env: 'CAXTON_TEST_UNSET_KEY' }).stream(req)));
    expect(e2.kind).toBe('missing_key');
    expect(s.hits).toHaveLength(0);
  });

  it('caller abort while waiting → cancelled, not retried', async () => {
    const s = await serve(hang);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const e = await failure(f.make(s.url, { max_retries: 3 }).chat({ ...req, signal: ac.signal }));
    expect(e.kind).toBe('cancelled');
    expect(e.code).toBe('cancelled');
    expect(s.hits).toHaveLength(1);
  });

  it('caller abort during the backoff wait → cancelled', async () => {
    const s = await serve(json(503, {}, { 'retry-after': '20' }));
    const ac = new AbortController();
    const started = Date.now();
    const call = failure(f.make(s.url).chat({ ...req, signal: ac.signal }));
    // Aborted once the first attempt was answered (a fixed delay could end before it under load):
    // the client is then waiting out the 20 s Retry-After.
    await waitUntil(() => s.hits.length === 1, { what: 'the first attempt' });
    setTimeout(() => ac.abort(), 50);
    const e = await call;
    expect(e.kind).toBe('cancelled');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(s.hits).toHaveLength(1);
  });

  it('already-aborted signal → cancelled with no request', async () => {
    const s = await serve(json(200, f.ok));
    const e = await failure(f.make(s.url).chat({ ...req, signal: AbortSignal.abort() }));
    expect(e.kind).toBe('cancelled');
    expect(s.hits).toHaveLength(0);
  });

  it('caller abort mid-stream → cancelled', async () => {
    const s = await serve(sse(f.startFrames, { thenHang: true }));
    const ac = new AbortController();
    const e = await failure(
      (async () => {
        for await (const ev of f.make(s.url).stream({ ...req, signal: ac.signal }))
          if (ev.type === 'text_delta') ac.abort();
      })(),
    );
    expect(e.kind).toBe('cancelled');
  });

  it('404 → unknown_model', async () => {
    const s = await serve(json(404, { error: { message: 'not here' } }));
    const e = await failure(f.make(s.url).chat(req));
    expect(e.kind).toBe('unknown_model');
    expect(s.hits).toHaveLength(1);
  });

  it('400 → bad_request with the provider message truncated', async () => {
    const long = `context too long ${'x'.repeat(1000)}`;
    const s = await serve(json(400, { error: { message: long } }));
    const e = await failure(f.make(s.url).chat(req));
    expect(e.kind).toBe('bad_request');
    expect(e.message).toContain('context too long');
    expect(e.message.length).toBeLessThan(500);
    expect(s.hits).toHaveLength(1);
  });
});

describe('error body heuristics', () => {
  it('a 400 saying the model does not exist → unknown_model', async () => {
    const s = await serve(
      json(400, {
        error: {
          message: 'The model `gpt-9` does not exist or you do not have access to it.',
          code: 'model_not_found',
        },
      }),
    );
    const e = await failure(flavours[0]!.make(s.url).chat(req));
    expect(e.kind).toBe('unknown_model');
    expect(e.message).toContain('gpt-9');
  });

  it('401 without api_key_env suggests configuring one', async () => {
    const s = await serve(text(401, 'unauthorized'));
    const p = new OpenAiProvider('local', providerConfig({ type: 'openai', base_url: s.url, model: 'm' }));
    const e = await failure(p.chat(req));
    expect(e.kind).toBe('unauthorized');
    expect(e.message).toContain('api_key_env');
  });

  it('an HTTP-date Retry-After is honoured', async () => {
    const when = new Date(Date.now() + 1500).toUTCString();
    const s = await serve([json(503, {}, { 'retry-after': when }), json(200, flavours[0]!.ok)]);
    const r = await flavours[0]!.make(s.url, { retry_base_ms: 1 }).chat(req);
    expect(r.content).toBe('fine');
    expect(s.hits).toHaveLength(2);
    // HTTP dates have 1 s resolution: at least ~0.5 s must have passed.
    expect(s.hits[1]!.at - s.hits[0]!.at).toBeGreaterThanOrEqual(400);
  });
});
