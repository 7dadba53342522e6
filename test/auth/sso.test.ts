/**
 * The console's single sign-on routes against a stand-in issuer on 127.0.0.1: the settings the
 * console needs come back as configured (the authorization endpoint is a public URL, not a
 * secret) and never carry the client secret; the code exchange accepts only the exact redirect
 * URI (scheme, host, port and path), so a callback path on another host or port is refused before
 * the issuer is asked.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, type ErrorBody } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

const SECRET_ENV = 'CAXTON_TEST_SSO_ROUTE_SECRET';
const SECRET = 'sso-route-client-secret-5a6b7c';
const VERIFIER = 'v'.repeat(43);

interface Setup {
  srv: TestServer;
  issuer: string;
  exchanges: { redirect_uri: string | null }[];
  close(): Promise<void>;
}

async function setup(extra = ''): Promise<Setup> {
  const exchanges: { redirect_uri: string | null }[] = [];
  const idp: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      exchanges.push({ redirect_uri: new URLSearchParams(body).get('redirect_uri') });
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ access_token: 'issued-token', expires_in: 60 }));
    });
  });
  await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
  process.env[SECRET_ENV] = SECRET;
  const srv = await startTestServer({
    toml: `[auth.jwt]
issuer = "${issuer}"
audience = "caxton-console"
jwks_url = "${issuer}/jwks"
[auth.jwt.sso]
client_id = "caxton-console"
client_secret_env = "${SECRET_ENV}"
token = "access_token"
authorization_endpoint = "${issuer}/authorize"
token_endpoint = "${issuer}/token"
${extra}`,
  });
  return {
    srv,
    issuer,
    exchanges,
    close: async () => {
      await srv.close();
      await new Promise<void>((r) => idp.close(() => r()));
    },
  };
}

const exchange = (s: Setup, redirect_uri: string) =>
  http<ErrorBody & { token: string }>(s.srv.url, 'POST', '/api/v1/auth/sso/token', {
    contentType: 'application/json',
    body: JSON.stringify({ code: 'the-code', code_verifier: VERIFIER, redirect_uri }),
  });

describe('single sign-on routes', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup();
  });
  afterAll(async () => {
    await s.close();
    delete process.env[SECRET_ENV];
    removeTempDirs();
  });

  it('GET /api/v1/auth/sso returns the authorization endpoint as configured, never the client secret', async () => {
    const res = await http(s.srv.url, 'GET', '/api/v1/auth/sso');
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      enabled: true,
      authorization_endpoint: `${s.issuer}/authorize`,
      client_id: 'caxton-console',
      scope: 'openid profile',
      redirect_path: '/ui/auth/callback',
    });
    expect(res.text).not.toContain(SECRET);
  });

  it("accepts this server's own callback URI", async () => {
    const res = await exchange(s, `${s.srv.url}/ui/auth/callback`);
    expect(res.status).toBe(200);
    expect(res.json.token).toBe('issued-token');
    expect(s.exchanges.at(-1)?.redirect_uri).toBe(`${s.srv.url}/ui/auth/callback`);
  });

  it('refuses the callback path on another host, port or scheme, or with a query, before asking the issuer', async () => {
    const port = Number(new URL(s.srv.url).port);
    const before = s.exchanges.length;
    for (const uri of [
      'https://attacker.example.com/ui/auth/callback',
      `http://attacker.example.com:${port}/ui/auth/callback`,
      `http://127.0.0.1:${port + 1}/ui/auth/callback`,
      `https://127.0.0.1:${port}/ui/auth/callback`,
      `${s.srv.url}/ui/auth/callback?next=https://attacker.example.com`,
      `${s.srv.url}/ui/auth/other`,
      'not a url',
    ]) {
      const res = await exchange(s, uri);
      expect(res.status, uri).toBe(400);
      expect(res.json.error.code, uri).toBe('invalid_request');
      expect(res.json.error.message, uri).toContain('redirect_uri');
      expect((res.json.error.details as { field?: string }).field, uri).toBe('redirect_uri');
    }
    expect(s.exchanges.length).toBe(before);
  });
});

describe('single sign-on with [auth.jwt.sso] redirect_uri', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup('redirect_uri = "https://caxton.example.com/ui/auth/callback"\n');
  });
  afterAll(async () => {
    await s.close();
    delete process.env[SECRET_ENV];
    removeTempDirs();
  });

  it('accepts exactly the configured URI and refuses any other, even the address the request came to', async () => {
    expect((await exchange(s, 'https://caxton.example.com/ui/auth/callback')).status).toBe(200);
    expect((await exchange(s, 'https://caxton.example.com:8443/ui/auth/callback')).status).toBe(400);
    expect((await exchange(s, 'https://caxton.example.org/ui/auth/callback')).status).toBe(400);
    const own = await exchange(s, `${s.srv.url}/ui/auth/callback`);
    expect(own.status).toBe(400);
    expect(own.json.error.message).toContain('https://caxton.example.com/ui/auth/callback');
  });
});
