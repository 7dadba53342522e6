import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

// One server per data directory (ADR 0127): the lock file names the owner, a second server refuses
// to start naming it, a lock left by a killed server is taken over, the CLI finds the running
// server's real address through it, and a data directory deleted under a running server makes it
// not ready, logged. Something other than Caxton at the address is called what it is.

let dir: string;
let tomlPort: number;

beforeAll(async () => {
  assertBuilt();
  dir = tempDir('caxton-lock-');
  mkdirSync(join(dir, 'agents'));
  writeFileSync(join(dir, 'agents', 'helper.toml'), tomlAgent('helper'));
  writeFileSync(join(dir, 'replies.toml'), 'fallback = "42"\n');
  // caxton.toml names a port nobody listens on: the servers below are started with --port.
  [tomlPort] = (await freePorts(1)) as [number];
  writeFileSync(
    join(dir, 'caxton.toml'),
    `[server]\nport = ${tomlPort}\n\n[llm.providers.demo]\ntype = "scripted"\nscript = "replies.toml"\n`,
  );
});
afterAll(cleanup);

const lockFile = () => join(dir, 'data', 'caxton.lock');

describe('one server per data directory', () => {
  let first: ServeProcess;

  it('the lock file names the running server: pid and its real address, private to the user', async () => {
    first = await startServe({ cwd: dir });
    const lock = JSON.parse(readFileSync(lockFile(), 'utf8')) as { pid: number; url: string; data_dir: string };
    expect(lock).toMatchObject({ pid: first.child.pid, url: first.url, data_dir: join(dir, 'data') });
    expect(statSync(lockFile()).mode & 0o777).toBe(0o600);
  });

  it('the CLI finds that address from the data directory, not the port in caxton.toml', async () => {
    const who = await runCli(['--json', 'whoami'], { cwd: dir });
    expectExit(who, 0);
    expect(parseJson<{ server: string; server_source: string }>(who)).toMatchObject({
      server: first.url,
      server_source: 'data-dir',
    });
    const list = await runCli(['agent', 'list'], { cwd: dir });
    expectExit(list, 0);
    expect(list.stdout).toMatch(/^helper\s/m);
  });

  it('a second server on the same data directory refuses to start, naming the first', async () => {
    const [port, metricsPort] = (await freePorts(2)) as [number, number];
    const second = await runCli(['serve', '--port', String(port), '--metrics-port', String(metricsPort)], {
      cwd: dir,
      timeoutMs: 30_000,
    });
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain(`the data directory ${join(dir, 'data')} is in use by another Caxton server`);
    expect(second.stderr).toContain(`pid ${first.child.pid}, ${first.url}`);
    expect(second.stderr).toMatch(/Stop that server first, or give this one its own data directory/);
    expect(second.stderr).not.toMatch(/\n\s+at /); // no stack trace
    // The first one still owns it and still serves.
    expect(JSON.parse(readFileSync(lockFile(), 'utf8'))).toMatchObject({ pid: first.child.pid });
    expectExit(await runCli(['--server', first.url, 'health'], { cwd: dir }), 0);
  });

  it('a lock left by a killed server is taken over', async () => {
    first.child.kill('SIGKILL');
    await first.exited;
    expect(existsSync(lockFile())).toBe(true);
    const next = await startServe({ cwd: dir });
    expect(JSON.parse(readFileSync(lockFile(), 'utf8'))).toMatchObject({ pid: next.child.pid, url: next.url });
    first = next;
  });

  it('a data directory deleted under the running server makes it not ready, and says so in the log', async () => {
    rmSync(join(dir, 'data'), { recursive: true, force: true });
    await waitUntil(async () => (await fetch(`${first.url}/ready`)).status === 503, {
      timeoutMs: 15_000,
      intervalMs: 200,
      what: '/ready to answer 503 once the data directory is gone',
    });
    const ready = (await (await fetch(`${first.url}/ready`)).json()) as unknown;
    expect(ready).toEqual({ status: 'unavailable', dependencies: [{ name: 'data-dir', ok: false }] });
    await waitUntil(() => first.stdout().includes('was deleted while the server ran: this server is not ready'), {
      timeoutMs: 15_000,
      what: 'the log line about the deleted data directory',
    });
    expect(first.stdout()).toMatch(/"level":"error".*was deleted while the server ran: this server is not ready/);
    const health = await runCli(['--server', first.url, 'health'], { cwd: dir });
    expectExit(health, 1);
    expect(health.stdout).toContain('live but not ready (unavailable: data-dir');
  });
});

describe('an address where something other than Caxton answers', () => {
  let other: Server;
  let url: string;
  beforeAll(async () => {
    other = createServer((_req, res) =>
      res.writeHead(404, { 'content-type': 'text/html' }).end('<!DOCTYPE HTML>\n<html><body>Not Found</body></html>'),
    );
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  });
  afterAll(() => other.close());

  it('the CLI says it is not a Caxton server, and where the address came from', async () => {
    const r = await runCli(['agent', 'list'], { cwd: dir, env: { CAXTON_SERVER_URL: url } });
    expectExit(r, 1);
    expect(r.stderr).toContain(`the program answering at ${url} is not a Caxton server (HTTP 404 for /api/v1/agents`);
    expect(r.stderr).toContain('this address comes from $CAXTON_SERVER_URL');
    const j = await runCli(['--json', 'health'], { cwd: dir, env: { CAXTON_SERVER_URL: url } });
    expectExit(j, 1);
    expect(j.stdout + j.stderr).toMatch(/"code": "not_caxton"/);
  });
});
