/**
 * Caxton's own span recorder (ADR 0065): a tracer behind the OpenTelemetry API's `Tracer`
 * interface whose recorded spans are small objects that are also the SDK's `ReadableSpan`, so the
 * SDK's span processors and the OTLP/HTTP exporter take them unchanged (the wire format is the
 * exporter's own). What it leaves out of the SDK is what a span cost there: the sampler object
 * chain, span limits and attribute sanitising, the SDK's own span metrics, `HrTime` arithmetic at
 * start and end, and ids drawn from `Math.random` two words at a time.
 */
import { randomFillSync } from 'node:crypto';
import {
  context,
  INVALID_SPAN_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type AttributeValue,
  type Context,
  type Exception,
  type HrTime,
  type Link,
  type Span,
  type SpanContext,
  type SpanOptions,
  type SpanStatus,
  type TimeInput,
  type Tracer,
} from '@opentelemetry/api';
import type { ReadableSpan, SpanProcessor, TimedEvent } from '@opentelemetry/sdk-trace-base';

/** What `ReadableSpan.resource` is to the exporters: the process's service attributes. */
export type SpanResource = ReadableSpan['resource'];

/** How a span is decided: the standard OTEL_TRACES_SAMPLER values, parsed once (samplerOf). */
export interface SamplerConfig {
  /** Follow a parent's sampled flag (every `parentbased_*` value, and the default). */
  parentBased: boolean;
  /** The decision where there is no parent (or for every span when not parent-based). */
  root: 'on' | 'off' | 'ratio';
  /** Share of traces kept for 'ratio', 0 to 1. */
  ratio: number;
}

/**
 * The sampler OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG name, read as the SDK reads them:
 * an unknown sampler is the default (parentbased_always_on); a ratio that is missing or not a
 * number from 0 to 1 is 1.
 */
export function samplerOf(env: NodeJS.ProcessEnv): SamplerConfig {
  const name = (env.OTEL_TRACES_SAMPLER ?? '').trim().toLowerCase();
  const arg = Number((env.OTEL_TRACES_SAMPLER_ARG ?? '').trim());
  const ratio = env.OTEL_TRACES_SAMPLER_ARG !== undefined && arg >= 0 && arg <= 1 ? arg : 1;
  switch (name) {
    case 'always_on':
      return { parentBased: false, root: 'on', ratio };
    case 'always_off':
      return { parentBased: false, root: 'off', ratio };
    case 'traceidratio':
      return { parentBased: false, root: 'ratio', ratio };
    case 'parentbased_always_off':
      return { parentBased: true, root: 'off', ratio };
    case 'parentbased_traceidratio':
      return { parentBased: true, root: 'ratio', ratio };
    default:
      return { parentBased: true, root: 'on', ratio };
  }
}

/**
 * Whether a trace id falls in the kept share: the SDK's TraceIdRatioBased rule (the four 32-bit
 * words of the id XORed, below ratio × 2³²), so a trace this node and an SDK-traced service
 * sample at the same ratio gets the same decision.
 */
export function ratioKeeps(traceId: string, ratio: number): boolean {
  const bound = ratio >= 1 ? 0x100000000 : Math.floor(ratio * 0xffffffff);
  let acc = 0;
  for (let i = 0; i < 32; i += 8) acc = (acc ^ parseInt(traceId.slice(i, i + 8), 16)) >>> 0;
  return acc < bound;
}

/**
 * Random bytes drawn a page at a time and turned into hex once per page: an id is then a slice of
 * that string (V8 shares the characters instead of copying them), not a Buffer decoding per id.
 * A page's 8 KB of hex lives as long as an id sliced from it: a few hundred KB for a full span store.
 */
const POOL = Buffer.allocUnsafe(4096);
let poolHex = '';
let poolAt = POOL.length * 2;
const ZERO_IDS: Record<number, string> = { 16: '0'.repeat(16), 24: '0'.repeat(24), 32: '0'.repeat(32) };

/**
 * A new trace's id: the Unix time in seconds, then 12 random bytes, as AWS X-Ray makes them. The
 * records that index their trace (executions, events) then insert near the end of that index, not
 * one page per row anywhere in it. Ratio sampling XORs all four words, so it stays uniform.
 */
export function newTraceId(): string {
  const second = Math.floor(Date.now() / 1000) >>> 0;
  if (second !== prefixSecond) {
    prefixSecond = second;
    prefix = second.toString(16).padStart(8, '0');
  }
  return prefix + randomId(12);
}

/** The current second's hex, made once a second rather than once per trace. */
let prefixSecond = -1;
let prefix = '';

