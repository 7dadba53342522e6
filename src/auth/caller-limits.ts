/**
 * Limits per principal and per agent (ADR 0024): request rate, concurrent executions and LLM
 * tokens per period. One in-process limiter: Caxton is one process, so its counts are exact and
 * cost a Map lookup; a fleet behind a load balancer would need a shared store (out of scope).
 *
 * - Requests: a token bucket per principal of `requests_per_minute`, refilled continuously. It lets
 *   an idle caller burst up to a minute's allowance at once, and never more than that in any minute
 *   in the long run; O(1) per call and no timestamps kept.
 * - Concurrency: a counter per principal and per agent, taken by beginExecution and given back by
 *   release().
 * - Tokens: a fixed window per principal and per agent, aligned to multiples of the period since
 *   the Unix epoch ("1h" resets on the hour, "24h" at UTC midnight), so the reset time is the same
 *   for everyone and easy to explain. An execution is admitted while the window's budget is not
 *   used up; it may overshoot (the provider reports tokens only when a call ends), and what it
 *   used is charged when it ends — the next execution is refused instead.
 *
 * Memory is bounded by the principals and agents active within the longest token period: a state
 * is dropped once it holds nothing (no running execution, a full bucket, an ended window), by a
 * sweep run at most once per `sweepIntervalMs` from the calls themselves (no timer to unref or stop).
 */
import type { Metrics } from '../observability/metrics.js';
import { CaxtonError } from '../shared/errors.js';
import { formatDuration } from '../shared/units.js';
import { DEFAULT_TOKENS_PERIOD_MS, type LimitSet } from './limits-config.js';

export type { LimitSet } from './limits-config.js';

export type LimitKind = 'requests' | 'concurrency' | 'tokens';
/** Whose limit: the caller's, or the agent's (shared by all its callers). */
export type LimitScope = 'principal' | 'agent';

/** A refusal: which limit, whose, and when trying again can succeed. */
export interface LimitDenied {
  readonly ok: false;
  readonly limit: LimitKind;
  readonly retryAfterMs: number;
  readonly scope: LimitScope;
  /** The principal id or the agent name whose limit was reached. */
  readonly subject: string;
  /** The limit's value: requests (or executions) per minute, executions at once, tokens per period. */
  readonly value: number;
  /** For 'tokens': the window's length and the tokens used in it. */
  readonly periodMs?: number;
  readonly used?: number;
}

export type RequestAdmission = { readonly ok: true } | LimitDenied;

/** An admitted execution. Give it back with release(), also when the execution fails. */
export interface ExecutionSlot {
  readonly ok: true;
  /**
   * Charges tokens as they are reported (streaming, one model turn at a time). release() then
   * charges only what its `usage.tokens` adds beyond what was recorded here. Ignored after release.
   */
  record(tokens: number): void;
  /** Idempotent. `usage.tokens`: the execution's total (input + output). */
  release(usage?: { tokens: number }): void;
}

export type ExecutionAdmission = ExecutionSlot | LimitDenied;

export interface BeginExecution {
  /** Absent for executions no outside caller started (messages between agents): only the agent's limits apply. */
  principalId?: string | undefined;
  principalLimits?: LimitSet | undefined;
  agent?: string;
  agentLimits?: LimitSet | undefined;
}

/** Use against limits, for `caxton key show`. Limits absent from the given set are reported as undefined. */
export interface LimitUsage {
  /** Requests counted against the last minute (the bucket's deficit); 0 when no rate limit applies. */
  requests: { used: number; limit?: number };
  executions: { running: number; limit?: number };
  tokens: { used: number; limit?: number; period_ms: number; resets_at: string };
}

export interface PrincipalLimiterOptions {
  /** Milliseconds since the epoch (default Date.now); tests pass a fake clock. */
  now?: () => number;
  /** Rejections (caxton_limit_rejections_total) and the tracked-state gauge. */
  metrics?: Metrics;
  /** How often, at most, idle states are dropped (default 60 s). */
  sweepIntervalMs?: number;
}

/**
 * How long a caller refused for concurrency is told to wait. A slot frees when one of its running
 * executions ends, which nobody can predict; a second is short enough not to idle a client that
 * streams one execution after another and long enough not to invite a busy loop.
 */
export const CONCURRENCY_RETRY_MS = 1_000;

