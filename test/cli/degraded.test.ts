import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  waitForOutput,
  type ServeProcess,
} from './helpers/cli.js';

// A server whose configuration will make runs fail says so at start, and `caxton health` and
// `caxton status` report it as degraded with the fix, while /ready stays about serving.
const UNSET = 'CAXTON_TEST_NEVER_SET_KEY';
let dir: string;
let serve: ServeProcess;
beforeAll(async () => {
  assertBuilt();
  dir = tempDir();
  mkdirSync(join(dir, 'agents'));
  writeFileSync(join(dir, 'agents', 'helper.toml'), tomlAgent('helper'));
  writeFileSync(join(dir, 'agents', 'broken.toml'), 'name = "broken"\nsystem_prompt = "oops\n');
  const [port, metricsPort] = (await freePorts(2)) as [number, number];
  writeFileSync(
    join(dir, 'caxton.toml'),
    [
      `[server]\nport = ${port}\n\n[metrics]\nport = ${metricsPort}\n`,
      '[llm]\ndefault_provider = "demo"\n',
      `[llm.providers.openai]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "${UNSET}"\nmodel = "gpt-4o-mini"\n`,
      '[llm.providers.demo]\ntype = "scripted"\nscript = "replies.toml"\n',
      '[llm.providers.bare]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n',
      '[llm.model_aliases]\nfast = { provider = "nowhere", model = "x" }\n',
    ].join('\n'),
  );
  serve = await startServe({ cwd: dir, args: [], port, metricsPort });
}, 60_000);
afterAll(cleanup);

describe('degraded configuration', () => {
  it('is said at start, each problem with its fix', async () => {
    const err = await waitForOutput(serve, 'stderr', /degraded: model "fast"/);
    expect(err).toContain(
      `degraded: provider "openai" has no API key: the environment variable ${UNSET} is not set for the server process`,
    );
    expect(err).toMatch(new RegExp(`fix: set ${UNSET} in the environment of the server .*then restart the server`));
    expect(err).toContain(
      `degraded: provider "demo" is scripted, but its script ${join(dir, 'replies.toml')} does not exist`,
    );
    expect(err).toContain('degraded: provider "bare" has no default model');
    expect(serve.stdout()).toMatch(/"level":"warn",.*"msg":"degraded: provider \\"openai\\" has no API key/);
  });

  it('caxton health exits 1 and names the variable, the process and the restart', async () => {
    const r = await runCli(['health'], { cwd: dir });
    expectExit(r, 1);
    expect(r.stdout).toContain('live and ready, but degraded');
    expect(r.stdout).toContain(UNSET);
    expect(r.stdout).toContain('caxton serve');
    expect(r.stdout).toContain('restart the server');
    const json = parseJson<{ ready: boolean; degraded: { name: string }[] }>(
      await runCli(['--json', 'health'], { cwd: dir }),
    );
    expect(json.ready).toBe(true);
    expect(json.degraded.map((d) => d.name)).toEqual([
      'llm.providers.openai',
      'llm.providers.demo',
      'llm.providers.bare',
      'llm.model_aliases.fast',
    ]);
  });

  it('health --help states the exit codes it uses: 1 for degraded as for not ready or unreachable', async () => {
    const r = await runCli(['health', '--help'], { cwd: dir });
    expectExit(r, 0);
    expect(r.stdout).toContain('check that the server is live, ready and not degraded');
    const codes = /^Exit codes:\n((?:\s+.*\n?)*)/m.exec(r.stdout)?.[1] ?? '';
    expect(codes).toMatch(/^\s+0\s+live, ready and not degraded$/m);
    expect(codes).toMatch(/^\s+1\s+not ready .*degraded \(it serves, but runs will fail/m);
    expect(codes).toContain('the server cannot be reached');
    expect(codes).toMatch(/^\s+2\s+usage error$/m);
    // What this file's degraded server gets (above) and an unreachable one (test/cli/basics.test.ts).
    expectExit(await runCli(['health'], { cwd: dir }), 1);
  });

  it('/ready stays 200 (the server serves); the public /health names the fields only', async () => {
    expect((await fetch(`${serve.url}/ready`)).status).toBe(200);
    const health = (await (await fetch(`${serve.url}/health`)).json()) as { status: string; degraded: string[] };
    expect(health).toEqual({
      status: 'ok',
      degraded: ['llm.providers.openai', 'llm.providers.demo', 'llm.providers.bare', 'llm.model_aliases.fast'],
    });
  });

  it('caxton status shows each problem with its fix, and names the invalid agent file', async () => {
    const r = await runCli(['status'], { cwd: dir });
    expectExit(r, 0);
    expect(r.stdout).toMatch(new RegExp(`degraded +provider "openai" has no API key.*; fix: set ${UNSET}`));
    expect(r.stdout).toContain(`1 invalid file: ${join(dir, 'agents', 'broken.toml')}`);
  });

  it('a script file created later clears its problem without a restart', async () => {
    writeFileSync(join(dir, 'replies.toml'), 'fallback = "ok"\n');
    const health = (await (await fetch(`${serve.url}/health`)).json()) as { degraded: string[] };
    expect(health.degraded).not.toContain('llm.providers.demo');
  });
});
