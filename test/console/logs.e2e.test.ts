/**
 * The Logs and Events pages in a real browser: a live tail that shows what an API call does while
 * the page is open, filters (level, type, text) in the URL that hide the lines that do not match,
 * pause and resume, and an execution's event with its trace id and links to its agent and
 * conversation. The server logs at info into its in-memory buffer (GET /api/v1/logs), not to the
 * test's output.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/index.js';
import { LogBuffer } from '../../src/observability/log-buffer.js';
import { startServer, type CaxtonServer } from '../../src/server/index.js';
import { http, tomlAgent } from '../helpers/http.js';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { hasSystem } from '../helpers/system.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import {
  consoleTimeouts,
  CONFIG,
  expectAccessible,
  launchBrowser,
  openPage,
  REPLIES,
  screenshot,
  signIn,
  WIDTHS,
} from './harness.js';

consoleTimeouts();

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

describe.skipIf(!hasSystem('chromium'))('web console: logs and events (chromium)', () => {
  let server: CaxtonServer;
  let url: string;
  let admin: string;
  let browser: Browser;
  let logger: ReturnType<typeof createLogger>;
  beforeAll(async () => {
    const dir = makeTempDir('caxton-console-logs-');
    writeFileSync(join(dir, 'replies.toml'), REPLIES);
    writeFileSync(join(dir, 'caxton.toml'), CONFIG);
    const config = loadServerConfig({
      file: join(dir, 'caxton.toml'),
      env: {},
      cwd: dir,
      flags: { port: 0, metricsPort: 0 },
    });
    const buffer = new LogBuffer(5000);
    logger = createLogger('info', { write: () => {} }, { buffer });
    [server, browser] = await Promise.all([startServer({ config, logger, logBuffer: buffer }), launchBrowser()]);
    url = server.url;
    admin = adminKeyOf(config.data_dir);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    removeTempDirs();
  });

  const adminGet = (path: string) => http(url, 'GET', path, { headers: bearer(admin) });

  it('tails the log live: a refused request made while the page is open appears; level and text filters hide other lines', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, url, admin, '/ui/logs');
      await page.getByText('Live tail: connected').waitFor();
      const r = await adminGet('/api/v1/agents/no-such-agent');
      expect(r.status).toBe(404);
      const requestId = (r.json as { error: { request_id: string } }).error.request_id;
      const line = page.getByTestId('log-line').filter({ hasText: requestId });
      await line.waitFor();
      expect(await line.textContent()).toContain('request rejected');
      expect(await line.textContent()).toContain('info');

      // The text filter (in the URL) hides every other line.
      await page.getByLabel('Text').fill(requestId);
      await page.getByRole('button', { name: 'Apply' }).click();
      await expect.poll(() => page.getByTestId('log-line').count()).toBe(1);
      expect(new URL(page.url()).searchParams.get('q')).toBe(requestId);
      await page.getByLabel('Text').fill('');
      await page.getByRole('button', { name: 'Apply' }).click();
      await expect.poll(() => page.getByTestId('log-line').count()).toBeGreaterThan(1);

      // Level warn and above: the info lines are gone, and a new one does not show.
      await page.getByLabel('Level (and above)').selectOption('warn');
      expect(new URL(page.url()).searchParams.get('level')).toBe('warn');
      await page.getByText('Live tail: connected').waitFor();
      await expect.poll(() => page.getByTestId('log-line').filter({ hasText: requestId }).count()).toBe(0);
      expect(await page.getByTestId('log-line').filter({ hasText: 'info' }).count()).toBe(0);
      await expectAccessible(page, 'logs');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('pauses: lines that arrive are held and counted, and shown on resume', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, url, admin, '/ui/logs');
      await page.getByText('Live tail: connected').waitFor();
      await page.getByRole('button', { name: 'Pause' }).click();
      const r = await adminGet('/api/v1/agents/paused-agent');
      const requestId = (r.json as { error: { request_id: string } }).error.request_id;
      await page.getByRole('button', { name: 'Resume (1 new)' }).waitFor();
      expect(await page.getByTestId('log-line').filter({ hasText: requestId }).count()).toBe(0);
      await page.getByRole('button', { name: 'Resume (1 new)' }).click();
      await page.getByTestId('log-line').filter({ hasText: requestId }).waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('on resume the count and the lines are those the filters show: each held line once, in order, with one that arrives as Resume is clicked', async () => {
    const tag = `resume-${Date.now()}`;
    const { page, problems, close } = await openPage(browser);
    try {
      // Warn and above (the server filters), and only lines with the tag (the page filters).
      await signIn(page, url, admin, `/ui/logs?level=warn&q=${tag}`);
      await page.getByText('Live tail: connected').waitFor();
      const tagged = page.getByTestId('log-line').filter({ hasText: tag });
      const msgs = () => tagged.locator('.msg').allTextContents();
      await page.getByRole('button', { name: 'Pause' }).click();
      logger.warn(`${tag} held 1`);
      logger.info(`${tag} below the level`);
      logger.warn('a warning without the tag');
      logger.error(`${tag} held 2`);
      logger.warn('another warning without the tag');
      logger.warn(`${tag} held 3`);
      const resume = page.getByRole('button', { name: /^Resume/ });
      await expect.poll(() => resume.textContent()).toBe('Resume (3 new)');
      // The count grows a line at a time, so a count that lets the untagged lines in passes 3 on
      // its way to 5: a second look once they have had time to arrive tells the two apart.
      await page.waitForTimeout(300);
      expect(await resume.textContent()).toBe('Resume (3 new)');
      expect(await tagged.count()).toBe(0);

      // One line just before the click, one while it is on its way, one just after.
      logger.warn(`${tag} before resume`);
      const clicked = resume.click();
      logger.warn(`${tag} during resume`);
      await clicked;
      logger.warn(`${tag} after resume`);
      const expected = ['held 1', 'held 2', 'held 3', 'before resume', 'during resume', 'after resume'].map(
        (m) => `${tag} ${m}`,
      );
      await expect.poll(() => tagged.count()).toBe(expected.length);
      expect(await msgs()).toEqual(expected);
      await page.getByRole('button', { name: 'Pause' }).waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('tails agent events live: a deployment and an execution made while the page is open appear, the execution with its trace id and links; a type filter hides the rest', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, url, admin, '/ui/events');
      await page.getByText('Live tail: connected').waitFor();
      const dep = await http(url, 'POST', '/api/v1/agents', {
        body: tomlAgent('watched'),
        contentType: 'application/toml',
        headers: bearer(admin),
      });
      expect(dep.status, dep.text).toBe(201);
      const deployed = page.locator('[data-type="agent.deployed"]').filter({ hasText: 'watched' });
      await deployed.waitFor();
      await expect
        .poll(() => deployed.getByRole('link', { name: 'watched' }).getAttribute('href'))
        .toBe('/ui/agents/watched');

      const inv = await http(url, 'POST', '/api/v1/agents/watched/invoke', {
        body: JSON.stringify({ request: 'hello', conversation_id: 'conv-watched-1' }),
        contentType: 'application/json',
        // The caller's W3C trace context: the execution's event carries its trace id.
        headers: { ...bearer(admin), traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` },
      });
      expect(inv.status, inv.text).toBe(200);
      const conversation = 'conv-watched-1';
      const finished = page.locator('[data-type="execution.finished"]').filter({ hasText: 'watched' });
      await finished.waitFor();
      const stored = await adminGet('/api/v1/events?type=execution.finished&agent=watched');
      const event = (stored.json as { events: { trace_id: string | null; data: { conversation_id: string | null } }[] })
        .events[0]!;
      expect(event.data.conversation_id).toBe(conversation);
      expect(await finished.getByRole('link', { name: `conversation ${conversation}` }).getAttribute('href')).toBe(
        `/ui/conversations/${conversation}`,
      );
      expect(event.trace_id).toBe(TRACE_ID);
      expect(await finished.getByTestId('trace-id').textContent()).toBe(TRACE_ID);
      expect(await finished.getByRole('link', { name: TRACE_ID }).getAttribute('href')).toBe(`/ui/logs?q=${TRACE_ID}`);
      // The execution's line links to its run page.
      expect(await finished.getByTestId('run-link').getAttribute('href')).toMatch(/^\/ui\/runs\/exec_[0-9a-f-]+$/);
      // The deployment came without a trace context: it shows the trace its own request started
      // (spans are kept locally by default), not the caller's.
      expect(await deployed.getByTestId('trace-id').textContent()).toMatch(/^[0-9a-f]{32}$/);
      expect(await deployed.getByTestId('trace-id').textContent()).not.toBe(TRACE_ID);

      // Lifecycle events only: the execution's line is hidden, the deployment stays.
      await page.getByLabel('Type').selectOption('lifecycle');
      expect(new URL(page.url()).searchParams.get('type')).toBe('lifecycle');
      await expect.poll(() => page.locator('[data-type="execution.finished"]').count()).toBe(0);
      await deployed.waitFor();
      await expectAccessible(page, 'events');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('a key without observe:read is told so', async () => {
    const invoker = await createKey(url, admin, 'console-invoker-logs', { role: 'invoker' });
    const { page, close } = await openPage(browser);
    try {
      await signIn(page, url, invoker, '/ui/events');
      const alert = page.getByRole('alert');
      await alert.waitFor();
      expect(await alert.textContent()).toContain('Your key lacks the permission observe:read');
    } finally {
      await close();
    }
  });

  for (const width of WIDTHS) {
    it(`the logs and events pages at ${width} px`, async () => {
      // Something to show, whether or not the tests above ran.
      expect(
        (
          await http(url, 'POST', '/api/v1/agents', {
            body: tomlAgent(`shown-${width}`),
            contentType: 'application/toml',
            headers: bearer(admin),
          })
        ).status,
      ).toBe(201);
      expect((await adminGet(`/api/v1/agents/missing-${width}`)).status).toBe(404);
      const { page, problems, close } = await openPage(browser, width);
      try {
        await signIn(page, url, admin, '/ui/logs');
        await page.getByTestId('log-line').first().waitFor();
        await expectAccessible(page, `logs at ${width}`);
        await screenshot(page, 'logs');
        await page.goto(`${url}/ui/events`);
        await page.getByTestId('event-line').first().waitFor();
        await expectAccessible(page, `events at ${width}`);
        await screenshot(page, 'events');
        expect(problems).toEqual([]);
      } finally {
        await close();
      }
    });
  }
});
