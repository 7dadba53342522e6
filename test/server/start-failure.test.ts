/**
 * A start that fails part-way closes every component that had started, in reverse
 * (src/server/components, ADR 0034): after the failure nothing the server opened is left
 * open — the data dir database is closed (SQLite removes its WAL files on the last close), the
 * agents_dir watcher, the sampler and GC timers, the isolation pool and the ports are released.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadServerConfig, type ConfigFlags } from '../../src/config/index.js';
import { startServer } from '../../src/server/index.js';
import { localAuthUnlessConfigured } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

afterAll(() => removeTempDirs());

const AGENT = 'name = "early"\ncapabilities = ["x"]\nsystem_prompt = "p"\n';

function configIn(toml: string, flags: ConfigFlags) {
  const dir = makeTempDir('caxton-start-failure-');
  const file = join(dir, 'caxton.toml');
  writeFileSync(file, toml);
  const config = loadServerConfig({
    file,
    env: {},
    cwd: dir,
    flags: { logLevel: process.env.CAXTON_TEST_LOG ?? 'silent', ...flags },
  });
  localAuthUnlessConfigured(config, toml);
  mkdirSync(config.agents_dir, { recursive: true });
  writeFileSync(join(config.agents_dir, 'early.toml'), AGENT);
  return config;
}

/**
 * The handles keeping this thread's event loop alive, by kind (file watchers, sockets, pending file
 * operations, worker ports). Timers are left out: the test runner's own come and go, and the
 * server's are unref'd (they never keep the loop alive, so they are not listed anyway).
 */
function handles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo())
    if (kind !== 'Timeout' && kind !== 'Immediate') out[kind] = (out[kind] ?? 0) + 1;
  return out;
}

/** The handles once the ones closed just before are gone (the same list twice, 50 ms apart). */
async function settledHandles(): Promise<Record<string, number>> {
  for (;;) {
    const a = JSON.stringify(handles());
    await new Promise((r) => setTimeout(r, 50));
    if (JSON.stringify(handles()) === a) return handles();
  }
}

/** A closed handle leaves the list on a later turn of the event loop: wait for the list to be what it was. */
async function expectHandlesBackTo(before: Record<string, number>): Promise<void> {
  await waitUntil(() => JSON.stringify(handles()) === JSON.stringify(before), {
    timeoutMs: 5000,
    what: `the handles to be ${JSON.stringify(before)}`,
  }).catch(() => {});
  expect(handles()).toEqual(before);
}

function listenOn(port = 0): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

function closeServer(s: Server): Promise<void> {
  return new Promise((r) => s.close(() => r()));
}

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const s = await listenOn();
  const port = (s.address() as { port: number }).port;
  await closeServer(s);
  return port;
}

describe('a start that fails part-way', () => {
  it('a [cluster] node refuses to start on SQLite state, naming [cluster], before it opens anything', async () => {
    const config = configIn('[cluster]\nnode = "node-a"\n', { port: 0, metricsPort: 0 });
    const e = await startServer({ config }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'invalid_config', details: { field: 'cluster.state' } });
    expect((e as Error).message).toMatch(
      /^refusing to start: \[cluster\] is set \(node "node-a"\) but \[cluster.state\] is not\..*this node's SQLite is its own/,
    );
    expect(existsSync(join(config.data_dir, 'caxton.db'))).toBe(false);
  });

  it('a [cluster.state] url_env naming an unset variable is refused, naming the key, before anything opens', async () => {
    delete process.env.CAXTON_TEST_NO_SUCH_VARIABLE;
    const config = configIn('[cluster]\nnode = "node-a"\n[cluster.state]\nurl_env = "CAXTON_TEST_NO_SUCH_VARIABLE"\n', {
      port: 0,
      metricsPort: 0,
    });
    await expect(startServer({ config })).rejects.toMatchObject({
      code: 'invalid_config',
      details: { field: 'cluster.state.url_env' },
    });
    expect(existsSync(join(config.data_dir, 'caxton.db'))).toBe(false);
  });

  it('a bad [memory.postgres] URL (memory starts after storage, auth, agents and the agents_dir watcher): all of them are closed, no handle is left', async () => {
    const config = configIn(
      '[memory]\nbackend = "postgres"\n[memory.postgres]\nurl_env = "CAXTON_TEST_NO_SUCH_VARIABLE"\n',
      { port: 0, metricsPort: 0 },
    );
    delete process.env.CAXTON_TEST_NO_SUCH_VARIABLE;
    const before = await settledHandles();
    await expect(startServer({ config })).rejects.toMatchObject({
      code: 'invalid_config',
      details: { field: 'memory.postgres.url_env' },
    });
    // The database had been opened and migrated, then closed again.
    expect(existsSync(join(config.data_dir, 'caxton.db'))).toBe(true);
    expect(existsSync(join(config.data_dir, 'caxton.db-wal'))).toBe(false);
    expect(existsSync(join(config.data_dir, 'caxton.db-shm'))).toBe(false);
    await expectHandlesBackTo(before);
    // The same data dir starts cleanly once the configuration is fixed.
    config.memory = { backend: 'sqlite' };
    const server = await startServer({ config, listen: false });
    try {
      expect(server.registry.get('early')).toBeDefined();
    } finally {
      await server.close();
    }
    // And a normal close leaves nothing either.
    await expectHandlesBackTo(before);
  });

  it('the API port is taken (the listener starts last): the metrics port, the database and every other component are released', async () => {
    const taken = await listenOn();
    try {
      const metricsPort = await freePort();
      const config = configIn('[execution]\nisolation = "worker"\n', {
        port: (taken.address() as { port: number }).port,
        metricsPort,
      });
      const before = await settledHandles();
      await expect(startServer({ config })).rejects.toMatchObject({ code: 'EADDRINUSE' });
      expect(existsSync(join(config.data_dir, 'caxton.db-wal'))).toBe(false);
      await expectHandlesBackTo(before);
      // The metrics endpoint had been listening on its port: it is free again.
      await closeServer(await listenOn(metricsPort));
    } finally {
      await closeServer(taken);
    }
  });
});
