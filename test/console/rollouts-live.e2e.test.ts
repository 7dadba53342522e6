/**
 * A canary rollout followed live in a real browser: deployed from the editor with its canary
 * options (a wrong option explained under its field), then, while requests run through the real
 * server with the scripted model, the open "Versions and rollout" page moves by itself through
 * the canary's stages, shows both versions' figures, and ends promoted, with what happened when.
 * Also: rolling back to an earlier version asks first and shows the diff; any version can be
 * viewed and compared with the live one, and comparing with another version never shows the
 * previous comparison's text under the new heading, not even for a frame.
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
  launchBrowser,
  openPage,
  screenshot,
  signIn,
  startConsoleServer,
  type ConsoleServer,
} from './harness.js';

consoleTimeouts();

const agent = (name: string, n: number) =>
  `name = "${name}"\ncapabilities = ["${name}"]\nsystem_prompt = "You are ${name} v${n}."\n`;

describe.skipIf(!hasSystem('chromium'))('web console: live rollouts (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  const api = <T>(method: string, path: string, body?: string, contentType = 'application/toml') =>
    http<T>(cs.url, method, path, { headers: bearer(cs.admin), ...(body !== undefined && { body, contentType }) });

  beforeAll(async () => {
    [cs, browser] = await Promise.all([startConsoleServer(), launchBrowser()]);
    for (const name of ['canaried', 'restored']) {
      const r = await api('POST', '/api/v1/agents', agent(name, 1));
      expect(r.status, r.text).toBe(201);
    }
  });
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    removeTempDirs();
  });

  // Two stages held 2 s each, driven request by request, and page waits of up to PAGE_WAIT_MS each: more than the 30 s default.
  it('a canary deployed from the editor moves through its stages to promotion on the open page', async () => {
    const { page, problems, close } = await openPage(browser);
    type Status = {
      running: boolean;
      rollout: { state: string; reason: string | null } | null;
      canary: { stage: number; candidate: { requests: number } } | null;
    };
    const status = async () => (await api<Status>('GET', '/api/v1/agents/canaried/rollout')).json;
    let sent = 0;
    /**
     * Requests through the server, each its own conversation (a canary shares out new
     * conversations), one at a time until `done` holds of the rollout. The judge moves a stage on
     * only after two candidate requests, so the test decides when the page can see each state.
     */
    const driveUntil = async (done: (s: Status) => boolean) => {
      for (let s = await status(); !done(s); s = await status()) {
        if (!s.running) throw new Error(`the rollout ended ${s.rollout?.state}: ${s.rollout?.reason}`);
        const r = await api(
          'POST',
          '/api/v1/agents/canaried/invoke',
          JSON.stringify({ request: `question ${sent++}` }),
          'application/json',
        );
        if (r.status !== 200) throw new Error(`invoke answered ${r.status}: ${r.text}`);
        await new Promise((res) => setTimeout(res, 20));
      }
    };
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents/canaried/edit');
      const editor = page.getByLabel('Agent file');
      await expect.poll(() => editor.innerText()).toContain('canaried v1');
      await editor.fill(agent('canaried', 2));
      await page.getByLabel('Strategy').selectOption('canary');
      const options = page.getByTestId('canary-options');
      await options.waitFor();
      await expectAccessible(page, 'agents: the deploy form with canary options');

      // A wrong option is explained under its own field, in the console's words; nothing starts.
      await page.getByLabel('Stages (percent of new conversations)').fill('50,20');
      await page.getByRole('button', { name: 'Review and deploy' }).click();
      await page.getByTestId('deploy-review').getByRole('button', { name: 'Deploy now' }).click();
      const wrong = page.locator('#canary-stages-error');
      await wrong.waitFor();
      expect(await wrong.textContent()).toMatch(/^Stages must rise: 20 % comes after 50 %/);
      expect(await wrong.textContent()).not.toMatch(/querystring|request body|canary option/);
      expect(await page.getByLabel('Stages (percent of new conversations)').getAttribute('aria-invalid')).toBe('true');
      expect((await api<{ running: boolean }>('GET', '/api/v1/agents/canaried/rollout')).json.running).toBe(false);

      // A short canary: two stages, judged after two candidate requests and a two seconds' hold.
      await page.getByLabel('Stages (percent of new conversations)').fill('50,100');
      await page.getByLabel('Hold per stage').fill('2s');
      await page.getByLabel('Requests per stage before judging').fill('2');
      // The test moves the stages, not the judge's latency rule: with two requests a side, p99 is
      // the slowest one, and one request slowed by a busy machine would roll the canary back.
      await page.getByLabel('Largest p99 latency ratio').fill('1000');
      await page.getByRole('button', { name: 'Review and deploy' }).click();
      await page.getByTestId('deploy-review').getByRole('button', { name: 'Deploy now' }).click();
      await page.getByTestId('editor-status').getByText('Deployed version 2 as a canary rollout').waitFor();
      const started = await api<{ running: boolean; rollout: { plan: { stages: number[]; hold_ms: number } } }>(
        'GET',
        '/api/v1/agents/canaried/rollout',
      );
      expect(started.json.running).toBe(true);
      expect(started.json.rollout.plan).toMatchObject({ stages: [50, 100], hold_ms: 2000 });

      await page.getByRole('link', { name: 'Versions and rollout' }).click();
      await page.getByText('Rollout events: connected').waitFor();
      const stage = page.getByTestId('canary-stage');
      await stage.getByText('Stage 1 of 2').waitFor();
      expect(await stage.textContent()).toContain('50 %');
      await expectAccessible(page, 'agents: a running canary');
      await screenshot(page, 'agents-canary');

      // From here the page is never reloaded: it follows the rollout by itself. Each state is held
      // (one candidate request short of the judge) until the page has shown it.
      await driveUntil((s) => s.canary !== null && (s.canary.stage !== 0 || s.canary.candidate.requests >= 1));
      expect((await status()).canary).toMatchObject({ stage: 0, candidate: { requests: 1 } });
      const figures = page.getByTestId('canary-figures');
      await expect
        .poll(async () => Number((await figures.locator('tbody tr').nth(1).locator('td').first().textContent()) ?? 0))
        .toBe(1);
      await driveUntil((s) => s.canary !== null && s.canary.stage !== 0);
      const second = (await status()).canary;
      expect(second?.stage).toBe(1);
      expect(second?.candidate.requests).toBeLessThan(2);
      await stage.getByText('Stage 2 of 2').waitFor();
      await driveUntil((s) => s.rollout?.state === 'promoted');
      await page.getByTestId('rollout-state').getByText('promoted', { exact: true }).waitFor();
      expect(await page.getByTestId('live-version').textContent()).not.toBe('1');
      expect(await page.getByRole('button', { name: /^Promote/ }).count()).toBe(0);
      const history = page.getByTestId('rollout-history');
      await history.getByText('Promoted', { exact: true }).waitFor();
      expect(await history.innerText()).toContain('Next stage');
      expect(await history.innerText()).toContain('Started');
      const after = await api<{ running: boolean; rollout: { state: string } }>(
        'GET',
        '/api/v1/agents/canaried/rollout',
      );
      expect(after.json).toMatchObject({ running: false, rollout: { state: 'promoted' } });
      await expectAccessible(page, 'agents: a promoted canary');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 60_000);

  it('rolling back to an earlier version asks first, with the diff; any version can be viewed and compared', async () => {
    const r = await api('PUT', '/api/v1/agents/restored', agent('restored', 2));
    expect(r.status, r.text).toBe(200);
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents/restored/versions');
      const versions = page.getByTestId('versions');
      await versions.waitFor();

      await page.getByRole('button', { name: 'View version 1' }).click();
      expect(await page.getByTestId('version-text').textContent()).toBe(agent('restored', 1));
      await page.getByRole('button', { name: 'Diff with live: version 1' }).click();
      await page.getByTestId('version-shown').getByTestId('diff').locator('.cm-content').waitFor();
      expect(await page.getByTestId('version-shown').innerText()).toContain('You are restored v1.');
      // Any two versions: version 2 against version 1.
      await page.getByRole('button', { name: 'View version 2' }).click();
      expect(await page.getByTestId('version-text').textContent()).toBe(agent('restored', 2));
      await page.getByLabel('Compare with').selectOption('1');
      await page.getByTestId('version-shown').getByTestId('diff').locator('.cm-content').waitFor();
      expect(await page.getByTestId('version-shown').getByRole('heading').textContent()).toBe(
        'Version 2 against version 1',
      );
      await expectAccessible(page, 'agents: two versions compared');

      await page.getByRole('button', { name: 'Roll back to this: version 1' }).click();
      const ask = page.getByTestId('confirm');
      await ask.getByTestId('diff').locator('.cm-content').waitFor();
      await expectAccessible(page, 'agents: confirming a rollback');
      // Cancel changes nothing.
      await ask.getByRole('button', { name: 'Cancel' }).click();
      await ask.waitFor({ state: 'detached' });
      expect((await api<{ current: number }>('GET', '/api/v1/agents/restored/versions')).json.current).toBe(2);

      await page.getByRole('button', { name: 'Roll back to this: version 1' }).click();
      await page.getByTestId('confirm').getByRole('button', { name: 'Roll back to version 1' }).click();
      await page.getByTestId('rollback-result').getByText('Rolled back to version 1').waitFor();
      const live = await api<{ definition: { system_prompt: string } }>('GET', '/api/v1/agents/restored');
      expect(live.json.definition.system_prompt).toBe('You are restored v1.');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('comparing with another version never draws the previous comparison under the new heading', async () => {
    expect((await api('POST', '/api/v1/agents', agent('compared', 1))).status).toBe(201);
    for (const n of [2, 3])
      expect((await api('PUT', '/api/v1/agents/compared', agent('compared', n))).status).toBe(200);
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents/compared/versions');
      await page.getByTestId('versions').waitFor();
      await page.getByRole('button', { name: 'Diff with live: version 1' }).click();
      const shown = page.getByTestId('version-shown');
      await shown.getByTestId('diff').locator('.cm-content').waitFor();
      expect(await shown.getByRole('heading').textContent()).toBe('Version 1 against version 3 (live)');
      const against3 = (await shown.getByTestId('diff').textContent()) ?? '';
      expect(against3).toContain('You are compared v3.');
      // Every state of the section the page goes through, as each change lands in the document (a
      // mutation observer runs before the browser paints, so none is missed, however short).
      await page.evaluate(`(() => {
        window.seen = [];
        new MutationObserver(() => {
          const s = document.querySelector('[data-testid="version-shown"]');
          if (s) window.seen.push({ heading: s.querySelector('h4')?.textContent ?? '', diff: s.querySelector('[data-testid="diff"]')?.textContent ?? '' });
        }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
      })()`);
      await page.getByLabel('Compare with').selectOption('2');
      await expect.poll(() => shown.getByTestId('diff').textContent()).toContain('You are compared v2.');
      expect(await shown.getByRole('heading').textContent()).toBe('Version 1 against version 2');
      const seen = (await page.evaluate('window.seen')) as { heading: string; diff: string }[];
      const underNew = seen.filter((f) => f.heading === 'Version 1 against version 2');
      expect(underNew.length).toBeGreaterThan(0);
      expect(
        underNew.filter((f) => f.diff.includes('You are compared v3.')).length,
        "states showing version 3's text under the heading of the comparison with version 2",
      ).toBe(0);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('a promotion made elsewhere (the API, the CLI) shows on the open page without a reload', async () => {
    const r = await api('PUT', '/api/v1/agents/restored?strategy=blue-green', agent('restored', 3));
    expect(r.status, r.text).toBe(200);
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents/restored/versions');
      await page.getByTestId('rollout-state').getByText('running', { exact: true }).waitFor();
      await page.getByText('Rollout events: connected').waitFor();
      const promoted = await api('POST', '/api/v1/agents/restored/promote');
      expect(promoted.status, promoted.text).toBe(200);
      await page.getByTestId('rollout-state').getByText('promoted', { exact: true }).waitFor();
      expect(await page.getByRole('button', { name: /^Promote/ }).count()).toBe(0);
      await page.getByTestId('rollout-history').getByText('Promoted', { exact: true }).waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("a deploy refused while a rollout runs is explained in the console's words", async () => {
    const r = await api('PUT', '/api/v1/agents/restored?strategy=blue-green', agent('restored', 7));
    expect(r.status, r.text).toBe(200);
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/agents/restored/edit');
      const editor = page.getByLabel('Agent file');
      await expect.poll(() => editor.innerText()).toContain('restored v');
      await editor.fill(agent('restored', 8));
      await page.getByRole('button', { name: 'Review and deploy' }).click();
      await page.getByTestId('deploy-review').getByRole('button', { name: 'Deploy now' }).click();
      const alert = page.getByRole('alert').filter({ hasText: 'A rollout of restored is running' });
      await alert.waitFor();
      expect(await alert.textContent()).toContain('promote it or roll it back under Versions and rollout');
      expect(await alert.textContent()).not.toContain('caxton agent');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
