/**
 * Shared by the tool-server tests: deploy bodies from package directories, a WAT fetcher module
 * that makes HTTP requests, and an HTTP server in a worker thread (the sandbox's HTTP call blocks
 * the server thread until the answer arrives, so the server answering it must run elsewhere).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { wat } from '../wasm/helpers.js';

export { EXAMPLE_DIR, ensureToolsBuilt, wat } from '../wasm/helpers.js';

/** The REST deploy body of a package directory (manifest text + base64 module). */
export function deployBody(dir: string, module = 'build/text.wasm'): { manifest: string; wasm: string } {
  return {
    manifest: readFileSync(join(dir, 'caxton-tool.toml'), 'utf8'),
    wasm: readFileSync(join(dir, module)).toString('base64'),
  };
}

/** Sends its input (JSON {"url", "method"}) to http_request and outputs the body. */
export const FETCH_WAT = `(module
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "fetch") (result i32) (local $r i64)
    (local.set $r (call $http_request (call $input_offset) (i64.const 0)))
    (call $output_set (local.get $r) (call $length (local.get $r)))
    (i32.const 0)))`;

export async function fetcherPackage(name: string, hosts: string[]): Promise<{ manifest: string; wasm: string }> {
  const manifest = `name = "${name}"\nversion = "1.0.0"\ndescription = "fetches URLs"\n\n[[tools]]\nname = "fetch"\ndescription = "GET a URL"\ninput_schema = { type = "object", properties = { url = { type = "string" } }, required = ["url"] }\n\n[permissions]\nallowed_hosts = [${hosts.map((h) => `"${h}"`).join(', ')}]\n`;
  return { manifest, wasm: Buffer.from(await wat(FETCH_WAT)).toString('base64') };
}

const SERVER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const s = http.createServer((req, res) => {
  const route = workerData.routes[req.url];
  if (!route) { res.writeHead(404, { 'content-type': 'text/plain' }); return res.end('not found'); }
  res.writeHead(200, { 'content-type': route.type });
  res.end(route.body);
});
s.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: s.address().port }));
parentPort.on('message', (m) => { if (m === 'close') { s.closeAllConnections(); s.close(() => parentPort.postMessage('closed')); } });
`;

export interface WorkerHttpServer {
  /** http://127.0.0.1:PORT */
  url: string;
  close(): Promise<void>;
}

/** An HTTP server in a worker thread answering fixed routes: path → {type, body}. */
export async function workerHttpServer(
  routes: Record<string, { type: string; body: string }>,
): Promise<WorkerHttpServer> {
  const worker = new Worker(SERVER_SOURCE, { eval: true, workerData: { routes } });
  const { port } = await new Promise<{ port: number }>((resolve) => worker.once('message', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      worker.postMessage('close');
      await new Promise((r) => worker.once('message', r));
      await worker.terminate();
    },
  };
}

export interface Http {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
  text: string;
}

/** One JSON request to a running server. */
export async function api(base: string, method: string, path: string, body?: unknown): Promise<Http> {
  const res = await fetch(base + path, {
    method,
    ...(body !== undefined && {
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}
