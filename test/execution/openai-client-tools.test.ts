/**
 * Client-defined tools on /v1/chat/completions, driven by the official `openai` package against
 * real HTTP LLM stubs: the model calls a client tool, the execution stops with finish_reason
 * tool_calls, the client answers with tool messages and the stored (suspended) execution resumes
 * — server-side tool results the client never saw included — or, when it is gone, the
 * conversation is rebuilt from the messages sent. Plus streaming deltas, tool_choice on the wire,
 * the 400s, and one principal not resuming another's execution.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  agentToml,
  anthropicProvider,
  openaiProvider,
  removeTempDirs,
  setTestKeys,
  startCaxton,
  type Caxton,
} from './helpers/caxton.js';
import { startLlmStub, type LlmStub, type StubHit } from './helpers/llm-stub.js';
import { messagesOf, offeredTools, toolResultsOf } from './helpers/wire.js';

let oai: LlmStub;
let ant: LlmStub;
let cx: Caxton;
let client: OpenAI;

const weather: OpenAI.Chat.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

beforeAll(async () => {
  setTestKeys();
  oai = await startLlmStub();
  ant = await startLlmStub();
  cx = await startCaxton({
    config: {
      llm: { default_provider: 'oai', providers: { oai: openaiProvider(oai.url), ant: anthropicProvider(ant.url) } },
    },
  });
  await cx.deploy({ name: 'helper', system_prompt: 'You are Helper.' });
  await cx.deploy({ name: 'calc', tools: ['calculator'], system_prompt: 'You are Calc.' });
  await cx.deploy({
    name: 'calc-ant',
    tools: ['calculator'],
    system_prompt: 'You are Calc.',
    llm: { provider: 'ant' },
  });
  await cx.deploy({
    name: 'calc-worker',
    tools: ['calculator'],
    system_prompt: 'You are Calc.',
    execution: { isolation: 'worker' },
  });
  await cx.deploy({
    name: 'calc-process',
    tools: ['calculator'],
    system_prompt: 'You are Calc.',
    execution: { isolation: 'process' },
  });
  client = new OpenAI({ baseURL: `${cx.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 20_000 });
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

type Msg = OpenAI.Chat.ChatCompletionMessageParam;
const user = (content: string): Msg[] => [{ role: 'user', content }];

/** The model asks for the weather first, then answers with what the tool results said. */
function weatherScript(stub: LlmStub, extra: { server?: boolean } = {}): void {
  stub.setScript((hit: StubHit) => {
    const results = toolResultsOf(hit);
    if (results.length === 0) {
      return {
        tool_calls: [
          ...(extra.server ? [{ id: 'prov_calc', name: 'calculator', arguments: { expression: '6*7' } }] : []),
          { id: 'prov_weather', name: 'get_weather', arguments: { city: 'Paris' } },
        ],
      };
    }
    return { content: `Final: ${results.map((r) => r.content).join(' | ')}` };
  });
}

