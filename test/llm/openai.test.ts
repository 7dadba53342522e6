import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OpenAiProvider, type ChatMessage, type StreamEvent, type ToolSpec } from '../../src/llm/index.js';
import {
  chunk,
  completion,
  frame,
  json,
  jsonAsIs,
  providerConfig,
  sse,
  startServer,
  type TestServer,
} from './helpers/server.js';

const KEY_ENV = 'CAXTON_TEST_OPENAI_KEY';
const servers: TestServer[] = [];
async function serve(...args: Parameters<typeof startServer>): Promise<TestServer> {
  const s = await startServer(...args);
  servers.push(s);
  return s;
}

beforeAll(() => {
  process.env[KEY_ENV] = 'sk-test-123';
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

function provider(url: string, extra: Partial<Parameters<typeof providerConfig>[0]> = {}): OpenAiProvider {
  return new OpenAiProvider(
    'oai',
    providerConfig({ type: 'openai', base_url: `${url}/v1`, api_key_env: KEY_ENV, model: 'gpt-test', ...extra }),
  );
}

async function collect(it: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const ev of it) out.push(ev);
  return out;
}

describe('OpenAI-compatible client', () => {
  it('runs a two-tool-call exchange, then a final text reply', async () => {
    const s = await serve([
      json(
        200,
        completion({
          id: 'chatcmpl-1',
          object: 'chat.completion',
          model: 'gpt-test-0613',
          choices: [
            {
              index: 0,
              message: {
                role: 'assistant',
                content: null,
                tool_calls: [
                  { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
                  {
                    id: 'call_b',
                    type: 'function',
                    function: { name: 'get_time', arguments: '{"tz":"Europe/Paris"}' },
                  },
                ],
              },
              finish_reason: 'tool_calls',
            },
          ],
          usage: { prompt_tokens: 50, completion_tokens: 20, total_tokens: 70 },
        }),
      ),
      json(
        200,
        completion({
          id: 'chatcmpl-2',
          model: 'gpt-test-0613',
          choices: [{ index: 0, message: { role: 'assistant', content: 'Sunny, 14:00.' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 90, completion_tokens: 5, total_tokens: 95 },
        }),
      ),
    ]);
    const p = provider(s.url);
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Weather and time in Paris?' },
    ];
    const first = await p.chat({ model: 'gpt-test', messages, tools, temperature: 0.2, max_tokens: 100 });
    expect(first).toEqual({
      provider: 'oai',
      model: 'gpt-test-0613',
      content: '',
      tool_calls: [
        { id: 'call_a', name: 'get_weather', arguments: { city: 'Paris' } },
        { id: 'call_b', name: 'get_time', arguments: { tz: 'Europe/Paris' } },
      ],
      usage: { input_tokens: 50, output_tokens: 20, total_tokens: 70 },
      finish_reason: 'tool_calls',
    });

    messages.push(
      { role: 'assistant', content: first.content, tool_calls: first.tool_calls },
      { role: 'tool', tool_call_id: 'call_a', name: 'get_weather', content: 'sunny, 21C' },
      { role: 'tool', tool_call_id: 'call_b', name: 'get_time', content: 'clock unavailable', is_error: true },
    );
    const second = await p.chat({ model: 'gpt-test', messages, tools });
    expect(second.content).toBe('Sunny, 14:00.');
    expect(second.finish_reason).toBe('stop');
    expect(second.usage).toEqual({ input_tokens: 90, output_tokens: 5, total_tokens: 95 });

    expect(s.hits).toHaveLength(2);
    const wireTools = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Current weather for a city',
          parameters: tools[0]!.input_schema,
        },
      },
      {
        type: 'function',
        function: { name: 'get_time', description: 'Local time in a time zone', parameters: tools[1]!.input_schema },
      },
    ];
    expect(s.hits[0]!.method).toBe('POST');
    expect(s.hits[0]!.path).toBe('/v1/chat/completions');
    expect(s.hits[0]!.headers.authorization).toBe('Bearer sk-test-123');
    expect(s.hits[0]!.body).toEqual({
      model: 'gpt-test',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Weather and time in Paris?' },
      ],
      tools: wireTools,
      temperature: 0.2,
      max_tokens: 100,
    });
    expect(s.hits[1]!.body).toEqual({
      model: 'gpt-test',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Weather and time in Paris?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{"tz":"Europe/Paris"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_a', content: 'sunny, 21C' },
        { role: 'tool', tool_call_id: 'call_b', content: 'Error: clock unavailable' },
      ],
      tools: wireTools,
    });
  });

  const c = (p: Parameters<typeof chunk>[0]): string => frame(chunk({ id: 'c', model: 'gpt-test-0613', ...p }));
  const streamFrames = [
    c({ choices: [{ index: 0, delta: { role: 'assistant', content: 'Let me ' } }] }),
    c({ choices: [{ index: 0, delta: { content: 'check… ' } }] }),
    c({
      choices: [
        {
          index: 0,
          delta: {
            tool_calls: [
              { index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '' } },
            ],
          },
        },
      ],
    }),
    c({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"ci' } }] } }] }),
    c({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: 'ty":"Paris"}' } }] } }] }),
    c({
      choices: [
        {
          index: 0,
          delta: {
            tool_calls: [
              { index: 1, id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '{"tz":' } },
            ],
          },
        },
      ],
    }),
    c({ choices: [{ index: 0, delta: { tool_calls: [{ index: 1, function: { arguments: '"UTC"}' } }] } }] }),
    c({ choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] }),
    c({ choices: [], usage: { prompt_tokens: 12, completion_tokens: 34, total_tokens: 46 } }),
    frame('[DONE]'),
  ];

  it.each([
    ['frame by frame', undefined],
    ['cut every 7 bytes', 7],
  ])('streams text deltas, assembled tool calls and a final done (%s)', async (_label, splitEvery) => {
    const s = await serve(sse(streamFrames, { splitEvery }));
    const events = await collect(
      provider(s.url).stream({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }], tools }),
    );
    const calls = [
      { id: 'call_1', name: 'get_weather', arguments: { city: 'Paris' } },
      { id: 'call_2', name: 'get_time', arguments: { tz: 'UTC' } },
    ];
    const texts = events.filter((e) => e.type === 'text_delta').map((e) => e.text);
    expect(texts.join('')).toBe('Let me check… ');
    expect(events.filter((e) => e.type === 'tool_call').map((e) => e.call)).toEqual(calls);
    expect(events.at(-1)).toEqual({
      type: 'done',
      response: {
        provider: 'oai',
        model: 'gpt-test-0613',
        content: 'Let me check… ',
        tool_calls: calls,
        usage: { input_tokens: 12, output_tokens: 34, total_tokens: 46 },
        finish_reason: 'tool_calls',
      },
    });
    // Tool calls are emitted after the text, once complete.
    expect(events.findIndex((e) => e.type === 'tool_call')).toBeGreaterThan(
      events.findLastIndex((e) => e.type === 'text_delta'),
    );
    expect(s.hits[0]!.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    expect(s.hits[0]!.headers.accept).toBe('text/event-stream');
  });

  it('sends no Authorization header when no api_key_env is configured (Ollama, llama.cpp)', async () => {
    // The minimal answer some OpenAI-compatible servers give: no id, model or usage.
    const s = await serve(
      jsonAsIs(200, { choices: [{ message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }] }),
    );
    const p = new OpenAiProvider(
      'local',
      providerConfig({ type: 'openai', base_url: `${s.url}/v1/`, model: 'llama3' }),
    );
    const r = await p.chat({ model: '', messages: [{ role: 'user', content: 'hello' }] });
    expect(r).toMatchObject({
      content: 'hi',
      model: 'llama3',
      finish_reason: 'stop',
      usage: { input_tokens: 0, output_tokens: 0, total_tokens: 0 },
    });
    expect(s.hits[0]!.headers.authorization).toBeUndefined();
    expect(s.hits[0]!.path).toBe('/v1/chat/completions');
    expect(s.hits[0]!.body).toMatchObject({ model: 'llama3' });
  });

  it('maps finish reasons and sends extra headers, stop and top_p', async () => {
    const s = await serve(
      json(
        200,
        completion({ choices: [{ message: { role: 'assistant', content: 'trunc' }, finish_reason: 'length' }] }),
      ),
    );
    const p = provider(s.url, { headers: { 'x-org': 'acme' } });
    const r = await p.chat({
      model: 'gpt-test',
      messages: [{ role: 'user', content: 'x' }],
      stop: ['END'],
      top_p: 0.9,
    });
    expect(r.finish_reason).toBe('length');
    expect(s.hits[0]!.headers['x-org']).toBe('acme');
    expect(s.hits[0]!.body).toEqual({
      model: 'gpt-test',
      messages: [{ role: 'user', content: 'x' }],
      top_p: 0.9,
      stop: ['END'],
    });
  });

  it('rejects tool call arguments that are not JSON as malformed_response', async () => {
    const s = await serve(
      json(
        200,
        completion({
          choices: [
            {
              message: {
                role: 'assistant',
                content: null,
                tool_calls: [{ id: 'x', type: 'function', function: { name: 'f', arguments: '{oops' } }],
              },
              finish_reason: 'tool_calls',
            },
          ],
        }),
      ),
    );
    await expect(
      provider(s.url).chat({ model: 'gpt-test', messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toMatchObject({
      kind: 'malformed_response',
      message: expect.stringContaining('"f"'),
    });
  });

  it('reports an error object in the stream as server_error', async () => {
    const s = await serve(
      sse([
        c({ choices: [{ index: 0, delta: { content: 'a' } }] }),
        frame({ error: { message: 'model crashed', type: 'server_error', param: null, code: null } }),
      ]),
    );
    await expect(
      collect(provider(s.url).stream({ model: 'gpt-test', messages: [{ role: 'user', content: 'x' }] })),
    ).rejects.toMatchObject({
      kind: 'server_error',
      message: expect.stringContaining('model crashed'),
    });
  });

  it('treats a stream that stops before finish_reason / [DONE] as malformed_response', async () => {
    const s = await serve(sse([c({ choices: [{ index: 0, delta: { content: 'a' } }] })]));
    await expect(
      collect(provider(s.url).stream({ model: 'gpt-test', messages: [{ role: 'user', content: 'x' }] })),
    ).rejects.toMatchObject({ kind: 'malformed_response' });
  });
});
