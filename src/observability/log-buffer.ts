/**
 * The server's recent log lines, in memory, for `GET /api/v1/logs` and `caxton logs`: a ring of
 * the last N lines pino wrote (already redacted). Writing costs one array store; a line is parsed
 * only when it is queried, or when someone follows the log.
 */

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const RANK: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/** One parsed log line: pino's JSON with `seq`, the line's position in the buffer. */
export interface LogRecord {
  seq: number;
  level: string;
  time: string;
  msg?: string;
  [k: string]: unknown;
}

export interface LogQuery {
  /** Lines about this agent (fields `agent`, `receiver` or `sender`). */
  agent?: string;
  /** This level and above. */
  level?: LogLevel;
  /** ms since epoch, inclusive. */
  since?: number;
  /** Only lines after this seq (a cursor). */
  after?: number;
  /** The last this many matching lines (default 100). */
  limit?: number;
  /** Only lines this reader may see (its agent scope: src/auth/scope-read.ts logLinesVisibleTo). */
  visible?: (r: LogRecord) => boolean;
}

interface Slot {
  seq: number;
  line: string;
  parsed: LogRecord | null | undefined;
}

export class LogBuffer {
  readonly capacity: number;
  readonly #ring: (Slot | undefined)[];
  #next = 0;
  readonly #followers = new Set<(r: LogRecord) => void>();

  constructor(capacity = 10_000) {
    this.capacity = Math.max(0, Math.floor(capacity));
    this.#ring = new Array<Slot | undefined>(this.capacity);
  }

  /** The pino destination interface. */
  write(line: string): void {
    if (this.capacity === 0 && this.#followers.size === 0) return;
    const slot: Slot = { seq: this.#next, line, parsed: undefined };
    if (this.capacity > 0) this.#ring[this.#next % this.capacity] = slot;
    this.#next++;
    if (this.#followers.size > 0) {
      const r = parse(slot);
      if (r) for (const f of this.#followers) f(r);
    }
  }

  get size(): number {
    return Math.min(this.#next, this.capacity);
  }

  /** How many live tails (follow) are attached now. */
  get followers(): number {
    return this.#followers.size;
  }

  /** The last `limit` matching lines, oldest first. */
  query(q: LogQuery = {}): LogRecord[] {
    const limit = q.limit ?? 100;
    const out: LogRecord[] = [];
    const first = Math.max(0, this.#next - this.capacity, q.after !== undefined ? q.after + 1 : 0);
    for (let seq = this.#next - 1; seq >= first && out.length < limit; seq--) {
      const slot = this.#ring[seq % this.capacity];
      if (!slot || slot.seq !== seq) continue;
      const r = parse(slot);
      if (r && LogBuffer.matches(r, q)) out.push(r);
    }
    return out.reverse();
  }

  /** Calls `f` with every line written from now on; returns the function that stops it. */
  follow(f: (r: LogRecord) => void): () => void {
    this.#followers.add(f);
    return () => this.#followers.delete(f);
  }

  static matches(r: LogRecord, q: LogQuery): boolean {
    if (q.level !== undefined && (RANK[r.level] ?? 0) < RANK[q.level]!) return false;
    if (q.agent !== undefined && r.agent !== q.agent && r.receiver !== q.agent && r.sender !== q.agent) return false;
    if (q.since !== undefined && !(Date.parse(r.time) >= q.since)) return false;
    return q.visible === undefined || q.visible(r);
  }
}

function parse(slot: Slot): LogRecord | null {
  if (slot.parsed !== undefined) return slot.parsed;
  try {
    const o = JSON.parse(slot.line) as Record<string, unknown>;
    slot.parsed = {
      ...o,
      seq: slot.seq,
      level: String(o.level ?? 'info'),
      time:
        typeof o.time === 'string' ? o.time : new Date(typeof o.time === 'number' ? o.time : Date.now()).toISOString(),
    } as LogRecord;
  } catch {
    slot.parsed = { seq: slot.seq, level: 'info', time: new Date().toISOString(), msg: slot.line.trimEnd() };
  }
  return slot.parsed;
}
