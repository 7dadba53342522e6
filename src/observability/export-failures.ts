import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

/** @opentelemetry/core's ExportResult, without depending on that package directly. */
type ExportResult = Parameters<Parameters<SpanExporter['export']>[1]>[0];

/** Why an export failed, as a bounded metric label. */
export type ExportFailureReason = 'http_4xx' | 'http_5xx' | 'connection' | 'timeout' | 'other';

export function exportFailureReason(err: unknown): ExportFailureReason {
  const e = err as { code?: unknown; message?: unknown; name?: unknown } | undefined;
  const code = e?.code;
  if (typeof code === 'number') return code >= 500 ? 'http_5xx' : code >= 400 ? 'http_4xx' : 'other';
  const text = `${typeof e?.name === 'string' ? e.name : ''} ${typeof e?.message === 'string' ? e.message : ''} ${typeof code === 'string' ? code : ''}`;
  if (/timeout|timed out/i.test(text)) return 'timeout';
  if (/ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|socket hang up|fetch failed/i.test(text))
    return 'connection';
  return 'other';
}

/** What the tracer hands on about each failed export (src/server/server.ts logs and counts it). */
export interface ExportFailure {
  reason: ExportFailureReason;
  /** The exporter's error text (an HTTP status line, a socket error). */
  message: string;
  spans: number;
}

/**
 * A span exporter that reports every failed export. The OTLP exporter says nothing when the
 * collector is down, refuses the spans (4xx) or the URL is wrong: OpenTelemetry's diagnostic
 * logger is a no-op unless set up, so spans were dropped silently.
 */
export class ReportingExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #onFailure: (f: ExportFailure) => void;

  constructor(inner: SpanExporter, onFailure: (f: ExportFailure) => void) {
    this.#inner = inner;
    this.#onFailure = onFailure;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.#inner.export(spans, (result) => {
      // ExportResultCode.SUCCESS is 0 (@opentelemetry/core).
      if (result.code !== 0) {
        try {
          this.#onFailure({
            reason: exportFailureReason(result.error),
            message: result.error?.message ?? 'export failed',
            spans: spans.length,
          });
        } catch {
          // reporting must never break the export pipeline
        }
      }
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * Logs export failures at most once per `intervalMs`, with how many happened since the last line
 * (a collector that is down fails every batch: one line per batch would flood the log), and
 * counts every one. `flush()` writes the failures not yet reported (at shutdown).
 */
export class ExportFailureLog {
  readonly #intervalMs: number;
  readonly #log: (fields: Record<string, unknown>, msg: string) => void;
  readonly #count: (reason: ExportFailureReason) => void;
  readonly #now: () => number;
  #lastLine = Number.NEGATIVE_INFINITY;
  #pending = 0;
  #pendingSpans = 0;
  #last: ExportFailure | undefined;

  constructor(opts: {
    intervalMs: number;
    log: (fields: Record<string, unknown>, msg: string) => void;
    count: (reason: ExportFailureReason) => void;
    now?: () => number;
  }) {
    this.#intervalMs = opts.intervalMs;
    this.#log = opts.log;
    this.#count = opts.count;
    this.#now = opts.now ?? Date.now;
  }

  record(f: ExportFailure): void {
    this.#count(f.reason);
    this.#pending++;
    this.#pendingSpans += f.spans;
    this.#last = f;
    if (this.#now() - this.#lastLine >= this.#intervalMs) this.flush();
  }

  flush(): void {
    if (this.#pending === 0 || !this.#last) return;
    const failures = this.#pending;
    this.#log(
      {
        failures,
        spans_dropped: this.#pendingSpans,
        reason: this.#last.reason,
        err: this.#last.message,
        log_interval_s: Math.round(this.#intervalMs / 1000),
      },
      `OTLP trace export failed (${failures} time${failures === 1 ? '' : 's'} since the last such line; last error: ${this.#last.message}); spans are being dropped. Check OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and that the collector is up`,
    );
    this.#lastLine = this.#now();
    this.#pending = 0;
    this.#pendingSpans = 0;
  }
}

/** The server's reporter: a warn line at most every `intervalMs` (default a minute) and the failure metric. */
export function exportFailureReporter(
  logger: { warn(fields: Record<string, unknown>, msg: string): void },
  metrics: { otlpExportFailures: { inc(labels: { reason: string }): void } },
  intervalMs = 60_000,
): ExportFailureLog {
  return new ExportFailureLog({
    intervalMs,
    log: (fields, msg) => logger.warn(fields, msg),
    count: (reason) => metrics.otlpExportFailures.inc({ reason }),
  });
}
