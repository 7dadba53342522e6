import { trace } from '@opentelemetry/api';
import { pino, type Logger, type DestinationStream } from 'pino';
import { registerSecrets, scrubSecrets } from '../shared/secrets.js';
import type { LogBuffer } from './log-buffer.js';

export type { Logger };

/**
 * Fields whose values are never written to logs, at any depth of a line: a key, a token, a
 * password or an authorization header logged by mistake is written as "***".
 */
export const SECRET_FIELDS = ['api_key', 'apiKey', 'token', 'password', 'authorization', 'x-api-key'] as const;

/**
 * A secret field as a key of pino's JSON: a key follows `{` or `,` unescaped, which no string
 * value can hold (its quotes are escaped), so a message mentioning "token" never matches.
 */
const SECRET_KEY = new RegExp(`[{,]"(?:${SECRET_FIELDS.join('|')})":`, 'g');

/** Where the JSON value starting at `i` ends (one past its last character). */
function valueEnd(s: string, i: number): number {
  let depth = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (i++; i < s.length && s.charCodeAt(i) !== 0x22; i++) if (s.charCodeAt(i) === 0x5c /* \ */) i++;
      if (depth === 0) return i + 1;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) depth++;
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (depth === 0) return i;
      if (--depth === 0) return i + 1;
    } else if (c === 0x2c /* , */ && depth === 0) return i;
  }
  return s.length;
}

/**
 * `line` (pino's JSON) with the value of every SECRET_FIELDS key replaced by "***". Done on the
 * written text rather than with pino's `redact` paths: those are parsed again for every key of
 * every line and every child logger's bindings (two per request), ~6 KB of garbage per request;
 * here a line without such a key costs one regular expression scan and allocates nothing.
 */
export function redactSecretFields(line: string): string {
  SECRET_KEY.lastIndex = 0;
  let m = SECRET_KEY.exec(line);
  if (m === null) return line;
  let out = '';
  let from = 0;
  while (m !== null) {
    const start = m.index + m[0].length;
    const end = valueEnd(line, start);
    out += `${line.slice(from, start)}"***"`;
    from = end;
    SECRET_KEY.lastIndex = end;
    m = SECRET_KEY.exec(line);
  }
  return out + line.slice(from);
}

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
   * encoding, including inside messages and error texts that SECRET_FIELDS cannot reach. They are
   * added to the process-wide scrubber (src/shared/secrets.ts). Values shorter than 8 characters
   * are ignored (too likely to be ordinary text).
   */
  secrets?: readonly string[];
}

/**
 * JSON logs on stdout (or a given stream); every line of a request carries its request id, and
 * every line logged inside a span its `trace_id` and `span_id`. SECRET_FIELDS' values are
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
      formatters: { level: (label) => ({ level: label }) },
      mixin: traceFields,
      // Read at every line, so secrets registered after the logger was made (startServer) count too.
      hooks: { streamWrite: (line) => scrubSecrets(redactSecretFields(line)) },
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