/** A random id of `bytes` bytes as lower-case hex, never all zeros (an invalid W3C id). */
export function randomId(bytes: 8 | 12 | 16): string {
  const chars = bytes * 2;
  for (;;) {
    if (poolAt + chars > poolHex.length) {
      randomFillSync(POOL);
      poolHex = POOL.toString('hex');
      poolAt = 0;
    }
    const id = poolHex.slice(poolAt, (poolAt += chars));
    if (id !== ZERO_IDS[chars]) return id;
  }
}

/** A parent as the recorder needs it: ids and the sampled flag (parsed traceparent or active span). */
export interface ParentContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
  /** Whether the parent came from another process (a `traceparent` received). */
  readonly isRemote: boolean;
  /** The parent as a span that records nothing, handed back for work below an unsampled parent. */
  readonly span: Span;
}

/**
 * A parent named by a received `traceparent`: its span, which only work below an unsampled parent
 * needs, is made when asked for.
 */
export class RemoteParent implements ParentContext {
  readonly isRemote = true;
  #span: Span | undefined;
  constructor(
    readonly traceId: string,
    readonly spanId: string,
    readonly sampled: boolean,
  ) {}

  get span(): Span {
    return (this.#span ??= trace.wrapSpanContext({
      traceId: this.traceId,
      spanId: this.spanId,
      traceFlags: this.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
      isRemote: true,
    }));
  }
}

/** The one span every trace sampled out at a root that keeps nothing gets: no ids, nothing handed on. */
export const NOOP_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** The parent a context holds (the active span or a span set on it), if valid. */
export function parentOfContext(ctx: Context): ParentContext | undefined {
  const span = trace.getSpan(ctx);
  if (span === undefined) return undefined;
  if (span instanceof RecordedSpan) return span.asParent();
  const sc = span.spanContext();
  if (!trace.isSpanContextValid(sc)) return undefined;
  return {
    traceId: sc.traceId,
    spanId: sc.spanId,
    sampled: (sc.traceFlags & TraceFlags.SAMPLED) !== 0,
    isRemote: sc.isRemote === true,
    span,
  };
}

const EMPTY_LINKS: Link[] = [];
/**
 * The attributes of a span given none yet: shared, never written (a span's first attribute gives
 * it an object of its own), so a span whose attributes come after its sampling decision (own)
 * makes no empty object first.
 */
const NO_ATTRIBUTES: Attributes = Object.freeze({});
const EMPTY_EVENTS: TimedEvent[] = [];
const UNSET: SpanStatus = { code: SpanStatusCode.UNSET };

/** RecordedSpan's bits beside its kind (SpanKind: 0 to 4). */
const KIND_BITS = 7;
const PARENT_SAMPLED = 8;
const PARENT_REMOTE = 16;
const ENDED = 32;

/** The process's time origin (its getter builds a new number on every read). */
const ORIGIN = performance.timeOrigin;

/**
 * What to add to `performance.now()` to get epoch milliseconds. The monotonic clock alone drifts
 * from the wall clock whenever the system clock is stepped (NTP on a freshly booted machine, a VM
 * resumed), and spans must line up with the logs and with the spans of other processes, which are
 * stamped with the wall clock: the anchor follows the wall clock once they differ by more than
 * `Date.now()`'s own millisecond.
 */
let anchor = ORIGIN;
const ANCHOR_SLACK_MS = 2;

/** Epoch milliseconds (fractional) now, the clock spans are stamped with. */
function now(): number {
  const mono = performance.now();
  const wall = Date.now();
  const t = anchor + mono;
  if (t - wall > ANCHOR_SLACK_MS || wall - t > ANCHOR_SLACK_MS) {
    anchor = wall - mono;
    return wall;
  }
  return t;
}

