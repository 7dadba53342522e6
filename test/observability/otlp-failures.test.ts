/**
 * OTLP trace export failures are never silent. The real OTLP/HTTP exporter sends
 * to a real local HTTP server answering 500 or 404, and to a closed port; each failure is counted
 * in caxton_otlp_export_failures_total{reason} and logged at most once per interval, with the
 * count of failures since the last line (the rest is written at shutdown).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, exportFailureReporter, Metrics, setupTracing } from '../../src/observability/index.js';
import { freePort } from '../mcp/helpers.js';

const ENV = 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT';
const servers: Server[] = [];
const saved = process.env[ENV];

afterEach(async () => {
  if (saved === undefined) delete process.env[ENV];
  else process.env[ENV] = saved;
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

async function collector(status: number): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  const srv = createServer((req, res) => {
    hits++;
    req.resume();
    req.on('end', () => res.writeHead(status, { 'content-type': 'text/plain' }).end(`collector says ${status}`));
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/v1/traces`, hits: () => hits };
}

/** Exports `batches` batches of one span each to `url`, then shuts down; the lines logged and the metric's text. */
async function exportTo(url: string, batches: number): Promise<{ lines: Record<string, unknown>[]; metric: string }> {
  process.env[ENV] = url;
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('info', {
    write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>),
  });
  const metrics = new Metrics({ defaultMetrics: false });
  // An hour between lines: every failure after the first is only counted until the shutdown's line.
  const reporter = exportFailureReporter(logger, metrics, 3_600_000);
  const tracing = await setupTracing({ version: 'test', onExportFailure: (f) => reporter.record(f) });
  expect(tracing.exporting).toBe(true);
  for (let i = 0; i < batches; i++) {
    tracing.tracer.startSpan(`work ${i}`).end();
    // forceFlush rejects with the export's error: the caller of a flush hears of it, the batch processor's timer does not.
    await tracing.flush().catch(() => {});
  }
  await tracing.shutdown().catch(() => {});
  reporter.flush();
  const metric = (await metrics.registry.metrics())
    .split('\n')
    .filter((l) => l.startsWith('caxton_otlp_export_failures_total'))
    .join('\n');
  return { lines: lines.filter((l) => String(l.msg).startsWith('OTLP trace export failed')), metric };
}

describe('OTLP export failures', () => {
  it('a collector answering 500: logged once per interval with a count, counted per failure', async () => {
    const c = await collector(500);
    const { lines, metric } = await exportTo(c.url, 3);
    expect(c.hits()).toBeGreaterThanOrEqual(3);
    expect(metric).toBe('caxton_otlp_export_failures_total{reason="http_5xx"} 3');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 'warn', failures: 1, reason: 'http_5xx' });
    expect(lines[1]).toMatchObject({ level: 'warn', failures: 2, reason: 'http_5xx' });
    expect(String(lines[0]!.msg)).toContain('OTEL_EXPORTER_OTLP');
  });

  it('a wrong URL (404) is counted as http_4xx and logged', async () => {
    const c = await collector(404);
    const { lines, metric } = await exportTo(c.url, 1);
    expect(metric).toBe('caxton_otlp_export_failures_total{reason="http_4xx"} 1');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ failures: 1, spans_dropped: 1, reason: 'http_4xx' });
  });

  it('a closed port is counted as a connection failure and logged', async () => {
    const port = await freePort();
    const { lines, metric } = await exportTo(`http://127.0.0.1:${port}/v1/traces`, 1);
    expect(metric).toBe('caxton_otlp_export_failures_total{reason="connection"} 1');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', failures: 1 });
  });
});
