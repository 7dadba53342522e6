/**
 * How Caxton's own spans take their attributes and hand their context on (ADR 0086): attributes
 * given after the sampling decision, a traceparent a recorded span just handed on read back from
 * the span, span names made once, and a message copied to carry a trace context. What each
 * exports is what a parsed traceparent and copied attributes gave. Real OpenTelemetry SDK
 * processor and in-memory exporter.
 */
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { traceIdsOf, traceIdsOfContext } from '../../src/observability/agent-events.js';
import { childTraceparent, giveAttributes, spanName, startSpan, traceparentOf } from '../../src/observability/index.js';
import { childTraceContext, SpanKind, SpanTraceContext, startSpanIn } from '../../src/observability/trace-context.js';
import { setupTracing, type Tracing } from '../../src/observability/tracing.js';
import { withTraceContext, type AclMessage, type ConversationId, type MessageId } from '../../src/messaging/message.js';

let tracing: Tracing | undefined;

async function setup(): Promise<{ tracing: Tracing; exporter: InMemorySpanExporter }> {
  delete process.env.OTEL_TRACES_SAMPLER;
  const exporter = new InMemorySpanExporter();
  tracing = await setupTracing({ version: 'test', env: {}, processors: [new SimpleSpanProcessor(exporter)] });
  return { tracing, exporter };
}

afterEach(async () => {
  await tracing?.shutdown();
  tracing = undefined;
});

describe('trace hand-off', () => {
  it('keeps attributes given after the sampling decision, and adds later ones in order', async () => {
    const { tracing, exporter } = await setup();
    const span = startSpan(tracing.tracer, 'given', undefined);
    expect(span.isRecording()).toBe(true);
    giveAttributes(span, { 'caxton.agent': 'a', 'caxton.turn': 1 });
    span.setAttribute('caxton.outcome', 'ok');
    span.end();
    const bare = startSpan(tracing.tracer, 'bare', undefined);
    bare.setAttribute('late', 1);
    bare.end();
    const none = startSpan(tracing.tracer, 'none', undefined);
    none.end();
    const [given, late, empty] = exporter.getFinishedSpans();
    expect(Object.entries(given!.attributes)).toEqual([
      ['caxton.agent', 'a'],
      ['caxton.turn', 1],
      ['caxton.outcome', 'ok'],
    ]);
    expect(late!.attributes).toEqual({ late: 1 });
    expect(empty!.attributes).toEqual({});
  });

  it('gives a span below a traceparent just handed on the same parent a parsed one gives', async () => {
    const { tracing, exporter } = await setup();
    const parent = startSpan(tracing.tracer, 'parent', undefined);
    const tp = childTraceparent(parent, undefined)!;
    expect(traceparentOf(parent)).toBe(tp);
    const handedIds = traceIdsOf(tp);
    startSpan(tracing.tracer, 'handed', tp).end();
    // Another span hands its context on and is continued: the first traceparent is then parsed.
    const other = startSpan(tracing.tracer, 'other', undefined);
    startSpan(tracing.tracer, 'below other', childTraceparent(other, undefined)).end();
    traceIdsOf(traceparentOf(other));
    startSpan(tracing.tracer, 'parsed', tp).end();
    const parsedIds = traceIdsOf(tp);
    other.end();
    parent.end();
    const spans = exporter.getFinishedSpans();
    const handed = spans.find((s) => s.name === 'handed')!;
    const parsed = spans.find((s) => s.name === 'parsed')!;
    expect(handed.parentSpanContext).toEqual(parsed.parentSpanContext);
    expect(handed.parentSpanContext).toMatchObject({ spanId: parent.spanContext().spanId, isRemote: true });
    expect(handedIds).toEqual(parsedIds);
    expect(handedIds).toEqual({ trace_id: tp.slice(3, 35), span_id: tp.slice(36, 52) });
  });

  it("hands a recorded span's context on in a message with its ids: the same parent, ids and JSON as the parsed traceparent", async () => {
    const { tracing, exporter } = await setup();
    const route = startSpan(tracing.tracer, 'route', undefined);
    const handed = childTraceContext(route, undefined, 'k=v')!;
    route.end();
    expect(handed).toBeInstanceOf(SpanTraceContext);
    const plain = { traceparent: handed.traceparent, tracestate: 'k=v' };
    // What the message stores and what readers of its fields see: the W3C fields alone.
    expect(JSON.stringify(handed)).toBe(JSON.stringify(plain));
    expect(Object.keys(handed)).toEqual(['traceparent', 'tracestate']);
    expect({ ...handed }).toEqual(plain);
    expect(childTraceContext(startSpan(tracing.tracer, 'x', undefined), undefined, undefined)).not.toHaveProperty(
      'tracestate',
    );
    startSpanIn(tracing.tracer, 'from the context', handed, SpanKind.CONSUMER).end();
    // Another traceparent parsed in between, so the plain one is parsed again below.
    startSpan(tracing.tracer, 'other', `00-${'4'.repeat(32)}-${'5'.repeat(16)}-01`).end();
    startSpanIn(tracing.tracer, 'from the plain one', plain, SpanKind.CONSUMER).end();
    const spans = exporter.getFinishedSpans();
    const fromContext = spans.find((s) => s.name === 'from the context')!;
    const fromPlain = spans.find((s) => s.name === 'from the plain one')!;
    expect(fromContext.parentSpanContext).toEqual(fromPlain.parentSpanContext);
    expect(fromContext.parentSpanContext).toMatchObject({ spanId: route.spanContext().spanId, isRemote: true });
    expect(fromContext.spanContext().traceId).toBe(route.spanContext().traceId);
    expect(traceIdsOfContext(handed)).toEqual(traceIdsOf(`${handed.traceparent}`));
    expect(traceIdsOfContext(plain)).toEqual({
      trace_id: route.spanContext().traceId,
      span_id: route.spanContext().spanId,
    });
    // A span not recorded hands on what it continued, as plain fields.
    const unsampledParent = `00-${'6'.repeat(32)}-${'7'.repeat(16)}-00`;
    const dropped = startSpan(tracing.tracer, 'dropped', unsampledParent);
    expect(childTraceContext(dropped, unsampledParent, undefined)).toEqual({ traceparent: unsampledParent });
  });

  it('names spans once per operation and name', () => {
    const name = spanName('message.route', 'inform');
    expect(name).toBe('message.route inform');
    expect(spanName('message.route', 'inform')).toBe(name);
    expect(spanName('message.deliver', 'inform')).toBe('message.deliver inform');
  });

  it('copies a message to carry a trace context, its other fields and their order unchanged', () => {
    const m: AclMessage = {
      id: 'msg_1' as MessageId,
      performative: 'inform',
      sender: 's',
      receivers: ['r'],
      content: 'hi',
      conversation_id: 'conv_1' as ConversationId,
      trace_context: { traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`, tracestate: 'k=v' },
      params: {},
      timestamp: '2026-11-27T00:00:00.000Z',
      chain: [],
    };
    const tc = { traceparent: `00-${'1'.repeat(32)}-${'3'.repeat(16)}-01`, tracestate: 'k=v' };
    const copy = withTraceContext(m, tc);
    expect(copy).not.toBe(m);
    expect(m.trace_context?.traceparent).toContain('2222');
    expect(JSON.stringify(copy)).toBe(JSON.stringify({ ...m, trace_context: tc }));
  });
});
