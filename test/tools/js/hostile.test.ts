/**
 * Hostile JavaScript tools (QuickJS-in-WebAssembly): each fails cleanly with a clear outcome, the
 * process stays up, another tool server keeps answering, and the hostile server answers again
 * (its runtime re-created). Also: only granted capabilities exist, and refusals of hosts and paths.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ToolRegistry } from '../../../src/tools/index.js';
import { type WasmToolServer } from '../../../src/tools/servers/index.js';
import { MemoryToolAuditSink } from '../../../src/audit/index.js';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp.js';
import { workerHttpServer, type WorkerHttpServer } from '../servers/helpers.js';
import { ctx, jsServer } from './helpers.js';

afterAll(removeTempDirs);

const HOSTILE_JS = `
export function ok() { return 'ok'; }
export function spin() { for (;;) {} }
export function spin_fuel() { let i = 0; for (;;) i++; }
export function bomb() { const a = []; for (;;) a.push({ n: a.length, s: 'x' + a.length }); }
export function recurse() { const f = (n) => f(n + 1) + 1; return f(0); }
export function big_output() { return 'y'.repeat(2 * 1024 * 1024); }
export function state_bomb() { caxton.vars.set('k', 'z'.repeat(2 * 1024 * 1024)); return 'stored'; }
export function caught_denial() { try { caxton.http('http://localhost/'); } catch (e) { return 'swallowed: ' + e.message; } }
export function ambient() {
  return { caxton: Object.keys(caxton).sort(), http: typeof caxton.http, files: typeof caxton.files, require: typeof require, process: typeof process, fetch: typeof fetch, std: typeof std };
}
export async function never() { await new Promise(() => {}); }
`;
const TOOLS = [
  'ok',
  'spin',
  'spin_fuel',
  'bomb',
  'recurse',
  'big_output',
  'state_bomb',
  'caught_denial',
  'ambient',
  'never',
];

describe('hostile JavaScript tools', () => {
  let hostile: WasmToolServer;
  let fuelLimited: WasmToolServer;
  let bomber: WasmToolServer;
  let bystander: WasmToolServer;
  const audit = new MemoryToolAuditSink();
  const registry = new ToolRegistry();

  beforeAll(() => {
    hostile = jsServer(
      'hostile',
      TOOLS,
      HOSTILE_JS,
      `[limits]\nmemory = "4MiB"\nfuel = ${0x7fffffff}\ntimeout = "300ms"\nmax_output = "1MiB"\nmax_state = "1MiB"\n`,
      { audit },
    );
    fuelLimited = jsServer('fuelly', TOOLS, HOSTILE_JS, `[limits]\nfuel = 5_000_000\ntimeout = "10s"\n`, { audit });
    // The resource bombs (memory, output, state) get the same small caps and a generous deadline:
    // each reaches its cap in a few ms on an idle machine, so that cap is what stops it however
    // loaded the machine is (with the 300 ms deadline of 'hostile', a loaded machine could end the
    // call as a timeout first).
    bomber = jsServer(
      'bomber',
      TOOLS,
      HOSTILE_JS,
      `[limits]\nmemory = "4MiB"\nfuel = ${0x7fffffff}\ntimeout = "20s"\nmax_output = "1MiB"\nmax_state = "1MiB"\n`,
      { audit },
    );
    bystander = jsServer('bystander', ['ok'], `export function ok() { return 'ok'; }`, '', { audit });
    for (const s of [hostile, fuelLimited, bomber, bystander]) s.register(registry);
  });
  afterAll(() => {
    for (const s of [hostile, fuelLimited, bomber, bystander]) s.close();
  });

  const call = (tool: string, server = 'hostile') =>
    registry.invoke(['hostile.*', 'fuelly.*', 'bomber.*', 'bystander.*'], `${server}.${tool}`, {}, ctx());
  const lastAudit = (server = 'hostile') => audit.records.filter((r) => r.server === server).at(-1)!;

  /** After a failure: the runtime is gone, the other server and the hostile one (fresh runtime) both answer. */
  async function stillHealthy(server = hostile) {
    const before = server.stats().instantiations;
    expect(server.sandbox.instantiated).toBe(false);
    expect(await registry.invoke(['bystander.*'], 'bystander.ok', {}, ctx())).toEqual({ content: 'ok' });
    expect(await call('ok', server.name)).toEqual({ content: 'ok' });
    expect(server.stats().instantiations).toBe(before + 1);
  }

  it('infinite loop: stopped at the wall-clock deadline', async () => {
    const t0 = Date.now();
    const r = await call('spin');
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(r).toEqual({
      content: 'tool "hostile.spin" failed (timeout): the call exceeded its deadline (limit 300 ms)',
      is_error: true,
    });
    expect(lastAudit()).toMatchObject({ tool: 'hostile.spin', outcome: 'timeout' });
    expect(lastAudit().fuel_used).toBeGreaterThan(0);
    await stillHealthy();
  });

  it('infinite loop: stopped by fuel (interrupt polls × 10,000)', async () => {
    const r = await call('spin_fuel', 'fuelly');
    expect(r.content).toBe(
      'tool "fuelly.spin_fuel" failed (fuel_exhausted): the call ran out of fuel (limit 5000000 units: a loop or recursion that does not end?)',
    );
    expect(lastAudit('fuelly')).toMatchObject({ outcome: 'fuel_exhausted', fuel_used: 5_000_000 });
    await stillHealthy(fuelLimited);
  });

  it('memory bomb: capped by the runtime memory limit', async () => {
    const r = await call('bomb', 'bomber');
    expect(r.content).toBe(
      'tool "bomber.bomb" failed (out_of_memory): the script ran out of memory (limit 4194304 bytes)',
    );
    expect(lastAudit('bomber')).toMatchObject({ outcome: 'out_of_memory', memory_bytes: 4194304 });
    await stillHealthy(bomber);
  });

  it('deep recursion: stack overflow', async () => {
    const r = await call('recurse');
    expect(r.content).toBe(
      'tool "hostile.recurse" failed (stack_overflow): the call overflowed the stack (recursion too deep)',
    );
    await stillHealthy();
  });

  it('oversized output: refused above max_output', async () => {
    const r = await call('big_output', 'bomber');
    expect(r.content).toMatch(
      /^tool "bomber\.big_output" failed \(output_too_large\): the output is at least 2097152 bytes, above the limit of 1048576$/,
    );
    expect(lastAudit('bomber')).toMatchObject({ outcome: 'output_too_large', output_bytes: 0 });
    await stillHealthy(bomber);
  });

  it('state bomb: vars capped at max_state', async () => {
    const r = await call('state_bomb', 'bomber');
    expect(r.content).toMatch(
      /^tool "bomber\.state_bomb" failed \(out_of_memory\): vars\.set\("k"\) would take the state to \d+ bytes, above the limit of 1048576/,
    );
    await stillHealthy(bomber);
  });

  it('a promise that never settles fails instead of hanging', async () => {
    const r = await call('never');
    expect(r.content).toMatch(/failed \(error\): Error: the tool's promise did not settle/);
  });

  it('no ambient authority: no require, process, fetch or std; http and files absent unless granted', async () => {
    const r = await call('ambient');
    expect(JSON.parse(r.content)).toEqual({
      caxton: ['config', 'log', 'vars'],
      http: 'undefined',
      files: 'undefined',
      require: 'undefined',
      process: 'undefined',
      fetch: 'undefined',
      std: 'undefined',
    });
  });
});

