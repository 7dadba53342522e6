/**
 * HTTP from tool modules: only to hosts both the manifest and the operator allow; the deadline
 * bounds the wait; redirects are not followed. The HTTP server under test runs in a worker thread,
 * because the sandbox's HTTP call blocks the calling thread until the answer arrives.
 */
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostGranted, parseHostGrants } from '../../../src/shared/host-grants.js';
import { type WasmToolServer } from '../../../src/tools/servers/index.js';
import { MemoryToolAuditSink } from '../../../src/audit/index.js';
import { ctx, OK_WAT, server } from './helpers.js';

const SERVER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const http = require('node:http');
let hits = 0;
const s = http.createServer((req, res) => {
  hits++;
  if (req.url === '/hang') return; // never answers
  if (req.url === '/redirect') { res.writeHead(302, { location: 'http://evil.example.com/' }); return res.end(); }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('pong ' + req.method + ' ' + req.url);
});
s.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: s.address().port }));
parentPort.on('message', (m) => { if (m === 'hits') parentPort.postMessage({ hits }); if (m === 'close') { s.closeAllConnections(); s.close(); } });
`;

/** Sends the input (a JSON request: {"url", "method", "headers"}) to http_request and outputs the body. */
const FETCH_WAT = `(module
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
  (import "extism:host/env" "http_status_code" (func $status (result i32)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "fetch") (result i32) (local $r i64)
    (local.set $r (call $http_request (call $input_offset) (i64.const 0)))
    (call $output_set (local.get $r) (call $length (local.get $r)))
    (i32.const 0))
  (func (export "status") (result i32)
    (drop (call $http_request (call $input_offset) (i64.const 0)))
    (call $status)))`;

let worker: Worker;
let base: string;

beforeAll(async () => {
  worker = new Worker(SERVER_SOURCE, { eval: true });
  const { port } = await new Promise<{ port: number }>((resolve) => worker.once('message', resolve));
  base = `http://127.0.0.1:${port}`;
});
afterAll(async () => {
  worker.postMessage('close');
  await worker.terminate();
});

const hits = async () => {
  worker.postMessage('hits');
  return (await new Promise<{ hits: number }>((resolve) => worker.once('message', resolve))).hits;
};

async function fetcher(
  name: string,
  manifestHosts: string[],
  operatorHosts: string[] | undefined,
  extra = '',
): Promise<WasmToolServer> {
  const toml = `[permissions]\nallowed_hosts = [${manifestHosts.map((h) => `"${h}"`).join(', ')}]\n${extra}`;
  return server(name, ['fetch', 'status'], FETCH_WAT, toml, {
    ...(operatorHosts && { grants: { allowed_hosts: operatorHosts } }),
    audit: new MemoryToolAuditSink(),
  });
}

const fetchTool = (s: WasmToolServer) => s.tools.find((t) => t.name.endsWith('.fetch'))!;

