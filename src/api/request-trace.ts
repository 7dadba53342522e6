import type { FastifyRequest } from 'fastify';
import { childTraceparent, traceparentOf, type Span } from '../observability/index.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's HTTP server span, set by the API's onRequest hook (src/api/app.ts) and ended in onResponse. */
    span?: Span;
    /** The client's own id from `X-Request-Id`, checked by the onRequest hook (src/observability/request-id.ts). */
    clientRequestId?: string;
  }
}

/**
 * The W3C trace context work started by this request continues: its HTTP span when tracing
 * records, else the client's own `traceparent` header (passed through unchanged), else none.
 * Routes hand it on explicitly (executions, messages), so the trace holds without relying on the
 * active async context.
 */
export function requestTraceparent(req: FastifyRequest): string | undefined {
  const span = req.span;
  if (span?.isRecording()) return traceparentOf(span);
  const header = req.headers.traceparent;
  const incoming =
    typeof header === 'string' && /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(header) ? header : undefined;
  // A trace that starts here unsampled hands on that decision (childTraceparent).
  return span ? childTraceparent(span, incoming) : incoming;
}
