/**
 * chatMessagesToInvoke: the one conversion of OpenAI chat messages into the invoke request's
 * message fields, used by /v1/chat/completions and (with `resume`) by the Responses API.
 */
import { describe, expect, it } from 'vitest';
import { chatMessagesToInvoke } from '../../src/api/openai/chat-messages.js';
import type { ChatMessageParam } from '../../src/api/openai/chat-params.js';
import { CaxtonError } from '../../src/shared/errors.js';
import type { SuspendedExecution, SuspendedExecutionStore } from '../../src/execution/index.js';

const tools = new Set(['get_weather']);
const call = (id: string, city: string) => ({
  id,
  type: 'function' as const,
  function: { name: 'get_weather', arguments: JSON.stringify({ city }) },
});

const stored: SuspendedExecution = {
  id: 'resp_1',
  agent: 'helper',
  transcript: [
    { role: 'system', content: 'You are Helper.' },
    { role: 'user', content: 'Task: weather?' },
    {
      role: 'assistant',
      content: '',
      tool_calls: [{ id: 'call_a', name: 'get_weather', arguments: { city: 'Oslo' } }],
    },
  ],
  pending_call_ids: ['call_a'],
  expires_at: Date.now() + 60_000,
};

async function param(p: Promise<unknown>): Promise<string | undefined> {
  const e = await p.catch((x: unknown) => x);
  expect(e).toBeInstanceOf(CaxtonError);
  return ((e as CaxtonError).details as { param?: string }).param;
}

describe('chatMessagesToInvoke', () => {
  it('rebuilds a tool loop from the messages (no store)', async () => {
    const messages: ChatMessageParam[] = [
      { role: 'developer', content: 'Be brief.' },
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, tool_calls: [call('c1', 'Oslo')] },
      { role: 'tool', tool_call_id: 'c1', content: 'snow' },
    ];
    const { invoke, resumed } = await chatMessagesToInvoke(messages, {
      agent: 'helper',
      userTemplate: '{{request}}',
      toolNames: tools,
    });
    expect(resumed).toBeUndefined();
    expect(invoke).toEqual({
      request: 'weather?',
      instructions: ['Be brief.'],
      history: [],
      continuation: [
        {
          role: 'assistant',
          content: '',
          tool_calls: [{ id: 'c1', name: 'get_weather', arguments: { city: 'Oslo' } }],
        },
        { role: 'tool', tool_call_id: 'c1', name: 'get_weather', content: 'snow' },
      ],
    });
  });

  it('with resume, appends every new message to the stored transcript', async () => {
    const { invoke, resumed } = await chatMessagesToInvoke(
      [
        { role: 'tool', tool_call_id: 'call_a', content: 'snow' },
        { role: 'user', content: 'and tomorrow?' },
      ],
      { agent: 'helper', userTemplate: '', toolNames: tools, resume: stored },
    );
    expect(resumed).toBe(stored);
    expect(invoke).toEqual({
      request: 'and tomorrow?',
      transcript: stored.transcript,
      continuation: [
        { role: 'tool', tool_call_id: 'call_a', name: 'get_weather', content: 'snow' },
        { role: 'user', content: 'and tomorrow?' },
      ],
    });
  });

  it('with resume, refuses missing results and new system messages', async () => {
    expect(
      await param(
        chatMessagesToInvoke([{ role: 'user', content: 'hi' }], {
          agent: 'helper',
          userTemplate: '',
          toolNames: tools,
          resume: stored,
        }),
      ),
    ).toBe('messages');
    expect(
      await param(
        chatMessagesToInvoke(
          [
            { role: 'system', content: 'new rules' },
            { role: 'tool', tool_call_id: 'call_a', content: 'x' },
          ],
          { agent: 'helper', userTemplate: '', toolNames: tools, resume: stored },
        ),
      ),
    ).toBe('messages[0].role');
  });

  it('reads answered calls of any tool as history (a handoff), and refuses an unanswered one whatever it names', async () => {
    const handoff = { id: 'h1', type: 'function' as const, function: { name: 'transfer_to_billing', arguments: '{}' } };
    const messages: ChatMessageParam[] = [
      { role: 'user', content: 'refund please' },
      { role: 'assistant', content: null, tool_calls: [handoff] },
      { role: 'tool', tool_call_id: 'h1', content: '{"assistant":"Billing"}' },
    ];
    const { invoke } = await chatMessagesToInvoke(messages, {
      agent: 'billing',
      userTemplate: '',
      toolNames: new Set(),
    });
    expect(invoke.continuation).toEqual([
      { role: 'assistant', content: '', tool_calls: [{ id: 'h1', name: 'transfer_to_billing', arguments: {} }] },
      { role: 'tool', tool_call_id: 'h1', name: 'transfer_to_billing', content: '{"assistant":"Billing"}' },
    ]);
    expect(
      await param(
        chatMessagesToInvoke(messages.slice(0, 2), { agent: 'billing', userTemplate: '', toolNames: new Set() }),
      ),
    ).toBe('messages[1].tool_calls');
  });

  it("reads an assistant message's refusal, or its audio transcript, when its content is empty", async () => {
    const { invoke } = await chatMessagesToInvoke(
      [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: null, refusal: 'I cannot help with that.' },
        { role: 'user', content: 'b' },
        { role: 'assistant', content: null, audio: { id: 'audio_1', transcript: 'Spoken answer.' } },
        { role: 'user', content: 'c' },
        { role: 'assistant', content: 'Text wins.', refusal: null },
        { role: 'user', content: 'd' },
      ],
      { agent: 'helper', userTemplate: '', toolNames: tools },
    );
    expect(invoke.history!.filter((m) => m.role === 'assistant').map((m) => m.content)).toEqual([
      'I cannot help with that.',
      'Spoken answer.',
      'Text wins.',
    ]);
  });

  it('resumes a stored execution only for a request that still offers the tools of its pending calls', async () => {
    const store = {
      findByCallId: (id: string) => Promise.resolve(id === 'call_a' ? stored : undefined),
    } as unknown as SuspendedExecutionStore;
    const messages: ChatMessageParam[] = [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, tool_calls: [call('call_a', 'Oslo')] },
      { role: 'tool', tool_call_id: 'call_a', content: 'snow' },
    ];
    const offering = await chatMessagesToInvoke(messages, {
      agent: 'helper',
      userTemplate: '',
      toolNames: tools,
      store,
    });
    expect(offering.resumed).toBe(stored);
    // A handoff: the next request answers the call without offering its tool, under its own prompts.
    const moved = await chatMessagesToInvoke([{ role: 'system', content: 'You handle refunds.' }, ...messages], {
      agent: 'helper',
      userTemplate: '',
      toolNames: new Set(),
      store,
    });
    expect(moved.resumed).toBeUndefined();
    expect(moved.invoke).toMatchObject({
      instructions: ['You handle refunds.'],
      history: [],
      continuation: [{ role: 'assistant' }, { role: 'tool', content: 'snow' }],
    });
  });

  it('refuses arguments that are not a JSON object', async () => {
    const messages: ChatMessageParam[] = [
      { role: 'user', content: 'weather?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ ...call('c1', 'x'), function: { name: 'get_weather', arguments: '[1' } }],
      },
      { role: 'tool', tool_call_id: 'c1', content: 'snow' },
    ];
    expect(await param(chatMessagesToInvoke(messages, { agent: 'helper', userTemplate: '', toolNames: tools }))).toBe(
      'messages[1].tool_calls[0].function.arguments',
    );
  });
});
