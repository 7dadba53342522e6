/**
 * One conversation across several agents is one trace: a Contract Net started by an agent through
 * send_message, whose bidders each call a tool before proposing, exports a single connected span
 * tree (HTTP request → execution → LLM and tool calls → routing → deliveries → executions ...).
 * Real server, real HTTP, the scripted OpenAI-compatible stub, an in-memory span exporter.
 */
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiProvider, removeTempDirs, setTestKeys, startCaxton, type Caxton } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from '../execution/helpers/llm-stub.js';
import { waitUntil } from '../helpers/wait.js';

const PRICES: Record<string, number> = { 'carrier-a': 30, 'carrier-b': 12, 'carrier-c': 21 };

function agentOf(hit: StubHit): string {
  const sys = (hit.body.messages as { role: string; content: string }[])[0]!.content;
  return /You are ([\w-]+)\./.exec(sys)![1]!;
}

/** Carriers compute their price with the calculator tool, then bid; the planner runs the Contract Net. */
function script(hit: StubHit): Reply {
  const agent = agentOf(hit);
  const msgs = hit.body.messages as { role: string; content: string }[];
  const prompt = [...msgs].reverse().find((m) => m.role === 'user')!.content;
  const toolResult = msgs.find((m) => m.role === 'tool');
  if (agent === 'archivist') {
    if (!toolResult)
      return {
        content: '',
        tool_calls: [
          {
            id: 'mem_1',
            name: 'create_entities',
            arguments: { entities: [{ name: 'Lyon', entityType: 'city', observations: ['a destination'] }] },
          },
        ],
      };
    return { content: 'Noted.' };
  }
  if (agent === 'planner') {
    if (!toolResult)
      return {
        content: '',
        tool_calls: [
          {
            id: 'call_1',
            name: 'send_message',
            arguments: { capability: 'transport', performative: 'cfp', content: 'Ship 3 boxes to Lyon' },
          },
        ],
      };
    return { content: `Booked. ${toolResult.content}` };
  }
  if (prompt.includes('"cfp" message')) {
    if (!toolResult)
      return {
        content: '',
        tool_calls: [{ id: 'calc_1', name: 'calculator', arguments: { expression: `${PRICES[agent]} * 1` } }],
      };
    // The bid goes through the `propose` act its model is offered (src/messaging/acts.ts).
    return {
      content: '',
      tool_calls: [{ id: 'propose_1', name: 'propose', arguments: { price: PRICES[agent], currency: 'EUR' } }],
    };
  }
  if (prompt.includes('"accept-proposal" message')) return { content: `Delivered by ${agent}` };
  return { content: `unexpected prompt for ${agent}` };
}

const exporter = new InMemorySpanExporter();
let stub: LlmStub;
let cx: Caxton;

beforeAll(async () => {
  setTestKeys();
  stub = await startLlmStub((hit) => script(hit));
  cx = await startCaxton({
    config: { llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } } },
    agents: [
      ...Object.keys(PRICES).map((name) => ({ name, capabilities: ['transport'], tools: ['calculator'] })),
      { name: 'planner', capabilities: ['planning'], tools: ['send_message'] },
      { name: 'archivist', capabilities: ['notes'], tools: ['create_entities'] },
    ],
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
});

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

