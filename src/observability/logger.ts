import { trace } from '@opentelemetry/api';
import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogBuffer } from './log-buffer.js';

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

export interface LoggerOptions {
  /** Also write every line to this ring buffer (GET /api/v1/logs, `caxton logs`). */
  buffer?: LogBuffer;
  /**
   * Secret values (API keys, tokens) replaced by "***" wherever they appear in a line, including
   * inside messages and error texts that REDACT_PATHS cannot reach. Values shorter than 8
   * characters are ignored (too likely to be ordinary text).
   */
  secrets?: readonly string[];
}

/** Escapes a string for use in a RegExp. */
const reEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * JSON logs on stdout (or a given stream); every line of a request carries its request id, and
 * every line logged inside a span its `trace_id` and `span_id`. Secrets under REDACT_PATHS, and
 * the values in `opts.secrets` wherever they occur, are replaced by "***".
 */
export function createLogger(level: string, destination?: DestinationStream, opts: LoggerOptions = {}): Logger {
  const dest = destination ?? pino.destination({ dest: 1, sync: false });
  const secrets = [...new Set((opts.secrets ?? []).filter((s) => s.length >= 8))];
  // A secret is matched as written and as JSON escapes it (a key with a quote or backslash).
  const scrub = secrets.length > 0 ? new RegExp([...new Set(secrets.flatMap((s) => [s, JSON.stringify(s).slice(1, -1)]))].map(reEscape).join('|'), 'g') : undefined;
  return pino(
    {
      level,
      base: { service: 'caxton' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '***' },
      formatters: { level: (label) => ({ level: label }) },
      mixin: traceFields,
      ...(scrub && { hooks: { streamWrite: (s: string) => s.replace(scrub, '***') } }),
    },
    opts.buffer ? withBuffer(dest, opts.buffer) : dest,
  );
}

/** `dest` and the buffer as one stream; `logger.flush(cb)` still flushes `dest` (pino's multistream has no flush). */
function withBuffer(dest: DestinationStream, buffer: LogBuffer): DestinationStream {
  const ms = pino.multistream([
    { stream: dest, level: 'trace' },
    { stream: buffer, level: 'trace' },
  ]) as DestinationStream & { flush?: (cb: (err?: Error) => void) => void };
  const inner = dest as { flush?: (cb: (err?: Error) => void) => void };
  ms.flush = (cb) => (typeof inner.flush === 'function' ? inner.flush(cb) : cb());
  return ms;
}