/** A request-rate token bucket, refilled continuously (also the per-address one of anonymous callers). */
export interface RequestBucket {
  /** Requests available in the bucket (fractional while refilling). */
  bucket: number;
  bucketAt: number;
  /** The capacity the bucket was last used with; 0 = never used. */
  bucketCap: number;
}

interface State extends RequestBucket {
  running: number;
  /** Tokens charged in the window starting at windowStart. */
  tokens: number;
  windowStart: number;
  periodMs: number;
}

const ADMITTED: RequestAdmission = Object.freeze({ ok: true });
const MINUTE_MS = 60_000;

export class PrincipalLimiter {
  #principals = new Map<string, State>();
  #agents = new Map<string, State>();
  readonly #now: () => number;
  readonly #metrics: Metrics | undefined;
  readonly #sweepIntervalMs: number;
  #lastSweep: number;

  constructor(opts: PrincipalLimiterOptions = {}) {
    this.#now = opts.now ?? Date.now;
    this.#metrics = opts.metrics;
    this.#sweepIntervalMs = opts.sweepIntervalMs ?? MINUTE_MS;
    this.#lastSweep = this.#now();
    if (opts.metrics) opts.metrics.sources.limitStates = () => this.size;
  }

  /** One HTTP request of a principal against its `requests_per_minute`. */
  admitRequest(principalId: string, limits: LimitSet | undefined): RequestAdmission {
    const rpm = limits?.requests_per_minute;
    if (rpm === undefined) return ADMITTED;
    const now = this.#now();
    this.#maybeSweep(now);
    const wait = takeRequest(this.#state(this.#principals, principalId, now), rpm, now);
    return wait === 0
      ? ADMITTED
      : this.#deny({ limit: 'requests', scope: 'principal', subject: principalId, value: rpm, retryAfterMs: wait });
  }

  /**
   * Admits an execution when neither the principal nor the agent is at its concurrency limit or
   * out of tokens for the current window (and, for the agent, under its executions per minute).
   * Nothing is taken when it is refused.
   */
  beginExecution(b: BeginExecution): ExecutionAdmission {
    const now = this.#now();
    this.#maybeSweep(now);
    const pl = b.principalLimits;
    const al = b.agentLimits;
    const p = b.principalId !== undefined ? this.#state(this.#principals, b.principalId, now) : undefined;
    // An agent without limits needs no state: its callers' own limits still apply.
    const a = b.agent !== undefined && al !== undefined ? this.#state(this.#agents, b.agent, now) : undefined;

    if (p) {
      syncWindow(p, pl?.tokens_period_ms ?? p.periodMs, now);
      const denied = this.#checkExecution(p, pl, 'principal', b.principalId!, now);
      if (denied) return denied;
    }
    if (a) {
      syncWindow(a, al!.tokens_period_ms ?? a.periodMs, now);
      const denied = this.#checkExecution(a, al, 'agent', b.agent!, now);
      if (denied) return denied;
      // Last: it is the only check that takes something.
      if (al!.requests_per_minute !== undefined) {
        const wait = takeRequest(a, al!.requests_per_minute, now);
        if (wait > 0)
          return this.#deny({
            limit: 'requests',
            scope: 'agent',
            subject: b.agent!,
            value: al!.requests_per_minute,
            retryAfterMs: wait,
          });
      }
    }
    if (p) p.running++;
    if (a) a.running++;

    return new Slot(p, a, this.#now);
  }

