/**
 * A server exporting over OTLP/HTTP to a real collector on 127.0.0.1 sends, for a request whose
 * agent messages another agent, exactly the spans an in-memory exporter receives beside it, in
 * the OpenTelemetry serializer's JSON for them: one trace from the HTTP request through the
 * execution, the tool call, the message's routing and delivery, to the receiving agent's
 * execution and its model call. A request its caller did not sample sends nothing.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiProvider, removeTempDirs, setTestKeys, startCaxton } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from '../execution/helpers/llm-stub.js';
import { waitUntil } from '../helpers/wait.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
}
interface OtlpRequest {
  resourceSpans: { resource: unknown; scopeSpans: { scope: unknown; spans: OtlpSpan[] }[] }[];
}

const SAMPLED = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const UNSAMPLED = '00-99999999999999999999999999999999-aaaaaaaaaaaaaaaa-00';

function script(hit: StubHit): Reply {
  const msgs = hit.body.messages as { role: string; content: string }[];
  const agent = /You are ([\w-]+)\./.exec(msgs[0]!.content)?.[1];
  if (agent === 'front' && !msgs.some((m) => m.role === 'tool'))
    return {
      content: '',
      tool_calls: [
        {
          id: 'call_1',
          name: 'send_message',
          arguments: { capability: 'notes', performative: 'inform', content: 'the parcel left' },
        },
      ],
    };
  return { content: `noted by ${agent}` };
}

let collector: Server;
const requests: OtlpRequest[] = [];
let stub: LlmStub;
const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;

beforeAll(async () => {
  collector = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      requests.push(JSON.parse(text) as OtlpRequest);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', () => r()));
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  setTestKeys();
  stub = await startLlmStub((hit) => script(hit));
});

afterAll(async () => {
  if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
  collector.close();
  await stub?.close();
  removeTempDirs();
});

describe('spans exported over OTLP/HTTP', () => {
  it('are the in-memory exporter’s spans in the exporter’s JSON, one trace across a message, and none for an unsampled caller', async () => {
    // Kept here rather than in an InMemorySpanExporter, which forgets its spans at shutdown.
    const recorded: ReadableSpan[] = [];
    const memory: SpanProcessor = {
      onStart: () => {},
      onEnd: (s) => void recorded.push(s),
      forceFlush: async () => {},
      shutdown: async () => {},
    };
    const cx = await startCaxton({
      config: { llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } } },
      agents: [
        { name: 'front', capabilities: ['desk'], tools: ['send_message'] },
        { name: 'back', capabilities: ['notes'], tools: [] },
      ],
      spanProcessors: [memory],
    });
    try {
      const res = await cx.invoke('front', { request: 'tell the notes' }, { traceparent: SAMPLED });
      expect(res.status, res.text).toBe(200);
      await waitUntil(() => recorded.some((s) => s.name === 'agent.execute back'), {
        timeoutMs: 10_000,
        what: "the receiving agent's execution span",
      });
      await waitUntil(() => recorded.some((s) => s.name === 'message.deliver inform'), {
        timeoutMs: 10_000,
        what: 'the delivery span',
      });
      const skipped = await cx.invoke('back', { request: 'hello' }, { traceparent: UNSAMPLED });
      expect(skipped.status, skipped.text).toBe(200);
    } finally {
      // Closing the server flushes its export queue.
      await cx.close();
    }
    const sent = requests.flatMap((r) => r.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
    expect(sent.map((s) => s.spanId).sort()).toEqual(recorded.map((s) => s.spanContext().spanId).sort());
    // Field for field what the OpenTelemetry serializer writes for the same spans.
    const expected = JSON.parse(
      new TextDecoder().decode(JsonTraceSerializer.serializeRequest(recorded)),
    ) as OtlpRequest;
    const byId = (spans: OtlpSpan[]) => new Map(spans.map((s) => [s.spanId, s]));
    const want = byId(expected.resourceSpans[0]!.scopeSpans[0]!.spans);
    for (const s of sent) expect(s).toEqual(want.get(s.spanId));
    for (const r of requests) {
      expect(r.resourceSpans[0]!.resource).toEqual(expected.resourceSpans[0]!.resource);
      expect(r.resourceSpans[0]!.scopeSpans[0]!.scope).toEqual(expected.resourceSpans[0]!.scopeSpans[0]!.scope);
    }
    // Nothing of the unsampled caller's trace; the sampled caller's is one tree from the HTTP
    // request to the receiving agent's model call (the agents' deployment made traces of its own).
    expect(sent.filter((s) => s.traceId === '9'.repeat(32))).toEqual([]);
    const inTrace = sent.filter((s) => s.traceId === '4bf92f3577b34da6a3ce929d0e0e4736');
    const spans = byId(inTrace);
    const ancestors = (s: OtlpSpan) => {
      const out: string[] = [];
      for (let p = spans.get(s.parentSpanId ?? ''); p; p = spans.get(p.parentSpanId ?? '')) out.push(p.name);
      return out;
    };
    const roots = inTrace.filter((s) => !spans.has(s.parentSpanId ?? ''));
    expect(roots.map((s) => [s.name, s.parentSpanId])).toEqual([
      ['POST /api/v1/agents/:name/invoke', '00f067aa0ba902b7'],
    ]);
    const back = inTrace.find((s) => s.name === 'agent.execute back')!;
    expect(ancestors(back)).toEqual(
      expect.arrayContaining(['message.deliver inform', 'tool.call send_message', 'agent.execute front']),
    );
    expect(inTrace.some((s) => s.name === 'llm.chat' && spans.get(s.parentSpanId!) === back)).toBe(true);
  });
});
