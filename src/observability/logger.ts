import { trace } from '@opentelemetry/api';
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Paths whose values are never written to logs. */
export const REDACT_PATHS = [
  'api_key',
  '*.api_key',
  '*.*.api_key',
  'apiKey',
  '*.apiKey',
  'token',
  '*.token',
  'password',
  '*.password',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers["x-api-key"]',
];

/** The active span's ids, on every line logged inside a span (request, delivery, execution, tool call). */
function traceFields(): Record<string, string> {
  const sc = trace.getActiveSpan()?.spanContext();
  return sc && trace.isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : {};
}

/**
 * JSON logs on stdout (or a given stream); every line of a request carries its request id, and
 * every line logged inside a span its `trace_id` and `span_id`. Secrets under REDACT_PATHS are
 * replaced by "***".
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'caxton' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '***' },
      formatters: { level: (label) => ({ level: label }) },
      mixin: traceFields,
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
