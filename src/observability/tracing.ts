import {
  context,
  propagation,
  trace,
  TraceFlags,
  type Context,
  type Span,
  type SpanOptions,
  type Tracer,
  type TracerOptions,
  type TracerProvider,
} from '@opentelemetry/api';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ReportingExporter, type ExportFailure } from './export-failures.js';
import type { SpanStore } from './span-store.js';

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
 * Sets up the OpenTelemetry tracer. Spans are recorded only when they have somewhere to go: the
 * node's own span store (`local`, ADR 0056), and when OTEL_EXPORTER_OTLP_ENDPOINT (or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, OTLP/HTTP as well; extra processors (tests use an
 * in-memory exporter) can be passed in. With none of them
 * the tracer is the API's no-op one: trace context is still carried (an incoming `traceparent`
 * passes through messages and tool calls unchanged) but nothing is recorded, and the SDK and the
 * OTLP exporter are never imported.
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
  const [
    { resourceFromAttributes },
    { BatchSpanProcessor },
    { NodeTracerProvider },
    { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION },
  ] = await Promise.all([
    import('@opentelemetry/resources').then(namedExports),
    import('@opentelemetry/sdk-trace-base').then(namedExports),
    import('@opentelemetry/sdk-trace-node').then(namedExports),
    import('@opentelemetry/semantic-conventions').then(namedExports),
  ]);
  if (exporting) {
    const { OTLPTraceExporter } = namedExports(await import('@opentelemetry/exporter-trace-otlp-http'));
    const otlp = new OTLPTraceExporter();
    processors.push(
      new BatchSpanProcessor(opts.onExportFailure ? new ReportingExporter(otlp, opts.onExportFailure) : otlp),
    );
  }
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: env.OTEL_SERVICE_NAME ?? 'caxton',
      [ATTR_SERVICE_VERSION]: opts.version,
    }),
    spanProcessors: processors,
  });
  provider.register();
  if (parentBased(process.env.OTEL_TRACES_SAMPLER)) {
    // register() installed the provider itself: the shortcut goes in front of it.
    trace.disable();
    trace.setGlobalTracerProvider(new UnsampledParentShortcut(provider));
  }
  return {
    tracer: trace.getTracer('caxton', opts.version),
    enabled: true,
    exporting,
    ...(opts.local && { local: opts.local }),
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

/**
 * Whether the sampler the SDK builds from OTEL_TRACES_SAMPLER follows its parent's decision: the
 * default (parentbased_always_on) and every parentbased_* one do; always_on and traceidratio may
 * record below a parent that was not sampled. An unknown value falls back to the default.
 */
function parentBased(sampler: string | undefined): boolean {
  return !['always_on', 'traceidratio'].includes((sampler ?? '').trim().toLowerCase());
}

/**
 * Below a parent that was not sampled, a parent-based sampler drops every span: the shortcut
 * hands back the parent's own context as a non-recording span instead of asking the SDK, which
 * would make up a span id, run the sampler and count the span only to drop it.
 */
class UnsampledParentShortcut implements TracerProvider {
  readonly #tracers = new Map<string, Tracer>();
  constructor(private readonly provider: TracerProvider) {}

  getTracer(name: string, version?: string, options?: TracerOptions): Tracer {
    const key = `${name}@${version ?? ''}:${options?.schemaUrl ?? ''}`;
    let tracer = this.#tracers.get(key);
    if (!tracer) this.#tracers.set(key, (tracer = shortcut(this.provider.getTracer(name, version, options))));
    return tracer;
  }
}

function shortcut(inner: Tracer): Tracer {
  return {
    startSpan(name: string, options?: SpanOptions, ctx: Context = context.active()): Span {
      const parent = options?.root ? undefined : trace.getSpanContext(ctx);
      if (parent !== undefined && (parent.traceFlags & TraceFlags.SAMPLED) === 0 && trace.isSpanContextValid(parent))
        return trace.wrapSpanContext(parent);
      return inner.startSpan(name, options, ctx);
    },
    startActiveSpan: inner.startActiveSpan.bind(inner) as Tracer['startActiveSpan'],
  };
}

/**
 * The named exports of a dynamically imported package. Node's own import of a CommonJS package
 * gives them beside `default` (its module.exports); the bundle's lazy chunk of one (ADR 0055)
 * gives only `default`; an ES module package has them and no `default`.
 */
function namedExports<T extends object>(ns: T): T {
  return (ns as { default?: T }).default ?? ns;
}
