/**
 * The request id is the server's own: a client's X-Request-Id is kept beside it as
 * `client_request_id` (log lines, audit rows), never taken as the id, and it is bounded: at most
 * 128 characters of letters, digits, ".", "_", ":" and "-", else the request is refused with 400.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/index.js';
import { startServer, type CaxtonServer } from '../../src/server/index.js';
import { expectErrorEnvelope, http, tomlAgent } from '../helpers/http.js';
import { localAuthUnlessConfigured } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let server: CaxtonServer;
const chunks: string[] = [];
const lines = () =>
  chunks
    .join('')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  const dir = makeTempDir('caxton-reqid-');
  const config = localAuthUnlessConfigured(
    loadServerConfig({
      env: {},
      cwd: dir,
      flags: { port: 0, metricsPort: 0, dataDir: `${dir}/data`, agentsDir: `${dir}/agents` },
    }),
    '',
  );
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  server = await startServer({ config, logger: createLogger('debug', stream) });
});
afterAll(async () => {
  await server.close();
  removeTempDirs();
});

describe('request ids', () => {
  it("a client's X-Request-Id is kept as client_request_id; the request id stays the server's", async () => {
    const res = await http(server.url, 'POST', '/api/v1/agents', {
      body: tomlAgent('ids'),
      contentType: 'application/toml',
      headers: { 'x-request-id': 'client-req-42' },
    });
    expect(res.status).toBe(201);
    const id = res.headers.get('x-request-id')!;
    expect(id).toMatch(UUID);
    const err = await http(server.url, 'GET', '/api/v1/agents/ghost', { headers: { 'x-request-id': 'client-req-43' } });
    expect(expectErrorEnvelope(err, 404, 'agent_not_found').request_id).toMatch(UUID);

    server.audit!.flush();
    const audit = await http<{ records: { request_id: string; client_request_id: string | null; action: string }[] }>(
      server.url,
      'GET',
      '/api/v1/audit?action=agent.deploy',
    );
    const row = audit.json.records.find((r) => r.request_id === id);
    expect(row).toMatchObject({ request_id: id, client_request_id: 'client-req-42' });

    const logged = lines().filter((l) => l.request_id === id);
    expect(logged.length).toBeGreaterThan(0);
    for (const l of logged) expect(l.client_request_id).toBe('client-req-42');
    expect(lines().some((l) => l.request_id === 'client-req-42')).toBe(false);
  });

  it('a request without X-Request-Id has no client_request_id', async () => {
    const res = await http(server.url, 'POST', '/api/v1/agents', {
      body: tomlAgent('ids-2'),
      contentType: 'application/toml',
    });
    expect(res.status).toBe(201);
    server.audit!.flush();
    const audit = await http<{ records: { request_id: string; client_request_id: string | null }[] }>(
      server.url,
      'GET',
      '/api/v1/audit?action=agent.deploy',
    );
    expect(
      audit.json.records.find((r) => r.request_id === res.headers.get('x-request-id'))?.client_request_id,
    ).toBeNull();
  });

  it('an X-Request-Id too long or with other characters is refused with 400, naming the header and the rule', async () => {
    for (const bad of ['x'.repeat(129), 'bad id with spaces', 'id\u00e9', 'a/b', '<script>']) {
      const res = await http(server.url, 'GET', '/api/v1/agents', { headers: { 'x-request-id': bad } });
      const e = expectErrorEnvelope(res, 400, 'invalid_request');
      expect(e.message).toContain('X-Request-Id');
      expect(e.message).toContain('128');
      expect(e.request_id).toMatch(UUID);
    }
    expect(
      (await http(server.url, 'GET', '/api/v1/agents', { headers: { 'x-request-id': 'x'.repeat(128) } })).status,
    ).toBe(200);
  });
});
