/**
 * The agent tool loop through the real invoke API, against real OpenAI- and Anthropic-compatible
 * HTTP servers: tools across turns, the tool allowlist, prompts and wire formats, no state
 * shared between executions, and agent edits taking effect.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  anthropicProvider,
  ANTHROPIC_KEY,
  OPENAI_KEY,
  openaiProvider,
  removeTempDirs,
  setTestKeys,
  startCaxton,
  type Caxton,
} from './helpers/caxton.js';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from './helpers/llm-stub.js';
import {
  assistantTurns,
  firstUserText,
  messagesOf,
  offeredTools,
  systemPromptOf,
  toolResultsOf,
} from './helpers/wire.js';

let oai: LlmStub;
let ant: LlmStub;
let cx: Caxton;

const SYSTEM = 'You are the arithmetic agent. Marker SYS-7731.';
const TEMPLATE = 'Task: {{request}}\nContext: {{context}}\nUnit: {{parameters.unit}}\nStyle: {{parameters.style}}';

beforeAll(async () => {
  setTestKeys();
  oai = await startLlmStub();
  ant = await startLlmStub();
  cx = await startCaxton({
    config: {
      llm: { default_provider: 'oai', providers: { oai: openaiProvider(oai.url), ant: anthropicProvider(ant.url) } },
    },
  });
  for (const [suffix, provider] of [
    ['oai', 'oai'],
    ['ant', 'ant'],
  ] as const) {
    await cx.deploy({
      name: `math-${suffix}`,
      tools: ['calculator', 'current_time'],
      system_prompt: SYSTEM,
      user_prompt_template: TEMPLATE,
      parameters: { unit: 'apples', style: 'terse' },
      llm: { provider },
    });
    await cx.deploy({
      name: `calc-only-${suffix}`,
      tools: ['calculator'],
      system_prompt: 'You may only calculate.',
      llm: { provider },
    });
  }
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

const providers = [
  {
    label: 'OpenAI-compatible',
    suffix: 'oai',
    stub: () => oai,
    provider: 'oai',
    model: 'gpt-test',
    calcId: 'call_calc_1',
    timeId: 'call_time_2',
  },
  {
    label: 'Anthropic-compatible',
    suffix: 'ant',
    stub: () => ant,
    provider: 'ant',
    model: 'claude-test',
    calcId: 'toolu_calc_1',
    timeId: 'toolu_time_2',
  },
] as const;

describe.each(providers)('$label provider', ({ suffix, stub, provider, model, calcId, timeId }) => {
  it('runs two tools across three turns and answers with the tool result it received', async () => {
    const usages = [
      { input: 11, output: 3 },
      { input: 13, output: 4 },
      { input: 17, output: 6 },
    ];
    stub().setScript((hit: StubHit): Reply => {
      const turn = assistantTurns(hit);
      if (turn === 0)
        return { tool_calls: [{ id: calcId, name: 'calculator', arguments: { expression: '6*7' } }], usage: usages[0] };
      if (turn === 1)
        return {
          content: 'Let me check the time.',
          tool_calls: [{ id: timeId, name: 'current_time', arguments: {} }],
          usage: usages[1],
        };
      // The answer quotes the calculator result exactly as the stub received it.
      const calc = toolResultsOf(hit).find((r) => r.id === calcId);
      return { content: `The answer is ${calc?.content ?? 'MISSING'} ${calcId}.`, usage: usages[2] };
    });

    const before = Date.now();
    const res = await cx.invoke(`math-${suffix}`, {
      request: 'What is 6 times 7?',
      context: 'ctx-from-request',
      parameters: { style: 'verbose' },
    });
    expect(res.status, res.text).toBe(200);
    const body = res.json;
    expect(body.content).toBe(`The answer is 42 ${calcId}.`);
    expect(body).toMatchObject({
      agent: `math-${suffix}`,
      turns: 3,
      finish_reason: 'stop',
      provider,
      model,
      isolation: 'context',
    });
    expect(body.usage).toEqual({ input_tokens: 41, output_tokens: 13, total_tokens: 54 });
    expect(body.execution_id).toMatch(/^exec_/);

    expect(body.tool_calls).toHaveLength(2);
    expect(body.tool_calls[0]).toMatchObject({
      id: calcId,
      name: 'calculator',
      arguments: { expression: '6*7' },
      result: '42',
      is_error: false,
    });
    expect(body.tool_calls[1]).toMatchObject({ id: timeId, name: 'current_time', is_error: false });
    const time = JSON.parse(body.tool_calls[1].result as string) as { utc: string; timezone: string };
    expect(time.timezone).toBe('UTC');
    expect(Math.abs(Date.parse(time.utc) - before)).toBeLessThan(60_000);
    for (const r of body.tool_calls) expect(typeof r.duration_ms).toBe('number');

    // Exactly three model calls, each with the agent's prompts and tools.
    const hits = stub().hits;
    expect(hits).toHaveLength(3);
    for (const h of hits) {
      expect(h.body.model).toBe(model);
      expect(systemPromptOf(h)).toBe(SYSTEM);
      // Request parameters override the agent's [parameters]; the rest come from the agent.
      expect(firstUserText(h)).toBe(
        'Task: What is 6 times 7?\nContext: ctx-from-request\nUnit: apples\nStyle: verbose',
      );
      expect(offeredTools(h)).toEqual(['calculator', 'current_time']);
      if (suffix === 'oai') expect(h.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
      else {
        expect(h.headers['x-api-key']).toBe(ANTHROPIC_KEY);
        expect(h.headers['anthropic-version']).toBe('2023-06-01');
      }
    }
    expect(toolResultsOf(hits[0]!)).toEqual([]);
    expect(toolResultsOf(hits[1]!)).toEqual([{ id: calcId, content: '42' }]);
    const third = toolResultsOf(hits[2]!);
    expect(third.map((r) => r.id)).toEqual([calcId, timeId]);
    expect(JSON.parse(third[1]!.content)).toEqual(time);

    // The exact wire shape of the tool round trip.
    const msgs = messagesOf(hits[2]!);
    if (suffix === 'oai') {
      expect(msgs.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool', 'assistant', 'tool']);
      expect(msgs[2]).toEqual({
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: calcId, type: 'function', function: { name: 'calculator', arguments: '{"expression":"6*7"}' } },
        ],
      });
      expect(msgs[3]).toEqual({ role: 'tool', tool_call_id: calcId, content: '42' });
      expect(msgs[4]).toMatchObject({
        role: 'assistant',
        content: 'Let me check the time.',
        tool_calls: [{ id: timeId, type: 'function', function: { name: 'current_time' } }],
      });
      expect(msgs[5]).toMatchObject({ role: 'tool', tool_call_id: timeId });
    } else {
      expect(msgs.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user']);
      expect(msgs[1]).toEqual({
        role: 'assistant',
        content: [{ type: 'tool_use', id: calcId, name: 'calculator', input: { expression: '6*7' } }],
      });
      expect(msgs[2]).toEqual({ role: 'user', content: [{ type: 'tool_result', tool_use_id: calcId, content: '42' }] });
      expect(msgs[3]).toEqual({
        role: 'assistant',
        content: [
          { type: 'text', text: 'Let me check the time.' },
          { type: 'tool_use', id: timeId, name: 'current_time', input: {} },
        ],
      });
      expect(msgs[4].content[0]).toMatchObject({ type: 'tool_result', tool_use_id: timeId });
      expect(hits[0]!.body.max_tokens).toBe(4096);
    }
  });

  it('refuses a tool outside the allowlist without running it, tells the model, and still finishes', async () => {
    stub().setScript((hit: StubHit): Reply => {
      if (assistantTurns(hit) === 0)
        return { tool_calls: [{ id: 'forbidden_1', name: 'current_time', arguments: {} }] };
      const r = toolResultsOf(hit)[0];
      return { content: `Could not get the time (${r?.content.slice(0, 80) ?? 'no result'}).` };
    });
    const res = await cx.invoke(`calc-only-${suffix}`, { request: 'What time is it?' });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ turns: 2, finish_reason: 'stop' });
    expect(res.json.tool_calls).toHaveLength(1);
    const rec = res.json.tool_calls[0];
    expect(rec).toMatchObject({ id: 'forbidden_1', name: 'current_time', is_error: true });
    expect(rec.result).toMatch(/not allowed/);
    expect(rec.result).toContain(`calc-only-${suffix}`);
    // Not executed: the result is the refusal, never a timestamp.
    expect(rec.result).not.toMatch(/utc|\d{4}-\d{2}-\d{2}T/);

    const hits = stub().hits;
    expect(hits).toHaveLength(2);
    expect(offeredTools(hits[0]!)).toEqual(['calculator']);
    const [sent] = toolResultsOf(hits[1]!);
    expect(sent!.id).toBe('forbidden_1');
    expect(sent!.content).toMatch(/not allowed/);
    if (suffix === 'oai') expect(sent!.content.startsWith('Error: ')).toBe(true);
    else expect(sent!.is_error).toBe(true);
    expect(res.json.content).toMatch(/^Could not get the time \(.*not allowed/);
  });
});

describe('between executions', () => {
  it('carries nothing from one execution into the next', async () => {
    oai.setScript((hit: StubHit, n: number): Reply => {
      if (assistantTurns(hit) === 0)
        return {
          content: 'computing',
          tool_calls: [{ id: `c_hit${n}`, name: 'calculator', arguments: { expression: '1+1' } }],
        };
      return { content: `done with ${firstUserText(hit).slice(6, 30)}` };
    });
    const first = await cx.invoke('math-oai', {
      request: 'FIRST-SECRET-AAA please add',
      context: 'first-context-QQQ',
      parameters: { unit: 'first-unit-ZZZ' },
    });
    expect(first.status, first.text).toBe(200);
    expect(first.json.turns).toBe(2);
    const firstHits = oai.hits.length;
    expect(firstHits).toBe(2);

    const second = await cx.invoke('math-oai', { request: 'second request BBB' });
    expect(second.status, second.text).toBe(200);
    expect(second.json.tool_calls).toHaveLength(1);
    expect(second.json.usage).toEqual({ input_tokens: 20, output_tokens: 10, total_tokens: 30 });
    const secondHits = oai.hits.slice(firstHits);
    expect(secondHits).toHaveLength(2);
    // The second execution starts from scratch: system + its own user message only.
    expect(messagesOf(secondHits[0]!).map((m) => m.role)).toEqual(['system', 'user']);
    expect(firstUserText(secondHits[0]!)).toBe('Task: second request BBB\nContext: \nUnit: apples\nStyle: terse');
    for (const h of secondHits) {
      expect(h.raw).not.toContain('AAA');
      expect(h.raw).not.toContain('QQQ');
      expect(h.raw).not.toContain('ZZZ');
      expect(h.raw).not.toContain(`"${first.json.tool_calls[0].id as string}"`);
    }
    expect(toolResultsOf(secondHits[1]!)).toHaveLength(1);
    expect(second.json.execution_id).not.toBe(first.json.execution_id);
  });

  it('uses the edited agent (PUT) on the next request', async () => {
    oai.setScript([{ content: 'v1 answer' }]);
    await cx.deploy({ name: 'editable', system_prompt: 'Prompt version ONE.', llm: { provider: 'oai' } });
    const a = await cx.invoke('editable', { request: 'hello' });
    expect(a.status, a.text).toBe(200);
    expect(systemPromptOf(oai.hits[0]!)).toBe('Prompt version ONE.');
    expect(offeredTools(oai.hits[0]!)).toEqual([]);

    await cx.update({
      name: 'editable',
      system_prompt: 'Prompt version TWO.',
      tools: ['calculator'],
      llm: { provider: 'ant' },
    });
    ant.setScript([{ content: 'v2 answer' }]);
    const b = await cx.invoke('editable', { request: 'hello again' });
    expect(b.status, b.text).toBe(200);
    expect(b.json).toMatchObject({ content: 'v2 answer', provider: 'ant' });
    expect(oai.hits).toHaveLength(1);
    expect(ant.hits).toHaveLength(1);
    expect(systemPromptOf(ant.hits[0]!)).toBe('Prompt version TWO.');
    expect(ant.hits[0]!.raw).not.toContain('version ONE');
    expect(offeredTools(ant.hits[0]!)).toEqual(['calculator']);
  });
});
