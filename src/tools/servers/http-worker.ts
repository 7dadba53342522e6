/**
 * Worker entry of SyncHttpClient (host-http.ts): makes one tool module's HTTP request at a time while
 * the calling thread waits on the SharedArrayBuffer, connecting only to an address the grants
 * allow (src/tools/egress.ts; the name was matched before the request was sent here).
 */
import { parentPort } from 'node:worker_threads';
import * as undici from 'undici';
import { portOfUrl } from '../../shared/host-grants.js';
import { egressAgent, egressRefusalOf, literalRefusal } from '../egress.js';
import { HEADER_ROOM, type HttpWorkerRequest } from './host-http.js';

const enc = new TextEncoder();

parentPort!.on('message', (m: HttpWorkerRequest) => void answer(m));

async function answer(m: HttpWorkerRequest): Promise<void> {
  const ctrl = new Int32Array(m.sab, 0, 4);
  const bytes = new Uint8Array(m.sab, 16);
  const fail = (msg: string): void => {
    const e = enc.encode(msg).subarray(0, bytes.length);
    bytes.set(e, 0);
    ctrl[2] = e.length;
    Atomics.store(ctrl, 0, 2);
    Atomics.notify(ctrl, 0);
  };
  const url = new URL(m.url);
  const port = portOfUrl(url);
  const literal = literalRefusal(url.hostname, port, [m.addresses], m.own);
  if (literal !== undefined) return fail(`refused: ${literal}`);
  const dispatcher = egressAgent(undici, port, [m.addresses], m.own, m.timeoutMs);
  try {
    const res = await undici.fetch(url, {
      method: m.method,
      headers: m.headers,
      ...(m.body !== undefined && { body: m.body }),
      redirect: 'manual',
      signal: AbortSignal.timeout(m.timeoutMs),
      dispatcher,
    });
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => (headers[k] = v));
    const hj = enc.encode(JSON.stringify(headers)).subarray(0, HEADER_ROOM);
    let len = 0;
    const room = bytes.length - HEADER_ROOM;
    if (res.body) {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        if (len + chunk.length > room) return fail(`the response body exceeds ${room} bytes`);
        bytes.set(chunk, HEADER_ROOM + len);
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
    const refused = egressRefusalOf(e);
    if (refused !== undefined) return fail(`refused: ${refused.message}`);
    const err = e as Error & { cause?: { message?: string } };
    fail(err.name === 'TimeoutError' ? 'timeout' : (err.cause?.message ?? err.message ?? String(e)));
  } finally {
    void dispatcher.close().catch(() => undefined);
  }
}
