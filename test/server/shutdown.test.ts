import { request } from 'node:http';
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { getJson, rawRequest } from '../helpers/http.js';
import { startTestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

afterAll(() => removeTempDirs());

/** Resolves with the error code of a TCP connection attempt, or 'connected'. */
function tryConnect(url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = connect({ host: u.hostname, port: Number(u.port) });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describe('graceful shutdown', () => {
  it('close() lets an in-flight request finish with 200, then refuses new connections', async () => {
    let started!: () => void;
    const handlerStarted = new Promise<void>((r) => (started = r));
    let handlerFinished = false;
    const slowRoute = async (app: FastifyInstance) => {
      app.get('/test/slow', { config: { access: { authenticated: true } } }, async () => {
        started();
        await new Promise((r) => setTimeout(r, 300));
        handlerFinished = true;
        return { done: true };
      });
    };
    const t = await startTestServer({ plugins: [slowRoute] });
    expect((await getJson(t.url, '/health')).status).toBe(200);

    const inFlight = rawRequest(t.url, 'GET', '/api/v1/test/slow');
    await handlerStarted;
    const closing = t.close();

    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ done: true });

    await closing;
    // close() waited for the handler, not just for the socket
    expect(handlerFinished).toBe(true);
    expect(await tryConnect(t.url)).toBe('ECONNREFUSED');
    await expect(fetch(`${t.url}/health`)).rejects.toThrow();
    expect(await tryConnect(t.server.metricsUrl!)).toBe('ECONNREFUSED');
    // close() is idempotent
    await t.close();
  });

  it('close() while a deploy body is still being uploaded completes it with 201, and the agent survives a restart', async () => {
    const t = await startTestServer();
    const body = Buffer.from(
      `name = "last-one"\ncapabilities = ["x"]\nsystem_prompt = """${'p'.repeat(40 * 1024)}"""\n`,
    );
    const u = new URL(t.url);
    const received = new Promise<void>((r) => t.server.app.server.once('request', () => r()));
    let closing: Promise<void> | undefined;
    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host: u.hostname,
          port: u.port,
          method: 'POST',
          path: '/api/v1/agents',
          agent: false,
          headers: { 'content-type': 'application/toml', 'content-length': body.length },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.write(body.subarray(0, 1000));
      // The server has the headers but not the whole body: close it, wait until it stops
      // accepting connections, then send the rest.
      void received
        .then(() => {
          closing = t.close();
          return waitUntil(async () => (await tryConnect(t.url)) === 'ECONNREFUSED', {
            timeoutMs: 5000,
            what: 'listener closed',
          });
        })
        .then(() => req.end(body.subarray(1000)), reject);
    });
    const res = await response;
    expect(res.status, res.text).toBe(201);
    expect(JSON.parse(res.text)).toMatchObject({ agent: { name: 'last-one', revision: 1 } });
    await closing;

    const again = await startTestServer({ dir: t.dir });
    try {
      const got = await getJson<{ name: string; revision: number; definition: { system_prompt: string } }>(
        again.url,
        '/api/v1/agents/last-one',
      );
      expect(got.status).toBe(200);
      expect(got.json.revision).toBe(1);
      expect(got.json.definition.system_prompt).toHaveLength(40 * 1024);
    } finally {
      await again.close();
    }
  });
});
