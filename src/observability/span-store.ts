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

/**
 * Span names seen, each kept once: a call site builds its span's name per span (`message.route
 * inform`), and a stored name then costs the ring no string of its own. Bounded, since a name may
 * carry a tool or agent name; past the bound a name is kept as given.
 */
const NAMES = new Map<string, string>();
const MAX_NAMES = 4096;

function interned(name: string): string {
  const known = NAMES.get(name);
  if (known !== undefined) return known;
  if (NAMES.size < MAX_NAMES) NAMES.set(name, name);
  return name;
}

/** The 32-bit word the 8 hex digits of `s` from `at` spell (ids are lower-case hex). */
function hexWord(s: string, at: number): number {
  let v = 0;
  for (let i = at; i < at + 8; i++) {
    const c = s.charCodeAt(i);
    v = v * 16 + (c <= 57 ? c - 48 : (c | 32) - 87);
  }
  return v;
}

/** `words` 32-bit words from `from` as lower-case hex, 8 digits each. */
function hexOf(a: Uint32Array, from: number, words: number): string {
  let s = '';
  for (let i = from; i < from + words; i++) s += a[i]!.toString(16).padStart(8, '0');
  return s;
}

function millisOfHr(t: readonly [number, number]): number {
  return t[0] * 1000 + t[1] / 1e6;
}

/**
 * The key lists of the spans stored, each kept once: the spans of one call site share theirs, so
 * a stored span holds its attribute values only (as a JSON array) and the index of its keys.
 * Bounded; a span whose keys are not among them keeps its attributes as a JSON object instead.
 */
const SHAPES: string[][] = [];
const MAX_SHAPES = 1024;
const NO_SHAPE = 0xffff;

/** Reused for every span: the keys and values of the one being stored. */
const scratchKeys: string[] = [];
const scratchValues: (string | number | boolean)[] = [];

function shapeOf(keys: readonly string[]): number {
  for (let i = 0; i < SHAPES.length; i++) {
    const known = SHAPES[i]!;
    if (known.length !== keys.length) continue;
    let same = true;
    for (let k = 0; k < keys.length && same; k++) same = known[k] === keys[k];
    if (same) return i;
  }
  if (SHAPES.length >= MAX_SHAPES) return NO_SHAPE;
  SHAPES.push(keys.slice());
  return SHAPES.length - 1;
}

/**
 * The attributes as the API serves them (primitives as they are, any other value as its JSON,
 * strings cut at MAX_VALUE; undefined and null left out), encoded as one string: the values' JSON
 * array beside the index of the keys' list, or the whole JSON object when there is no index.
 * `bytes` is the estimate the byte bound counts.
 */
function encodeAttributes(attrs: Attributes): { json: string; shape: number; bytes: number } {
  let bytes = 0;
  scratchKeys.length = 0;
  scratchValues.length = 0;
  for (const k in attrs) {
    const v = attrs[k];
    if (v === undefined || v === null) {
      bytes += k.length + 8;
      continue;
    }
    let value: string | number | boolean;
    if (typeof v === 'string') {
      bytes += k.length + Math.min(v.length, MAX_VALUE);
      value = v.length > MAX_VALUE ? `${v.slice(0, MAX_VALUE)}…` : v;
    } else {
      bytes += k.length + 8;
      if (typeof v === 'number' || typeof v === 'boolean') value = v;
      else {
        const json = JSON.stringify(v);
        value = json.length > MAX_VALUE ? `${json.slice(0, MAX_VALUE)}…` : json;
      }
    }
    scratchKeys.push(k);
    scratchValues.push(value);
  }
  const shape = shapeOf(scratchKeys);
  if (shape !== NO_SHAPE) return { json: JSON.stringify(scratchValues), shape, bytes };
  const out: Record<string, string | number | boolean> = {};
  for (let i = 0; i < scratchKeys.length; i++) out[scratchKeys[i]!] = scratchValues[i]!;
  return { json: JSON.stringify(out), shape, bytes };
}

function decodeAttributes(json: string, shape: number): Record<string, string | number | boolean> {
  const parsed = JSON.parse(json) as unknown;
  if (shape === NO_SHAPE) return parsed as Record<string, string | number | boolean>;
  const keys = SHAPES[shape]!;
  const values = parsed as (string | number | boolean)[];
  const out: Record<string, string | number | boolean> = {};
  for (let i = 0; i < keys.length; i++) out[keys[i]!] = values[i]!;
  return out;
}

/**
 * The ring keeps an ended span as columns, not as the span: ids and numbers in typed arrays, the
 * name as the (shared) string it already is, the attribute values as one JSON string. A kept span then holds
 * no object with fields of its own (no span, attribute object, status or time tuples) for the
 * garbage collector to copy out of the young generation and trace in the old one; its API shape
 * is built only when its trace is read, which most spans never are.
 */
