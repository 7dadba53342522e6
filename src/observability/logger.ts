import { trace } from '@opentelemetry/api';
import { pino, type Logger, type DestinationStream } from 'pino';
import { registerSecrets, scrubSecrets } from '../shared/secrets.js';
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

/**
 * The active span's ids, on every line logged inside a span (request, delivery, execution, tool
 * call) — unless the line already names them. Pino writes a child logger's bindings as text
 * beside the line's fields, without merging: a request's child logger (src/api/app.ts binds
 * `trace_id`/`span_id`) plus this mixin wrote each key twice. The line's own fields
 * win over the mixin's anyway (pino's merge), so only the bindings need a look: a substring test
 * on pino's serialized bindings, cheap enough for every line.
 */
function traceFields(obj: object, _level: number, logger: Logger): Record<string, string> {
  if ((logger as unknown as Record<symbol, unknown>)[pino.symbols.chindingsSym]?.toString().includes('"trace_id":'))
    return {}; // a fresh object: pino's merge assigns into it
  const sc = trace.getActiveSpan()?.spanContext();
  return sc && trace.isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : {};
}

export interface LoggerOptions {
  /** Also write every line to this ring buffer (GET /api/v1/logs, `caxton logs`). */
  buffer?: LogBuffer;
  /**
   * Secret values (API keys, tokens) replaced by "***" wherever they appear in a line, in any
   * encoding, including inside messages and error texts that REDACT_PATHS cannot reach. They are
   * added to the process-wide scrubber (src/shared/secrets.ts). Values shorter than 8 characters
   * are ignored (too likely to be ordinary text).
   */
  secrets?: readonly string[];
}

/**
 * JSON logs on stdout (or a given stream); every line of a request carries its request id, and
 * every line logged inside a span its `trace_id` and `span_id`. Secrets under REDACT_PATHS are
 * replaced by "***", and so is every secret value of the process-wide scrubber
 * (src/shared/secrets.ts: `opts.secrets` are added to it) wherever and however encoded it occurs.
 */
export function createLogger(level: string, destination?: DestinationStream, opts: LoggerOptions = {}): Logger {
  const dest = destination ?? pino.destination({ dest: 1, sync: false });
  if (opts.secrets) registerSecrets(opts.secrets);
  return pino(
    {
      level,
      base: { service: 'caxton' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '***' },
      formatters: { level: (label) => ({ level: label }) },
      mixin: traceFields,
      // Read at every line, so secrets registered after the logger was made (startServer) count too.
      hooks: { streamWrite: scrubSecrets },
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
