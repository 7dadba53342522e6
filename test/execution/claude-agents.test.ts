/**
 * Claude Code agent files deployed through the real API run as
 * Claude Code would run them — maxTurns is the turn limit, disallowedTools are not offered,
 * Agent(worker) restricts send_message to the worker — and Claude model aliases and ids resolve
 * against the configured providers (a deploy-time warning, a run-time fallback, [llm.model_aliases]),
 * checked on the wire of real OpenAI-/Anthropic-compatible HTTP stubs.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  anthropicProvider,
  openaiProvider,
  removeTempDirs,
  setTestKeys,
  startCaxton,
  type Caxton,
} from './helpers/caxton.js';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from './helpers/llm-stub.js';
import { assistantTurns, offeredTools, systemPromptOf, toolResultsOf } from './helpers/wire.js';

interface Issue {
  code: string;
  field?: string;
  message: string;
  suggestion?: string;
}

async function deployMarkdown(cx: Caxton, text: string): Promise<{ status: number; warnings: Issue[]; body: unknown }> {
  const res = await fetch(`${cx.url}/api/v1/agents`, {
    method: 'POST',
    headers: { 'content-type': 'text/markdown' },
    body: text,
  });
  const body = (await res.json()) as { warnings?: Issue[] };
  return { status: res.status, warnings: body.warnings ?? [], body };
}

async function invoke(cx: Caxton, name: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await cx.invoke(name, { request: 'go' });
  return { status: r.status, json: r.json as Record<string, unknown> };
}

let oai: LlmStub;
let ant: LlmStub;

beforeAll(async () => {
  setTestKeys();
  oai = await startLlmStub();
  ant = await startLlmStub();
});

afterAll(async () => {
  await oai?.close();
  await ant?.close();
  removeTempDirs();
});

beforeEach(() => {
  oai.reset();
  ant.reset();
  oai.setScript([{ content: 'ok' }]);
  ant.setScript([{ content: 'ok' }]);
});

describe('a server with only an OpenAI-compatible provider and no [llm.model_aliases]', () => {
  let cx: Caxton;
  beforeAll(async () => {
    cx = await startCaxton({
      config: { llm: { default_provider: 'oai', providers: { oai: openaiProvider(oai.url) } } },
    });
  });
  afterAll(async () => cx?.close());

  it('model: sonnet deploys with a warning naming the alias, what it needs and [llm.model_aliases]; it runs on the default provider and model', async () => {
    const d = await deployMarkdown(cx, '---\nname: sonnet-agent\ndescription: d\nmodel: sonnet\n---\nYou help.\n');
    expect(d.status).toBe(201);
    const w = d.warnings.find((x) => x.code === 'model_unresolved');
    expect(w, JSON.stringify(d.warnings)).toBeDefined();
    expect(w!.field).toBe('model');
    expect(w!.message).toContain('"sonnet"');
    expect(w!.message).toContain('no provider "anthropic" is configured');
    expect(w!.message).toContain('[llm.model_aliases]');
    expect(w!.suggestion).toContain('sonnet = "gpt-4o"');
    const r = await invoke(cx, 'sonnet-agent');
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json).toMatchObject({ provider: 'oai', model: 'gpt-test' });
    expect(oai.hits[0]!.body.model).toBe('gpt-test');
  });

  it('a full Claude model id is not sent to the OpenAI-compatible provider: a warning at deploy, the default model at run time', async () => {
    const d = await deployMarkdown(
      cx,
      '---\nname: full-id-agent\ndescription: d\nmodel: claude-opus-4-1-20250805\n---\nYou help.\n',
    );
    expect(d.status).toBe(201);
    expect(d.warnings.find((x) => x.code === 'model_unresolved')?.message).toContain('Claude model id');
    expect((await invoke(cx, 'full-id-agent')).status).toBe(200);
    expect(oai.hits.map((h) => h.body.model)).toEqual(['gpt-test']);
  });

  it('model: inherit and a plain model id deploy without a model warning and are sent as written', async () => {
    const d = await deployMarkdown(cx, '---\nname: plain-model\ndescription: d\nmodel: gpt-4.1-mini\n---\nYou help.\n');
    expect(d.warnings.filter((x) => x.code === 'model_unresolved')).toEqual([]);
    await invoke(cx, 'plain-model');
    expect(oai.hits[0]!.body.model).toBe('gpt-4.1-mini');
  });

  it('an agent named with spaces ("Code Reviewer") is served and invoked at its URL-encoded name', async () => {
    const d = await deployMarkdown(cx, '---\nname: Code Reviewer\ndescription: Reviews code\n---\nYou review.\n');
    expect(d.status, JSON.stringify(d.body)).toBe(201);
    const got = await fetch(`${cx.url}/api/v1/agents/${encodeURIComponent('code reviewer')}`);
    expect(got.status).toBe(200);
    expect(((await got.json()) as { name: string }).name).toBe('Code Reviewer');
    expect((await invoke(cx, 'Code Reviewer')).status).toBe(200);
  });

  it('an agent named with spaces is a valid message receiver by name', async () => {
    const d = await deployMarkdown(cx, '---\nname: Test Writer\ndescription: Writes tests\n---\nYou write tests.\n');
    expect(d.status, JSON.stringify(d.body)).toBe(201);
    const res = await fetch(`${cx.url}/api/v1/messages?wait=10`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ performative: 'request', receivers: ['Test Writer'], content: 'write one' }),
    });
    const body = (await res.json()) as { routed_to?: string[]; conversation?: { state: string } };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.routed_to).toEqual(['Test Writer']);
    expect(body.conversation?.state).toBe('completed');
  });

  it('maxTurns is the turn limit of an execution', async () => {
    oai.setScript(() => ({
      tool_calls: [
        { id: `call_${Math.random().toString(36).slice(2)}`, name: 'calculator', arguments: { expression: '1+1' } },
      ],
    }));
    await deployMarkdown(cx, '---\nname: short-loop\ndescription: d\ntools: calculator\nmaxTurns: 2\n---\nYou loop.\n');
    const r = await invoke(cx, 'short-loop');
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json).toMatchObject({ finish_reason: 'max_turns', turns: 2 });
    expect(oai.hits).toHaveLength(2);
  });

  it('disallowedTools are not offered to the model', async () => {
    await deployMarkdown(
      cx,
      '---\nname: no-clock\ndescription: d\ntools: calculator, current_time\ndisallowedTools: current_time\n---\nYou calculate.\n',
    );
    await invoke(cx, 'no-clock');
    expect(offeredTools(oai.hits[0]!)).toEqual(['calculator']);
  });

  it('tools: Agent(worker) lets send_message reach the worker only', async () => {
    await cx.deploy({ name: 'worker', capabilities: ['work'], system_prompt: 'WORKER' });
    await cx.deploy({ name: 'other', capabilities: ['other-work'], system_prompt: 'OTHER' });
    const d = await deployMarkdown(cx, '---\nname: lead\ndescription: d\ntools: Agent(worker)\n---\nLEAD\n');
    expect(d.status).toBe(201);
    oai.setScript((hit: StubHit): Reply => {
      const sys = systemPromptOf(hit) ?? '';
      if (sys.includes('WORKER')) return { content: 'pong from worker' };
      if (sys.includes('OTHER')) return { content: 'other should never run' };
      const turn = assistantTurns(hit);
      if (turn === 0)
        return { tool_calls: [{ id: 'call_other', name: 'send_message', arguments: { to: 'other', content: 'hi' } }] };
      if (turn === 1)
        return {
          tool_calls: [{ id: 'call_cap', name: 'send_message', arguments: { capability: 'work', content: 'hi' } }],
        };
      if (turn === 2)
        return {
          tool_calls: [{ id: 'call_worker', name: 'send_message', arguments: { to: 'worker', content: 'ping' } }],
        };
      return { content: 'done' };
    });
    const r = await invoke(cx, 'lead');
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const calls = r.json.tool_calls as { id: string; result: string; is_error: boolean }[];
    expect(calls.find((c) => c.id === 'call_other')).toMatchObject({ is_error: true });
    expect(calls.find((c) => c.id === 'call_other')!.result).toContain('may not message "other"');
    expect(calls.find((c) => c.id === 'call_cap')).toMatchObject({ is_error: true });
    expect(calls.find((c) => c.id === 'call_worker')!.result).toContain('pong from worker');
    expect(oai.hits.some((h) => (systemPromptOf(h) ?? '').includes('OTHER'))).toBe(false);
    const last = oai.hits.filter((h) => (systemPromptOf(h) ?? '').includes('LEAD')).at(-1)!;
    expect(toolResultsOf(last).map((t) => t.id)).toEqual(['call_other', 'call_cap', 'call_worker']);
  });

  it('the restriction holds when the agent runs in a worker thread (the host enforces it, not the task)', async () => {
    const d = await deployMarkdown(
      cx,
      '---\nname: lead-in-worker\ndescription: d\ntools: Agent(worker)\nexecution:\n  isolation: worker\n---\nLEAD2\n',
    );
    expect(d.status).toBe(201);
    oai.setScript((hit: StubHit): Reply => {
      if ((systemPromptOf(hit) ?? '').includes('OTHER')) return { content: 'other should never run' };
      if (assistantTurns(hit) === 0)
        return { tool_calls: [{ id: 'call_other', name: 'send_message', arguments: { to: 'other', content: 'hi' } }] };
      return { content: 'done' };
    });
    const r = await invoke(cx, 'lead-in-worker');
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.isolation).toBe('worker');
    const calls = r.json.tool_calls as { id: string; result: string; is_error: boolean }[];
    expect(calls[0]).toMatchObject({ id: 'call_other', is_error: true });
    expect(calls[0]!.result).toContain('may not message "other"');
  });
});

describe('[llm.model_aliases] maps Claude aliases and ids onto the configured provider', () => {
  let cx: Caxton;
  beforeAll(async () => {
    cx = await startCaxton({
      config: {
        llm: {
          default_provider: 'oai',
          providers: { oai: openaiProvider(oai.url) },
          model_aliases: { sonnet: 'gpt-4o', opus: 'gpt-4.1' },
        },
      },
    });
  });
  afterAll(async () => cx?.close());

  it('sonnet → gpt-4o without a warning; claude-opus-4-1-20250805 → the opus mapping (gpt-4.1)', async () => {
    const a = await deployMarkdown(cx, '---\nname: mapped-sonnet\ndescription: d\nmodel: sonnet\n---\nYou help.\n');
    expect(a.warnings.filter((x) => x.code === 'model_unresolved')).toEqual([]);
    const b = await deployMarkdown(
      cx,
      '---\nname: mapped-opus-id\ndescription: d\nmodel: claude-opus-4-1-20250805\n---\nYou help.\n',
    );
    expect(b.warnings.filter((x) => x.code === 'model_unresolved')).toEqual([]);
    await invoke(cx, 'mapped-sonnet');
    await invoke(cx, 'mapped-opus-id');
    expect(oai.hits.map((h) => h.body.model)).toEqual(['gpt-4o', 'gpt-4.1']);
  });
});

describe('an Anthropic-compatible provider configured under another name', () => {
  let cx: Caxton;
  beforeAll(async () => {
    cx = await startCaxton({
      config: {
        llm: {
          default_provider: 'oai',
          providers: { oai: openaiProvider(oai.url), claude: anthropicProvider(ant.url) },
        },
      },
    });
  });
  afterAll(async () => cx?.close());

  it('serves the built-in aliases and full Claude ids, unchanged ids, without a warning', async () => {
    const a = await deployMarkdown(cx, '---\nname: ant-sonnet\ndescription: d\nmodel: sonnet\n---\nYou help.\n');
    const b = await deployMarkdown(
      cx,
      '---\nname: ant-full-id\ndescription: d\nmodel: claude-opus-4-1-20250805\n---\nYou help.\n',
    );
    expect([...a.warnings, ...b.warnings].filter((x) => x.code === 'model_unresolved')).toEqual([]);
    expect((await invoke(cx, 'ant-sonnet')).json).toMatchObject({ provider: 'claude', model: 'claude-sonnet-4-5' });
    expect((await invoke(cx, 'ant-full-id')).json).toMatchObject({
      provider: 'claude',
      model: 'claude-opus-4-1-20250805',
    });
    expect(ant.hits.map((h) => h.body.model)).toEqual(['claude-sonnet-4-5', 'claude-opus-4-1-20250805']);
    expect(oai.hits).toHaveLength(0);
  });
});
