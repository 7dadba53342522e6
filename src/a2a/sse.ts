/**
 * An A2A stream on the wire (server-sent events), shared by both bindings: each event is one
 * `data:` line of JSON, scrubbed of the configured secrets at this last exit (ADR 0017); a client
 * going away or the server closing ends it.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { scrubSecrets } from '../shared/secrets.js';

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
};

/** How a binding writes one event and an error met mid-stream (the SSE frame, without its blank line). */
export interface SseFormat {
  event(value: unknown): string;
  error(e: unknown): string;
}

export const dataFrame = (value: unknown): string => `data: ${JSON.stringify(value)}`;

/**
 * Sends `first` and the rest of `it` as events, then ends the response. `streams` holds the
 * stream's end while it runs (the server's close ends every open one); `gone` is aborted at the end
 * so the follower behind `it` stops.
 */
export async function pipeSse(
  req: FastifyRequest,
  reply: FastifyReply,
  first: IteratorResult<unknown>,
  it: AsyncIterator<unknown>,
  fmt: SseFormat,
  gone: AbortController,
  streams: Set<() => void>,
): Promise<FastifyReply> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { ...SSE_HEADERS, 'x-request-id': String(req.id) });
  raw.flushHeaders();
  const write = (frame: string): void => {
    if (!raw.writableEnded) raw.write(`${scrubSecrets(frame)}\n\n`);
  };
  const end = (): void => {
    gone.abort();
    if (!raw.writableEnded) raw.end();
  };
  streams.add(end);
  try {
    if (first.done !== true) write(fmt.event(first.value));
    for (let r = await it.next(); r.done !== true; r = await it.next()) write(fmt.event(r.value));
  } catch (e) {
    write(fmt.error(e));
  } finally {
    streams.delete(end);
    end();
  }
  return reply;
}