export class SpanStore implements SpanProcessor {
  readonly #o: SpanStoreOptions;
  /** Slots in the ring: `#head` is the oldest entry, `#size` entries from there, each column indexed alike. */
  readonly #cap: number;
  /** Ids as 32-bit words of their hex: four per trace id, two per span and parent id. */
  readonly #traceIds: Uint32Array;
  readonly #spanIds: Uint32Array;
  readonly #parentIds: Uint32Array;
  readonly #hasParent: Uint8Array;
  readonly #names: (string | undefined)[];
  /** The attribute values' JSON array, and the index of their keys' list in SHAPES. */
  readonly #attributes: (string | undefined)[];
  readonly #shapes: Uint16Array;
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
    const strings = () => new Array<string | undefined>(cap).fill(undefined);
    this.#cap = cap;
    this.#traceIds = new Uint32Array(cap * 4);
    this.#spanIds = new Uint32Array(cap * 2);
    this.#parentIds = new Uint32Array(cap * 2);
    this.#hasParent = new Uint8Array(cap);
    this.#names = strings();
    this.#attributes = strings();
    this.#statusMessages = strings();
    this.#startMs = new Float64Array(cap);
    this.#durationMs = new Float64Array(cap);
    this.#kinds = new Uint8Array(cap);
    this.#statuses = new Uint8Array(cap);
    this.#shapes = new Uint16Array(cap);
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
    const attrs = encodeAttributes(s.attributes);
    const bytes = 200 + s.name.length + attrs.bytes;
    const cap = this.#cap;
    while (this.#size > 0 && (this.#size >= cap || this.#bytes + bytes > this.#o.maxBytes)) this.#evict();
    const at = (this.#head + this.#size) % cap;
    if (s instanceof RecordedSpan) {
      this.#ids(at, s.traceId, s.spanId, s.parentSpanId);
      this.#startMs[at] = s.startMs;
      this.#durationMs[at] = s.endMs - s.startMs;
    } else {
      const sc = s.spanContext();
      this.#ids(at, sc.traceId, sc.spanId, s.parentSpanContext?.spanId);
      this.#startMs[at] = millisOfHr(s.startTime);
      this.#durationMs[at] = millisOfHr(s.duration);
    }
    this.#names[at] = interned(s.name);
    this.#attributes[at] = attrs.json;
    this.#shapes[at] = attrs.shape;
    this.#kinds[at] = s.kind;
    this.#statuses[at] = s.status.code;
    this.#statusMessages[at] = s.status.message?.slice(0, MAX_VALUE);
    this.#sizes[at] = bytes;
    this.#size++;
    this.#bytes += bytes;
  }

  #ids(at: number, traceId: string, spanId: string, parentId: string | undefined): void {
    const t = at * 4;
    this.#traceIds[t] = hexWord(traceId, 0);
    this.#traceIds[t + 1] = hexWord(traceId, 8);
    this.#traceIds[t + 2] = hexWord(traceId, 16);
    this.#traceIds[t + 3] = hexWord(traceId, 24);
    this.#spanIds[at * 2] = hexWord(spanId, 0);
    this.#spanIds[at * 2 + 1] = hexWord(spanId, 8);
    this.#hasParent[at] = parentId === undefined ? 0 : 1;
    if (parentId !== undefined) {
      this.#parentIds[at * 2] = hexWord(parentId, 0);
      this.#parentIds[at * 2 + 1] = hexWord(parentId, 8);
    }
  }

  #evict(): void {
    const h = this.#head;
    this.#names[h] = this.#attributes[h] = this.#statusMessages[h] = undefined;
    this.#bytes -= this.#sizes[h]!;
    this.#head = (h + 1) % this.#cap;
    this.#size--;
    this.evicted++;
  }

  /** The spans of one trace this node still holds, by start time. */
  trace(traceId: string): StoredSpan[] {
    const out: StoredSpan[] = [];
    if (!/^[0-9a-f]{32}$/.test(traceId)) return out;
    const w0 = hexWord(traceId, 0);
    const w1 = hexWord(traceId, 8);
    const w2 = hexWord(traceId, 16);
    const w3 = hexWord(traceId, 24);
    const t = this.#traceIds;
    for (let i = 0; i < this.#size; i++) {
      const at = (this.#head + i) % this.#cap;
      const o = at * 4;
      if (t[o] === w0 && t[o + 1] === w1 && t[o + 2] === w2 && t[o + 3] === w3) out.push(this.#stored(at));
    }
    return out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  }

  #stored(at: number): StoredSpan {
    const message = this.#statusMessages[at];
    return {
      trace_id: hexOf(this.#traceIds, at * 4, 4),
      span_id: hexOf(this.#spanIds, at * 2, 2),
      parent_span_id: this.#hasParent[at] ? hexOf(this.#parentIds, at * 2, 2) : null,
      name: this.#names[at]!,
      kind: KINDS[this.#kinds[at]!] ?? 'internal',
      start: new Date(this.#startMs[at]!).toISOString(),
      duration_ms: Math.round(this.#durationMs[at]! * 1000) / 1000,
      status: STATUS[this.#statuses[at]!] ?? 'unset',
      ...(message !== undefined && { status_message: message }),
      attributes: decodeAttributes(this.#attributes[at]!, this.#shapes[at]!),
    };
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
