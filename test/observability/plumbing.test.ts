import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/config/index.js';
import { localAuthUnlessConfigured } from '../helpers/server.js';
import { createLogger } from '../../src/observability/index.js';
import { startServer } from '../../src/server/index.js';
import { postAgent, tomlAgent } from '../helpers/http.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

afterAll(() => removeTempDirs());

function memoryLog(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

function config(dir: string) {
  return localAuthUnlessConfigured(
    loadServerConfig({
      env: {},
      cwd: dir,
      flags: { port: 0, metricsPort: 0, dataDir: `${dir}/data`, agentsDir: `${dir}/agents` },
    }),
    '',
  );
}

describe('logging', () => {
  it('writes JSON lines, and every line logged for a request carries its request id', async () => {
    const dir = makeTempDir('caxton-obs-');
    const log = memoryLog();
    const server = await startServer({ config: config(dir), logger: createLogger('debug', log.stream) });
    let serverId = '';
    try {
      const ok = await postAgent(server.url, tomlAgent('logged'), 'application/toml');
      expect(ok.status).toBe(201);
      const bad = await fetch(`${server.url}/api/v1/agents`, {
        method: 'POST',
        headers: { 'content-type': 'application/toml', 'x-request-id': 'req-from-client-1' },
        body: 'name = "x',
      });
      expect(bad.status).toBe(422);
      serverId = bad.headers.get('x-request-id')!;
      expect(serverId).not.toBe('req-from-client-1');
    } finally {
      await server.close();
    }
    const lines = log.lines();
    const deployed = lines.find((l) => l.msg === 'agent deployed');
    expect(deployed?.request_id).toEqual(expect.any(String));
    // Logged under the server's request id, with the client's beside it.
    const rejected = lines.filter((l) => l.request_id === serverId);
    expect(rejected.map((l) => l.msg)).toContain('request rejected');
    for (const l of rejected) expect(l.client_request_id).toBe('req-from-client-1');
    // Every line about a request (completion, rejection, deploy) names its request.
    for (const l of lines.filter((x) =>
      ['request completed', 'request rejected', 'agent deployed'].includes(String(x.msg)),
    ))
      expect(l.request_id).toBeTruthy();
    expect(lines.every((l) => typeof l.level === 'string' && typeof l.time === 'string')).toBe(true);
  });
});

describe('tracing', () => {
  let collector: Server | undefined;
  afterAll(() => collector?.close());

  it('exports spans over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set', async () => {
    const received: { url: string; type: string; bytes: number }[] = [];
    collector = createServer((req: IncomingMessage, res) => {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        received.push({ url: req.url ?? '', type: String(req.headers['content-type']), bytes });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => collector!.listen(0, '127.0.0.1', () => r()));
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
    const dir = makeTempDir('caxton-otel-');
    try {
      const server = await startServer({ config: config(dir), logger: createLogger('silent') });
      expect((await fetch(`${server.url}/api/v1/agents`)).status).toBe(200);
      await server.close(); // flushes the batch processor
    } finally {
      if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
    }
    expect(received.length).toBeGreaterThan(0);
    expect(received[0]!.url).toBe('/v1/traces');
    expect(received[0]!.bytes).toBeGreaterThan(0);
  });
});
