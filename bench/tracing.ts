/**
 * Where tracing's cost is, piece by piece, in process CPU time per operation, Caxton's span
 * recorder (ADR 0065) beside the OpenTelemetry SDK in the same run: the promise hooks an entered
 * AsyncLocalStorage (the SDK's Node context manager) puts on every await, one span recorded with
 * and without an execution's attributes, a recorded span made active around awaits, a root the
 * sampler drops, a span below an unsampled parent, and a no-op tracer's span. No targets.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { context, type Tracer } from '@opentelemetry/api';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { SpanStore, startSpan, traceparentOf, withSpan } from '../src/observability/index.js';
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

const processor = () =>
  new BatchSpanProcessor(new DiscardExporter(), { maxQueueSize: 100_000, maxExportBatchSize: 2_048 });

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

/** The figures one tracer gives, in the order of the table's rows. */
async function figures(tracer: Tracer): Promise<{ bare: number; full: number; active: number; below: number }> {
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
  const active = await perCall(() => {
    const s = startSpan(tracer, 'x', SAMPLED);
    return withSpan(s, twentyAwaits).then(() => s.end());
  });
  const below = await perCall(() => startSpan(tracer, 'llm.chat', UNSAMPLED, () => ({ 'caxton.agent': 'x' })).end());
  return { bare, full, active, below };
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
  // Caxton's recorder first: its context manager installs no hooks, the SDK's below does.
  const tracing = await setupTracing({ version: 'bench', env: {}, processors: [processor()] });
  const own = await figures(tracing.tracer).finally(() => tracing.shutdown());
  // As a server records: the node's span store (its default size, full) beside the batch processor.
  const stored = await setupTracing({
    version: 'bench',
    env: {},
    processors: [processor()],
    local: new SpanStore({ maxSpans: 10_000, maxBytes: 16 * 1024 * 1024 }),
  });
  const withStore = await perCall(() =>
    startSpan(stored.tracer, 'llm.chat', SAMPLED, () => ({ 'caxton.agent': 'x', 'caxton.turn': 1 })).end(),
  ).finally(() => stored.shutdown());
  const sdkProvider = new NodeTracerProvider({ spanProcessors: [processor()] });
  sdkProvider.register();
  const sdk = await figures(sdkProvider.getTracer('bench')).finally(async () => {
    await sdkProvider.shutdown();
    context.disable();
  });
  const vs = (metric: string, a: number, b: number, what = 'through the OpenTelemetry SDK') =>
    rows.push({ metric, value: us(a), baseline: `${us(b)} ${what} (${fmt(b / a, 1)} × Caxton's)` });
  vs('one recorded span: start + end', own.bare, sdk.bare);
  vs("one recorded span with an execution's attributes and traceparent", own.full, sdk.full);
  vs(
    'recorded span made active around 20 awaits',
    own.active,
    sdk.active,
    `through the SDK with its AsyncLocalStorage (20 awaits alone: ${us(plain)})`,
  );
  vs('span below an unsampled parent', own.below, sdk.below);
  rows.push({
    metric: "one recorded span kept by the node's span store (10,000 spans) and queued by the batch processor",
    value: us(withStore),
    baseline: `${us(own.bare)} with the batch processor only`,
  });

  // A root the sampler drops (parentbased_always_off): Caxton's recorder hands back one shared
  // no-op span; the SDK makes ids, runs its sampler and counts the span before dropping it.
  process.env.OTEL_TRACES_SAMPLER = 'parentbased_always_off';
  try {
    const off = await setupTracing({ version: 'bench', env: {}, processors: [processor()] });
    const ownRoot = await perCall(() =>
      startSpan(off.tracer, 'message.route inform', undefined, () => ({ 'caxton.sender': 'x' })).end(),
    ).finally(() => off.shutdown());
    const sdkOff = new NodeTracerProvider({ spanProcessors: [processor()] });
    const sdkTracer = sdkOff.getTracer('bench');
    const sdkRoot = await perCall(() =>
      startSpan(sdkTracer, 'message.route inform', undefined, () => ({ 'caxton.sender': 'x' })).end(),
    ).finally(() => sdkOff.shutdown());
    vs('a root the sampler drops (parentbased_always_off)', ownRoot, sdkRoot);
  } finally {
    delete process.env.OTEL_TRACES_SAMPLER;
  }

  const noopTracing = await setupTracing({ version: 'bench', env: {} });
  const noop = await perCall(() =>
    startSpan(noopTracing.tracer, 'llm.chat', SAMPLED, () => ({ 'caxton.agent': 'x' })).end(),
  );
  rows.push({
    metric: 'span with tracing off (no-op tracer, traceparent passed through)',
    value: us(noop),
    baseline: '—',
  });
  return {
    rows,
    raw: { plain, hooked, own, sdk, noop, withStore },
    notes: [
      `Best of ${REPS} runs of ${N.toLocaleString('en')} calls each, process CPU time (user + system) per call; one process, in this order. Both tracers feed a BatchSpanProcessor whose exporter discards the batches.`,
    ],
  };
}

export const tracingSuite: Suite = {
  name: 'tracing',
  description: "where tracing costs: Caxton's span recorder beside the OpenTelemetry SDK (CPU per call)",
  run,
};
