import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../helpers/wait.js';
import {
  assertBuilt,
  cleanup,
  expectExit,
  freePorts,
  parseJson,
  runCli,
  startServe,
  tempDir,
  tomlAgent,
  type ServeProcess,
} from './helpers/cli.js';

// `caxton health` tells the truth about the model behind the agents: a server with no provider, or
// whose default provider does not accept connections, serves but is degraded, with the fix in
// words; the provider coming back clears it, and a run that fails to connect makes the server look
// again.

afterAll(cleanup);

function project(llm: string): string {
  const dir = tempDir();
  mkdirSync(join(dir, 'agents'));
  writeFileSync(join(dir, 'agents', 'helper.toml'), tomlAgent('helper'));
  writeFileSync(join(dir, 'caxton.toml'), `[logging]\nlevel = "info"\n${llm}`);
  return dir;
}

function listen(port: number): Promise<Server> {
  const s = createServer((socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

const close = (s: Server) => new Promise<void>((r) => s.close(() => r()));

describe('caxton health and the LLM provider', () => {
  it('no provider configured: degraded, exit 1, saying to add one; /health names llm.providers', async () => {
    assertBuilt();
    const dir = project('');
    const serve: ServeProcess = await startServe({ cwd: dir });
    const r = await runCli(['--server', serve.url, 'health'], { cwd: dir });
    expectExit(r, 1);
    expect(r.stdout).toContain('live and ready, but degraded');
    expect(r.stdout).toContain('no LLM provider is configured: every agent run fails');
    expect(r.stdout).toMatch(
      /fix: add a provider to caxton\.toml, e\.g\. \[llm\.providers\.openai\].*docs\/providers\.md/,
    );
    const health = (await (await fetch(`${serve.url}/health`)).json()) as { degraded: string[] };
    expect(health.degraded).toEqual(['llm.providers']);
  });

  it('default provider on a closed port: degraded with the address; clears when it listens; a failed run looks again', async () => {
    const [port] = (await freePorts(1)) as [number];
    const dir = project(
      `[llm]\ndefault_provider = "local"\n[llm.providers.local]\ntype = "openai"\nbase_url = "http://127.0.0.1:${port}/v1"\nmodel = "m"\nmax_retries = 0\n`,
    );
    const serve = await startServe({ cwd: dir });
    const down = await runCli(['--server', serve.url, 'health'], { cwd: dir });
    expectExit(down, 1);
    expect(down.stdout).toContain(
      `the default provider "local" cannot be reached at http://127.0.0.1:${port}/v1 (ECONNREFUSED): every run on it fails`,
    );
    expect(down.stdout).toContain(
      'fix: start the model server it points at, or correct base_url in [llm.providers.local]',
    );
    expect(serve.stderr() + serve.stdout()).toContain('degraded: the default provider \\"local\\" cannot be reached');

    // The provider starts: a later look finds it (the server checks again while degraded).
    const provider = await listen(port);
    await waitUntil(async () => (await runCli(['--server', serve.url, 'health'], { cwd: dir })).code === 0, {
      timeoutMs: 30_000,
      intervalMs: 500,
      what: 'caxton health to exit 0 once the provider listens',
    });
    const ok = parseJson<{ degraded?: unknown }>(
      await runCli(['--server', serve.url, '--json', 'health'], { cwd: dir }),
    );
    expect(ok.degraded).toBeUndefined();

    // It goes away: the next run fails to connect, and that run makes the server look again.
    await close(provider);
    const run = await runCli(['--server', serve.url, 'agent', 'run', 'helper', 'hello'], { cwd: dir });
    expectExit(run, 1);
    await waitUntil(async () => (await runCli(['--server', serve.url, 'health'], { cwd: dir })).code === 1, {
      timeoutMs: 15_000,
      intervalMs: 200,
      what: 'caxton health to exit 1 after a run failed to connect',
    });
  });
});
