/**
 * Agent frameworks against /v1/chat/completions, as their users write them: the Vercel AI SDK
 * (ai 6 + @ai-sdk/openai-compatible 2) and LangChain (@langchain/openai 1.5) run client-tool
 * loops and ask for structured output from a Caxton agent backed by the scripted provider.
 */
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import type { AIMessage, AIMessageChunk } from '@langchain/core/messages';
import { HumanMessage, ToolMessage } from '@langchain/core/messages';
import { ChatOpenAI } from '@langchain/openai';
import { generateObject, generateText, Output, stepCountIs, streamText, tool } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { removeTempDirs, startCaxton, tempDir, writeScript, type Caxton } from './helpers/caxton.js';

let cx: Caxton;

beforeAll(async () => {
  const script = writeScript(tempDir(), {
    // First match wins: the mixed rule before the one matching any "weather".
    rules: [
      {
        name: 'mixed',
        match: 'sum and weather',
        turns: [
          {
            tool_calls: [
              { name: 'calculator', arguments: { expression: '20+22' } },
              { name: 'get_weather', arguments: { city: 'Rome' } },
            ],
          },
          { content: 'Sum {{tool_result.calculator}}, Rome: {{tool_result.get_weather}}' },
        ],
      },
      {
        name: 'weather',
        match: 'weather',
        turns: [
          { tool_calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }] },
          { content: 'In Paris: {{tool_result.get_weather}}' },
        ],
      },
      { name: 'recipe', match: 'recipe', content: '{"name":"soup","minutes":20}' },
      { name: 'echo', content: 'Echo: {{request}}' },
    ],
  });
  cx = await startCaxton({
    config: { llm: { default_provider: 'demo', providers: { demo: { type: 'scripted', script } } } },
  });
  await cx.deploy({ name: 'helper', system_prompt: 'You are Helper.', tools: ['calculator'] });
});

afterAll(async () => {
  await cx?.close();
  removeTempDirs();
});

describe('Vercel AI SDK (ai 6, @ai-sdk/openai-compatible 2)', () => {
  const provider = () =>
    createOpenAICompatible({
      name: 'caxton',
      baseURL: `${cx.url}/v1`,
      apiKey: 'unused',
      supportsStructuredOutputs: true,
    });
  const getWeather = (seen: string[]) =>
    tool({
      description: 'The weather in a city',
      inputSchema: z.object({ city: z.string() }),
      execute: ({ city }) => {
        seen.push(city);
        return Promise.resolve(`sunny in ${city}`);
      },
    });

  it('generateText completes a client tool loop (stopWhen)', async () => {
    const seen: string[] = [];
    const r = await generateText({
      model: provider()('helper'),
      prompt: 'what is the weather?',
      tools: { get_weather: getWeather(seen) },
      stopWhen: stepCountIs(5),
      maxRetries: 0,
    });
    expect(seen).toEqual(['Paris']);
    expect(r.steps).toHaveLength(2);
    expect(r.steps[0]!.finishReason).toBe('tool-calls');
    expect(r.text).toContain('sunny in Paris');
    expect(r.finishReason).toBe('stop');
  });

  it('streamText completes a client tool loop from streamed tool-call deltas', async () => {
    const seen: string[] = [];
    const r = streamText({
      model: provider()('helper'),
      prompt: 'what is the weather?',
      tools: { get_weather: getWeather(seen) },
      stopWhen: stepCountIs(5),
      maxRetries: 0,
    });
    expect(await r.text).toContain('sunny in Paris');
    expect(seen).toEqual(['Paris']);
    expect((await r.steps)[0]!.finishReason).toBe('tool-calls');
  });

  it('generateText: a server-side tool of the same turn is visible to the model after the resume', async () => {
    const seen: string[] = [];
    const r = await generateText({
      model: provider()('helper'),
      prompt: 'sum and weather',
      tools: { get_weather: getWeather(seen) },
      stopWhen: stepCountIs(5),
      maxRetries: 0,
    });
    expect(seen).toEqual(['Rome']);
    expect(r.text).toMatch(/^Sum 42, Rome: .*sunny in Rome/);
  });

  it('generateObject and generateText with Output.object return the parsed object', async () => {
    const schema = z.object({ name: z.string(), minutes: z.number() });
    const o = await generateObject({ model: provider()('helper'), prompt: 'a recipe please', schema, maxRetries: 0 });
    expect(o.object).toEqual({ name: 'soup', minutes: 20 });
    const t = await generateText({
      model: provider()('helper'),
      prompt: 'a recipe please',
      output: Output.object({ schema }),
      maxRetries: 0,
    });
    expect(t.output).toEqual({ name: 'soup', minutes: 20 });
  });
});

describe('LangChain (@langchain/openai 1.5)', () => {
  const model = () =>
    new ChatOpenAI({ model: 'helper', apiKey: 'unused', configuration: { baseURL: `${cx.url}/v1` }, maxRetries: 0 });
  const weatherTool = {
    type: 'function' as const,
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  };

  it('bindTools returns tool_calls, and a ToolMessage follow-up gets the final answer', async () => {
    const m = model().bindTools([weatherTool]);
    const human = new HumanMessage('what is the weather?');
    const ai = (await m.invoke([human])) as AIMessage;
    expect(ai.tool_calls).toHaveLength(1);
    expect(ai.tool_calls![0]).toMatchObject({ name: 'get_weather', args: { city: 'Paris' } });
    const answer = await m.invoke([
      human,
      ai,
      new ToolMessage({ tool_call_id: ai.tool_calls![0]!.id!, content: 'cloudy, 14 C' }),
    ]);
    expect(answer.content).toBe('In Paris: cloudy, 14 C');
  });

  it('streams tool call chunks that concatenate into the tool call', async () => {
    const m = model().bindTools([weatherTool]);
    let full: AIMessageChunk | undefined;
    for await (const chunk of await m.stream([new HumanMessage('what is the weather?')]))
      full = full ? full.concat(chunk) : chunk;
    expect(full?.tool_calls).toHaveLength(1);
    expect(full!.tool_calls![0]).toMatchObject({ name: 'get_weather', args: { city: 'Paris' } });
    expect(full!.response_metadata.finish_reason).toBe('tool_calls');
  });

  it('withStructuredOutput returns the parsed object', async () => {
    const schema = z.object({ name: z.string(), minutes: z.number() });
    const out = await model()
      .withStructuredOutput(schema, { method: 'jsonSchema', name: 'recipe' })
      .invoke('a recipe please');
    expect(out).toEqual({ name: 'soup', minutes: 20 });
  });
});
