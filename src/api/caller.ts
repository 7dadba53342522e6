import type { FastifyRequest } from 'fastify';
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

/** The caller's limits for Executor.invoke / admit (src/auth/limits.ts). */
export function limitOf(req: FastifyRequest): { principalId: string; limits?: LimitSet | undefined } | undefined {
  return req.principal ? { principalId: req.principal.id, limits: req.limits } : undefined;
}