describe('tracing across agents', () => {
  it('a Contract Net over three agents with tool calls exports one connected trace', async () => {
    exporter.reset();
    const res = await cx.invoke(
      'planner',
      { request: 'Get 3 boxes shipped to Lyon' },
      { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    );
    expect(res.status, res.text).toBe(200);
    expect(res.json.content).toContain('is completed');
    // The winner's inform is recorded after the planner's answer may have been sent: wait for the
    // span of that delivery (the last one of the conversation) to finish.
    await waitUntil(() => exporter.getFinishedSpans().some((s) => s.name === 'message.deliver accept-proposal'), {
      timeoutMs: 10_000,
      what: 'the accept-proposal delivery span',
    });
    const spans = exporter.getFinishedSpans();
    const traceIds = new Set(spans.map((s) => s.spanContext().traceId));
    expect([...traceIds]).toEqual(['0af7651916cd43dd8448eb211c80319c']);

    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    // Every span's parent is another span of the trace, except the HTTP request's (the client's span).
    const roots = spans.filter((s) => !byId.has(parentOf(s) ?? ''));
    expect(roots.map((s) => s.name)).toEqual(['POST /api/v1/agents/:name/invoke']);
    expect(parentOf(roots[0]!)).toBe('b7ad6b7169203331');

    const named = (prefix: string) => spans.filter((s) => s.name.startsWith(prefix));
    const ancestors = (s: ReadableSpan): string[] => {
      const out: string[] = [];
      for (let p = byId.get(parentOf(s) ?? ''); p; p = byId.get(parentOf(p) ?? '')) out.push(p.name);
      return out;
    };
    const planner = named('agent.execute planner');
    expect(planner).toHaveLength(1);
    expect(parentOf(planner[0]!)).toBe(roots[0]!.spanContext().spanId);
    // The planner's send_message call is the parent of the cfp's routing.
    const cfpRoute = named('message.route cfp');
    expect(cfpRoute).toHaveLength(1);
    expect(byId.get(parentOf(cfpRoute[0]!)!)!.name).toBe('tool.call send_message');
    // Three deliveries of the cfp, each running a carrier that calls the calculator and the model.
    expect(named('message.deliver cfp')).toHaveLength(3);
    for (const carrier of Object.keys(PRICES)) {
      const exec = named(`agent.execute ${carrier}`);
      expect(exec.length).toBeGreaterThanOrEqual(1);
      expect(ancestors(exec[0]!)).toEqual(
        expect.arrayContaining([
          'message.deliver cfp',
          'message.route cfp',
          'tool.call send_message',
          'agent.execute planner',
        ]),
      );
    }
    const calc = named('tool.call calculator');
    expect(calc).toHaveLength(3);
    for (const c of calc) expect(ancestors(c)[0]).toMatch(/^agent\.execute carrier-/);
    expect(named('llm.chat').length).toBeGreaterThanOrEqual(2 + 3 * 2 + 1);
    // Outgoing HTTP to the model provider carries the llm.chat span as its traceparent header.
    const llmIds = new Set(named('llm.chat').map((x) => x.spanContext().spanId));
    const sent = stub.hits.filter((h) =>
      String(h.headers.traceparent ?? '').includes('0af7651916cd43dd8448eb211c80319c'),
    );
    expect(sent.length).toBe(named('llm.chat').length);
    for (const h of sent) expect(llmIds.has(String(h.headers.traceparent).split('-')[2]!)).toBe(true);
    // The platform's decision and the winner's answer are in the same trace, below the cfp.
    const accept = named('message.route accept-proposal');
    expect(accept).toHaveLength(1);
    expect(ancestors(accept[0]!)).toContain('message.route cfp');
    expect(named('message.route reject-proposal')).toHaveLength(2);
    const winner = named('agent.execute carrier-b').find((s) =>
      ancestors(s).includes('message.deliver accept-proposal'),
    );
    expect(winner).toBeDefined();
    // Replies carry the context of the delivery that produced them.
    const list = await cx.server.bus.reads.listConversations({ participant: 'planner' });
    const cnp = list.items.find((c) => c.protocol === 'fipa-contract-net')!;
    const { messages } = await cx.server.bus.reads.getConversation(cnp.id);
    const inform = messages.find((m) => m.message.performative === 'inform')!.message;
    expect(inform.trace_context?.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    const informParent = inform.trace_context!.traceparent.split('-')[2]!;
    expect(byId.get(informParent)?.name).toBe('message.deliver accept-proposal');
  });

  it('a memory operation is a span below the tool call that made it', async () => {
    exporter.reset();
    const res = await cx.invoke(
      'archivist',
      { request: 'Remember Lyon' },
      { traceparent: '00-33333333333333333333333333333333-4444444444444444-01' },
    );
    expect(res.status, res.text).toBe(200);
    const spans = exporter
      .getFinishedSpans()
      .filter((x) => x.spanContext().traceId === '33333333333333333333333333333333');
    const byId = new Map(spans.map((x) => [x.spanContext().spanId, x]));
    const mem = spans.find((x) => x.name === 'memory.create_entities');
    expect(mem).toBeDefined();
    const call = byId.get(parentOf(mem!)!)!;
    expect(call.name).toBe('tool.call create_entities');
    expect(byId.get(parentOf(call)!)!.name).toBe('agent.execute archivist');
  });

  it('model calls name the provider by its OpenTelemetry GenAI value, and the configured name apart', async () => {
    exporter.reset();
    const res = await cx.invoke(
      'carrier-b',
      { request: 'hello' },
      { traceparent: '00-55555555555555555555555555555555-6666666666666666-01' },
    );
    expect(res.status, res.text).toBe(200);
    const spans = exporter
      .getFinishedSpans()
      .filter((x) => x.spanContext().traceId === '55555555555555555555555555555555');
    for (const name of ['llm.chat', 'agent.execute carrier-b']) {
      const span = spans.find((x) => x.name === name);
      expect(span?.attributes, name).toMatchObject({
        'gen_ai.system': 'openai',
        'gen_ai.provider.name': 'openai',
        'caxton.provider': 'stub',
      });
    }
  });

  it("a direct tool call through the API is a tool.call span in the caller's trace", async () => {
    exporter.reset();
    const res = await fetch(`${cx.url}/api/v1/tools/builtin/calculator/call`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        traceparent: '00-77777777777777777777777777777777-8888888888888888-01',
      },
      body: JSON.stringify({ args: { expression: '6 * 7' } }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    await waitUntil(() => exporter.getFinishedSpans().some((x) => x.name.startsWith('tool.call')), {
      what: 'the tool.call span',
    });
    const spans = exporter
      .getFinishedSpans()
      .filter((x) => x.spanContext().traceId === '77777777777777777777777777777777');
    const call = spans.find((x) => x.name === 'tool.call builtin.calculator');
    expect(call?.attributes).toMatchObject({
      'caxton.tool': 'calculator',
      'caxton.agent': 'api',
      'caxton.tool.via': 'rest',
      'caxton.tool.kind': 'builtin',
    });
    const http = spans.find((x) => x.spanContext().spanId === parentOf(call!));
    expect(http?.name).toMatch(/POST/);
  });

  it('a request its caller did not sample records no span, and hands the decision on to the model provider', async () => {
    exporter.reset();
    const res = await cx.invoke(
      'carrier-b',
      { request: 'hello' },
      { traceparent: '00-99999999999999999999999999999999-aaaaaaaaaaaaaaaa-00' },
    );
    expect(res.status, res.text).toBe(200);
    expect(
      exporter.getFinishedSpans().filter((x) => x.spanContext().traceId === '99999999999999999999999999999999'),
    ).toEqual([]);
    const sent = stub.hits.filter((h) =>
      String(h.headers.traceparent ?? '').includes('99999999999999999999999999999999'),
    );
    expect(sent.length).toBeGreaterThan(0);
    for (const h of sent) expect(h.headers.traceparent).toBe('00-99999999999999999999999999999999-aaaaaaaaaaaaaaaa-00');
  });

  it('log lines written inside a span carry its trace_id and span_id', async () => {
    // A rejected request is logged (level info) inside its HTTP span.
    const res = await cx.invoke(
      'planner',
      { request: '' },
      { traceparent: '00-11111111111111111111111111111111-2222222222222222-01' },
    );
    expect(res.status).toBe(400);
    const lines = cx.logs.filter((l) => (l as { trace_id?: string }).trace_id === '11111111111111111111111111111111');
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect((l as { span_id?: string }).span_id).toMatch(/^[0-9a-f]{16}$/);
  });
});
