/**
 * A forced tool_choice ("required", or a named function) that the model does not honour — it
 * answers in text, or calls another tool — is a 502 tool_choice_not_honoured on every surface:
 * the execution core (Executor.invoke, the library's invoke API, in-process and in a worker),
 * /v1/chat/completions and /v1/responses, streamed or not, and LangChain's function-calling
 * structured output gets an error instead of `undefined`. The model is an OpenAI-type LLM stub
 * that ignores tool_choice.
 */
import { ChatOpenAI } from '@langchain/openai';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { ExecutionEvent } from '../../src/execution/index.js';
import { assertToolChoiceHonoured } from '../../src/execution/tool-choice.js';
import type { ChatResponse, ToolChoice } from '../../src/llm/index.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { openaiProvider, parseSse, removeTempDirs, setTestKeys, startCaxton, type Caxton } from './helpers/caxton.js';
import { startLlmStub, type LlmStub, type Reply } from './helpers/llm-stub.js';

let oai: LlmStub;
let cx: Caxton;
let client: OpenAI;

beforeAll(async () => {
  setTestKeys();
  oai = await startLlmStub();
  cx = await startCaxton({ config: { llm: { default_provider: 'oai', providers: { oai: openaiProvider(oai.url) } } } });
  await cx.deploy({ name: 'helper', system_prompt: 'You are Helper.' });
  await cx.deploy({ name: 'calc', system_prompt: 'You are Calc.', tools: ['calculator'] });
  await cx.deploy({
    name: 'calc-worker',
    system_prompt: 'You are Calc.',
    tools: ['calculator'],
    execution: { isolation: 'worker' },
  });
  client = new OpenAI({ baseURL: `${cx.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 20_000 });
});

afterAll(async () => {
  await cx?.close();
  await oai?.close();
  removeTempDirs();
});

beforeEach(() => oai.reset());

const prose: Reply = { content: 'Sure, the weather in Paris is sunny.' };
const callsCalculator: Reply = { tool_calls: [{ id: 'prov_c', name: 'calculator', arguments: { expression: '6*7' } }] };
const weather = {
  type: 'function' as const,
  function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
};
const weatherTool = {
  type: 'function' as const,
  name: 'get_weather',
  parameters: { type: 'object', properties: { city: { type: 'string' } } },
  strict: false,
};

async function apiError(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const e = await p.catch((x: unknown) => x);
  expect(e).toBeInstanceOf(OpenAI.APIError);
  return e as InstanceType<typeof OpenAI.APIError>;
}

describe('assertToolChoiceHonoured', () => {
  const reply = (...names: string[]): ChatResponse => ({
    provider: 'p',
    model: 'm',
    content: names.length === 0 ? 'text' : '',
    tool_calls: names.map((name, i) => ({ id: `c${i}`, name, arguments: {} })),
    usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 },
    finish_reason: names.length === 0 ? 'stop' : 'tool_calls',
  });
  const passes: [ToolChoice | undefined, string[]][] = [
    [undefined, []],
    ['auto', []],
    ['none', ['a']],
    ['required', ['a']],
    [{ name: 'b' }, ['a', 'b']],
  ];
  it.each(passes)('%j with calls %j passes', (choice, names) => {
    expect(() => assertToolChoiceHonoured('x', choice, reply(...names))).not.toThrow();
  });

  it('names every tool the model called instead of the forced one', () => {
    expect(() => assertToolChoiceHonoured('x', { name: 'b' }, reply('a', 'c'))).toThrow(
      'the model of agent "x" was forced to call the tool "b" (tool_choice), but it called "a", "c" instead',
    );
  });
});

describe('the execution core (Executor.invoke)', () => {
  it.each(['calc', 'calc-worker'])(
    'a named tool the model did not call fails the execution, before any tool runs (%s)',
    async (agent) => {
      oai.setScript([prose]);
      const e = await cx.server.executor
        .invoke(agent, { request: 'what is 6*7?', tool_choice: { name: 'calculator' } })
        .catch((x: unknown) => x);
      expect(e).toBeInstanceOf(CaxtonError);
      expect(e).toMatchObject({
        code: 'tool_choice_not_honoured',
        status: 502,
        details: { param: 'tool_choice', tool_choice: { name: 'calculator' }, called: [] },
      });
      expect((e as CaxtonError).message).toBe(
        `the model of agent "${agent}" was forced to call the tool "calculator" (tool_choice), but it answered in text without calling any tool; retry the request, or use a model that follows tool_choice`,
      );
      expect(oai.hits).toHaveLength(1);
    },
  );

  it('"required" is honoured by a call of any tool, and holds for the first model call only', async () => {
    oai.setScript([callsCalculator, { content: 'It is 42.' }]);
    const res = await cx.server.executor.invoke('calc', { request: 'what is 6*7?', tool_choice: 'required' });
    expect(res.content).toBe('It is 42.');
    expect(res.tool_calls.map((c) => c.result)).toEqual(['42']);
    expect(oai.hits.map((h) => h.body.tool_choice)).toEqual(['required', undefined]);
  });

  it('streamed: the text is streamed, then the execution fails', async () => {
    oai.setScript([prose]);
    const events: ExecutionEvent[] = [];
    const e = await cx.server.executor
      .invoke(
        'calc',
        { request: 'what is 6*7?', tool_choice: 'required' },
        { stream: true, onEvent: (ev) => events.push(ev) },
      )
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'tool_choice_not_honoured' });
    expect((e as CaxtonError).message).toContain(
      'was forced to call a tool (tool_choice "required"), but it answered in text without calling any tool',
    );
    expect(events.map((ev) => (ev.type === 'token' ? ev.text : ev.type)).join('')).toBe(prose.content);
  });
});

describe('/v1/chat/completions', () => {
  it('"required" answered in text is a 502 naming what was forced and what the model did', async () => {
    oai.setScript([prose]);
    const e = await apiError(
      client.chat.completions.create({
        model: 'helper',
        messages: [{ role: 'user', content: 'weather?' }],
        tools: [weather],
        tool_choice: 'required',
      }),
    );
    expect(e).toBeInstanceOf(OpenAI.InternalServerError);
    expect(e.status).toBe(502);
    expect(e.code).toBe('tool_choice_not_honoured');
    expect(e.param).toBe('tool_choice');
    expect(e.type).toBe('server_error');
    expect(e.message).toContain(
      'forced to call a tool (tool_choice "required"), but it answered in text without calling any tool',
    );
  });

  it('a named function when the model called another tool is a 502 naming both, and the other tool is not run', async () => {
    oai.setScript([callsCalculator, { content: 'never asked' }]);
    const e = await apiError(
      client.chat.completions.create({
        model: 'calc',
        messages: [{ role: 'user', content: 'weather?' }],
        tools: [weather],
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
      }),
    );
    expect(e.status).toBe(502);
    expect(e.message).toContain(
      'forced to call the tool "get_weather" (tool_choice), but it called "calculator" instead',
    );
    expect(oai.hits).toHaveLength(1);
  });

  it('honoured: the forced call is returned', async () => {
    oai.setScript([{ tool_calls: [{ id: 'prov_w', name: 'get_weather', arguments: { city: 'Paris' } }] }]);
    const c = await client.chat.completions.create({
      model: 'helper',
      messages: [{ role: 'user', content: 'weather?' }],
      tools: [weather],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
    });
    expect(c.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it('streamed: the stream ends with the error instead of a finish_reason', async () => {
    oai.setScript([prose]);
    const stream = await client.chat.completions.create({
      model: 'helper',
      messages: [{ role: 'user', content: 'weather?' }],
      tools: [weather],
      tool_choice: 'required',
      stream: true,
    });
    const finishes: (string | null)[] = [];
    const e = await (async () => {
      for await (const chunk of stream) finishes.push(chunk.choices[0]?.finish_reason ?? null);
    })().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.APIError);
    expect((e as InstanceType<typeof OpenAI.APIError>).code).toBe('tool_choice_not_honoured');
    expect(finishes.every((f) => f === null)).toBe(true);
  });
});

describe('/v1/responses', () => {
  it('"required" answered in text is a 502', async () => {
    oai.setScript([prose]);
    const e = await apiError(
      client.responses.create({ model: 'helper', input: 'weather?', tools: [weatherTool], tool_choice: 'required' }),
    );
    expect(e.status).toBe(502);
    expect(e.code).toBe('tool_choice_not_honoured');
    expect(e.param).toBe('tool_choice');
  });

  it('streamed: response.failed carries the code and message', async () => {
    oai.setScript([prose]);
    const res = await fetch(`${cx.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'helper',
        input: 'weather?',
        tools: [weatherTool],
        tool_choice: { type: 'function', name: 'get_weather' },
        stream: true,
      }),
    });
    const events = parseSse(await res.text());
    const last = events.at(-1)!;
    expect(last.event).toBe('response.failed');
    expect(last.json.response.error).toMatchObject({ code: 'tool_choice_not_honoured' });
    expect(last.json.response.error.message).toContain(
      'forced to call the tool "get_weather" (tool_choice), but it answered in text without calling any tool',
    );
    expect(events.some((ev) => ev.event === 'response.completed')).toBe(false);
  });
});

describe('LangChain withStructuredOutput (function calling)', () => {
  const model = () =>
    new ChatOpenAI({ model: 'helper', apiKey: 'unused', configuration: { baseURL: `${cx.url}/v1` }, maxRetries: 0 });

  it('gets an error, not undefined, when the model answers in text', async () => {
    oai.setScript([prose]);
    const structured = model().withStructuredOutput(z.object({ city: z.string() }), {
      method: 'functionCalling',
      name: 'where',
    });
    const e = await structured.invoke('which city?').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Error);
    expect((e as Error).message).toContain(
      'forced to call the tool "where" (tool_choice), but it answered in text without calling any tool',
    );
  });

  it('gets the parsed arguments when the model calls the tool', async () => {
    oai.setScript([{ tool_calls: [{ id: 'prov_w', name: 'where', arguments: { city: 'Paris' } }] }]);
    const out = await model()
      .withStructuredOutput(z.object({ city: z.string() }), { method: 'functionCalling', name: 'where' })
      .invoke('which city?');
    expect(out).toEqual({ city: 'Paris' });
  });
});
