/**
 * The Overview page in a real browser: the server's figures (agents, rates with their charts,
 * queue, dead letters, memory, tool servers) and agent events arriving live over the event
 * stream; no cluster section on a single node.
 */
import { request } from 'node:http';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { bearer } from '../helpers/keys.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import { startPgProxy } from '../helpers/tcp-proxy.js';
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

const HELPER = `name = "helper"\ncapabilities = ["arithmetic"]\ntools = ["calculator"]\nsystem_prompt = "You help."\n`;
const BROKEN = `name = "broken"\nsystem_prompt = "x"\n\n[limits]\nmax_turns = "many"\n`;
/** A second provider whose key variable is unset: the server serves, degraded, and says how to fix it. */
const CLOUD = `[llm.providers.cloud]\ntype = "openai"\napi_key_env = "CAXTON_OVERVIEW_UNSET_KEY"\nmodel = "gpt-4o-mini"\n`;
const SCRIBE = `name = "scribe"\ncapabilities = ["writing"]\nsystem_prompt = "You write."\n`;

/** POST .../invoke on a connection of its own (the pooled ones were just closed under the test). */
function invokeOnNewConnection(cs: ConsoleServer, agent: string, text: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${cs.url}/api/v1/agents/${agent}/invoke`,
      { method: 'POST', agent: false, headers: { ...bearer(cs.admin), 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ request: text }));
  });
}

describe.skipIf(!hasSystem('chromium'))('web console: overview (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  beforeAll(async () => {
    [cs, browser] = await Promise.all([
      startConsoleServer({
        agentFiles: { 'helper.toml': HELPER, 'scribe.toml': SCRIBE, 'broken.toml': BROKEN },
        toml: CLOUD,
      }),
      launchBrowser(),
    ]);
  });
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    removeTempDirs();
  });

  // Its polls may wait 10 + 15 + 15 s (samples every 2 s, a reconnect): more than the 30 s default.
  it('shows the server at a glance, and an execution appears live in the events', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui');
      await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
      expect(await page.getByTestId('stat-agents').locator('dd .value').textContent()).toBe('2');
      // The invalid file is named with its located error (from GET /api/v1/status).
      const invalid = page.getByTestId('invalid-files');
      await invalid.waitFor();
      expect(await invalid.textContent()).toMatch(/broken\.toml.*line 5.*limits\.max_turns/);
      // A provider without its key is named with the fix: the variable, the server, a restart.
      expect(await page.getByTestId('degraded').textContent()).toMatch(/CAXTON_OVERVIEW_UNSET_KEY.*restart the server/);
      expect(await page.getByTestId('stat-dead-letters').locator('dd .value').textContent()).toBe('0');
      // Built-in tool servers are loaded at start.
      expect(Number(await page.getByTestId('stat-tools').locator('dd .value').textContent())).toBeGreaterThan(0);
      expect(await page.getByTestId('stat-executions').getByRole('img').count()).toBe(1);
      expect(await page.getByRole('heading', { name: 'Cluster nodes' }).count()).toBe(0);
      await page.getByText('Events: connected').waitFor();

      const run = await http(cs.url, 'POST', '/api/v1/agents/helper/invoke', {
        headers: bearer(cs.admin),
        body: JSON.stringify({ request: '2 + 3' }),
        contentType: 'application/json',
      });
      expect(run.status, run.text).toBe(200);
      const row = page.getByTestId('events').locator('tr', { hasText: 'execution.finished' });
      await row.first().waitFor();
      expect(await row.first().getByRole('link').textContent()).toBe('helper');
      // The next samples count the execution.
      await expect
        .poll(async () =>
          Number(
            await page
              .getByTestId('stat-executions')
              .locator('p')
              .textContent()
              .then((t) => /^(\d+) in all/.exec(t ?? '')?.[1]),
          ),
        )
        .toBeGreaterThan(0);
      // The charts are fed by the polls: the executions chart describes a growing series.
      const chart = page.getByTestId('stat-executions').getByRole('img');
      await expect
        .poll(async () => Number(/last (\d+) samples/.exec((await chart.getAttribute('aria-label')) ?? '')?.[1] ?? 0))
        .toBeGreaterThanOrEqual(3);
      expect(await chart.locator('polyline').getAttribute('points')).toMatch(/^[\d.]+,[\d.]+( [\d.]+,[\d.]+){2,}$/);
      await expectAccessible(page, 'overview');

      // The event stream drops (every connection closed under it): the page reconnects, resumes
      // after the last event it saw (no repeats), and the next execution arrives.
      cs.srv.server.app.server.closeAllConnections();
      expect(await invokeOnNewConnection(cs, 'helper', '4 + 5')).toBe(200);
      await expect.poll(() => row.count()).toBe(2);
      await page.getByText('Events: connected').waitFor();
      expect(await page.getByTestId('events').locator('tbody tr', { hasText: 'agent.deployed' }).count()).toBe(2);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 60_000);

  for (const width of WIDTHS) {
    it(`the overview at ${width} px`, async () => {
      const { page, close } = await openPage(browser, width);
      try {
        await signIn(page, cs.url, cs.admin, '/ui');
        await page.getByTestId('stat-agents').waitFor();
        await page.getByText('Events: connected').waitFor();
        await expectAccessible(page, `overview at ${width} px`);
        await expectNoSideScroll(page);
        await screenshot(page, 'overview');
      } finally {
        await close();
      }
    });
  }
});

describe.skipIf(!hasSystem('chromium') || !hasSystem('postgresql'))(
  'web console: overview of a node whose database link drops (chromium)',
  () => {
    // A server and a browser of its own, then polls of 10 + 15 + 15 s: more than the 30 s default.
    it('shows each outside dependency, and the one that stops answering as unavailable with its reason', async () => {
      const { proxy, url } = await startPgProxy();
      const schema = `caxton_console_${process.pid}_${Date.now()}`;
      const [cs, browser] = await Promise.all([
        startConsoleServer({
          toml: `\n[memory]\nbackend = "postgres"\n[memory.postgres]\nurl = "${url}"\nschema = "${schema}"\n`,
        }),
        launchBrowser(),
      ]);
      const { page, problems, close } = await openPage(browser);
      try {
        await signIn(page, cs.url, cs.admin, '/ui');
        const deps = page.getByTestId('dependencies');
        await expect.poll(() => deps.textContent()).toContain('memory-postgresql: available');
        proxy.cut();
        await expect.poll(() => deps.textContent()).toContain('memory-postgresql: unavailable (');
        expect(await page.getByText('not ready').count()).toBeGreaterThan(0);
        proxy.restore();
        await expect.poll(() => deps.textContent()).toContain('memory-postgresql: available');
        expect(problems).toEqual([]);
      } finally {
        await close();
        await browser.close();
        await cs.close();
        await proxy.close();
        const pg = (await import('pg')).default;
        const c = new pg.Client({ connectionString: TEST_PG_URL });
        await c.connect();
        await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await c.end();
      }
    }, 90_000);
  },
);