  /** Tokens spent outside an admitted execution (or without its slot at hand): charged to the principal and, when it is limited, the agent. */
  recordTokens(principalId: string | undefined, agent: string | undefined, tokens: number): void {
    if (!(tokens > 0) || !Number.isFinite(tokens)) return;
    const now = this.#now();
    if (principalId !== undefined) chargeTokens(this.#state(this.#principals, principalId, now), tokens, now);
    const a = agent !== undefined ? this.#agents.get(agent) : undefined;
    if (a) chargeTokens(a, tokens, now);
  }

  /** A principal's use against `limits` (its effective limits), for `caxton key show`. */
  usage(principalId: string, limits?: LimitSet): LimitUsage {
    return usageOf(this.#principals.get(principalId), limits, this.#now());
  }

  /** An agent's use against its limits. */
  agentUsage(agent: string, limits?: LimitSet): LimitUsage {
    return usageOf(this.#agents.get(agent), limits, this.#now());
  }

  /** Principal and agent states held (the caxton_limit_tracked_states gauge). */
  get size(): number {
    return this.#principals.size + this.#agents.size;
  }

  /** Drops every state that holds nothing. Runs by itself at most once per sweepIntervalMs. */
  sweep(): void {
    const now = this.#now();
    this.#lastSweep = now;
    this.#principals = survivors(this.#principals, now);
    this.#agents = survivors(this.#agents, now);
  }

  #maybeSweep(now: number): void {
    // `<` also catches a clock set back: the next sweep is then due at once rather than never.
    if (now - this.#lastSweep >= this.#sweepIntervalMs || now < this.#lastSweep) this.sweep();
  }

  #state(map: Map<string, State>, key: string, now: number): State {
    let s = map.get(key);
    if (!s) {
      s = {
        bucket: 0,
        bucketAt: now,
        bucketCap: 0,
        running: 0,
        tokens: 0,
        windowStart: windowStartOf(now, DEFAULT_TOKENS_PERIOD_MS),
        periodMs: DEFAULT_TOKENS_PERIOD_MS,
      };
      map.set(key, s);
    }
    return s;
  }

  #checkExecution(
    s: State,
    l: LimitSet | undefined,
    scope: LimitScope,
    subject: string,
    now: number,
  ): LimitDenied | undefined {
    if (l?.concurrent_executions !== undefined && s.running >= l.concurrent_executions) {
      return this.#deny({
        limit: 'concurrency',
        scope,
        subject,
        value: l.concurrent_executions,
        retryAfterMs: CONCURRENCY_RETRY_MS,
      });
    }
    if (l?.tokens !== undefined && s.tokens >= l.tokens) {
      return this.#deny({
        limit: 'tokens',
        scope,
        subject,
        value: l.tokens,
        retryAfterMs: Math.max(1, s.windowStart + s.periodMs - now),
        periodMs: s.periodMs,
        used: s.tokens,
      });
    }
    return undefined;
  }

  #deny(d: Omit<LimitDenied, 'ok'>): LimitDenied {
    this.#metrics?.limitRejected(d.limit, d.scope);
    return { ok: false, ...d };
  }
}

function windowStartOf(now: number, periodMs: number): number {
  return now - (((now % periodMs) + periodMs) % periodMs);
}

/** Moves a state's token window to the one holding `now` (and to `periodMs`, when the configuration changed it). */
function syncWindow(s: State, periodMs: number, now: number): void {
  const start = windowStartOf(now, periodMs);
  // A period changed by a configuration reload starts a fresh window: tokens counted against the
  // old period cannot be split between windows of the new one.
  if (periodMs !== s.periodMs || start > s.windowStart) {
    s.periodMs = periodMs;
    s.windowStart = start;
    s.tokens = 0;
  }
}

function chargeTokens(s: State, tokens: number, now: number): void {
  syncWindow(s, s.periodMs, now);
  s.tokens += tokens;
}

/** The bucket refilled to `now` (not stored). */
export function refilled(s: RequestBucket, now: number): number {
  if (s.bucketCap === 0) return 0;
  return Math.min(s.bucketCap, s.bucket + (Math.max(0, now - s.bucketAt) * s.bucketCap) / MINUTE_MS);
}

/** Takes one request from the bucket: 0 when taken, else the ms until one is available. */
export function takeRequest(s: RequestBucket, rpm: number, now: number): number {
  // A new bucket starts full; one whose size changed keeps its deficit within the new size.
  s.bucket = s.bucketCap === 0 ? rpm : Math.min(rpm, refilled(s, now));
  s.bucketCap = rpm;
  s.bucketAt = now;
  if (s.bucket >= 1) {
    s.bucket -= 1;
    return 0;
  }
  return Math.max(1, Math.ceil(((1 - s.bucket) * MINUTE_MS) / rpm));
}

/**
 * The states that still hold something, in a new Map. Copying the survivors measured faster than
 * deleting from a Map while iterating it once most entries go (V8 shrinks and rehashes the table
 * as it empties): 100,000 idle states, the bench's case.
 */
function survivors(map: Map<string, State>, now: number): Map<string, State> {
  const kept = new Map<string, State>();
  for (const [k, s] of map) if (!isIdle(s, now)) kept.set(k, s);
  return kept;
}

