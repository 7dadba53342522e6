/**
 * Live updates from the server's event streams (server-sent events). EventSource cannot send an
 * Authorization header, so the stream is read with fetch and a ReadableStream, parsed here, and
 * reopened after a drop (with Last-Event-ID when the server gave ids), waiting longer each time.
 * A 401 ends the session; a 403 or 404 stops (retrying cannot help) and is reported.
 */
import { apiUrl, errorOf, type ApiError, type RequestOptions } from './api';
import { authHeaders } from './session';

export interface SseEvent {
  /** The `event:` name ("message" when the server gave none). */
  event: string;
  data: string;
  id?: string;
}

export type LiveState =
  | { state: 'connecting' }
  | { state: 'open' }
  | { state: 'retrying'; inMs: number; reason: string }
  | { state: 'stopped'; error: ApiError };

/** Reads server-sent events from a response body until it ends or `signal` aborts. */
export async function readSse(
  body: ReadableStream<Uint8Array>,
  onEvent: (e: SseEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;
  const abort = () => void reader.cancel().catch(() => {});
  signal?.addEventListener('abort', abort, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length > 0)
            onEvent({ event: event || 'message', data: data.join('\n'), ...(id !== undefined && { id }) });
          event = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue; // a comment: the server's heartbeat
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') id = value;
      }
    }
  } finally {
    signal?.removeEventListener('abort', abort);
  }
}

export interface FollowOptions {
  path: string;
  /** The query string; a function is called on every (re)connect, e.g. to resume after the last event seen (`after=`). */
  query?: RequestOptions['query'] | (() => RequestOptions['query']);
  onEvent: (e: SseEvent) => void;
  onState?: (s: LiveState) => void;
  /** First wait before reconnecting (doubles up to maxRetryMs). */
  retryMs?: number;
  maxRetryMs?: number;
}

/** Follows a GET event stream until the returned function is called; reconnects after drops. */
export function follow(opts: FollowOptions): () => void {
  const ac = new AbortController();
  const first = opts.retryMs ?? 1000;
  const max = opts.maxRetryMs ?? 15_000;
  let wait = first;
  let lastId: string | undefined;
  const report = (s: LiveState) => {
    if (!ac.signal.aborted) opts.onState?.(s);
  };
  const run = async (): Promise<void> => {
    while (!ac.signal.aborted) {
      report({ state: 'connecting' });
      let reason = 'the stream ended';
      try {
        const res = await fetch(apiUrl(opts.path, typeof opts.query === 'function' ? opts.query() : opts.query), {
          headers: {
            ...authHeaders(),
            accept: 'text/event-stream',
            ...(lastId !== undefined && { 'last-event-id': lastId }),
          },
          signal: ac.signal,
          credentials: 'omit',
          cache: 'no-store',
        });
        if (!res.ok) {
          const err = await errorOf(res);
          if (res.status === 401 || res.status === 403 || res.status === 404 || res.status === 400)
            return report({ state: 'stopped', error: err });
          reason = err.message;
        } else if (res.body) {
          report({ state: 'open' });
          wait = first;
          await readSse(
            res.body,
            (e) => {
              if (e.id !== undefined) lastId = e.id;
              opts.onEvent(e);
            },
            ac.signal,
          );
        }
      } catch (e) {
        if (ac.signal.aborted) return;
        reason = e instanceof Error ? e.message : String(e);
      }
      if (ac.signal.aborted) return;
      report({ state: 'retrying', inMs: wait, reason });
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, max);
    }
  };
  void run();
  return () => ac.abort();
}
