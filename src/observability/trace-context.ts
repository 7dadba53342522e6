import {
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { ChildContext, SPAN_KEY } from './sync-context.js';
import { parentOfContext, RecordedSpan, RemoteParent, SpanRecorder, type ParentContext } from './span-recorder.js';

/** W3C traceparent: version 00, 32 hex trace id, 16 hex parent id, 2 hex flags. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * The last traceparent parsed and its context: an execution starts its model and tool spans from
 * the same traceparent, and a context is immutable, so one entry saves most of the parsing.
 */
let last: { traceparent: string; context: Context } | undefined;

/** The context a W3C `traceparent` continues (or the active context when there is none or it is malformed). */
export function contextOf(traceparent: string | undefined): Context {
  if (traceparent === undefined) return context.active();
  if (last?.traceparent === traceparent) return last.context;
  const m = TRACEPARENT.exec(traceparent);
  if (!m || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN) return context.active();
  const ctx = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: m[1]!,
    spanId: m[2]!,
    traceFlags: parseInt(m[3]!, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  });
  last = { traceparent, context: ctx };
  return ctx;
}

/**
 * The parent a W3C `traceparent` names, for Caxton's recorder: parsed once per distinct value (an
 * execution's model and tool spans share theirs), with no `Context` in between.
 */
let lastTraceparent: string | undefined;
let lastParent: ParentContext | undefined;

function parentOf(traceparent: string): ParentContext | undefined {
  if (lastTraceparent === traceparent) return lastParent;
  let parent: ParentContext | undefined;
  // Still a remote parent, as a parsed one is: the exported parent flags say so either way.
  if (traceparent === madeTraceparent) parent = new RemoteParent(madeBy!.traceId, madeBy!.spanId, true);
  else if (isTraceparent(traceparent)) {
    const traceId = traceparent.slice(3, 35);
    const spanId = traceparent.slice(36, 52);
    if (traceId !== ZERO_TRACE && spanId !== ZERO_SPAN)
      parent = new RemoteParent(traceId, spanId, (hexAt(traceparent, 54) & TraceFlags.SAMPLED) !== 0);
  }
  // Two variables, not an entry object: a new trace per message makes this a miss per delivery.
  lastTraceparent = traceparent;
  lastParent = parent;
  return parent;
}

/**
 * The traceparent last handed on from a recorded span, and that span: the work below it (an
 * execution's first model call, a reply) usually starts its span next, and then takes the ids
 * from the span rather than parsing and slicing the string again.
 */
let madeTraceparent: string | undefined;
let madeBy: RecordedSpan | undefined;

/** The recorded span that last handed `traceparent` on (traceparentOf), if it is that one. */
export function spanHandingOn(traceparent: string): RecordedSpan | undefined {
  return traceparent === madeTraceparent ? madeBy : undefined;
}

/** The value of the lower-case hex digit at `i` (-1 when it is not one). */
function hexAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  return c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
}

/** TRACEPARENT's test without a match array: version 00, 32 + 16 + 2 lower-case hex digits, dashes between. */
function isTraceparent(s: string): boolean {
  return s.startsWith('00') && hasTraceparentShape(s);
}

/**
 * 2 + 32 + 16 + 2 lower-case hex digits, dashes between (any version). A regex test, not a loop
 * of charCodeAt: a traceparent made here is a concatenation, which the regex engine flattens once
 * and scans, where each charCodeAt would walk the concatenation again.
 */
const TRACEPARENT_SHAPE = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

export function hasTraceparentShape(s: string): boolean {
  return s.length === 55 && TRACEPARENT_SHAPE.test(s);
}

/**
 * The trace and span ids a traceparent-shaped value names (any version), for records that index
 * their trace: undefined when it is malformed or its trace id is all zeros. Sliced, not matched.
 */
export function idsOfTraceparent(s: string): { traceId: string; spanId: string } | undefined {
  if (!hasTraceparentShape(s)) return undefined;
  const traceId = s.slice(3, 35);
  return traceId === ZERO_TRACE ? undefined : { traceId, spanId: s.slice(36, 52) };
}