describe('JavaScript tools: hosts and paths', () => {
  let web: WorkerHttpServer;
  let net: WasmToolServer;
  let fs: WasmToolServer;
  let root: string;
  const registry = new ToolRegistry();

  const NET_JS = `
export function get({ url }) { const r = caxton.http({ url }); return { status: r.status, body: r.body }; }
export function swallow({ url }) { try { caxton.http(url); } catch (e) { return 'swallowed'; } return 'fetched'; }
`;
  const FS_JS = `
export function read({ path }) { return caxton.files.read(path); }
export function write({ path, text }) { caxton.files.write(path, text); return 'written'; }
export function list({ path }) { return caxton.files.list(path); }
`;

  beforeAll(async () => {
    web = await workerHttpServer({ '/hello.txt': { type: 'text/plain', body: 'hello over http' } });
    // The manifest asks for 127.0.0.1 and localhost; the operator grants only 127.0.0.1.
    net = jsServer('net', ['get', 'swallow'], NET_JS, '[permissions]\nallowed_hosts = ["127.0.0.1", "localhost"]\n', {
      grants: { allowed_hosts: ['127.0.0.1', 'example.com'] },
    });
    const base = makeTempDir('caxton-js-fs-');
    root = join(base, 'data');
    mkdirSync(root);
    writeFileSync(join(root, 'in.txt'), 'inside');
    writeFileSync(join(base, 'secret.txt'), 'outside the root');
    symlinkSync(join(base, 'secret.txt'), join(root, 'escape.txt'));
    fs = jsServer('fs', ['read', 'write', 'list'], FS_JS, '[permissions.paths]\n"/data" = "write"\n', {
      grants: { paths: { '/data': root } },
    });
    net.register(registry);
    fs.register(registry);
  });
  afterAll(async () => {
    net.close();
    fs.close();
    await web.close();
  });

  const invoke = (tool: string, args: Record<string, unknown>) => registry.invoke(['net.*', 'fs.*'], tool, args, ctx());

  it('an allowed host answers; a host granted by only one side is refused (denied), even if the script catches it', async () => {
    const ok = await invoke('net.get', { url: `${web.url}/hello.txt` });
    expect(JSON.parse(ok.content)).toEqual({ status: 200, body: 'hello over http' });
    const port = new URL(web.url).port;
    expect(await invoke('net.get', { url: `http://localhost:${port}/hello.txt` })).toEqual({
      content:
        'tool "net.get" failed (denied): HTTP request to host "localhost" refused: the host is not in the allowlist; allow it with [tools.SERVER] allowed_hosts = ["localhost"] in caxton.toml (SERVER: the tool name before the dot; the tool manifest must list the host too) and restart the server',
      is_error: true,
    });
    expect(await invoke('net.get', { url: 'http://example.com/' })).toMatchObject({
      content: expect.stringMatching(/failed \(denied\): HTTP request to host "example\.com" refused/),
      is_error: true,
    });
    expect(await invoke('net.swallow', { url: 'http://example.com/' })).toMatchObject({
      content: expect.stringMatching(/failed \(denied\)/),
      is_error: true,
    });
    expect(await invoke('net.get', { url: 'file:///etc/passwd' })).toMatchObject({
      content: expect.stringMatching(
        /failed \(denied\): HTTP request to "file:\/\/\/etc\/passwd" refused: only http and https/,
      ),
    });
    expect(JSON.parse((await invoke('net.get', { url: `${web.url}/hello.txt` })).content).status).toBe(200);
  });

  it('a server granted HTTP calls on its own worker: a server on this thread answers it', async () => {
    expect(net.offThread).toBe(true);
    expect(fs.offThread).toBe(false);
    const { createServer } = await import('node:http');
    const local = createServer((req, res) => res.end(`same thread; traceparent ${String(req.headers.traceparent)}`));
    await new Promise<void>((r) => local.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(local.address() as { port: number }).port}/x`;
      const r = await registry.invoke(
        ['net.*'],
        'net.get',
        { url },
        ctx({ traceparent: '00-99999999999999999999999999999999-aaaaaaaaaaaaaaaa-01' }),
      );
      expect(JSON.parse(r.content)).toEqual({
        status: 200,
        body: 'same thread; traceparent 00-99999999999999999999999999999999-aaaaaaaaaaaaaaaa-01',
      });
    } finally {
      local.close();
    }
  });

  it('files: inside the root works; .., absolute paths elsewhere and symlink escapes are denied', async () => {
    expect((await invoke('fs.read', { path: '/data/in.txt' })).content).toBe('inside');
    expect((await invoke('fs.write', { path: '/data/out.txt', text: 'new' })).content).toBe('written');
    expect(JSON.parse((await invoke('fs.list', { path: '/data' })).content)).toEqual([
      'escape.txt',
      'in.txt',
      'out.txt',
    ]);
    expect((await invoke('fs.read', { path: '/data/../secret.txt' })).content).toBe(
      'tool "fs.read" failed (denied): file path "/data/../secret.txt" contains "..": path traversal is not allowed',
    );
    expect((await invoke('fs.read', { path: '/etc/passwd' })).content).toMatch(
      /failed \(denied\): file path "\/etc\/passwd" is outside the granted roots/,
    );
    expect((await invoke('fs.read', { path: 'data/in.txt' })).content).toMatch(
      /failed \(denied\): file path "data\/in\.txt" must be absolute/,
    );
    expect((await invoke('fs.read', { path: '/data/escape.txt' })).content).toMatch(
      /failed \(denied\): file path "\/data\/escape\.txt" resolves outside its root \/data \(through a symlink\)/,
    );
    expect((await invoke('fs.write', { path: '/data/escape.txt', text: 'pwned' })).content).toMatch(
      /failed \(denied\)/,
    );
    expect((await invoke('fs.read', { path: '/data/in.txt' })).content).toBe('inside');
  });
});
