/**
 * The Memory page in a real browser: entities and relations created through the API, browsed by
 * scope and type with pages, found with the console's search (the observation that matched shown,
 * its words marked), one opened with its observations and its neighbourhood graph, a neighbour
 * reached with the keyboard alone (Tab, Enter) landing on its page with the graph centred on it,
 * the depth control widening the graph, and the same neighbours as a list. The graph's shown
 * labels never overlap, its legend names the types, and it zooms and pans (buttons, wheel, drag,
 * keys). Entities, observations and relations are added, edited and deleted with memory:write; a
 * viewer key sees no such action, and a key limited to another scope has the server's refusal
 * shown under the Scope field.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { bearer } from '../helpers/keys.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import {
  consoleTimeouts,
  expectAccessible,
  holdRequests,
  launchBrowser,
  openPage,
  screenshot,
  signIn,
  startConsoleServer,
  WIDTHS,
  type ConsoleServer,
} from './harness.js';

consoleTimeouts();

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
    // A hub with many long-named neighbours: labels that would overprint.
    const spokes = Array.from({ length: 14 }, (_, i) => `A rather long neighbour name ${i + 1}`);
    await post('/api/v1/memory/entities', {
      entities: [
        { name: 'Hub', entityType: 'topic', observations: ['The centre of many'] },
        ...spokes.map((name, i) => ({ name, entityType: i % 2 ? 'topic' : 'source', observations: [] })),
      ],
    });
    await post('/api/v1/memory/relations', {
      relations: spokes.map((to) => ({ from: 'Hub', to, relationType: 'mentions' })),
    });
    // 55 notes in the global scope: more than a page.
    await post('/api/v1/memory/entities', {
      scope: 'global',
      entities: Array.from({ length: 55 }, (_, i) => ({
        name: `note ${String(i + 1).padStart(2, '0')}`,
        entityType: 'note',
        observations: [`note number ${i + 1}`],
      })),
    });
  }, 120_000);
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
      await page.getByLabel('Search', { exact: true }).fill('born in London');
      await page.getByRole('button', { name: 'Search' }).click();
      const results = page.getByTestId('memory-results');
      await results.waitFor();
      expect(new URL(page.url()).searchParams.get('q')).toBe('born in London');
      const first = results.locator('li').first();
      expect(await first.textContent()).toContain('Ada Lovelace');
      // The snippet is the observation that matched (her second), its words marked — not her first.
      expect(await first.getByTestId('match').textContent()).toContain('Born in London in 1815');
      expect(await first.getByTestId('match').locator('mark').allTextContents()).toEqual(['Born', 'London']);
      await expectAccessible(page, 'memory search');
      await results.getByRole('link', { name: 'Ada Lovelace' }).click();

      // The heading is the URL's name, shown before the entity has loaded: its observations are awaited.
      await page.getByRole('heading', { name: 'Ada Lovelace', level: 1 }).waitFor();
      await expect
        .poll(() => page.getByTestId('observation').allTextContents())
        .toEqual(['Wrote the first published computer program', 'Born in London in 1815']);
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
      // While the engine loads, nothing of Ada's stands under its heading: the engine's own entity
      // request is held until the page has been read.
      const hold = await holdRequests(page, /\/api\/v1\/memory\/entities\/Analytical%20Engine(\?|$)/);
      await page.keyboard.press('Enter');
      await hold.requested;
      await page.getByRole('heading', { name: 'Analytical Engine', level: 1 }).waitFor();
      expect(await page.getByTestId('observation').count()).toBe(0);
      expect(await page.getByTestId('graph-node').count()).toBe(0);
      expect(await page.getByRole('button', { name: /^(Delete|Edit)/ }).count()).toBe(0);
      hold.release();
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
      // The page hears of executions over the event stream, which shows nothing on this page: the
      // test waits for the stream's response (the server listens before it answers), else an
      // execution finished before the stream opened would go unheard.
      const listening = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/events/stream');
      await signIn(page, cs.url, cs.admin, '/ui/memory/entities/Difference%20Engine');
      await page.getByText('An earlier calculating machine').waitFor();
      expect((await listening).status()).toBe(200);
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

  it('browses by scope and type, a page at a time', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/memory');
      const list = page.getByTestId('memory-entities');
      await list.waitFor();
      await page.locator('#memory-type').selectOption('machine');
      await expect
        .poll(() => list.locator('li a').allTextContents())
        .toEqual(['Analytical Engine', 'Difference Engine']);
      expect(new URL(page.url()).searchParams.get('type')).toBe('machine');
      await page.locator('#memory-type').selectOption('');
      await page.locator('#memory-scope').selectOption('global');
      await expect.poll(() => page.locator('#entities-title').textContent()).toBe('Entities 1–50 of 55');
      expect(await list.locator('li').count()).toBe(50);
      const lastOfFirst = await list.locator('li a').last().textContent();
      await expectAccessible(page, 'memory browse');
      // While the next page loads, the page shown keeps its own numbers: the title must not
      // number the old rows by the new offset.
      const hold = await holdRequests(page, /\/api\/v1\/memory\/entities\?.*offset=50/);
      await page.getByRole('button', { name: 'Next' }).click();
      await hold.requested;
      expect(await page.locator('#entities-title').textContent()).toBe('Entities 1–50 of 55');
      expect(await list.locator('li a').last().textContent()).toBe(lastOfFirst);
      hold.release();
      await expect.poll(() => page.locator('#entities-title').textContent()).toBe('Entities 51–55 of 55');
      expect(new URL(page.url()).searchParams.get('offset')).toBe('50');
      expect(await list.locator('li a').last().textContent()).toBe('note 55');
      expect(await page.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('draws the graph without overprinted labels, with a legend, and zooms and pans', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/memory/entities/Hub');
      const graph = page.getByTestId('memory-graph');
      await graph.waitFor();
      await expect.poll(() => page.getByTestId('graph-node').count()).toBe(15);
      const boxes = () =>
        page.getByTestId('graph-label').evaluateAll((els) =>
          els.map((e) => {
            const r = e.getBoundingClientRect();
            return { x: r.x, y: r.y, w: r.width, h: r.height };
          }),
        );
      const overlapping = (bs: { x: number; y: number; w: number; h: number }[]) =>
        bs.flatMap((a, i) =>
          bs
            .slice(i + 1)
            .filter((b) => a.x < b.x + b.w - 1 && b.x < a.x + a.w - 1 && a.y < b.y + b.h - 1 && b.y < a.y + a.h - 1),
        ).length;
      const before = await boxes();
      expect(before.length).toBeGreaterThan(3);
      expect(overlapping(before)).toBe(0);
      expect(await page.getByTestId('graph-legend').locator('li').allTextContents()).toEqual([
        'source',
        'topic',
        'ringed: the centre',
      ]);
      // Two types, two colours.
      const fills = await page
        .locator('[data-testid=graph-node] circle')
        .evaluateAll((els) => [...new Set(els.map((e) => e.getAttribute('fill')))]);
      expect(fills).toHaveLength(2);
      await expectAccessible(page, 'memory graph');

      const viewBox = () => graph.getAttribute('viewBox');
      const start = await viewBox();
      await page.getByRole('button', { name: 'Zoom in' }).click();
      await page.getByRole('button', { name: 'Zoom in' }).click();
      expect(await page.getByTestId('graph-zoom').textContent()).toBe('156 %');
      // Zoomed in, labels keep their size on screen: no fewer fit, still none overlapping.
      const zoomed = await boxes();
      expect(zoomed.length).toBeGreaterThanOrEqual(before.length);
      expect(overlapping(zoomed)).toBe(0);
      // Drag pans.
      const b = (await graph.boundingBox())!;
      const panned = await viewBox();
      await page.mouse.move(b.x + 20, b.y + 20);
      await page.mouse.down();
      await page.mouse.move(b.x + 120, b.y + 80, { steps: 5 });
      await page.mouse.up();
      // Pointer moves reach the page with its frames, after mouse.move has returned.
      await expect.poll(viewBox).not.toBe(panned);
      expect(new URL(page.url()).pathname).toBe('/ui/memory/entities/Hub');
      // The wheel zooms out; the keyboard inside the graph zooms, pans and fits.
      await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2);
      await page.mouse.wheel(0, 200);
      // mouse.wheel returns before the page has handled the wheel event.
      await expect.poll(() => page.getByTestId('graph-zoom').textContent()).toBe('130 %');
      await page.getByRole('button', { name: 'Fit' }).focus();
      await page.keyboard.press('Tab');
      await page.keyboard.press('+');
      expect(await page.getByTestId('graph-zoom').textContent()).toBe('163 %');
      await page.keyboard.press('ArrowRight');
      await page.keyboard.press('0');
      expect(await viewBox()).toBe(start);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('adds, edits and deletes an entity, its observations and a relation', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/memory');
      await page.getByText('Add an entity').click();
      await page.getByLabel('Name', { exact: true }).fill('Grace Hopper');
      await page.locator('#new-type').fill('person');
      await page.getByLabel('Observations (one a line)').fill('Wrote the first compiler');
      await page.getByRole('button', { name: 'Add', exact: true }).click();
      await page.getByRole('heading', { name: 'Grace Hopper', level: 1 }).waitFor();
      const observations = () => page.getByTestId('observation').allTextContents();
      await expect.poll(observations).toEqual(['Wrote the first compiler']);

      await page.getByLabel('New observation').fill('Admiral in the US Navy');
      await page.getByRole('button', { name: 'Add observation' }).click();
      await expect.poll(observations).toEqual(['Wrote the first compiler', 'Admiral in the US Navy']);

      await page.getByRole('button', { name: 'Edit observation 2' }).click();
      await page.getByLabel('Observation 2', { exact: true }).fill('Rear admiral in the US Navy');
      await page.getByRole('button', { name: 'Save' }).click();
      await expect.poll(observations).toEqual(['Wrote the first compiler', 'Rear admiral in the US Navy']);

      await page.getByRole('button', { name: 'Delete observation 1' }).click();
      await page.getByTestId('confirm').getByRole('button', { name: 'Delete the observation' }).click();
      await expect.poll(observations).toEqual(['Rear admiral in the US Navy']);

      await page.getByLabel('Relation', { exact: true }).fill('admired');
      await page.getByLabel('Other entity').fill('Ada Lovelace');
      await page.getByRole('button', { name: 'Add relation' }).click();
      await expect
        .poll(() => page.getByTestId('neighbours').textContent())
        .toContain('Grace Hopper admired Ada Lovelace');
      await page.getByTestId('memory-graph').waitFor();
      // The same relation again is named under its field.
      await page.getByLabel('Relation', { exact: true }).fill('admired');
      await page.getByLabel('Other entity').fill('Ada Lovelace');
      await page.getByRole('button', { name: 'Add relation' }).click();
      expect(await page.locator('#rel-type-error').textContent()).toBe('That relation is already there.');
      await expectAccessible(page, 'memory editing');
      await page.getByRole('button', { name: 'Delete the relation Grace Hopper admired Ada Lovelace' }).click();
      await page.getByTestId('confirm').getByRole('button', { name: 'Delete the relation' }).click();
      await page.getByText('No relations: Grace Hopper stands alone.').waitFor();

      await page.getByRole('button', { name: 'Delete entity' }).click();
      await page.getByTestId('confirm').getByRole('button', { name: 'Delete the entity' }).click();
      await page.getByTestId('memory-entities').waitFor();
      expect(new URL(page.url()).pathname).toBe('/ui/memory');
      const gone = await http(cs.url, 'GET', '/api/v1/memory/entities/Grace%20Hopper', { headers: bearer(cs.admin) });
      expect(gone.status).toBe(404);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('a viewer key is offered no change; a key limited to another scope sees the refusal under Scope', async () => {
    const viewer = await cs.keyFor('viewer');
    const limited = await cs.keyFor('developer', { memory: ['global'] });
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, viewer, '/ui/memory/entities/Ada%20Lovelace');
      await page.getByTestId('read-only').waitFor();
      expect(await page.getByRole('button', { name: /^(Delete|Edit|Add)/ }).count()).toBe(0);
      expect(await page.getByText('Add an entity').count()).toBe(0);
      await expectAccessible(page, 'memory read only');
    } finally {
      await close();
    }
    const second = await openPage(browser);
    try {
      const p = second.page;
      await signIn(p, cs.url, limited, '/ui/memory');
      await p.getByText('Add an entity').click();
      await p.getByLabel('Name', { exact: true }).fill('Not allowed here');
      await p.locator('#new-type').fill('thing');
      expect(await p.locator('#new-scope').inputValue()).toBe('workspace');
      await p.getByRole('button', { name: 'Add', exact: true }).click();
      const under = p.locator('#new-scope-error');
      await under.waitFor();
      expect(await under.textContent()).toContain('may not use the memory scope "workspace"');
      // In its own scope the same key may write.
      await p.locator('#new-scope').fill('global');
      await p.getByRole('button', { name: 'Add', exact: true }).click();
      await p.getByRole('heading', { name: 'Not allowed here', level: 1 }).waitFor();
      expect(new URL(p.url()).searchParams.get('scope')).toBe('global');
      expect(second.problems).toEqual([]);
    } finally {
      await second.close();
    }
    expect(problems).toEqual([]);
  });

  for (const width of WIDTHS) {
    it(`the memory pages at ${width} px`, async () => {
      const { page, problems, close } = await openPage(browser, width);
      try {
        await signIn(page, cs.url, cs.admin, '/ui/memory?q=engine%20computer');
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
