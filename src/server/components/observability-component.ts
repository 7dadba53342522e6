import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ServerConfig } from '../../config/index.js';
import {
  exportFailureReporter,
  setupTracing,
  SpanStore,
  startMemoryReducer,
  type Logger,
  type MemoryReducer,
  type Metrics,
  type Tracing,
} from '../../observability/index.js';
import { StatusSampler } from '../../observability/status.js';
import { VERSION } from '../../shared/version.js';
import type { Component } from './component.js';

export interface ObservabilityComponent extends Component {
  readonly tracing: Tracing;
  /** Counters sampled every second, for the rates of GET /api/v1/status/overview. */
  readonly sampler: StatusSampler;
  /**
   * Starts the idle garbage collection ([server] idle_gc), once; the server calls it when a start
   * is over. Reaching V8's collector makes a V8 context (a few ms), which no first request waits
   * for, and the heap a start leaves is the baseline its growth is measured from.
   */
  startIdleGc(): void;
}

/** Tracing (with its export-failure reporting), the idle garbage collection and the status sampler: the first to start, the last to close. */
export async function startObservability(opts: {
  config: ServerConfig;
  logger: Logger;
  metrics: Metrics;
  spanProcessors?: SpanProcessor[];
  exportFailureLogIntervalMs?: number;
}): Promise<ObservabilityComponent> {
  const { config, logger, metrics } = opts;
  // After a burst the server goes quiet and V8 would keep the burst's garbage: one full collection
  // at the first idle moment gives it back (ADR 0031).
  let reducer: MemoryReducer | undefined;
  let closed = false;
  const startIdleGc = () => {
    if (!config.server.idle_gc || reducer || closed) return;
    reducer = startMemoryReducer({
      onCollect: (freed, ms) => {
        metrics.idleCollections.inc();
        metrics.idleCollectionFreed.inc(freed);
        logger.debug(
          { freed_bytes: freed, duration_ms: Math.round(ms) },
          'idle: full garbage collection after a burst',
        );
      },
    });
  };
  // OTLP export failures (collector down, wrong URL, 4xx): a rate-limited warn line and caxton_otlp_export_failures_total.
  const exportFailures = exportFailureReporter(logger, metrics, opts.exportFailureLogIntervalMs);
  // The node's own recent spans (GET /api/v1/traces/{id}), with or without an OTLP endpoint.
  const local =
    config.tracing.local_spans > 0
      ? new SpanStore({ maxSpans: config.tracing.local_spans, maxBytes: config.tracing.local_bytes })
      : undefined;
  const tracing = await setupTracing({
    version: VERSION,
    ...(local && { local }),
    onExportFailure: (f) => exportFailures.record(f),
    ...(opts.spanProcessors && { processors: opts.spanProcessors }),
  });
  const sampler = new StatusSampler(metrics);
  sampler.start();
  return {
    name: 'observability',
    tracing,
    sampler,
    startIdleGc,
    close: async () => {
      closed = true;
      sampler.stop();
      reducer?.close();
      // A final export that fails is reported (exportFailures), not thrown out of close().
      await tracing.shutdown().catch(() => {});
      exportFailures.flush(); // the failures since the last line, the shutdown's own flush included
    },
  };
}
