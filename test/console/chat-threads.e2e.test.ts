/**
 * The chat's threads are the server's, in a real browser (Debian's chromium through
 * playwright-core) against a real server with authentication on and the scripted model:
 *  - a thread begun in one browser context is listed in a fresh one (no sessionStorage), its turns
 *    shown, and continuing it keeps its context (the model is given the earlier turns: the
 *    script's next turn answers);
 *  - chat with an older kept version (NAME@1 after a plain redeploy of version 2) answers as
 *    version 1, from the version picker, and its run page says version 1;
 *  - a message sent while the thread is still loading is sent once it has loaded;
 *  - another key does not see the first key's threads.
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
  signIn,
  startConsoleServer,
  type ConsoleServer,
} from './harness.js';

consoleTimeouts();

/** "who": the system prompt says the version; anything else: a new thread's answer, then a continued one's (the model counts earlier answers). */
const REPLIES = `fallback = "ok"

[[rules]]
name = "who"
match = "^who"
content = "{{system}} heard: {{request}}"

[[rules]]
name = "chat"
[[rules.turns]]
content = "new thread: {{request}}"
[[rules.turns]]
content = "continued: {{request}}"
`;

const helper = (n: number) => `name = "helper"\nsystem_prompt = "You are helper v${n}."\n`;

describe.skipIf(!hasSystem('chromium'))('console: chat threads kept by the server (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    [cs, browser] = await Promise.all([startConsoleServer({ files: { 'replies.toml': REPLIES } }), launchBrowser()]);
    const api = (method: string, path: string, body: string) =>
      http(cs.url, method, path, { headers: bearer(cs.admin), body, contentType: 'application/toml' });
    const first = await api('POST', '/api/v1/agents', helper(1));
    expect(first.status, first.text).toBe(201);
    const second = await api('PUT', '/api/v1/agents/helper', helper(2));
    expect(second.status, second.text).toBe(200);
    alice = await cs.keyFor('invoker');
    bob = await cs.keyFor('invoker');
  });
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    removeTempDirs();
  });

  const say = async (page: Page, to: string, text: string) => {
    await page.getByLabel(`Message to ${to}`).fill(text);
    await page.getByRole('button', { name: 'Send' }).click();
  };

  it('a thread is listed in a fresh browser context with its turns, and continuing it keeps its context', async () => {
    const one = await openPage(browser);
    let conversation: string;
    try {
      await signIn(one.page, cs.url, alice, '/ui/agents/helper/chat');
      await say(one.page, 'helper', 'plan the trip');
      const log = one.page.getByTestId('chat-log');
      await log.getByText('new thread: plan the trip').waitFor();
      // The address names the thread once it has an answer; the list shows it.
      await one.page.waitForURL(/[?&]thread=chat_[0-9a-f]{32}/);
      conversation = new URL(one.page.url()).searchParams.get('thread')!;
      await one.page.getByTestId('thread-list').getByRole('button', { name: 'plan the trip' }).waitFor();
      expect(one.problems).toEqual([]);
    } finally {
      await one.close();
    }

    // A new context: no sessionStorage, the chat opened without naming a thread.
    const two = await openPage(browser);
    try {
      await signIn(two.page, cs.url, alice, '/ui/agents/helper/chat');
      const log = two.page.getByTestId('chat-log');
      await log.getByText('new thread: plan the trip').waitFor();
      expect(await log.getAttribute('data-conversation')).toBe(conversation);
      const item = two.page.getByTestId('thread-list').getByRole('button', { name: 'plan the trip' });
      expect(await item.getAttribute('aria-current')).toBe('true');
      expect(await two.page.getByTestId('thread-list').textContent()).toContain('1 turn');
      // Continued: the model was given the earlier turn, so the script's next turn answers.
      await say(two.page, 'helper', 'and the hotel');
      await log.getByText('continued: and the hotel').waitFor();
      expect(await log.getByText('new thread: plan the trip').count()).toBe(1);
      await two.page.getByTestId('thread-list').getByText('2 turns').waitFor();
      await expectAccessible(two.page, 'chat with its threads');

      // A new thread starts afresh; the old one is picked again from the list.
      await two.page.getByRole('button', { name: 'New thread' }).click();
      // Both the turn and its answer ("new thread: plan the trip") hold the text: wait for neither.
      await expect.poll(() => log.getByText('plan the trip').count()).toBe(0);
      await say(two.page, 'helper', 'something else');
      await log.getByText('new thread: something else').waitFor();
      await two.page.getByTestId('thread-list').getByRole('button', { name: 'plan the trip' }).click();
      await log.getByText('continued: and the hotel').waitFor();
      expect(new URL(two.page.url()).searchParams.get('thread')).toBe(conversation);

      // A reload restores the thread the address names.
      await two.page.reload();
      await two.page.getByTestId('chat-log').getByText('continued: and the hotel').waitFor();
      expect(two.problems).toEqual([]);
    } finally {
      await two.close();
    }
  });

  it('a message sent while the thread is still loading is sent once it has loaded, not dropped', async () => {
    // A principal of its own: no thread yet, so the one this message begins is the answer's.
    const carol = await cs.keyFor('invoker');
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, carol);
      const threads = await holdRequests(page, /\/api\/v1\/agents\/helper\/threads(\?|$)/);
      await page.goto(`${cs.url}/ui/agents/helper/chat`);
      await threads.requested;
      await page.getByLabel('Message to helper').fill('early bird');
      await page.keyboard.press('Enter');
      await page.getByRole('status').getByText('Sending once the thread has loaded.').waitFor();
      expect(await page.getByLabel('Message to helper').inputValue()).toBe('');
      threads.release();
      const log = page.getByTestId('chat-log');
      await log.getByText('new thread: early bird').waitFor();
      expect(await log.getByText('early bird', { exact: true }).count()).toBe(1);
      expect(await page.getByRole('status').getByText('Sending once the thread has loaded.').count()).toBe(0);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('chat with an older kept version answers as that version, and its run page says so', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      // The admin: a run's page needs observe:read.
      await signIn(page, cs.url, cs.admin, '/ui/agents/helper/chat');
      // The picker lists the kept versions: version 1 is not live, nor a rollout's candidate.
      await page.getByLabel('Chat with').selectOption('1');
      await page.waitForURL(/[?&]version=1/);
      await say(page, 'helper@1', 'who are you?');
      const log = page.locator('[data-testid="chat-log"][data-target="helper@1"]');
      await log.getByText('You are helper v1. heard: who are you?').waitFor();

      // Side by side with the live version: one message, both answer.
      await page.getByLabel('Side by side with the live version').check();
      await say(page, 'helper and helper@1', 'who now?');
      await page
        .locator('[data-testid="chat-log"][data-target="helper"]')
        .getByText('You are helper v2. heard: who now?')
        .waitFor();
      await log.getByText('You are helper v1. heard: who now?').waitFor();

      await log.getByTestId('run-link').first().click();
      await page.getByRole('heading', { name: /^Run exec_/, level: 1 }).waitFor();
      expect(await page.getByTestId('run-version').textContent()).toContain('version 1, addressed as helper@1');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("another key does not see the first key's threads", async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, bob, '/ui/agents/helper/chat');
      await page.getByText('No threads with helper yet.').waitFor();
      expect(await page.getByTestId('chat-log').textContent()).toBe('');
      expect(await page.getByText('plan the trip').count()).toBe(0);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
