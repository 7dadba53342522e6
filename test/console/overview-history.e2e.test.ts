/**
 * The Overview's history charts in a real browser, over a real server's retained rows: three
 * executions made by the test appear in the Executions chart (a bar whose tooltip names them) and
 * in its total; the range switch (15 min … 7 d) is in the URL and re-draws the charts with that
 * range's buckets; a bad range asked of the API is a 400 naming the field.
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
  launchBrowser,
  openPage,
  signIn,
  startConsoleServer,
  type ConsoleServer,
} from './harness.js';

consoleTimeouts();

const HELPER = `name = "helper"\ncapabilities = ["arithmetic"]\ntools = ["calculator"]\nsystem_prompt = "You help."\n`;

describe.skipIf(!hasSystem('chromium'))('web console: overview history (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  beforeAll(async () => {
    [cs, browser] = await Promise.all([startConsoleServer({ agentFiles: { 'helper.toml': HELPER } }), launchBrowser()]);
    for (const text of ['What is 6 * 7?', 'hello', 'hello again']) {
      const r = await http(cs.url, 'POST', '/api/v1/agents/helper/invoke', {
        body: JSON.stringify({ request: text }),
        contentType: 'application/json',
        headers: bearer(cs.admin),
      });
      expect(r.status, r.text).toBe(200);
    }
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    removeTempDirs();
  });

  it('API: buckets per range, and a bad range named', async () => {
    const r = await http(cs.url, 'GET', '/api/v1/stats/history?range=15m', { headers: bearer(cs.admin) });
    expect(r.status, r.text).toBe(200);
    const body = JSON.parse(r.text) as { bucket_seconds: number; buckets: { executions: number }[] };
    expect(body.bucket_seconds).toBe(30);
    expect(body.buckets).toHaveLength(30);
    expect(body.buckets.reduce((n, b) => n + b.executions, 0)).toBe(3);
    const bad = await http(cs.url, 'GET', '/api/v1/stats/history?range=2w', { headers: bearer(cs.admin) });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('range');
    expect(bad.text).toContain('15m, 1h, 6h, 24h, 7d');
  });

  it('charts the executions made here, and the range switch re-draws them', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui');
      const executions = page.getByTestId('history-executions');
      await executions.waitFor();
      await expect.poll(() => executions.locator('figcaption strong').textContent()).toBe('3');
      // One of the bars carries the executions in its tooltip.
      const tips = await executions.locator('title').allTextContents();
      expect(tips.some((t) => /: [1-3] executions, 0 failed$/.test(t))).toBe(true);
      expect(await page.getByTestId('history-span').textContent()).toContain('60 buckets of 1 min');
      const latency = page.getByTestId('history-latency');
      expect(await latency.locator('figcaption strong').textContent()).toMatch(/^p95 ≤ \d+/);
      await expectAccessible(page, 'overview with history');

      await page.getByRole('group', { name: 'Time range' }).getByRole('button', { name: '24 h' }).click();
      await expect.poll(() => new URL(page.url()).searchParams.get('range')).toBe('24h');
      await expect.poll(() => page.getByTestId('history-span').textContent()).toContain('96 buckets of 15 min');
      expect(await page.getByRole('button', { name: '24 h' }).getAttribute('aria-pressed')).toBe('true');
      expect(await executions.locator('figcaption strong').textContent()).toBe('3');
      // Keyboard: the range buttons are reachable and act on Enter.
      await page.getByRole('button', { name: '15 min' }).focus();
      await page.keyboard.press('Enter');
      await expect.poll(() => page.getByTestId('history-span').textContent()).toContain('30 buckets of 30 s');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 90_000);
});
