/**
 * Refusals of callers nobody knows (no or an invalid credential, a foreign Host or Origin, the
 * anonymous rate limit) go into the audit trail as aggregates: at most one row per source address
 * per interval, carrying the count, the reasons and a few routes. One row each would let anyone
 * who can reach the port push the operators' own rows out of a trail kept to `max_rows`.
 *
 * Memory is bounded: at most `maxSources` addresses are told apart in an interval; refusals from
 * further addresses are counted in one row without a source (`details.other_sources`).
 */
import type { AuditEntry, AuditSink } from './audit-store.js';

/** The action of an aggregate row. */
export const ANONYMOUS_REFUSALS_ACTION = 'auth.anonymous_refusals';

/** Distinct reasons and routes kept per address: the first ones seen, then only counted. */
const MAX_KINDS = 8;

export interface AnonymousRefusalsOptions {
  /** The length of an interval, ms (default one minute). */
  intervalMs?: number;
  /** Addresses told apart per interval (default 1,000). */
  maxSources?: number;
  now?: () => number;
}

interface Tally {
  count: number;
  first: number;
  last: number;
  reasons: Map<string, number>;
  routes: Map<string, number>;
  /** For the overflow row: addresses that did not get a row of their own (approximate beyond maxSources). */
  sources: number;
}

export class AnonymousRefusals {
  readonly #sink: AuditSink;
  readonly #intervalMs: number;
  readonly #max: number;
  readonly #now: () => number;
  #bySource = new Map<string, Tally>();
  #other: Tally | undefined;
  #otherSeen = new Set<string>();
  #windowStart: number;
  readonly #timer: NodeJS.Timeout;

  constructor(sink: AuditSink, opts: AnonymousRefusalsOptions = {}) {
    this.#sink = sink;
    this.#intervalMs = opts.intervalMs ?? 60_000;
    this.#max = opts.maxSources ?? 1000;
    this.#now = opts.now ?? Date.now;
    this.#windowStart = this.#now();
    this.#timer = setInterval(() => this.flush(), this.#intervalMs);
    this.#timer.unref();
  }

  /** Counts one refusal of a request from `source` without a principal. */
  note(source: string | undefined, reason: string, route: string | undefined): void {
    const now = this.#now();
    const key = source ?? '';
    let t = this.#bySource.get(key);
    if (!t) {
      if (this.#bySource.size < this.#max) {
        t = tally(now);
        this.#bySource.set(key, t);
      } else {
        t = this.#other ??= tally(now);
        // Distinct addresses beyond the cap are counted up to the cap again, then no longer told apart.
        if (this.#otherSeen.size < this.#max && !this.#otherSeen.has(key)) {
          this.#otherSeen.add(key);
          t.sources++;
        }
      }
    }
    t.count++;
    t.last = now;
    bump(t.reasons, reason);
    if (route !== undefined) bump(t.routes, route);
  }

  /** Writes one row per address counted since the last flush (and one for the overflow), then starts a new interval. */
  flush(): void {
    const now = this.#now();
    const windowS = Math.max(1, Math.round((now - this.#windowStart) / 1000));
    const rows: AuditEntry[] = [];
    for (const [source, t] of this.#bySource) rows.push(row(source === '' ? null : source, t, windowS));
    if (this.#other)
      rows.push(
        row(null, this.#other, windowS, {
          other_sources: this.#otherSeen.size >= this.#max ? `${this.#other.sources}+` : this.#other.sources,
        }),
      );
    this.#bySource = new Map();
    this.#other = undefined;
    this.#otherSeen = new Set();
    this.#windowStart = now;
    for (const r of rows) this.#sink.record(r);
  }

  /** Flushes and stops the interval's timer. */
  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}

function tally(now: number): Tally {
  return { count: 0, first: now, last: now, reasons: new Map(), routes: new Map(), sources: 0 };
}

function bump(m: Map<string, number>, k: string): void {
  const n = m.get(k);
  if (n !== undefined) m.set(k, n + 1);
  else if (m.size < MAX_KINDS) m.set(k, 1);
}

function row(source: string | null, t: Tally, windowS: number, extra: Record<string, unknown> = {}): AuditEntry {
  return {
    time: t.first,
    principal: null,
    source,
    action: ANONYMOUS_REFUSALS_ACTION,
    outcome: 'denied',
    details: {
      count: t.count,
      first: new Date(t.first).toISOString(),
      last: new Date(t.last).toISOString(),
      window_s: windowS,
      reasons: Object.fromEntries(t.reasons),
      routes: Object.fromEntries(t.routes),
      ...extra,
    },
  };
}
