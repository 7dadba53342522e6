/**
 * HTTP for tool modules. WebAssembly calls are synchronous and `fetch` is not, so the request runs
 * in a helper worker thread while the calling thread waits on a SharedArrayBuffer with
 * `Atomics.wait`, bounded by the call's deadline: the wall-clock limit of a host call is enforced
 * here, on the host side, whatever the guest does. Redirects are not followed (a 3xx goes back to
 * the guest), so a redirect cannot lead to a host outside the allowlist.
 */
import { Worker } from 'node:worker_threads';
import { HostTrap } from './errors.js';

/** Whether `host` matches one of `patterns`: exact names, `*.example.com` (subdomains only) or `*`. */
export function hostMatches(host: string, patterns: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  for (const raw of patterns) {
    const p = raw.toLowerCase();
    if (p === '*' || p === h) return true;
    if (p.startsWith('*.') && h.endsWith(p.slice(1)) && h.length > p.length - 1) return true;
  }
  return false;
}

export interface HttpRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: Uint8Array;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}

const HEADER_ROOM = 64 * 1024;

/** The worker: plain CommonJS, evaluated from this string so it needs no compiled file. */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', async (m) => {
  const ctrl = new Int32Array(m.sab, 0, 4);
  const bytes = new Uint8Array(m.sab, 16);
  const fail = (msg) => {
    const e = new TextEncoder().encode(String(msg)).subarray(0, bytes.length);
    bytes.set(e, 0);
    ctrl[2] = e.length;
    Atomics.store(ctrl, 0, 2);
    Atomics.notify(ctrl, 0);
  };
  try {
    const res = await fetch(m.url, { method: m.method, headers: m.headers, body: m.body, redirect: 'manual', signal: AbortSignal.timeout(m.timeoutMs) });
    const headers = {};
    res.headers.forEach((v, k) => { headers[k] = v; });
    const hj = new TextEncoder().encode(JSON.stringify(headers)).subarray(0, ${HEADER_ROOM});
    let len = 0;
    const room = bytes.length - ${HEADER_ROOM};
    if (res.body) {
      for await (const chunk of res.body) {
        if (len + chunk.length > room) { fail('the response body exceeds ' + room + ' bytes'); return; }
        bytes.set(chunk, ${HEADER_ROOM} + len);
        len += chunk.length;
      }
    }
    bytes.set(hj, 0);
    ctrl[1] = res.status;
    ctrl[2] = len;
    ctrl[3] = hj.length;
    Atomics.store(ctrl, 0, 1);
    Atomics.notify(ctrl, 0);
  } catch (e) {
    fail(e && e.name === 'TimeoutError' ? 'timeout' : (e && e.cause && e.cause.message) || (e && e.message) || String(e));
  }
});
`;

/** Synchronous HTTP through one helper worker, started on first use and shared by all tool servers. */
export class SyncHttpClient {
  #worker: Worker | undefined;

  #ensure(): Worker {
    if (!this.#worker) {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.unref();
      w.on('error', () => {
        if (this.#worker === w) this.#worker = undefined;
      });
      w.on('exit', () => {
        if (this.#worker === w) this.#worker = undefined;
      });
      this.#worker = w;
    }
    return this.#worker;
  }

  /** Blocks until the response arrives, `timeoutMs` passes (HostTrap 'timeout') or the fetch fails ('http_error'). */
  request(req: HttpRequest, opts: { timeoutMs: number; maxBytes: number }): HttpResponse {
    const timeoutMs = Math.max(1, Math.floor(opts.timeoutMs));
    const sab = new SharedArrayBuffer(16 + HEADER_ROOM + opts.maxBytes);
    const ctrl = new Int32Array(sab, 0, 4);
    this.#ensure().postMessage({
      sab,
      url: req.url,
      method: req.method,
      headers: req.headers,
      body: req.body,
      timeoutMs,
    });
    const waited = Atomics.wait(ctrl, 0, 0, timeoutMs + 50);
    const state = Atomics.load(ctrl, 0);
    if (waited === 'timed-out' && state === 0)
      throw new HostTrap('timeout', `HTTP ${req.method} ${req.url} timed out after ${timeoutMs} ms`);
    const bytes = new Uint8Array(sab, 16);
    if (state === 2) {
      const msg = new TextDecoder().decode(bytes.slice(0, ctrl[2]));
      if (msg === 'timeout')
        throw new HostTrap('timeout', `HTTP ${req.method} ${req.url} timed out after ${timeoutMs} ms`);
      throw new HostTrap('http_error', `HTTP ${req.method} ${req.url} failed: ${msg}`);
    }
    const headers = JSON.parse(new TextDecoder().decode(bytes.slice(0, ctrl[3]))) as Record<string, string>;
    return { status: ctrl[1]!, headers, body: bytes.slice(HEADER_ROOM, HEADER_ROOM + ctrl[2]!) };
  }

  async close(): Promise<void> {
    const w = this.#worker;
    this.#worker = undefined;
    if (w) await w.terminate();
  }
}

let shared: SyncHttpClient | undefined;

/** The process-wide client. */
export function sharedHttpClient(): SyncHttpClient {
  shared ??= new SyncHttpClient();
  return shared;
}

/** A guest's HTTP request as checked against the grants: what to send. */
export interface CheckedHttpRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
}

/**
 * Parses a guest's JSON request ({"url", "method", "headers"}) and checks it against the grants:
 * http(s) only, HTTP granted, host allowed. `fn` names the host function in errors. The caller's
 * `traceparent` is added unless the guest sets its own. Throws HostTrap ('http_error' for a
 * malformed request, 'denied' for a refused one).
 */
export function checkHttpRequest(
  text: string,
  fn: string,
  grants: { httpGranted: boolean; hostAllowed(host: string): boolean },
  traceparent?: string,
): CheckedHttpRequest {
  let req: { url?: unknown; method?: unknown; headers?: unknown };
  try {
    req = JSON.parse(text) as typeof req;
  } catch {
    throw new HostTrap('http_error', `${fn}: the request is not valid JSON ({"url", "method", "headers"})`);
  }
  if (typeof req.url !== 'string') throw new HostTrap('http_error', `${fn}: the request has no "url"`);
  let url: URL;
  try {
    url = new URL(req.url);
  } catch {
    throw new HostTrap('http_error', `${fn}: "${req.url}" is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new HostTrap('denied', `HTTP request to "${req.url}" refused: only http and https URLs are allowed`);
  if (!grants.httpGranted)
    throw new HostTrap(
      'denied',
      `HTTP request to host "${url.hostname}" refused: HTTP is not granted to this tool server; grant it in caxton.toml with [tools.SERVER] allowed_hosts = ["${url.hostname}"] (SERVER: the tool name before the dot, e.g. http_client) and restart the server`,
    );
  if (!grants.hostAllowed(url.hostname))
    throw new HostTrap(
      'denied',
      `HTTP request to host "${url.hostname}" refused: the host is not in the allowlist; allow it with [tools.SERVER] allowed_hosts = ["${url.hostname}"] in caxton.toml (SERVER: the tool name before the dot; the tool manifest must list the host too) and restart the server`,
    );
  const headers: Record<string, string> = {};
  if (typeof req.headers === 'object' && req.headers !== null)
    for (const [k, v] of Object.entries(req.headers)) headers[k] = String(v);
  if (traceparent !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === 'traceparent'))
    headers.traceparent = traceparent;
  return { url: url.href, method: typeof req.method === 'string' ? req.method.toUpperCase() : 'GET', headers };
}
