/**
 * Replaying and discarding many dead letters at once, in a real browser and over the API: four deliveries fail
 * for good (their agents' provider answers 503, [messaging] max_attempts = 1), two of them to one
 * receiver. Filtered by that receiver, the console counts first, names the count in its
 * confirmation, and replays only that receiver's; the others stay. The API counts without
 * replaying (dry run), refuses a selection without a filter naming the field, takes only what a
 * scoped key may read, and refuses a viewer naming the permission. The overview's card and a
 * failed conversation lead to the dead letters. A dead letter lists each attempt's error with its
 * time and links to the run that failed; a conversation's message links to the run that answered it.
 * Discarding by receiver deletes only that receiver's; purging deletes the conversation too.
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
  launchBrowser,
  openPage,
  signIn,
  startConsoleServer,
  type ConsoleServer,
} from './harness.js';
import { agentFiles, agentOf, sendMessage, stubToml, type Json } from './messaging-fixtures.js';

consoleTimeouts();

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

  // Waits up to 30 s for the replayed conversations after the page's own: more than the 30 s default.
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
      await page.getByText('Replay, discard or purge many').click();
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
  }, 60_000);

  it("lists a dead letter's attempts and run, leads from a conversation's message to its run, and discards one receiver's", async () => {
    const operator = await cs.keyFor('operator');
    const before = await deadLetters();
    const fragile = before.filter((d) => d.receiver === 'fragile');
    expect(fragile).toHaveLength(1);
    const one = fragile[0];
    expect(one.attempt_errors).toHaveLength(1);
    expect(one.attempt_errors[0].error).toContain("fragile's model is overloaded");
    expect(Number.isFinite(Date.parse(one.attempt_errors[0].at))).toBe(true);
    // Brittle's replayed deliveries were answered by a run each: the record names the message.
    let brittleConv: Json[] = [];
    await waitUntil(
      async () => {
        const r = await http<Json>(cs.url, 'GET', `/api/v1/executions?agent=brittle&status=ok`, {
          headers: bearer(cs.admin),
        });
        brittleConv = (r.json.executions as Json[] | undefined) ?? [];
        return brittleConv.length > 0;
      },
      { timeoutMs: 10_000, what: "brittle's runs recorded" },
    );
    const answered = brittleConv[0];
    const byMessage = await http<Json>(
      cs.url,
      'GET',
      `/api/v1/executions?conversation=${answered.conversation_id}&message=${answered.message_id}`,
      { headers: bearer(cs.admin) },
    );
    // The run that failed on it before the replay, and the one that answered it after.
    expect((byMessage.json.executions as Json[]).map((e) => [e.id === answered.id, e.status])).toEqual([
      [true, 'ok'],
      [false, 'error'],
    ]);

    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, operator, `/ui/dead-letters/${one.id}`);
      await page.getByRole('heading', { name: `Dead letter #${one.id}` }).waitFor();
      const tried = page.getByTestId('attempt-error');
      await tried.first().waitFor();
      expect(await tried.count()).toBe(1);
      expect(await tried.first().textContent()).toContain("fragile's model is overloaded");
      expect(await tried.first().locator('time').getAttribute('datetime')).toBe(one.attempt_errors[0].at);
      // The run that failed on it.
      await page.getByTestId('run-link').first().click();
      await page.waitForURL(/\/ui\/runs\//);
      await page.getByTestId('run-status').waitFor();
      expect(await page.getByRole('main').textContent()).toContain('fragile');

      // From a conversation's message to the run that answered it.
      await page.goto(`${cs.url}/ui/conversations/${answered.conversation_id}`);
      await page.getByText(/The same messages as a table/).click();
      const link = page.getByTestId('message-table').getByRole('link', { name: "brittle's run", exact: true });
      await link.first().waitFor();
      await link.first().click();
      await page.waitForURL(`${cs.url}/ui/runs/${answered.id}`);
      await page.getByTestId('run-status').waitFor();

      // Discard fragile's: counted, confirmed by its count, then gone; shaky's stays.
      await page.goto(`${cs.url}/ui/dead-letters`);
      await page.getByTestId('dead-letter-row').first().waitFor();
      await page.getByText('Replay, discard or purge many').click();
      await page.getByLabel('Discard: delete them (their conversations stay)').check();
      await page.getByLabel('To (exact agent name)').fill('fragile');
      await page.getByRole('button', { name: 'Count them…' }).click();
      const question = page.getByTestId('bulk-question');
      await question.waitFor();
      expect(await question.textContent()).toContain('Discard 1 dead letter to fragile?');
      expect(await deadLetters()).toHaveLength(before.length);
      await expectAccessible(page, 'bulk discard confirmation');
      await page.getByRole('button', { name: 'Yes, discard 1 dead letter' }).click();
      const result = page.getByTestId('bulk-result');
      await result.waitFor();
      expect(await result.textContent()).toContain('Deleted 1 dead letter.');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
    expect((await deadLetters()).map((d) => d.receiver)).toEqual(['shaky']);
    // A discard keeps the conversation.
    const kept = await http<Json>(cs.url, 'GET', `/api/v1/conversations/${one.message.conversation_id}`, {
      headers: bearer(cs.admin),
    });
    expect(kept.status).toBe(200);

    // Purge over the API: counted, then the dead letter goes with its conversation.
    const purge = (body: unknown) =>
      http<Json>(cs.url, 'POST', '/api/v1/dead-letters/purge', {
        headers: bearer(cs.admin),
        body: JSON.stringify(body),
        contentType: 'application/json',
      });
    const [shaky] = await deadLetters();
    expect((await purge({ receiver: 'shaky', dry_run: true })).json).toMatchObject({ matched: 1, discarded: [] });
    expect((await purge({ receiver: 'shaky' })).json).toMatchObject({
      matched: 1,
      discarded: [shaky.id],
      conversations: 1,
    });
    expect(await deadLetters()).toEqual([]);
    const gone = await http<Json>(cs.url, 'GET', `/api/v1/conversations/${shaky.message.conversation_id}`, {
      headers: bearer(cs.admin),
    });
    expect(gone.status).toBe(404);
  });
});
