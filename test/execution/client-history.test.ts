/**
 * What clients send back to /v1 as history, with the real packages: the `openai` SDK's own
 * assistant message objects (from create(), finalChatCompletion() and parse(), `parsed` and all,
 * as OpenAI's function-calling guide sends them), the OpenAI Agents SDK's handoffs (an answered
 * call of `transfer_to_Billing`, a tool the next agent's request does not offer) on its
 * Responses and Chat Completions models, and LangChain's function-calling structured output.
 * The model behind Caxton is an OpenAI-type LLM stub, so what reaches it is checked too.
 */
import { Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, run, setTracingDisabled } from '@openai/agents';
import { ChatOpenAI } from '@langchain/openai';
import OpenAI from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  anthropicProvider,
  openaiProvider,
  removeTempDirs,
  setTestKeys,
  startCaxton,
  type Caxton,
} from './helpers/caxton.js';
import { startLlmStub, type LlmStub, type StubHit } from './helpers/llm-stub.js';
import { messagesOf, offeredTools, systemPromptOf, toolResultsOf } from './helpers/wire.js';

let oai: LlmStub;
let ant: LlmStub;
let cx: Caxton;
let client: OpenAI;

beforeAll(async () => {
  setTestKeys();
  setTracingDisabled(true);
  oai = await startLlmStub();
  ant = await startLlmStub();
  cx = await startCaxton({
    config: {
      llm: { default_provider: 'oai', providers: { oai: openaiProvider(oai.url), ant: anthropicProvider(ant.url) } },
    },
  });
  await cx.deploy({ name: 'helper', system_prompt: 'You are Helper.' });
  await cx.deploy({ name: 'triage', system_prompt: 'You are Triage.' });
  await cx.deploy({ name: 'billing', system_prompt: 'You are Billing.' });
  await cx.deploy({ name: 'billing-ant', system_prompt: 'You are Billing.', llm: { provider: 'ant' } });
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

/** The text of the last message the model was sent. */
const lastText = (hit: StubHit): string => String(messagesOf(hit).at(-1)!.content);

/**
 * A model that calls the offered tool while no result is in, answers a recipe request with its
 * JSON, and otherwise says which turns it read.
 */
function script(): void {
  oai.setScript((hit) => {
    const tools = offeredTools(hit);
    if (tools.length > 0 && toolResultsOf(hit).length === 0)
      return { tool_calls: [{ id: 'prov_1', name: tools[0]!, arguments: { city: 'Paris' } }] };
    if (/recipe/.test(lastText(hit))) return { content: '{"name":"soup","minutes":20}' };
    const said = messagesOf(hit)
      .filter((m) => m.role === 'assistant' || m.role === 'tool')
      .map((m) =>
        m.role === 'tool'
          ? `tool:${m.content}`
          : m.tool_calls
            ? `call:${m.tool_calls[0].function.name}`
            : `said:${m.content}`,
      );
    return { content: `Read [${said.join(', ')}]` };
  });
}

const weather: OpenAI.Chat.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

describe("the openai SDK's own message objects, sent back as they are", () => {
  it('create(): the message, and one as OpenAI returns it (refusal, annotations, audio and function_call null)', async () => {
    script();
    const first = await client.chat.completions.create({
      model: 'helper',
      messages: [{ role: 'user', content: 'hello' }],
    });
    const asOpenAi = {
      role: 'assistant',
      content: 'Earlier.',
      refusal: null,
      annotations: [],
      audio: null,
      function_call: null,
    } as unknown as Msg;
    const second = await client.chat.completions.create({
      model: 'helper',
      messages: [
        { role: 'user', content: 'before' },
        asOpenAi,
        { role: 'user', content: 'hello' },
        first.choices[0]!.message,
        { role: 'user', content: 'and now?' },
      ],
    });
    expect(second.choices[0]!.message.content).toBe('Read [said:Earlier., said:Read []]');
  });

  it('a refusal is read back as what the model said', async () => {
    script();
    const refused = {
      role: 'assistant',
      content: null,
      refusal: 'I cannot help with that.',
      annotations: [],
    } as unknown as Msg;
    const c = await client.chat.completions.create({
      model: 'helper',
      messages: [{ role: 'user', content: 'bad idea' }, refused, { role: 'user', content: 'fine' }],
    });
    expect(c.choices[0]!.message.content).toBe('Read [said:I cannot help with that.]');
  });

  it('finalChatCompletion(): the streamed tool call message, then its result (the function-calling guide)', async () => {
    script();
    const messages: Msg[] = [{ role: 'user', content: 'weather in Paris?' }];
    const done = await client.chat.completions
      .stream({ model: 'helper', messages, tools: [weather] })
      .finalChatCompletion();
    const message = done.choices[0]!.message;
    expect(message.parsed).toBeNull();
    messages.push(message);
    for (const call of message.tool_calls ?? [])
      messages.push({ role: 'tool', tool_call_id: call.id, content: 'sunny' });
    const answer = await client.chat.completions.create({ model: 'helper', messages, tools: [weather] });
    expect(answer.choices[0]!.message.content).toBe('Read [call:get_weather, tool:sunny]');
  });

  it('parse() with a response format: the message with `parsed`, then a next turn', async () => {
    script();
    const messages: Msg[] = [{ role: 'user', content: 'a recipe please' }];
    const recipe = z.object({ name: z.string(), minutes: z.number() });
    const parsed = await client.chat.completions.parse({
      model: 'helper',
      messages,
      response_format: zodResponseFormat(recipe, 'recipe'),
    });
    const message = parsed.choices[0]!.message;
    expect(message.parsed).toEqual({ name: 'soup', minutes: 20 });
    const next = await client.chat.completions.create({
      model: 'helper',
      messages: [...messages, message, { role: 'user', content: 'thanks' }],
    });
    expect(next.choices[0]!.message.content).toBe('Read [said:{"name":"soup","minutes":20}]');
  });

  it('parse() with a zod function tool: the call with `parsed_arguments`, then its result', async () => {
    script();
    const messages: Msg[] = [{ role: 'user', content: 'weather in Paris?' }];
    const tools = [zodFunction({ name: 'get_weather', parameters: z.object({ city: z.string() }) })];
    const parsed = await client.chat.completions.parse({ model: 'helper', messages, tools });
    const message = parsed.choices[0]!.message;
    expect(message.tool_calls![0]!.function.parsed_arguments).toEqual({ city: 'Paris' });
    messages.push(message);
    messages.push({ role: 'tool', tool_call_id: message.tool_calls![0]!.id, content: 'rainy' });
    const answer = await client.chat.completions.parse({ model: 'helper', messages, tools });
    expect(answer.choices[0]!.message.content).toBe('Read [call:get_weather, tool:rainy]');
  });
});

describe('history with answered calls of tools this request does not offer', () => {
  /** Triage hands off to Billing; Billing says which prompt it ran under and what it read. */
  function handoffScript(): void {
    oai.setScript((hit) => {
      if (systemPromptOf(hit)!.startsWith('You are Triage.') && toolResultsOf(hit).length === 0)
        return { tool_calls: [{ id: 'prov_h', name: offeredTools(hit)[0]!, arguments: {} }] };
      const calls = messagesOf(hit).flatMap((m) =>
        (m.tool_calls ?? []).map((c: { function: { name: string } }) => c.function.name),
      );
      return {
        content: `${systemPromptOf(hit)!.split('\n')[0]} Read calls [${calls.join(', ')}], offered [${offeredTools(hit).join(', ')}]`,
      };
    });
  }

  const agents = (model: (name: string) => OpenAIResponsesModel | OpenAIChatCompletionsModel) => {
    const billing = new Agent({ name: 'Billing', model: model('billing'), instructions: 'Handle refunds.' });
    return new Agent({
      name: 'Triage',
      model: model('triage'),
      instructions: 'Route the customer.',
      handoffs: [billing],
    });
  };

  it.each([
    ['Responses', (name: string) => new OpenAIResponsesModel(client, name)],
    ['Chat Completions', (name: string) => new OpenAIChatCompletionsModel(client, name)],
  ] as const)('an Agents SDK handoff on its %s model reaches the next agent', async (_api, model) => {
    handoffScript();
    const result = await run(agents(model), 'I want a refund');
    expect(result.lastAgent?.name).toBe('Billing');
    expect(result.finalOutput).toBe('You are Billing. Read calls [transfer_to_Billing], offered []');
    expect(oai.hits).toHaveLength(2);
    expect(offeredTools(oai.hits[0]!)).toEqual(['transfer_to_Billing']);
  });

  /** The client's instructions (the SDK agent's), as the model received them. */
  const instructions = (hit: StubHit): string =>
    String(messagesOf(hit).filter((m) => m.role === 'system')[1]?.content ?? '')
      .split('\n\n')
      .slice(1)
      .join(' ');

  /** The model calls the first tool offered while no result is in, then says under which client instructions it answers. */
  function instructionsScript(): void {
    oai.setScript((hit) => {
      if (offeredTools(hit).length > 0 && toolResultsOf(hit).length === 0)
        return { tool_calls: [{ id: 'prov_h', name: offeredTools(hit)[0]!, arguments: {} }] };
      return { content: `Under [${instructions(hit)}], offered [${offeredTools(hit).join(', ')}]` };
    });
  }

  it('with previous_response_id, a request that no longer offers the called tool runs under its own instructions', async () => {
    instructionsScript();
    const handoff = {
      type: 'function' as const,
      name: 'transfer_to_b',
      parameters: { type: 'object', properties: {} },
      strict: false,
    };
    const first = await client.responses.create({
      model: 'helper',
      instructions: 'Route the customer.',
      input: 'I want a refund',
      tools: [handoff],
    });
    const call = first.output.find((i) => i.type === 'function_call')!;
    const second = await client.responses.create({
      model: 'helper',
      instructions: 'Handle refunds.',
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"assistant":"B"}' }],
    });
    expect(second.output_text).toBe('Under [Handle refunds.], offered []');
    // The model read the conversation so far: the call it made, and its output.
    expect(messagesOf(oai.hits[1]!).map((m) => m.role)).toEqual(['system', 'system', 'user', 'assistant', 'tool']);
  });

  it.each([
    ['Responses', (name: string) => new OpenAIResponsesModel(client, name)],
    ['Chat Completions', (name: string) => new OpenAIChatCompletionsModel(client, name)],
  ] as const)(
    'a handoff between two SDK agents on one Caxton agent runs under the next agent’s instructions (%s)',
    async (_api, model) => {
      instructionsScript();
      const result = await run(
        agents(() => model('helper')),
        'I want a refund',
      );
      expect(result.lastAgent?.name).toBe('Billing');
      expect(instructions(oai.hits[0]!)).toContain('Route the customer.');
      expect(result.finalOutput).toMatch(/^Under \[Handle refunds\.[^\]]*\], offered \[\]$/);
    },
  );

  it('a handoff to an Anthropic-type agent without tools declares the tools its history names, with tool_choice none', async () => {
    handoffScript();
    ant.setScript([{ content: 'Billing (Claude) here' }]);
    const billing = new Agent({
      name: 'Billing',
      model: new OpenAIChatCompletionsModel(client, 'billing-ant'),
      instructions: 'Handle refunds.',
    });
    const triage = new Agent({
      name: 'Triage',
      model: new OpenAIChatCompletionsModel(client, 'triage'),
      instructions: 'Route the customer.',
      handoffs: [billing],
    });
    const result = await run(triage, 'I want a refund');
    expect(result.finalOutput).toBe('Billing (Claude) here');
    // The Messages API refuses tool blocks in a request that defines no tools.
    expect(ant.hits[0]!.body.tools.map((t: { name: string }) => t.name)).toEqual(['transfer_to_Billing']);
    expect(ant.hits[0]!.body.tool_choice).toEqual({ type: 'none' });
    expect(ant.hits[0]!.body.messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant', 'user']);
  });

  it('a streamed Agents SDK handoff on the Responses model', async () => {
    handoffScript();
    const result = await run(
      agents((name) => new OpenAIResponsesModel(client, name)),
      'I want a refund',
      { stream: true },
    );
    let text = '';
    for await (const chunk of result.toTextStream()) text += chunk;
    await result.completed;
    expect(result.lastAgent?.name).toBe('Billing');
    expect(text).toBe('You are Billing. Read calls [transfer_to_Billing], offered []');
  });
});

describe('LangChain', () => {
  it('withStructuredOutput with function calling returns the tool call arguments', async () => {
    script();
    const model = new ChatOpenAI({
      model: 'helper',
      apiKey: 'unused',
      configuration: { baseURL: `${cx.url}/v1` },
      maxRetries: 0,
    });
    const schema = z.object({ city: z.string() });
    const out = await model
      .withStructuredOutput(schema, { method: 'functionCalling', name: 'where' })
      .invoke('which city?');
    expect(out).toEqual({ city: 'Paris' });
    expect(oai.hits[0]!.body.tool_choice).toEqual({ type: 'function', function: { name: 'where' } });
  });
});