describe('a client tool loop', () => {
  it('returns the client tool call, then resumes with the tool result', async () => {
    weatherScript(oai);
    const first = await client.chat.completions.create({
      model: 'helper',
      messages: user('weather in Paris?'),
      tools: [weather],
    });
    const choice = first.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    const calls = choice.message.tool_calls!;
    expect(calls).toHaveLength(1);
    const call = calls[0]! as OpenAI.Chat.ChatCompletionMessageFunctionToolCall;
    expect(call).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'Paris' });
    expect(call.id).toMatch(/^call_[0-9a-f]{32}$/);
    // The client tool is offered on the wire with the agent's own (none here).
    expect(offeredTools(oai.hits[0]!)).toEqual(['get_weather']);

    const second = await client.chat.completions.create({
      model: 'helper',
      tools: [weather],
      messages: [
        ...user('weather in Paris?'),
        choice.message as Msg,
        { role: 'tool', tool_call_id: call.id, content: 'sunny, 21 C' },
      ],
    });
    expect(second.choices[0]!.finish_reason).toBe('stop');
    expect(second.choices[0]!.message.content).toBe('Final: sunny, 21 C');
    // The model saw its own call (with Caxton's id) followed by the result.
    const msgs = messagesOf(oai.hits[1]!);
    expect(msgs.at(-2)).toMatchObject({
      role: 'assistant',
      tool_calls: [{ id: call.id, function: { name: 'get_weather' } }],
    });
    expect(msgs.at(-1)).toEqual({ role: 'tool', tool_call_id: call.id, content: 'sunny, 21 C' });
  });

  it.each(['calc', 'calc-worker', 'calc-process'])(
    'runs a server-side tool of the same turn and shows its hidden result after the resume (%s)',
    async (agent) => {
      weatherScript(oai, { server: true });
      const first = await client.chat.completions.create({
        model: agent,
        messages: user('calc and weather'),
        tools: [weather],
      });
      const msg = first.choices[0]!.message;
      expect(first.choices[0]!.finish_reason).toBe('tool_calls');
      // Only the client's call is returned; the calculator ran inside Caxton.
      expect(
        msg.tool_calls!.map((c) => (c as OpenAI.Chat.ChatCompletionMessageFunctionToolCall).function.name),
      ).toEqual(['get_weather']);
      expect(offeredTools(oai.hits[0]!)).toEqual(['calculator', 'get_weather']);
      const id = msg.tool_calls![0]!.id;
      const second = await client.chat.completions.create({
        model: agent,
        tools: [weather],
        messages: [...user('calc and weather'), msg as Msg, { role: 'tool', tool_call_id: id, content: 'rainy' }],
      });
      expect(second.choices[0]!.message.content).toBe('Final: 42 | rainy');
      const results = toolResultsOf(oai.hits[1]!);
      expect(results).toEqual([
        { id: 'prov_calc', content: '42' },
        { id, content: 'rainy' },
      ]);
    },
  );

  it('sends client tools, tool_choice and the tool loop to an Anthropic-type provider', async () => {
    weatherScript(ant);
    const first = await client.chat.completions.create({
      model: 'calc-ant',
      messages: user('weather?'),
      tools: [weather],
      tool_choice: 'required',
      parallel_tool_calls: false,
    });
    expect(ant.hits[0]!.body.tool_choice).toEqual({ type: 'any', disable_parallel_tool_use: true });
    expect(offeredTools(ant.hits[0]!)).toEqual(['calculator', 'get_weather']);
    const msg = first.choices[0]!.message;
    const second = await client.chat.completions.create({
      model: 'calc-ant',
      tools: [weather],
      messages: [
        ...user('weather?'),
        msg as Msg,
        { role: 'tool', tool_call_id: msg.tool_calls![0]!.id, content: 'foggy' },
      ],
    });
    expect(second.choices[0]!.message.content).toBe('Final: foggy');
    // The follow-up asked for no tool_choice: none is sent.
    expect(ant.hits[1]!.body.tool_choice).toBeUndefined();
  });

  it('rebuilds the conversation from the messages when the stored execution is gone', async () => {
    weatherScript(oai, { server: true });
    const first = await client.chat.completions.create({
      model: 'calc',
      messages: user('calc and weather'),
      tools: [weather],
    });
    const msg = first.choices[0]!.message;
    cx.server.db.prepare('DELETE FROM suspended_executions').run();
    const second = await client.chat.completions.create({
      model: 'calc',
      tools: [weather],
      messages: [
        { role: 'system', content: 'Be brief.' },
        ...user('calc and weather'),
        msg as Msg,
        { role: 'tool', tool_call_id: msg.tool_calls![0]!.id, content: 'windy' },
      ],
    });
    expect(second.choices[0]!.message.content).toBe('Final: windy');
    // The hidden calculator call is gone with the row: the model sees what the client sent.
    const msgs = messagesOf(oai.hits[1]!);
    expect(toolResultsOf(oai.hits[1]!)).toEqual([{ id: msg.tool_calls![0]!.id, content: 'windy' }]);
    expect(msgs.filter((m) => m.role === 'system').map((m) => m.content as string)[1]).toContain('Be brief.');
  });

  it('deletes the stored execution once resumed, and expired rows are pruned', async () => {
    weatherScript(oai);
    const first = await client.chat.completions.create({
      model: 'helper',
      messages: user('weather?'),
      tools: [weather],
    });
    const id = first.choices[0]!.message.tool_calls![0]!.id;
    const row = cx.server.db
      .prepare(
        'SELECT e.* FROM suspended_tool_calls c JOIN suspended_executions e ON e.id = c.execution_id WHERE c.call_id = ?',
      )
      .get(id) as Record<string, unknown>;
    expect(row).toMatchObject({ agent: 'helper' });
    expect(Number(row.expires_at) - Date.now()).toBeGreaterThan(3_500_000); // the 1 h default
    await client.chat.completions.create({
      model: 'helper',
      tools: [weather],
      messages: [
        ...user('weather?'),
        first.choices[0]!.message as Msg,
        { role: 'tool', tool_call_id: id, content: 'hail' },
      ],
    });
    expect(cx.server.db.prepare('SELECT count(*) FROM suspended_tool_calls WHERE call_id = ?').pluck().get(id)).toBe(0);
  });

  it('streams the tool call as OpenAI chunk deltas with finish_reason tool_calls', async () => {
    weatherScript(oai);
    const stream = await client.chat.completions.create({
      model: 'helper',
      messages: user('weather?'),
      tools: [weather],
      stream: true,
    });
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    const deltas = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(deltas).toHaveLength(1);
    expect(deltas[0]).toMatchObject({
      index: 0,
      type: 'function',
      function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
    });
    expect(deltas[0]!.id).toMatch(/^call_/);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('tool_calls');
    // The SDK's own accumulator puts it together too.
    const s2 = client.chat.completions.stream({ model: 'helper', messages: user('weather?'), tools: [weather] });
    const done = await s2.finalChatCompletion();
    expect(done.choices[0]!.message.tool_calls![0]).toMatchObject({
      type: 'function',
      function: { name: 'get_weather' },
    });
  });
});

