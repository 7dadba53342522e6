import type { FastifyReply, FastifyRequest } from 'fastify';
import type { StreamEnd } from '../auth/open-streams.js';
import { scrubSecrets } from '../shared/secrets.js';
import { envelope } from './envelope.js';

/**
 * A server-sent-events response on a hijacked reply; `signal` aborts when the client goes away or
 * when the credential the stream was opened with stops being valid (revoked, rotated, expired).
 */
export interface SseStream {
  send(event: string | undefined, data: unknown): void;
  /** A comment line (`: text`), ignored by clients: keeps idle connections and proxies alive. */
  comment(text: string): void;
  end(): void;
  readonly signal: AbortSignal;
}

export function wantsEventStream(req: FastifyRequest): boolean {
  return (req.headers.accept ?? '').includes('text/event-stream');
}

/** Aborts when the client disconnects before the response is complete. */
export function disconnectSignal(req: FastifyRequest, reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  onDisconnect(req, reply, () => ac.abort());
  return ac.signal;
}

/**
 * The client's disconnect as the executor's `cancelOn` (src/execution/executor.ts): no
 * AbortController of its own, so an invoke's deadline controller is its only one. Listens from
 * now on, so a client gone before the execution starts cancels it as soon as it does.
 */
export function disconnectHook(req: FastifyRequest, reply: FastifyReply): (cancel: () => void) => void {
  let gone = false;
  let cancel: (() => void) | undefined;
  onDisconnect(req, reply, () => {
    gone = true;
    cancel?.();
  });
  return (c) => {
    cancel = c;
    if (gone) c();
  };
}

/**
 * Calls `gone` when the client goes away before the response is complete, or when the credential
 * the request was authenticated with ends (src/auth/plugin.ts answers it then): either way no one
 * may have what the work would still produce.
 */
function onDisconnect(req: FastifyRequest, reply: FastifyReply, gone: () => void): void {
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) gone();
  });
  req.raw.on('aborted', gone);
  const ended = req.credentialEnded;
  if (ended?.aborted) gone();
  else ended?.addEventListener('abort', gone, { once: true });
}

export function openSse(req: FastifyRequest, reply: FastifyReply): SseStream {
  const ac = new AbortController();
  const signal = ac.signal;
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-request-id': String(req.id),
  });
  // Send the status and headers now: without this Node holds them back until the first event,
  // so a client would see nothing (not even the 200) until the model's first token.
  raw.flushHeaders();
  // A stream ends with its credential (src/auth/plugin.ts holds every request): the last event
  // says why, in the API's error shape; the abort lets the route stop its work and release what
  // it holds, as when the client goes away. Listened to before the disconnect, so the event is
  // written before the route's cleanup ends the stream.
  req.credentialEnded?.addEventListener(
    'abort',
    () => {
      const why = req.credentialEnded!.reason as StreamEnd;
      if (!raw.writableEnded) {
        raw.write(
          `event: error\ndata: ${JSON.stringify(envelope(why.code, why.message, why.details, String(req.id)))}\n\n`,
        );
      }
      ac.abort(why);
      if (!raw.writableEnded) raw.end();
    },
    { once: true },
  );
  onDisconnect(req, reply, () => ac.abort());
  return {
    signal,
    send(event, data) {
      if (raw.writableEnded) return;
      // The last exit of streamed text: scrubbed of the configured secrets (ADR 0017).
      raw.write(
        `${event ? `event: ${event}\n` : ''}data: ${scrubSecrets(typeof data === 'string' ? data : JSON.stringify(data))}\n\n`,
      );
    },
    comment(text) {
      if (!raw.writableEnded) raw.write(`: ${scrubSecrets(text.replace(/\n/g, ' '))}\n\n`);
    },
    end() {
      if (!raw.writableEnded) raw.end();
    },
  };
}

/** Interval of the comment lines that keep an idle event stream open through proxies. */
export const HEARTBEAT_MS = 15_000;

/** Heartbeats and cleanup for an open event stream; returns the function that ends it. */
export function keepOpen(sse: SseStream, streams: Set<() => void>, cleanup: () => void): () => void {
  let ended = false;
  const heartbeat = setInterval(() => sse.comment('heartbeat'), HEARTBEAT_MS);
  heartbeat.unref();
  const end = (): void => {
    if (ended) return;
    ended = true;
    clearInterval(heartbeat);
    streams.delete(end);
    cleanup();
    sse.end();
  };
  streams.add(end);
  sse.signal.addEventListener('abort', end, { once: true });
  return end;
}
