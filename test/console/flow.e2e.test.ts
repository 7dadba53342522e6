/**
 * The console's working paths in a real browser: chat with NAME@VERSION (a blue-green candidate)
 * answers from that version, alone and side by side with the live one, with its tool call folded
 * to one line and each answer linked to its run; at 390 px the chat's message box is in the first
 * screen and the nav shows that it scrolls; a message sent from the Send page appears in its
 * conversation's diagram, and a bad receiver is named under its field; times carry their zone.
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
  signIn,
  startConsoleServer,
  type ConsoleServer,
} from './harness.js';

consoleTimeouts();

/** The scripted model: sums through the calculator; anything else answered with the agent's system prompt, so a reply says its version. */
const REPLIES = `fallback = "ok"

[[rules]]
name = "arithmetic"
match = "\\\\d+\\\\s*[-+*/]\\\\s*\\\\d+"
[[rules.turns]]
tool_calls = [{ name = "calculator", arguments = { expression = "{{request}}" } }]
[[rules.turns]]
content = "The answer is {{tool_result.calculator}}."

[[rules]]
name = "echo"
content = "{{system}} heard: {{request}}"
`;

const support = (n: number) =>
  `name = "support"\ncapabilities = ["support"]\ntools = ["calculator"]\nsystem_prompt = "You are support v${n}."\n`;

