/**
 * Failure behaviour of POST /api/v1/agents/{name}/invoke, with real provider clients talking to
 * real (misbehaving) HTTP servers: every failure is an error envelope with the right status.
 *
 * Documented mapping (src/shared/errors.ts, src/llm/types.ts): an LLM failure is code
 * `llm_error` → 502 with details.kind naming the cause, except a provider timeout, which is code
 * `timeout` → 504 (details.kind "timeout"); the agent's own `[limits] timeout` is also 504
 * `timeout`, with a message naming limits.timeout.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  anthropicProvider,
  expectEnvelope,
  openaiProvider,
  removeTempDirs,
  setTestKeys,
  startCaxton,
  type Caxton,
} from './helpers/caxton.js';
import { hang, malformedJson, startLlmStub, status, type LlmStub } from './helpers/llm-stub.js';

const UNSET_KEY_ENV = 'CAXTON_EXEC_TEST_NEVER_SET_KEY';

let cx: Caxton;
const stubs: Record<string, LlmStub> = {};
let deadUrl: string;

beforeAll(async () => {
  setTestKeys();
  delete process.env[UNSET_KEY_ENV];
  for (const n of ['unauth', 'unauthAnt', 'limited', 'throttled', 'silent', 'garbage', 'nokey', 'slow', 'loop', 'ok'])
    stubs[n] = await startLlmStub();
  const dead = await startLlmStub();
  deadUrl = dead.url;
  await dead.close();

  stubs.unauth!.setScript([
    status(401, { error: { message: 'Incorrect API key provided', type: 'invalid_request_error' } }),
  ]);
  stubs.unauthAnt!.setScript([
    status(401, { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } }),
  ]);
  stubs.limited!.setScript([
    status(429, { error: { message: 'slow down' } }, { 'retry-after': '0' }),
    { content: 'after the rate limit' },
  ]);
  stubs.throttled!.setScript([status(429, { error: { message: 'come back in a minute' } }, { 'retry-after': '30' })]);
  stubs.silent!.setScript([hang]);
  stubs.garbage!.setScript([malformedJson]);
  stubs.slow!.setScript([{ content: 'too late', delayMs: 5_000 }]);
  stubs.loop!.setScript([
    { content: 'again', tool_calls: [{ id: 'loop_call', name: 'calculator', arguments: { expression: '1+1' } }] },
  ]);
  stubs.ok!.setScript([{ content: 'fine' }]);

  cx = await startCaxton({
    config: {
      llm: {
        default_provider: 'ok',
        providers: {
          unauth: openaiProvider(stubs.unauth!.url),
          unauthAnt: anthropicProvider(stubs.unauthAnt!.url),
          limited: openaiProvider(stubs.limited!.url),
          throttled: openaiProvider(stubs.throttled!.url),
          silent: openaiProvider(stubs.silent!.url, { timeout: '300ms', max_retries: 0 }),
          garbage: openaiProvider(stubs.garbage!.url),
          dead: openaiProvider(deadUrl, { max_retries: 1 }),
          nokey: openaiProvider(stubs.nokey!.url, { api_key_env: UNSET_KEY_ENV }),
          slow: openaiProvider(stubs.slow!.url),
          loop: openaiProvider(stubs.loop!.url),
          ok: openaiProvider(stubs.ok!.url),
        },
      },
    },
  });
  for (const p of ['unauth', 'unauthAnt', 'limited', 'silent', 'garbage', 'dead', 'nokey'])
    await cx.deploy({ name: `via-${p}`, llm: { provider: p } });
  await cx.deploy({ name: 'busy-day', llm: { provider: 'throttled' }, limits: { timeout: '5s' } });
  await cx.deploy({ name: 'impatient', llm: { provider: 'slow' }, limits: { timeout: '500ms' } });
  await cx.deploy({ name: 'looper', tools: ['calculator'], llm: { provider: 'loop' }, limits: { max_turns: 2 } });
  await cx.deploy({ name: 'small', llm: { provider: 'ok' }, limits: { max_message_size: '1KB' } });
});

afterAll(async () => {
  await cx?.close();
  for (const s of Object.values(stubs)) await s.close();
  removeTempDirs();
});

beforeEach(() => {
  for (const s of Object.values(stubs)) s.reset();
});

describe('provider failures through invoke', () => {
  it('401 from an OpenAI-compatible provider → 502 llm_error naming provider and model, no retry', async () => {
    const res = await cx.invoke('via-unauth', { request: 'hi' });
    const err = expectEnvelope(res, 502, 'llm_error');
    expect(err.message).toContain('"unauth"');
    expect(err.message).toContain('"gpt-test"');
    expect(err.message).toMatch(/unauthorized/i);
    expect(err.message).toContain('Incorrect API key provided');
    expect(err.details).toMatchObject({
      provider: 'unauth',
      model: 'gpt-test',
      kind: 'unauthorized',
      http_status: 401,
    });
    expect(stubs.unauth!.hits).toHaveLength(1);
  });

  it('401 from an Anthropic-compatible provider → 502 llm_error unauthorized, no retry', async () => {
    const res = await cx.invoke('via-unauthAnt', { request: 'hi' });
    const err = expectEnvelope(res, 502, 'llm_error');
    expect(err.message).toContain('"unauthAnt"');
    expect(err.message).toContain('"claude-test"');
    expect(err.message).toMatch(/unauthorized/i);
    expect(err.details).toMatchObject({
      provider: 'unauthAnt',
      model: 'claude-test',
      kind: 'unauthorized',
      http_status: 401,
    });
    expect(stubs.unauthAnt!.hits).toHaveLength(1);
  });

  it('429 with Retry-After: 0, then 200 → success after exactly two calls', async () => {
    const res = await cx.invoke('via-limited', { request: 'hi' });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ content: 'after the rate limit', finish_reason: 'stop', turns: 1 });
    expect(stubs.limited!.hits).toHaveLength(2);
    expect(stubs.limited!.hits[1]!.raw).toBe(stubs.limited!.hits[0]!.raw);
  });

  it("429 whose Retry-After would pass the agent's deadline → 502 rate_limited at once, not a wait until limits.timeout", async () => {
    const started = Date.now();
    const res = await cx.invoke('busy-day', { request: 'hi' });
    const err = expectEnvelope(res, 502, 'llm_error');
    expect(err.details).toMatchObject({ provider: 'throttled', kind: 'rate_limited', http_status: 429 });
    expect(err.message).toContain('not retrying');
    expect(err.message).toContain('come back in a minute');
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(stubs.throttled!.hits).toHaveLength(1);
  });

  it('a provider that never answers (timeout = "300ms", max_retries = 0) → 504 timeout with details.kind "timeout"', async () => {
    const started = Date.now();
    const res = await cx.invoke('via-silent', { request: 'hi' });
    const err = expectEnvelope(res, 504, 'timeout');
    expect(err.details).toMatchObject({ provider: 'silent', model: 'gpt-test', kind: 'timeout' });
    expect(err.message).toContain('"silent"');
    expect(err.message).toContain('300 ms');
    // The provider's timeout, not the agent's 120 s limit.
    expect(err.message).not.toContain('limits.timeout');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(stubs.silent!.hits).toHaveLength(1);
  });

  it('a malformed JSON body → 502 llm_error with details.kind "malformed_response"', async () => {
    const res = await cx.invoke('via-garbage', { request: 'hi' });
    const err = expectEnvelope(res, 502, 'llm_error');
    expect(err.details).toMatchObject({ provider: 'garbage', kind: 'malformed_response' });
    expect(err.message).toMatch(/not JSON/);
    expect(stubs.garbage!.hits).toHaveLength(1);
  });

  it('connection refused → 502 llm_error with details.kind "connection"', async () => {
    const res = await cx.invoke('via-dead', { request: 'hi' });
    const err = expectEnvelope(res, 502, 'llm_error');
    expect(err.details).toMatchObject({ provider: 'dead', kind: 'connection' });
    expect(err.message).toMatch(/connection refused|ECONNREFUSED/);
    expect(err.message).toContain(deadUrl);
  });

  it('a missing API key variable → 502 llm_error "missing_key" without calling the provider', async () => {
    const res = await cx.invoke('via-nokey', { request: 'hi' });
    const err = expectEnvelope(res, 502, 'llm_error');
    expect(err.details).toMatchObject({ provider: 'nokey', kind: 'missing_key' });
    expect(err.message).toContain(UNSET_KEY_ENV);
    expect(stubs.nokey!.hits).toHaveLength(0);
  });
});

describe('agent limits through invoke', () => {
  it('[limits] timeout = "500ms" with a slow provider → 504 timeout naming limits.timeout; the provider call is abandoned', async () => {
    const started = Date.now();
    const res = await cx.invoke('impatient', { request: 'hi' });
    const err = expectEnvelope(res, 504, 'timeout');
    expect(err.message).toContain('limits.timeout');
    expect(err.message).toContain('impatient');
    expect(err.details).toEqual({ timeout_ms: 500 });
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(stubs.slow!.hits).toHaveLength(1);
    // The provider request was aborted, not left running.
    await expect.poll(() => stubs.slow!.hits[0]!.clientClosed, { timeout: 2_000 }).toBe(true);
  });

  it('max_turns = 2 with a model that always calls a tool → finish_reason "max_turns"', async () => {
    const res = await cx.invoke('looper', { request: 'loop forever' });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ finish_reason: 'max_turns', turns: 2, content: 'again' });
    expect(res.json.tool_calls).toHaveLength(2);
    for (const r of res.json.tool_calls) expect(r).toMatchObject({ name: 'calculator', result: '2', is_error: false });
    expect(stubs.loop!.hits).toHaveLength(2);
  });

  it('a request larger than [limits] max_message_size → 413 payload_too_large, provider not called', async () => {
    const res = await cx.invoke('small', { request: 'x'.repeat(2_000) });
    const err = expectEnvelope(res, 413, 'payload_too_large');
    expect(err.message).toContain('max_message_size');
    expect(err.details).toEqual({ size: 2_000, limit: 1024 });
    expect(stubs.ok!.hits).toHaveLength(0);
    // Just under the limit is fine.
    const ok = await cx.invoke('small', { request: 'x'.repeat(1_000) });
    expect(ok.status, ok.text).toBe(200);
    expect(stubs.ok!.hits).toHaveLength(1);
  });

  it('an unknown agent → 404 agent_not_found', async () => {
    const err = expectEnvelope(await cx.invoke('no-such-agent', { request: 'hi' }), 404, 'agent_not_found');
    expect(err.message).toContain('no-such-agent');
  });

  it('a body without "request" → 400 invalid_request naming the field', async () => {
    const err = expectEnvelope(await cx.invoke('small', { context: 'only context' }), 400, 'invalid_request');
    expect(err.message).toContain('request');
    expect(err.details.issues).toContainEqual(expect.objectContaining({ field: 'request' }));
    expectEnvelope(await cx.invoke('small', { request: '' }), 400, 'invalid_request');
    expectEnvelope(await cx.invoke('small', '{"request": '), 400, 'invalid_request');
    expectEnvelope(await cx.invoke('small', { request: 'hi', unknown_field: 1 }), 400, 'invalid_request');
    expect(stubs.ok!.hits).toHaveLength(0);
  });
});
