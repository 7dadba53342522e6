/**
 * WebAssembly agents on a real server: a C pricer (test/fixtures/wasm-c/pricer.c, built with
 * Debian's clang for wasm32 against sdk/c/caxton.h) deployed through the API beside configuration
 * agents whose model is the strict OpenAI-spec stub. It bids in a contract net and in an English
 * auction, is invoked directly (and calls a granted tool), and its deploy is refused with the
 * field named when the module is missing, outside agents_dir, not WebAssembly or lacks its entry.
 * Without that toolchain the file skips, with the helper's one line naming it.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AclMessage, ConversationId } from '../../src/messaging/index.js';
import { hasSystem } from '../helpers/system.js';
import { openaiProvider, removeTempDirs, setTestKeys, startCaxton, tempDir, type Caxton } from './helpers/caxton.js';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from './helpers/llm-stub.js';
import { buildCFixture } from '../helpers/wasm-c.js';

const haveC = hasSystem('wasm-c');

function build(out: string, opt = '-O2'): void {
  buildCFixture('pricer', out, opt);
}

/** The LLM bidders: their price in a contract net, their limit in an auction. */
const SUPPLIERS: Record<string, number> = { 'supplier-a': 40, 'supplier-b': 55 };
const COLLECTORS: Record<string, number> = { 'collector-a': 150, 'collector-b': 120 };

const msgs = (hit: StubHit) => hit.body.messages as { role: string; content: string }[];
const lastUser = (hit: StubHit) => [...msgs(hit)].reverse().find((m) => m.role === 'user')!.content;
const agentOf = (hit: StubHit) => /You are ([\w-]+)\./.exec(msgs(hit)[0]!.content)![1]!;

/** A model's answer to a protocol step: a call of one of the acts it is offered (propose, refuse). */
const act = (name: string, args: Record<string, unknown>): Reply => ({
  tool_calls: [{ id: `call_${name}`, name, arguments: args }],
});
const offersActs = (hit: StubHit) =>
  ((hit.body.tools ?? []) as { function?: { name?: string } }[]).some((t) => t.function?.name === 'propose');

function script(hit: StubHit): Reply {
  const agent = agentOf(hit);
  const prompt = lastUser(hit);
  if (offersActs(hit)) {
    if (agent in SUPPLIERS) return act('propose', { price: SUPPLIERS[agent] });
    const asking = Number(/Asking price: (\d+(?:\.\d+)?)/.exec(prompt)?.[1]);
    return asking <= COLLECTORS[agent]! ? act('propose', { price: asking }) : act('refuse', { reason: 'too dear' });
  }
  return { content: `${agent} did it` };
}

const PRICER = (extra = '') => `name = "pricer"
description = "Prices orders with a fixed formula"
capabilities = ["supplying", "collecting", "quoting"]
tools = ["calculator"]

[wasm]
module = "pricer.wasm"
fuel = 1_000_000
memory = "2MiB"
timeout = "2s"

[parameters]
base = 5
per_unit = 2
max_price = 170
${extra}`;

let stub: LlmStub;
let cx: Caxton;
let agentsDir: string;
let build2: string;

async function deployToml(body: string, method = 'POST', name = ''): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${cx.url}/api/v1/agents${name ? `/${name}` : ''}`, {
    method,
    headers: { 'content-type': 'application/toml' },
    body,
  });
  return { status: res.status, json: await res.json() };
}

async function send(body: Record<string, unknown>): Promise<ConversationId> {
  const res = await fetch(`${cx.url}/api/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  expect(res.status, JSON.stringify(json)).toBe(202);
  return json.conversation_id as ConversationId;
}

const messagesOf = async (id: ConversationId) =>
  (await cx.server.bus.reads.getConversation(id)).messages.map((s) => s.message);
const of = (ms: AclMessage[], p: string) => ms.filter((m) => m.performative === p);

