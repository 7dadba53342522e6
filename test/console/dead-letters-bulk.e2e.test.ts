/**
 * Replaying many dead letters at once, in a real browser and over the API: five deliveries fail
 * for good (their agents' provider answers 503, [messaging] max_attempts = 1), two of them to one
 * receiver. Filtered by that receiver, the console counts first, names the count in its
 * confirmation, and replays only that receiver's; the others stay. The API counts without
 * replaying (dry run), refuses a selection without a filter naming the field, takes only what a
 * scoped key may read, and refuses a viewer naming the permission. The overview's card and a
 * failed conversation lead to the dead letters.
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
  expectAccessible,
  launchBrowser,
  openPage,
  signIn,
  startConsoleServer,
  type ConsoleServer,
} from './harness.js';
import { agentFiles, agentOf, sendMessage, stubToml, type Json } from './messaging-fixtures.js';

const AGENTS = ['fragile', 'brittle', 'shaky'];
/** What fails: two to brittle, one each to the others, and one more to shaky that another test discards nothing of. */
const SENDS = ['brittle', 'fragile', 'brittle', 'shaky'];

describe.skipIf(!hasSystem('chromium'))('console: bulk replay of dead letters (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  let stub: LlmStub;
  const down = new Set(AGENTS);

  const deadLetters = async (): Promise<Json[]> => {
    const r = await http<Json>(cs.url, 'GET', '/api/v1/dead-letters', { headers: bearer(cs.admin) });
    expect(r.status, r.text).toBe(200);
    return r.json.dead_letters as Json[];
  };
  const bulk = (key: string, body: unknown) =>
    http<Json>(cs.url, 'POST', '/api/v1/dead-letters/replay', {
      headers: bearer(key),
      body: JSON.stringify(body),
      contentType: 'application/json',
    });

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
        agentFiles: agentFiles(AGENTS.map((name) => ({ name, capabilities: [name], llm: { provider: 'flaky' } }))),
      }),
      launchBrowser(),
    ]);
    for (const [i, name] of SENDS.entries()) {
      const r = (await sendMessage(
        cs.url,
        cs.admin,
        { performative: 'request', receiver: name, content: `please, ${name} (${i})` },
        '?wait=30',
      )) as Json;
      expect(r.conversation.state, JSON.stringify(r.conversation)).toBe('failed');
    }
    expect((await deadLetters()).map((d) => d.receiver).sort()).toEqual([...SENDS].sort());
  });
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    await stub?.close();
    removeTempDirs();
    removeExecutionDirs();
  });

  it('the API counts without replaying, refuses an empty selection naming the field, and refuses a viewer', async () => {
    const dry = await bulk(cs.admin, { receiver: 'BRITTLE', dry_run: true });
    expect(dry.status, dry.text).toBe(200);
    expect(dry.json).toMatchObject({ dry_run: true, matched: 2, replayed: [], failed: [] });
    expect(await deadLetters()).toHaveLength(SENDS.length);

    // A receiver is matched whole: "brit" takes nothing.
    expect((await bulk(cs.admin, { receiver: 'brit', dry_run: true })).json.matched).toBe(0);
    expect((await bulk(cs.admin, { reason: "shaky's model", dry_run: true })).json.matched).toBe(1);
    expect((await bulk(cs.admin, { all: true, dry_run: true })).json.matched).toBe(SENDS.length);
    expect((await bulk(cs.admin, { until: '2000-01-01T00:00:00Z', dry_run: true })).json.matched).toBe(0);

    const none = await bulk(cs.admin, { dry_run: true });
    expect(none.status).toBe(400);
    expect(none.json.error.message).toContain('choose which dead letters');
    expect(none.json.error.details.field).toBe('receiver');
    const badTime = await bulk(cs.admin, { since: 'yesterday', dry_run: true });
    expect(badTime.status).toBe(400);
    expect(badTime.json.error.details.field).toBe('since');
    expect(badTime.json.error.message).not.toMatch(/\n\s+at /);
    const unknown = await bulk(cs.admin, { recipient: 'brittle' });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error.message).toContain('recipient');

    // A key scoped to fragile counts only fragile's, even asking for all.
    const scoped = await cs.keyFor('operator', { agents: ['fragile'] });
    expect((await bulk(scoped, { all: true, dry_run: true })).json.matched).toBe(1);
    expect((await bulk(scoped, { receiver: 'brittle', dry_run: true })).json.matched).toBe(0);

    const viewer = await cs.keyFor('viewer');
    const refused = await bulk(viewer, { receiver: 'brittle', dry_run: true });
    expect(refused.status).toBe(403);
    expect(refused.json.error.details.permission).toBe('dead_letters:replay');
    expect(await deadLetters()).toHaveLength(SENDS.length);
  });

  it("replays only one receiver's dead letters from the console, after a confirmation that names the count", async () => {
    const operator = await cs.keyFor('operator');
    const before = await deadLetters();
    const brittle = before.filter((d) => d.receiver === 'brittle');
    expect(brittle).toHaveLength(2);
    down.delete('brittle'); // its provider recovers
    const { page, problems, close } = await openPage(browser);
    try {
      // The failure path: the overview's card leads to the dead letters, and a failed conversation to its own.
      await signIn(page, cs.url, operator, '/ui');
      await page.getByTestId('stat-dead-letters').getByRole('link', { name: 'Dead letters' }).click();
      await page.waitForURL(`${cs.url}/ui/dead-letters`);
      await page.getByTestId('dead-letter-row').first().waitFor();
      const one = brittle[0];
      await page.goto(`${cs.url}/ui/conversations/${one.message.conversation_id}`);
      await page
        .getByTestId('conversation-dead-letters')
        .getByRole('link', { name: `dead letter #${one.id} to brittle` })
        .click();
      await page.getByRole('heading', { name: `Dead letter #${one.id}` }).waitFor();
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dead letters' }).click();
      await page.getByTestId('dead-letter-row').first().waitFor();
      await page.getByText('Replay many').click();
      await page.getByLabel('To (exact agent name)').fill('brittle');
      await page.getByRole('button', { name: 'Count them…' }).click();
      const question = page.getByTestId('bulk-question');
      await question.waitFor();
      expect(await question.textContent()).toContain('Replay 2 dead letters to brittle?');
      // Nothing happens before the confirmation.
      expect(await deadLetters()).toHaveLength(SENDS.length);
      await expectAccessible(page, 'bulk replay confirmation');
      await page.getByRole('button', { name: 'Yes, replay 2 dead letters' }).click();
      const result = page.getByTestId('bulk-result');
      await result.waitFor();
      expect(await result.textContent()).toContain('Replayed 2 dead letters.');
      await page.getByText(`2 shown of 2 dead letters`).waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
    const after = await deadLetters();
    expect(after.map((d) => d.receiver).sort()).toEqual(['fragile', 'shaky']);
    // Each replayed delivery reached brittle: its conversation completed.
    for (const d of brittle) {
      await waitUntil(
        async () => {
          const conv = await http<Json>(cs.url, 'GET', `/api/v1/conversations/${d.message.conversation_id}`, {
            headers: bearer(cs.admin),
          });
          return conv.json.conversation?.state === 'completed';
        },
        { timeoutMs: 30_000, what: `brittle's conversation ${d.message.conversation_id} completed` },
      );
    }
  });
});
