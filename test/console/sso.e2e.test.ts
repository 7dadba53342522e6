/**
 * Single sign-on in the web console (src/auth/sso.ts, console/src/sso.ts) against a real OpenID
 * Connect provider: panva's oidc-provider, the certified Node implementation, started by the test
 * on 127.0.0.1 with its development login pages. The browser goes to the provider, signs in, comes
 * back with a code Caxton exchanges server to server (confidential client, PKCE), and the console
 * is signed in with the provider's token as its bearer; the role comes from the token's claim.
 * A forged callback, a refused code and a role the token does not grant are each refused clearly.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { hasSystem } from '../helpers/system.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { consoleTimeouts, CONFIG, expectAccessible, launchBrowser, openPage, REPLIES } from './harness.js';

consoleTimeouts();

const CLIENT_ID = 'caxton-console';
const SECRET_ENV = 'CAXTON_TEST_SSO_CLIENT_SECRET';
const SECRET = 'console-client-secret-0d1e2f3a';

describe.skipIf(!hasSystem('chromium'))('web console single sign-on (chromium, oidc-provider)', () => {
  let idp: Server;
  let issuer: string;
  let srv: TestServer;
  let browser: Browser;

  beforeAll(async () => {
    // The provider needs Caxton's redirect URI and Caxton needs the provider's URL: the provider's
    // port is taken first, and the provider itself is built once Caxton's URL is known.
    const route: { handler?: (req: IncomingMessage, res: ServerResponse) => void } = {};
    idp = createServer((req, res) => (route.handler ? route.handler(req, res) : res.writeHead(503).end()));
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;

    process.env[SECRET_ENV] = SECRET;
    const dir = makeTempDir('caxton-sso-');
    writeFileSync(join(dir, 'replies.toml'), REPLIES);
    srv = await startTestServer({
      dir,
      toml: `${CONFIG}
[auth.jwt]
issuer = "${issuer}"
audience = "${CLIENT_ID}"
jwks_url = "${issuer}/jwks"
role_claim = "caxton_role"
[auth.jwt.sso]
client_id = "${CLIENT_ID}"
client_secret_env = "${SECRET_ENV}"
scopes = ["openid", "caxton"]
token = "id_token"
`,
    });

    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: CLIENT_ID,
          client_secret: SECRET,
          redirect_uris: [`${srv.url}/ui/auth/callback`],
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      jwks: { keys: [jwk] },
      scopes: ['openid', 'caxton'],
      claims: { openid: ['sub'], caxton: ['caxton_role', 'preferred_username'] },
      // The id token carries the claims (Caxton reads the role from the token it is given).
      conformIdTokenClaims: false,
      features: { devInteractions: { enabled: true } },
      ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
      findAccount: (_ctx: unknown, id: string) => ({
        accountId: id,
        claims: () => ({
          sub: id,
          preferred_username: id,
          caxton_role: id.startsWith('nobody') ? 'not-a-role' : 'operator',
        }),
      }),
    } as ConstructorParameters<typeof Provider>[1]);
    route.handler = provider.callback();
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await srv?.close();
    await new Promise((r) => idp?.close(r));
    delete process.env[SECRET_ENV];
    removeTempDirs();
  });

  /** From the console's sign-in page through the provider's login and consent pages. */
  async function signInThroughProvider(page: Page, login: string): Promise<void> {
    await page.getByRole('button', { name: 'Sign in with single sign-on' }).click();
    await page.waitForURL((u) => u.origin === issuer);
    await page.locator('input[name="login"]').fill(login);
    await page.locator('input[name="password"]').fill('any password');
    await page.getByRole('button', { name: 'Sign-in' }).click();
    await page.getByRole('button', { name: 'Continue' }).click();
  }

  it('the server tells the console where to sign in; a server without [auth.jwt.sso] says it is off', async () => {
    const r = await http<{ enabled: boolean; authorization_endpoint: string; client_id: string; scope: string }>(
      srv.url,
      'GET',
      '/api/v1/auth/sso',
    );
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      enabled: true,
      client_id: CLIENT_ID,
      scope: 'openid caxton',
      redirect_path: '/ui/auth/callback',
    });
    expect(r.json.authorization_endpoint.startsWith(`${issuer}/`)).toBe(true);
    expect(r.text).not.toContain(SECRET);
    const plain = await startTestServer({ toml: '[auth]\nenabled = true\n' });
    try {
      expect((await http(plain.url, 'GET', '/api/v1/auth/sso')).json).toEqual({ enabled: false });
      const token = await http<{ error: { code: string } }>(plain.url, 'POST', '/api/v1/auth/sso/token', {
        body: JSON.stringify({
          code: 'x',
          code_verifier: 'v'.repeat(43),
          redirect_uri: `${plain.url}/ui/auth/callback`,
        }),
        contentType: 'application/json',
      });
      expect(token.status).toBe(404);
    } finally {
      await plain.close();
    }
  });

  it('signs in through the provider and lands on the page asked for, with the role from the token and no code left in the URL', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await page.goto(`${srv.url}/ui/agents`);
      await page.getByRole('heading', { name: 'Sign in to Caxton' }).waitFor();
      await expectAccessible(page, 'sign-in with single sign-on');
      await signInThroughProvider(page, 'ops-user');
      await page.getByTestId('principal').waitFor();
      expect(await page.getByTestId('principal').textContent()).toContain('ops-user');
      const url = new URL(page.url());
      expect(url.pathname).toBe('/ui/agents');
      expect(url.search).toBe('');
      // The token is the bearer of every call: whoami answers for the provider's user, as an operator.
      const who = (await page.evaluate(
        `fetch('/api/v1/whoami', { headers: { authorization: 'Bearer ' + sessionStorage.getItem('caxton.credential') } }).then((r) => r.json())`,
      )) as {
        id: string;
        role: string;
      };
      expect(who).toMatchObject({ id: 'oidc:ops-user', role: 'operator' });
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('a user whose token maps to no role is refused with the reason, and stays signed out', async () => {
    const { page, close } = await openPage(browser);
    try {
      await page.goto(`${srv.url}/ui`);
      await signInThroughProvider(page, 'nobody-special');
      const notice = page.locator('.notice');
      await notice.waitFor();
      expect(await notice.textContent()).toMatch(/Single sign-on failed: .*caxton_role/);
      expect(await page.evaluate(`sessionStorage.getItem('caxton.credential')`)).toBeNull();
    } finally {
      await close();
    }
  });

  it('a callback this tab did not start is refused, and a code the provider does not know is a 400 naming it', async () => {
    const { page, close } = await openPage(browser);
    try {
      await page.goto(`${srv.url}/ui/auth/callback?code=stolen&state=forged`);
      const notice = page.locator('.notice');
      await notice.waitFor();
      expect(await notice.textContent()).toContain('this sign-in was not started from this tab');
      expect(new URL(page.url()).search).toBe('');
    } finally {
      await close();
    }
    const r = await http<{ error: { code: string; message: string; details: { field: string } } }>(
      srv.url,
      'POST',
      '/api/v1/auth/sso/token',
      {
        body: JSON.stringify({
          code: 'not-a-real-code',
          code_verifier: 'v'.repeat(43),
          redirect_uri: `${srv.url}/ui/auth/callback`,
        }),
        contentType: 'application/json',
      },
    );
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ code: 'invalid_request', details: { field: 'code' } });
    expect(r.json.error.message).toContain('the identity provider refused the sign-in code (invalid_grant)');
    const bad = await http<{ error: { code: string } }>(srv.url, 'POST', '/api/v1/auth/sso/token', {
      body: JSON.stringify({ code: 'x', code_verifier: 'short', redirect_uri: 'https://evil.example/steal' }),
      contentType: 'application/json',
    });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('code_verifier');
  });
});
