import { hash } from 'node:crypto';

/**
 * Verified bearer tokens → what they authenticated, so a repeated token skips the signature check
 * (ADR 0021). Keyed by the token's SHA-256: the cache never holds a usable token, so a heap dump
 * or a debugger shows digests, not credentials. Bounded: at most `maxEntries`, the oldest
 * inserted evicted first; entries live until their own expiry (the caller passes
 * min(token exp, now + ttl)), checked on every read.
 */
export class TokenCache<V> {
  readonly #entries = new Map<string, { value: V; expiresAt: number }>();

  constructor(readonly maxEntries: number) {}

  static keyOf(token: string): string {
    return hash('sha256', token, 'base64');
  }

  get(key: string, now: number): V | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) return undefined;
    if (now < e.expiresAt) return e.value;
    this.#entries.delete(key);
    return undefined;
  }

  set(key: string, value: V, expiresAt: number, now: number): void {
    if (this.maxEntries <= 0 || expiresAt <= now) return;
    this.#entries.delete(key);
    // Insertion order is age: evicting the first entry is FIFO. Entries live a few minutes at
    // most, so FIFO loses little to LRU and costs nothing on the (hot) read path.
    while (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { value, expiresAt });
  }

  get size(): number {
    return this.#entries.size;
  }

  clear(): void {
    this.#entries.clear();
  }
}