describe('tool_choice and parallel_tool_calls', () => {
  it.each([
    ['auto', 'auto'],
    ['none', 'none'],
    ['required', 'required'],
    [
      { type: 'function', function: { name: 'get_weather' } },
      { type: 'function', function: { name: 'get_weather' } },
    ],
  ] as const)('passes tool_choice %j to an OpenAI-type provider', async (choice, wire) => {
    // The model calls the tool: a forced tool_choice is honoured (forced-tool-choice.test.ts has the model that ignores it).
    oai.setScript([{ tool_calls: [{ id: 'prov_w', name: 'get_weather', arguments: { city: 'Oslo' } }] }]);
    await client.chat.completions.create({
      model: 'helper',
      messages: user('hi'),
      tools: [weather],
      tool_choice: choice as OpenAI.Chat.ChatCompletionToolChoiceOption,
      parallel_tool_calls: false,
    });
    expect(oai.hits[0]!.body.tool_choice).toEqual(wire);
    expect(oai.hits[0]!.body.parallel_tool_calls).toBe(false);
    expect(oai.hits[0]!.body.tools[0]).toEqual({ type: 'function', function: weather.function });
  });
});

async function rejection(params: Record<string, unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const e = await client.chat.completions
    .create({
      model: 'calc',
      tools: [weather],
      ...params,
    } as unknown as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming)
    .catch((x: unknown) => x);
  expect(e).toBeInstanceOf(OpenAI.APIError);
  return e as InstanceType<typeof OpenAI.APIError>;
}