function hrTime(ms: number): HrTime {
  const s = Math.trunc(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

function millisOf(t: TimeInput): number {
  if (typeof t === 'number') return t < ORIGIN ? anchor + t : t;
  if (t instanceof Date) return t.getTime();
  return t[0] * 1000 + t[1] / 1e6;
}

/** What every span of one recorder shares. */
export interface RecorderScope {
  processors: readonly SpanProcessor[];
  resource: SpanResource;
  instrumentationScope: ReadableSpan['instrumentationScope'];
}

/**
 * A recorded span: ids, times in epoch milliseconds, attributes in one plain object. It is its own
 * `ReadableSpan` for the processors (times converted only when an exporter reads them). What the
 * span store and the export queue keep once it has ended is only that: the traceparent made for
 * its children is let go at `end`, and its parent is held as ids, not as the parent's objects.
 */
export class RecordedSpan implements Span, ReadableSpan, ParentContext {
  name: string;
  attributes: Attributes;
  status: SpanStatus = UNSET;
  /** Events and links, which few spans have: one field, made by the first one added. */
  #extra: { events: TimedEvent[]; links: Link[] } | undefined;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  /**
   * The kind (bits 0-2), whether the parent is sampled (PARENT_SAMPLED) and remote (PARENT_REMOTE),
   * and whether the span has ended (ENDED): one small integer rather than a field each, in an
   * object made for every span.
   */
  #bits: number;
  readonly #scope: RecorderScope;
  startMs: number;
  endMs = 0;
  #traceparent: string | undefined;

  constructor(
    scope: RecorderScope,
    name: string,
    kind: SpanKind,
    traceId: string,
    parent: ParentContext | undefined,
    attributes: Attributes | undefined,
    startMs: number,
  ) {
    this.#scope = scope;
    this.name = name;
    this.traceId = traceId;
    this.spanId = randomId(8);
    this.parentSpanId = parent?.spanId;
    this.#bits =
      parent === undefined
        ? kind
        : kind | (parent.sampled ? PARENT_SAMPLED : 0) | (parent.isRemote ? PARENT_REMOTE : 0);
    this.attributes = attributes ?? NO_ATTRIBUTES;
    this.startMs = startMs;
  }

  get kind(): SpanKind {
    return this.#bits & KIND_BITS;
  }

  get ended(): boolean {
    return (this.#bits & ENDED) !== 0;
  }

  // Made on each call and not kept: children take the span itself as their parent (asParent),
  // and its readers (processors, exporters, log lines) ask once.
  spanContext(): SpanContext {
    return { traceId: this.traceId, spanId: this.spanId, traceFlags: TraceFlags.SAMPLED };
  }

  /** Its W3C `traceparent` (made once). */
  get traceparent(): string {
    if (this.ended) return `00-${this.traceId}-${this.spanId}-01`;
    return (this.#traceparent ??= `00-${this.traceId}-${this.spanId}-01`);
  }

  /**
   * The span is its own parent form (sampled, isRemote and span below): a child started under it
   * while it is active takes it with no object made, and the span keeps no field for one.
   */
  asParent(): ParentContext {
    return this;
  }

  get sampled(): boolean {
    return true;
  }

  get isRemote(): boolean {
    return false;
  }

  get span(): Span {
    return this;
  }

  // What every span of the recorder has alike is read from the prototype, not kept per span
  // (the span store holds thousands of them).
  get droppedAttributesCount(): number {
    return 0;
  }

  get droppedEventsCount(): number {
    return 0;
  }

  get droppedLinksCount(): number {
    return 0;
  }

  get events(): TimedEvent[] {
    return this.#extra?.events ?? EMPTY_EVENTS;
  }

  get links(): Link[] {
    return this.#extra?.links ?? EMPTY_LINKS;
  }

  get parentSpanContext(): SpanContext | undefined {
    if (this.parentSpanId === undefined) return undefined;
    const f = this.#bits;
    return {
      traceId: this.traceId,
      spanId: this.parentSpanId,
      traceFlags: f & PARENT_SAMPLED ? TraceFlags.SAMPLED : TraceFlags.NONE,
      ...(f & PARENT_REMOTE && { isRemote: true }),
    };
  }

  get resource(): SpanResource {
    return this.#scope.resource;
  }

  get instrumentationScope(): ReadableSpan['instrumentationScope'] {
    return this.#scope.instrumentationScope;
  }

  get startTime(): HrTime {
    return hrTime(this.startMs);
  }

  get endTime(): HrTime {
    return hrTime(this.endMs);
  }

  get duration(): HrTime {
    const d = this.endMs - this.startMs;
    const s = Math.trunc(d / 1000);
    return [s, Math.round((d - s * 1000) * 1e6)];
  }

  setAttribute(key: string, value: AttributeValue): this {
    if (this.ended || value === undefined || value === null) return this;
    if (this.attributes === NO_ATTRIBUTES) this.attributes = {};
    this.attributes[key] = value;
    return this;
  }

  setAttributes(attributes: Attributes): this {
    if (this.ended) return this;
    if (this.attributes === NO_ATTRIBUTES) this.attributes = {};
    for (const key in attributes) {
      const v = attributes[key];
      if (v !== undefined && v !== null) this.attributes[key] = v;
    }
    return this;
  }

  /**
   * Takes `attributes`, a fresh object the caller lets go of, as the span's own when it has none
   * yet (no copy); otherwise they are added as setAttributes adds them. Values must not be null.
   */
  own(attributes: Attributes): void {
    if (this.attributes === NO_ATTRIBUTES && !this.ended) this.attributes = attributes;
    else this.setAttributes(attributes);
  }

  addEvent(name: string, attributesOrTime?: Attributes | TimeInput, time?: TimeInput): this {
    if (this.ended) return this;
    const isTime =
      typeof attributesOrTime === 'number' || attributesOrTime instanceof Date || Array.isArray(attributesOrTime);
    const at = isTime ? attributesOrTime : time;
    const event: TimedEvent = {
      name,
      time: hrTime(at === undefined ? now() : millisOf(at)),
      ...(!isTime && attributesOrTime !== undefined && { attributes: attributesOrTime as Attributes }),
      droppedAttributesCount: 0,
    };
    (this.#extra ??= { events: [], links: [] }).events.push(event);
    return this;
  }

  addLink(link: Link): this {
    if (this.ended) return this;
    (this.#extra ??= { events: [], links: [] }).links.push(link);
    return this;
  }

  addLinks(links: Link[]): this {
    for (const l of links) this.addLink(l);
    return this;
  }

  setStatus(status: SpanStatus): this {
    if (!this.ended) this.status = status;
    return this;
  }

  updateName(name: string): this {
    if (!this.ended) this.name = name;
    return this;
  }

  end(endTime?: TimeInput): void {
    if (this.ended) return;
    this.endMs = endTime === undefined ? now() : millisOf(endTime);
    if (this.endMs < this.startMs) this.endMs = this.startMs;
    this.#bits |= ENDED;
    this.#traceparent = undefined;
    const ps = this.#scope.processors;
    for (let i = 0; i < ps.length; i++) ps[i]!.onEnd(this);
  }

  isRecording(): boolean {
    return !this.ended;
  }

  recordException(exception: Exception, time?: TimeInput): void {
    const e = typeof exception === 'string' ? { message: exception } : exception;
    this.addEvent(
      'exception',
      {
        ...(e.name !== undefined && { 'exception.type': e.name }),
        ...(e.message !== undefined && { 'exception.message': e.message }),
        ...(e.stack !== undefined && { 'exception.stacktrace': e.stack }),
      },
      time,
    );
  }
}

/**
 * The recorder's tracer. `start` is the path Caxton's own spans take (startSpan in
 * trace-context.ts): the parent as a parsed traceparent, no `Context` or options object; the
 * `Tracer` methods serve everything else that holds an OpenTelemetry tracer.
 */
export class SpanRecorder implements Tracer {
  readonly #scope: RecorderScope;
  readonly #sampler: SamplerConfig;

  constructor(scope: RecorderScope, sampler: SamplerConfig) {
    this.#scope = scope;
    this.#sampler = sampler;
  }

  /**
   * A span below `parent` (none: a new trace). A parent that was not sampled is answered with
   * itself as a span that records nothing (a parent-based sampler drops everything below it); a
   * trace not kept at its root gets an unsampled context of its own to hand on, so nothing below
   * re-decides, except where the root keeps nothing at all: then every span is the shared no-op
   * one and nothing is handed on, since anything below would decide the same.
   */
  start(
    name: string,
    kind: SpanKind,
    parent: ParentContext | undefined,
    attributes: Attributes | (() => Attributes) | undefined,
  ): Span {
    const s = this.#sampler;
    let traceId: string;
    if (parent !== undefined) {
      traceId = parent.traceId;
      const keep = s.parentBased
        ? parent.sampled
        : s.root === 'on' || (s.root === 'ratio' && ratioKeeps(traceId, s.ratio));
      if (!keep) return parent.span;
    } else {
      if (s.root === 'off') return NOOP_SPAN;
      traceId = newTraceId();
      if (s.root === 'ratio' && !ratioKeeps(traceId, s.ratio))
        return trace.wrapSpanContext({ traceId, spanId: randomId(8), traceFlags: TraceFlags.NONE });
    }
    // A function's attributes are a fresh object the span can own; an object given is the caller's.
    const attrs = typeof attributes === 'function' ? attributes() : attributes && { ...attributes };
    return new RecordedSpan(this.#scope, name, kind, traceId, parent, attrs, now());
  }

  startSpan(name: string, options?: SpanOptions, ctx: Context = context.active()): Span {
    const parent = options?.root ? undefined : parentOfContext(ctx);
    const span = this.start(name, options?.kind ?? SpanKind.INTERNAL, parent, options?.attributes);
    if (options?.startTime !== undefined && span instanceof RecordedSpan) span.startMs = millisOf(options.startTime);
    if (options?.links !== undefined) span.addLinks(options.links);
    return span;
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(name: string, options: SpanOptions, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    options: SpanOptions,
    ctx: Context,
    fn: F,
  ): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    a: SpanOptions | F,
    b?: Context | F,
    c?: F,
  ): ReturnType<F> {
    const fn = (c ?? b ?? a) as F;
    const options = typeof a === 'function' ? undefined : a;
    const ctx = b !== undefined && typeof b !== 'function' ? b : context.active();
    const span = this.startSpan(name, options, ctx);
    return context.with(trace.setSpan(ctx, span), () => fn(span)) as ReturnType<F>;
  }
}
