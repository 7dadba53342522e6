import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ExecutionSlot } from '../auth/index.js';
import type { Executor } from '../execution/index.js';
import { openSse, type SseStream } from './sse-stream.js';
import type { LimitSet } from '../auth/index.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The principal's effective limits (its key's own, else `[auth.limits] default`), set by src/auth/plugin.ts. */
    limits?: LimitSet | undefined;
  }
}

/** The caller of an execution, for the tool audit (InvokeRequest.principal). */
export function callerOf(req: FastifyRequest): { principal?: string } {
  return req.principal ? { principal: req.principal.id } : {};
}

/** The caller's limits for Executor.invoke / admit (src/auth/caller-limits.ts). */
export function limitOf(req: FastifyRequest): { principalId: string; limits?: LimitSet | undefined } | undefined {
  return req.principal ? { principalId: req.principal.id, limits: req.limits } : undefined;
}

/**
 * For streaming executions: the caller's limits are checked before the stream opens (a refusal
 * is a plain 429 with Retry-After), then the stream opens; the slot is given back should opening fail.
 */
export function admitAndOpenSse(
  executor: Executor,
  agent: string,
  req: FastifyRequest,
  reply: FastifyReply,
): { sse: SseStream; admitted: ExecutionSlot | undefined } {
  const admitted = executor.admit(agent, limitOf(req));
  try {
    return { sse: openSse(req, reply), admitted };
  } catch (e) {
    admitted?.release();
    throw e;
  }
}
