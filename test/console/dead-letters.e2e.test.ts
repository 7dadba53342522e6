/**
 * Dead letters and messages in a real browser: three deliveries fail for good (their agents'
 * provider answers 503, [messaging] max_attempts = 1); the list filters them by receiver and
 * error text; one is inspected and replayed from the console after the provider recovers, and is
 * seen delivered; a replay the server refuses shows its error next to the button; a viewer sees
 * no replay button and a direct POST is refused naming the permission; past 200 the list pages,
 * and its pager acts on the page shown while the next loads. Accessibility, CSP, keyboard and
 * screenshots at both widths.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs as removeExecutionDirs, setTestKeys } from '../execution/helpers/caxton.js';
import { startLlmStub, status, type LlmStub } from '../execution/helpers/llm-stub.js';
import { http } from '../helpers/http.js';
import { bearer } from '../helpers/keys.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
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
import { agentFiles, agentOf, sendMessage, stubToml, onFocused, tabTo, type Json } from './messaging-fixtures.js';

consoleTimeouts();

const FRAGILE = ['fragile', 'brittle', 'shaky'];

describe.skipIf(!hasSystem('chromium'))('console: dead letters and messages (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  let stub: LlmStub;
  /** The agents whose provider is down (503). */
  const down = new Set(FRAGILE);
  /** receiver → its dead letter (id, message id, conversation id). */
  const dead = new Map<string, { id: number; message_id: string; conversation_id: string }>();

  const deadLetters = async (): Promise<Json[]> => {
    const r = await http<Json>(cs.url, 'GET', '/api/v1/dead-letters', { headers: bearer(cs.admin) });
    expect(r.status, r.text).toBe(200);
    return r.json.dead_letters as Json[];
  };

  beforeAll(async () => {
    setTestKeys();
    stub = await startLlmStub((hit) => {
      const agent = agentOf(hit);
      if (down.has(agent))
        return status(503, { error: { message: `${agent}'s model is overloaded`, type: 'overloaded' } });
      return { content: `done by ${agent}` };
    });
    [cs, browser] = await Promise.all([
      startConsoleServer({
        toml: stubToml(stub.url, 'max_attempts = 1\nretry_base = "10ms"'),
        agentFiles: agentFiles(FRAGILE.map((name) => ({ name, capabilities: [name], llm: { provider: 'flaky' } }))),
      }),
      launchBrowser(),
    ]);
    for (const name of FRAGILE) {
      const r = (await sendMessage(
        cs.url,
        cs.admin,
        { performative: 'request', receiver: name, content: `please, ${name}` },
        '?wait=30',
      )) as Json;
      expect(r.conversation.state, JSON.stringify(r.conversation)).toBe('failed');
    }
    for (const d of await deadLetters())
      dead.set(d.receiver, { id: d.id, message_id: d.message_id, conversation_id: d.message.conversation_id });
    expect([...dead.keys()].sort()).toEqual([...FRAGILE].sort());
  });
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    await stub?.close();
    removeTempDirs();
    removeExecutionDirs();
  });

  for (const width of WIDTHS) {
    it(`the list, a dead letter and a message at ${width} px`, async () => {
      const { page, problems, close } = await openPage(browser, width);
      try {
        await signIn(page, cs.url, cs.admin, '/ui/dead-letters');
        await page.getByTestId('dead-letter-row').first().waitFor();
        await expectAccessible(page, `dead letters at ${width}`);
        await screenshot(page, 'dead-letters');
        expect(
          await page.evaluate('document.documentElement.scrollWidth'),
          'the page is no wider than the screen',
        ).toBeLessThanOrEqual(width);
        const shaky = dead.get('shaky')!;
        await page.getByRole('link', { name: `#${shaky.id}` }).click();
        await page.getByRole('heading', { name: `Dead letter #${shaky.id}` }).waitFor();
        await page.getByRole('button', { name: 'Replay…' }).click();
        await page.getByRole('button', { name: 'Yes, replay it' }).waitFor();
        await expectAccessible(page, `a dead letter at ${width}`);
        await screenshot(page, 'dead-letter');
        expect(
          await page.evaluate('document.documentElement.scrollWidth'),
          'the page is no wider than the screen',
        ).toBeLessThanOrEqual(width);
        await page.getByRole('button', { name: 'Cancel' }).click();
        await page.getByRole('link', { name: shaky.message_id }).first().click();
        await page.getByTestId('delivery-row').first().waitFor();
        await expectAccessible(page, `a message at ${width}`);
        await screenshot(page, 'message');
        expect(
          await page.evaluate('document.documentElement.scrollWidth'),
          'the page is no wider than the screen',
        ).toBeLessThanOrEqual(width);
        expect(problems).toEqual([]);
      } finally {
        await close();
      }
    });
  }

  it('filters by receiver and error text (on the server), and Tab then Enter opens a row', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/dead-letters');
      const rows = page.getByTestId('dead-letter-row');
      await rows.first().waitFor();
      expect(await rows.count()).toBe(3);
      expect(await rows.first().textContent()).toContain('overloaded');

      // While the filtered list loads, the rows shown are still the unfiltered ones, and their count
      // says so: the filtered request is held until the page has been read.
      const hold = await holdRequests(page, /\/api\/v1\/dead-letters\?.*receiver=BRITT/);
      await page.getByLabel('Receiver').fill('BRITT');
      await hold.requested;
      expect(await page.getByTestId('dead-letter-count').textContent()).toBe('3 shown of 3 dead letters');
      expect(await rows.count()).toBe(3);
      hold.release();
      await page.getByText('1 of 3 dead letters match').waitFor();
      expect(await rows.locator('td:nth-child(2)').allTextContents()).toEqual(['brittle']);
      expect(page.url()).toBe(`${cs.url}/ui/dead-letters?receiver=BRITT`);
      await page.getByLabel('Receiver').fill('');
      // Unfiltered again first: both filters match one of three, so "1 of 3" alone could still be the receiver's.
      await page.getByText('3 shown of 3 dead letters').waitFor();
      await page.getByLabel('Error contains').fill("shaky's model");
      await page.getByText('1 of 3 dead letters match').waitFor();
      expect(await rows.locator('td:nth-child(2)').allTextContents()).toEqual(['shaky']);
      await page.getByLabel('Error contains').fill('no such error anywhere');
      await page.getByText('0 of 3 dead letters match').waitFor();
      expect(await rows.count()).toBe(0);
      await page.getByLabel('Error contains').fill('');
      await page.getByText('3 shown of 3 dead letters').waitFor();

      await tabTo(page, '[data-testid="dead-letter-row"] a');
      const first = await onFocused<string>(page, 'el.textContent');
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: `Dead letter ${first}` }).waitFor();
      expect(await page.getByTestId('attempts').textContent()).toBe('1');
      expect(await page.getByTestId('last-error').textContent()).toContain('overloaded');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('replays a dead letter from the console after confirmation: it leaves the list and its delivery turns done', async () => {
    const operator = await cs.keyFor('operator');
    const fragile = dead.get('fragile')!;
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, operator, `/ui/dead-letters/${fragile.id}`);
      await page.getByRole('heading', { name: `Dead letter #${fragile.id}` }).waitFor();
      expect(await page.getByTestId('message-content').textContent()).toBe('please, fragile');
      down.delete('fragile'); // the provider recovers
      await page.getByRole('button', { name: 'Replay…' }).click();
      // Nothing happens before the confirmation.
      expect((await deadLetters()).map((d) => d.id)).toContain(fragile.id);
      await page.getByRole('button', { name: 'Yes, replay it' }).click();
      const result = page.getByTestId('replay-result');
      await result.waitFor();
      expect(await result.textContent()).toContain(`the message ${fragile.message_id} is queued again for fragile`);

      await result.getByRole('link', { name: 'the message page' }).click();
      await page.locator('[data-testid="delivery-row"][data-state="done"]').waitFor();
      expect(await page.getByTestId('delivery-row').count()).toBe(1);
      expect(await page.getByTestId('delivery-row').locator('td').first().textContent()).toBe('fragile');

      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dead letters' }).click();
      await page.getByText('2 shown of 2 dead letters').waitFor();
      expect(
        await page.locator(`[data-testid="dead-letter-row"][data-message-id="${fragile.message_id}"]`).count(),
      ).toBe(0);
      // The conversation that failed was reopened and completed by the reply.
      await page.goto(`${cs.url}/ui/conversations/${fragile.conversation_id}`);
      await page.getByTestId('conversation-state').getByText('completed').waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("a replay the server refuses shows the server's error next to the button", async () => {
    const brittle = dead.get('brittle')!;
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, `/ui/dead-letters/${brittle.id}`);
      await page.getByRole('button', { name: 'Replay…' }).click();
      // Someone else replays it first.
      down.delete('brittle');
      const r = await http(cs.url, 'POST', `/api/v1/dead-letters/${brittle.id}/replay`, { headers: bearer(cs.admin) });
      expect(r.status, r.text).toBe(202);
      await page.getByRole('button', { name: 'Yes, replay it' }).click();
      const err = page.locator('#replay-error');
      await err.waitFor();
      expect(await err.textContent()).toContain(`no dead letter`);
      expect(await page.getByRole('button', { name: 'Yes, replay it' }).getAttribute('aria-describedby')).toBe(
        'replay-error',
      );
      await expectAccessible(page, 'a refused replay');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('a viewer sees no replay button, and a direct POST is refused naming the permission', async () => {
    const viewer = await cs.keyFor('viewer');
    const shaky = dead.get('shaky')!;
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, viewer, `/ui/dead-letters/${shaky.id}`);
      await page.getByRole('heading', { name: `Dead letter #${shaky.id}` }).waitFor();
      expect(await page.getByTestId('replay-needs').textContent()).toBe(
        'Replaying needs the permission dead_letters:replay (your role, viewer, does not have it).',
      );
      expect(await page.getByRole('button', { name: /Replay/ }).count()).toBe(0);
      const r = await http<Json>(cs.url, 'POST', `/api/v1/dead-letters/${shaky.id}/replay`, {
        headers: bearer(viewer),
      });
      expect(r.status).toBe(403);
      expect(r.json.error.details.permission).toBe('dead_letters:replay');
      expect(r.json.error.message).toContain('it needs the permission dead_letters:replay');
      expect((await deadLetters()).map((d) => d.id)).toContain(shaky.id);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("bad ids show the server's error, never a stack trace", async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/dead-letters/abc');
      const alert = page.getByRole('alert');
      await alert.waitFor();
      expect(await alert.textContent()).toContain('id: expected a dead-letter id (a positive integer)');
      await page.goto(`${cs.url}/ui/messages/msg_nope`);
      await page.getByText('no message with id "msg_nope"').waitFor();
      await page.goto(`${cs.url}/ui/conversations/conv_nope`);
      await page.getByRole('alert').waitFor();
      expect(await page.locator('main').textContent()).not.toMatch(/\n\s+at |TypeError|SyntaxError/);
      await expectAccessible(page, 'a missing conversation');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('past the first page, the pager follows the rows shown while the next page loads', async () => {
    // More dead letters than one page holds (200): shaky's provider is still down.
    const total = async () =>
      (await http<Json>(cs.url, 'GET', '/api/v1/dead-letters?limit=1', { headers: bearer(cs.admin) })).json
        .total as number;
    const before = await total();
    const more = Math.max(0, 201 - before);
    for (let i = 0; i < more; i += 25)
      await Promise.all(
        Array.from({ length: Math.min(25, more - i) }, (_, j) =>
          sendMessage(cs.url, cs.admin, { performative: 'request', receiver: 'shaky', content: `again ${i + j}` }),
        ),
      );
    // Every one sent has failed for good before the page is opened, so the total stays put.
    const { value: all } = await waitUntil(
      async () => {
        const n = await total();
        return n >= before + more && n > 200 ? n : false;
      },
      { timeoutMs: 30_000, what: 'more than 200 dead letters' },
    );
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/dead-letters');
      const count = page.getByTestId('dead-letter-count');
      await expect.poll(() => count.textContent()).toBe(`200 shown of ${all} dead letters`);
      const previous = page.getByRole('button', { name: 'Previous' });
      const next = page.getByRole('button', { name: 'Next' });
      expect(await previous.isDisabled()).toBe(true);
      expect(await next.isDisabled()).toBe(false);
      // While the second page loads, the first is still shown, and the pager acts on it: the
      // second page's request is held until the page has been read.
      const hold = await holdRequests(page, /\/api\/v1\/dead-letters\?(.*&)?offset=200(&|$)/);
      await next.click();
      await hold.requested;
      expect(await page.getByTestId('dead-letter-row').count()).toBe(200);
      expect(await previous.isDisabled(), 'Previous while the first page is shown').toBe(true);
      expect(await next.isDisabled(), 'Next while the first page is shown').toBe(false);
      hold.release();
      await expect.poll(() => count.textContent()).toBe(`${all - 200} shown of ${all} dead letters`);
      expect(new URL(page.url()).searchParams.get('offset')).toBe('200');
      expect(await previous.isDisabled()).toBe(false);
      expect(await next.isDisabled()).toBe(true);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 60_000);
});
