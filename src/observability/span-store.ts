/**
 * The node's own recent spans (ADR 0056): a ring bounded by count and by bytes, fed by a
 * SpanProcessor, so a run's waterfall can be shown without a tracing backend. It is one more
 * processor beside the OTLP exporter (when an endpoint is set, spans are exported as well), and
 * it only sees spans the sampler kept: ADR 0051's cheap path for unsampled traces is untouched.
 *
 * Spans stay on the node that recorded them: on a cluster, a trace read answers what this node's
 * ring holds (an execution's spans are where it ran).
 */
import type { Attributes, Context } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { RecordedSpan } from './span-recorder.js';

/** One span as the API serves it. */
export interface StoredSpan {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  /** 'internal', 'server', 'client', 'producer', 'consumer'. */
  kind: string;
  /** ISO 8601. */
  start: string;
  duration_ms: number;
  status: 'unset' | 'ok' | 'error';
  status_message?: string;
  attributes: Record<string, string | number | boolean>;
}

const KINDS = ['internal', 'server', 'client', 'producer', 'consumer'];
const STATUS = ['unset', 'ok', 'error'] as const;
/** Longest attribute value kept, in characters (longer ones are cut). */
const MAX_VALUE = 512;

export interface SpanStoreOptions {
  /** Most spans kept (the oldest go first). */
  maxSpans: number;
  /** Most bytes of span data kept, as estimated from names and attributes. */
  maxBytes: number;
}

function millisOfHr(t: readonly [number, number]): number {
  return t[0] * 1000 + t[1] / 1e6;
}

/** The attributes as the API serves them: primitives as they are, any other value as its JSON, strings cut. */
function servedAttributes(attrs: Attributes): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const k in attrs) {
    const v = attrs[k];
    if (v === undefined || v === null) continue;
    let value: string | number | boolean =
      typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : JSON.stringify(v);
    if (typeof value === 'string' && value.length > MAX_VALUE) value = `${value.slice(0, MAX_VALUE)}…`;
    out[k] = value;
  }
  return out;
}

/**
 * The ring keeps an ended span as columns, not as the span: times, kind and status in typed
 * arrays, and beside them only what is already its own, the id and name strings and its
 * attribute object. A kept span then holds no span object (with its fields, boxed times, status
 * and scope references) for the garbage collector to copy out of the young generation and trace
 * in the old one; its API shape is built only when its trace is read, which most spans never
 * are. Encoding the attributes as well (one JSON string per span) would keep fewer objects, but
 * cost more on the recording thread than it saved in collection.
 */
export class SpanStore implements SpanProcessor {
  readonly #o: SpanStoreOptions;
  /** Slots in the ring: `#head` is the oldest entry, `#size` entries from there, each column indexed alike. */
  readonly #cap: number;
  readonly #traceIds: (string | undefined)[];
  readonly #spanIds: (string | undefined)[];
  readonly #parentIds: (string | undefined)[];
  readonly #names: (string | undefined)[];
  readonly #attributes: (Attributes | undefined)[];
  /** The status message of spans that have one (few do). */
  readonly #statusMessages: (string | undefined)[];
  readonly #startMs: Float64Array;
  readonly #durationMs: Float64Array;
  readonly #kinds: Uint8Array;
  readonly #statuses: Uint8Array;
  readonly #sizes: Uint32Array;
  #head = 0;
  #size = 0;
  #bytes = 0;
  /** Spans evicted since start (by count or bytes). */
  evicted = 0;

  constructor(o: SpanStoreOptions) {
    this.#o = o;
    const cap = Math.max(1, o.maxSpans);
    this.#cap = cap;
    const column = <T>() => new Array<T | undefined>(cap).fill(undefined);
    this.#traceIds = column<string>();
    this.#spanIds = column<string>();
    this.#parentIds = column<string>();
    this.#names = column<string>();
    this.#attributes = column<Attributes>();
    this.#statusMessages = column<string>();
    this.#startMs = new Float64Array(cap);
    this.#durationMs = new Float64Array(cap);
    this.#kinds = new Uint8Array(cap);
    this.#statuses = new Uint8Array(cap);
    this.#sizes = new Uint32Array(cap);
  }

  get size(): number {
    return this.#size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  onStart(_span: Span, _ctx: Context): void {}

  onEnd(s: ReadableSpan): void {
    let bytes = 200 + s.name.length;
    const attrs = s.attributes;
    for (const k in attrs) {
      const v = attrs[k];
      bytes += k.length + (typeof v === 'string' ? Math.min(v.length, MAX_VALUE) : 8);
    }
    const cap = this.#cap;
    while (this.#size > 0 && (this.#size >= cap || this.#bytes + bytes > this.#o.maxBytes)) this.#evict();
    const at = (this.#head + this.#size) % cap;
    if (s instanceof RecordedSpan) {
      // The recorder's attribute object is the span's own (copied at start), so it can be kept.
      this.#traceIds[at] = s.traceId;
      this.#spanIds[at] = s.spanId;
      this.#parentIds[at] = s.parentSpanId;
      this.#startMs[at] = s.startMs;
      this.#durationMs[at] = s.endMs - s.startMs;
    } else {
      const sc = s.spanContext();
      this.#traceIds[at] = sc.traceId;
      this.#spanIds[at] = sc.spanId;
      this.#parentIds[at] = s.parentSpanContext?.spanId;
      this.#startMs[at] = millisOfHr(s.startTime);
      this.#durationMs[at] = millisOfHr(s.duration);
    }
    this.#names[at] = s.name;
    this.#attributes[at] = attrs;
    this.#kinds[at] = s.kind;
    this.#statuses[at] = s.status.code;
    this.#statusMessages[at] = s.status.message;
    this.#sizes[at] = bytes;
    this.#size++;
    this.#bytes += bytes;
  }

  #evict(): void {
    const h = this.#head;
    this.#traceIds[h] = this.#spanIds[h] = this.#parentIds[h] = undefined;
    this.#names[h] = this.#statusMessages[h] = undefined;
    this.#attributes[h] = undefined;
    this.#bytes -= this.#sizes[h]!;
    this.#head = (h + 1) % this.#cap;
    this.#size--;
    this.evicted++;
  }

  /** The spans of one trace this node still holds, by start time. */
  trace(traceId: string): StoredSpan[] {
    const out: StoredSpan[] = [];
    for (let i = 0; i < this.#size; i++) {
      const at = (this.#head + i) % this.#cap;
      if (this.#traceIds[at] === traceId) out.push(this.#stored(at));
    }
    return out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  }

  #stored(at: number): StoredSpan {
    const message = this.#statusMessages[at];
    return {
      trace_id: this.#traceIds[at]!,
      span_id: this.#spanIds[at]!,
      parent_span_id: this.#parentIds[at] ?? null,
      name: this.#names[at]!,
      kind: KINDS[this.#kinds[at]!] ?? 'internal',
      start: new Date(this.#startMs[at]!).toISOString(),
      duration_ms: Math.round(this.#durationMs[at]! * 1000) / 1000,
      status: STATUS[this.#statuses[at]!] ?? 'unset',
      ...(message !== undefined && { status_message: message.slice(0, MAX_VALUE) }),
      attributes: servedAttributes(this.#attributes[at]!),
    };
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
