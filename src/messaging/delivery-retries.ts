/**
 * Which failed deliveries are tried again, when, and which go straight to the dead-letter queue:
 * decided the same way by both buses (src/messaging/sqlite/, src/messaging/cluster/ over src/messaging/postgres/).
 */
import { backoffDelay } from '../shared/backoff.js';
import { isCaxtonError, type ErrorCode } from '../shared/errors.js';
import type { MessagingConfig } from './messaging-config.js';

/** Errors worth another delivery attempt: the agent could succeed next time. */
export const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'llm_error',
  'isolation_failure',
  'not_ready',
  'rate_limited',
  'internal',
  'cancelled',
]);
/** Errors that make a message undeliverable until an operator acts: straight to the dead-letter queue. */
export const UNDELIVERABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'agent_not_found',
  'invalid_config',
  'configuration_error',
  'invalid_request',
  'payload_too_large',
  'tool_not_allowed',
  'forbidden',
]);

/**
 * Whether and in how many ms a failed delivery is tried again; counts the attempt in `d`. A
 * delivery refused because its acting principal (or the agent, or the node: `max_in_flight`)
 * already runs as many executions as it may has not failed: it waits for a slot and tries again
 * without spending an attempt, so it is neither dead-lettered nor lost. Other retryable errors back off exponentially, at least as long
 * as a rate limit asks, until `max_attempts`. Undefined: no retry (dead letter or failure reply).
 */
export function retryDelay(cfg: MessagingConfig, d: { attempts: number }, e: unknown): number | undefined {
  const code: ErrorCode = isCaxtonError(e) ? e.code : 'internal';
  const details =
    isCaxtonError(e) && typeof e.details === 'object' && e.details !== null
      ? (e.details as Record<string, unknown>)
      : {};
  const jitter = (ms: number) => Math.round(ms * (0.8 + Math.random() * 0.4));
  const asked = code === 'rate_limited' && typeof details.retry_after === 'number' ? details.retry_after * 1000 : 0;
  if (code === 'rate_limited' && (details.limit === 'concurrency' || details.limit === 'in_flight'))
    return jitter(Math.min(cfg.retry_max, Math.max(cfg.retry_base, asked)));
  // The run waits for a person (src/execution/runs): asked again now and then, never spending an
  // attempt; once someone decides, the run goes on and the next delivery answers with its result.
  if (code === 'awaiting_approval') return jitter(cfg.retry_max);
  // The run was cancelled by an operator (src/execution/runs): asking again would find it cancelled.
  if (code === 'cancelled' && details.reason === 'run_cancelled') return undefined;
  d.attempts++;
  if (!RETRYABLE.has(code) || d.attempts >= cfg.max_attempts) return undefined;
  return jitter(
    Math.min(
      cfg.retry_max,
      Math.max(backoffDelay(d.attempts - 1, { baseMs: cfg.retry_base, maxMs: cfg.retry_max }), asked),
    ),
  );
}
