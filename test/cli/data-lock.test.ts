import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
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
// to start naming it, a lock left by a killed server is taken over (even when its pid now belongs
// to another program), the CLI finds the running server's real address through it, and a data
// directory deleted or replaced under a running server makes it not ready and refuse every write,
// logged. Something other than Caxton at the address is called what it is.

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

function deploy(url: string, key: string, name: string): Promise<Response> {
  return fetch(`${url}/api/v1/agents`, {
    method: 'POST',
    headers: { 'content-type': 'application/toml', authorization: `Bearer ${key}` },
    body: tomlAgent(name),
  });
}

async function notReady(url: string, what: string): Promise<void> {
  await waitUntil(async () => (await fetch(`${url}/ready`)).status === 503, {
    timeoutMs: 15_000,
    intervalMs: 200,
    what,
  });
}

interface ErrorBody {
  error: { code: string; message: string };
}

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

  it('a lock left by a killed server whose pid now belongs to another program is taken over', async () => {
    first.child.kill('SIGKILL');
    await first.exited;
    // The dead server's pid, given to an unrelated live program: its record names that program now.
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const stale = JSON.parse(readFileSync(lockFile(), 'utf8')) as Record<string, unknown>;
      writeFileSync(lockFile(), JSON.stringify({ ...stale, pid: other.pid }));
      expect(() => process.kill(other.pid!, 0)).not.toThrow();
      const next = await startServe({ cwd: dir });
      expect(JSON.parse(readFileSync(lockFile(), 'utf8'))).toMatchObject({ pid: next.child.pid, url: next.url });
      first = next;
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('a data directory deleted under the running server makes it not ready and refuse writes, and says so in the log', async () => {
    const key = readFileSync(join(dir, 'data', 'admin.key'), 'utf8').trim();
    expect((await deploy(first.url, key, 'before')).status).toBe(201);
    rmSync(join(dir, 'data'), { recursive: true, force: true });
    // The delete removes the lock file before the directory: a look between the two finds the lock
    // file gone first, and that reason is the one kept.
    const data = join(dir, 'data');
    const gone = `(the data directory ${data} was deleted|the lock file ${join(data, 'caxton.lock.db')} was removed) while the server ran`;
    await notReady(first.url, '/ready to answer 503 once the data directory is gone');
    const ready = (await (await fetch(`${first.url}/ready`)).json()) as unknown;
    expect(ready).toEqual({ status: 'unavailable', dependencies: [{ name: 'data-dir', ok: false }] });
    // A write gets the reason and what to do; nothing of it is kept, even in memory.
    const res = await deploy(first.url, key, 'after');
    expect(res.status).toBe(503);
    const body = (await res.json()) as ErrorBody;
    expect(body.error.code).toBe('not_ready');
    expect(body.error.message).toMatch(new RegExp(`^${gone}`));
    expect(body.error.message).toMatch(/nothing was stored.*restart the server/);
    const after = await fetch(`${first.url}/api/v1/agents/after`, { headers: { authorization: `Bearer ${key}` } });
    expect(after.status).toBe(404);
    const sent = await fetch(`${first.url}/api/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ performative: 'inform', receivers: ['helper'], content: 'into the void' }),
    });
    expect(sent.status).toBe(503);
    expect(((await sent.json()) as ErrorBody).error.message).toMatch(new RegExp(gone));
    const conversations = await fetch(`${first.url}/api/v1/conversations`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expect(((await conversations.json()) as { total: number }).total).toBe(0);
    const logged = `${gone}: this server is not ready`;
    await waitUntil(() => new RegExp(logged).test(first.stdout()), {
      timeoutMs: 15_000,
      what: 'the log line about the deleted data directory',
    });
    expect(first.stdout()).toMatch(new RegExp(`"level":"error".*${logged}`));
    expect(first.stdout().match(new RegExp(logged, 'g'))).toHaveLength(1);
    const health = await runCli(['--server', first.url, 'health'], { cwd: dir });
    expectExit(health, 1);
    expect(health.stdout).toContain('live but not ready (unavailable: data-dir');
  });

  it('a data directory replaced under the running server: writes are refused, the old files get none', async () => {
    first.child.kill('SIGTERM');
    await first.exited;
    first = await startServe({ cwd: dir });
    const data = join(dir, 'data');
    const key = readFileSync(join(data, 'admin.key'), 'utf8').trim();
    renameSync(data, join(dir, 'data.old'));
    mkdirSync(data);
    await notReady(first.url, '/ready to answer 503 once the data directory is replaced');
    const res = await deploy(first.url, key, 'into-the-old-one');
    expect(res.status).toBe(503);
    expect(((await res.json()) as ErrorBody).error.message).toContain(
      `the data directory ${data} was replaced while the server ran`,
    );
    first.child.kill('SIGTERM');
    expect(await first.exited, first.stderr()).toMatchObject({ code: 0 });
    // What the server had open, moved away: the refused deploy is not in it.
    const old = new Database(join(dir, 'data.old', 'caxton.db'), { readonly: true });
    try {
      const rows = old.prepare('SELECT count(*) AS n FROM agents WHERE name = ?').get('into-the-old-one') as {
        n: number;
      };
      expect(rows.n).toBe(0);
    } finally {
      old.close();
    }
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
