/**
 * The node's own recent spans (ADR 0056): a ring bounded by count and by bytes, fed by a
 * SpanProcessor, so a run's waterfall can be shown without a tracing backend. It is one more
 * processor beside the OTLP exporter (when an endpoint is set, spans are exported as well), and
 * it only sees spans the sampler kept: ADR 0051's cheap path for unsampled traces is untouched.
 *
 * Spans stay on the node that recorded them: on a cluster, a trace read answers what this node's
 * ring holds (an execution's spans are where it ran).
 */
import type { Context } from '@opentelemetry/api';
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

function stored(s: ReadableSpan): StoredSpan {
  const sc = s.spanContext();
  const attributes: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(s.attributes)) {
    if (v === undefined || v === null) continue;
    let value: string | number | boolean =
      typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : JSON.stringify(v);
    if (typeof value === 'string' && value.length > MAX_VALUE) value = `${value.slice(0, MAX_VALUE)}…`;
    attributes[k] = value;
  }
  const startMs = s.startTime[0] * 1000 + s.startTime[1] / 1e6;
  const durationMs = s.duration[0] * 1000 + s.duration[1] / 1e6;
  return {
    trace_id: sc.traceId,
    span_id: sc.spanId,
    parent_span_id: s.parentSpanContext?.spanId ?? null,
    name: s.name,
    kind: KINDS[s.kind] ?? 'internal',
    start: new Date(startMs).toISOString(),
    duration_ms: Math.round(durationMs * 1000) / 1000,
    status: STATUS[s.status.code] ?? 'unset',
    ...(s.status.message !== undefined && { status_message: s.status.message.slice(0, MAX_VALUE) }),
    attributes,
  };
}

export class SpanStore implements SpanProcessor {
  readonly #o: SpanStoreOptions;
  /**
   * A ring in two preallocated arrays (the spans and their estimated sizes), so that keeping a
   * span adds no object of its own: `#head` is the oldest entry, `#size` entries from there.
   */
  readonly #ring: (ReadableSpan | undefined)[];
  readonly #sizes: Uint32Array;
  #head = 0;
  #size = 0;
  #bytes = 0;
  /** Spans evicted since start (by count or bytes). */
  evicted = 0;

  constructor(o: SpanStoreOptions) {
    this.#o = o;
    const cap = Math.max(1, o.maxSpans);
    this.#ring = new Array<ReadableSpan | undefined>(cap).fill(undefined);
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
    // The span itself is kept (the recorder's spans are small and done with): it becomes a
    // StoredSpan only when its trace is read, which most spans never are.
    let bytes = 200 + s.name.length;
    const attrs = s.attributes;
    for (const k in attrs) {
      const v = attrs[k];
      bytes += k.length + (typeof v === 'string' ? Math.min(v.length, MAX_VALUE) : 8);
    }
    const cap = this.#ring.length;
    while (this.#size > 0 && (this.#size >= cap || this.#bytes + bytes > this.#o.maxBytes)) this.#evict();
    const at = (this.#head + this.#size) % cap;
    this.#ring[at] = s;
    this.#sizes[at] = bytes;
    this.#size++;
    this.#bytes += bytes;
  }

  #evict(): void {
    this.#ring[this.#head] = undefined;
    this.#bytes -= this.#sizes[this.#head]!;
    this.#head = (this.#head + 1) % this.#ring.length;
    this.#size--;
    this.evicted++;
  }

  /** The spans of one trace this node still holds, by start time. */
  trace(traceId: string): StoredSpan[] {
    const out: StoredSpan[] = [];
    const cap = this.#ring.length;
    for (let i = 0; i < this.#size; i++) {
      const s = this.#ring[(this.#head + i) % cap]!;
      if ((s instanceof RecordedSpan ? s.traceId : s.spanContext().traceId) === traceId) out.push(stored(s));
    }
    return out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
