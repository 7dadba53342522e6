import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  cleanup,
  expectExit,
  expectNoStackTrace,
  freePorts,
  parseJson,
  runCli,
  startServe,
  tempDir,
  tomlAgent,
  type ServeProcess,
} from './helpers/cli.js';

// The CLI finds its server the way a newcomer expects: the port written in ./caxton.toml is the
// port every command uses, with no --server.
let dir: string;
let serve: ServeProcess;
beforeAll(async () => {
  assertBuilt();
  dir = tempDir();
  mkdirSync(join(dir, 'agents'));
  writeFileSync(join(dir, 'agents', 'helper.toml'), tomlAgent('helper', { capabilities: ['helping'] }));
  const [port, metricsPort] = (await freePorts(2)) as [number, number];
  writeFileSync(
    join(dir, 'caxton.toml'),
    `[server]\nport = ${port}\n\n[metrics]\nport = ${metricsPort}\n\n[logging]\nlevel = "warn"\n`,
  );
  serve = await startServe({ cwd: dir, args: [], port, metricsPort });
}, 60_000);
afterAll(cleanup);

describe('caxton finds its server', () => {
  it('agent list with no flags talks to the port set only in ./caxton.toml', async () => {
    const r = await runCli(['agent', 'list'], { cwd: dir });
    expectExit(r, 0);
    expect(r.stdout).toContain('helper');
  });

  it("whoami says the address came from the running server's data directory, in text and JSON", async () => {
    const text = await runCli(['whoami'], { cwd: dir });
    expectExit(text, 0);
    const lock = join(dir, 'data', 'caxton.lock');
    expect(text.stdout).toContain(
      `at ${serve.url} (from the server running on this project's data directory (${lock}))`,
    );
    const json = parseJson<{ server: string; server_source: string; server_file: string }>(
      await runCli(['--json', 'whoami'], { cwd: dir }),
    );
    expect(json).toMatchObject({ server: serve.url, server_source: 'data-dir', server_file: lock });
  });

  it('with no server running on the data directory, whoami says the address came from [server] in caxton.toml', async () => {
    // Another data directory (no server holds it): the address comes from caxton.toml.
    const env = { CAXTON_DATA_DIR: join(dir, 'elsewhere') };
    const text = await runCli(['whoami'], { cwd: dir, env });
    expectExit(text, 0);
    expect(text.stdout).toContain(`at ${serve.url} (from [server] in ${join(dir, 'caxton.toml')})`);
    const json = parseJson<{ server: string; server_source: string; server_file: string }>(
      await runCli(['--json', 'whoami'], { cwd: dir, env }),
    );
    expect(json).toMatchObject({ server: serve.url, server_source: 'project', server_file: join(dir, 'caxton.toml') });
  });

  it('--server and $CAXTON_SERVER_URL come before the file, and whoami names them', async () => {
    const [dead] = (await freePorts(1)) as [number];
    const env = await runCli(['--json', 'whoami'], {
      cwd: dir,
      env: { CAXTON_SERVER_URL: `http://127.0.0.1:${dead}` },
    });
    expectExit(env, 1);
    expect(env.stdout).toContain('server_unreachable');
    const flag = parseJson<{ server_source: string }>(
      await runCli(['--json', '--server', serve.url, 'whoami'], {
        cwd: dir,
        env: { CAXTON_SERVER_URL: `http://127.0.0.1:${dead}` },
      }),
    );
    expect(flag.server_source).toBe('flag');
  });

  it('a server address without a scheme is taken as http', async () => {
    const r = await runCli(['--server', `127.0.0.1:${serve.port}`, 'agent', 'list'], { cwd: tempDir() });
    expectExit(r, 0);
    expect(r.stdout).toContain('helper');
  });

  it('an address that is not one is refused in words, never ERR_INVALID_URL', async () => {
    for (const bad of ['http://', 'ftp://127.0.0.1:1', 'a b:c']) {
      const r = await runCli(['--server', bad, 'agent', 'list'], { cwd: tempDir() });
      expectExit(r, 1);
      expect(r.stderr).toContain(`--server "${bad}" is not a server address`);
      expect(r.stderr).toContain('http://HOST:PORT');
      expect(r.stderr).not.toMatch(/ERR_INVALID_URL|Invalid URL|caxton serve/);
      expectNoStackTrace(r);
    }
  });

  it('when the server of caxton.toml is down, the error says where the address came from', async () => {
    const other = tempDir();
    const [dead] = (await freePorts(1)) as [number];
    writeFileSync(join(other, 'caxton.toml'), `[server]\nhost = "0.0.0.0"\nport = ${dead}\n`);
    const r = await runCli(['agent', 'list'], { cwd: other });
    expectExit(r, 1);
    expect(r.stderr).toContain(`cannot reach the Caxton server at http://127.0.0.1:${dead}`);
    expect(r.stderr).toContain(`this address comes from [server] in ${join(other, 'caxton.toml')}`);
  });

  it('a caxton.toml with [server.tls] is reached over https', async () => {
    const other = tempDir();
    const [dead] = (await freePorts(1)) as [number];
    writeFileSync(
      join(other, 'caxton.toml'),
      `[server]\nport = ${dead}\n\n[server.tls]\ncert = "c.pem"\nkey = "k.pem"\n`,
    );
    const r = parseJson<{ error: { message: string } }>(await runCli(['--json', 'agent', 'list'], { cwd: other }));
    expect(r.error.message).toBe(`cannot reach https://127.0.0.1:${dead}`);
  });
});
