import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AnthropicProvider, type ChatMessage, type StreamEvent, type ToolSpec } from '../../src/llm/index.js';
import {
  frame,
  json,
  message,
  messageStart,
  providerConfig,
  sse,
  startServer,
  type TestServer,
} from './helpers/server.js';

const KEY_ENV = 'CAXTON_TEST_ANTHROPIC_KEY';
const servers: TestServer[] = [];
async function serve(...args: Parameters<typeof startServer>): Promise<TestServer> {
  const s = await startServer(...args);
  servers.push(s);
  return s;
}

beforeAll(() => {
  process.env[KEY_ENV] = 'ant-key-456';
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const tools: ToolSpec[] = [
  {
    name: 'get_weather',
    description: 'Current weather for a city',
    input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
  {
    name: 'get_time',
    description: 'Local time in a time zone',
    input_schema: { type: 'object', properties: { tz: { type: 'string' } } },
  },
];

function provider(url: string): AnthropicProvider {
  return new AnthropicProvider(
    'claude',
    providerConfig({ type: 'anthropic', base_url: url, api_key_env: KEY_ENV, model: 'claude-test' }),
  );
}

async function collect(it: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const ev of it) out.push(ev);
  return out;
}

describe('Anthropic Messages client', () => {
  it('runs a two-tool-call exchange, then a final text reply', async () => {
    const s = await serve([
      json(200, {
        id: 'msg_1',
        type: 'message',
        role: 'assistant',
        model: 'claude-test-20250101',
        content: [
          { type: 'text', text: 'Checking both.' },
          { type: 'tool_use', id: 'toolu_a', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'toolu_b', name: 'get_time', input: { tz: 'Europe/Paris' } },
        ],
        stop_reason: 'tool_use',
        stop_sequence: null,
        usage: { input_tokens: 40, output_tokens: 30, cache_read_input_tokens: 10 },
      }),
      json(200, {
        id: 'msg_2',
        type: 'message',
        role: 'assistant',
        model: 'claude-test-20250101',
        content: [{ type: 'text', text: 'Sunny, 14:00.' }],
        stop_reason: 'end_turn',
        stop_sequence: null,
        usage: { input_tokens: 120, output_tokens: 6 },
      }),
    ]);
    const p = provider(s.url);
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Weather and time in Paris?' },
    ];
    const first = await p.chat({ model: 'claude-test', messages, tools, stop: ['###'] });
    expect(first).toEqual({
      provider: 'claude',
      model: 'claude-test-20250101',
      content: 'Checking both.',
      tool_calls: [
        { id: 'toolu_a', name: 'get_weather', arguments: { city: 'Paris' } },
        { id: 'toolu_b', name: 'get_time', arguments: { tz: 'Europe/Paris' } },
      ],
      usage: { input_tokens: 50, output_tokens: 30, total_tokens: 80 },
      finish_reason: 'tool_calls',
    });

    messages.push(
      { role: 'assistant', content: first.content, tool_calls: first.tool_calls },
      { role: 'tool', tool_call_id: 'toolu_a', name: 'get_weather', content: 'sunny, 21C' },
      { role: 'tool', tool_call_id: 'toolu_b', name: 'get_time', content: 'clock unavailable', is_error: true },
    );
    const second = await p.chat({ model: 'claude-test', messages, tools, max_tokens: 256, temperature: 0 });
    expect(second).toMatchObject({
      content: 'Sunny, 14:00.',
      finish_reason: 'stop',
      tool_calls: [],
      usage: { input_tokens: 120, output_tokens: 6, total_tokens: 126 },
    });

    expect(s.hits).toHaveLength(2);
    const h = s.hits[0]!;
    expect(h.path).toBe('/v1/messages');
    expect(h.headers['x-api-key']).toBe('ant-key-456');
    expect(h.headers['anthropic-version']).toBe('2023-06-01');
    expect(h.headers.authorization).toBeUndefined();
    const wireTools = tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.input_schema }));
    expect(h.body).toEqual({
      model: 'claude-test',
      max_tokens: 4096,
      system: 'You are terse.',
      messages: [{ role: 'user', content: 'Weather and time in Paris?' }],
      tools: wireTools,
      stop_sequences: ['###'],
    });
    expect(s.hits[1]!.body).toEqual({
      model: 'claude-test',
      max_tokens: 256,
      system: 'You are terse.',
      messages: [
        { role: 'user', content: 'Weather and time in Paris?' },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Checking both.' },
            { type: 'tool_use', id: 'toolu_a', name: 'get_weather', input: { city: 'Paris' } },
            { type: 'tool_use', id: 'toolu_b', name: 'get_time', input: { tz: 'Europe/Paris' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_a', content: 'sunny, 21C' },
            { type: 'tool_result', tool_use_id: 'toolu_b', content: 'clock unavailable', is_error: true },
          ],
        },
      ],
      tools: wireTools,
      temperature: 0,
    });
  });

  it('merges a user message that follows tool results into the same user turn', async () => {
    const s = await serve(
      json(
        200,
        message({
          content: [{ type: 'text', text: 'ok' }],
          stop_reason: 'end_turn',
          usage: { input_tokens: 1, output_tokens: 1 },
        }),
      ),
    );
    await provider(s.url).chat({
      model: 'claude-test',
      messages: [
        { role: 'user', content: 'q' },
        { role: 'assistant', content: '', tool_calls: [{ id: 't1', name: 'f', arguments: {} }] },
        { role: 'tool', tool_call_id: 't1', name: 'f', content: 'r' },
        { role: 'user', content: 'and?' },
      ],
      // The API refuses tool_use and tool_result blocks in a request that defines no tools.
      tools: [{ name: 'f', description: 'f', input_schema: { type: 'object' } }],
    });
    expect((s.hits[0]!.body as { messages: unknown }).messages).toEqual([
      { role: 'user', content: 'q' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'f', input: {} }] },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 't1', content: 'r' },
          { type: 'text', text: 'and?' },
        ],
      },
    ]);
  });

  const streamFrames = [
    frame(
      messageStart({ id: 'msg_s', model: 'claude-test-20250101', usage: { input_tokens: 25, output_tokens: 1 } }),
      'message_start',
    ),
    frame({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }, 'content_block_start'),
    frame({ type: 'ping' }, 'ping'),
    frame(
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Let me ' } },
      'content_block_delta',
    ),
    frame(
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'check… ' } },
      'content_block_delta',
    ),
    frame({ type: 'content_block_stop', index: 0 }, 'content_block_stop'),
    frame(
      {
        type: 'content_block_start',
        index: 1,
        content_block: { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: {} },
      },
      'content_block_start',
    ),
    frame(
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '' } },
      'content_block_delta',
    ),
    frame(
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"city": "Pa' } },
      'content_block_delta',
    ),
    frame(
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: 'ris"}' } },
      'content_block_delta',
    ),
    frame({ type: 'content_block_stop', index: 1 }, 'content_block_stop'),
    frame(
      {
        type: 'content_block_start',
        index: 2,
        content_block: { type: 'tool_use', id: 'toolu_2', name: 'get_time', input: {} },
      },
      'content_block_start',
    ),
    frame({ type: 'content_block_stop', index: 2 }, 'content_block_stop'),
    frame(
      { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 42 } },
      'message_delta',
    ),
    frame({ type: 'message_stop' }, 'message_stop'),
  ];

  it.each([
    ['frame by frame', undefined],
    ['cut every 5 bytes', 5],
  ])('streams text deltas, tool calls at content_block_stop and a final done (%s)', async (_label, splitEvery) => {
    const s = await serve(sse(streamFrames, { splitEvery }));
    const events = await collect(
      provider(s.url).stream({ model: 'claude-test', messages: [{ role: 'user', content: 'hi' }], tools }),
    );
    const calls = [
      { id: 'toolu_1', name: 'get_weather', arguments: { city: 'Paris' } },
      { id: 'toolu_2', name: 'get_time', arguments: {} },
    ];
    expect(events.filter((e) => e.type === 'text_delta').map((e) => e.text)).toEqual(['Let me ', 'check… ']);
    expect(events.filter((e) => e.type === 'tool_call').map((e) => e.call)).toEqual(calls);
    expect(events.at(-1)).toEqual({
      type: 'done',
      response: {
        provider: 'claude',
        model: 'claude-test-20250101',
        content: 'Let me check… ',
        tool_calls: calls,
        usage: { input_tokens: 25, output_tokens: 42, total_tokens: 67 },
        finish_reason: 'tool_calls',
      },
    });
    expect(s.hits[0]!.body).toMatchObject({ stream: true, max_tokens: 4096 });
  });

  it('maps stop reasons: max_tokens → length, stop_sequence → stop', async () => {
    const s = await serve([
      json(
        200,
        message({
          content: [{ type: 'text', text: 'a' }],
          stop_reason: 'max_tokens',
          usage: { input_tokens: 1, output_tokens: 1 },
        }),
      ),
      json(
        200,
        message({
          content: [{ type: 'text', text: 'b' }],
          stop_reason: 'stop_sequence',
          stop_sequence: 'END',
          usage: { input_tokens: 1, output_tokens: 1 },
        }),
      ),
    ]);
    const p = provider(s.url);
    expect((await p.chat({ model: 'claude-test', messages: [{ role: 'user', content: 'x' }] })).finish_reason).toBe(
      'length',
    );
    expect((await p.chat({ model: 'claude-test', messages: [{ role: 'user', content: 'x' }] })).finish_reason).toBe(
      'stop',
    );
  });

  it('turns an error event mid-stream into an LlmError with the server text', async () => {
    const s = await serve(
      sse([
        frame(messageStart(), 'message_start'),
        frame({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }, 'error'),
      ]),
    );
    await expect(
      collect(provider(s.url).stream({ model: 'claude-test', messages: [{ role: 'user', content: 'x' }] })),
    ).rejects.toMatchObject({
      kind: 'server_error',
      message: expect.stringContaining('Overloaded'),
    });
    expect(s.hits).toHaveLength(1);
  });

  it('treats a stream without message_stop as malformed_response', async () => {
    const s = await serve(sse([frame(messageStart(), 'message_start')]));
    await expect(
      collect(provider(s.url).stream({ model: 'claude-test', messages: [{ role: 'user', content: 'x' }] })),
    ).rejects.toMatchObject({ kind: 'malformed_response' });
  });

  it('maps a 404 not_found_error for the model to unknown_model, quoting the provider', async () => {
    const s = await serve(
      json(404, { type: 'error', error: { type: 'not_found_error', message: 'model: claude-nope' } }),
    );
    const err = await provider(s.url)
      .chat({ model: 'claude-nope', messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'unknown_model', httpStatus: 404, model: 'claude-nope' });
    expect((err as Error).message).toContain('model: claude-nope');
    expect((err as Error).message).toContain('LLM provider "claude" (model "claude-nope")');
  });
});
