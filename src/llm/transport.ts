/**
 * The one way a model call goes over HTTP: a keep-alive connection pool per origin (undici's
 * Pool), a POST with a signal, and the response body read within a bound. The retries, the
 * timeouts and the error mapping are in provider-http.ts; this module only moves bytes.
 *
 * Why undici's Pool and not the global `fetch`: fetch builds a Request, a Response, Headers and
 * web streams for every call, several times the client CPU of the request itself (ADR 0135,
 * measured by `npm run bench -- model-http`). Redirects are not followed: a model API that
 * answers 3xx is misconfigured, and following one would send the request body somewhere the
 * configuration does not name; provider-http.ts says where it points.
 */
import type { Dispatcher, Pool } from 'undici';
import { loadUndici } from '../shared/undici.js';

/** The largest response body read whole (a chat completion, an embeddings batch). */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** The most of an error response read: its message is quoted in a few hundred characters. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** Origins kept with a pool at once; the least recently used one is closed past this. */
const MAX_POOLS = 32;

const pools = new Map<string, Pool>();

async function poolFor(origin: string): Promise<Pool> {
  let pool = pools.get(origin);
  if (pool !== undefined) {
    // Most recently used last, so the first is the one to close.
    pools.delete(origin);
    pools.set(origin, pool);
    return pool;
  }
  // undici is loaded on the first call: worker threads and child processes that never call a model do not load it.
  const { Pool } = await loadUndici();
  pool = pools.get(origin);
  if (pool !== undefined) return pool;
  // undici's own header and body timeouts are off: timeout_ms (provider-http.ts) is the one timeout.
  pool = new Pool(origin, { headersTimeout: 0, bodyTimeout: 0 });
  pools.set(origin, pool);
  if (pools.size > MAX_POOLS) {
    const [oldest, old] = pools.entries().next().value as [string, Pool];
    pools.delete(oldest);
    void old.close().catch(() => undefined);
  }
  return pool;
}

/** A URL this transport can call, or a thrown TypeError in the words provider-http.ts maps to "invalid base_url". */
export function parseCallUrl(url: string): URL {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw Object.assign(new TypeError(`invalid url: the scheme is "${u.protocol}", not http: or https:`), {
      code: 'ERR_INVALID_URL',
    });
  }
  return u;
}

export interface TransportResponse {
  status: number;
  /** A response header (lower-case name), the first value when repeated. */
  header(name: string): string | undefined;
  body: Dispatcher.ResponseData['body'];
}

/** POSTs `body` to `url` on the origin's pooled connections; resolves when the headers arrive. */
export async function post(
  url: URL,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal,
): Promise<TransportResponse> {
  const res = await (
    await poolFor(url.origin)
  ).request({
    path: url.pathname + url.search,
    method: 'POST',
    headers,
    body,
    signal,
  });
  return {
    status: res.statusCode,
    header: (name) => {
      const v = res.headers[name];
      return Array.isArray(v) ? v[0] : v;
    },
    body: res.body,
  };
}

/** Thrown when a body passes its bound; the connection is closed, not reused. */
export class BodyTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the response body is larger than ${limit} bytes`);
  }
}

/**
 * The body as text, read up to `limit` bytes. With `truncate` the rest is dropped (an error body,
 * quoted only in part); without, a longer body is a BodyTooLarge.
 */
export async function readText(res: TransportResponse, limit: number, truncate = false): Promise<string> {
  const length = res.header('content-length');
  const declared = length === undefined ? Number.NaN : Number(length);
  if (declared <= limit) return res.body.text(); // framed by its length: it cannot grow past it
  if (!truncate && declared > limit) {
    res.body.destroy();
    throw new BodyTooLarge(limit);
  }
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      res.body.destroy();
      if (!truncate) throw new BodyTooLarge(limit);
      parts.push(chunk.subarray(0, chunk.length - (size - limit)));
      size = limit;
      break;
    }
    parts.push(chunk);
  }
  return parts.length === 1 ? parts[0]!.toString('utf8') : Buffer.concat(parts, size).toString('utf8');
}

/** Reads and drops what is left of a body so that its connection goes back to the pool. */
export function discard(res: TransportResponse): void {
  res.body.resume();
  res.body.on('error', () => undefined);
}
