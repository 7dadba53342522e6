/**
 * A configured provider key that the model streams in 8-character pieces never reaches a client
 * whole, on any streamed surface: the invoke SSE stream, /v1/chat/completions with stream: true
 * and /v1/responses streams (the last two read with the `openai` package), in every isolation
 * mode. Each piece on its own holds no secret, so scrubbing piece by piece lets the key through;
 * the streamed text must read exactly as the non-streamed answer does, with the key replaced by
 * "***", and a stream without a secret must arrive unchanged. Real server, the HTTP LLM stub as
 * the model; no mocks.
 */
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiProvider, removeTempDirs, startCaxton, type Caxton } from './helpers/caxton.js';
import { startLlmStub, type LlmStub, type StubHit } from './helpers/llm-stub.js';

const KEY = `sk-proj-${randomBytes(16).toString('hex')}`;
const PIECE = 8;

/** What the model says, by the request's last user message. */
const SAYS = {
  key: `Your key is ${KEY}; keep it out of logs.`,
  // The key's encoded forms (ADR 0017) split across pieces as well.
  encoded: `In a URL: ?key=${encodeURIComponent(KEY)}&x=1, as a header: Basic ${Buffer.from(`user:${KEY}`).toString('base64')}, in hex ${Buffer.from(KEY).toString('hex')} end.`,
  // Ends on the key: only the end of the stream releases it.
  last: `The key is ${KEY}`,
  plain: 'Nothing secret here: just an ordinary answer, streamed in small pieces, word after word.',
} as const;
type Topic = keyof typeof SAYS | 'tool';

function topicOf(hit: StubHit): Topic {
  const messages = (hit.body?.messages ?? []) as { role: string; content: unknown }[];
  const last = messages.findLast((m) => m.role === 'user');
  const text = typeof last?.content === 'string' ? last.content : JSON.stringify(last?.content ?? '');
  return (['tool', ...Object.keys(SAYS)] as Topic[]).find((t) => text.includes(`topic:${t}`)) ?? 'plain';
}

let stub: LlmStub;
let cx: Caxton;
let client: OpenAI;

