/**
 * A long request ends with its credential, as an event stream does (stream-revoke.test.ts): an MCP
 * `tools/call ask_<agent>`, a `POST /messages?wait=` and an invocation under way when their API key
 * is revoked are answered with the refusal a new request with that key gets, at once, and the
 * agent's work for the call stops (its model call is abandoned). The model is a stand-in that
 * holds its answer until the test lets it go, so "under way" is known, not guessed.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { openaiCompletion, parseBody, refuseInvalid, sendJson, warmUp } from '../helpers/llm-standin.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import { CaxtonError } from '../../src/shared/errors.js';

interface Held {
  res: ServerResponse;
  /** Settles when the server gives up the model call (its connection closes unanswered). */
  abandoned: Promise<void>;
}

let model: Server;
let srv: TestServer;
let admin: string;
const held: Held[] = [];
let arrived: ((h: Held) => void) | undefined;

/** The next model call to arrive at the stand-in (held there, unanswered). */
const nextModelCall = () => new Promise<Held>((resolve) => (arrived = resolve));

function standIn(req: IncomingMessage, res: ServerResponse): void {
  let raw = '';
  req.setEncoding('utf8').on('data', (c: string) => (raw += c));
  req.on('end', () => {
    if (refuseInvalid(req.method, req.url ?? '', parseBody(raw), res)) return;
    const h: Held = {
      res,
      abandoned: new Promise((resolve) => res.once('close', () => resolve())),
    };
    held.push(h);
    arrived?.(h);
  });
}

beforeAll(async () => {
  warmUp();
  model = createServer(standIn);
  await new Promise<void>((r) => model.listen(0, '127.0.0.1', r));
  const port = (model.address() as AddressInfo).port;
  srv = await startTestServer({
    toml: `[auth]\nenabled = true\n\n[llm]\ndefault_provider = "held"\n\n[llm.providers.held]\ntype = "openai"\nbase_url = "http://127.0.0.1:${port}/v1"\nmodel = "gpt-test"\nmax_retries = 0\n`,
    agentFiles: { 'slow.toml': 'name = "slow"\nsystem_prompt = "You are slow."\n' },
  });
  admin = adminKeyOf(srv.dataDir);
}, 30_000);

afterAll(async () => {
  // Answer whatever is still held (a message's delivery goes on: the message was accepted).
  for (const h of held)
    if (!h.res.writableEnded && !h.res.destroyed)
      sendJson(h.res, openaiCompletion({ content: 'late', model: 'gpt-test' }));
  await srv?.close();
  await new Promise<void>((r) => model?.close(() => r()));
  removeTempDirs();
});

const revoke = async (name: string) => {
  const r = await http(srv.url, 'DELETE', `/api/v1/keys/${name}`, { headers: bearer(admin) });
  expect(r.status, r.text).toBeLessThan(300);
};

