/**
 * HTTP for tool modules. WebAssembly calls are synchronous and `fetch` is not, so the request runs
 * in a helper worker thread while the calling thread waits on a SharedArrayBuffer with
 * `Atomics.wait`, bounded by the call's deadline: the wall-clock limit of a host call is enforced
 * here, on the host side, whatever the guest does. Redirects are not followed (a 3xx goes back to
 * the guest), so a redirect cannot lead to a host outside the allowlist.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { hostGranted, ownListeners, portOfUrl, type HostGrant, type Listener } from '../../shared/host-grants.js';
import { HostTrap } from './errors.js';

export interface HttpRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: Uint8Array;
  /**
   * The operator's grant, which alone decides whether an internal address (or this process's own
   * listener) may be connected to: a manifest asks for names, the operator grants addresses.
   */
  addresses: readonly HostGrant[];
}

/** What the worker (http-worker.ts) is sent for one request. */
export interface HttpWorkerRequest extends HttpRequest {
  sab: SharedArrayBuffer;
  timeoutMs: number;
  /** This process's listeners (reached only through an entry naming address and port). */
  own: Listener[];
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}

export const HEADER_ROOM = 64 * 1024;

/** The compiled worker module (workers load JavaScript: from src, use the build in dist/). */
function workerPath(): string {
  const here = fileURLToPath(import.meta.url);
  const js = here.replace(/host-http\.(ts|js)$/, 'http-worker.js');
  if (existsSync(js)) return js;
  return js.replace(
    /([\\/])src([\\/])tools([\\/])servers([\\/])http-worker\.js$/,
    '$1dist$2tools$3servers$4http-worker.js',
  );
}

/** Synchronous HTTP through one helper worker, started on first use and shared by all tool servers. */
export class SyncHttpClient {
  #worker: Worker | undefined;
  /** This process's listeners: read here, or given (a sandbox's own thread has none registered). */
  readonly #own: () => Listener[];

  constructor(own: () => Listener[] = ownListeners) {
    this.#own = own;
  }

  #ensure(): Worker {
    if (!this.#worker) {
      const w = new Worker(workerPath());
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
    const msg: HttpWorkerRequest = {
      sab,
      url: req.url,
      method: req.method,
      headers: req.headers,
      ...(req.body !== undefined && { body: req.body }),
      addresses: req.addresses,
      timeoutMs,
      own: this.#own(),
    };
    this.#ensure().postMessage(msg);
    const waited = Atomics.wait(ctrl, 0, 0, timeoutMs + 50);
    const state = Atomics.load(ctrl, 0);
    if (waited === 'timed-out' && state === 0)
      throw new HostTrap('timeout', `HTTP ${req.method} ${req.url} timed out after ${timeoutMs} ms`);
    const bytes = new Uint8Array(sab, 16);
    if (state === 2) {
      const msg = new TextDecoder().decode(bytes.slice(0, ctrl[2]));
      if (msg === 'timeout')
        throw new HostTrap('timeout', `HTTP ${req.method} ${req.url} timed out after ${timeoutMs} ms`);
      if (msg.startsWith('refused: ')) throw new HostTrap('denied', `HTTP ${req.method} ${req.url} ${msg}`);
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

/** The thread-wide client; `own`: the process's listeners, for a thread other than the server's. */
export function sharedHttpClient(own?: () => Listener[]): SyncHttpClient {
  shared ??= new SyncHttpClient(own);
  return shared;
}

/** A guest's HTTP request as checked against the grants: what to send. */
export interface CheckedHttpRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  addresses: readonly HostGrant[];
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
  grants: { httpGranted: boolean; hosts: readonly (readonly HostGrant[])[] },
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
  const port = portOfUrl(url);
  if (!grants.hosts.every((list) => hostGranted(url.hostname, port, list)))
    throw new HostTrap(
      'denied',
      `HTTP request to host "${url.hostname}" refused: the host is not in the allowlist; allow it with [tools.SERVER] allowed_hosts = ["${url.hostname}"] in caxton.toml (SERVER: the tool name before the dot; the tool manifest must list the host too) and restart the server`,
    );
  const headers: Record<string, string> = {};
  if (typeof req.headers === 'object' && req.headers !== null)
    for (const [k, v] of Object.entries(req.headers)) headers[k] = String(v);
  if (traceparent !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === 'traceparent'))
    headers.traceparent = traceparent;
  return {
    url: url.href,
    method: typeof req.method === 'string' ? req.method.toUpperCase() : 'GET',
    headers,
    addresses: grants.hosts[grants.hosts.length - 1] ?? [],
  };
}
