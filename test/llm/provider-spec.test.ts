/**
 * The stand-in LLM servers refuse what OpenAI and Anthropic refuse (test/helpers/provider-spec.ts),
 * in the provider's own error shape, and their own answers are valid by the providers' schemas.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLlmStub, type LlmStub } from '../execution/helpers/llm-stub.js';
import { assertValidAnswer, checkEmbeddingRequest, checkRequest, type Provider } from '../helpers/provider-spec.js';

const fn = (name: string) => ({
  type: 'function',
  function: { name, description: 'd', parameters: { type: 'object', properties: {} } },
});
const openai = (extra: Record<string, unknown>) => ({
  model: 'gpt-test',
  messages: [{ role: 'user', content: 'hi' }],
  ...extra,
});
const tool = (name: string) => ({ name, description: 'd', input_schema: { type: 'object', properties: {} } });
const anthropic = (extra: Record<string, unknown>) => ({
  model: 'claude-test',
  max_tokens: 100,
  messages: [{ role: 'user', content: 'hi' }],
  ...extra,
});

function openaiError(body: Record<string, unknown>): { message: string; type: string; param: unknown; code: unknown } {
  const r = checkRequest('openai', body);
  expect(r?.status).toBe(400);
  const error = (r!.body as { error: { message: string; type: string; param: unknown; code: unknown } }).error;
  expect(Object.keys(r!.body as object)).toEqual(['error']);
  expect(error).toMatchObject({ type: 'invalid_request_error', code: null });
  expect(error).toHaveProperty('param');
  return error;
}

function anthropicError(body: Record<string, unknown>): string {
  const r = checkRequest('anthropic', body);
  expect(r?.status).toBe(400);
  expect(r!.body).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: expect.any(String) } });
  return (r!.body as { error: { message: string } }).error.message;
}

describe('OpenAI Chat Completions requests', () => {
  it('accepts a tool loop as the API documents it', () => {
    const body = openai({
      messages: [
        { role: 'system', content: 'terse' },
        { role: 'user', content: 'weather?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }],
        },
        { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
      ],
      tools: [fn('get_weather')],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.2,
      max_tokens: 100,
    });
    expect(checkRequest('openai', body)).toBeUndefined();
  });

  it('refuses a dotted tool name', () => {
    const e = openaiError(openai({ tools: [fn('csv_parser.parse')] }));
    expect(e.message).toMatch(/tools\[0\]\.function\.name.*does not match pattern/);
    expect(e.param).toBe('tools[0].function.name');
    expect(openaiError(openai({ tools: [fn('x'.repeat(65))] })).message).toMatch(/at most 64/);
  });

  it('refuses a dotted tool name in an earlier assistant message', () => {
    const messages = [
      { role: 'user', content: 'q' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'csv_parser.parse', arguments: '{}' } }],
      },
      { role: 'tool', tool_call_id: 'call_1', content: 'r' },
    ];
    expect(openaiError(openai({ messages, tools: [fn('csv_parser_parse')] })).message).toMatch(
      /messages\[1\]\.tool_calls\[0\]\.function\.name/,
    );
  });

  it("refuses a tool message whose tool_call_id answers no earlier assistant's tool call", () => {
    const messages = [
      { role: 'user', content: 'q' },
      { role: 'tool', tool_call_id: 'call_nobody', content: 'r' },
    ];
    expect(openaiError(openai({ messages })).message).toMatch(
      /role 'tool' must be a response to a preceeding message with 'tool_calls'/,
    );
  });

  it('refuses a tool call left unanswered before the next message', () => {
    const messages = [
      { role: 'user', content: 'q' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }],
      },
      { role: 'user', content: 'and?' },
    ];
    expect(openaiError(openai({ messages, tools: [fn('f')] })).message).toMatch(
      /did not have response messages: call_1/,
    );
  });

  it('refuses an unknown top-level parameter', () => {
    expect(openaiError(openai({ max_output_tokens: 5 })).message).toBe(
      'Unrecognized request argument supplied: max_output_tokens',
    );
  });

  it('refuses a tool_choice that names no tool, and tool_choice without tools', () => {
    expect(
      openaiError(openai({ tools: [fn('a')], tool_choice: { type: 'function', function: { name: 'b' } } })).message,
    ).toMatch(/'b' not found/);
    expect(openaiError(openai({ tool_choice: 'auto' })).message).toMatch(/only allowed when 'tools' are specified/);
    expect(openaiError(openai({ tools: [fn('a'), fn('a')] })).message).toMatch(/duplicate/);
  });

  it('refuses what the schema refuses', () => {
    expect(openaiError(openai({ messages: [{ role: 'robot', content: 'x' }] })).param).toBe('messages[0].role');
    expect(openaiError(openai({ temperature: 'hot' })).param).toBe('temperature');
    expect(openaiError({ messages: [] }).message).toMatch(/model/);
  });
});

describe('Anthropic Messages requests', () => {
  const asked = { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: {} }] };
  const answered = { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' }] };

  it('accepts a tool loop as the API documents it', () => {
    const body = anthropic({
      system: 'terse',
      messages: [{ role: 'user', content: 'weather?' }, asked, answered],
      tools: [tool('get_weather')],
      tool_choice: { type: 'tool', name: 'get_weather' },
      stream: true,
    });
    expect(checkRequest('anthropic', body)).toBeUndefined();
    // Accepted since 2025-02, after the date of the spec's copy.
    expect(
      checkRequest('anthropic', anthropic({ tools: [tool('get_weather')], tool_choice: { type: 'none' } })),
    ).toBeUndefined();
  });

  it('refuses a dotted tool name', () => {
    expect(anthropicError(anthropic({ tools: [tool('csv_parser.parse')] }))).toMatch(/^tools\.0\.name: .*pattern/);
  });

  it('refuses a tool_result that answers no tool_use of the message before', () => {
    const stray = { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_nobody', content: 'r' }] };
    expect(
      anthropicError(
        anthropic({
          messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }, stray],
          tools: [tool('f')],
        }),
      ),
    ).toMatch(/unexpected `tool_use_id` found in `tool_result` blocks: toolu_nobody/);
  });

  it('refuses a tool_use not answered in the next message', () => {
    expect(
      anthropicError(
        anthropic({
          messages: [{ role: 'user', content: 'q' }, asked, { role: 'user', content: 'and?' }],
          tools: [tool('get_weather')],
        }),
      ),
    ).toMatch(/`tool_use` ids were found without `tool_result` blocks immediately after: toolu_1/);
  });

  it('refuses tool_result blocks after other content, and empty messages', () => {
    const late = { role: 'user', content: [{ type: 'text', text: 'and?' }, ...answered.content] };
    expect(
      anthropicError(
        anthropic({ messages: [{ role: 'user', content: 'q' }, asked, late], tools: [tool('get_weather')] }),
      ),
    ).toMatch(/must come before any other content/);
    expect(anthropicError(anthropic({ messages: [{ role: 'user', content: '' }] }))).toMatch(
      /^messages\.0: all messages must have non-empty content/,
    );
    expect(
      checkRequest(
        'anthropic',
        anthropic({
          messages: [
            { role: 'user', content: 'q' },
            { role: 'assistant', content: '' },
          ],
        }),
      ),
    ).toBeUndefined();
  });

  it('refuses tool blocks in a request that defines no tools', () => {
    expect(anthropicError(anthropic({ messages: [{ role: 'user', content: 'q' }, asked, answered] }))).toMatch(
      /must define tools/,
    );
  });

  it('refuses an unknown top-level parameter', () => {
    expect(anthropicError(anthropic({ frequency_penalty: 0 }))).toBe(
      'frequency_penalty: Extra inputs are not permitted',
    );
  });

  it('refuses a tool_choice that names no tool, and duplicate tool names', () => {
    expect(anthropicError(anthropic({ tools: [tool('a')], tool_choice: { type: 'tool', name: 'b' } }))).toMatch(
      /'b' not found/,
    );
    expect(anthropicError(anthropic({ tools: [tool('a'), tool('a')] }))).toMatch(/unique/);
  });

  it('refuses what the schema refuses', () => {
    expect(anthropicError({ model: 'claude-test', messages: [{ role: 'user', content: 'hi' }] })).toMatch(/max_tokens/);
    expect(anthropicError(anthropic({ messages: [{ role: 'user', content: [{ type: 'text', text: '' }] }] }))).toMatch(
      /^messages\.0\.content/,
    );
  });
});

describe('the stand-in LLM server', () => {
  let stub: LlmStub;
  beforeAll(async () => {
    stub = await startLlmStub((hit) =>
      hit.body?.messages?.length > 1
        ? { content: 'done, twice over' }
        : { content: 'calling', tool_calls: [{ id: 'call_1', name: 'get_weather', arguments: { city: 'Paris' } }] },
    );
  });
  afterAll(async () => {
    await stub.close();
  });

  const post = async (path: string, body: unknown): Promise<{ status: number; text: string }> => {
    const res = await fetch(`${stub.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  };
  const frames = (text: string): unknown[] =>
    text
      .split('\n')
      .filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]')
      .map((l) => JSON.parse(l.slice(6)) as unknown);

  it('answers a refused request with 400 in the provider shape, without running the script', async () => {
    const before = stub.hits.length;
    const o = await post('/v1/chat/completions', openai({ tools: [fn('csv_parser.parse')] }));
    expect(o.status).toBe(400);
    expect(JSON.parse(o.text)).toEqual({
      error: {
        message: expect.stringMatching(/does not match pattern/),
        type: 'invalid_request_error',
        param: 'tools[0].function.name',
        code: null,
      },
    });
    const a = await post('/v1/messages', anthropic({ metadata: { user_id: 'u' }, stop: ['x'] }));
    expect(a.status).toBe(400);
    expect(JSON.parse(a.text)).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'stop: Extra inputs are not permitted' },
    });
    expect(stub.hits.slice(before).map((h) => h.refused !== undefined)).toEqual([true, true]);
  });

  it.each<[Provider, string, Record<string, unknown>]>([
    ['openai', '/v1/chat/completions', openai({ tools: [fn('get_weather')] })],
    ['anthropic', '/v1/messages', anthropic({ tools: [tool('get_weather')] })],
  ])('answers %s plain and streamed with what the schema allows', async (provider, path, body) => {
    for (const extra of [
      {},
      {
        messages: [
          ...(body.messages as unknown[]),
          { role: 'assistant', content: 'x' },
          { role: 'user', content: 'y' },
        ],
      },
    ]) {
      const plain = await post(path, { ...body, ...extra });
      expect(plain.status, plain.text).toBe(200);
      assertValidAnswer(provider, 'response', JSON.parse(plain.text));
      const streamed = await post(path, {
        ...body,
        ...extra,
        stream: true,
        ...(provider === 'openai' && { stream_options: { include_usage: true } }),
      });
      expect(streamed.status).toBe(200);
      const chunks = frames(streamed.text);
      expect(chunks.length).toBeGreaterThan(2);
      for (const c of chunks) assertValidAnswer(provider, 'chunk', c);
      if (provider === 'openai') {
        expect(streamed.text.trimEnd().endsWith('data: [DONE]')).toBe(true);
        expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { total_tokens: 15 } });
      }
    }
  });

  it('refuses an answer the real API could not send', () => {
    const message = { role: 'assistant', content: 'hi' };
    expect(() =>
      assertValidAnswer('openai', 'response', {
        id: 'x',
        object: 'chat.completion',
        created: 0,
        model: 'm',
        choices: [{ index: 0, message, finish_reason: 'stop' }],
      }),
    ).toThrow(/not a valid CreateChatCompletionResponse/);
    expect(() =>
      assertValidAnswer('anthropic', 'chunk', {
        type: 'content_block_delta',
        index: 0,
        delta: { type: 'text', text: 'x' },
      }),
    ).toThrow(/not a valid MessageStreamEvent/);
  });
});

describe('the embeddings stand-in', () => {
  it('refuses an unknown parameter and a request without a model, and accepts what the embedder sends', () => {
    expect(checkEmbeddingRequest({ model: 'text-embedding-3-small', input: ['a', 'b'] })).toBeUndefined();
    expect(checkEmbeddingRequest({ model: 'm', input: 'a', dimensions: 4, encoding_format: 'float' })).toBeUndefined();
    expect(checkEmbeddingRequest({ model: 'm', input: 'a', top_k: 3 })?.message).toBe(
      'Unrecognized request argument supplied: top_k',
    );
    expect(checkEmbeddingRequest({ input: 'a' })).toMatchObject({
      status: 400,
      body: { error: { type: 'invalid_request_error' } },
    });
  });
});
