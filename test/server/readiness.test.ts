/**
 * GET /ready checks the node's outside dependencies (here PostgreSQL behind memory): a node that
 * loses its database turns not-ready, names the dependency (not the reason: /ready is public),
 * tells why in the authenticated status, and turns ready again when the link is back.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Readiness } from '../../src/api/index.js';
import { expectExit, parseJson, runCli } from '../cli/helpers/cli.js';
import { getJson } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir } from '../helpers/tmp.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import { startPgProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { waitUntil } from '../helpers/wait.js';

interface ReadyBody {
  status: string;
  dependencies?: { name: string; ok: boolean; reason?: string }[];
}

describe('Readiness', () => {
  it('fails a check that does not answer within the timeout, and names it', async () => {
    const r = new Readiness({ timeoutMs: 50, cacheMs: 0 });
    let aborted = false;
    r.add({
      name: 'stuck',
      check: (signal) => new Promise(() => signal.addEventListener('abort', () => (aborted = true))),
    });
    r.add({ name: 'fine', check: async () => {} });
    const states = await r.probe();
    expect(states.map((s) => [s.name, s.ok])).toEqual([
      ['stuck', false],
      ['fine', true],
    ]);
    expect(states[0]!.reason).toMatch(/no answer within 50 ms/);
    expect(aborted).toBe(true);
  });

  it('runs the checks once for probes that arrive together or within the cache period', async () => {
    const r = new Readiness({ cacheMs: 60_000 });
    let runs = 0;
    r.add({ name: 'db', check: async () => void runs++ });
    await Promise.all([r.probe(), r.probe(), r.probe()]);
    await r.probe();
    expect(runs).toBe(1);
  });

  it('logs a dependency going away and coming back once per change, with secrets scrubbed from the reason', async () => {
    const lines: string[] = [];
    const r = new Readiness({
      cacheMs: 0,
      log: { warn: (_o, m) => lines.push(`warn ${m}`), info: (_o, m) => lines.push(`info ${m}`) },
    });
    let fail = true;
    r.add({
      name: 'db',
      check: async () => {
        if (fail) throw new Error('connection refused');
      },
    });
    await r.probe();
    await r.probe();
    fail = false;
    await r.probe();
    await r.probe();
    expect(lines).toEqual([
      'warn db is unavailable: connection refused; /ready answers 503 until it is back',
      'info db is available again',
    ]);
  });
});

describe.skipIf(!hasSystem('postgresql'))('GET /ready with memory on PostgreSQL', () => {
  const schema = `caxton_ready_${process.pid}_${Date.now()}`;
  let proxy: TcpProxy;
  let server: TestServer;

  beforeAll(async () => {
    let url: string;
    ({ proxy, url } = await startPgProxy());
    const dir = makeTempDir('caxton-ready-');
    writeFileSync(join(dir, 'replies.toml'), 'fallback = "ok"\n');
    server = await startTestServer({
      dir,
      // A scripted provider: the server is not degraded, so `caxton health` is about readiness alone.
      toml: `[memory]\nbackend = "postgres"\n[memory.postgres]\nurl = "${url}"\nschema = "${schema}"\n[llm.providers.demo]\ntype = "scripted"\nscript = "replies.toml"\n`,
    });
  });

  afterAll(async () => {
    await server?.close();
    await proxy?.close();
    const c = new pg.Client({ connectionString: TEST_PG_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  });

  it('is ready while the database answers, unavailable when the link is cut, ready again when it is back', async () => {
    const ok = await getJson<ReadyBody>(server.url, '/ready');
    expect(ok.status).toBe(200);
    expect(ok.json).toEqual({ status: 'ok', dependencies: [{ name: 'memory-postgresql', ok: true }] });

    proxy.cut();
    const down = await waitUntil(
      async () => {
        const r = await getJson<ReadyBody>(server.url, '/ready');
        return r.status === 503 && r;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: '/ready to answer 503 after the database link is cut' },
    );
    expect(down.value.json).toEqual({
      status: 'unavailable',
      dependencies: [{ name: 'memory-postgresql', ok: false }],
    });

    // The authenticated status tells why, and counts the node as not ready.
    const status = await getJson<{ ready: boolean; dependencies: { name: string; ok: boolean; reason?: string }[] }>(
      server.url,
      '/api/v1/status',
    );
    expect(status.json.ready).toBe(false);
    expect(status.json.dependencies[0]).toMatchObject({ name: 'memory-postgresql', ok: false });
    expect(status.json.dependencies[0]!.reason).toBeTruthy();
    const overview = await getJson<{ ready: boolean }>(server.url, '/api/v1/status/overview');
    expect(overview.json.ready).toBe(false);
    // `caxton health` exits 1 naming the dependency; --json carries the states.
    const health = await runCli(['health', '--server', server.url], { cwd: server.dir });
    expectExit(health, 1);
    expect(health.stdout).toContain('live but not ready (unavailable: memory-postgresql; see caxton status)');
    const healthJson = await runCli(['--json', 'health', '--server', server.url], { cwd: server.dir });
    expect(parseJson<{ ready: boolean; dependencies: unknown[] }>(healthJson)).toMatchObject({
      ready: false,
      dependencies: [{ name: 'memory-postgresql', ok: false }],
    });

    proxy.restore();
    await waitUntil(async () => (await getJson(server.url, '/ready')).status === 200, {
      timeoutMs: 10_000,
      intervalMs: 100,
      what: '/ready to answer 200 after the link is back',
    });
    expectExit(await runCli(['health', '--server', server.url], { cwd: server.dir }), 0);
  });
});
