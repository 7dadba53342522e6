/**
 * `[auth.limits]`: what each principal and each agent may spend (ADR 0024, docs/security.md).
 *
 *   [auth.limits.default]              # every principal without limits of its own
 *   requests_per_minute = 600
 *   concurrent_executions = 8
 *   tokens = 200000                    # LLM tokens (input + output) per tokens_period
 *   tokens_period = "1h"               # default "1m"; windows align to the UTC clock
 *
 *   [auth.limits.agents."support-*"]   # each matching agent, shared by all its callers
 *   concurrent_executions = 4
 *   tokens_per_minute = 50000          # shorthand for tokens = 50000, tokens_period = "1m"
 *
 *   [auth.limits.anonymous]            # callers without a valid credential, per source address
 *   requests_per_minute = 600          # the default; refusals past it are answered 429
 *
 * Absent fields mean "no limit". The schemas live here; src/config/config-schema.ts mounts them.
 */
import { z } from 'zod';
import { durationMs } from '../shared/zod-units.js';
import { globMatch } from './principal.js';

/**
 * One set of limits as the limiter uses it (parsed and normalized). Every field is optional:
 * absent means unlimited.
 */
export interface LimitSet {
  /** HTTP requests per minute (a token bucket of this size, refilled continuously). For an agent: executions started per minute. */
  requests_per_minute?: number;
  /** Executions running at once. */
  concurrent_executions?: number;
  /** LLM tokens (input + output) per `tokens_period_ms`. */
  tokens?: number;
  /** The token window, ms (default 60 000). Windows are aligned to multiples of the period since the Unix epoch. */
  tokens_period_ms?: number;
}

export const DEFAULT_TOKENS_PERIOD_MS = 60_000;
/** `[auth.limits.anonymous] requests_per_minute` when not set. */
export const DEFAULT_ANONYMOUS_PER_MINUTE = 600;
/** The longest token window: a month's budget, give or take (windows align to the epoch, not to calendar months). */
export const MAX_TOKENS_PERIOD_MS = 31 * 24 * 3_600_000;

const count = (what: string) =>
  z
    .number({ error: `expected a whole number of ${what} (at least 1; leave the key out for no limit)` })
    .int()
    .min(1)
    .max(Number.MAX_SAFE_INTEGER);

/**
 * A limit set in caxton.toml. Tokens are given either as `tokens_per_minute` or as `tokens` with an
 * optional `tokens_period` ("1m", "1h", "1d"...): a per-minute budget stops bursts, a per-hour or
 * per-day one caps spend, and both are common, so the period is configurable.
 */
export const limitSetSchema = z
  .strictObject({
    requests_per_minute: count('requests').optional(),
    concurrent_executions: count('executions').optional(),
    tokens_per_minute: count('tokens').optional(),
    tokens: count('tokens').optional(),
    tokens_period: durationMs({ min: 1_000, max: MAX_TOKENS_PERIOD_MS }).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.tokens_per_minute !== undefined && (v.tokens !== undefined || v.tokens_period !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['tokens_per_minute'],
        message: 'give either tokens_per_minute or tokens (with tokens_period), not both',
      });
    }
    if (v.tokens_period !== undefined && v.tokens === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['tokens_period'],
        message: 'tokens_period needs tokens = N (the budget for that period)',
      });
    }
  })
  .transform((v): LimitSet => {
    const tokens = v.tokens_per_minute ?? v.tokens;
    return {
      ...(v.requests_per_minute !== undefined && { requests_per_minute: v.requests_per_minute }),
      ...(v.concurrent_executions !== undefined && { concurrent_executions: v.concurrent_executions }),
      ...(tokens !== undefined && { tokens, tokens_period_ms: v.tokens_period ?? DEFAULT_TOKENS_PERIOD_MS }),
    };
  });

/** `[auth.limits]`. */
export const authLimitsConfigSchema = z
  .strictObject({
    /** Applies to every principal that has no limits of its own (a key's own limits replace it whole). */
    default: limitSetSchema.optional(),
    /**
     * Per agent, by name or glob (`*` matches any run of characters): each matching agent gets this
     * budget, shared by all its callers (executions from messages included). An exact name wins
     * over globs; among globs the first in the file wins.
     */
    agents: z
      .record(z.string().min(1, { message: 'expected an agent name or glob' }).max(200), limitSetSchema)
      .default({}),
    /**
     * Requests refused for want of a valid credential (401, or 403 before authentication), per
     * source address (src/auth/anonymous-limit.ts). High enough for a person or a misconfigured
     * script to see their 401s; low enough that guessing keys or flooding refusals is slowed.
     */
    anonymous: z
      .strictObject({
        requests_per_minute: count('requests').default(DEFAULT_ANONYMOUS_PER_MINUTE),
        /** Addresses tracked at once; beyond them, new addresses share one allowance. */
        max_addresses: z.number().int().min(1).max(10_000_000).default(10_000),
      })
      .prefault({}),
  })
  .prefault({});

export type AuthLimitsConfig = z.output<typeof authLimitsConfigSchema>;

/** The limits of a principal: its own when it has any (a key created with limits), else `[auth.limits.default]`. */
export function principalLimits(cfg: AuthLimitsConfig, own?: LimitSet): LimitSet | undefined {
  return own ?? cfg.default;
}

/**
 * `agent name → its limits` for the executor (ExecutorOptions.agentLimits). Results are cached:
 * the executor asks on every execution, and globs would otherwise be matched each time.
 */
export function agentLimitsLookup(cfg: AuthLimitsConfig): (agent: string) => LimitSet | undefined {
  const entries = Object.entries(cfg.agents);
  if (entries.length === 0) return () => undefined;
  const cache = new Map<string, LimitSet | undefined>();
  return (agent) => {
    if (cache.has(agent)) return cache.get(agent);
    // hasOwn: an agent may be named "constructor".
    const found =
      (Object.hasOwn(cfg.agents, agent) ? cfg.agents[agent] : undefined) ??
      entries.find(([pattern]) => pattern.includes('*') && globMatch(pattern, agent))?.[1];
    // Agent names come and go; the cache is bounded like principal.ts's glob cache.
    if (cache.size >= 1000) cache.clear();
    cache.set(agent, found);
    return found;
  };
}