describe('bad tool input is a 400 naming the parameter', () => {
  const asked = {
    role: 'assistant',
    content: null,
    tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }],
  };
  const cases: { name: string; params: Record<string, unknown>; param: string; text: RegExp }[] = [
    {
      name: 'a client tool named like the agent tool',
      params: { messages: user('hi'), tools: [{ type: 'function', function: { name: 'calculator' } }] },
      param: 'tools[0].function.name',
      text: /calculator/,
    },
    {
      name: 'a duplicate tool name',
      params: { messages: user('hi'), tools: [weather, weather] },
      param: 'tools[1].function.name',
      text: /twice/,
    },
    {
      name: 'tool_choice required without any tool',
      params: { model: 'helper', tools: [], messages: user('hi'), tool_choice: 'required' },
      param: 'tool_choice',
      text: /needs a tool/,
    },
    {
      name: 'a tool_choice naming no tool',
      params: { messages: user('hi'), tool_choice: { type: 'function', function: { name: 'nope' } } },
      param: 'tool_choice.function.name',
      text: /nope/,
    },
    {
      name: 'a tool result for no call',
      params: { messages: [...user('hi'), { role: 'tool', tool_call_id: 'c-unknown', content: 'x' }] },
      param: 'messages[1].tool_call_id',
      text: /answers no tool call/,
    },
    {
      name: 'an unanswered call of a tool not offered',
      params: {
        messages: [
          ...user('hi'),
          { ...asked, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'teleport', arguments: '{}' } }] },
        ],
      },
      param: 'messages[1].tool_calls',
      text: /c1 \(teleport\)/,
    },
    {
      name: 'a tool message naming another tool',
      params: {
        messages: [...user('hi'), asked, { role: 'tool', tool_call_id: 'c1', name: 'teleport', content: 'x' }],
      },
      param: 'messages[2].name',
      text: /teleport/,
    },
    {
      name: 'missing results',
      params: {
        messages: [
          ...user('hi'),
          {
            ...asked,
            tool_calls: [
              ...asked.tool_calls,
              { id: 'c2', type: 'function', function: { name: 'get_weather', arguments: '{}' } },
            ],
          },
          { role: 'tool', tool_call_id: 'c1', content: 'x' },
        ],
      },
      param: 'messages[1].tool_calls',
      text: /c2 \(get_weather\)/,
    },
    {
      name: 'too many tools',
      params: {
        messages: user('hi'),
        tools: Array.from({ length: 129 }, (_, i) => ({ type: 'function', function: { name: `t${i}` } })),
      },
      param: 'tools',
      text: /128/,
    },
  ];
  it.each(cases)('$name', async ({ params, param, text }) => {
    const e = await rejection(params);
    expect(e.status).toBe(400);
    expect(e.param).toBe(param);
    expect(e.message).toMatch(text);
    expect(oai.hits).toHaveLength(0);
  });

  it('missing results for a stored execution name the pending calls', async () => {
    oai.setScript((hit) =>
      toolResultsOf(hit).length === 0
        ? {
            tool_calls: [
              { id: 'a', name: 'get_weather', arguments: { city: 'A' } },
              { id: 'b', name: 'get_weather', arguments: { city: 'B' } },
            ],
          }
        : { content: 'done' },
    );
    const first = await client.chat.completions.create({
      model: 'helper',
      messages: user('two cities'),
      tools: [weather],
    });
    const [a, b] = first.choices[0]!.message.tool_calls!;
    // The client answers only the first call, and leaves the assistant message out.
    const e = await client.chat.completions
      .create({
        model: 'helper',
        tools: [weather],
        messages: [...user('two cities'), { role: 'tool', tool_call_id: a!.id, content: 'x' }],
      })
      .catch((x: unknown) => x as InstanceType<typeof OpenAI.APIError>);
    expect(e).toBeInstanceOf(OpenAI.APIError);
    expect((e as InstanceType<typeof OpenAI.APIError>).status).toBe(400);
    expect((e as InstanceType<typeof OpenAI.APIError>).message).toContain(b!.id);
  });
});

describe('suspended executions belong to their principal', () => {
  let ax: Caxton;
  let admin: string;
  beforeAll(async () => {
    ax = await startCaxton({
      config: {
        auth: { enabled: true },
        llm: { default_provider: 'oai', providers: { oai: openaiProvider(oai.url) } },
      },
    });
    admin = readFileSync(join(ax.dir, 'data', 'admin.key'), 'utf8').trim();
    const res = await fetch(`${ax.url}/api/v1/agents`, {
      method: 'POST',
      headers: { 'content-type': 'application/toml', authorization: `Bearer ${admin}` },
      body: agentToml({ name: 'calc', tools: ['calculator'] }),
    });
    expect(res.status).toBe(201);
  });
  afterAll(async () => ax?.close());

  async function keyFor(name: string): Promise<string> {
    const res = await fetch(`${ax.url}/api/v1/keys`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
      body: JSON.stringify({ name, role: 'invoker' }),
    });
    expect(res.status, await res.clone().text()).toBe(201);
    return ((await res.json()) as { secret: string }).secret;
  }

  it('another principal gets a rebuilt conversation, without the hidden server-side results', async () => {
    const alice = new OpenAI({ baseURL: `${ax.url}/v1`, apiKey: await keyFor('alice'), maxRetries: 0 });
    const bob = new OpenAI({ baseURL: `${ax.url}/v1`, apiKey: await keyFor('bob'), maxRetries: 0 });
    weatherScript(oai, { server: true });
    const first = await alice.chat.completions.create({
      model: 'calc',
      messages: user('calc and weather'),
      tools: [weather],
    });
    const msg = first.choices[0]!.message;
    const follow = (c: OpenAI) =>
      c.chat.completions.create({
        model: 'calc',
        tools: [weather],
        messages: [
          ...user('calc and weather'),
          msg as Msg,
          { role: 'tool', tool_call_id: msg.tool_calls![0]!.id, content: 'cloudy' },
        ],
      });
    expect((await follow(bob)).choices[0]!.message.content).toBe('Final: cloudy');
    // Alice's execution is still there for her, with the calculator's result.
    expect((await follow(alice)).choices[0]!.message.content).toBe('Final: 42 | cloudy');
  });
});
