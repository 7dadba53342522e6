/**
 * A run whose every tool call was refused says so on /v1, where OpenAI's objects leave room for
 * it: `metadata.caxton_all_tool_calls_refused = "true"` on the chat.completion (the last chunk
 * when streamed) and on the Responses `response` (streamed, stored and retrieved too), beside the
 * request's own metadata. The official `openai` package is the client, a scripted provider the
 * model; a run whose calls ran carries no such key.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs, startCaxton, tempDir, writeScript, type Caxton } from './helpers/caxton.js';

let cx: Caxton;
let client: OpenAI;
const KEY = 'caxton_all_tool_calls_refused';

beforeAll(async () => {
  const script = writeScript(tempDir(), {
    rules: [
      {
        name: 'calc',
        match: 'multiply',
        turns: [
          { tool_calls: [{ name: 'calculator', arguments: { expression: '6*7' } }] },
          { content: 'The calculator said: {{tool_result.calculator}}' },
        ],
      },
      { name: 'echo', content: 'Echo: {{request}}' },
    ],
  });
  cx = await startCaxton({
    config: { llm: { default_provider: 'demo', providers: { demo: { type: 'scripted', script } } } },
  });
  // The model calls the calculator; only `mathy` has it.
  await cx.deploy({ name: 'mathy', tools: ['calculator'], system_prompt: 'You multiply.' });
  await cx.deploy({ name: 'toolless', tools: [], system_prompt: 'You multiply.' });
  client = new OpenAI({ baseURL: `${cx.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 });
});

afterAll(async () => {
  await cx?.close();
  removeTempDirs();
});

const ask = [{ role: 'user' as const, content: 'multiply 6 by 7' }];

describe('chat completions', () => {
  it('a completion whose every tool call was refused carries the metadata key; one whose call ran does not', async () => {
    const refused = await client.chat.completions.create({ model: 'toolless', messages: ask });
    expect(refused.choices[0]!.message.content).toMatch(/not allowed for agent "toolless"/);
    expect((refused as { metadata?: unknown }).metadata).toEqual({ [KEY]: 'true' });

    const ran = await client.chat.completions.create({ model: 'mathy', messages: ask });
    expect(ran.choices[0]!.message.content).toBe('The calculator said: 42');
    expect((ran as { metadata?: unknown }).metadata).toBeUndefined();
  });

  it('streamed, the chunk with the finish_reason carries it', async () => {
    const stream = await client.chat.completions.create({ model: 'toolless', messages: ask, stream: true });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    const last = chunks.at(-1)! as OpenAI.ChatCompletionChunk & { metadata?: Record<string, string> };
    expect(last.choices[0]!.finish_reason).toBe('stop');
    expect(last.metadata).toEqual({ [KEY]: 'true' });
    expect(chunks.slice(0, -1).every((c) => !('metadata' in c))).toBe(true);

    const ran = await client.chat.completions.create({ model: 'mathy', messages: ask, stream: true });
    for await (const c of ran) expect('metadata' in c).toBe(false);
  });

  it("the SDK's stream helper keeps it on the final completion", async () => {
    const final = await client.chat.completions.stream({ model: 'toolless', messages: ask }).finalChatCompletion();
    expect((final as { metadata?: unknown }).metadata).toEqual({ [KEY]: 'true' });
  });
});

describe('responses', () => {
  it("a response whose every tool call was refused carries the key beside the request's metadata, stored too", async () => {
    const r = await client.responses.create({ model: 'toolless', input: 'multiply 6 by 7', metadata: { mine: 'yes' } });
    expect(r.status).toBe('completed');
    expect(r.metadata).toEqual({ mine: 'yes', [KEY]: 'true' });
    const again = await client.responses.retrieve(r.id);
    expect(again.metadata).toEqual({ mine: 'yes', [KEY]: 'true' });

    const ran = await client.responses.create({ model: 'mathy', input: 'multiply 6 by 7', metadata: { mine: 'yes' } });
    expect(ran.output_text).toBe('The calculator said: 42');
    expect(ran.metadata).toEqual({ mine: 'yes' });
  });

  it('streamed, response.completed carries it (and response.created does not yet)', async () => {
    const stream = await client.responses.create({ model: 'toolless', input: 'multiply 6 by 7', stream: true });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const e of stream) events.push(e);
    const created = events.find((e) => e.type === 'response.created') as OpenAI.Responses.ResponseCreatedEvent;
    expect(created.response.metadata).toEqual({});
    const completed = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
    expect(completed.type).toBe('response.completed');
    expect(completed.response.metadata).toEqual({ [KEY]: 'true' });
    const stored = await client.responses.retrieve(completed.response.id);
    expect(stored.metadata).toEqual({ [KEY]: 'true' });
  });
});

describe('the agent API', () => {
  it('says the same in all_tool_calls_refused', async () => {
    const r = await cx.invoke('toolless', { request: 'multiply 6 by 7' });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ all_tool_calls_refused: true });
    const ran = await cx.invoke('mathy', { request: 'multiply 6 by 7' });
    expect(ran.json).not.toHaveProperty('all_tool_calls_refused');
  });
});
