/**
 * The Keys and Audit pages in a real browser against a real server: a key created on the Keys
 * page is shown once and works against the API with its role; its use is shown; rotating and
 * revoking ask first and take effect at once; a field the console or the server refuses is
 * explained under it. The audit trail shows those key changes, filtered through the URL, and a
 * bad filter is explained under its field. A key without keys:manage or audit:read sees neither
 * page in its nav.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { bearer } from '../helpers/keys.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import {
  consoleTimeouts,
  expectAccessible,
  expectNoSideScroll,
  launchBrowser,
  openPage,
  screenshot,
  signIn,
  startConsoleServer,
  WIDTHS,
  type ConsoleServer,
} from './harness.js';

consoleTimeouts();

describe.skipIf(!hasSystem('chromium'))('web console: API keys and the audit trail (chromium)', () => {
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

  it('creates a key that works, shows it once, rotates and revokes it after asking', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/keys');
      await page.getByTestId('keys').waitFor();
      await expectAccessible(page, 'keys');

      // The console's own check: a key needs a name; a bad limit is named under its field.
      await page.getByLabel('Requests per minute').fill('many');
      await page.getByRole('button', { name: 'Create key' }).click();
      expect(await page.locator('#key-name-error').textContent()).toContain('Give the key a name');
      expect(await page.locator('#key-requests_per_minute-error').textContent()).toContain('A whole number');
      await page.getByLabel('Requests per minute').fill('');
      // The server's check, shown under the field too, without the API's words.
      await page.getByLabel('Name', { exact: true }).fill('ci-reader');
      await page.getByLabel('Expires after').fill('forever');
      await page.getByRole('button', { name: 'Create key' }).click();
      const expiry = page.locator('#key-expires-error');
      await expiry.waitFor();
      expect(await expiry.textContent()).toMatch(/^Expected a duration such as "30d"/);
      expect(await expiry.textContent()).not.toMatch(/body|invalid/);
      expect(await page.getByLabel('Expires after').getAttribute('aria-invalid')).toBe('true');
      await expectAccessible(page, 'keys: a refused field');

      await page.getByLabel('Expires after').fill('30d');
      await page.getByLabel('Role').selectOption('viewer');
      await page.getByLabel('Agents it may use').fill('support-*');
      await page.getByLabel('Concurrent executions').fill('2');
      await page.getByRole('button', { name: 'Create key' }).click();
      const secret = (await page.getByTestId('new-secret').textContent()) ?? '';
      expect(secret).toMatch(/^cxk_/);
      await expectAccessible(page, 'keys: a new key shown once');
      for (const width of WIDTHS) {
        await page.setViewportSize({ width, height: 900 });
        await expectNoSideScroll(page);
        await screenshot(page, 'keys');
      }
      await page.setViewportSize({ width: 1440, height: 900 });

      // The key works, with its role and scope.
      const who = await http<{ id: string; role: string; scope: { agents?: string[] } }>(
        cs.url,
        'GET',
        '/api/v1/whoami',
        { headers: bearer(secret) },
      );
      expect(who.status, who.text).toBe(200);
      expect(who.json).toMatchObject({ role: 'viewer', scope: { agents: ['support-*'] } });
      expect((await http(cs.url, 'GET', '/api/v1/agents', { headers: bearer(secret) })).status).toBe(200);
      expect((await http(cs.url, 'GET', '/api/v1/keys', { headers: bearer(secret) })).status).toBe(403);

      // Shown once: hidden, it is nowhere on the page, nor in the list the API gives.
      await page.getByRole('button', { name: 'Done, hide it' }).click();
      expect(await page.getByText(secret).count()).toBe(0);
      const row = page.getByTestId('key-ci-reader');
      expect(await row.innerText()).toContain('concurrent executions: 2');
      const listed = await http(cs.url, 'GET', '/api/v1/keys', { headers: bearer(cs.admin) });
      expect(listed.text).not.toContain(secret.slice(17));

      await row.getByRole('button', { name: 'Use of ci-reader' }).click();
      const usage = page.getByTestId('key-usage');
      await usage.getByText('Executions running').waitFor();
      expect(await usage.innerText()).toContain('0 of 2');

      // Rotate: asked first; the old secret stops, the new one (shown once) works.
      await row.getByRole('button', { name: 'Rotate ci-reader' }).click();
      await page.getByTestId('confirm').getByRole('button', { name: 'Rotate ci-reader' }).click();
      await page.getByTestId('new-secret-box').getByText('Rotated').waitFor();
      const rotated = (await page.getByTestId('new-secret').textContent()) ?? '';
      expect(rotated).not.toBe(secret);
      expect((await http(cs.url, 'GET', '/api/v1/whoami', { headers: bearer(secret) })).status).toBe(401);
      expect((await http(cs.url, 'GET', '/api/v1/whoami', { headers: bearer(rotated) })).status).toBe(200);

      // Revoke: asked first (Cancel keeps it), then it stops working at once.
      await row.getByRole('button', { name: 'Revoke ci-reader' }).click();
      await page.getByTestId('confirm').getByRole('button', { name: 'Cancel' }).click();
      expect((await http(cs.url, 'GET', '/api/v1/whoami', { headers: bearer(rotated) })).status).toBe(200);
      await row.getByRole('button', { name: 'Revoke ci-reader' }).click();
      await expectAccessible(page, 'keys: confirming a revocation');
      await page.getByTestId('confirm').getByRole('button', { name: 'Revoke ci-reader' }).click();
      await page.getByTestId('keys-result').getByText('Revoked ci-reader').waitFor();
      expect((await http(cs.url, 'GET', '/api/v1/whoami', { headers: bearer(rotated) })).status).toBe(401);
      await page.getByLabel('Show revoked keys').check();
      await page.getByTestId('key-ci-reader').getByText('revoked').waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('shows the audit trail filtered through the URL, and explains a bad filter under it', async () => {
    const made = await http(cs.url, 'POST', '/api/v1/keys', {
      body: JSON.stringify({ name: 'audited-one', role: 'viewer' }),
      contentType: 'application/json',
      headers: bearer(cs.admin),
    });
    expect(made.status, made.text).toBe(201);
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/audit');
      await page.getByTestId('audit').waitFor();
      await page.getByLabel('Action').fill('key.*');
      await page.getByLabel('Target').fill('audited-one');
      await page.getByRole('button', { name: 'Apply filters' }).click();
      await page.waitForURL(/\/ui\/audit\?/);
      expect(new URL(page.url()).searchParams.get('action')).toBe('key.*');
      const rows = page.getByTestId('audit').locator('tbody tr');
      await expect.poll(() => rows.count()).toBe(1);
      expect(await rows.first().innerText()).toContain('key.create');
      expect(await rows.first().innerText()).toContain('audited-one');
      // The console's one time format (format.ts), as on every other page.
      expect(await rows.first().locator('time').textContent()).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+$/);
      await expectAccessible(page, 'audit: filtered');
      for (const width of WIDTHS) {
        await page.setViewportSize({ width, height: 900 });
        await expectNoSideScroll(page);
        await screenshot(page, 'audit');
      }
      await page.setViewportSize({ width: 1440, height: 900 });

      // The URL is the view.
      await page.reload();
      await expect.poll(() => rows.count()).toBe(1);
      expect(await page.getByLabel('Target').inputValue()).toBe('audited-one');

      await page.getByLabel('Since').fill('yesterday');
      await page.getByRole('button', { name: 'Apply filters' }).click();
      const bad = page.locator('#audit-since-error');
      await bad.waitFor();
      expect(await bad.textContent()).toMatch(/^Expected an ISO 8601 time/);
      expect(await bad.textContent()).not.toContain('querystring');
      expect(await page.getByLabel('Since').getAttribute('aria-invalid')).toBe('true');
      await expectAccessible(page, 'audit: a bad filter');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('a key without keys:manage or audit:read sees neither page in its nav', async () => {
    const developer = await cs.keyFor('developer');
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, developer, '/ui/keys');
      const alert = page.getByRole('alert');
      await alert.waitFor();
      expect(await alert.textContent()).toContain('keys:manage');
      const nav = await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents();
      expect(nav).not.toContain('API keys');
      expect(nav).not.toContain('Audit');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
