/**
 * Caxton's tool names (`csv_parser.parse`, `everything.get-tiny-image`, long MCP names) reach
 * OpenAI and Anthropic as names their APIs accept, and every call the model makes comes back
 * under Caxton's name, streamed or not. Values the APIs refuse that Caxton's own settings allow
 * (Anthropic's temperature range, OpenAI's four stop sequences) are refused before the call.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AnthropicProvider,
  OpenAiProvider,
  type ChatMessage,
  type ChatRequest,
  type StreamEvent,
  type ToolSpec,
} from '../../src/llm/index.js';
import { WireNames } from '../../src/llm/wire-names.js';
import {
  anthropicMessage,
  anthropicStream,
  openaiCompletion,
  openaiStream,
  sendJson,
  wantsUsage,
} from '../helpers/llm-standin.js';
import { providerConfig, startServer, type Handler, type Hit, type TestServer } from './helpers/server.js';

const API_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const LONG = `${'very_long_server_name'.repeat(3)}.${'tool'.repeat(10)}`;

describe('WireNames', () => {
  it('keeps valid names, replaces other characters, and maps back', () => {
    const names = new WireNames(['get_weather', 'csv_parser.parse', 'everything.get-tiny-image', 'mem.read_graph']);
    expect(names.toWire('get_weather')).toBe('get_weather');
    expect(names.toWire('csv_parser.parse')).toBe('csv_parser_parse');
    expect(names.toWire('everything.get-tiny-image')).toBe('everything_get-tiny-image');
    for (const n of ['get_weather', 'csv_parser.parse', 'everything.get-tiny-image', 'mem.read_graph'])
      expect(names.fromWire(names.toWire(n))).toBe(n);
  });

  it('is free of collisions: a.b and a_b both present each get their own name', () => {
    const names = new WireNames(['a.b', 'a_b', 'a-b', 'a/b']);
    const wires = ['a.b', 'a_b', 'a-b', 'a/b'].map((n) => names.toWire(n));
    expect(new Set(wires).size).toBe(4);
    expect(names.toWire('a_b')).toBe('a_b');
    expect(names.toWire('a-b')).toBe('a-b');
    for (const w of wires) expect(w).toMatch(API_NAME);
    for (const n of ['a.b', 'a_b', 'a-b', 'a/b']) expect(names.fromWire(names.toWire(n))).toBe(n);
  });

  it('shortens long names with a stable hash suffix within the limit', () => {
    const a = new WireNames([LONG, 'x']);
    const b = new WireNames(['y', LONG]);
    expect(a.toWire(LONG)).toMatch(API_NAME);
    expect(a.toWire(LONG)).toHaveLength(64);
    expect(a.toWire(LONG)).toBe(b.toWire(LONG));
    expect(a.toWire(LONG)).toMatch(/_[0-9a-f]{8}$/);
    expect(a.fromWire(a.toWire(LONG))).toBe(LONG);
    // Two long names sharing their first 55 characters stay apart.
    const other = `${LONG}.other`;
    const c = new WireNames([LONG, other]);
    expect(c.toWire(LONG)).not.toBe(c.toWire(other));
  });

  it('depends on the set of names, not their order, and covers history and a forced choice', () => {
    const one = new WireNames(['a.b', 'a_b']);
    const two = new WireNames(['a_b', 'a.b']);
    expect(one.toWire('a.b')).toBe(two.toWire('a.b'));
    const names = WireNames.forRequest({
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'c1', name: 'old.tool', arguments: {} }] },
        { role: 'tool', tool_call_id: 'c1', name: 'old.tool', content: 'done' },
      ],
      tool_choice: { name: 'forced.tool' },
    });
    expect(names.toWire('old.tool')).toBe('old_tool');
    expect(names.toWire('forced.tool')).toBe('forced_tool');
    expect(names.fromWire('unknown_tool')).toBe('unknown_tool');
  });
});

const KEY_ENV = 'CAXTON_TEST_WIRE_KEY';
const servers: TestServer[] = [];
beforeAll(() => {
  process.env[KEY_ENV] = 'sk-wire-test';
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const tools: ToolSpec[] = ['csv_parser.parse', 'csv_parser_parse', LONG].map((name) => ({
  name,
  description: `the tool ${name}`,
  input_schema: { type: 'object', properties: { n: { type: 'number' } } },
}));
const history: ChatMessage[] = [
  { role: 'user', content: 'parse it' },
  { role: 'assistant', content: '', tool_calls: [{ id: 'call_0', name: 'csv_parser.parse', arguments: { n: 0 } }] },
  { role: 'tool', tool_call_id: 'call_0', name: 'csv_parser.parse', content: 'rows: 0' },
];
const request = (extra: Partial<ChatRequest> = {}): ChatRequest => ({
  model: 'm',
  messages: history,
  tools,
  tool_choice: { name: LONG },
  ...extra,
});

/** The wire names a request offered, in order, after checking each is one the API accepts. */
function offered(hit: Hit, api: 'openai' | 'anthropic'): string[] {
  const body = hit.body as { tools: { name?: string; function?: { name: string } }[] };
  const names = body.tools.map((t) => (api === 'openai' ? t.function!.name : t.name!));
  for (const n of names) expect(n).toMatch(API_NAME);
  return names;
}

