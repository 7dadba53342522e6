/**
 * The OpenAI-compatible endpoints (/v1/models, /v1/chat/completions) driven by the official
 * `openai` npm package as the client, with a scripted provider behind the agents.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs, startCaxton, tempDir, writeScript, type Caxton } from './helpers/caxton.js';

let cx: Caxton;
let client: OpenAI;

beforeAll(async () => {
  const script = writeScript(tempDir(), {
    rules: [
      {
        name: 'france',
        match: 'capital of France',
        content: 'The capital of France is Paris, a city of many bridges.',
      },
      {
        name: 'calc',
        match: 'multiply',
        turns: [
          { tool_calls: [{ name: 'calculator', arguments: { expression: '6*7' } }] },
          { content: 'The product is {{tool_result.calculator}}.' },
        ],
      },
      { name: 'echo', content: 'Echo: {{request}}' },
    ],
  });
  // No catch-all rule and no fallback: anything but "only this" is a provider error.
  const strict = writeScript(tempDir(), { rules: [{ match: '^only this$', content: 'ok' }] }, 'strict.toml');
  cx = await startCaxton({
    config: {
      llm: {
        default_provider: 'demo',
        providers: {
          demo: { type: 'scripted', script, model: 'scripted-model' },
          strict: { type: 'scripted', script: strict },
        },
      },
    },
  });
  await cx.deploy({ name: 'fussy', llm: { provider: 'strict' } });
  await cx.deploy({ name: 'geo', system_prompt: 'You know geography.' });
  await cx.deploy({ name: 'mathy', tools: ['calculator'], system_prompt: 'You multiply.' });
  await cx.deploy({ name: 'echoer', system_prompt: 'You echo.', user_prompt_template: '[{{context}}] {{request}}' });
  client = new OpenAI({ baseURL: `${cx.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 });
});

afterAll(async () => {
  await cx?.close();
  removeTempDirs();
});

describe('OpenAI SDK against Caxton', () => {
  it('models.list() lists the deployed agents as models', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) {
      expect(m.object).toBe('model');
      expect(m.owned_by).toBe('caxton');
      expect(Number.isInteger(m.created)).toBe(true);
      ids.push(m.id);
    }
    expect(ids.sort()).toEqual(['echoer', 'fussy', 'geo', 'mathy']);
  });

  it("chat.completions.create returns the agent's answer", async () => {
    const c = await client.chat.completions.create({
      model: 'geo',
      messages: [{ role: 'user', content: 'What is the capital of France?' }],
    });
    expect(c.object).toBe('chat.completion');
    expect(c.model).toBe('geo');
    expect(c.id).toMatch(/^chatcmpl-/);
    expect(c.choices).toHaveLength(1);
    expect(c.choices[0]!.message.role).toBe('assistant');
    expect(c.choices[0]!.message.content).toBe('The capital of France is Paris, a city of many bridges.');
    expect(c.choices[0]!.finish_reason).toBe('stop');
    expect(c.usage!.prompt_tokens).toBeGreaterThan(0);
    expect(c.usage!.completion_tokens).toBeGreaterThan(0);
    expect(c.usage!.total_tokens).toBe(c.usage!.prompt_tokens + c.usage!.completion_tokens);
  });

  it("runs the agent's tool loop behind one completion", async () => {
    const c = await client.chat.completions.create({
      model: 'mathy',
      messages: [{ role: 'user', content: 'please multiply 6 by 7' }],
    });
    expect(c.choices[0]!.message.content).toBe('The product is 42.');
  });

  it('maps client system messages to {{context}} and the last user message to {{request}}', async () => {
    const c = await client.chat.completions.create({
      model: 'echoer',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'first answer' },
        { role: 'user', content: 'second question' },
      ],
    });
    expect(c.choices[0]!.message.content).toBe('Echo: [be brief] second question');
  });

  it('streams deltas that concatenate to the answer, with usage at the end', async () => {
    const stream = await client.chat.completions.create({
      model: 'geo',
      messages: [{ role: 'user', content: 'capital of France?' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const deltas: string[] = [];
    const finishes: string[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      expect(chunk.object).toBe('chat.completion.chunk');
      expect(chunk.model).toBe('geo');
      const choice = chunk.choices[0];
      if (choice?.delta.content) deltas.push(choice.delta.content);
      if (choice?.finish_reason) finishes.push(choice.finish_reason);
      if (chunk.usage) usage = chunk.usage;
    }
    expect(deltas.length).toBeGreaterThan(3);
    expect(deltas.join('')).toBe('The capital of France is Paris, a city of many bridges.');
    expect(finishes).toEqual(['stop']);
    expect(usage?.total_tokens).toBeGreaterThan(0);
    expect(chunks).toBeGreaterThan(deltas.length);
  });

  it('an agent failure is an APIError: status 502 when plain, an error event mid-stream when streaming', async () => {
    const plain = await client.chat.completions
      .create({ model: 'fussy', messages: [{ role: 'user', content: 'something else' }] })
      .catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(OpenAI.APIError);
    expect((plain as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect((plain as InstanceType<typeof OpenAI.APIError>).message).toMatch(/no rule matches/);

    const stream = await client.chat.completions.create({
      model: 'fussy',
      messages: [{ role: 'user', content: 'something else' }],
      stream: true,
    });
    const seen: string[] = [];
    const failure = await (async () => {
      for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? '');
    })().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    expect((failure as Error).message).toMatch(/no rule matches/);
    expect(seen.join('')).toBe('');

    const fine = await client.chat.completions.create({
      model: 'fussy',
      messages: [{ role: 'user', content: 'only this' }],
    });
    expect(fine.choices[0]!.message.content).toBe('ok');
  });

  it('an unknown model makes the SDK throw a 404 error (plain and streaming)', async () => {
    const plain = await client.chat.completions
      .create({ model: 'no-such-agent', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(OpenAI.NotFoundError);
    expect((plain as InstanceType<typeof OpenAI.APIError>).status).toBe(404);
    expect((plain as InstanceType<typeof OpenAI.APIError>).message).toContain('no-such-agent');

    const streamed = await client.chat.completions
      .create({ model: 'no-such-agent', messages: [{ role: 'user', content: 'hi' }], stream: true })
      .catch((e: unknown) => e);
    expect(streamed).toBeInstanceOf(OpenAI.NotFoundError);
    expect((streamed as InstanceType<typeof OpenAI.APIError>).status).toBe(404);
  });
});
