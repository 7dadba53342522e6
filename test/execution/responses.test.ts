/**
 * POST /v1/responses (and GET/DELETE /v1/responses/{id}) driven by the official `openai`
 * package: plain and streamed responses (the event order), text.format, previous_response_id
 * chaining and its 404s, and parameters refused by name. Real servers, the scripted provider and
 * the HTTP LLM stub; no mocks.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_INSTRUCTIONS_HEADER } from '../../src/execution/run-agent.js';
import {
  openaiProvider,
  removeTempDirs,
  setTestKeys,
  startCaxton,
  tempDir,
  writeScript,
  type Caxton,
} from './helpers/caxton.js';
import { startLlmStub, streamThenError, type LlmStub } from './helpers/llm-stub.js';
import { messagesOf } from './helpers/wire.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir } from '../helpers/tmp.js';

let cx: Caxton;
let client: OpenAI;

beforeAll(async () => {
  const script = writeScript(tempDir(), {
    rules: [
      { name: 'where', match: 'where do prompts go', content: 'SYSTEM<{{system}}> USER<{{request}}>' },
      { name: 'good-json', match: 'good json', content: '{"city":"Paris","population":2100000}' },
      { name: 'wrong-shape', match: 'wrong shape', content: '{"city":42}' },
      {
        name: 'weather',
        match: 'weather',
        turns: [
          { tool_calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }] },
          { content: 'Weather: {{last_tool_result}}' },
        ],
      },
      {
        name: 'mixed',
        match: 'mixed tools',
        turns: [
          {
            tool_calls: [
              { name: 'calculator', arguments: { expression: '6*7' } },
              { name: 'get_weather', arguments: { city: 'Oslo' } },
            ],
          },
          { content: 'Results: {{tool_results}}' },
        ],
      },
      { name: 'echo', content: 'Echo: {{request}}' },
    ],
  });
  cx = await startCaxton({
    config: { llm: { default_provider: 'demo', providers: { demo: { type: 'scripted', script } } } },
  });
  await cx.deploy({ name: 'plain', system_prompt: 'You are Plain.' });
  await cx.deploy({ name: 'calc', system_prompt: 'You are Calc.', tools: ['calculator'] });
  await cx.deploy({
    name: 'calc-worker',
    system_prompt: 'You are Calc.',
    tools: ['calculator'],
    execution: { isolation: 'worker' },
  });
  client = new OpenAI({ baseURL: `${cx.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 });
});

afterAll(async () => {
  await cx?.close();
  removeTempDirs();
});

type APIError = InstanceType<typeof OpenAI.APIError>;

async function rejection(params: Record<string, unknown>): Promise<APIError> {
  const e = await client.responses
    .create({ model: 'plain', input: 'hi', ...params } as OpenAI.Responses.ResponseCreateParamsNonStreaming)
    .catch((x: unknown) => x);
  expect(e).toBeInstanceOf(OpenAI.APIError);
  return e as APIError;
}

describe('plain responses', () => {
  it('a string input answers with a response object the SDK reads', async () => {
    const r = await client.responses.create({ model: 'plain', input: 'hello there' });
    expect(r.id).toMatch(/^resp_[0-9a-f]{48}$/);
    expect(r.object).toBe('response');
    expect(r.status).toBe('completed');
    expect(r.model).toBe('plain');
    expect(r.output_text).toBe('Echo: hello there');
    expect(r.output).toHaveLength(1);
    const msg = r.output[0] as OpenAI.Responses.ResponseOutputMessage;
    expect(msg).toMatchObject({
      type: 'message',
      role: 'assistant',
      status: 'completed',
      content: [{ type: 'output_text', text: 'Echo: hello there', annotations: [] }],
    });
    expect(msg.id).toMatch(/^msg_/);
    expect(r.usage!.total_tokens).toBe(r.usage!.input_tokens + r.usage!.output_tokens);
    expect(r.usage!.output_tokens).toBeGreaterThan(0);
    expect(r.error).toBeNull();
    expect((r as unknown as { store: boolean }).store).toBe(true);
  });

  it('instructions and system/developer items go after the agent prompt as the client instructions', async () => {
    const r = await client.responses.create({
      model: 'plain',
      instructions: 'Be terse.',
      input: [
        { role: 'developer', content: 'Answer in French.' },
        { role: 'user', content: [{ type: 'input_text', text: 'where do prompts go?' }] },
      ],
    });
    expect(r.output_text).toBe(
      `SYSTEM<You are Plain.\n---\n${CLIENT_INSTRUCTIONS_HEADER}\n\nBe terse.\n\nAnswer in French.> USER<where do prompts go?>`,
    );
    expect(r.instructions).toBe('Be terse.');
  });

  it('echoes metadata and accepts the no-op parameters', async () => {
    const r = await client.responses.create({
      model: 'plain',
      input: 'accepted',
      metadata: { team: 'a' },
      user: 'u-1',
      truncation: 'disabled',
      include: [],
      tools: [],
      tool_choice: 'auto',
      parallel_tool_calls: false,
      temperature: 0.2,
      top_p: 0.9,
      max_output_tokens: 100,
      store: false,
      text: { format: { type: 'text' } },
    });
    expect(r.output_text).toBe('Echo: accepted');
    expect(r.metadata).toEqual({ team: 'a' });
    expect(r.parallel_tool_calls).toBe(false);
    expect(r.temperature).toBe(0.2);
    expect(r.max_output_tokens).toBe(100);
  });
});

describe('streamed responses', () => {
  it('send the documented event sequence, numbered, and end with response.completed', async () => {
    const stream = await client.responses.create({ model: 'plain', input: 'one two three', stream: true });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const e of stream) events.push(e);
    const types = events.map((e) => e.type);
    const deltas = types.filter((t) => t === 'response.output_text.delta').length;
    expect(deltas).toBeGreaterThan(1);
    expect(types).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      ...Array<string>(deltas).fill('response.output_text.delta'),
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const text = events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join('');
    expect(text).toBe('Echo: one two three');
    const created = events[0] as OpenAI.Responses.ResponseCreatedEvent;
    const completed = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
    expect(created.response.status).toBe('in_progress');
    expect(completed.response.id).toBe(created.response.id);
    expect(completed.response.status).toBe('completed');
    expect(completed.response.usage!.total_tokens).toBeGreaterThan(0);
    const added = events[2] as OpenAI.Responses.ResponseOutputItemAddedEvent;
    const done = events.at(-2) as OpenAI.Responses.ResponseOutputItemDoneEvent;
    expect(done.item.id).toBe(added.item.id);
    expect(done.item).toMatchObject({
      type: 'message',
      status: 'completed',
      content: [{ type: 'output_text', text: 'Echo: one two three' }],
    });
    expect(completed.response.output).toEqual([done.item]);
  });

  it("the SDK's responses.stream() helper assembles the final response", async () => {
    const stream = client.responses.stream({ model: 'plain', input: 'helper' });
    const final = await stream.finalResponse();
    expect(final.output_text).toBe('Echo: helper');
  });

  it('a streamed response is stored and retrievable', async () => {
    const stream = await client.responses.create({ model: 'plain', input: 'keep me', stream: true });
    let id = '';
    for await (const e of stream) if (e.type === 'response.completed') id = e.response.id;
    const got = await client.responses.retrieve(id);
    expect(got.output_text).toBe('Echo: keep me');
  });
});

describe('text.format', () => {
  const schema = {
    type: 'object',
    properties: { city: { type: 'string' }, population: { type: 'integer' } },
    required: ['city', 'population'],
    additionalProperties: false,
  };
  const format = { type: 'json_schema', name: 'city', schema, strict: true } as const;

  it('a reply matching the json_schema passes', async () => {
    const r = await client.responses.create({ model: 'plain', input: 'good json', text: { format } });
    expect(JSON.parse(r.output_text)).toEqual({ city: 'Paris', population: 2100000 });
    expect(r.text?.format).toMatchObject({ type: 'json_schema', name: 'city' });
  });

  it('a reply that does not match is a 502 invalid_structured_output naming the violation', async () => {
    const e = await rejection({ input: 'wrong shape', text: { format } });
    expect(e.status).toBe(502);
    expect(e.code).toBe('invalid_structured_output');
    expect(e.message).toMatch(/\/city must be string/);
  });

  it('streamed, a reply that does not match ends in response.failed', async () => {
    const stream = await client.responses.create({
      model: 'plain',
      input: 'wrong shape',
      text: { format },
      stream: true,
    });
    const types: string[] = [];
    let failed: OpenAI.Responses.ResponseFailedEvent | undefined;
    for await (const e of stream) {
      types.push(e.type);
      if (e.type === 'response.failed') failed = e;
    }
    expect(types).not.toContain('response.completed');
    expect(types.at(-1)).toBe('response.failed');
    expect(failed!.response.status).toBe('failed');
    expect(failed!.response.error).toMatchObject({ code: 'invalid_structured_output' });
    expect(failed!.response.error!.message).toMatch(/does not match the schema "city"/);
  });

  it('json_object refuses prose; a schema that does not compile is a 400 naming text.format.schema', async () => {
    const e = await rejection({ input: 'plain prose', text: { format: { type: 'json_object' } } });
    expect(e.status).toBe(502);
    const bad = await rejection({
      text: { format: { type: 'json_schema', name: 'bad', schema: { type: 'no-such-type' } } },
    });
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad.param).toBe('text.format.schema');
  });
});

const weatherTool = {
  type: 'function' as const,
  name: 'get_weather',
  description: 'The weather in a city',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string' } },
    required: ['city'],
    additionalProperties: false,
  },
  strict: true,
};

describe('client function tools', () => {
  it('a call comes back as a function_call item; its output, via previous_response_id, gets the final answer', async () => {
    const first = await client.responses.create({
      model: 'plain',
      input: 'what is the weather?',
      tools: [weatherTool],
    });
    expect(first.status).toBe('completed');
    expect(first.output).toHaveLength(1);
    const call = first.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call).toMatchObject({ type: 'function_call', name: 'get_weather', status: 'completed' });
    expect(JSON.parse(call.arguments)).toEqual({ city: 'Paris' });
    expect(call.call_id).toMatch(/^call_[0-9a-f]{32}$/);
    expect(call.id).toMatch(/^fc_/);
    const second = await client.responses.create({
      model: 'plain',
      previous_response_id: first.id,
      tools: [weatherTool],
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'sunny, 21 °C' }],
    });
    expect(second.output_text).toBe('Weather: sunny, 21 °C');
  });

  it.each(['calc', 'calc-worker'])(
    "a client resending the whole conversation resumes the suspended execution (the agent's own hidden tool result included; %s)",
    async (agent) => {
      const first = await client.responses.create({ model: agent, input: 'mixed tools please', tools: [weatherTool] });
      const calls = first.output.filter((o) => o.type === 'function_call');
      expect(calls.map((c) => c.name)).toEqual(['get_weather']);
      const call = calls[0]!;
      const second = await client.responses.create({
        model: agent,
        tools: [weatherTool],
        input: [
          { role: 'user', content: 'mixed tools please' },
          call,
          { type: 'function_call_output', call_id: call.call_id, output: 'rain' },
        ],
      });
      // The calculator ran inside Caxton in the first request; its result is only in the suspended transcript.
      expect(second.output_text).toBe('Results: 42\nrain');
    },
  );

  it('under previous_response_id, outputs followed by a new user turn continue the suspended execution exactly', async () => {
    const first = await client.responses.create({ model: 'calc', input: 'mixed tools please', tools: [weatherTool] });
    const call = first.output.find((o) => o.type === 'function_call')!;
    const second = await client.responses.create({
      model: 'calc',
      previous_response_id: first.id,
      tools: [weatherTool],
      input: [
        { type: 'function_call_output', call_id: call.call_id, output: 'snow' },
        { role: 'user', content: 'mixed tools, summed up?' },
      ],
    });
    // A rebuilt conversation would lack the calculator's 42: it only ran inside the suspended execution.
    expect(second.output_text).toBe('Results: 42\nsnow');
    // Once continued, the execution is no longer suspended: the same outputs again are rebuilt from the stored conversation.
    const again = await client.responses.create({
      model: 'calc',
      previous_response_id: first.id,
      tools: [weatherTool],
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'hail' }],
    });
    expect(again.output_text).toBe('Results: hail');
  });

  it('a system item cannot be added to a continued execution', async () => {
    const first = await client.responses.create({
      model: 'plain',
      input: 'what is the weather?',
      tools: [weatherTool],
    });
    const call = first.output.find((o) => o.type === 'function_call')!;
    const e = await rejection({
      previous_response_id: first.id,
      tools: [weatherTool],
      input: [
        { role: 'system', content: 'new rules' },
        { type: 'function_call_output', call_id: call.call_id, output: 'x' },
      ],
    });
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe('input[0].role');
  });

  it('without a suspended execution the conversation is rebuilt from the items sent', async () => {
    const r = await client.responses.create({
      model: 'plain',
      tools: [weatherTool],
      input: [
        { role: 'user', content: 'what is the weather?' },
        { type: 'function_call', call_id: 'call_own_1', name: 'get_weather', arguments: '{"city":"Rome"}' },
        { type: 'function_call_output', call_id: 'call_own_1', output: [{ type: 'input_text', text: 'hot' }] },
      ],
    });
    expect(r.output_text).toBe('Weather: hot');
  });

  it('streamed: the function_call item comes with its argument events', async () => {
    const stream = await client.responses.create({
      model: 'plain',
      input: 'weather, streamed',
      tools: [weatherTool],
      stream: true,
    });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const e of stream) events.push(e);
    expect(events.map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.completed',
    ]);
    const done = events[4] as OpenAI.Responses.ResponseFunctionCallArgumentsDoneEvent;
    expect(done.name).toBe('get_weather');
    expect(JSON.parse(done.arguments)).toEqual({ city: 'Paris' });
    const completed = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
    expect(completed.response.output).toEqual([(events[5] as OpenAI.Responses.ResponseOutputItemDoneEvent).item]);
  });

  it("a client tool named like one of the agent's own is a 400 naming tools[i].name", async () => {
    const e = await rejection({ model: 'calc', tools: [{ ...weatherTool, name: 'calculator' }] });
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe('tools[0].name');
  });

  const call = (call_id: string, args = '{"city":"Rome"}') => ({
    type: 'function_call',
    call_id,
    name: 'get_weather',
    arguments: args,
  });
  const output = (call_id: string) => ({ type: 'function_call_output', call_id, output: 'x' });
  const bad: { name: string; params: Record<string, unknown>; param: string; text: string }[] = [
    {
      name: 'an output whose call is nowhere',
      params: { input: [{ role: 'user', content: 'hi' }, output('call_x')] },
      param: 'input[1].call_id',
      text: 'call_x',
    },
    {
      name: 'a call without its output',
      params: { input: [{ role: 'user', content: 'hi' }, call('call_a'), call('call_b'), output('call_a')] },
      param: 'input[1]',
      text: 'call_b',
    },
    {
      name: 'arguments that are not JSON',
      params: { input: [{ role: 'user', content: 'hi' }, call('call_a', '{nope'), output('call_a')] },
      param: 'input[1].arguments',
      text: 'not JSON',
    },
    {
      name: 'a call of a tool not in tools, without its output',
      params: {
        input: [
          { role: 'user', content: 'hi' },
          { ...call('call_a'), name: 'other_tool' },
        ],
      },
      param: 'input[1]',
      text: 'other_tool',
    },
    {
      name: 'a tool defined twice',
      params: { tools: [weatherTool, weatherTool] },
      param: 'tools[1].name',
      text: 'twice',
    },
    {
      name: 'a tool_choice naming no tool',
      params: { tool_choice: { type: 'function', name: 'nope' } },
      param: 'tool_choice.name',
      text: 'nope',
    },
  ];
  for (const c of bad) {
    it(`${c.name} is a 400 naming ${c.param}`, async () => {
      const e = await rejection({ tools: [weatherTool], ...c.params });
      expect(e).toBeInstanceOf(OpenAI.BadRequestError);
      expect(e.param).toBe(c.param);
      expect(e.message).toContain(c.text);
      expect(e.message).toContain(c.param);
    });
  }
});

describe('content parts of input items', () => {
  it('an earlier output echoed back with refusal: null beside its text is accepted', async () => {
    const r = await client.responses.create({
      model: 'plain',
      input: [
        { role: 'user', content: [{ type: 'input_text', text: 'first' }] },
        { role: 'assistant', content: [{ type: 'output_text', text: 'Echo: first', refusal: null }] },
        { role: 'user', content: [{ type: 'input_text', text: 'second', refusal: null }] },
      ],
    } as unknown as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    expect(r.output_text).toBe('Echo: second');
  });

  it('a part with a field of the wrong type is refused naming that field', async () => {
    const e = await rejection({
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'hi', refusal: 7 }] }],
    });
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe('input[0].content[0].refusal');
    expect(e.message).toContain('input[0].content[0].refusal must be a string, got 7');
  });

  it('a content of none of the accepted forms names the field and the forms', async () => {
    const e = await rejection({ input: [{ role: 'user', content: 42 }] });
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe('input[0].content');
    expect(e.message).toContain('input[0].content has none of the accepted forms (a string or a list), got 42');
  });
});

describe('background responses', () => {
  it('answer queued at once; retrieve follows the durable run to its answer, which a later response continues', async () => {
    const r = await client.responses.create({ model: 'plain', input: 'in the background', background: true });
    expect(r.background).toBe(true);
    expect(['queued', 'in_progress']).toContain(r.status);
    let got = r;
    // Polled for up to 20 s: a loaded CI machine runs many suites beside this one.
    for (let i = 0; i < 400 && (got.status === 'queued' || got.status === 'in_progress'); i++) {
      await new Promise((res) => setTimeout(res, 50));
      got = await client.responses.retrieve(r.id);
    }
    expect(got.status).toBe('completed');
    expect(got.background).toBe(true);
    expect(got.output_text).toBe('Echo: in the background');
    const next = await client.responses.create({ model: 'plain', input: 'and then', previous_response_id: r.id });
    expect(next.status).toBe('completed');
    // The run is listed with its origin.
    const runs = (await (await fetch(`${cx.url}/api/v1/runs?origin=openai`)).json()) as { runs: { id: string }[] };
    expect(runs.runs.map((x) => x.id)).toContain(`exec_${r.id.slice('resp_'.length)}`);
  });

  it('cancel on a response that did not run in the background is refused', async () => {
    const r = await client.responses.create({ model: 'plain', input: 'plain one' });
    const e = await client.responses.cancel(r.id).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
  });
});

describe('refusals by name', () => {
  const cases: { name: string; params: Record<string, unknown>; param: string; code: string }[] = [
    { name: 'an unknown parameter', params: { frobnicate: 1 }, param: 'frobnicate', code: 'unsupported_parameter' },
    { name: 'reasoning', params: { reasoning: { effort: 'high' } }, param: 'reasoning', code: 'unsupported_parameter' },
    { name: 'conversation', params: { conversation: 'conv_1' }, param: 'conversation', code: 'unsupported_parameter' },
    {
      name: 'background without store',
      params: { background: true, store: false },
      param: 'store',
      code: 'unsupported_value',
    },
    { name: 'truncation auto', params: { truncation: 'auto' }, param: 'truncation', code: 'unsupported_value' },
    {
      name: 'include',
      params: { include: ['message.output_text.logprobs'] },
      param: 'include[0]',
      code: 'unsupported_value',
    },
    {
      name: 'a function tool without a name',
      params: { tools: [{ type: 'function', parameters: {} }] },
      param: 'tools[0].name',
      code: 'invalid_request',
    },
    {
      name: 'tool_choice allowed_tools',
      params: { tools: [weatherTool], tool_choice: { type: 'allowed_tools', mode: 'auto', tools: [] } },
      param: 'tool_choice.type',
      code: 'unsupported_value',
    },
    {
      name: 'a web_search tool',
      params: { tools: [{ type: 'web_search' }] },
      param: 'tools[0].type',
      code: 'unsupported_value',
    },
    {
      name: 'a file_search tool',
      params: { tools: [{ type: 'file_search', vector_store_ids: ['vs_1'] }] },
      param: 'tools[0].type',
      code: 'unsupported_value',
    },
    {
      name: 'an image input part',
      params: { input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'data:,' }] }] },
      param: 'input[0].content[0].type',
      code: 'unsupported_value',
    },
    {
      name: 'an item_reference',
      params: { input: [{ type: 'item_reference', id: 'msg_1' }] },
      param: 'input[0].type',
      code: 'unsupported_value',
    },
    {
      name: 'an unknown message field',
      params: { input: [{ role: 'user', content: 'hi', colour: 'red' }] },
      param: 'input[0].colour',
      code: 'unsupported_parameter',
    },
    {
      name: 'text.verbosity',
      params: { text: { verbosity: 'low' } },
      param: 'text.verbosity',
      code: 'unsupported_parameter',
    },
    {
      name: 'an unknown field of text.format',
      params: { text: { format: { type: 'json_object', colour: 'red' } } },
      param: 'text.format',
      code: 'invalid_request',
    },
  ];
  for (const c of cases) {
    it(`${c.name} → BadRequestError with param ${c.param}`, async () => {
      const e = await rejection(c.params);
      expect(e).toBeInstanceOf(OpenAI.BadRequestError);
      expect(e.param).toBe(c.param);
      expect(e.code).toBe(c.code);
      expect(e.type).toBe('invalid_request_error');
      expect(e.message).toContain(c.param);
    });
  }

  it('a streaming request is refused before the stream opens', async () => {
    const e = await client.responses
      .create({ model: 'plain', input: 'hi', stream: true, background: true })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect((e as APIError).param).toBe('background');
  });

  it('an unknown agent is a NotFoundError naming model', async () => {
    const e = await rejection({ model: 'no-such-agent' });
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect(e.code).toBe('agent_not_found');
  });
});

describe('stored responses and previous_response_id', () => {
  let stub: LlmStub;
  let sx: Caxton;
  let sc: OpenAI;
  beforeAll(async () => {
    setTestKeys();
    stub = await startLlmStub([{ content: 'first answer' }, { content: 'second answer' }, { content: 'third answer' }]);
    sx = await startCaxton({
      config: { llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } } },
    });
    await sx.deploy({ name: 'chatty', system_prompt: 'You are Chatty.' });
    sc = new OpenAI({ baseURL: `${sx.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 });
  });
  afterAll(async () => {
    await sx?.close();
    await stub?.close();
  });

  it('a continuation sends the earlier turns to the model, without the earlier instructions', async () => {
    stub.reset();
    const first = await sc.responses.create({
      model: 'chatty',
      instructions: 'Only for the first.',
      input: 'my name is Ada',
    });
    expect(first.output_text).toBe('first answer');
    const second = await sc.responses.create({
      model: 'chatty',
      previous_response_id: first.id,
      input: 'what is my name?',
    });
    expect(second.output_text).toBe('second answer');
    expect(second.previous_response_id).toBe(first.id);
    const sent = messagesOf(stub.hits[1]!).map((m: { role: string; content: string }) => [m.role, m.content]);
    expect(sent).toEqual([
      ['system', 'You are Chatty.'],
      ['user', 'my name is Ada'],
      ['assistant', 'first answer'],
      ['user', 'what is my name?'],
    ]);
    // The chain goes on through the second response.
    await sc.responses.create({ model: 'chatty', previous_response_id: second.id, input: 'and again?' });
    expect(messagesOf(stub.hits[2]!).filter((m: { role: string }) => m.role === 'user')).toHaveLength(3);
  });

  it('a model failing mid-stream ends the stream with response.failed, and nothing is stored', async () => {
    stub.setScript([streamThenError(['partial ', 'text '], 'the model broke')]);
    try {
      const stream = await sc.responses.create({ model: 'chatty', input: 'fail please', stream: true });
      const events: OpenAI.Responses.ResponseStreamEvent[] = [];
      for await (const e of stream) events.push(e);
      const types = events.map((e) => e.type);
      expect(types.slice(0, 4)).toEqual([
        'response.created',
        'response.in_progress',
        'response.output_item.added',
        'response.content_part.added',
      ]);
      expect(types).toContain('response.output_text.delta');
      expect(types).not.toContain('response.completed');
      const failed = events.at(-1) as OpenAI.Responses.ResponseFailedEvent;
      expect(failed.type).toBe('response.failed');
      expect(failed.response.status).toBe('failed');
      expect(failed.response.error).toMatchObject({ code: 'llm_error' });
      expect(failed.response.error!.message).toContain('the model broke');
      const e = await sc.responses.retrieve(failed.response.id).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    } finally {
      stub.setScript([{ content: 'ok' }]);
    }
  });

  it('retrieve and delete a stored response; afterwards it is a 404', async () => {
    const r = await sc.responses.create({ model: 'chatty', input: 'store this' });
    const got = await sc.responses.retrieve(r.id);
    expect(got.id).toBe(r.id);
    expect(got.output_text).toBe(r.output_text);
    await sc.responses.delete(r.id);
    const e = await sc.responses.retrieve(r.id).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect((e as APIError).code).toBe('response_not_found');
  });

  it('store: false keeps nothing; an unknown previous_response_id is a 404 naming it', async () => {
    const r = await sc.responses.create({ model: 'chatty', input: 'forget this', store: false });
    expect((r as unknown as { store: boolean }).store).toBe(false);
    const e = await sc.responses
      .create({ model: 'chatty', previous_response_id: r.id, input: 'more' })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect((e as APIError).code).toBe('response_not_found');
    expect((e as APIError).param).toBe('previous_response_id');
    const unknown = await sc.responses
      .create({ model: 'chatty', previous_response_id: 'resp_nope', input: 'more' })
      .catch((x: unknown) => x);
    expect((unknown as APIError).param).toBe('previous_response_id');
  });
});

describe('stored responses belong to their caller', () => {
  let srv: TestServer;
  const keys: Record<string, OpenAI> = {};
  beforeAll(async () => {
    const dir = makeTempDir('caxton-resp-auth-');
    writeFileSync(join(dir, 'replies.toml'), 'fallback = "ok"\n');
    srv = await startTestServer({
      dir,
      toml: '[auth]\nenabled = true\n\n[llm]\ndefault_provider = "s"\n[llm.providers.s]\ntype = "scripted"\nscript = "replies.toml"\n',
      agentFiles: {
        'helper.toml': 'name = "helper"\nsystem_prompt = "You help."\n',
        'other.toml': 'name = "other"\nsystem_prompt = "You help."\n',
      },
    });
    const admin = readFileSync(join(srv.dataDir, 'admin.key'), 'utf8').trim();
    for (const [name, agents] of [
      ['alice', undefined],
      ['bob', undefined],
      ['only-other', ['other']],
    ] as const) {
      const res = await fetch(`${srv.url}/api/v1/keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name, role: 'developer', ...(agents && { agents }) }),
      });
      expect(res.status).toBe(201);
      keys[name] = new OpenAI({
        baseURL: `${srv.url}/v1`,
        apiKey: ((await res.json()) as { secret: string }).secret,
        maxRetries: 0,
      });
    }
  });
  afterAll(() => srv?.close());

  it("another principal's response id is a 404, for retrieve, delete and previous_response_id", async () => {
    const r = await keys.alice!.responses.create({ model: 'helper', input: 'hi' });
    expect(r.output_text).toBe('ok');
    expect((await keys.alice!.responses.retrieve(r.id)).id).toBe(r.id);
    for (const attempt of [
      () => keys.bob!.responses.retrieve(r.id),
      () => keys.bob!.responses.delete(r.id),
      () => keys.bob!.responses.create({ model: 'helper', previous_response_id: r.id, input: 'more' }),
    ]) {
      const e = await attempt().catch((x: unknown) => x);
      expect(e).toBeInstanceOf(OpenAI.NotFoundError);
      expect((e as APIError).code).toBe('response_not_found');
    }
    expect((await keys.alice!.responses.retrieve(r.id)).id).toBe(r.id);
  });

  it('a key scoped to other agents may not use this one; a wrong key is an AuthenticationError', async () => {
    const denied = await keys['only-other']!.responses.create({ model: 'helper', input: 'hi' }).catch(
      (x: unknown) => x,
    );
    expect(denied).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((await keys['only-other']!.responses.create({ model: 'other', input: 'hi' })).output_text).toBe('ok');
    const bad = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'cxk_wrong', maxRetries: 0 });
    expect(await bad.responses.create({ model: 'helper', input: 'hi' }).catch((x: unknown) => x)).toBeInstanceOf(
      OpenAI.AuthenticationError,
    );
  });
});
