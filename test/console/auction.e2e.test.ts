/**
 * An English auction in the console, in a real browser: the conversation page shows the sequence
 * diagram of every round and a rounds summary (asking price, who bid, who dropped out, the award).
 * Bidders are configuration agents whose LLM is the scripted stub.
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
  signIn,
  startConsoleServer,
  type ConsoleServer,
} from './harness.js';
import { agentFiles, agentOf, lastUser, sendMessage, stubToml, type Json } from './messaging-fixtures.js';

consoleTimeouts();

const LIMITS: Record<string, number> = { 'bidder-a': 14, 'bidder-b': 11 };

describe.skipIf(!hasSystem('chromium'))('console: an auction (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  let stub: LlmStub;

  beforeAll(async () => {
    setTestKeys();
    stub = await startLlmStub((hit) => {
      const agent = agentOf(hit);
      const prompt = lastUser(hit);
      if (prompt.includes('"cfp" message')) {
        const asking = Number(/Asking price: (\d+)/.exec(prompt)?.[1]);
        // Bids and drop-outs go through the acts the round offers as tools (src/messaging/acts.ts).
        const [name, args] =
          asking <= LIMITS[agent]! ? ['propose', { price: asking }] : ['refuse', { reason: `too dear at ${asking}` }];
        return { content: '', tool_calls: [{ id: `call_${name}`, name, arguments: args }] };
      }
      return { content: `${agent} pays` };
    });
    [cs, browser] = await Promise.all([
      startConsoleServer({
        toml: stubToml(stub.url),
        agentFiles: agentFiles(
          Object.keys(LIMITS).map((name) => ({ name, capabilities: ['bidding'], llm: { provider: 'stub' } })),
        ),
      }),
      launchBrowser(),
    ]);
  });
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    await stub?.close();
    removeTempDirs();
    removeExecutionDirs();
  });

  // The conversation may take up to 30 s to complete: the test's own time holds that wait and the rest.
  it('shows each round with its asking price, the bidders and the award, beside the diagram', async () => {
    const sent = (await sendMessage(cs.url, cs.admin, {
      performative: 'cfp',
      protocol: 'fipa-english-auction',
      capability: 'bidding',
      content: 'Lot 3: a lamp',
      params: { 'X-start-price': '8', 'X-increment': '3' },
      reply_by: '30s',
    })) as Json;
    const id = sent.conversation_id as string;
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, `/ui/conversations/${id}`);
      await page.getByTestId('conversation-state').getByText('completed').waitFor({ timeout: 30_000 });
      await page.getByTestId('rounds-award').getByText('Won by bidder-a at 14').waitFor();
      expect(await page.getByRole('heading', { name: 'English auction' }).count()).toBe(1);
      // 8 and 11: both bid; 14: only bidder-a, who wins.
      expect(await page.getByTestId('rounds').locator('li').allTextContents()).toEqual([
        'Round 1 (asking 8) to bidder-a, bidder-b: bids from bidder-a, bidder-b; out: none',
        'Round 2 (asking 11) to bidder-a, bidder-b: bids from bidder-a, bidder-b; out: none',
        'Round 3 (asking 14) to bidder-a, bidder-b: bids from bidder-a; out: bidder-b',
      ]);
      const perfs = await page
        .getByTestId('arrow')
        .evaluateAll((els) => els.map((e) => e.getAttribute('data-performative')));
      expect(perfs.filter((p) => p === 'cfp')).toHaveLength(3);
      expect(perfs.filter((p) => p === 'accept-proposal')).toHaveLength(1);
      // The bids card: the auction's rule, each round's bids as values, and why the winner won.
      await page.getByTestId('bids-why').getByText('bidder-a was the last bidder left at 14 (round 3)').waitFor();
      expect(await page.getByTestId('bids-rule').textContent()).toContain('English auction');
      expect(await page.getByTestId('bids-table').count()).toBe(3);
      await expectAccessible(page, 'an auction conversation');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 60_000);
});
