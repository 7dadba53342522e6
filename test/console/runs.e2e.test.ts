/**
 * The Runs pages in a real browser against a real server with the scripted model: an agent whose
 * calculator calls need a person's approval (`[execution] require_approval`). The list filtered to
 * what waits, a waiting run opened and approved in the page until it answers, another denied with
 * a reason that reaches the model (its answer quotes it), a resumed run's interrupted call and
 * resumes marked, the links from an agent's page and the overview, and axe on each page.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'smol-toml';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanup, startServe, tempDir, type ServeProcess } from '../cli/helpers/cli.js';
import { startLlmStub, stubLlmSection } from '../execution/helpers/llm-stub.js';
import { http } from '../helpers/http.js';
import { adminKeyOf, bearer } from '../helpers/keys.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import {
  consoleTimeouts,
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

consoleTimeouts();

const CAREFUL = `name = "careful"
description = "Does arithmetic once a person allows it."
capabilities = ["careful-arithmetic"]
tools = ["calculator"]
system_prompt = "Use the calculator."

[execution]
require_approval = ["calculator"]
`;
/** Its model answers long after its timeout: every execution of it fails. */
const SLOWPOKE = `name = "slowpoke"
capabilities = ["slowness"]
system_prompt = "Take your time."

[llm]
provider = "slow"

[limits]
timeout = "300ms"
`;
const SLOW_PROVIDER = `
[llm.providers.slow]
type = "scripted"
script = "replies.toml"
latency = "60s"
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
      startConsoleServer({
        agentFiles: { 'careful.toml': CAREFUL, 'helper.toml': HELPER, 'slowpoke.toml': SLOWPOKE },
        toml: SLOW_PROVIDER,
      }),
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
      const approvalArgs = pending.getByTestId('approval-arguments');
      expect(await approvalArgs.locator('dt').allTextContents()).toEqual(['expression']);
      expect(await approvalArgs.locator('dd').allTextContents()).toEqual(['What is 6 * 7?']);
      expect(await page.getByTestId('run-status').textContent()).toBe('waiting for approval');
      // The first model turn is recorded with its tokens and finish reason, what it was sent (the
      // request, said to be reconstructed) and what it asked for, its arguments labelled.
      const turn = page.getByTestId('model-turn').first();
      expect(await turn.getByTestId('turn-finish').textContent()).toBe('tool_calls');
      expect(await turn.getByTestId('turn-tokens').textContent()).toMatch(/^\d+ in · \d+ out · \d+ in all$/);
      expect(await turn.getByTestId('turn-sent').textContent()).toContain('What is 6 * 7?');
      expect(await turn.getByTestId('turn-sent-note').textContent()).toMatch(/^Reconstructed from the run's request/);
      const asked = turn.getByTestId('turn-call-arguments');
      expect(await asked.locator('dt').allTextContents()).toEqual(['expression']);
      expect(await asked.locator('dd').allTextContents()).toEqual(['What is 6 * 7?']);
      // The wait for a person is on the timeline, still going.
      await page.locator('[data-testid="timeline-span"][data-kind="approval"]').waitFor();
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
      // The second turn was sent the call's result, and received the answer.
      const second = page.getByTestId('model-turn').nth(1);
      expect(await second.getByTestId('turn-sent').textContent()).toMatch(/^tool result calculator .*42$/);
      expect(await second.getByTestId('turn-sent-note').textContent()).toMatch(
        /^Reconstructed from the results of turn 1/,
      );
      expect(await second.getByTestId('turn-finish').textContent()).toBe('stop');
      // The timeline from the step times: choosing a span scrolls to its step and marks it.
      const spans = page.getByTestId('timeline-span');
      expect(await spans.evaluateAll((l) => l.map((e) => e.getAttribute('data-kind')))).toEqual([
        'model',
        'approval',
        'tool',
        'model',
      ]);
      await spans.nth(3).getByRole('button', { name: 'model turn 2' }).click();
      await expect.poll(() => second.getAttribute('data-highlighted')).toBe('true');
      // Focus moves in an effect after the render that marks the step: asked until it has run.
      await expect.poll(() => page.evaluate('document.activeElement.id')).toBe('step-model-2');
      await spans.nth(2).getByRole('button', { name: 'tool calculator' }).click();
      await expect.poll(() => call.first().locator('xpath=..').getAttribute('data-highlighted')).toBe('true');
      expect(await second.getAttribute('data-highlighted')).toBeNull();
      // Finished: its execution record's trace is on the same page; turns and tokens are the steps'.
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
      expect(await call.getByTestId('step-arguments').locator('dt').allTextContents()).toEqual(['line']);
      expect(await call.getByTestId('step-arguments').locator('dd').allTextContents()).toEqual(['one']);
      // Rows of an older server carry no step times: no timeline, said so.
      await page.getByTestId('no-step-times').waitFor();
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

  it('a run whose server was killed mid-run shows the gap before it resumed, on the timeline and in its steps', async () => {
    // A real `caxton serve`, killed with SIGKILL as the model is asked for the run's second turn
    // (the first turn's reply and its call's result committed), then started again: it resumes the run.
    assertBuilt();
    let server: ServeProcess | undefined;
    let killed = false;
    const stub = await startLlmStub((hit) => {
      const results = (hit.body.messages as { role: string }[]).filter((m) => m.role === 'tool').length;
      if (results === 0) {
        const wire = (hit.body.tools as { function: { name: string } }[])[0]!.function.name;
        return { tool_calls: [{ id: 'c1', name: wire, arguments: { expression: '6 * 7' } }] };
      }
      if (!killed) {
        killed = true;
        server?.child.kill('SIGKILL');
        return { content: 'never heard', delayMs: 10_000 };
      }
      return { content: 'The answer is 42.' };
    });
    const dir = tempDir('caxton-console-resume-');
    try {
      mkdirSync(join(dir, 'agents'));
      writeFileSync(
        join(dir, 'agents', 'adder.toml'),
        stringify({ name: 'adder', tools: ['calculator'], system_prompt: 'Add.' }),
      );
      writeFileSync(
        join(dir, 'caxton.toml'),
        stringify({
          data_dir: './data',
          agents_dir: './agents',
          logging: { level: 'warn' },
          auth: { enabled: true },
          llm: stubLlmSection(stub.url),
        }),
      );
      const start = () =>
        startServe({
          cwd: dir,
          args: ['--config', join(dir, 'caxton.toml')],
          env: { STUB_KEY: 'k' },
          readyTimeoutMs: 30_000,
        });
      server = await start();
      const admin = adminKeyOf(join(dir, 'data'));
      const call = <T>(url: string, method: string, path: string, body?: unknown) =>
        http<T>(url, method, path, {
          headers: bearer(admin),
          ...(body !== undefined && { body: JSON.stringify(body), contentType: 'application/json' }),
        });
      const r = await call<{ run_id: string }>(server.url, 'POST', '/api/v1/agents/adder/runs', {
        request: 'What is 6 * 7?',
      });
      expect(r.status, r.text).toBe(202);
      const id = r.json.run_id;
      await server.exited;
      expect(killed).toBe(true);
      server = await start();
      const url = server.url;
      await waitUntil(
        async () => (await call<{ status: string }>(url, 'GET', `/api/v1/runs/${id}`)).json.status === 'completed',
        {
          timeoutMs: PAGE_WAIT_MS,
          what: `run ${id} completed after its resume`,
        },
      );

      const { page, problems, close } = await openPage(browser);
      try {
        await signIn(page, url, admin, `/ui/runs/${id}`);
        await page.getByTestId('run-steps').waitFor();
        expect(await page.getByTestId('run-resumes').textContent()).toContain('resumed once');
        // Placed where it happened, with the gap since the last step before the kill; nothing left unplaced.
        const gap = page.getByTestId('resume-gap');
        expect(await gap.count()).toBe(1);
        expect(await gap.textContent()).toMatch(
          /^Resumed after an interruption, [\d.]+ (ms|s|min) after its last recorded step/,
        );
        expect(await page.getByTestId('resume-unlocated').count()).toBe(0);
        // The timeline: the first turn and its call, the gap, the turn after the resume.
        const spans = page.getByTestId('timeline-span');
        expect(await spans.evaluateAll((l) => l.map((e) => e.getAttribute('data-kind')))).toEqual([
          'model',
          'tool',
          'gap',
          'model',
        ]);
        await spans.nth(2).getByRole('button', { name: 'stopped, then resumed' }).click();
        await expect.poll(() => gap.getAttribute('data-highlighted')).toBe('true');
        expect(await page.getByTestId('run-answer').textContent()).toBe('The answer is 42.');
        await expectAccessible(page, 'a run resumed after a kill');
        await screenshot(page, 'run-resumed');
        expect(problems).toEqual([]);
      } finally {
        await close();
      }
    } finally {
      server?.child.kill('SIGTERM');
      await server?.exited;
      await cleanup();
      await stub.close();
    }
  }, 120_000);

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

  it("a failed invoke's execution.finished event names its run, and leads to its page", async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/events');
      await page.getByRole('heading', { name: 'Events', level: 1 }).waitFor();
      const r = await api<{ error: { code: string } }>('POST', '/api/v1/agents/slowpoke/invoke', { request: 'hurry' });
      expect(r.json.error.code, r.text).toBe('timeout');
      const finished = page.locator('[data-type="execution.finished"]').filter({ hasText: 'slowpoke' });
      await finished.waitFor();
      const stored = await api<{ events: { data: { status: string; execution_id: string | null } }[] }>(
        'GET',
        '/api/v1/events?type=execution.finished&agent=slowpoke',
      );
      const { status, execution_id: id } = stored.json.events[0]!.data;
      expect(status).toBe('timeout');
      expect(id).toMatch(/^exec_/);
      const link = finished.getByTestId('run-link');
      expect(await link.getAttribute('href')).toBe(`/ui/runs/${id}`);
      await link.click();
      await page.waitForURL(`${cs.url}/ui/runs/${id}`);
      // It recorded no step, so its run was never written: its execution record tells how it ended.
      await expect
        .poll(() => page.getByTestId('run-status').textContent())
        .toMatch(/^failed: .*did not finish within 300 ms/);
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