/** The W3C `traceparent` of a span (undefined for a span without a valid context). */
export function traceparentOf(span: Span | undefined): string | undefined {
  if (span instanceof RecordedSpan) {
    madeBy = span;
    return (madeTraceparent = span.traceparent);
  }
  const sc = span?.spanContext();
  if (!sc || !trace.isSpanContextValid(sc)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
}

/** The `traceparent` of the active span, if any (for outgoing HTTP headers and new messages). */
export function activeTraceparent(): string | undefined {
  return traceparentOf(trace.getActiveSpan());
}

/**
 * Attributes of a span, or a function building them: it runs only when the span records, so a
 * span the sampler dropped (or a no-op tracer's) costs no attribute object at all.
 */
export type SpanAttributes = Attributes | (() => Attributes);

/**
 * Gives a recording span its attributes: `attributes` is a fresh object the caller lets go of, so
 * Caxton's recorder keeps it as the span's own. Built after the sampling decision
 * (`span.isRecording()`), it costs nothing for a span not recorded, and needs no closure.
 */
export function giveAttributes(span: Span, attributes: Attributes): void {
  if (span instanceof RecordedSpan) span.own(attributes);
  else span.setAttributes(attributes);
}

/**
 * The span name `${operation} ${name}`, made once per pair: the names repeat (a performative, an
 * agent, a tool), and the span store keeps one per span. Bounded: past 1,024 names of one
 * operation (agents or tools come and go) they are made again.
 */
export function spanName(operation: string, name: string): string {
  let names = spanNames.get(operation);
  if (names === undefined) spanNames.set(operation, (names = new Map()));
  let made = names.get(name);
  if (made === undefined) {
    if (names.size >= 1024) names.clear();
    names.set(name, (made = `${operation} ${name}`));
  }
  return made;
}

const spanNames = new Map<string, Map<string, string>>();

/**
 * A trace context as a recorded span hands it on to a message (`trace_context`): the W3C fields,
 * its only own properties (what JSON, spreads and copies see), and the span's ids beside them, so
 * the message's deliveries and events take their parent and ids from it rather than parsing the
 * traceparent again. Many messages are in flight between a route and its deliveries, so a
 * one-entry cache of the last traceparent misses there. A message read back from storage or
 * another node has a plain object instead, whose traceparent is parsed.
 */
export class SpanTraceContext implements ParentContext {
  readonly traceparent: string;
  declare readonly tracestate?: string;
  readonly #traceId: string;
  readonly #spanId: string;

  constructor(span: RecordedSpan, traceparent: string, tracestate: string | undefined) {
    this.traceparent = traceparent;
    if (tracestate !== undefined) (this as { tracestate?: string }).tracestate = tracestate;
    this.#traceId = span.traceId;
    this.#spanId = span.spanId;
  }

  get traceId(): string {
    return this.#traceId;
  }

  get spanId(): string {
    return this.#spanId;
  }

  /** Remote, as a parsed traceparent is: the exported parent flags are the same either way. */
  get isRemote(): boolean {
    return true;
  }

  get sampled(): boolean {
    return true;
  }

  get span(): Span {
    return trace.wrapSpanContext({
      traceId: this.#traceId,
      spanId: this.#spanId,
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
    });
  }
}

/**
 * The trace context work below `span` hands on in a message, with the W3C `tracestate` it
 * continued: a recorded span's own carries its ids (SpanTraceContext); a span not recorded hands
 * on the plain fields of childTraceparent, undefined when there is nothing to hand on.
 */
export function childTraceContext(
  span: Span,
  incoming: string | undefined,
  tracestate: string | undefined,
): { traceparent: string; tracestate?: string } | undefined {
  if (span instanceof RecordedSpan && span.isRecording())
    return new SpanTraceContext(span, traceparentOf(span)!, tracestate);
  const tp = childTraceparent(span, incoming);
  if (tp === undefined) return undefined;
  return tracestate === undefined ? { traceparent: tp } : { traceparent: tp, tracestate };
}

/** Starts a span continuing a message's `trace_context` (or the active context). */
export function startSpanIn(
  tracer: Tracer,
  name: string,
  traceContext: { traceparent: string } | undefined,
  kind: SpanKind,
): Span {
  if (traceContext instanceof SpanTraceContext && tracer instanceof SpanRecorder)
    return tracer.start(name, kind, traceContext, undefined);
  return startSpan(tracer, name, traceContext?.traceparent, undefined, kind);
}

/** Starts a span continuing `traceparent` (or the active context). */
export function startSpan(
  tracer: Tracer,
  name: string,
  traceparent: string | undefined,
  attributes?: SpanAttributes,
  kind: SpanKind = SpanKind.INTERNAL,
): Span {
  if (tracer instanceof SpanRecorder) {
    const parent = traceparent === undefined ? undefined : parentOf(traceparent);
    return tracer.start(name, kind, parent ?? parentOfContext(context.active()), attributes);
  }
  const span = tracer.startSpan(name, { kind }, contextOf(traceparent));
  if (attributes !== undefined && span.isRecording())
    span.setAttributes(typeof attributes === 'function' ? attributes() : attributes);
  return span;
}

/**
 * The `traceparent` the work below `span` continues. A recorded span hands on its own context.
 * A span that is not recorded hands on the context it continued (`incoming`, unchanged), or,
 * when the trace starts here, its own unsampled context: the decision not to sample then holds
 * for everything below it, which is why it needs no active async context (withSpan).
 */
export function childTraceparent(span: Span, incoming: string | undefined): string | undefined {
  return span.isRecording() || incoming === undefined ? traceparentOf(span) : incoming;
}

/** Ends a span with an error status and the error's message (and code, when it has one). */
export function endWithError(span: Span, e: unknown): void {
  const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
  span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
  if (code !== undefined) span.setAttribute('caxton.error.code', code);
  span.end();
}

/**
 * Runs `fn` with `span` as the active span. With Caxton's recorder the active context holds for
 * the synchronous part of `fn` only (sync-context.ts: no async hooks, ADR 0065), so what runs
 * after an await gets its trace context explicitly (childTraceparent, a request's logger). A span
 * that is not recorded is not made active at all: an SDK tracer's context manager may be an
 * AsyncLocalStorage, whose first use puts promise hooks on every promise of the process.
 */
export function withSpan<T>(span: Span, fn: () => T): T {
  if (!span.isRecording()) return fn();
  return context.with(new ChildContext(context.active(), SPAN_KEY, span), fn);
}

export { SpanKind, SpanStatusCode, type Attributes, type Span, type Tracer };

/** `trace_id` and `span_id` log fields from a W3C traceparent (none when absent or malformed). */
export function traceLogFields(traceparent: string | undefined): { trace_id?: string; span_id?: string } {
  const m = traceparent === undefined ? null : TRACEPARENT.exec(traceparent);
  return m ? { trace_id: m[1]!, span_id: m[2]! } : {};
}
