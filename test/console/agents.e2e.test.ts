/**
 * The Agents page in a real browser against a real server with the scripted model: find an agent
 * by capability, chat with it and see its tool call inline (one line until opened), promote and roll back a blue-green
 * rollout, a bad agent file showing the server's located error (and nothing stored), and a
 * signed-out or under-privileged user refused.
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
  keyId,
  launchBrowser,
  openPage,
  screenshot,
  signIn,
  startConsoleServer,
  WIDTHS,
  type ConsoleServer,
} from './harness.js';

consoleTimeouts();

const HELPER = `name = "helper"
description = "Does arithmetic with the calculator tool."
capabilities = ["arithmetic", "helping"]
tools = ["calculator"]
system_prompt = "You help with sums."
`;
const OTHER = `name = "scribe"\ncapabilities = ["writing"]\nsystem_prompt = "You write."\n`;
const support = (n: number) =>
  `name = "support"\ncapabilities = ["support"]\nsystem_prompt = "You are support v${n}."\n`;

describe.skipIf(!hasSystem('chromium'))('web console: agents (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  const api = <T>(method: string, path: string, body?: string, contentType = 'application/toml') =>
    http<T>(cs.url, method, path, { headers: bearer(cs.admin), ...(body !== undefined && { body, contentType }) });

  beforeAll(async () => {
    [cs, browser] = await Promise.all([
      startConsoleServer({ agentFiles: { 'helper.toml': HELPER, 'scribe.toml': OTHER } }),
      launchBrowser(),
    ]);
    const r = await api('POST', '/api/v1/agents', support(1));
    expect(r.status, r.text).toBe(201);
  });
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    removeTempDirs();
  });

  it('finds an agent by capability and shows its definition and source; the search is in the URL', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents');
      await page.getByTestId('agent-count').getByText('3 of 3 agents').waitFor();
      await page.getByLabel('Search by name or capability').fill('arith');
      await page.getByTestId('agent-count').getByText('1 of 3 agents').waitFor();
      await page.waitForURL(`${cs.url}/ui/agents?q=arith`);
      const rows = page.getByTestId('virtual-list').locator('li');
      expect(await rows.count()).toBe(1);
      await rows.getByRole('link').click();
      await page.waitForURL(`${cs.url}/ui/agents/helper?q=arith`);
      await page.getByRole('heading', { name: 'helper', level: 2 }).waitFor();
      expect(await page.getByTestId('capabilities').textContent()).toBe('arithmetic, helping');
      expect(await page.getByTestId('tools').textContent()).toBe('calculator');
      await page.getByTestId('agent-source').waitFor();
      expect(await page.getByTestId('agent-source').textContent()).toBe(HELPER);
      await expectAccessible(page, 'agents: definition');
      // The URL is the view: reloading it shows the same agent, search and all.
      await page.reload();
      await page.getByTestId('agent-source').waitFor();
      expect(await page.getByLabel('Search by name or capability').inputValue()).toBe('arith');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('follows the directory: an agent deployed elsewhere appears in the open list', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents');
      await page.getByText('Directory: connected').waitFor();
      // The stream can connect before the list has loaded ("Loading agents…"): the count is awaited.
      const count = page.getByTestId('agent-count').getByText(/^\d+ of \d+ agents$/);
      await count.waitFor();
      const n = Number(/^(\d+) of/.exec((await count.textContent()) ?? '')?.[1]);
      expect(n).toBeGreaterThan(0);
      const r = await api(
        'POST',
        '/api/v1/agents',
        'name = "newcomer"\ncapabilities = ["greeting"]\nsystem_prompt = "Hi."\n',
      );
      expect(r.status, r.text).toBe(201);
      await page
        .getByTestId('virtual-list')
        .getByRole('link', { name: /^newcomer/ })
        .waitFor();
      expect(await page.getByTestId('agent-count').textContent()).toBe(`${n + 1} of ${n + 1} agents`);
      const removed = await api('DELETE', '/api/v1/agents/newcomer');
      expect(removed.status).toBe(204);
      await page.getByTestId('agent-count').getByText(`${n} of ${n} agents`).waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('chats with the agent, streaming, with its tool call and result inline', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents/helper/chat');
      await page.getByLabel('Message to helper').fill('What is 6 * 7?');
      await page.getByRole('button', { name: 'Send' }).click();
      const call = page.getByTestId('tool-call');
      // Folded to one line until opened.
      await call.locator('summary').getByText(': 42').waitFor();
      await call.locator('summary').click();
      await call.getByTestId('tool-result').waitFor();
      expect(await call.locator('strong').textContent()).toBe('Tool call calculator');
      expect(await call.locator('pre').first().textContent()).toBe('{"expression":"What is 6 * 7?"}');
      expect(await call.getByTestId('tool-result').textContent()).toBe('42');
      const answer = page.getByTestId('chat-log').locator('li.agent');
      await answer.getByText('The answer is 42.').waitFor();
      // The tool call comes before the answer that used it.
      const shown = await answer.innerText();
      expect(shown.indexOf('Tool call calculator')).toBeGreaterThan(-1);
      expect(shown.indexOf('Tool call calculator')).toBeLessThan(shown.indexOf('The answer is 42.'));
      await expectAccessible(page, 'agents: chat');
      for (const width of WIDTHS) {
        await page.setViewportSize({ width, height: 900 });
        await expectNoSideScroll(page);
        await expectAccessible(page, `agents-chat at ${width} px`);
        await screenshot(page, 'agents-chat');
      }
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('promotes a blue-green rollout and rolls back the next one', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents/support/edit');
      const editor = page.getByLabel('Agent file');
      await expect.poll(() => page.getByLabel('Agent file').innerText()).toContain('support v1');
      await editor.fill(support(2));
      await page.getByLabel('Strategy').selectOption('blue-green');
      await page.getByRole('button', { name: 'Review and deploy' }).click();
      // The diff against the live version comes first; nothing is deployed until it is confirmed.
      const review = page.getByTestId('deploy-review');
      await review.getByTestId('diff').locator('.cm-content').waitFor();
      expect(await review.innerText()).toContain('You are support v2.');
      expect((await api<{ total: number }>('GET', '/api/v1/agents/support/versions')).json.total).toBe(1);
      await expectAccessible(page, 'agents: the diff before a deploy');
      await review.getByRole('button', { name: 'Deploy now' }).click();
      await page.getByTestId('editor-status').getByText('Deployed version 2 as a blue-green rollout').waitFor();
      expect((await api<{ live_version: number }>('GET', '/api/v1/agents/support/rollout')).json.live_version).toBe(1);

      await page.getByRole('link', { name: 'Versions and rollout' }).click();
      await page.waitForURL(`${cs.url}/ui/agents/support/versions`);
      await page.getByTestId('rollout-state').getByText('running').waitFor();
      await expectAccessible(page, 'agents: versions and rollout');
      for (const width of WIDTHS) {
        await page.setViewportSize({ width, height: 900 });
        await expectNoSideScroll(page);
        await expectAccessible(page, `agents-rollout at ${width} px`);
        await screenshot(page, 'agents-rollout');
      }
      await page.setViewportSize({ width: 1440, height: 900 });
      await page.getByRole('button', { name: 'Promote version 2' }).click();
      // Promote asks first, showing what becomes live.
      const ask = page.getByTestId('confirm');
      await ask.getByTestId('diff').locator('.cm-content').waitFor();
      await expectAccessible(page, 'agents: confirming a promotion');
      await ask.getByRole('button', { name: 'Promote version 2' }).click();
      await page.getByTestId('rollout-result').getByText('Promoted: version 2 is live').waitFor();
      await page.getByTestId('rollout-state').getByText('promoted', { exact: true }).waitFor();
      const promoted = await api<{ live_version: number; rollout: { state: string } }>(
        'GET',
        '/api/v1/agents/support/rollout',
      );
      expect(promoted.json.rollout.state).toBe('promoted');

      // A third version, blue-green again, rolled back: the promoted one stays live.
      await page.getByRole('link', { name: 'Edit' }).click();
      await expect.poll(() => page.getByLabel('Agent file').innerText()).toContain('support v2');
      await editor.fill(support(3));
      await page.getByLabel('Strategy').selectOption('blue-green');
      await page.getByRole('button', { name: 'Review and deploy' }).click();
      await page.getByTestId('deploy-review').getByRole('button', { name: 'Deploy now' }).click();
      await page.getByTestId('editor-status').getByText('as a blue-green rollout').waitFor();
      await page.getByRole('link', { name: 'Versions and rollout' }).click();
      await page.getByTestId('rollout-state').getByText('running', { exact: true }).waitFor();
      await page.getByRole('button', { name: 'Roll back', exact: true }).click();
      await page.getByTestId('confirm').getByRole('button', { name: 'Roll back the rollout' }).click();
      await page.getByTestId('rollout-result').getByText('Rolled back: the rollout ended (rolled back)').waitFor();
      await page.getByTestId('rollout-state').getByText('rolled back', { exact: true }).waitFor();
      const after = await api<{
        live_version: number;
        running: boolean;
        rollout: { state: string; candidate_version: number };
      }>('GET', '/api/v1/agents/support/rollout');
      expect(after.json).toMatchObject({ running: false, rollout: { state: 'rolled_back' } });
      expect(after.json.rollout.candidate_version).toBeGreaterThan(promoted.json.live_version);
      // What runs is still the promoted text, not the rolled-back candidate.
      const live = await api<{ definition: { system_prompt: string } }>('GET', '/api/v1/agents/support');
      expect(live.json.definition.system_prompt).toBe('You are support v2.');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 120_000);

  it('shows the located error of a bad agent file next to it, and stores nothing', async () => {
    const { page, problems, close } = await openPage(browser);
    const before = (await api<{ total: number }>('GET', '/api/v1/agents')).json.total;
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents?edit=new');
      const bad = 'name = "broken"\ncapabilities = ["x"]\nsystem_prompt = "hi"\n\n[limits]\nmax_turns = "many"\n';
      await page.getByLabel('Agent file').fill(bad);
      await page.getByRole('button', { name: 'Deploy', exact: true }).click();
      const issue = page.getByTestId('issue').first();
      await issue.waitFor();
      const text = (await issue.textContent()) ?? '';
      expect(text).toMatch(/line 6/);
      expect(text).toContain('limits.max_turns');
      // In the console's words: no placeholder file name for the text in the editor.
      expect(text).not.toContain('<request body>');
      // The textarea points at the problems (screen readers read them with it).
      expect(await page.getByLabel('Agent file').getAttribute('aria-invalid')).toBe('true');
      expect(await page.getByLabel('Agent file').getAttribute('aria-describedby')).toContain('agent-file-errors');
      // Choosing the problem puts the cursor on its line.
      await issue.getByRole('button').click();
      await expect.poll(() => page.locator('.cm-activeLineGutter').innerText()).toBe('6');
      expect(await page.locator('.cm-activeLine').innerText()).toBe('max_turns = "many"');
      expect(await page.evaluate("document.activeElement.getAttribute('aria-label')")).toBe('Agent file');
      await expectAccessible(page, 'agents: editor with errors');
      for (const width of WIDTHS) {
        await page.setViewportSize({ width, height: 900 });
        await expectNoSideScroll(page);
        await expectAccessible(page, `agents-editor at ${width} px`);
        await screenshot(page, 'agents-editor');
      }
      const now = await api<{ total: number }>('GET', '/api/v1/agents');
      expect(now.json.total).toBe(before);
      expect((await api('GET', '/api/v1/agents/broken')).status).toBe(404);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('a viewer sees the agents but not the chat or the editor, and cannot promote', async () => {
    const viewer = await cs.keyFor('viewer');
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, viewer, '/ui/agents/helper/chat');
      const alert = page.getByRole('alert');
      await alert.waitFor();
      expect(await alert.textContent()).toContain('Your key lacks the permission agents:invoke');
      const tabs = await page.getByRole('navigation', { name: 'Agent views' }).getByRole('link').allTextContents();
      expect(tabs).toEqual(['Definition', 'Versions and rollout']);
      expect(await page.getByRole('button', { name: 'Deploy an agent' }).count()).toBe(0);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("a key scoped to one agent is refused another with the server's reason", async () => {
    const scoped = await cs.keyFor('operator', { agents: ['helper'] });
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, scoped, '/ui/agents/support');
      const alert = page.getByRole('alert');
      await alert.waitFor();
      expect(await alert.textContent()).toContain('may not use the agent "support"');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('is usable by keyboard: the skip link, the nav and the search are reached with Tab', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents');
      await page.getByTestId('agent-count').getByText('of').waitFor();
      await page.reload();
      await page.getByTestId('agent-count').getByText('of').waitFor();
      await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement.textContent')).toBe('Skip to content');
      await page.keyboard.press('Enter');
      expect(await page.evaluate('document.activeElement.id')).toBe('main');
      // From the main landmark, Tab reaches the page's controls: the deploy button, then the search.
      await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement.textContent')).toBe('Deploy an agent');
      await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement.id')).toBe('agent-search');
      await page.keyboard.type('scribe');
      // "sc" already leaves one agent: the count alone does not say the whole word reached the links.
      await page.getByTestId('agent-count').getByText('1 of 3 agents').waitFor();
      await page.locator('a[href="/ui/agents/scribe?q=scribe"]').waitFor();
      // Into the list and onto the agent with the keyboard alone.
      await page.keyboard.press('Tab');
      await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement.getAttribute("href")')).toBe('/ui/agents/scribe?q=scribe');
      await page.keyboard.press('Enter');
      await page.waitForURL(`${cs.url}/ui/agents/scribe?q=scribe`);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("a key revoked mid-session: the next call returns to sign-in with the server's reason", async () => {
    const key = await cs.keyFor('operator');
    const { page, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, key, '/ui/agents');
      await page.getByTestId('agent-count').getByText('of').waitFor();
      const revoked = await http(cs.url, 'DELETE', `/api/v1/keys/${keyId(key)}`, { headers: bearer(cs.admin) });
      expect(revoked.status, revoked.text).toBe(200);
      // The next call: the click's, or the live stream's reconnect when that comes first (the server
      // ends the streams a revoked key holds), which leaves no link to click.
      const signInPage = page.getByRole('heading', { name: 'Sign in to Caxton' });
      await Promise.race([
        page
          .getByTestId('virtual-list')
          .getByRole('link', { name: /^helper/ })
          .click()
          .catch(() => undefined),
        signInPage.waitFor(),
      ]);
      await signInPage.waitFor();
      expect(await page.getByRole('status').first().textContent()).toMatch(/^You were signed out: /);
    } finally {
      await close();
    }
  });

  for (const width of WIDTHS) {
    it(`the agents page at ${width} px`, async () => {
      const { page, close } = await openPage(browser, width);
      try {
        await signIn(page, cs.url, cs.admin, '/ui/agents/helper');
        await page.getByTestId('agent-source').waitFor();
        await expectAccessible(page, `agents at ${width} px`);
        await expectNoSideScroll(page);
        await screenshot(page, 'agents');
      } finally {
        await close();
      }
    });
  }
});
