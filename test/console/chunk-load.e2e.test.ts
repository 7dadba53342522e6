/**
 * A page of the console is a file of its own, fetched when it is first opened. When that fetch
 * fails the console tries again by itself, and when every try fails it says what happened in
 * words (not the browser's "Failed to fetch dynamically imported module") with a way to try
 * again. Real server, Debian's chromium; the failures are the page's requests aborted in the browser.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

const TOOLS_CHUNK = /\/ui\/assets\/tools-[A-Z0-9]+\.js$/;

/** Aborts the Tools page's file `times` times (Infinity: always); the number of requests for it so far. */
async function failTools(page: Page, times: number): Promise<() => number> {
  let seen = 0;
  await page.route(TOOLS_CHUNK, (route) => (seen++ < times ? route.abort('connectionreset') : route.continue()));
  return () => seen;
}

describe.skipIf(!hasSystem('chromium'))('web console: a page file that fails to load (chromium)', () => {
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

  it('tries again by itself after a dropped fetch', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui');
      const requests = await failTools(page, 2);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tools' }).click();
      await page.getByTestId('tool-sources').waitFor();
      expect(requests()).toBe(3);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('says in words that the page could not be loaded, and loads it when asked to try again', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui');
      const requests = await failTools(page, Infinity);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tools' }).click();
      const alert = page.getByRole('alert');
      await alert.getByText('The Tools page could not be loaded from the server').waitFor();
      const text = (await alert.textContent()) ?? '';
      expect(text).toContain('reload the console');
      expect(text).not.toMatch(/dynamically imported module|Failed to fetch/);
      expect(requests()).toBe(4);
      await expectAccessible(page, 'a page that could not be loaded');
      await page.unroute(TOOLS_CHUNK);
      await page.getByRole('button', { name: 'Try again' }).click();
      await page.getByTestId('tool-sources').waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
