import { context, propagation, trace, type Tracer } from '@opentelemetry/api';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ReportingExporter, type ExportFailure } from './export-failures.js';

export interface Tracing {
  tracer: Tracer;
  /** Whether spans are recorded at all (an OTLP endpoint or a span processor is configured). */
  enabled: boolean;
  /** Whether spans leave the process (OTLP endpoint configured). */
  exporting: boolean;
  /** Exports the spans ended so far now (tests; the batch processor otherwise exports every few seconds). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Sets up the OpenTelemetry tracer. Spans are recorded only when they have somewhere to go: when
 * OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set they are exported
 * over OTLP/HTTP; extra processors (tests use an in-memory exporter) can be passed in. Otherwise
 * the tracer is the API's no-op one: trace context is still carried (an incoming `traceparent`
 * passes through messages and tool calls unchanged) but nothing is recorded, and the SDK and the
 * OTLP exporter are never imported.
 */
export async function setupTracing(opts: {
  version: string;
  env?: NodeJS.ProcessEnv;
  processors?: SpanProcessor[];
  /** Called for every failed OTLP export (collector down, 4xx/5xx, wrong URL): see export-failures.ts. */
  onExportFailure?: (f: ExportFailure) => void;
}): Promise<Tracing> {
  const env = opts.env ?? process.env;
  const processors: SpanProcessor[] = [...(opts.processors ?? [])];
  const exporting = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  if (!exporting && processors.length === 0) {
    return { tracer: trace.getTracer('caxton', opts.version), enabled: false, exporting: false, flush: async () => {}, shutdown: async () => {} };
  }
  const [{ resourceFromAttributes }, { BatchSpanProcessor }, { NodeTracerProvider }, { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION }] = await Promise.all([
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  if (exporting) {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    const otlp = new OTLPTraceExporter();
    processors.push(new BatchSpanProcessor(opts.onExportFailure ? new ReportingExporter(otlp, opts.onExportFailure) : otlp));
  }
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: env.OTEL_SERVICE_NAME ?? 'caxton', [ATTR_SERVICE_VERSION]: opts.version }),
    spanProcessors: processors,
  });
  provider.register();
  return {
    tracer: trace.getTracer('caxton', opts.version),
    enabled: true,
    exporting,
    flush: () => provider.forceFlush(),
    shutdown: async () => {
      await provider.shutdown();
      // Unregister everything register() installed, the async context manager included (its
      // promise hooks would otherwise keep costing after this server is gone).
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}