describe.skipIf(!hasSystem('chromium'))('console: chat versions, phone layout and the Send page (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  const api = <T>(method: string, path: string, body?: string, contentType = 'application/toml') =>
    http<T>(cs.url, method, path, { headers: bearer(cs.admin), ...(body !== undefined && { body, contentType }) });

  beforeAll(async () => {
    [cs, browser] = await Promise.all([startConsoleServer({ files: { 'replies.toml': REPLIES } }), launchBrowser()]);
    const first = await api('POST', '/api/v1/agents', support(1));
    expect(first.status, first.text).toBe(201);
    const second = await api('PUT', '/api/v1/agents/support?strategy=blue-green', support(2));
    expect(second.status, second.text).toBe(200);
  });
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    removeTempDirs();
  });

  it('chat with NAME@VERSION answers from that version, and side by side with the live one', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      // The address a person would type: the version's chat opens.
      await signIn(page, cs.url, cs.admin, '/ui/agents/support@2');
      await page.waitForURL(`${cs.url}/ui/agents/support/chat?version=2`);
      await page.getByLabel('Message to support@2').fill('who are you?');
      await page.keyboard.press('Enter');
      const log = page.locator('[data-testid="chat-log"][data-target="support@2"]');
      await log.getByText('You are support v2. heard: who are you?').waitFor();
      expect(await page.getByLabel('Chat with').inputValue()).toBe('2');
      // Each answer links to its run.
      expect(await log.getByTestId('run-link').getAttribute('href')).toMatch(/^\/ui\/runs\/exec_[0-9a-f-]+$/);

      // Side by side: one message, both versions answer, each in its own log.
      await page.getByLabel('Side by side with the live version').check();
      // The address names both threads: the version's, and a new one with the live version.
      await page.waitForURL(/\/ui\/agents\/support\/chat\?version=2&thread=chat_\w+&beside=live&live_thread=chat_\w+$/);
      await page.getByLabel('Message to support and support@2').fill('and now?');
      await page.getByRole('button', { name: 'Send' }).click();
      const live = page.locator('[data-testid="chat-log"][data-target="support"]');
      await live.getByText('You are support v1. heard: and now?').waitFor();
      await log.getByText('You are support v2. heard: and now?').waitFor();
      // The thread with support@2 was kept: its first exchange is still there.
      expect(await log.getByText('heard: who are you?').count()).toBe(1);
      await expectAccessible(page, 'chat side by side');
      // The run link opens the run's own page (its record comes from GET /api/v1/executions/ID).
      const run = (await log.getByTestId('run-link').first().getAttribute('href'))!.slice('/ui/runs/'.length);
      await log.getByTestId('run-link').first().click();
      await page.getByRole('heading', { name: `Run ${run}`, level: 1 }).waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('a tool call is one line until opened, the answer stays in view, and the thread survives leaving the page', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents/support/chat');
      // The chat opens on the newest thread with support (the first test's): this one starts afresh.
      await page.getByTestId('chat-log').getByText('heard: and now?').waitFor();
      await page.getByRole('button', { name: 'New thread' }).click();
      await page.getByTestId('chat-log').getByText('heard: and now?').waitFor({ state: 'detached' });
      await page.getByLabel('Message to support').fill('What is 6 * 7?');
      await page.getByRole('button', { name: 'Send' }).click();
      const answer = page.getByTestId('chat-log').locator('li.agent');
      await answer.getByText('The answer is 42.').waitFor();
      const call = page.getByTestId('tool-call');
      expect(await call.locator('summary').textContent()).toMatch(
        /^Tool call calculator result in (\d+|under 1) ms: 42$/,
      );
      expect(await call.getByTestId('tool-result').isVisible()).toBe(false);
      await call.locator('summary').click();
      expect(await call.getByTestId('tool-result').textContent()).toBe('42');
      expect(await answer.getByText('The answer is 42.').isVisible()).toBe(true);

      // The answer's run: its timeline holds the model turns and the tool call with its arguments.
      await page.getByTestId('chat-log').getByTestId('run-link').last().click();
      await page.getByRole('heading', { name: /^Run exec_/, level: 1 }).waitFor();
      const rows = page.getByTestId('waterfall-row');
      await rows.first().waitFor();
      const labels = await rows.allTextContents();
      expect(labels.some((l) => l.startsWith('agent.execute support'))).toBe(true);
      expect(labels.filter((l) => l.startsWith('llm.chat'))).toHaveLength(2);
      expect(labels.find((l) => l.startsWith('tool.call calculator'))).toContain('{"expression":"What is 6 * 7?"}');
      await expectAccessible(page, 'a run and its timeline');
      await page.goBack();

      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview' }).click();
      await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
      await page.goBack();
      await answer.getByText('The answer is 42.').waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('at 390 px the chat box is in the first screen, the agent is its own screen, and the nav shows it scrolls', async () => {
    const { page, problems, close } = await openPage(browser, 390);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents/support/chat');
      const input = page.getByLabel('Message to support');
      await input.waitFor();
      // With the newest thread restored (the earlier tests'), its log scrolls in its own box.
      await page.getByTestId('chat-log').getByText('The answer is 42.').waitFor();
      const box = await input.boundingBox();
      const height = page.viewportSize()!.height;
      expect(box, 'the message box is laid out').not.toBeNull();
      expect(box!.y + box!.height, `the message box ends within the first ${height} px`).toBeLessThanOrEqual(height);
      expect(await page.getByTestId('virtual-list').isVisible(), 'the agent list is its own screen').toBe(false);
      await page.getByRole('link', { name: '← All agents' }).waitFor();
      await expectNoSideScroll(page);

      const nav = page.getByRole('navigation', { name: 'Main' });
      expect(await nav.getAttribute('data-more')).toBe('end');
      // The tests have no DOM types: the page evaluates a string.
      const after = (await page.evaluate(
        `(() => { const s = getComputedStyle(document.querySelector('nav.side'), '::after'); return { content: s.content, display: s.display }; })()`,
      )) as { content: string; display: string };
      expect(after.content).not.toBe('none');
      expect(after.display).not.toBe('none');
      // Scrolled to its end, the hint moves to the start.
      await page.evaluate(
        `(() => { const ul = document.querySelector('nav.side ul'); ul.scrollTo({ left: ul.scrollWidth }); })()`,
      );
      // Polled from the test: a string predicate polled inside the page runs through eval, which the console's
      // CSP (no 'unsafe-eval') refuses whenever the first check does not already pass.
      await expect.poll(() => nav.getAttribute('data-more'), { timeout: 5000 }).toBe('start');
      await expectAccessible(page, 'chat at 390 px');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('a message sent from the Send page appears in its diagram; a bad receiver is named under its field', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/send');
      await page.getByRole('heading', { name: 'Send', level: 1 }).waitFor();
      await expectAccessible(page, 'the Send page');
      await page.getByLabel('Agent', { exact: true }).fill('nobody-here');
      await page.getByLabel('Message', { exact: true }).fill('hello?');
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      const err = page.locator('#send-to-error');
      await err.waitFor();
      expect(await err.textContent()).toContain('nobody-here');
      expect(await page.getByLabel('Agent', { exact: true }).getAttribute('aria-describedby')).toBe('send-to-error');

      await page.getByLabel('Agent', { exact: true }).fill('support');
      await page.getByLabel('Message', { exact: true }).fill('please help');
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      await page.waitForURL(/\/ui\/conversations\/[^/?]+$/);
      await page.locator('[data-testid="arrow"][data-performative="request"]').waitFor();
      await page.locator('[data-testid="arrow"][data-performative="inform"]').waitFor();
      // One time format, with its zone.
      const started = page.locator('dt:text-is("Started") + dd');
      expect(await started.textContent()).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (UTC|[A-Z]{2,5}|UTC[+-]\d\d:\d\d)$/);

      // A call for proposals: straight into its diagram too.
      await page.goto(`${cs.url}/ui/send`);
      await page.getByLabel('A call for proposals').check();
      await page.getByLabel('Capability').fill('support');
      await page.getByLabel('Message', { exact: true }).fill('quote for 3 boxes');
      expect(await page.getByLabel('Proposals due within (seconds)').getAttribute('type')).toBe('number');
      await page.getByRole('button', { name: 'Call for proposals' }).click();
      await page.waitForURL(/\/ui\/conversations\/[^/?]+$/);
      await page.locator('[data-testid="arrow"][data-performative="cfp"]').waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