describe('a long request ends when its API key is revoked', () => {
  it('an MCP tools/call ask_<agent> answers the refusal, and the agent stops', async () => {
    const key = await createKey(srv.url, admin, 'mcp-revoked', { role: 'operator', agents: ['slow'] });
    const client = new Client({ name: 'revoke-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), { requestInit: { headers: bearer(key) } }),
    );
    try {
      const call = nextModelCall();
      const answer = client.callTool({ name: 'ask_slow', arguments: { request: 'take your time' } }).then(
        (r) => ({ result: r }),
        (e: unknown) => ({ error: e }),
      );
      const h = await call;
      await revoke('mcp-revoked');
      const got = await answer;
      expect('error' in got, JSON.stringify(got)).toBe(true);
      const e = (got as { error: unknown }).error;
      expect(e).toBeInstanceOf(McpError);
      expect((e as McpError).code).toBe(-32001);
      expect((e as McpError).message).toContain('API key "mcp-revoked" was revoked');
      await h.abandoned;
      // A new call with the key is refused too.
      await expect(client.callTool({ name: 'ask_slow', arguments: { request: 'again' } })).rejects.toThrow();
    } finally {
      await client.close().catch(() => {});
    }
  }, 30_000);

  it('POST /messages?wait= answers 401 key_revoked, as a new request with the key would', async () => {
    const key = await createKey(srv.url, admin, 'wait-revoked', { role: 'operator', agents: ['slow'] });
    const call = nextModelCall();
    const answer = http<{ error: { code: string; message: string; details: { reason: string } } }>(
      srv.url,
      'POST',
      '/api/v1/messages?wait=60',
      {
        body: JSON.stringify({ performative: 'request', receiver: 'slow', content: 'take your time' }),
        contentType: 'application/json',
        headers: bearer(key),
      },
    );
    await call;
    await revoke('wait-revoked');
    const r = await answer;
    expect(r.status, r.text).toBe(401);
    expect(r.json.error.code).toBe('unauthenticated');
    expect(r.json.error.details.reason).toBe('key_revoked');
    expect(r.json.error.message).toContain('wait-revoked');
    const again = await http(srv.url, 'GET', '/api/v1/messages', { headers: bearer(key) });
    expect(again.status).toBe(401);
    // The message was stored before the revoke: it stands, and its delivery goes on (only the wait ended).
    const sent = await http<{ total: number }>(srv.url, 'GET', '/api/v1/messages?sender=key:wait-revoked', {
      headers: bearer(admin),
    });
    expect(sent.json.total, sent.text).toBe(1);
  }, 30_000);

  it('a message whose key is revoked before it is stored is refused, and nothing is stored', async () => {
    const key = await createKey(srv.url, admin, 'send-revoked', { role: 'operator', agents: ['slow'] });
    const body = JSON.stringify({ performative: 'inform', receiver: 'slow', content: 'sent as its key ends' });
    const u = new URL(srv.url);
    const req = request({
      host: u.hostname,
      port: u.port,
      method: 'POST',
      path: '/api/v1/messages',
      headers: { ...bearer(key), 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    const closed = new Promise<void>((resolve) => req.once('close', () => resolve()));
    const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
    });
    // Half the body: the request is authenticated (the key's first use is recorded), its body not yet read.
    req.write(body.slice(0, 20));
    await waitUntil(
      async () =>
        (
          await http<{ last_used_at: string | null }>(srv.url, 'GET', '/api/v1/keys/send-revoked', {
            headers: bearer(admin),
          })
        ).json.last_used_at !== null,
      { what: 'the request to be authenticated' },
    );
    await revoke('send-revoked');
    const r = await answer;
    expect(r.status, r.text).toBe(401);
    expect(r.text).toContain('key_revoked');
    req.end(body.slice(20));
    await closed;
    const sent = await http<{ total: number }>(srv.url, 'GET', '/api/v1/messages?sender=key:send-revoked', {
      headers: bearer(admin),
    });
    expect(sent.json.total, sent.text).toBe(0);

    // A store that answers later (PostgreSQL) may see the revoke while the message is being
    // stored: the bus checks the credential inside the step, before it commits, and refuses.
    const ended = new AbortController();
    ended.abort(new CaxtonError('unauthenticated', 'API key "x" was revoked', { reason: 'key_revoked' }));
    await expect(
      srv.server.bus.submit(
        { performative: 'inform', receiver: 'slow', content: 'refused in the step', id: 'revoked-in-step' },
        { credentialEnded: ended.signal },
      ),
    ).rejects.toMatchObject({ code: 'unauthenticated', details: { reason: 'key_revoked' } });
    expect(await srv.server.bus.reads.getMessage('revoked-in-step')).toBeUndefined();
  }, 30_000);

  it('an invocation answers 401 key_revoked, and its execution stops', async () => {
    const key = await createKey(srv.url, admin, 'invoke-revoked', { role: 'operator', agents: ['slow'] });
    const call = nextModelCall();
    const answer = http<{ error: { code: string; details: { reason: string } } }>(
      srv.url,
      'POST',
      '/api/v1/agents/slow/invoke',
      { body: JSON.stringify({ request: 'take your time' }), contentType: 'application/json', headers: bearer(key) },
    );
    const h = await call;
    await revoke('invoke-revoked');
    const r = await answer;
    expect(r.status, r.text).toBe(401);
    expect(r.json.error.details.reason).toBe('key_revoked');
    await h.abandoned;
  }, 30_000);

  it('a key rotating or revoking itself is answered (only its other requests end)', async () => {
    const key = await createKey(srv.url, admin, 'self-ending', { role: 'admin' });
    const rotated = await http<{ secret: string }>(srv.url, 'POST', '/api/v1/keys/self-ending/rotate', {
      headers: bearer(key),
    });
    expect(rotated.status, rotated.text).toBe(200);
    const revoked = await http(srv.url, 'DELETE', '/api/v1/keys/self-ending', { headers: bearer(rotated.json.secret) });
    expect(revoked.status, revoked.text).toBe(200);
    expect((await http(srv.url, 'GET', '/api/v1/keys', { headers: bearer(rotated.json.secret) })).status).toBe(401);
  });

  it('a request of another key goes on and is answered', async () => {
    await createKey(srv.url, admin, 'spare-other', { role: 'viewer' });
    const call = nextModelCall();
    const answer = http<{ content: string }>(srv.url, 'POST', '/api/v1/agents/slow/invoke', {
      body: JSON.stringify({ request: 'take your time' }),
      contentType: 'application/json',
      headers: bearer(admin),
    });
    const h = await call;
    await revoke('spare-other');
    sendJson(h.res, openaiCompletion({ content: 'done in time', model: 'gpt-test' }));
    const r = await answer;
    expect(r.status, r.text).toBe(200);
    expect(r.json.content).toBe('done in time');
  }, 30_000);
});
