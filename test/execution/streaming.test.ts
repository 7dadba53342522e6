/**
 * Streaming invoke (Accept: text/event-stream) against real streaming OpenAI- and
 * Anthropic-compatible servers, errors inside a stream, and client disconnects cancelling the
 * execution (and the provider call) without hurting the server.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  anthropicProvider,
  expectEnvelope,
  openaiProvider,
  parseSse,
  removeTempDirs,
  setTestKeys,
  startCaxton,
  type Caxton,
  type SseEvent,
} from './helpers/caxton.js';
import { startLlmStub, status, streamThenError, type LlmStub, type Reply, type StubHit } from './helpers/llm-stub.js';
import { assistantTurns, toolResultsOf } from './helpers/wire.js';

let oai: LlmStub;
let ant: LlmStub;
let cx: Caxton;

beforeAll(async () => {
  setTestKeys();
  oai = await startLlmStub();
  ant = await startLlmStub();
  cx = await startCaxton({
    config: {
      llm: {
        default_provider: 'oai',
        providers: { oai: openaiProvider(oai.url), ant: anthropicProvider(ant.url, { max_retries: 0 }) },
      },
    },
  });
  await cx.deploy({ name: 'streamer-oai', tools: ['calculator'], llm: { provider: 'oai' } });
  await cx.deploy({ name: 'streamer-ant', tools: ['calculator'], llm: { provider: 'ant' } });
});

afterAll(async () => {
  await cx?.close();
  await oai?.close();
  await ant?.close();
  removeTempDirs();
});

beforeEach(() => {
  oai.reset();
  ant.reset();
});

const toolLoop =
  (id: string) =>
  (hit: StubHit): Reply => {
    if (assistantTurns(hit) === 0)
      return {
        content: 'Computing now, one moment. ',
        tool_calls: [{ id, name: 'calculator', arguments: { expression: '(2+4)*7' } }],
        usage: { input: 5, output: 7 },
      };
    const r = toolResultsOf(hit).find((x) => x.id === id);
    return {
      content: `The answer is ${r?.content ?? '?'}, as computed.`,
      usage: { input: 9, output: 8 },
      chunkSize: 3,
    };
  };

const names = (events: SseEvent[]) => events.map((e) => e.event);

describe.each([
  { label: 'OpenAI-compatible', agent: 'streamer-oai', stub: () => oai, id: 'call_s1' },
  { label: 'Anthropic-compatible', agent: 'streamer-ant', stub: () => ant, id: 'toolu_s1' },
])('streamed invoke ($label)', ({ agent, stub, id }) => {
  it('yields token, tool_call and tool_result events, then the response', async () => {
    stub().setScript(toolLoop(id));
    const { status: code, headers, events } = await cx.invokeStream(agent, { request: 'compute (2+4)*7' });
    expect(code).toBe(200);
    expect(headers.get('content-type')).toContain('text/event-stream');

    const kinds = names(events);
    expect(kinds.at(-1)).toBe('response');
    expect(kinds.filter((k) => k === 'response')).toHaveLength(1);
    expect(kinds).not.toContain('error');
    const iCall = kinds.indexOf('tool_call');
    const iResult = kinds.indexOf('tool_result');
    expect(iCall).toBeGreaterThan(0);
    expect(iResult).toBeGreaterThan(iCall);
    // Tokens of the first turn come before the tool call, those of the second after the result.
    expect(kinds.slice(0, iCall).every((k) => k === 'token')).toBe(true);
    expect(kinds.slice(iResult + 1, -1).every((k) => k === 'token')).toBe(true);
    expect(kinds.slice(iResult + 1, -1).length).toBeGreaterThan(3);

    const tokens = events.filter((e) => e.event === 'token').map((e) => e.json.text as string);
    expect(tokens.join('')).toBe('Computing now, one moment. The answer is 42, as computed.');
    expect(events[iCall]!.json).toEqual({
      call: { id, name: 'calculator', arguments: { expression: '(2+4)*7' } },
      turn: 1,
    });
    expect(events[iResult]!.json).toMatchObject({ id, name: 'calculator', content: '42', is_error: false });

    const response = events.at(-1)!.json;
    expect(response).toMatchObject({
      agent,
      content: 'The answer is 42, as computed.',
      finish_reason: 'stop',
      turns: 2,
      usage: { input_tokens: 14, output_tokens: 15, total_tokens: 29 },
    });
    expect(response.tool_calls).toEqual([
      expect.objectContaining({ id, name: 'calculator', result: '42', is_error: false }),
    ]);

    // The provider was asked to stream, both turns.
    expect(stub().hits).toHaveLength(2);
    for (const h of stub().hits) expect(h.stream).toBe(true);
  });

  it('a provider failure before any output arrives as an `error` event carrying the envelope', async () => {
    stub().setScript([status(401, { error: { message: 'bad key' } })]);
    const { status: code, events } = await cx.invokeStream(agent, { request: 'hi' });
    expect(code).toBe(200);
    expect(names(events)).toEqual(['error']);
    const env = events[0]!.json;
    expect(Object.keys(env)).toEqual(['error']);
    expect(env.error).toMatchObject({ code: 'llm_error', details: { kind: 'unauthorized' } });
    expect(env.error.message).toMatch(/unauthorized/i);
    expect(env.error.request_id).toMatch(/\S/);
    expect(stub().hits).toHaveLength(1);
  });

  it('an unknown agent or an oversized request fails with its HTTP status before the stream opens', async () => {
    const missing = await cx.invoke('no-such-agent', { request: 'hi' }, { accept: 'text/event-stream' });
    expectEnvelope(missing, 404, 'agent_not_found');
    const big = await cx.invoke(agent, { request: 'x'.repeat(300 * 1024) }, { accept: 'text/event-stream' });
    expectEnvelope(big, 413, 'payload_too_large');
    expect(stub().hits).toHaveLength(0);
  });

  it('an error in the middle of the stream: the tokens so far, then an `error` event', async () => {
    stub().setScript([streamThenError(['Partial ', 'answer '], 'the model fell over')]);
    const { status: code, events } = await cx.invokeStream(agent, { request: 'hi' });
    expect(code).toBe(200);
    expect(names(events)).toEqual(['token', 'token', 'error']);
    expect(
      events
        .slice(0, 2)
        .map((e) => e.json.text as string)
        .join(''),
    ).toBe('Partial answer ');
    const env = events[2]!.json;
    expect(env.error.code).toBe('llm_error');
    expect(env.error.message).toContain('the model fell over');
    expect(env.error.details).toMatchObject({ kind: 'server_error' });
    // Output had started: no retry, no fallback.
    expect(stub().hits).toHaveLength(1);
  });
});

describe('client disconnects', () => {
  it('aborting a streaming invoke cancels the provider call; the server keeps serving and logs nothing fatal', async () => {
    oai.setScript([{ content: 'this is never seen', delayMs: 20_000 }]);
    const ac = new AbortController();
    const res = await fetch(`${cx.url}/api/v1/agents/streamer-oai/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ request: 'take your time' }),
      // The stream must open (status and headers) before the model says anything.
      signal: AbortSignal.any([ac.signal, AbortSignal.timeout(5_000)]),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reading = res.text().catch((e: unknown) => e);
    await oai.waitForHits(1);
    ac.abort();
    expect(await reading).toBeInstanceOf(Error);
    // The execution was cancelled all the way down: Caxton closed its request to the provider.
    await expect.poll(() => oai.hits[0]!.clientClosed, { timeout: 5_000 }).toBe(true);

    oai.setScript([{ content: 'still here' }]);
    const next = await cx.invoke('streamer-oai', { request: 'are you there?' });
    expect(next.status, next.text).toBe(200);
    expect(next.json.content).toBe('still here');
    const streamed = await cx.invokeStream('streamer-oai', { request: 'and streaming?' });
    expect(streamed.events.at(-1)!.event).toBe('response');

    expect(cx.logs.filter((l) => l.level === 'fatal' || l.level === 'error')).toEqual([]);
  });

  it('aborting a plain JSON invoke cancels the provider call too', async () => {
    oai.setScript([{ content: 'never', delayMs: 20_000 }]);
    const ac = new AbortController();
    const pending = fetch(`${cx.url}/api/v1/agents/streamer-oai/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: 'slow one' }),
      signal: ac.signal,
    }).catch((e: unknown) => e);
    await oai.waitForHits(1);
    ac.abort();
    expect(await pending).toBeInstanceOf(Error);
    await expect.poll(() => oai.hits[0]!.clientClosed, { timeout: 5_000 }).toBe(true);

    oai.setScript([{ content: 'ok again' }]);
    const next = await cx.invoke('streamer-oai', { request: 'hello' });
    expect(next.status, next.text).toBe(200);
    expect(cx.logs.filter((l) => l.level === 'fatal' || l.level === 'error')).toEqual([]);
  });
});

// parseSse is exercised indirectly; keep a direct check of the framing it relies on.
describe('SSE framing helper', () => {
  it('parses named events, multi-line data and [DONE]', () => {
    const ev = parseSse('event: token\ndata: {"text":"a"}\n\ndata: line1\ndata: line2\n\n: comment\ndata: [DONE]\n\n');
    expect(ev).toEqual([
      { event: 'token', data: '{"text":"a"}', json: { text: 'a' } },
      { event: undefined, data: 'line1\nline2', json: undefined },
      { event: undefined, data: '[DONE]', json: undefined },
    ]);
  });
});
