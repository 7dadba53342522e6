/**
 * The agent editor keeps up with typing at any speed: keystrokes sent with no delay between them,
 * on a normal CPU and on one slowed six times (Chrome's CPU throttling over CDP), end as exactly
 * the typed text in the editor and in what the page validates, and the page keeps answering.
 * The editor and the page must not hand an older text back to the editor while newer keystrokes
 * are already in it.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import {
  consoleTimeouts,
  launchBrowser,
  openPage,
  PAGE_WAIT_MS,
  signIn,
  startConsoleServer,
  type ConsoleServer,
} from './harness.js';

consoleTimeouts();

const TEXT = [
  'name = "typist"',
  'description = "Typed one key at a time, as fast as the browser takes them."',
  'capabilities = ["typing", "speed"]',
  'system_prompt = "You answer in one line."',
  '',
  '[limits]',
  'max_turns = 4',
].join('\n');

/** The editor's text, line by line (innerText would add a line break for each empty line's <br>). */
const textOf = (page: Page) =>
  page
    .getByLabel('Agent file')
    .locator('.cm-line')
    .evaluateAll((lines) => lines.map((l) => l.textContent).join('\n'));

/** `work`, or a failure naming it when the page's main thread stops answering (a frozen tab). */
async function answered<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the page did not answer (${what}) within ${PAGE_WAIT_MS} ms`)),
      PAGE_WAIT_MS,
    );
  });
  try {
    return await Promise.race([work, stuck]);
  } finally {
    clearTimeout(timer);
  }
}

const answers = async (page: Page) =>
  expect(await answered(page.evaluate('document.readyState'), 'a script run in it')).toBe('complete');

describe.skipIf(!hasSystem('chromium'))('web console: the agent editor under fast typing (chromium)', () => {
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

  for (const rate of [1, 6]) {
    it(
      `types with no delay between keys${rate > 1 ? `, the CPU slowed ${rate} times,` : ''} and keeps the exact text`,
      async () => {
        const { page, context, problems, close } = await openPage(browser);
        try {
          await signIn(page, cs.url, cs.admin, '/ui/agents?edit=new');
          const editor = page.getByLabel('Agent file');
          await editor.locator('.cm-line').first().waitFor();
          await editor.click();
          await page.keyboard.press('Control+A');
          await page.keyboard.press('Delete');
          await expect.poll(() => textOf(page)).toBe('');
          if (rate > 1) {
            const cdp = await context.newCDPSession(page);
            await cdp.send('Emulation.setCPUThrottlingRate', { rate });
          }
          // Not bounded: slowed six times on a loaded machine, typing takes tens of seconds. A tab that
          // froze never finishes, and the test's own timeout ends it.
          await page.keyboard.type(TEXT, { delay: 0 });
          await answers(page);
          await expect.poll(() => textOf(page)).toBe(TEXT);
          // The page holds the same text: what it validates is what was typed.
          await page.getByRole('button', { name: 'Validate' }).click();
          await page.getByText('Valid: nothing was deployed.').waitFor();
          // Still editing: one more key lands at the end, once.
          await editor.click();
          await page.keyboard.press('Control+End');
          await page.keyboard.type('0', { delay: 0 });
          await expect.poll(() => textOf(page)).toBe(`${TEXT}0`);
          await answers(page);
          expect(problems).toEqual([]);
        } finally {
          await close();
        }
        // Room for the slowed typing (a frozen tab still fails: it never finishes).
      },
      6 * PAGE_WAIT_MS,
    );
  }
});
