/**
 * The Runs pages in a real browser against a real server with the scripted model: an agent whose
 * calculator calls need a person's approval (`[execution] require_approval`). The list filtered to
 * what waits, a waiting run opened and approved in the page until it answers, another denied with
 * a reason that reaches the model (its answer quotes it), a resumed run's interrupted call and
 * resumes marked, the links from an agent's page and the overview, and axe on each page.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { bearer } from '../helpers/keys.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import {
  expectAccessible,
  expectNoSideScroll,
  launchBrowser,
  openPage,
  PAGE_WAIT_MS,
  screenshot,
  signIn,
  startConsoleServer,
  WIDTHS,
  type ConsoleServer,
} from './harness.js';

const CAREFUL = `name = "careful"
description = "Does arithmetic once a person allows it."
capabilities = ["careful-arithmetic"]
tools = ["calculator"]
system_prompt = "Use the calculator."

[execution]
require_approval = ["calculator"]
`;
const HELPER = `name = "helper"
capabilities = ["arithmetic"]
tools = ["calculator"]
system_prompt = "You help with sums."
`;

describe.skipIf(!hasSystem('chromium'))('web console: runs (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  const api = <T>(method: string, path: string, body?: unknown) =>
    http<T>(cs.url, method, path, {
      headers: bearer(cs.admin),
      ...(body !== undefined && { body: JSON.stringify(body), contentType: 'application/json' }),
    });
  /** Starts a background run of `agent` and waits until it is in `status`. */
  const startRun = async (agent: string, request: string, status: string): Promise<string> => {
    const r = await api<{ run_id: string }>('POST', `/api/v1/agents/${agent}/runs`, { request });
    expect(r.status, r.text).toBe(202);
    const id = r.json.run_id;
    await waitUntil(async () => (await api<{ status: string }>('GET', `/api/v1/runs/${id}`)).json.status === status, {
      timeoutMs: PAGE_WAIT_MS,
      what: `run ${id} ${status}`,
    });
    return id;
  };

  beforeAll(async () => {
    [cs, browser] = await Promise.all([
      startConsoleServer({ agentFiles: { 'careful.toml': CAREFUL, 'helper.toml': HELPER } }),
      launchBrowser(),
    ]);
  });
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    removeTempDirs();
  });

  it('lists runs, filters the waiting ones, approves one in its page and sees it answer', async () => {
    const done = await startRun('helper', 'What is 1 + 1?', 'completed');
    const waiting = await startRun('careful', 'What is 6 * 7?', 'awaiting_approval');
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui');
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Runs' }).click();
      await page.getByRole('heading', { name: 'Runs', level: 1 }).waitFor();
      const rows = page.getByTestId('run-row');
      await expect.poll(() => rows.count()).toBeGreaterThanOrEqual(2);
      await page.locator(`[data-testid="run-row"]:has(a[href="/ui/runs/${done}"])`).waitFor();
      await expectAccessible(page, 'runs list');

      // The waiting filter: its count on the button, pressed, in the URL, only waiting runs.
      const filter = page.getByTestId('waiting-filter');
      await expect.poll(() => filter.textContent()).toBe('Waiting for approval (1)');
      await filter.click();
      await page.waitForURL(`${cs.url}/ui/runs?status=awaiting_approval`);
      expect(await filter.getAttribute('aria-pressed')).toBe('true');
      await expect.poll(() => rows.count()).toBe(1);
      expect(await rows.first().getAttribute('data-status')).toBe('awaiting_approval');
      expect(await rows.first().textContent()).toContain('waiting for approval');
      expect(await page.getByLabel('State').inputValue()).toBe('awaiting_approval');

      // The run: the call it waits on with its arguments, Approve.
      await rows.first().getByRole('link').click();
      await page.waitForURL(`${cs.url}/ui/runs/${waiting}`);
      await page.getByRole('heading', { name: `Run ${waiting}`, level: 1 }).waitFor();
      const pending = page.getByTestId('pending-approval');
      await pending.waitFor();
      expect(await pending.getByRole('heading', { level: 3 }).textContent()).toMatch(/^calculator/);
      expect(JSON.parse((await pending.getByTestId('approval-arguments').textContent())!)).toEqual({
        expression: 'What is 6 * 7?',
      });
      expect(await page.getByTestId('run-status').textContent()).toBe('waiting for approval');
      // The first model turn is recorded with its tokens and finish reason.
      const turn = page.getByTestId('model-turn').first();
      expect(await turn.getByTestId('turn-finish').textContent()).toBe('tool_calls');
      expect(await turn.getByTestId('turn-tokens').textContent()).toMatch(/^\d+ in · \d+ out · \d+ in all$/);
      await expectAccessible(page, 'a run waiting for approval');

      await pending.getByRole('button', { name: 'Approve' }).click();
      await expect.poll(() => page.getByTestId('run-status').textContent()).toBe('completed');
      await page.getByTestId('run-answer').getByText('The answer is 42.').waitFor();
      expect(await page.getByTestId('pending-approvals').count()).toBe(0);
      // The steps: the call ran once with its labelled arguments and result, after the decision.
      const call = page.getByTestId('step-tool-call');
      expect(await call.count()).toBe(1);
      expect(await call.getByTestId('step-approval').textContent()).toMatch(/approved by /);
      expect(await call.getByTestId('tool-result').textContent()).toBe('42');
      expect(await page.getByTestId('resume-gap').textContent()).toMatch(
        /^Waited for approval of calculator from .+ and resumed when .+ approved it/,
      );
      // Finished: its execution record's timeline is on the same page; turns and tokens are the steps'.
      await page.getByTestId('waterfall').waitFor();
      expect(await page.getByTestId('run-usage').textContent()).toMatch(/^2 model turns · \d+ tokens · /);
      await expectAccessible(page, 'an approved run, finished');
      await screenshot(page, 'run-approved');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('denies a waiting call with a reason, from the keyboard, and the answer carries the reason', async () => {
    const id = await startRun('careful', 'What is 2 + 3?', 'awaiting_approval');
    const { page, problems, close } = await openPage(browser);
    try {
      // From the agent's page to its runs.
      await signIn(page, cs.url, cs.admin, '/ui/agents/careful');
      await page.getByTestId('agent-runs').click();
      await page.waitForURL(`${cs.url}/ui/runs?agent=careful`);
      const link = page.locator(`a[href="/ui/runs/${id}"]`);
      await link.waitFor();
      expect(await page.getByLabel('Agent').inputValue()).toBe('careful');
      const agents = await page.getByTestId('run-row').locator('td[data-label="Agent"]').allTextContents();
      expect(new Set(agents)).toEqual(new Set(['careful']));
      await link.click();

      const pending = page.getByTestId('pending-approval');
      await pending.waitFor();
      await pending.getByRole('button', { name: 'Deny…' }).focus();
      await page.keyboard.press('Enter');
      await page.getByLabel('Why deny it? The model is told this reason.').waitFor();
      await expect
        .poll(() => page.evaluate('document.activeElement.tagName + " " + document.activeElement.id'))
        .toMatch(/^TEXTAREA approval-/);
      // Nothing is sent without a reason.
      expect(await pending.getByRole('button', { name: 'Deny the call' }).isDisabled()).toBe(true);
      await page.keyboard.type('not on a Sunday');
      await expectAccessible(page, 'denying a call');
      await page.keyboard.press('Tab');
      await page.keyboard.press('Enter');

      await expect.poll(() => page.getByTestId('run-status').textContent()).toBe('completed');
      const answer = page.getByTestId('run-answer');
      await answer.waitFor();
      expect(await answer.textContent()).toMatch(/^The answer is .*approval was denied: not on a Sunday/);
      const call = page.getByTestId('step-tool-call');
      expect(await call.getByTestId('step-approval').textContent()).toMatch(/denied by .+: “not on a Sunday”$/);
      expect(await call.locator('summary').textContent()).toMatch(/failed in/);
      // The server recorded the same decision.
      const run = await api<{ approvals: { decision: string; reason: string }[] }>('GET', `/api/v1/runs/${id}`);
      expect(run.json.approvals.map((a) => [a.decision, a.reason])).toEqual([['denied', 'not on a Sunday']]);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('marks a resumed run: its interrupted call, where it resumed, and the resumes its steps do not show', async () => {
    // A run as a crash leaves it, written into the server's journal as the server would have: the
    // append was running when the server died, so the resumed run did not repeat it. Crashing the
    // server itself is test/execution's (durable-runs-*.test.ts); this is about what the page shows.
    const id = 'exec_00000000-0000-7000-8000-00000000c0de';
    const reply = (content: string, calls: { id: string; name: string; arguments: unknown }[]) => ({
      content,
      tool_calls: calls,
      usage: { input_tokens: 10, output_tokens: 5, total_tokens: 15 },
      finish_reason: calls.length > 0 ? 'tool_calls' : 'stop',
      provider: 'scripted',
      model: 's',
      latency_ms: 4,
    });
    const steps = [
      { kind: 'model', turn: 1, reply: reply('', [{ id: 'c1', name: 'journal.append', arguments: { line: 'one' } }]) },
      { kind: 'tool_start', turn: 1, id: 'c1', name: 'journal.append' },
      {
        kind: 'tool_end',
        turn: 1,
        id: 'c1',
        name: 'journal.append',
        result: 'the call was interrupted and its outcome is unknown',
        is_error: true,
        duration_ms: 0,
        interrupted: true,
      },
      { kind: 'model', turn: 2, reply: reply('I could not tell whether the line was appended.', []) },
    ];
    const db = new Database(join(cs.srv.dataDir, 'caxton.db'));
    try {
      db.pragma('busy_timeout = 10000');
      const now = Date.now();
      db.prepare(
        `INSERT INTO runs (id, key, agent, origin, status, principal, request, created_at, updated_at, resumes, response)
         VALUES (?, NULL, 'careful', 'invoke', 'completed', 'key:ops', ?, ?, ?, 2, ?)`,
      ).run(
        id,
        JSON.stringify({ request: 'Append one.' }),
        now - 60_000,
        now,
        JSON.stringify({ content: 'I could not tell whether the line was appended.' }),
      );
      const step = db.prepare('INSERT INTO run_steps (run_id, seq, ts, steps) VALUES (?, ?, ?, ?)');
      steps.forEach((s, i) => step.run(id, i, now - 60_000 + i, JSON.stringify([s])));
    } finally {
      db.close();
    }
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, `/ui/runs/${id}`);
      await page.getByTestId('run-steps').waitFor();
      const call = page.getByTestId('step-tool-call');
      expect(await call.locator('summary').textContent()).toContain('interrupted: outcome unknown, not run again');
      expect(JSON.parse((await call.getByTestId('step-arguments').textContent())!)).toEqual({ line: 'one' });
      expect(await page.getByTestId('resume-gap').textContent()).toMatch(
        /^Resumed after an interruption: the call of journal\.append above was running when the server stopped/,
      );
      // Two resumes, one of them marked: the other is counted, not placed.
      expect(await page.getByTestId('resume-unlocated').textContent()).toMatch(/^Resumed once after an interruption/);
      expect(await page.getByTestId('run-resumes').textContent()).toContain('resumed 2 times');
      // No execution record for it: the steps stand alone.
      await page.getByTestId('no-execution-record').waitFor();
      expect(await page.getByTestId('run-answer').textContent()).toBe(
        'I could not tell whether the line was appended.',
      );
      await expectAccessible(page, 'a resumed run');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("the overview's failure count leads to the failed runs", async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui');
      await page.getByRole('link', { name: /^error rate/ }).click();
      await page.waitForURL(`${cs.url}/ui/runs?status=failed`);
      expect(await page.getByLabel('State').inputValue()).toBe('failed');
      await page.getByTestId('run-count').getByText('No runs match.').waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  for (const width of WIDTHS) {
    it(`the runs pages at ${width} px`, async () => {
      const id = await startRun('careful', 'What is 3 * 3?', 'awaiting_approval');
      const { page, problems, close } = await openPage(browser, width);
      try {
        await signIn(page, cs.url, cs.admin, '/ui/runs');
        await page.getByTestId('run-row').first().waitFor();
        await expectNoSideScroll(page);
        await expectAccessible(page, `runs at ${width} px`);
        await screenshot(page, 'runs');
        await page.goto(`${cs.url}/ui/runs/${id}`);
        await page.getByTestId('pending-approval').waitFor();
        await expectNoSideScroll(page);
        await expectAccessible(page, `a waiting run at ${width} px`);
        await screenshot(page, 'run-approval');
        expect(problems).toEqual([]);
      } finally {
        await close();
      }
    });
  }
});
