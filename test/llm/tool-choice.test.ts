/** tool_choice, parallel_tool_calls and strict reach each provider's wire body, and only with tools. */
import { describe, expect, it } from 'vitest';
import { buildBody as anthropicBody, toWireMessages } from '../../src/llm/anthropic.js';
import { buildBody as openaiBody } from '../../src/llm/openai-client.js';
import type { ChatRequest, ToolChoice } from '../../src/llm/index.js';

const tool = {
  name: 'get_weather',
  description: 'weather',
  input_schema: { type: 'object', properties: {} },
  strict: true,
};
const req = (extra: Partial<ChatRequest> = {}): ChatRequest => ({
  model: 'm',
  messages: [{ role: 'user', content: 'hi' }],
  tools: [tool],
  ...extra,
});

describe('tool_choice on the wire', () => {
  const cases: [ToolChoice, unknown, unknown][] = [
    ['auto', 'auto', { type: 'auto' }],
    ['none', 'none', { type: 'none' }],
    ['required', 'required', { type: 'any' }],
    [
      { name: 'get_weather' },
      { type: 'function', function: { name: 'get_weather' } },
      { type: 'tool', name: 'get_weather' },
    ],
  ];
  it.each(cases)('%j → OpenAI %j, Anthropic %j', (choice, openai, anthropic) => {
    expect(openaiBody(req({ tool_choice: choice }), 'm', false).tool_choice).toEqual(openai);
    expect(anthropicBody(req({ tool_choice: choice }), 'm', false).tool_choice).toEqual(anthropic);
  });

  it('parallel_tool_calls: OpenAI as is, Anthropic as disable_parallel_tool_use (not with none)', () => {
    expect(openaiBody(req({ parallel_tool_calls: false }), 'm', false).parallel_tool_calls).toBe(false);
    expect(anthropicBody(req({ parallel_tool_calls: false }), 'm', false).tool_choice).toEqual({
      type: 'auto',
      disable_parallel_tool_use: true,
    });
    expect(anthropicBody(req({ parallel_tool_calls: false, tool_choice: 'none' }), 'm', false).tool_choice).toEqual({
      type: 'none',
    });
    expect(anthropicBody(req({ parallel_tool_calls: true }), 'm', false).tool_choice).toBeUndefined();
  });

  it('is not sent without tools (the APIs refuse it alone), and strict goes to OpenAI only', () => {
    const none = req({ tools: [], tool_choice: 'required', parallel_tool_calls: false });
    expect('tool_choice' in openaiBody(none, 'm', false) || 'parallel_tool_calls' in openaiBody(none, 'm', false)).toBe(
      false,
    );
    expect('tool_choice' in anthropicBody(none, 'm', false)).toBe(false);
    expect((openaiBody(req(), 'm', false).tools as { function: { strict?: boolean } }[])[0]!.function.strict).toBe(
      true,
    );
    expect((anthropicBody(req(), 'm', false).tools as Record<string, unknown>[])[0]).not.toHaveProperty('strict');
  });

  it('Anthropic: an assistant tool call and its client result in history become tool_use and tool_result blocks', () => {
    const { messages } = toWireMessages([
      { role: 'user', content: 'weather?' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [{ id: 'call_x', name: 'get_weather', arguments: { city: 'Oslo' } }],
      },
      { role: 'tool', tool_call_id: 'call_x', name: 'get_weather', content: 'snow' },
    ]);
    expect(messages).toEqual([
      { role: 'user', content: 'weather?' },
      {
        role: 'assistant',
        content: [{ type: 'tool_use', id: 'call_x', name: 'get_weather', input: { city: 'Oslo' } }],
      },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_x', content: 'snow' }] },
    ]);
  });

  it('Anthropic: history with tool blocks and no tools offered declares the tools it names, with tool_choice none (the API refuses tool blocks without tools)', () => {
    const messages: ChatRequest['messages'] = [
      { role: 'user', content: 'refund please' },
      { role: 'assistant', content: '', tool_calls: [{ id: 'call_h', name: 'transfer.to billing', arguments: {} }] },
      { role: 'tool', tool_call_id: 'call_h', name: 'transfer.to billing', content: '{"assistant":"Billing"}' },
    ];
    const body = anthropicBody(req({ tools: [], messages }), 'm', false);
    expect(body.tools).toEqual([
      {
        name: 'transfer_to_billing',
        description: 'Called earlier in this conversation; not available now.',
        input_schema: { type: 'object' },
      },
    ]);
    expect(body.tool_choice).toEqual({ type: 'none' });
    expect((body.messages as { content: { name?: string }[] }[])[1]!.content[0]!.name).toBe('transfer_to_billing');
    expect(anthropicBody(req({ tools: [] }), 'm', false)).not.toHaveProperty('tools');
  });
});