beforeAll(async () => {
  if (!haveC) return;
  setTestKeys();
  const out = tempDir('caxton-wasm-agent-');
  build(join(out, 'pricer.wasm'));
  build2 = join(out, 'pricer-o1.wasm');
  build(build2, '-O1');
  stub = await startLlmStub((hit) => script(hit));
  cx = await startCaxton({
    config: { llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } } },
    agents: [
      ...Object.keys(SUPPLIERS).map((name) => ({ name, capabilities: ['supplying'] })),
      ...Object.keys(COLLECTORS).map((name) => ({ name, capabilities: ['collecting'] })),
    ],
  });
  agentsDir = cx.server.config.agents_dir;
  mkdirSync(agentsDir, { recursive: true });
  copyFileSync(join(out, 'pricer.wasm'), join(agentsDir, 'pricer.wasm'));
  writeFileSync(join(out, 'outside.wasm'), 'not in agents_dir');
  const r = await deployToml(PRICER());
  expect(r.status, JSON.stringify(r.json)).toBe(201);
}, 180_000);

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

describe.skipIf(!haveC)('WebAssembly agents', () => {
  it('a contract net whose winning bid comes from a WebAssembly agent', async () => {
    const hitsBefore = stub.hits.length;
    const id = await send({
      performative: 'cfp',
      protocol: 'fipa-contract-net',
      capability: 'supplying',
      content: { item: 'widgets', quantity: 10 },
      params: { 'X-select': 'lowest', 'X-select-field': 'price' },
      reply_by: '20s',
    });
    const done = await cx.server.bus.wait(id, 30_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    const ms = await messagesOf(id);
    // Three bids: two from the models (40, 55), one from the module (5 + 2 × 10 = 25).
    const bids = of(ms, 'propose').map((m) => [m.sender, m.content]);
    expect(bids).toHaveLength(3);
    expect(bids).toContainEqual(['pricer', { price: 25, by: 'pricer' }]);
    expect(bids).toContainEqual(['supplier-a', { price: 40 }]);
    expect(of(ms, 'accept-proposal').map((m) => m.receivers)).toEqual([['pricer']]);
    expect(
      of(ms, 'reject-proposal')
        .map((m) => m.receivers[0])
        .sort(),
    ).toEqual(['supplier-a', 'supplier-b']);
    const inform = of(ms, 'inform');
    expect(inform.map((m) => [m.sender, m.content])).toEqual([['pricer', { status: 'done', price: 25 }]]);
    // The models were asked (the strict stub saw two cfp prompts); the module was not a model call.
    expect(stub.hits.slice(hitsBefore).filter((h) => lastUser(h).includes(id))).toHaveLength(2);
  });

  it('an English auction where the WebAssembly pricer outbids the LLM collectors', async () => {
    const id = await send({
      performative: 'cfp',
      protocol: 'fipa-english-auction',
      capability: 'collecting',
      content: 'Lot 3: a barometer',
      params: { 'X-start-price': '60', 'X-increment': '20' },
      reply_by: '20s',
    });
    const done = await cx.server.bus.wait(id, 60_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    expect(done.reason).toBe('awarded to pricer');
    const ms = await messagesOf(id);
    // 60, 80, 100, 120 (all three), 140 (collector-a and the pricer), 160 (the pricer alone: max 170).
    expect(of(ms, 'cfp').map((m) => Number(m.params['X-price'] ?? m.params['X-start-price']))).toEqual([
      60, 80, 100, 120, 140, 160,
    ]);
    expect(of(ms, 'accept-proposal').map((m) => [m.receivers[0], (m.content as { price: number }).price])).toEqual([
      ['pricer', 160],
    ]);
    // Besides the auction's start and end notices, the winner's inform.
    expect(of(ms, 'inform').map((m) => m.params['X-auction'] ?? m.content)).toEqual([
      'start',
      'end',
      { status: 'done', price: 160 },
    ]);
  });

  it('a Dutch auction where the WebAssembly pricer is the first to take the falling price', async () => {
    const id = await send({
      performative: 'cfp',
      protocol: 'fipa-dutch-auction',
      capability: 'collecting',
      content: 'Lot 4: a sextant',
      params: { 'X-start-price': '230', 'X-decrement': '30', 'X-reserve': '50' },
      reply_by: '20s',
    });
    const done = await cx.server.bus.wait(id, 60_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    expect(done.reason).toBe('awarded to pricer');
    const ms = await messagesOf(id);
    // 230 and 200 are above every limit; at 170 only the pricer (max 170) takes it, the models' 150 and 120 refuse.
    expect(of(ms, 'cfp').map((m) => Number(m.params['X-price'] ?? m.params['X-start-price']))).toEqual([230, 200, 170]);
    expect(of(ms, 'accept-proposal').map((m) => [m.receivers[0], (m.content as { price: number }).price])).toEqual([
      ['pricer', 170],
    ]);
    // Besides the auction's start and end notices, the winner's inform.
    expect(of(ms, 'inform').map((m) => m.params['X-auction'] ?? m.content)).toEqual([
      'start',
      'end',
      { status: 'done', price: 170 },
    ]);
  });

  it('answers a direct invoke, calls a granted tool, and is recorded like any execution', async () => {
    const quote = await cx.invoke('pricer', { request: 'quote', context: { quantity: 3 } });
    expect(quote.status, quote.text).toBe(200);
    const body = quote.json as { content: string; provider: string; usage: { total_tokens: number } };
    expect(body.content).toBe('{"price":11}');
    expect(body.provider).toBe('wasm');
    expect(body.usage.total_tokens).toBe(0);

    const calc = await cx.invoke('pricer', { request: 'use calculator please' });
    expect(calc.status, calc.text).toBe(200);
    const c = calc.json as { content: string; turns: number; tool_calls: { name: string; is_error: boolean }[] };
    expect(c.content).toBe('the calculator says 42');
    expect(c.tool_calls.map((t: { name: string; is_error: boolean }) => [t.name, t.is_error])).toEqual([
      ['calculator', false],
    ]);
    expect(c.turns).toBe(2);

    // Execution records are written in batches: wait for this one.
    await expect
      .poll(
        async () => {
          const list = await fetch(`${cx.url}/api/v1/executions?agent=pricer`);
          return ((await list.json()) as { executions: { provider?: string }[] }).executions.length;
        },
        { timeout: 10_000 },
      )
      .toBeGreaterThanOrEqual(2);
  });

  it('a run whose every tool call was refused says so, on the agent API and on /v1', async () => {
    const bare = await deployToml(
      PRICER().replace('"pricer"', '"bare-pricer"').replace('tools = ["calculator"]', 'tools = []'),
    );
    expect(bare.status, JSON.stringify(bare.json)).toBe(201);
    const r = await cx.invoke('bare-pricer', { request: 'use calculator please' });
    expect(r.status, r.text).toBe(200);
    const body = r.json as { content: string; tool_calls: { name: string; is_error: boolean }[] };
    expect(body.tool_calls.map((t) => [t.name, t.is_error])).toEqual([['calculator', true]]);
    expect(body.content).toMatch(/^the calculator says tool "calculator" is not allowed for agent "bare-pricer"/);
    expect(r.json).toMatchObject({ all_tool_calls_refused: true });

    const chat = await fetch(`${cx.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'bare-pricer', messages: [{ role: 'user', content: 'use calculator please' }] }),
    });
    const completion = (await chat.json()) as { metadata?: unknown };
    expect(chat.status, JSON.stringify(completion)).toBe(200);
    expect(completion.metadata).toEqual({ caxton_all_tool_calls_refused: 'true' });
    const response = await fetch(`${cx.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'bare-pricer', input: 'use calculator please' }),
    });
    expect(((await response.json()) as { metadata?: unknown }).metadata).toEqual({
      caxton_all_tool_calls_refused: 'true',
    });

    // The granted pricer's call ran: nothing to say.
    const granted = await cx.invoke('pricer', { request: 'use calculator please' });
    expect(granted.json).not.toHaveProperty('all_tool_calls_refused');
  });

  it('refuses a module that is missing, outside agents_dir, not WebAssembly or without its entry, naming the field', async () => {
    const missing = await deployToml(PRICER().replace('"pricer.wasm"', '"nope.wasm"').replace('"pricer"', '"p2"'));
    expect(missing.status).toBe(422);
    expect(JSON.stringify(missing.json)).toContain('wasm.module');
    expect(JSON.stringify(missing.json)).toContain('nope.wasm');

    const outside = await deployToml(
      PRICER().replace('"pricer.wasm"', '"../outside.wasm"').replace('"pricer"', '"p2"'),
    );
    expect(outside.status).toBe(422);
    expect(JSON.stringify(outside.json)).toMatch(/wasm\.module/);

    writeFileSync(join(agentsDir, 'text.wasm'), 'hello');
    const invalid = await deployToml(PRICER().replace('"pricer.wasm"', '"text.wasm"').replace('"pricer"', '"p2"'));
    expect(invalid.status).toBe(422);
    expect(JSON.stringify(invalid.json)).toContain('not valid WebAssembly');

    const entry = await deployToml(
      PRICER().replace('timeout = "2s"', 'timeout = "2s"\nentry = "bid"').replace('"pricer"', '"p2"'),
    );
    expect(entry.status).toBe(422);
    expect(JSON.stringify(entry.json)).toContain('wasm.entry');

    const noPrompt = await deployToml('name = "p3"\ncapabilities = ["x"]\n');
    expect(noPrompt.status).toBe(422);
    expect(JSON.stringify(noPrompt.json)).toContain('system_prompt');
  });

  it('runs out of fuel with a clear error, and a new module is a new version', async () => {
    const spin = await deployToml(PRICER('spin = true').replace('"pricer"', '"spinner"'));
    expect(spin.status, JSON.stringify(spin.json)).toBe(201);
    const r = await cx.invoke('spinner', { request: 'quote' });
    expect(r.status).toBe(500);
    expect(r.text).toContain('fuel_exhausted');

    const before = (await (await fetch(`${cx.url}/api/v1/agents/spinner/versions`)).json()) as {
      versions: { version: number }[];
    };
    // Same text, other module bytes: the digest makes it a new version.
    copyFileSync(build2, join(agentsDir, 'pricer.wasm'));
    const again = await deployToml(PRICER('spin = true').replace('"pricer"', '"spinner"'), 'PUT', 'spinner');
    expect(again.status, JSON.stringify(again.json)).toBe(200);
    const after = (await (await fetch(`${cx.url}/api/v1/agents/spinner/versions`)).json()) as {
      versions: { version: number }[];
    };
    expect(after.versions.length).toBe(before.versions.length + 1);
  });
  it('rolls out like any agent: a blue-green candidate answers as NAME@VERSION until promoted', async () => {
    const quoter = (base: number) => PRICER().replace('"pricer"', '"quoter"').replace('base = 5', `base = ${base}`);
    const first = await deployToml(quoter(5));
    expect(first.status, JSON.stringify(first.json)).toBe(201);
    const res = await fetch(`${cx.url}/api/v1/agents/quoter?strategy=blue-green`, {
      method: 'PUT',
      headers: { 'content-type': 'application/toml' },
      body: quoter(7),
    });
    const candidate = (await res.json()) as { version: number };
    expect(res.status, JSON.stringify(candidate)).toBe(200);
    const quote = async (name: string) => {
      const r = await cx.invoke(name, { request: 'quote', context: { quantity: 3 } });
      expect(r.status, r.text).toBe(200);
      return (r.json as { content: string }).content;
    };
    expect(await quote('quoter')).toBe('{"price":11}');
    expect(await quote(`quoter@${candidate.version}`)).toBe('{"price":13}');
    const promoted = await fetch(`${cx.url}/api/v1/agents/quoter/promote`, { method: 'POST' });
    expect(promoted.status, await promoted.text()).toBe(200);
    expect(await quote('quoter')).toBe('{"price":13}');
  });
  it('a module looping on the log host call ends at its 2 s limit (on a worker) or by fuel (in the server thread), and /health keeps answering', async () => {
    const looper = (name: string, fuel: string) =>
      PRICER('log_loop = true').replace('"pricer"', `"${name}"`).replace('fuel = 1_000_000', `fuel = ${fuel}`);
    for (const [name, fuel] of [
      ['log-worker', '1_000_000_000'],
      ['log-inline', '1_000_000'],
    ] as const) {
      const d = await deployToml(looper(name, fuel));
      expect(d.status, JSON.stringify(d.json)).toBe(201);
    }
    /** /health latencies (ms), asked one after another until `until` settles. */
    async function health(until: Promise<unknown>): Promise<number[]> {
      let settled = false;
      void until.finally(() => (settled = true));
      const ms: number[] = [];
      while (!settled) {
        const t0 = performance.now();
        const res = await fetch(`${cx.url}/health`);
        await res.arrayBuffer();
        expect(res.status).toBe(200);
        ms.push(performance.now() - t0);
      }
      return ms;
    }
    const pct = (xs: number[], p: number) =>
      [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!.toFixed(1);
    const stats = (xs: number[]) => `p50 ${pct(xs, 0.5)} ms, p99 ${pct(xs, 0.99)} ms (${xs.length} asked)`;
    const idle = await health(new Promise((r) => setTimeout(r, 1_000)));

    const t0 = performance.now();
    const call = cx.invoke('log-worker', { request: 'quote' });
    const during = await health(call);
    const r = await call;
    const took = performance.now() - t0;
    // The deadline (504), or the fuel its host calls spent (500), whichever the machine's speed
    // reaches first: either way the sandbox ended the call, naming the limit.
    expect([500, 504], r.text).toContain(r.status);
    expect(r.text).toMatch(/exceeded its deadline \(limit 2000 ms\)|ran out of fuel \(limit 1000000000 units/);
    // Loosely: /health went on answering through a call of about 2 s.
    expect(during.length).toBeGreaterThan(10);
    console.log(
      `[metering] WebAssembly agent on a worker: ${Math.round(took)} ms; /health idle ${stats(idle)}, during ${stats(during)}`,
    );

    const inline = await cx.invoke('log-inline', { request: 'quote' });
    expect(inline.status).toBe(500);
    expect(inline.text).toContain('fuel_exhausted');
  }, 60_000);

  it('runs a module above the in-thread fuel on a worker thread, with the same answers and limits', async () => {
    // Its first call starts the worker thread within the call's deadline: 10 s, as beside the
    // whole suite on two cores that start alone has taken over 2 s.
    const offThread = (extra = '') =>
      PRICER(extra)
        .replace('"pricer"', '"heavy"')
        .replace('fuel = 1_000_000', 'fuel = 5_000_000')
        .replace('timeout = "2s"', 'timeout = "10s"');
    const deployed = await deployToml(offThread());
    expect(deployed.status, JSON.stringify(deployed.json)).toBe(201);
    const quote = await cx.invoke('heavy', { request: 'quote', context: { quantity: 3 } });
    expect(quote.status, quote.text).toBe(200);
    expect((quote.json as { content: string }).content).toBe('{"price":11}');
    const spin = await deployToml(offThread('spin = true'), 'PUT', 'heavy');
    expect(spin.status, JSON.stringify(spin.json)).toBe(200);
    const r = await cx.invoke('heavy', { request: 'quote' });
    expect(r.status).toBe(500);
    expect(r.text).toContain('fuel_exhausted');
  });
});
