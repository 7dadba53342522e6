/**
 * Exponential backoff: the one formula behind every "wait longer after each failure" in Caxton
 * (model provider retries, message redelivery, MCP reconnects, process pool refills).
 */

export interface BackoffPolicy {
  /** The first delay, in ms; doubled per retry. */
  baseMs: number;
  /** The doubling stops here, in ms (before jitter: clients at the cap still spread out). */
  maxMs: number;
  /**
   * The delay is scaled by a random factor in [low, high), so that clients failing together do
   * not retry together. Default [1, 1]: no jitter.
   */
  jitter?: readonly [low: number, high: number];
}

/** Beyond this exponent the doubling only meets the cap: bounded so that 2^n never overflows. */
const MAX_EXPONENT = 30;

/**
 * The delay, in whole ms, before retry number `retry` (0 for the first): `baseMs · 2^retry`,
 * capped at `maxMs`, then scaled by the policy's jitter.
 */
export function backoffDelay(retry: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(MAX_EXPONENT, Math.max(0, retry)));
  const [low, high] = policy.jitter ?? [1, 1];
  const factor = low === high ? low : low + random() * (high - low);
  return Math.max(0, Math.round(exp * factor));
}
