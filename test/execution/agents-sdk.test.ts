/**
 * The OpenAI Agents SDK (@openai/agents 0.14) against Caxton on its default settings — the
 * Responses API — with only the client's base URL and the model name changed (the model is a
 * Caxton agent): a plain run, a run whose SDK-side function tool the model calls (the loop goes
 * through function_call items and function_call_output follow-ups), a streamed run, and a
 * structured `outputType` run; and on its Chat Completions model, a second turn sent as the first
 * run's `result.history`. Tracing export is off: it would reach for the network.
 */
import {
  Agent,
  OpenAIChatCompletionsModel,
  run,
  setDefaultOpenAIClient,
  setTracingDisabled,
  tool,
} from '@openai/agents';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { removeTempDirs, startCaxton, tempDir, writeScript, type Caxton } from './helpers/caxton.js';

let cx: Caxton;

beforeAll(async () => {
  const script = writeScript(tempDir(), {
    rules: [
      {
        name: 'weather',
        match: 'weather',
        turns: [
          { tool_calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }] },
          { content: 'Weather report: {{last_tool_result}}' },
        ],
      },
      { name: 'city', match: 'which city', content: '{"city":"Paris","population":2100000}' },
      { name: 'echo', content: 'Echo: {{request}}' },
    ],
  });
  cx = await startCaxton({
    config: { llm: { default_provider: 'demo', providers: { demo: { type: 'scripted', script } } } },
  });
  await cx.deploy({ name: 'helper', system_prompt: 'You are Helper.' });
  setTracingDisabled(true);
  setDefaultOpenAIClient(new OpenAI({ baseURL: `${cx.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 }));
});

afterAll(async () => {
  await cx?.close();
  removeTempDirs();
});

describe('the OpenAI Agents SDK on its default (Responses API) settings', () => {
  it('a plain run answers with the agent', async () => {
    const agent = new Agent({ name: 'Assistant', model: 'helper', instructions: 'Be brief.' });
    const result = await run(agent, 'hello from the SDK');
    expect(result.finalOutput).toBe('Echo: hello from the SDK');
    expect(result.lastResponseId).toMatch(/^resp_/);
  });

  it('a function tool called by the model runs in the SDK and the loop completes', async () => {
    const seen: string[] = [];
    const getWeather = tool({
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: z.object({ city: z.string() }),
      execute: async ({ city }) => {
        seen.push(city);
        return `sunny in ${city}`;
      },
    });
    const agent = new Agent({
      name: 'Forecaster',
      model: 'helper',
      instructions: 'Use the tool.',
      tools: [getWeather],
    });
    const result = await run(agent, 'what is the weather in Paris?');
    expect(seen).toEqual(['Paris']);
    expect(result.finalOutput).toBe('Weather report: sunny in Paris');
    const kinds = result.newItems.map((i) => i.type);
    expect(kinds).toEqual(['tool_call_item', 'tool_call_output_item', 'message_output_item']);
  });

  it('a streamed run with the tool completes too', async () => {
    const getWeather = tool({
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: z.object({ city: z.string() }),
      execute: async ({ city }) => `cloudy in ${city}`,
    });
    const agent = new Agent({ name: 'Forecaster', model: 'helper', tools: [getWeather] });
    const result = await run(agent, 'weather please', { stream: true });
    let text = '';
    for await (const chunk of result.toTextStream()) text += chunk;
    await result.completed;
    expect(result.finalOutput).toBe('Weather report: cloudy in Paris');
    expect(text).toBe('Weather report: cloudy in Paris');
  });

  it('an outputType (zod) run returns the parsed object', async () => {
    const agent = new Agent({
      name: 'Geographer',
      model: 'helper',
      outputType: z.object({ city: z.string(), population: z.number() }),
    });
    const result = await run(agent, 'which city is the capital of France?');
    expect(result.finalOutput).toEqual({ city: 'Paris', population: 2100000 });
  });
});

describe('the OpenAI Agents SDK on its Chat Completions model', () => {
  it("a second turn from result.history (the SDK sends the assistant's text part with refusal: null)", async () => {
    const client = new OpenAI({ baseURL: `${cx.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 });
    const agent = new Agent({
      name: 'Assistant',
      model: new OpenAIChatCompletionsModel(client, 'helper'),
      instructions: 'Be brief.',
    });
    const first = await run(agent, 'first turn');
    expect(first.finalOutput).toBe('Echo: first turn');
    const second = await run(agent, [...first.history, { role: 'user', content: 'second turn' }]);
    expect(second.finalOutput).toBe('Echo: second turn');
  });
});