/** An OpenAI-shaped model that calls every tool it was offered, by the wire name it got. */
function openaiModel(stream: boolean): Handler {
  return async (res, hit) => {
    const calls = offered(hit, 'openai').map((name, i) => ({ id: `call_${i + 1}`, name, arguments: `{"n":${i + 1}}` }));
    const answer = { id: 'chatcmpl-w', model: 'm', tool_calls: calls, usage: { input: 1, output: 1 } };
    if (!stream) return sendJson(res, openaiCompletion(answer));
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(openaiStream({ ...answer, pieces: [], includeUsage: wantsUsage(hit.body) }).join(''));
  };
}

/** An Anthropic-shaped model that calls every tool it was offered. */
function anthropicModel(stream: boolean): Handler {
  return async (res, hit) => {
    const calls = offered(hit, 'anthropic').map((name, i) => ({ id: `toolu_${i + 1}`, name, arguments: { n: i + 1 } }));
    const answer = { id: 'msg_w', model: 'm', tool_calls: calls, usage: { input: 1, output: 3 } };
    if (!stream) return sendJson(res, anthropicMessage(answer));
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(anthropicStream({ ...answer, pieces: [] }).join(''));
  };
}

async function collect(events: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const ev of events) out.push(ev);
  return out;
}

const expectedCalls = [
  { name: 'csv_parser.parse', arguments: { n: 1 } },
  { name: 'csv_parser_parse', arguments: { n: 2 } },
  { name: LONG, arguments: { n: 3 } },
];

describe.each([
  [
    'openai',
    openaiModel,
    (url: string) =>
      new OpenAiProvider(
        'oai',
        providerConfig({ type: 'openai', base_url: `${url}/v1`, api_key_env: KEY_ENV, model: 'm' }),
      ),
  ],
  [
    'anthropic',
    anthropicModel,
    (url: string) =>
      new AnthropicProvider(
        'ant',
        providerConfig({ type: 'anthropic', base_url: url, api_key_env: KEY_ENV, model: 'm' }),
      ),
  ],
] as const)('%s provider', (api, model, make) => {
  it('sends valid wire names for tools, history and tool_choice, and maps the calls back', async () => {
    const s = await startServer(model(false));
    servers.push(s);
    const res = await make(s.url).chat(request());
    expect(res.tool_calls.map((c) => ({ name: c.name, arguments: c.arguments }))).toEqual(expectedCalls);
    const body = s.hits[0]!.body as Record<string, unknown>;
    const wire = JSON.stringify(body);
    expect(wire).not.toContain('"name":"csv_parser.parse"');
    if (api === 'openai') {
      expect((body.tool_choice as { function: { name: string } }).function.name).toMatch(API_NAME);
      expect(
        (body.messages as { tool_calls?: { function: { name: string } }[] }[])[1]!.tool_calls![0]!.function.name,
      ).toBe(offered(s.hits[0]!, 'openai')[0]);
    } else {
      expect((body.tool_choice as { name: string }).name).toMatch(API_NAME);
      expect((body.messages as { content: { name?: string }[] }[])[1]!.content[0]!.name).toBe(
        offered(s.hits[0]!, 'anthropic')[0],
      );
    }
  });

  it('maps streamed calls back too', async () => {
    const s = await startServer(model(true));
    servers.push(s);
    const events = await collect(make(s.url).stream(request()));
    const calls = events.flatMap((e) =>
      e.type === 'tool_call' ? [{ name: e.call.name, arguments: e.call.arguments }] : [],
    );
    expect(calls).toEqual(expectedCalls);
    const done = events.at(-1);
    expect(done?.type === 'done' && done.response.tool_calls.map((c) => c.name)).toEqual(
      expectedCalls.map((c) => c.name),
    );
  });
});

describe('values the APIs refuse are refused before the call, in Caxton’s words', () => {
  it('a temperature above 1 to an Anthropic-type provider, more than four stop sequences to an OpenAI-type one', async () => {
    const s = await startServer(() => undefined);
    servers.push(s);
    const ant = new AnthropicProvider(
      'ant',
      providerConfig({ type: 'anthropic', base_url: s.url, api_key_env: KEY_ENV, model: 'm' }),
    );
    const oai = new OpenAiProvider(
      'oai',
      providerConfig({ type: 'openai', base_url: `${s.url}/v1`, api_key_env: KEY_ENV, model: 'm' }),
    );
    const hi: ChatMessage[] = [{ role: 'user', content: 'hi' }];
    await expect(ant.chat({ model: 'm', messages: hi, temperature: 1.5 })).rejects.toMatchObject({
      kind: 'bad_request',
      message: expect.stringContaining('at most 1 for an Anthropic-type provider'),
    });
    await expect(oai.chat({ model: 'm', messages: hi, stop: ['a', 'b', 'c', 'd', 'e'] })).rejects.toMatchObject({
      kind: 'bad_request',
      message: expect.stringContaining('at most 4'),
    });
    expect(s.hits).toHaveLength(0);
  });
});
