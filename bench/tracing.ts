/**
 * Where tracing's cost is, piece by piece, in process CPU time per operation: the promise hooks an
 * entered AsyncLocalStorage (the SDK's context manager) puts on every await, one SDK span recorded
 * with and without attributes, a span below an unsampled parent through Caxton's tracer and
 * through the SDK alone, and a no-op tracer's span. Context figures for ADR 0051, no targets.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { context } from '@opentelemetry/api';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { startSpan, traceparentOf, withSpan } from '../src/observability/index.js';
import { setupTracing } from '../src/observability/tracing.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt } from './lib/stats.js';

const N = 50_000;
const REPS = 5;
const SAMPLED = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const UNSAMPLED = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';

class DiscardExporter implements SpanExporter {
  export(_spans: ReadableSpan[], done: (r: { code: 0 }) => void): void {
    done({ code: 0 });
  }
  async shutdown(): Promise<void> {}
}

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** The best of REPS runs of N calls, in µs of CPU per call (the least disturbed by other processes). */
async function perCall(f: () => unknown): Promise<number> {
  let best = Infinity;
  for (let r = 0; r < REPS; r++) {
    const c0 = cpuUs();
    for (let i = 0; i < N; i++) await f();
    best = Math.min(best, (cpuUs() - c0) / N);
  }
  return best;
}

async function twentyAwaits(): Promise<number> {
  let x = 0;
  for (let i = 0; i < 20; i++) x += await Promise.resolve(i);
  return x;
}

async function run(): Promise<SuiteReport> {
  const rows: Row[] = [];
  const us = (v: number) => `${fmt(v, 2)} µs`;
  const plain = await perCall(twentyAwaits);
  // Entering any AsyncLocalStorage installs the promise hooks for the whole process, until the last one is disabled.
  const als = new AsyncLocalStorage<number>();
  als.enterWith(1);
  const hooked = await perCall(twentyAwaits);
  als.disable();
  rows.push({
    metric: '20 awaits with an AsyncLocalStorage entered (promise hooks on every promise)',
    value: us(hooked),
    baseline: `${us(plain)} without`,
  });

  delete process.env.OTEL_TRACES_SAMPLER;
  const tracing = await setupTracing({
    version: 'bench',
    env: {},
    processors: [new BatchSpanProcessor(new DiscardExporter(), { maxQueueSize: 100_000, maxExportBatchSize: 2_048 })],
  });
  try {
    const tracer = tracing.tracer;
    const bare = await perCall(() => tracer.startSpan('x', {}, context.active()).end());
    const full = await perCall(() => {
      const s = startSpan(tracer, 'agent.execute x', SAMPLED, () => ({
        'caxton.agent': 'x',
        'caxton.conversation_id': 'c',
      }));
      traceparentOf(s);
      s.setAttributes({
        'caxton.execution_id': 'e',
        'caxton.isolation': 'context',
        'gen_ai.request.model': 'm',
        'caxton.turns': 2,
      });
      s.end();
    });
    rows.push({ metric: 'one recorded SDK span: start + end', value: us(bare), baseline: '—' });
    rows.push({
      metric: "one recorded SDK span with an execution's attributes and traceparent",
      value: us(full),
      baseline: '—',
    });
    const active = await perCall(() => {
      const s = startSpan(tracer, 'x', SAMPLED);
      return withSpan(s, twentyAwaits).then(() => s.end());
    });
    rows.push({
      metric: 'recorded span made active around 20 awaits',
      value: us(active),
      baseline: `${us(plain)} for the awaits alone`,
    });
    const shortcut = await perCall(() =>
      startSpan(tracer, 'llm.chat', UNSAMPLED, () => ({ 'caxton.agent': 'x' })).end(),
    );
    // The SDK's own tracer, unregistered: it makes a span id, runs the sampler and counts the span before dropping it.
    const sdk = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(new DiscardExporter())] }).getTracer(
      'bench',
    );
    const sdkUnsampled = await perCall(() =>
      startSpan(sdk, 'llm.chat', UNSAMPLED, () => ({ 'caxton.agent': 'x' })).end(),
    );
    rows.push({
      metric: 'span below an unsampled parent, Caxton tracer (no SDK span)',
      value: us(shortcut),
      baseline: `${us(sdkUnsampled)} through the SDK tracer`,
    });
  } finally {
    await tracing.shutdown();
  }
  const off = await setupTracing({ version: 'bench', env: {} });
  const noop = await perCall(() => startSpan(off.tracer, 'llm.chat', SAMPLED, () => ({ 'caxton.agent': 'x' })).end());
  rows.push({
    metric: 'span with tracing off (no-op tracer, traceparent passed through)',
    value: us(noop),
    baseline: '—',
  });
  return {
    rows,
    raw: rows,
    notes: [
      `Best of ${REPS} runs of ${N.toLocaleString('en')} calls each, process CPU time (user + system) per call; one process, in this order.`,
    ],
  };
}

export const tracingSuite: Suite = {
  name: 'tracing',
  description: 'where tracing costs: promise hooks, SDK spans, unsampled and no-op spans (CPU per call)',
  run,
};
