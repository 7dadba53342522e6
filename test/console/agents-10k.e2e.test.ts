/**
 * The agent list is virtualized: with 10,000 agents deployed the page holds only the rows in
 * view, and scrolling to the end shows the last agent.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { bearer } from '../helpers/keys.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { consoleTimeouts, launchBrowser, openPage, signIn, startConsoleServer, type ConsoleServer } from './harness.js';

consoleTimeouts();

const COUNT = 10_000;
const name = (i: number) => `agent-${String(i).padStart(5, '0')}`;

describe.skipIf(!hasSystem('chromium'))('web console: 10,000 agents (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  beforeAll(async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < COUNT; i++)
      files[`${name(i)}.toml`] =
        `name = "${name(i)}"\ncapabilities = ["cap-${i % 97}"]\nsystem_prompt = "You are number ${i}."\n`;
    [cs, browser] = await Promise.all([startConsoleServer({ agentFiles: files }), launchBrowser()]);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    removeTempDirs();
  });

  // Loading 10,000 agents may take 20 s on a loaded machine, then the page is walked: more than the 30 s default.
  it('renders only the visible rows and scrolls to the last agent', async () => {
    const listed = await http<{ total: number }>(cs.url, 'GET', '/api/v1/agents?limit=1', {
      headers: bearer(cs.admin),
    });
    expect(listed.json.total).toBe(COUNT);
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents');
      await page.getByTestId('agent-count').getByText(`${COUNT} of ${COUNT} agents`).waitFor();
      const list = page.getByTestId('virtual-list');
      const rows = list.locator('li');
      expect(await rows.count()).toBeGreaterThan(5);
      expect(await rows.count()).toBeLessThan(100);
      expect(await list.getByRole('link', { name: new RegExp(`^${name(0)}`) }).count()).toBe(1);
      expect(await list.getByRole('link', { name: new RegExp(`^${name(COUNT - 1)}`) }).count()).toBe(0);
      // The full height is there for the scrollbar: scroll to the end.
      await list.hover();
      await list.press('End');
      const last = list.getByRole('link', { name: new RegExp(`^${name(COUNT - 1)}`) });
      await last.waitFor();
      expect(await rows.count()).toBeLessThan(100);
      expect(await list.getByRole('link', { name: new RegExp(`^${name(0)}`) }).count()).toBe(0);
      expect(await last.locator('xpath=..').getAttribute('aria-posinset')).toBe(String(COUNT));
      // The keyboard walks the rows, rendering the ones it reaches: up from the last, then Home.
      await last.focus();
      await page.keyboard.press('ArrowUp');
      await expect
        .poll(() => page.evaluate('document.activeElement.getAttribute("href")'))
        .toBe(`/ui/agents/${name(COUNT - 2)}`);
      await page.keyboard.press('Home');
      await expect
        .poll(() => page.evaluate('document.activeElement.getAttribute("href")'))
        .toBe(`/ui/agents/${name(0)}`);
      expect(await rows.count()).toBeLessThan(100);
      await page.keyboard.press('PageDown');
      await expect
        .poll(() => page.evaluate('document.activeElement.closest("li")?.getAttribute("aria-posinset")'))
        .not.toBe('1');
      // A search narrows the 10,000 to the matching ones.
      await page.getByLabel('Search by name or capability').fill('cap-96');
      await page.getByTestId('agent-count').getByText(`103 of ${COUNT} agents`).waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 60_000);
});
