/**
 * Signing in to the web console in a real browser: the same API keys as the API, the principal
 * and its permissions shown, navigation limited to what the role may use, a wrong key and a
 * revoked one refused, and no sign-in at all on loopback with authentication off.
 */
import { exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasSystem } from '../helpers/system.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { http } from '../helpers/http.js';
import { bearer } from '../helpers/keys.js';
import {
  consoleTimeouts,
  expectAccessible,
  expectNoSideScroll,
  keyId,
  launchBrowser,
  openPage,
  screenshot,
  signIn,
  startConsoleServer,
  WIDTHS,
  type ConsoleServer,
} from './harness.js';

consoleTimeouts();

describe.skipIf(!hasSystem('chromium'))('web console sign-in (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  beforeAll(async () => {
    [cs, browser] = await Promise.all([startConsoleServer(), launchBrowser()]);
  });
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    removeTempDirs();
  });

  it("asks for a key, refuses a wrong one with the server's message, and signs in with a real one", async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await page.goto(`${cs.url}/ui/agents`);
      await page.getByRole('heading', { name: 'Sign in to Caxton' }).waitFor();
      await expectAccessible(page, 'sign-in');
      await page.getByLabel('API key or bearer token').fill('cxk_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB');
      await page.getByRole('button', { name: 'Sign in' }).click();
      const refused = page.locator('#credential-error');
      await refused.waitFor();
      expect(await refused.textContent()).toContain('The server refused this key');
      expect(await page.getByLabel('API key or bearer token').getAttribute('aria-invalid')).toBe('true');

      await page.getByLabel('API key or bearer token').fill(cs.admin);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByTestId('principal').waitFor();
      expect(await page.getByTestId('principal').textContent()).toBe('key:admin');
      // The URL asked for is the page shown once signed in; the key is in sessionStorage only, never the URL.
      await page.getByRole('heading', { name: 'Agents', level: 1 }).waitFor();
      expect(page.url()).toBe(`${cs.url}/ui/agents`);
      expect(page.url()).not.toContain(cs.admin);
      expect(await page.evaluate(`sessionStorage.getItem('caxton.credential')`)).toBe(cs.admin);
      expect(await page.evaluate(`localStorage.length`)).toBe(0);
      const perms = await page.getByTestId('permissions').locator('li').allTextContents();
      expect(perms).toContain('keys:manage');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('shows only the pages a viewer may use, and says which permission is missing when one is opened anyway', async () => {
    const invoker = await cs.keyFor('invoker');
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, invoker, '/ui/');
      const nav = page.getByRole('navigation', { name: 'Main' });
      const links = await nav.getByRole('link').allTextContents();
      expect(links).toContain('Agents');
      expect(links).not.toContain('Overview'); // observe:read is not an invoker's
      const alert = page.getByRole('alert');
      await alert.waitFor();
      expect(await alert.textContent()).toContain('Your key lacks the permission observe:read');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('a key revoked after sign-in is refused when the page is opened again, and forgotten', async () => {
    const key = await cs.keyFor('operator');
    const { page, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, key, '/ui/agents');
      // Everything the page asks for is answered before the key goes (else that call's 401 signs out first).
      await page.getByTestId('agent-count').getByText('of').waitFor();
      await page.getByText('Directory: connected').waitFor();
      const del = await http(cs.url, 'DELETE', `/api/v1/keys/${keyId(key)}`, { headers: bearer(cs.admin) });
      expect(del.status, del.text).toBe(200);
      await page.reload();
      await page.getByRole('heading', { name: 'Sign in to Caxton' }).waitFor();
      expect(await page.getByRole('status').first().textContent()).toContain('Your stored key was refused');
      expect(await page.evaluate(`sessionStorage.getItem('caxton.credential')`)).toBeNull();
    } finally {
      await close();
    }
  });

  for (const width of WIDTHS) {
    it(`the sign-in page at ${width} px`, async () => {
      const { page, close } = await openPage(browser, width);
      try {
        await page.goto(`${cs.url}/ui`);
        await page.getByRole('heading', { name: 'Sign in to Caxton' }).waitFor();
        await expectAccessible(page, `sign-in at ${width} px`);
        await expectNoSideScroll(page);
        await screenshot(page, 'sign-in');
      } finally {
        await close();
      }
    });
  }
});

describe.skipIf(!hasSystem('chromium'))('web console with authentication off (loopback)', () => {
  let srv: TestServer;
  let browser: Browser;
  beforeAll(async () => {
    [srv, browser] = await Promise.all([startTestServer(), launchBrowser()]);
  });
  afterAll(async () => {
    await browser?.close();
    await srv?.close();
  });

  it('needs no sign-in: the local administrator', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await page.goto(`${srv.url}/ui/agents`);
      await page.getByTestId('principal').waitFor();
      expect(await page.getByTestId('principal').textContent()).toBe('local:anonymous');
      expect(await page.getByText('(authentication off)').count()).toBe(1);
      expect(await page.getByRole('button', { name: 'Sign out' }).count()).toBe(0);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});

describe.skipIf(!hasSystem('chromium'))('web console with single sign-on tokens (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  let privateKey: CryptoKey;
  const token = (expires: number | string = '10m') =>
    new SignJWT({ caxton_role: 'viewer' })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .setIssuer('https://sso.example.test')
      .setAudience('caxton')
      .setSubject('ada')
      .setIssuedAt()
      .setExpirationTime(expires)
      .sign(privateKey);
  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    const jwt =
      '\n[auth.jwt]\nissuer = "https://sso.example.test"\naudience = "caxton"\npublic_key_file = "issuer.pem"\n';
    [cs, browser] = await Promise.all([
      startConsoleServer({ toml: jwt, files: { 'issuer.pem': await exportSPKI(pair.publicKey) } }),
      launchBrowser(),
    ]);
  });
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    removeTempDirs();
  });

  it('signs in with a bearer token from the issuer, as its mapped role', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, await token(), '/ui/agents');
      expect(await page.getByTestId('principal').textContent()).toBe('oidc:ada');
      const perms = await page.getByTestId('permissions').locator('li').allTextContents();
      expect(perms).toContain('agents:read');
      expect(perms).not.toContain('agents:write');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("refuses an expired token with the server's reason", async () => {
    const { page, close } = await openPage(browser);
    try {
      await page.goto(`${cs.url}/ui`);
      await page.getByLabel('API key or bearer token').fill(await token(Math.floor(Date.now() / 1000) - 3600));
      await page.getByRole('button', { name: 'Sign in' }).click();
      const refused = page.locator('#credential-error');
      await refused.waitFor();
      expect(await refused.textContent()).toMatch(/^The server refused this key: /);
      expect(await page.evaluate(`sessionStorage.getItem('caxton.credential')`)).toBeNull();
    } finally {
      await close();
    }
  });
});
