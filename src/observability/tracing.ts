import { context, ProxyTracerProvider, trace, type Tracer, type TracerProvider } from '@opentelemetry/api';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ReportingExporter, type ExportFailure } from './export-failures.js';
import { samplerOf, SpanRecorder } from './span-recorder.js';
import type { SpanStore } from './span-store.js';
import { SyncContextManager } from './sync-context.js';

export interface Tracing {
  tracer: Tracer;
  /** Whether spans are recorded at all (an OTLP endpoint or a span processor is configured). */
  enabled: boolean;
  /** Whether spans leave the process (OTLP endpoint configured). */
  exporting: boolean;
  /** The node's own recent spans (`[tracing] local_spans`), when kept. */
  local?: SpanStore;
  /** Exports the spans ended so far now (tests; the batch processor otherwise exports every few seconds). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Sets up tracing: Caxton's own span recorder (ADR 0065) behind the OpenTelemetry `Tracer`
 * interface. Spans are recorded only when they have somewhere to go: the node's own span store
 * (`local`, ADR 0056), and when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
 * is set, the OpenTelemetry OTLP/HTTP exporter behind its batch processor as well; extra SDK span
 * processors (tests use an in-memory exporter) can be passed in and receive the same spans. With
 * none of them the tracer is the API's no-op one: trace context is still carried (an incoming
 * `traceparent` passes through messages and tool calls unchanged) but nothing is recorded, and the
 * OpenTelemetry SDK packages are never imported. The sampler is the one the standard
 * OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG variables name, read from the process
 * environment as the SDK reads them.
 */
export async function setupTracing(opts: {
  version: string;
  env?: NodeJS.ProcessEnv;
  processors?: SpanProcessor[];
  /** The node's own recent spans: kept whether or not they are exported. */
  local?: SpanStore;
  /** Called for every failed OTLP export (collector down, 4xx/5xx, wrong URL): see export-failures.ts. */
  onExportFailure?: (f: ExportFailure) => void;
}): Promise<Tracing> {
  const env = opts.env ?? process.env;
  const processors: SpanProcessor[] = [...(opts.processors ?? []), ...(opts.local ? [opts.local] : [])];
  const exporting = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  if (!exporting && processors.length === 0) {
    return {
      tracer: trace.getTracer('caxton', opts.version),
      enabled: false,
      exporting: false,
      flush: async () => {},
      shutdown: async () => {},
    };
  }
  const { resourceFromAttributes } = namedExports(await import('@opentelemetry/resources'));
  if (exporting) {
    const [{ BatchSpanProcessor }, { OTLPTraceExporter }] = await Promise.all([
      import('@opentelemetry/sdk-trace-base').then(namedExports),
      import('@opentelemetry/exporter-trace-otlp-http').then(namedExports),
    ]);
    const otlp = new OTLPTraceExporter();
    processors.push(
      new BatchSpanProcessor(opts.onExportFailure ? new ReportingExporter(otlp, opts.onExportFailure) : otlp),
    );
  }
  const tracer = new SpanRecorder(
    {
      processors,
      resource: resourceFromAttributes({
        'service.name': env.OTEL_SERVICE_NAME ?? 'caxton',
        'service.version': opts.version,
      }),
      instrumentationScope: { name: 'caxton', version: opts.version },
    },
    samplerOf(process.env),
  );
  useSyncContext();
  // Code that does not get the tracer handed (the execution loop, shared with worker and child
  // processes where nothing records) takes the global one: this server's, the latest started.
  const provider: TracerProvider = { getTracer: () => tracer };
  trace.disable();
  trace.setGlobalTracerProvider(provider);
  let closed = false;
  return {
    tracer,
    enabled: true,
    exporting,
    ...(opts.local && { local: opts.local }),
    flush: async () => {
      await Promise.all(processors.map((p) => p.forceFlush()));
    },
    shutdown: async () => {
      if (closed) return;
      closed = true;
      try {
        await Promise.all(processors.map((p) => p.shutdown()));
      } finally {
        const global = trace.getTracerProvider();
        if (global instanceof ProxyTracerProvider && global.getDelegate() === provider) trace.disable();
        releaseSyncContext();
      }
    },
  };
}

/**
 * Servers in one process (tests, benchmarks) share the API's one global context manager: the
 * first to start registers it, the last to stop takes it away.
 */
let syncContextUsers = 0;

function useSyncContext(): void {
  if (syncContextUsers++ === 0) context.setGlobalContextManager(new SyncContextManager());
}

function releaseSyncContext(): void {
  if (--syncContextUsers === 0) context.disable();
}

/**
 * The named exports of a dynamically imported package. Node's own import of a CommonJS package
 * gives them beside `default` (its module.exports); the bundle's lazy chunk of one (ADR 0055)
 * gives only `default`; an ES module package has them and no `default`.
 */
function namedExports<T extends object>(ns: T): T {
  return (ns as { default?: T }).default ?? ns;
}
