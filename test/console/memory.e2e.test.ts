/**
 * The Memory page in a real browser: entities and relations created through the API, found with
 * the console's search, one opened with its observations and its neighbourhood graph, a neighbour
 * reached with the keyboard alone (Tab, Enter) landing on its page with the graph centred on it,
 * the depth control widening the graph, and the same neighbours as a list.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { bearer } from '../helpers/keys.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import {
  expectAccessible,
  launchBrowser,
  openPage,
  screenshot,
  signIn,
  startConsoleServer,
  WIDTHS,
  type ConsoleServer,
} from './harness.js';

describe.skipIf(!hasSystem('chromium'))('web console: memory (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  beforeAll(async () => {
    [cs, browser] = await Promise.all([
      startConsoleServer({ agentFiles: { 'echo.toml': 'name = "echo"\nsystem_prompt = "You echo."\n' } }),
      launchBrowser(),
    ]);
    const post = async (path: string, body: unknown) => {
      const r = await http(cs.url, 'POST', path, {
        body: JSON.stringify(body),
        contentType: 'application/json',
        headers: bearer(cs.admin),
      });
      expect(r.status, r.text).toBe(201);
    };
    await post('/api/v1/memory/entities', {
      entities: [
        {
          name: 'Ada Lovelace',
          entityType: 'person',
          observations: ['Wrote the first published computer program', 'Born in London in 1815'],
        },
        { name: 'Analytical Engine', entityType: 'machine', observations: ['A mechanical general-purpose computer'] },
        { name: 'Charles Babbage', entityType: 'person', observations: ['Mathematician who designed the engine'] },
        { name: 'Difference Engine', entityType: 'machine', observations: ['An earlier calculating machine'] },
      ],
    });
    await post('/api/v1/memory/relations', {
      relations: [
        { from: 'Ada Lovelace', to: 'Analytical Engine', relationType: 'programmed' },
        { from: 'Charles Babbage', to: 'Analytical Engine', relationType: 'designed' },
        { from: 'Charles Babbage', to: 'Difference Engine', relationType: 'designed' },
      ],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    removeTempDirs();
  });

  const nodeNames = (page: Page) =>
    page.getByTestId('graph-node').evaluateAll((els) => els.map((e) => e.getAttribute('aria-label')));

  it('searches, opens an entity with its observations and graph, and reaches a neighbour with the keyboard', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/memory');
      await page.getByLabel('Search', { exact: true }).fill('first computer program');
      await page.getByRole('button', { name: 'Search' }).click();
      const results = page.getByTestId('memory-results');
      await results.waitFor();
      expect(new URL(page.url()).searchParams.get('q')).toBe('first computer program');
      expect(await results.locator('li').first().textContent()).toContain('Ada Lovelace');
      await expectAccessible(page, 'memory search');
      await results.getByRole('link', { name: 'Ada Lovelace' }).click();

      await page.getByRole('heading', { name: 'Ada Lovelace', level: 1 }).waitFor();
      expect(await page.getByTestId('observations').locator('li').allTextContents()).toEqual([
        'Wrote the first published computer program',
        'Born in London in 1815',
      ]);
      const graph = page.getByTestId('memory-graph');
      await graph.waitFor();
      // Depth 1: Ada and the engine she programmed.
      expect(await nodeNames(page)).toEqual(['Ada Lovelace (person), the centre', 'Analytical Engine (machine)']);
      expect(await page.getByTestId('neighbours').textContent()).toContain('Ada Lovelace programmed Analytical Engine');
      await expectAccessible(page, 'memory entity with its graph');

      // Depth 2 reaches Babbage through the engine (relations both ways).
      await page.getByLabel('Depth').selectOption('2');
      await expect.poll(() => nodeNames(page)).toContain('Charles Babbage (person)');
      expect(new URL(page.url()).searchParams.get('depth')).toBe('2');

      // Keyboard only: Tab from the depth control until the engine's node has focus, then Enter.
      await page.getByLabel('Depth').focus();
      let focused = '';
      for (let n = 0; n < 10 && focused !== 'Analytical Engine (machine)'; n++) {
        await page.keyboard.press('Tab');
        focused = (await page.evaluate(`document.activeElement?.getAttribute('aria-label') ?? ''`)) as string;
      }
      expect(focused).toBe('Analytical Engine (machine)');
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'Analytical Engine', level: 1 }).waitFor();
      expect(new URL(page.url()).pathname).toBe('/ui/memory/entities/Analytical%20Engine');
      // The graph is now centred on the engine, with both people around it.
      await expect
        .poll(() => nodeNames(page))
        .toEqual(['Analytical Engine (machine), the centre', 'Ada Lovelace (person)', 'Charles Babbage (person)']);
      expect(await page.getByTestId('observations').textContent()).toContain('A mechanical general-purpose computer');

      // A click re-centres too.
      await page
        .getByTestId('graph-node')
        .filter({ has: page.locator('text=Charles Babbage') })
        .click();
      await page.getByRole('heading', { name: 'Charles Babbage', level: 1 }).waitFor();
      await expect.poll(() => nodeNames(page)).toContain('Charles Babbage (person), the centre');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('an open entity page follows the changes agents make: it reloads when an execution finishes', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/memory/entities/Difference%20Engine');
      await page.getByText('An earlier calculating machine').waitFor();
      // Written behind the page's back (no event of its own) ...
      const add = await http(cs.url, 'POST', '/api/v1/memory/entities/Difference%20Engine/observations', {
        body: JSON.stringify({ contents: ['Rebuilt by the Science Museum in 1991'] }),
        contentType: 'application/json',
        headers: bearer(cs.admin),
      });
      expect(add.status, add.text).toBeLessThan(300);
      expect(await page.getByText('Rebuilt by the Science Museum in 1991').count()).toBe(0);
      // ... and shown once an agent's execution finishes (the event stream's execution.finished).
      const run = await http(cs.url, 'POST', '/api/v1/agents/echo/invoke', {
        body: JSON.stringify({ request: 'hello' }),
        contentType: 'application/json',
        headers: bearer(cs.admin),
      });
      expect(run.status, run.text).toBe(200);
      await page.getByText('Rebuilt by the Science Museum in 1991').waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('an unknown entity is a clear 404', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/memory/entities/Nobody');
      const alert = page.getByRole('alert');
      await alert.waitFor();
      expect(await alert.textContent()).toContain('no entity named "Nobody"');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  for (const width of WIDTHS) {
    it(`the memory pages at ${width} px`, async () => {
      const { page, problems, close } = await openPage(browser, width);
      try {
        await signIn(page, cs.url, cs.admin, '/ui/memory?q=engine');
        await page.getByTestId('memory-results').waitFor();
        await screenshot(page, 'memory');
        await page.goto(`${cs.url}/ui/memory/entities/Analytical%20Engine?depth=2`);
        await page.getByTestId('memory-graph').waitFor();
        await expect.poll(() => nodeNames(page)).toHaveLength(4);
        await expectAccessible(page, `memory entity at ${width}`);
        await screenshot(page, 'memory-entity');
        expect(problems).toEqual([]);
      } finally {
        await close();
      }
    });
  }
});
