/**
 * When a failed delivery is tried again (src/messaging/bus-rules.ts retryDelay, shared by both
 * buses): a delivery refused for concurrency waits without spending an attempt, so it is never
 * dead-lettered for it; other retryable errors spend attempts and back off, at least as long as a
 * rate limit asks; the rest are not retried.
 */
import { describe, expect, it } from 'vitest';
import { limitedError } from '../../src/auth/index.js';
import { retryDelay } from '../../src/messaging/index.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { messagingConfig } from './helpers.js';

const cfg = messagingConfig({ retry_base: 100, retry_max: 5_000, max_attempts: 3 });
const concurrency = limitedError({
  ok: false,
  limit: 'concurrency',
  scope: 'principal',
  subject: 'key:ci',
  value: 1,
  retryAfterMs: 1_000,
});
const tokens = limitedError({
  ok: false,
  limit: 'tokens',
  scope: 'principal',
  subject: 'key:ci',
  value: 30,
  retryAfterMs: 4_000,
  periodMs: 60_000,
  used: 31,
});

describe('retryDelay', () => {
  it('retries a concurrency refusal about a second later, forever, without counting attempts', () => {
    const d = { attempts: 0 };
    for (let i = 0; i < 50; i++) {
      const ms = retryDelay(cfg, d, concurrency)!;
      expect(ms).toBeGreaterThanOrEqual(800);
      expect(ms).toBeLessThanOrEqual(1_200);
    }
    expect(d.attempts).toBe(0);
  });

  it('backs off other retryable errors, at least as long as a rate limit asks, up to max_attempts', () => {
    const d = { attempts: 0 };
    const first = retryDelay(cfg, d, tokens)!;
    expect(first).toBeGreaterThanOrEqual(3_200);
    expect(first).toBeLessThanOrEqual(4_800);
    expect(d.attempts).toBe(1);
    const second = retryDelay(cfg, d, new CaxtonError('llm_error', 'provider down'))!;
    expect(second).toBeGreaterThanOrEqual(160);
    expect(second).toBeLessThanOrEqual(240);
    expect(retryDelay(cfg, d, new CaxtonError('llm_error', 'provider down'))).toBeUndefined();
    expect(d.attempts).toBe(3);
  });

  it('does not retry what cannot succeed next time', () => {
    const d = { attempts: 0 };
    expect(retryDelay(cfg, d, new CaxtonError('forbidden', 'revoked'))).toBeUndefined();
    expect(retryDelay(cfg, d, new CaxtonError('timeout', 'too slow'))).toBeUndefined();
  });
});
