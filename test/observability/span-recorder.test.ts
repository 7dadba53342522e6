/**
 * The span recorder's own parts (ADR 0065): a received traceparent as a parent, ids, a span made
 * active for the synchronous part of a call, and what an ended span hands the span store and the
 * exporters. Real OpenTelemetry SDK processor and in-memory exporter.
 */
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SpanStatusCode, SpanStore, startSpan, traceparentOf, withSpan } from '../../src/observability/index.js';
import type { RecordedSpan } from '../../src/observability/span-recorder.js';
import { randomId } from '../../src/observability/span-recorder.js';
import { setupTracing, type Tracing } from '../../src/observability/tracing.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';

let tracing: Tracing | undefined;

async function setup(local?: SpanStore): Promise<{ tracing: Tracing; exporter: InMemorySpanExporter }> {
  delete process.env.OTEL_TRACES_SAMPLER;
  const exporter = new InMemorySpanExporter();
  tracing = await setupTracing({
    version: 'test',
    env: {},
    processors: [new SimpleSpanProcessor(exporter)],
    ...(local && { local }),
  });
  return { tracing, exporter };
}

afterEach(async () => {
  await tracing?.shutdown();
  tracing = undefined;
});

describe('span recorder', () => {
  it('continues a received traceparent as a remote parent, and starts a new trace for a malformed one', async () => {
    const { tracing, exporter } = await setup();
    startSpan(tracing.tracer, 'child', `00-${TRACE}-${PARENT}-01`).end();
    for (const bad of [`00-${TRACE.toUpperCase()}-${PARENT}-01`, `00-${TRACE}-${PARENT}-1`, `01-${TRACE}-${PARENT}-01`])
      startSpan(tracing.tracer, 'root', bad).end();
    const [child, ...roots] = exporter.getFinishedSpans();
    expect(child!.spanContext().traceId).toBe(TRACE);
    expect(child!.parentSpanContext).toMatchObject({ traceId: TRACE, spanId: PARENT, isRemote: true });
    expect(roots).toHaveLength(3);
    for (const r of roots) {
      expect(r.spanContext().traceId).not.toBe(TRACE);
      expect(r.parentSpanContext).toBeUndefined();
    }
  });

  it('answers work below an unsampled received parent with that parent, not recorded', async () => {
    const { tracing, exporter } = await setup();
    const span = startSpan(tracing.tracer, 'below', `00-${TRACE}-${PARENT}-00`);
    expect(span.isRecording()).toBe(false);
    expect(span.spanContext()).toMatchObject({ traceId: TRACE, spanId: PARENT, traceFlags: 0 });
    span.end();
    expect(exporter.getFinishedSpans()).toHaveLength(0);
  });

  it('makes ids of lower-case hex, distinct across pages of random bytes', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 2_000; i++) {
      const id = randomId(i % 2 ? 8 : 16);
      expect(id).toMatch(i % 2 ? /^[0-9a-f]{16}$/ : /^[0-9a-f]{32}$/);
      ids.add(id);
    }
    expect(ids.size).toBe(2_000);
  });

  it('makes a span active for the synchronous part of a call only; its children name it as parent', async () => {
    const { tracing, exporter } = await setup();
    const parent = startSpan(tracing.tracer, 'parent', undefined);
    const seen = withSpan(parent, () => {
      const child = startSpan(tracing.tracer, 'child', undefined);
      child.end();
      return trace.getActiveSpan();
    });
    expect(seen).toBe(parent);
    expect(trace.getActiveSpan()).toBeUndefined();
    parent.end();
    const [child] = exporter.getFinishedSpans();
    expect(child!.parentSpanContext).toMatchObject({ spanId: parent.spanContext().spanId, traceFlags: 1 });
    expect(child!.parentSpanContext?.isRemote).toBeUndefined();
  });

  it("keeps an ended span's ids, traceparent and times readable, and the span store serves its trace", async () => {
    const store = new SpanStore({ maxSpans: 2, maxBytes: 1_000_000 });
    const { tracing } = await setup(store);
    const spans = ['a', 'b', 'c'].map((name) => {
      const s = startSpan(tracing.tracer, name, `00-${TRACE}-${PARENT}-01`, { 'caxton.agent': name });
      const tp = traceparentOf(s);
      s.end();
      expect(traceparentOf(s)).toBe(tp);
      return s as RecordedSpan;
    });
    expect(spans[0]!.spanContext()).toEqual({ traceId: TRACE, spanId: spans[0]!.spanId, traceFlags: 1 });
    expect(spans[0]!.duration[0]).toBeGreaterThanOrEqual(0);
    // Two kept: the oldest is evicted.
    expect(store.size).toBe(2);
    expect(store.evicted).toBe(1);
    const stored = store.trace(TRACE);
    expect(stored.map((s) => s.name).sort()).toEqual(['b', 'c']);
    expect(stored[0]).toMatchObject({ trace_id: TRACE, parent_span_id: PARENT, kind: 'internal' });
    expect(store.trace('1'.repeat(32))).toEqual([]);
  });

  it('serves a stored span as recorded: long values cut, other values as JSON, status, kind, times', async () => {
    const store = new SpanStore({ maxSpans: 10, maxBytes: 1_000_000 });
    const { tracing } = await setup(store);
    const before = Date.now();
    const s = startSpan(tracing.tracer, 'tool.call x', `00-${TRACE}-${PARENT}-01`, {
      short: 'v',
      long: 'y'.repeat(600),
      n: 3,
      ok: true,
      list: ['a', 'b'],
    });
    s.setAttribute('later', 7);
    s.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
    s.end();
    const [stored] = store.trace(TRACE);
    expect(stored).toMatchObject({
      trace_id: TRACE,
      span_id: (s as RecordedSpan).spanId,
      parent_span_id: PARENT,
      name: 'tool.call x',
      kind: 'internal',
      status: 'error',
      status_message: 'boom',
      attributes: { short: 'v', long: `${'y'.repeat(512)}…`, n: 3, ok: true, list: '["a","b"]', later: 7 },
    });
    expect(Date.parse(stored!.start)).toBeGreaterThanOrEqual(before - 1);
    expect(stored!.duration_ms).toBeGreaterThanOrEqual(0);
  });

  it('stamps spans with the wall clock after the system clock is stepped, and never ends one before it started', async () => {
    const store = new SpanStore({ maxSpans: 100, maxBytes: 1_000_000 });
    const { tracing } = await setup(store);
    const realNow = Date.now.bind(Date);
    let step = 20_000;
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + step);
    try {
      const before = Date.now();
      const s = startSpan(tracing.tracer, 'after a step forward', `00-${TRACE}-${PARENT}-01`);
      step = -60_000;
      s.end();
      const [stored] = store.trace(TRACE);
      expect(Date.parse(stored!.start)).toBeGreaterThanOrEqual(before - 1);
      expect(Date.parse(stored!.start)).toBeLessThanOrEqual(before + 1_000);
      expect(stored!.duration_ms).toBeGreaterThanOrEqual(0);
    } finally {
      spy.mockRestore();
    }
  });

  it('serves the attributes of spans whose keys are all different (beyond the key lists it indexes)', async () => {
    const store = new SpanStore({ maxSpans: 2_000, maxBytes: 10_000_000 });
    const { tracing } = await setup(store);
    for (let i = 0; i < 1_500; i++)
      startSpan(tracing.tracer, 'k', `00-${TRACE}-${PARENT}-01`, { [`key${i}`]: i }).end();
    const stored = store.trace(TRACE);
    expect(stored).toHaveLength(1_500);
    expect(stored.every((s, i) => s.attributes[`key${i}`] === i && Object.keys(s.attributes).length === 1)).toBe(true);
  });

  it('serves a root span without a parent, and keeps the ids of a span from another tracer as they were given', () => {
    const store = new SpanStore({ maxSpans: 10, maxBytes: 1_000_000 });
    const foreign = (traceId: string, spanId: string, parentId?: string) =>
      ({
        name: 'foreign',
        kind: 0,
        spanContext: () => ({ traceId, spanId, traceFlags: 1 }),
        parentSpanContext: parentId === undefined ? undefined : { traceId, spanId: parentId, traceFlags: 1 },
        startTime: [1_700_000_000, 0],
        duration: [0, 5_000_000],
        status: { code: 0 },
        attributes: { a: 1 },
      }) as unknown as Parameters<SpanStore['onEnd']>[0];
    const upper = 'ABCDEF0123456789ABCDEF0123456789';
    store.onEnd(foreign(TRACE, 'ffffffff00000001'));
    store.onEnd(foreign(upper, 'ABCDEF0123456789', '0123456789ABCDEF'));
    expect(store.trace(TRACE)).toMatchObject([
      { trace_id: TRACE, span_id: 'ffffffff00000001', parent_span_id: null, duration_ms: 5 },
    ]);
    expect(store.trace(upper)).toMatchObject([
      { trace_id: upper, span_id: 'ABCDEF0123456789', parent_span_id: '0123456789ABCDEF' },
    ]);
    expect(store.trace(upper.toLowerCase())).toEqual([]);
  });

  it('evicts the oldest spans to stay within its byte bound', async () => {
    const store = new SpanStore({ maxSpans: 100, maxBytes: 1_000 });
    const { tracing } = await setup(store);
    for (let i = 0; i < 10; i++)
      startSpan(tracing.tracer, `s${i}`, `00-${TRACE}-${PARENT}-01`, { v: 'z'.repeat(100) }).end();
    expect(store.bytes).toBeLessThanOrEqual(1_000);
    expect(store.size + store.evicted).toBe(10);
    expect(store.evicted).toBeGreaterThan(0);
    const names = store.trace(TRACE).map((s) => s.name);
    expect(names.at(-1)).toBe('s9');
    expect(names).not.toContain('s0');
  });
});