function isIdle(s: State, now: number): boolean {
  return (
    s.running === 0 &&
    (s.bucketCap === 0 || refilled(s, now) >= s.bucketCap) &&
    (s.tokens === 0 || now >= s.windowStart + s.periodMs)
  );
}

function usageOf(s: State | undefined, l: LimitSet | undefined, now: number): LimitUsage {
  const periodMs = l?.tokens_period_ms ?? s?.periodMs ?? DEFAULT_TOKENS_PERIOD_MS;
  const start = windowStartOf(now, periodMs);
  const tokens = s && s.periodMs === periodMs && s.windowStart === start ? s.tokens : 0;
  const cap = s?.bucketCap ?? 0;
  return {
    requests: {
      used: s && cap > 0 ? Math.round(cap - refilled(s, now)) : 0,
      ...(l?.requests_per_minute !== undefined && { limit: l.requests_per_minute }),
    },
    executions: {
      running: s?.running ?? 0,
      ...(l?.concurrent_executions !== undefined && { limit: l.concurrent_executions }),
    },
    tokens: {
      used: tokens,
      ...(l?.tokens !== undefined && { limit: l.tokens }),
      period_ms: periodMs,
      resets_at: new Date(start + periodMs).toISOString(),
    },
  };
}

/** Whole seconds for `Retry-After` (at least 1: "0" would invite an immediate retry that fails again). */
export function retryAfterSeconds(d: LimitDenied): number {
  return Math.max(1, Math.ceil(d.retryAfterMs / 1000));
}

/**
 * The 429 for a refusal. `details.retry_after` is what the API's error envelope turns into the
 * `Retry-After` header (src/api/envelope.ts, as for queue_full), so a route only throws this.
 */
export function limitedError(d: LimitDenied): CaxtonError {
  const s = retryAfterSeconds(d);
  const who = d.scope === 'agent' ? `agent "${d.subject}"` : `"${d.subject}"`;
  let message: string;
  switch (d.limit) {
    case 'requests':
      message =
        d.scope === 'agent'
          ? `${who} is at its limit of ${d.value} executions per minute (requests_per_minute); retry in ${s} s`
          : `${who} is at its limit of ${d.value} requests per minute (requests_per_minute); retry in ${s} s`;
      break;
    case 'concurrency':
      message = `${who} already has ${d.value} executions running, its limit (concurrent_executions); retry when one finishes, in ${s} s or later`;
      break;
    case 'tokens':
      message = `${who} has used ${d.used ?? d.value} of its ${d.value} LLM tokens per ${formatDuration(d.periodMs ?? DEFAULT_TOKENS_PERIOD_MS)} (tokens); the window resets in ${s} s`;
      break;
  }
  return new CaxtonError('rate_limited', message, {
    limit: d.limit,
    scope: d.scope,
    ...(d.scope === 'agent' && { agent: d.subject }),
    value: d.value,
    ...(d.periodMs !== undefined && { period_s: d.periodMs / 1000 }),
    ...(d.used !== undefined && { used: d.used }),
    retry_after: s,
  });
}

/**
 * An admitted execution's hold on its principal's and agent's states: one object per execution,
 * not a closure per method.
 */
class Slot implements ExecutionSlot {
  readonly ok = true;
  #released = false;
  #recorded = 0;

  constructor(
    private readonly p: State | undefined,
    private readonly a: State | undefined,
    private readonly now: () => number,
  ) {}

  record(tokens: number): void {
    if (this.#released || !(tokens > 0) || !Number.isFinite(tokens)) return;
    this.#recorded += tokens;
    this.#charge(tokens);
  }

  release(usage?: { tokens: number }): void {
    if (this.#released) return;
    this.#released = true;
    const extra = (usage?.tokens ?? 0) - this.#recorded;
    // Charged before the counts drop, while the states cannot have been swept (running > 0).
    if (extra > 0 && Number.isFinite(extra)) this.#charge(extra);
    if (this.p) this.p.running--;
    if (this.a) this.a.running--;
  }

  #charge(tokens: number): void {
    const t = this.now();
    if (this.p) chargeTokens(this.p, tokens, t);
    if (this.a) chargeTokens(this.a, tokens, t);
  }
}
