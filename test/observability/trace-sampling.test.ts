/**
 * What a span that is not recorded costs and hands on: no attribute objects, no active async
 * context, and the decision not to sample kept for everything below it (explicitly, through the
 * traceparent). Real OpenTelemetry SDK with an in-memory exporter.
 */
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { childTraceparent, startSpan, traceparentOf, withSpan } from '../../src/observability/index.js';
import { setupTracing, type Tracing } from '../../src/observability/tracing.js';

const SAMPLED = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const UNSAMPLED = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';

let tracing: Tracing | undefined;
const saved = process.env.OTEL_TRACES_SAMPLER;
const savedArg = process.env.OTEL_TRACES_SAMPLER_ARG;

async function setup(sampler: string | undefined): Promise<{ tracing: Tracing; exporter: InMemorySpanExporter }> {
  if (sampler === undefined) delete process.env.OTEL_TRACES_SAMPLER;
  else process.env.OTEL_TRACES_SAMPLER = sampler;
  const exporter = new InMemorySpanExporter();
  tracing = await setupTracing({ version: 'test', env: {}, processors: [new SimpleSpanProcessor(exporter)] });
  return { tracing, exporter };
}

afterEach(async () => {
  await tracing?.shutdown();
  tracing = undefined;
  if (saved === undefined) delete process.env.OTEL_TRACES_SAMPLER;
  else process.env.OTEL_TRACES_SAMPLER = saved;
  if (savedArg === undefined) delete process.env.OTEL_TRACES_SAMPLER_ARG;
  else process.env.OTEL_TRACES_SAMPLER_ARG = savedArg;
});

describe('spans that are not recorded', () => {
  it('build no attributes, are never made active, and hand on the context they continued', async () => {
    const { tracing, exporter } = await setup(undefined);
    let built = 0;
    const span = startSpan(tracing.tracer, 'agent.execute x', UNSAMPLED, () => (built++, { 'caxton.agent': 'x' }));
    expect(span.isRecording()).toBe(false);
    expect(built).toBe(0);
    expect(childTraceparent(span, UNSAMPLED)).toBe(UNSAMPLED);
    expect(withSpan(span, () => trace.getActiveSpan())).toBeUndefined();
    span.end();
    expect(exporter.getFinishedSpans()).toHaveLength(0);
  });

  it('a trace sampled out at its root stays out below it, through the traceparent alone', async () => {
    process.env.OTEL_TRACES_SAMPLER_ARG = '0';
    const { tracing, exporter } = await setup('parentbased_traceidratio');
    const root = startSpan(tracing.tracer, 'message.route inform', undefined);
    expect(root.isRecording()).toBe(false);
    const tp = childTraceparent(root, undefined);
    expect(tp).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    expect(tp!.split('-')[1]).not.toBe('0'.repeat(32));
    const child = startSpan(tracing.tracer, 'message.deliver inform', tp);
    expect(child.isRecording()).toBe(false);
    expect(traceparentOf(child)).toBe(tp);
    expect(exporter.getFinishedSpans()).toHaveLength(0);
  });

  it('a root that keeps nothing is one shared no-op span and hands nothing on; a caller’s context passes through', async () => {
    const { tracing, exporter } = await setup('parentbased_always_off');
    const a = startSpan(tracing.tracer, 'message.route inform', undefined, () => {
      throw new Error('attributes are not built when nothing records');
    });
    const b = startSpan(tracing.tracer, 'agent.execute x', undefined);
    expect(a).toBe(b);
    expect(a.isRecording()).toBe(false);
    expect(childTraceparent(a, undefined)).toBeUndefined();
    // Below a caller's sampled context the caller decides (parent-based): recorded.
    const sampled = startSpan(tracing.tracer, 'x', SAMPLED);
    expect(childTraceparent(sampled, SAMPLED)).not.toBe(SAMPLED);
    const below = startSpan(tracing.tracer, 'x', UNSAMPLED);
    expect(childTraceparent(below, UNSAMPLED)).toBe(UNSAMPLED);
    for (const s of [a, sampled, below]) s.end();
    expect(exporter.getFinishedSpans()).toHaveLength(1);
  });

  it('a sampler that ignores its parent still records below an unsampled one', async () => {
    const { tracing, exporter } = await setup('always_on');
    const span = startSpan(tracing.tracer, 'llm.chat', UNSAMPLED, { 'caxton.turn': 1 });
    expect(span.isRecording()).toBe(true);
    span.end();
    expect(exporter.getFinishedSpans().map((s) => s.attributes)).toEqual([{ 'caxton.turn': 1 }]);
  });
});

describe('spans that are recorded', () => {
  it('get their attributes, are active inside withSpan, and hand on their own context', async () => {
    const { tracing, exporter } = await setup(undefined);
    const span = startSpan(tracing.tracer, 'agent.execute x', SAMPLED, () => ({ 'caxton.agent': 'x' }));
    expect(span.isRecording()).toBe(true);
    expect(withSpan(span, () => trace.getActiveSpan())).toBe(span);
    const tp = childTraceparent(span, SAMPLED);
    expect(tp).toBe(traceparentOf(span));
    expect(tp).not.toBe(SAMPLED);
    span.end();
    const [done] = exporter.getFinishedSpans();
    expect(done?.attributes).toEqual({ 'caxton.agent': 'x' });
    expect(done?.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
  });
});

describe('tracing off', () => {
  it('the caller’s traceparent passes through unchanged, and no attributes are built', async () => {
    const off = await setupTracing({ version: 'test', env: {} });
    expect(off.enabled).toBe(false);
    const span = startSpan(off.tracer, 'agent.execute x', SAMPLED, () => {
      throw new Error('attributes are not built when nothing records');
    });
    expect(childTraceparent(span, SAMPLED)).toBe(SAMPLED);
    expect(childTraceparent(startSpan(off.tracer, 'x', undefined), undefined)).toBeUndefined();
  });
});
