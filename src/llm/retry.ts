/**
 * Retry policy shared by the HTTP provider clients: which failures are worth another attempt,
 * how long to wait (exponential backoff with jitter, or the server's Retry-After), and an
 * abortable sleep.
 */
import { backoffDelay as exponentialBackoff } from '../shared/backoff.js';

/** Statuses retried: rate limiting and transient server trouble (529 is Anthropic's "overloaded"). */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504, 529]);

/** The longest wait a Retry-After header may impose. */
export const MAX_RETRY_AFTER_MS = 60_000;
/** The longest computed backoff between two attempts. */
export const MAX_BACKOFF_MS = 30_000;

/**
 * The delay a `Retry-After` header asks for, in ms: delta-seconds ("3", "0.5") or an HTTP date.
 * Undefined when absent or unparseable; never negative.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (v === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const date = Date.parse(v);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * The backoff before retry number `retry` (0 for the first retry): `base * 2^retry`, scaled by a
 * random factor in [0.5, 1) so that clients failing together do not retry together.
 */
export function backoffDelay(retry: number, baseMs: number, random: () => number = Math.random): number {
  return exponentialBackoff(retry, { baseMs, maxMs: MAX_BACKOFF_MS, jitter: [0.5, 1] }, random);
}

/**
 * How long to wait before the next attempt: the server's Retry-After (capped at
 * MAX_RETRY_AFTER_MS) when given, else the backoff.
 */
export function retryDelay(retry: number, baseMs: number, retryAfterMs: number | undefined): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, MAX_RETRY_AFTER_MS);
  return backoffDelay(retry, baseMs);
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
