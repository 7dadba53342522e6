import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';

/** W3C traceparent: version 00, 32 hex trace id, 16 hex parent id, 2 hex flags. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The context a W3C `traceparent` continues (or the active context when there is none or it is malformed). */
export function contextOf(traceparent: string | undefined): Context {
  if (traceparent === undefined) return context.active();
  const m = TRACEPARENT.exec(traceparent);
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return context.active();
  return trace.setSpanContext(ROOT_CONTEXT, { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16) & TraceFlags.SAMPLED, isRemote: true });
}

/** The W3C `traceparent` of a span (undefined for a span without a valid context). */
export function traceparentOf(span: Span | undefined): string | undefined {
  const sc = span?.spanContext();
  if (!sc || !trace.isSpanContextValid(sc)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
}

/** The `traceparent` of the active span, if any (for outgoing HTTP headers and new messages). */
export function activeTraceparent(): string | undefined {
  return traceparentOf(trace.getActiveSpan());
}

/** Starts a span continuing `traceparent` (or the active context). */
export function startSpan(tracer: Tracer, name: string, traceparent: string | undefined, attributes: Attributes = {}, kind: SpanKind = SpanKind.INTERNAL): Span {
  return tracer.startSpan(name, { kind, attributes }, contextOf(traceparent));
}

/** Ends a span with an error status and the error's message (and code, when it has one). */
export function endWithError(span: Span, e: unknown): void {
  const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
  span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
  if (code !== undefined) span.setAttribute('caxton.error.code', code);
  span.end();
}

/** Runs `fn` with `span` as the active span (children and log lines pick it up). */
export function withSpan<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

export { SpanKind, SpanStatusCode, type Span, type Tracer };

/** `trace_id` and `span_id` log fields from a W3C traceparent (none when absent or malformed). */
export function traceLogFields(traceparent: string | undefined): { trace_id?: string; span_id?: string } {
  const m = traceparent === undefined ? null : TRACEPARENT.exec(traceparent);
  return m ? { trace_id: m[1]!, span_id: m[2]! } : {};
}
