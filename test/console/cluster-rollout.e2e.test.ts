/**
 * The console of a cluster node shows a rollout started through another node (ADR 0054: the
 * rollout is the cluster's shared rows): two `caxton serve` nodes (authentication on, the scripted
 * model) on a nats-server started here and the machine's PostgreSQL; a blue-green rollout started
 * through node A is shown on node B's "Versions and rollout" page, and B's Promote button promotes
 * it for the whole cluster.
 */
import pg from 'pg';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterToml } from '../cluster/helpers/serve-nodes.js';
import { http } from '../helpers/http.js';
import { bearer } from '../helpers/keys.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
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

consoleTimeouts();

const run = hasSystem('chromium') && hasSystem('nats-server') && hasSystem('postgresql');
const schema = `caxton_console_cluster_${process.pid}_${Date.now()}`;
const support = (n: number) =>
  `name = "support"\ncapabilities = ["support"]\nsystem_prompt = "You are support v${n}."\n`;

describe.runIf(run)('web console of a cluster node: a rollout another node runs (chromium)', () => {
  let nats: NatsServer;
  let a: ConsoleServer;
  let b: ConsoleServer;
  let browser: Browser;
  const api = <T>(s: ConsoleServer, method: string, path: string, body?: string) =>
    http<T>(s.url, method, path, {
      headers: bearer(s.admin),
      ...(body !== undefined && { body, contentType: 'application/toml' }),
    });

  // A nats-server, two nodes on PostgreSQL one after the other, and up to 10 s for the agent to
  // reach node B: on a loaded machine that can outlast the 30 s default hook time.
  beforeAll(async () => {
    nats = await startNatsServer();
    a = await startConsoleServer({ toml: clusterToml('node-a', nats.url, schema) });
    [b, browser] = await Promise.all([
      startConsoleServer({ toml: clusterToml('node-b', nats.url, schema) }),
      launchBrowser(),
    ]);
    expect((await api(a, 'POST', '/api/v1/agents', support(1))).status).toBe(201);
    await waitUntil(async () => (await api(b, 'GET', '/api/v1/agents/support')).status === 200, {
      timeoutMs: 10_000,
      what: 'the agent on node B',
    });
    const started = await api(a, 'PUT', '/api/v1/agents/support?strategy=blue-green', support(2));
    expect(started.status, started.text).toBe(200);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await b?.close();
    await a?.close();
    await nats?.stop();
    const pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 1 });
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
    removeTempDirs();
  });

  it("node B's page shows the rollout started on node A, and its Promote button promotes it for both", async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, b.url, b.admin, '/ui/agents/support/versions');
      await page.getByTestId('rollout-state').getByText('running').waitFor();
      await expectAccessible(page, "a cluster node's versions and rollout, the rollout on another node");
      await page.getByRole('button', { name: 'Promote version 2' }).click();
      await page.getByTestId('confirm').getByRole('button', { name: 'Promote version 2' }).click();
      // What the card shows when the confirmation does not come: the refusal, or the state it reached.
      await page
        .getByTestId('rollout-result')
        .getByText('Promoted: version 2 is live')
        .waitFor()
        .catch(async (e: unknown) => {
          const shown = await page
            .locator('main')
            .innerText()
            .catch(() => '(page gone)');
          // Whether the promotion reached the cluster tells a request that hung from a page that missed its answer.
          const onB = await api(b, 'GET', '/api/v1/agents/support/rollout').catch((err: unknown) => String(err));
          throw new Error(
            `no promote confirmation on node B's page; it shows:\n${shown}\nnode B's API reads the rollout as: ${typeof onB === 'string' ? onB : onB.text}`,
            { cause: e },
          );
        });
      const onA = await api<{ running: boolean; rollout: { state: string } }>(
        a,
        'GET',
        '/api/v1/agents/support/rollout',
      );
      expect(onA.json).toMatchObject({ running: false, rollout: { state: 'promoted' } });
      await page.reload();
      await page.getByTestId('rollout-state').getByText('promoted').waitFor();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