beforeAll(async () => {
  process.env.STREAM_SCRUB_KEY = KEY;
  stub = await startLlmStub((hit) => {
    const messages = (hit.body?.messages ?? []) as { role: string }[];
    if (messages.some((m) => m.role === 'tool')) return { content: 'Six times seven is 42.', chunkSize: PIECE };
    const topic = topicOf(hit);
    if (topic === 'tool')
      return {
        content: `Let me compute ${KEY.slice(0, 12)}`,
        chunkSize: PIECE,
        tool_calls: [{ id: 'call_1', name: 'calculator', arguments: { expression: '6*7' } }],
      };
    return { content: SAYS[topic], chunkSize: PIECE };
  });
  cx = await startCaxton({
    config: {
      llm: {
        default_provider: 'stub',
        providers: { stub: openaiProvider(stub.url, { api_key_env: 'STREAM_SCRUB_KEY' }) },
      },
    },
  });
  await cx.deploy({ name: 'keeper' });
  await cx.deploy({ name: 'calc', tools: ['calculator'] });
  await cx.deploy({ name: 'keeper-worker', execution: { isolation: 'worker' } });
  await cx.deploy({ name: 'keeper-process', execution: { isolation: 'process' } });
  client = new OpenAI({ baseURL: `${cx.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 });
});

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
  delete process.env.STREAM_SCRUB_KEY;
});

/** The answer of the non-streamed invoke: what a streamed surface must read as, once joined. */
async function unstreamed(topic: Topic): Promise<string> {
  const res = await cx.invoke('keeper', { request: `topic:${topic}` });
  expect(res.status, res.text).toBe(200);
  return res.json.content as string;
}

/** The joined token events of a streamed invoke, the pieces, and the final response's content. */
async function invokeSse(
  topic: Topic,
  agent = 'keeper',
): Promise<{ text: string; pieces: string[]; content: string; raw: string }> {
  const { status, events } = await cx.invokeStream(agent, { request: `topic:${topic}` });
  expect(status).toBe(200);
  const pieces = events.filter((e) => e.event === 'token').map((e) => e.json.text as string);
  const response = events.find((e) => e.event === 'response');
  expect(response, JSON.stringify(events.at(-1))).toBeDefined();
  return {
    text: pieces.join(''),
    pieces,
    content: response!.json.content as string,
    raw: events.map((e) => e.data).join('\n'),
  };
}

async function chatStream(topic: Topic): Promise<{ text: string; pieces: string[] }> {
  const stream = await client.chat.completions.create({
    model: 'keeper',
    messages: [{ role: 'user', content: `topic:${topic}` }],
    stream: true,
  });
  const pieces: string[] = [];
  for await (const chunk of stream) {
    const c = chunk.choices[0]?.delta.content;
    if (c) pieces.push(c);
  }
  return { text: pieces.join(''), pieces };
}

async function responsesStream(topic: Topic): Promise<{ text: string; pieces: string[]; done: string }> {
  const stream = await client.responses.create({ model: 'keeper', input: `topic:${topic}`, stream: true });
  const pieces: string[] = [];
  let done = '';
  for await (const e of stream) {
    if (e.type === 'response.output_text.delta') pieces.push(e.delta);
    if (e.type === 'response.output_text.done') done = e.text;
  }
  return { text: pieces.join(''), pieces, done };
}

const SURFACES = {
  'invoke SSE': invokeSse,
  '/v1/chat/completions (stream: true)': chatStream,
  '/v1/responses (stream: true)': responsesStream,
} as const;

describe.each(Object.entries(SURFACES))('%s', (_name, read) => {
  it('a key streamed in 8-character pieces never arrives whole; the text around it does, as the non-streamed answer reads', async () => {
    const { text, pieces } = await read('key');
    expect(text).not.toContain(KEY);
    expect(text).toBe('Your key is ***; keep it out of logs.');
    expect(text).toBe(await unstreamed('key'));
    expect(pieces.length).toBeGreaterThan(1); // still a stream
  });

  it('the encoded forms of the key (URL, base64 in a Basic header, hex) are replaced alike', async () => {
    const { text } = await read('encoded');
    for (const form of [KEY, encodeURIComponent(KEY), Buffer.from(KEY).toString('hex')])
      expect(text).not.toContain(form);
    expect(text).toBe(await unstreamed('encoded'));
    expect(text.startsWith('In a URL: ?key=***&x=1, as a header: Basic ')).toBe(true);
    expect(text.endsWith(', in hex *** end.')).toBe(true);
  });

  it('a key at the very end of the stream is replaced too', async () => {
    const { text } = await read('last');
    expect(text).toBe('The key is ***');
  });

  it('a stream without a secret arrives unchanged, in pieces', async () => {
    const { text, pieces } = await read('plain');
    expect(text).toBe(SAYS.plain);
    expect(pieces.length).toBeGreaterThan(SAYS.plain.length / (2 * PIECE));
  });
});

describe.each(['worker', 'process'])(
  'in %s isolation, where the text arrives from another thread or process',
  (mode) => {
    it('invoke SSE: the key is replaced in the joined stream', async () => {
      const { text, content } = await invokeSse('key', `keeper-${mode}`);
      expect(text).toBe('Your key is ***; keep it out of logs.');
      expect(content).toBe(text);
    });
  },
);

describe('the other parts of a streamed answer', () => {
  it("invoke SSE: the final response's content and every event agree with the scrubbed stream", async () => {
    const { text, content, raw } = await invokeSse('key');
    expect(content).toBe(text);
    expect(raw).not.toContain(KEY);
  });

  it('invoke SSE: text held back (it begins the key) is released before the tool call that follows it, in order', async () => {
    const { status, events } = await cx.invokeStream('calc', { request: 'topic:tool' });
    expect(status).toBe(200);
    const kinds = events.map((e) => e.event);
    const call = kinds.indexOf('tool_call');
    expect(call).toBeGreaterThan(0);
    const before = events.slice(0, call).filter((e) => e.event === 'token');
    expect(before.map((e) => e.json.text as string).join('')).toBe(`Let me compute ${KEY.slice(0, 12)}`);
    expect(kinds.slice(call)).toEqual([
      'tool_call',
      'tool_result',
      ...kinds.slice(call + 2, -1).map(() => 'token'),
      'response',
    ]);
    const after = events.slice(call + 2, -1).map((e) => e.json.text as string);
    expect(after.join('')).toBe('Six times seven is 42.');
  });

  it('/v1/responses: output_text.done carries the same scrubbed text as the deltas', async () => {
    const { text, done } = await responsesStream('key');
    expect(done).toBe(text);
  });
});
