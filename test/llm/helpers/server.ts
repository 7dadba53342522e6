/**
 * Real HTTP test servers on 127.0.0.1 (port 0) that emulate provider endpoints, so the clients'
 * actual fetch / SSE / retry code runs. Each request is recorded as a Hit.
 *
 * A POST to /chat/completions or /v1/messages that the real API would refuse gets the real API's
 * 400 (test/helpers/llm-standin.ts) instead of the handler's answer. A 200 answer from json() or
 * sse() on those paths must be one the real API could send (close() rejects otherwise); answers
 * partial or malformed on purpose, for the tests of parsing them, go through jsonAsIs() or
 * sse(frames, { asIs: true }).
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProviderConfig } from '../../../src/llm/index.js';
import { apiOf, parseBody, refuseInvalid, warmUp } from '../../helpers/llm-standin.js';
import { assertValidAnswer } from '../../helpers/provider-spec.js';

export interface Hit {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body (undefined when not JSON). */
  body: unknown;
  at: number;
  /** Why the server refused this request as the real API would (then no handler ran). */
  refused?: string;
}

/** Answers hit number `n` (0-based). */
export type Handler = (res: ServerResponse, hit: Hit, n: number) => void | Promise<void>;

export interface TestServer {
  url: string;
  hits: Hit[];
  close(): Promise<void>;
}

/** Starts a server; with a list of handlers, hit n uses handlers[n] (the last one repeats). */
export async function startServer(handlers: Handler | Handler[]): Promise<TestServer> {
  const list = Array.isArray(handlers) ? handlers : [handlers];
  warmUp();
  const hits: Hit[] = [];
  const invalid: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = parseBody(Buffer.concat(chunks).toString('utf8'));
      const hit: Hit = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, at: Date.now() };
      const refusal = refuseInvalid(req.method, hit.path, body, res);
      if (refusal !== undefined) hit.refused = refusal.message;
      const n = hits.push(hit) - 1;
      if (refusal !== undefined) return;
      const handler = list[Math.min(n, list.length - 1)]!;
      void Promise.resolve()
        .then(() => handler(res, hit, n))
        .catch((err: unknown) => {
          if (err instanceof InvalidAnswer) {
            invalid.push(err.message);
            process.stderr.write(`[llm test server] ${err.message}\n`);
          }
          res.destroy();
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close(() =>
          invalid.length > 0
            ? reject(new Error(`the test server sent invalid answers:\n${invalid.join('\n')}`))
            : resolve(),
        );
      }),
  };
}

class InvalidAnswer extends Error {}

/** Throws InvalidAnswer when `value` is not what the API of `hit`'s path could answer. */
function checkAnswer(hit: Hit, kind: 'response' | 'chunk', value: unknown): void {
  const provider = apiOf(hit.path);
  if (provider === undefined) return;
  try {
    assertValidAnswer(provider, kind, value);
  } catch (err) {
    throw new InvalidAnswer(
      `${(err as Error).message} (use jsonAsIs or sse(…, { asIs: true }) for an answer invalid on purpose)`,
    );
  }
}

/** A URL on which nothing listens: a server is started, then closed. */
export async function deadUrl(): Promise<string> {
  const s = await startServer(() => undefined);
  await s.close();
  return s.url;
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Handler {
  return (res, hit) => {
    if (status === 200) checkAnswer(hit, 'response', body);
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
}

/** json() without the check: an answer the real API would not send, for a test of reading one. */
export function jsonAsIs(status: number, body: unknown, headers: Record<string, string> = {}): Handler {
  return (res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
}

export function text(status: number, body: string, contentType = 'text/plain'): Handler {
  return (res) => {
    res.writeHead(status, { 'content-type': contentType });
    res.end(body);
  };
}

/** Never answers. */
export const hang: Handler = () => undefined;

/** One SSE frame. `data` is JSON-encoded unless it is a string. */
export function frame(data: unknown, event?: string): string {
  return `${event !== undefined ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
}

/**
 * An SSE response written in pieces: each frame separately, or (with `splitEvery`) the whole
 * payload cut every N bytes to exercise chunk boundaries. `thenHang` leaves the stream open.
 * Each frame's data must be a chunk (event) the API could send, unless `asIs`.
 */
export function sse(frames: string[], opts: { splitEvery?: number; thenHang?: boolean; asIs?: boolean } = {}): Handler {
  return async (res, hit) => {
    if (!opts.asIs)
      for (const f of frames)
        for (const line of f.split('\n'))
          if (line.startsWith('data: ') && line !== 'data: [DONE]') {
            const data = parseBody(line.slice(6));
            if (data === undefined) throw new InvalidAnswer(`a stream frame is not JSON: ${line}`);
            checkAnswer(hit, 'chunk', data);
          }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const payload = Buffer.from(frames.join(''), 'utf8');
    const pieces: Buffer[] = [];
    if (opts.splitEvery)
      for (let i = 0; i < payload.length; i += opts.splitEvery) pieces.push(payload.subarray(i, i + opts.splitEvery));
    else for (const f of frames) pieces.push(Buffer.from(f, 'utf8'));
    for (const p of pieces) {
      res.write(p);
      await new Promise((r) => setTimeout(r, 2));
    }
    if (!opts.thenHang) res.end();
  };
}

export function providerConfig(overrides: Partial<ProviderConfig> & Pick<ProviderConfig, 'type'>): ProviderConfig {
  return { timeout_ms: 5_000, max_retries: 2, retry_base_ms: 10, ...overrides };
}

// The fields every real answer carries, around the ones a test is about (json() and sse() check
// the result against the provider's schema).

type Fields = Record<string, unknown>;

/** A Chat Completions response; each choice gets index, logprobs and message.refusal unless given. */
export function completion(p: Fields & { choices: Fields[] }): Fields {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion',
    created: 0,
    model: 'gpt-test',
    ...p,
    choices: p.choices.map((c, index) => ({
      index,
      logprobs: null,
      ...c,
      message: { refusal: null, ...(c.message as Fields) },
    })),
  };
}

/** A Chat Completions stream chunk; each choice gets finish_reason null unless given. */
export function chunk(p: Fields & { choices: Fields[] }): Fields {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion.chunk',
    created: 0,
    model: 'gpt-test',
    ...p,
    choices: p.choices.map((c) => ({ finish_reason: null, ...c })),
  };
}

/** An Anthropic Message. */
export function message(p: Fields): Fields {
  return { id: 'msg_test', type: 'message', role: 'assistant', model: 'claude-test', stop_sequence: null, ...p };
}

/** The message_start event's data, its message as the API starts it. */
export function messageStart(p: Fields = {}): Fields {
  return {
    type: 'message_start',
    message: message({ content: [], stop_reason: null, usage: { input_tokens: 1, output_tokens: 0 }, ...p }),
  };
}
