/**
 * The request rate of callers without a valid credential, per source address (`[auth.limits.anonymous]`):
 * a token bucket of `requests_per_minute` per address, refilled continuously, charged only by
 * requests that are refused for want of a credential (401, or a 403 before authentication). A
 * caller with a valid key is never slowed by a neighbour's failures at the same address.
 *
 * Memory is bounded: at most `maxAddresses` buckets; full ones (idle long enough to have refilled)
 * are swept when the table is full, and while it stays full every further address shares one
 * bucket, so a flood from many (spoofed-looking) addresses is limited as one caller.
 */
import { CaxtonError } from '../shared/errors.js';
import { refilled, takeRequest, type RequestBucket } from './caller-limits.js';

export interface AnonymousLimitOptions {
  requestsPerMinute: number;
  /** Addresses tracked at once (default 10,000); the rest share one bucket. */
  maxAddresses?: number;
  now?: () => number;
}

/** The key of the bucket shared by the addresses beyond `maxAddresses`. */
const OVERFLOW = '\0overflow';

export class AnonymousLimiter {
  readonly requestsPerMinute: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, RequestBucket>();
  #sweptAt = -Infinity;

  constructor(opts: AnonymousLimitOptions) {
    this.requestsPerMinute = opts.requestsPerMinute;
    this.#max = opts.maxAddresses ?? 10_000;
    this.#now = opts.now ?? Date.now;
  }

  /** Charges one refused request to `address`; the milliseconds to wait when its allowance is used up, else 0. */
  charge(address: string): number {
    const now = this.#now();
    return takeRequest(this.#bucket(address, now), this.requestsPerMinute, now);
  }

  /** Addresses tracked now (for tests and metrics). */
  get size(): number {
    return this.#buckets.size;
  }

  #bucket(address: string, now: number): RequestBucket {
    let b = this.#buckets.get(address);
    if (b) return b;
    // At most once a second: a flood of new addresses must not make every request walk the table.
    if (this.#buckets.size >= this.#max && now - this.#sweptAt >= 1000) this.#sweep(now);
    const key = this.#buckets.size >= this.#max ? OVERFLOW : address;
    b = this.#buckets.get(key);
    if (!b) {
      // Capacity 0: takeRequest fills a new bucket to the limit on its first charge.
      b = { bucket: 0, bucketAt: now, bucketCap: 0 };
      this.#buckets.set(key, b);
    }
    return b;
  }

  /** Drops the buckets that have refilled: they hold nothing a new bucket would not. */
  #sweep(now: number): void {
    this.#sweptAt = now;
    for (const [k, b] of this.#buckets)
      if (k !== OVERFLOW && refilled(b, now) >= this.requestsPerMinute) this.#buckets.delete(k);
  }
}

/** The 429 of an address over its allowance, in the API's error envelope (Retry-After from `retry_after`). */
export function anonymousLimitedError(address: string, limit: number, waitMs: number): CaxtonError {
  const s = Math.max(1, Math.ceil(waitMs / 1000));
  return new CaxtonError(
    'rate_limited',
    `too many requests without a valid credential from ${address}: at most ${limit} a minute ([auth.limits.anonymous] requests_per_minute); retry in ${s} s, with an API key (Authorization: Bearer <key>)`,
    { reason: 'anonymous_rate', limit: 'anonymous', value: limit, retry_after: s },
  );
}