describe('HTTP', () => {
  it('reaches a host both the manifest and the operator allow', async () => {
    const s = await fetcher('h1', ['127.0.0.1'], ['127.0.0.1']);
    expect(await fetchTool(s).invoke({ url: `${base}/ping`, method: 'post' }, ctx())).toEqual({
      content: 'pong POST /ping',
    });
  });

  it('refuses a host outside the manifest allowlist, without any request', async () => {
    const s = await fetcher('h2', ['127.0.0.1'], ['127.0.0.1', '*']);
    const before = await hits();
    const r = await fetchTool(s).invoke({ url: 'http://evil.example.com/steal' }, ctx());
    expect(r.is_error).toBe(true);
    expect(r.content).toMatch(
      /\(denied\): HTTP request to host "evil\.example\.com" refused: the host is not in the allowlist/,
    );
    expect((await fetchTool(s).invoke({ url: `http://localhost:1/` }, ctx())).content).toMatch(
      /host "localhost" refused/,
    );
    expect(await hits()).toBe(before);
    // and the server keeps answering
    expect(await fetchTool(s).invoke({ url: `${base}/again` }, ctx())).toEqual({ content: 'pong GET /again' });
  });

  it('judges the address connected to: a granted name resolving to loopback, and "*", reach no internal address', async () => {
    const port = new URL(base).port;
    const named = await fetcher('h2n', ['localhost'], ['localhost']);
    const before = await hits();
    expect((await fetchTool(named).invoke({ url: `http://localhost:${port}/x` }, ctx())).content).toMatch(
      /\(denied\): HTTP GET http:\/\/localhost:\d+\/x refused: localhost resolves to .* is an internal address/,
    );
    const star = await fetcher('h2s', ['*'], ['*']);
    expect((await fetchTool(star).invoke({ url: `${base}/x` }, ctx())).content).toMatch(
      /\(denied\): .*127\.0\.0\.1 is an internal address .*naming the address itself/,
    );
    expect(await hits()).toBe(before);
  });

  it('refuses every host when the operator grants none', async () => {
    const s = await fetcher('h3', ['127.0.0.1'], undefined);
    expect(s.warnings.map((w) => w.message).join()).toMatch(
      /asks for HTTP to 127\.0\.0\.1, which the operator has not granted/,
    );
    expect((await fetchTool(s).invoke({ url: `${base}/x` }, ctx())).content).toMatch(
      /\(denied\): .*HTTP is not granted to this tool server/,
    );
  });

  it('refuses non-HTTP schemes', async () => {
    const s = await fetcher('h4', ['*'], ['*']);
    expect((await fetchTool(s).invoke({ url: 'file:///etc/passwd' }, ctx())).content).toMatch(
      /only http and https URLs are allowed/,
    );
  });

  it('stops waiting at the deadline; the server stays usable', async () => {
    // 3 s: short enough to see the deadline cut /hang, long enough that /after answers beside the
    // whole suite (1 s has not always been).
    const s = await fetcher('h5', ['127.0.0.1'], ['127.0.0.1'], '[limits]\ntimeout = "3s"\n');
    const t0 = Date.now();
    const r = await fetchTool(s).invoke({ url: `${base}/hang` }, ctx());
    expect(r.content).toMatch(/\(timeout\): HTTP GET .*\/hang timed out after \d+ ms/);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(await fetchTool(s).invoke({ url: `${base}/after` }, ctx())).toEqual({ content: 'pong GET /after' });
  });

  it('runs off the main thread: a server on this very thread answers it, and timers keep ticking', async () => {
    // Before calls of HTTP-granted servers moved to a worker, the calling thread blocked until the
    // response came: a server on that thread could never answer (the call timed out).
    const { createServer } = await import('node:http');
    let ticks = 0;
    const local = createServer((req, res) => {
      setTimeout(
        () => res.end(`local ${req.url} after ${ticks} ticks; traceparent ${String(req.headers.traceparent)}`),
        150,
      );
    });
    await new Promise<void>((r) => local.listen(0, '127.0.0.1', () => r()));
    const timer = setInterval(() => ticks++, 10);
    try {
      const port = (local.address() as { port: number }).port;
      const s = await fetcher('h7', ['127.0.0.1'], ['127.0.0.1'], '[limits]\ntimeout = "5s"\n');
      expect(s.offThread).toBe(true);
      // The calling execution's trace context goes out with the request.
      const traceparent = '00-77777777777777777777777777777777-8888888888888888-01';
      const r = await fetchTool(s).invoke({ url: `http://127.0.0.1:${port}/same-thread` }, ctx({ traceparent }));
      expect(r.is_error, r.content).toBeFalsy();
      expect(r.content).toMatch(/^local \/same-thread after \d+ ticks; traceparent 00-7{32}-8{16}-01$/);
      expect(Number(/after (\d+) ticks/.exec(r.content)![1])).toBeGreaterThan(3);
      expect(s.stats().calls).toBe(1);
      s.close();
    } finally {
      clearInterval(timer);
      local.close();
    }
  });

  it('does not follow redirects (they could lead outside the allowlist)', async () => {
    // The largest deadline the default caps allow: on a loaded machine this call has outlasted the
    // 5 s default, and this test is about the 302, not the clock.
    const s = await fetcher('h6', ['127.0.0.1'], ['127.0.0.1'], '[limits]\ntimeout = "10s"\n');
    const status = s.tools.find((t) => t.name.endsWith('.status'))!;
    // Its calls run on a worker: the in-thread instance (the load check's limits) is not offered raw.
    expect(() => s.callRaw('status', new TextEncoder().encode('{}'))).toThrow(/runs its calls on a worker thread/);
    expect(await status.invoke({ url: `${base}/redirect` }, ctx())).toEqual({
      content: 'tool "h6.status" failed (error): the tool returned 302',
      is_error: true,
    });
  });

  it('a module without http_request needs no grant', async () => {
    const s = await server('plain', ['ok'], OK_WAT);
    expect(s.warnings).toEqual([]);
  });
});

/** A host name against `allowed_hosts` entries without ports, as every tool server's HTTP matches it. */
const hostMatches = (host: string, patterns: string[]) => hostGranted(host, 443, parseHostGrants(patterns));

describe('hostMatches', () => {
  it('matches exact names, subdomain wildcards and *', () => {
    expect(hostMatches('api.example.com', ['api.example.com'])).toBe(true);
    expect(hostMatches('API.Example.com.', ['api.example.com'])).toBe(true);
    expect(hostMatches('a.example.com', ['*.example.com'])).toBe(true);
    expect(hostMatches('example.com', ['*.example.com'])).toBe(false);
    expect(hostMatches('evilexample.com', ['*.example.com'])).toBe(false);
    expect(hostMatches('anything', ['*'])).toBe(true);
    expect(hostMatches('x.com', [])).toBe(false);
  });
});
