/**
 * The Conversations page in a real browser: a Contract Net started through the API after the page
 * is open appears in the list and, as a sequence diagram, grows live (the CFP, three proposals,
 * one accept-proposal, two reject-proposals); an arrow opens its message by mouse or keyboard; bad
 * filters show the server's located error next to the field; a key without observe:read still
 * sees the list change (polling). Accessibility, CSP and screenshots at both widths.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs as removeExecutionDirs, setTestKeys } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub } from '../execution/helpers/llm-stub.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import {
  consoleTimeouts,
  expectAccessible,
  launchBrowser,
  openPage,
  screenshot,
  signIn,
  startConsoleServer,
  WIDTHS,
  type ConsoleServer,
} from './harness.js';
import {
  agentFiles,
  agentOf,
  completion,
  gate,
  lastUser,
  sendMessage,
  stubToml,
  onFocused,
  tabTo,
  type Json,
} from './messaging-fixtures.js';

consoleTimeouts();

const PRICES: Record<string, number> = { 'carrier-a': 30, 'carrier-b': 12, 'carrier-c': 21 };

describe.skipIf(!hasSystem('chromium'))('console: conversations (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  let stub: LlmStub;
  const bids = gate();
  /** The Contract Net the first test runs (the later tests reuse it). */
  let cnp: string | undefined;

  beforeAll(async () => {
    setTestKeys();
    stub = await startLlmStub((hit) => {
      const agent = agentOf(hit);
      const prompt = lastUser(hit);
      // Bids wait for the test to open the gate: the diagram is on screen before they arrive.
      if (prompt.includes('"cfp" message'))
        return bids.holdAct('propose', { price: PRICES[agent] ?? 99, currency: 'EUR' }, `For 3 boxes, ${agent} bids.`);
      if (prompt.includes('"accept-proposal" message'))
        return (res) => completion(res, `Delivered by ${agent} for ${PRICES[agent]} EUR`);
      return { content: `noted by ${agent}` };
    });
    [cs, browser] = await Promise.all([
      startConsoleServer({
        toml: stubToml(stub.url),
        agentFiles: agentFiles(
          Object.keys(PRICES).map((name) => ({ name, capabilities: ['transport'], llm: { provider: 'stub' } })),
        ),
      }),
      launchBrowser(),
    ]);
  });
  afterAll(async () => {
    bids.open();
    await browser?.close();
    await cs?.close();
    await stub?.close();
    removeTempDirs();
    removeExecutionDirs();
  });

  it('a Contract Net started after the page is open appears in the list and grows live as a sequence diagram', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/conversations');
      await page.getByRole('heading', { name: 'Conversations', level: 1 }).waitFor();
      await page.getByText('Live updates (agent events): connected').waitFor();
      expect(await page.getByTestId('conversation-count').textContent()).toBe('No conversations match.');

      const sent = (await sendMessage(cs.url, cs.admin, {
        performative: 'cfp',
        capability: 'transport',
        content: 'Ship 3 boxes to Paris',
        reply_by: '60s',
      })) as Json;
      cnp = sent.conversation_id as string;
      expect(sent.routed_to).toEqual(['carrier-a', 'carrier-b', 'carrier-c']);
      // The list shows it without a reload (the agent event stream).
      const link = page.getByTestId('conversation-row').getByRole('link', { name: cnp });
      await link.waitFor();
      await link.click();
      expect(page.url()).toBe(`${cs.url}/ui/conversations/${cnp}`);

      const svg = page.getByRole('img', { name: /Sequence diagram of conversation/ });
      await svg.waitFor();
      const arrows = page.getByTestId('arrow');
      await arrows.first().waitFor();
      // Only the CFP so far: the bidders are held.
      expect(await arrows.evaluateAll((els) => els.map((e) => e.getAttribute('data-performative')))).toEqual(['cfp']);
      expect(await page.getByTestId('lifeline').allTextContents()).toEqual([
        'key:admin',
        'carrier-a',
        'carrier-b',
        'carrier-c',
      ]);
      await page.getByText('Following the conversation: connected').waitFor();

      bids.open();
      await page.getByTestId('conversation-state').getByText('completed').waitFor();
      const perfs = await arrows.evaluateAll((els) => els.map((e) => e.getAttribute('data-performative')));
      expect(perfs[0]).toBe('cfp');
      expect(perfs.filter((p) => p === 'propose')).toHaveLength(3);
      expect(perfs.filter((p) => p === 'accept-proposal')).toHaveLength(1);
      expect(perfs.filter((p) => p === 'reject-proposal')).toHaveLength(2);
      expect(perfs.at(-1)).toBe('inform');
      expect(await page.getByTestId('cnp-proposals').textContent()).toContain('Proposals (3)');
      expect(await page.getByTestId('cnp-accepted').textContent()).toBe('Accepted: carrier-b');
      // The bids as values: ranked by the rule, each price typed, and why the winner won.
      await page.getByTestId('bids-why').getByText('Winner: carrier-b').waitFor();
      expect(await page.getByTestId('bids-rule').textContent()).toBe('lowest price');
      const rows = await page
        .getByTestId('bid-row')
        .evaluateAll((els) => els.map((e) => [...e.querySelectorAll('td')].map((td) => td.textContent?.trim())));
      expect(rows).toEqual([
        ['1', 'carrier-b', 'price 12 (typed)', 'currency: EUR', 'accepted'],
        ['2', 'carrier-c', 'price 21 (typed)', 'currency: EUR', 'rejected'],
        ['3', 'carrier-a', 'price 30 (typed)', 'currency: EUR', 'rejected'],
      ]);
      expect(await page.getByTestId('bids-why').textContent()).toBe(
        'Winner: carrier-b — carrier-b won: lowest price: 12 against 21 (carrier-c), 30 (carrier-a)',
      );
      expect((await page.getByTestId('cnp-rejected').textContent())?.split(': ')[1]?.split(', ').sort()).toEqual([
        'carrier-a',
        'carrier-c',
      ]);
      // Each arrow's label has its performative and its time from the first message.
      const labels = await page.locator('[data-testid="arrow-art"] text').allTextContents();
      expect(labels[0]).toBe('cfp +0.00 s');
      expect(labels.every((l) => /^[a-z-]+ \+\d/.test(l))).toBe(true);

      // A click on the accept-proposal shows it: content, ids, the proposal it answers.
      await page.locator('[data-testid="arrow"][data-performative="accept-proposal"]').click();
      const detail = page.getByTestId('message-detail');
      await detail.waitFor();
      const accept = (await (
        await fetch(`${cs.url}/api/v1/conversations/${cnp}`, { headers: { authorization: `Bearer ${cs.admin}` } })
      ).json()) as Json;
      const acceptMsg = accept.messages.find((m: Json) => m.performative === 'accept-proposal');
      const proposalOfB = accept.messages.find((m: Json) => m.performative === 'propose' && m.sender === 'carrier-b');
      expect(acceptMsg.in_reply_to).toBe(proposalOfB.id);
      expect(await detail.getByRole('heading').first().textContent()).toContain('accept-proposal from');
      expect(await detail.getByRole('link', { name: acceptMsg.id }).count()).toBe(1);
      expect(await detail.getByRole('link', { name: proposalOfB.id }).count()).toBe(1);
      expect(page.url()).toContain(`?m=${acceptMsg.id}`);
      await expectAccessible(page, 'a conversation with a message open');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('keyboard: Tab reaches the list rows and Enter opens one; Tab reaches the arrows and Enter shows the message', async () => {
    expect(cnp).toBeDefined();
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/conversations');
      await page.getByTestId('conversation-row').first().waitFor();
      await tabTo(page, '[data-testid="conversation-row"] a');
      await page.keyboard.press('Enter');
      await page.getByRole('img', { name: /Sequence diagram of conversation/ }).waitFor();
      expect(page.url()).toBe(`${cs.url}/ui/conversations/${cnp}`);

      await tabTo(page, '[data-testid="arrow"][data-performative="propose"]');
      const focused = await onFocused<string>(page, "el.getAttribute('aria-label')");
      expect(focused).toMatch(/^Message 2, \+\d.* propose from carrier-[abc] to key:admin, a reply$/);
      await page.keyboard.press('Enter');
      const detail = page.getByTestId('message-detail');
      await detail.waitFor();
      // Focus moves to the message shown.
      expect(await onFocused<string>(page, 'el.id')).toBe('message-detail-title');
      // A typed bid: the content is the propose call's arguments.
      expect(JSON.parse((await detail.getByTestId('message-content').textContent())!)).toEqual({
        price: expect.any(Number),
        currency: 'EUR',
      });

      // The same messages as a table, for screen readers and keyboards.
      await page.getByText('The same messages as a table').click();
      const rows = page.getByTestId('message-table').locator('tbody tr');
      expect(await rows.count()).toBe(8);
      await page.getByRole('button', { name: /^Show message 1: cfp from key:admin$/ }).click();
      // The detail is already open (on the proposal): it is awaited showing the call instead.
      await detail.getByRole('heading', { name: /^Message 1: cfp from key:admin$/ }).waitFor();
      expect(await detail.getByTestId('message-content').textContent()).toBe('Ship 3 boxes to Paris');
      await expectAccessible(page, 'the messages table');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("bad filters show the server's located error next to the field, never a stack trace; good ones filter", async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/conversations?state=bogus');
      const err = page.locator('#conv-state-error');
      await err.waitFor();
      expect(await err.textContent()).toContain('state: unknown state "bogus"');
      expect(await err.textContent()).toContain('expected one of: initiated, in_progress, completed, failed, expired');
      expect(await page.locator('#conv-state').getAttribute('aria-describedby')).toBe('conv-state-error');

      await page.getByLabel('State').selectOption('completed');
      await page.getByTestId('conversation-row').first().waitFor();
      expect(await page.locator('#conv-state-error').count()).toBe(0);
      await page.getByLabel('Participant').fill('x'.repeat(201));
      await page.getByRole('button', { name: 'Filter' }).click();
      const perr = page.locator('#conv-participant-error');
      await perr.waitFor();
      expect(await perr.textContent()).toMatch(/^participant: /);
      expect(await page.locator('main').textContent()).not.toMatch(/\n\s+at |Error:/);

      await page.getByLabel('Participant').fill('carrier-b');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.getByTestId('conversation-row').first().waitFor();
      expect(page.url()).toBe(`${cs.url}/ui/conversations?state=completed&participant=carrier-b`);
      expect(await page.getByTestId('conversation-row').count()).toBe(1);
      await page.getByLabel('Participant').fill('nobody-at-all');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.getByText('No conversations match.').waitFor();
      await expectAccessible(page, 'conversations filtered');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('a key without observe:read (invoker) sees the list change by polling', async () => {
    const invoker = await cs.keyFor('invoker');
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, invoker, '/ui/conversations');
      await page.getByTestId('conversation-row').first().waitFor();
      expect(await page.getByText(/Live updates/).count()).toBe(0);
      await page.getByText('Refreshed every 3 s').waitFor();
      const before = await page.getByTestId('conversation-row').count();
      const sent = (await sendMessage(cs.url, invoker, {
        performative: 'inform',
        receiver: 'carrier-a',
        content: 'the depot closes at six',
      })) as Json;
      await page.getByTestId('conversation-row').getByRole('link', { name: sent.conversation_id }).waitFor();
      expect(await page.getByTestId('conversation-row').count()).toBe(before + 1);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("the messages list filters on the server by performative, sender and conversation, shows a bad filter's error, and opens a message", async () => {
    expect(cnp).toBeDefined();
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, `/ui/messages?conversation_id=${cnp}`);
      const rows = page.getByTestId('message-row');
      await page.getByText(/shown of \d+ messages/).waitFor();
      const all = await rows.count();
      expect(all).toBeGreaterThanOrEqual(7); // cfp, 3 proposals, accept, 2 rejects, inform
      await page.getByLabel('Performative').selectOption('propose');
      await page.getByText('3 shown of 3 messages').waitFor();
      expect(new URL(page.url()).searchParams.get('performative')).toBe('propose');
      expect((await rows.locator('td:nth-child(3)').allTextContents()).sort()).toEqual([
        'carrier-a',
        'carrier-b',
        'carrier-c',
      ]);
      await page.getByLabel('Sender').fill('carrier-b');
      await page.getByText('1 shown of 1 message').waitFor();
      await rows.getByRole('link', { name: 'propose' }).click();
      await page.getByRole('heading', { name: 'Message: propose from carrier-b' }).waitFor();
      await expectAccessible(page, 'a message');

      await page.goto(`${cs.url}/ui/messages?performative=shout`);
      const err = page.locator('#msg-filter-error');
      await err.waitFor();
      expect(await err.textContent()).toContain('performative');
      await expectAccessible(page, 'messages with a bad filter');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  for (const width of WIDTHS) {
    it(`the messages list at ${width} px`, async () => {
      expect(cnp).toBeDefined();
      const { page, problems, close } = await openPage(browser, width);
      try {
        await signIn(page, cs.url, cs.admin, '/ui/messages');
        await page.getByTestId('message-row').first().waitFor();
        await expectAccessible(page, `messages at ${width}`);
        await screenshot(page, 'messages');
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

  for (const width of WIDTHS) {
    it(`the list and a Contract Net at ${width} px`, async () => {
      expect(cnp).toBeDefined();
      const { page, problems, close } = await openPage(browser, width);
      try {
        await signIn(page, cs.url, cs.admin, '/ui/conversations');
        await page.getByTestId('conversation-row').first().waitFor();
        await expectAccessible(page, `conversations at ${width}`);
        await screenshot(page, 'conversations');
        expect(
          await page.evaluate('document.documentElement.scrollWidth'),
          'the page is no wider than the screen',
        ).toBeLessThanOrEqual(width);
        await page.goto(`${cs.url}/ui/conversations/${cnp}`);
        await page.getByRole('img', { name: /Sequence diagram of conversation/ }).waitFor();
        await page.locator('[data-testid="arrow"][data-performative="accept-proposal"]').click();
        await page.getByTestId('message-detail').waitFor();
        await expectAccessible(page, `a conversation at ${width}`);
        await screenshot(page, 'conversation');
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
});
