/**
 * Spans of Caxton's own recorder leave in the OTLP wire format the OpenTelemetry exporter writes:
 * a real HTTP collector on 127.0.0.1 receives the JSON export request and the span's ids, parent,
 * kind, times, attributes, status and resource are checked field by field.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { endWithError, SpanKind, startSpan } from '../../src/observability/index.js';
import { setupTracing } from '../../src/observability/tracing.js';

const PARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

let collector: Server | undefined;
afterAll(() => collector?.close());

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: Record<string, unknown> }[];
  status: { code: number; message?: string };
}

describe('OTLP export of recorded spans', () => {
  it('writes the OTLP/HTTP JSON request with the span as recorded', async () => {
    const bodies: unknown[] = [];
    collector = createServer((req: IncomingMessage, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        bodies.push({ url: req.url, type: req.headers['content-type'], json: JSON.parse(text) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => collector!.listen(0, '127.0.0.1', () => r()));
    const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    const before = Date.now();
    try {
      const tracing = await setupTracing({ version: '9.9.9', env: process.env });
      const span = startSpan(tracing.tracer, 'llm.chat', PARENT, () => ({ 'caxton.turn': 2 }), SpanKind.CLIENT);
      span.setAttributes({ 'gen_ai.request.model': 'm', 'caxton.ok': true });
      endWithError(span, Object.assign(new Error('down'), { code: 'provider_error' }));
      await tracing.flush();
      await tracing.shutdown();
    } finally {
      if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
    }
    expect(bodies).toHaveLength(1);
    const { url, type, json } = bodies[0] as {
      url: string;
      type: string;
      json: {
        resourceSpans: {
          resource: { attributes: { key: string; value: { stringValue: string } }[] };
          scopeSpans: { scope: { name: string; version: string }; spans: OtlpSpan[] }[];
        }[];
      };
    };
    expect(url).toBe('/v1/traces');
    expect(type).toBe('application/json');
    const [rs] = json.resourceSpans;
    expect(rs!.resource.attributes).toEqual(
      expect.arrayContaining([
        { key: 'service.name', value: { stringValue: 'caxton' } },
        { key: 'service.version', value: { stringValue: '9.9.9' } },
      ]),
    );
    expect(rs!.scopeSpans[0]!.scope).toMatchObject({ name: 'caxton', version: '9.9.9' });
    const [s] = rs!.scopeSpans[0]!.spans;
    expect(s).toMatchObject({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      parentSpanId: 'b7ad6b7169203331',
      name: 'llm.chat',
      kind: 3, // OTLP's SPAN_KIND_CLIENT
      status: { code: 2, message: 'down' },
    });
    expect(s!.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(s!.attributes).toEqual([
      { key: 'caxton.turn', value: { intValue: 2 } },
      { key: 'gen_ai.request.model', value: { stringValue: 'm' } },
      { key: 'caxton.ok', value: { boolValue: true } },
      { key: 'caxton.error.code', value: { stringValue: 'provider_error' } },
    ]);
    const start = Number(BigInt(s!.startTimeUnixNano) / 1_000_000n);
    const end = Number(BigInt(s!.endTimeUnixNano) / 1_000_000n);
    expect(start).toBeGreaterThanOrEqual(before - 1);
    expect(end).toBeGreaterThanOrEqual(start);
    expect(end).toBeLessThanOrEqual(Date.now() + 1);
  });
});
