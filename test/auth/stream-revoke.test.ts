/**
 * An event stream ends with its credential: a stream opened with an API key gets a last `error`
 * event (the API's error shape) and ends when the key is revoked, rotated or expires; one opened
 * with a JWT ends when the token expires.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

interface SseEvent {
  event?: string;
  data: string;
}

/** An open event stream: the events so far, and a promise that settles when the server ends it. */
interface OpenStream {
  events: SseEvent[];
  ended: Promise<void>;
  abort(): void;
}

async function openStream(url: string, key: string): Promise<OpenStream> {
  const ac = new AbortController();
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' },
    signal: ac.signal,
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  const events: SseEvent[] = [];
  const ended = (async () => {
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buf += value;
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev: SseEvent = { data: '' };
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) ev.event = line.slice(7);
          else if (line.startsWith('data: ')) ev.data += line.slice(6);
        }
        if (ev.event !== undefined || ev.data !== '') events.push(ev);
      }
    }
  })();
  return { events, ended, abort: () => ac.abort() };
}

/** Settles with 'ended' when `p` does within `ms`, 'open' otherwise. */
const within = (p: Promise<void>, ms: number) =>
  Promise.race([p.then(() => 'ended' as const), new Promise<'open'>((r) => setTimeout(() => r('open'), ms).unref())]);

describe('event streams end when their API key stops being valid', () => {
  let srv: TestServer;
  let admin: string;
  const opened: OpenStream[] = [];

  beforeAll(async () => {
    srv = await startTestServer({ toml: '[auth]\nenabled = true\n' });
    admin = readFileSync(join(srv.dataDir, 'admin.key'), 'utf8').trim();
  });
  afterAll(async () => {
    for (const s of opened) s.abort();
    await srv?.close();
  });

  const createKey = async (name: string, extra: Record<string, unknown> = {}) => {
    const r = await http<{ secret: string }>(srv.url, 'POST', '/api/v1/keys', {
      body: JSON.stringify({ name, role: 'viewer', ...extra }),
      contentType: 'application/json',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(r.status, r.text).toBe(201);
    return r.json.secret;
  };
  const follow = async (key: string) => {
    const s = await openStream(`${srv.url}/api/v1/events?follow`, key);
    opened.push(s);
    // Still open a moment later: nothing but the credential ends it.
    expect(await within(s.ended, 300)).toBe('open');
    return s;
  };
  const lastError = (s: OpenStream) => {
    const last = s.events.at(-1);
    expect(last?.event).toBe('error');
    return JSON.parse(last!.data) as {
      error: { code: string; message: string; details: { reason: string }; request_id: string };
    };
  };

  it('revoking the key ends its open stream with an error event', async () => {
    const key = await createKey('stream-revoked');
    const s = await follow(key);
    const other = await follow(admin);
    const r = await http(srv.url, 'DELETE', '/api/v1/keys/stream-revoked', {
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(r.status, r.text).toBeLessThan(300);
    expect(await within(s.ended, 2000)).toBe('ended');
    const e = lastError(s);
    expect(e.error.code).toBe('unauthenticated');
    expect(e.error.details.reason).toBe('key_revoked');
    expect(e.error.message).toContain('stream-revoked');
    expect(e.error.message).toContain('revoked');
    expect(e.error.request_id).toBeTruthy();
    // A stream of another key goes on.
    expect(await within(other.ended, 300)).toBe('open');
  });

  it('rotating the key ends the streams opened with the old secret', async () => {
    const key = await createKey('stream-rotated');
    const s = await follow(key);
    const r = await http<{ secret: string }>(srv.url, 'POST', '/api/v1/keys/stream-rotated/rotate', {
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(r.status, r.text).toBeLessThan(300);
    expect(await within(s.ended, 2000)).toBe('ended');
    expect(lastError(s).error.details.reason).toBe('key_rotated');
    // The new secret opens a stream that stays open.
    const again = await follow(r.json.secret);
    expect(await within(again.ended, 300)).toBe('open');
  });

  it('a stream outliving its key is ended when the key expires, without another request', async () => {
    const key = await createKey('stream-expiring', { expires: '2s' });
    const s = await follow(key);
    expect(await within(s.ended, 4000)).toBe('ended');
    const e = lastError(s);
    expect(e.error.code).toBe('unauthenticated');
    expect(e.error.details.reason).toBe('key_expired');
    expect(e.error.message).toContain('expired');
  });
});

describe('event streams end when their bearer token expires', () => {
  const ISSUER = 'https://issuer.test/realms/streams';
  let jwks: Server;
  let srv: TestServer;
  let token: string;
  const opened: OpenStream[] = [];

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`;
    srv = await startTestServer({
      toml: `[auth]\nenabled = true\n\n[auth.jwt]\nissuer = "${ISSUER}"\naudience = "caxton"\njwks_url = "${url}"\nrole_claim = "groups"\n\n[auth.jwt.roles]\n"viewers" = "viewer"\n`,
    });
    token = await new SignJWT({ groups: ['viewers'] })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience('caxton')
      .setSubject('dana')
      .setIssuedAt()
      .setExpirationTime('3s')
      .sign(pair.privateKey);
  });
  afterAll(async () => {
    for (const s of opened) s.abort();
    await srv?.close();
    jwks?.close();
  });

  it('a stream opened with a JWT ends with an error event when the token expires', async () => {
    const s = await openStream(`${srv.url}/api/v1/events?follow`, token);
    opened.push(s);
    expect(await within(s.ended, 5000)).toBe('ended');
    const last = s.events.at(-1);
    expect(last?.event).toBe('error');
    const e = JSON.parse(last!.data) as { error: { code: string; details: { reason: string } } };
    expect(e.error.code).toBe('unauthenticated');
    expect(e.error.details.reason).toBe('token_expired');
  });
});
