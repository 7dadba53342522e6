/**
 * The model-call transport against a real server on 127.0.0.1: connections kept alive and
 * reused, closed when a stream is abandoned or aborted, timeouts, redirects not followed, and
 * response bodies bounded.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LlmError, OpenAiProvider, type ChatRequest, type ProviderConfig } from '../../src/llm/index.js';
import { MAX_SSE_EVENT_CHARS } from '../../src/llm/sse-parser.js';
import { BodyTooLarge, MAX_RESPONSE_BYTES, post, readText } from '../../src/llm/transport.js';
import { waitUntil } from '../helpers/wait.js';

interface Server {
  url: string;
  /** Every connection the server accepted. */
  sockets: Socket[];
  /** Sockets closed so far. */
  closed: Set<Socket>;
  hits: number;
  close(): Promise<void>;
}

type Answer = (req: IncomingMessage, res: ServerResponse, n: number) => void;

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(answer: Answer): Promise<Server> {
  const sockets: Socket[] = [];
  const closed = new Set<Socket>();
  const s: Server = { url: '', sockets, closed, hits: 0, close: async () => undefined };
  const server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    req.resume();
    req.on('end', () => answer(req, res, s.hits++));
  });
  server.on('connection', (socket: Socket) => {
    sockets.push(socket);
    socket.on('close', () => closed.add(socket));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  s.close = () =>
    new Promise<void>((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    });
  servers.push(s);
  return s;
}

const COMPLETION = JSON.stringify({
  id: 'c',
  object: 'chat.completion',
  model: 'm',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
});
const frame = (content: string) =>
  `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;

const answerJson: Answer = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(COMPLETION) });
  res.end(COMPLETION);
};
/** One event, then nothing: the stream stays open. */
const startThenHang: Answer = (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write(frame('first'));
};

function provider(url: string, extra: Partial<ProviderConfig> = {}): OpenAiProvider {
  return new OpenAiProvider('p', {
    type: 'openai',
    base_url: url,
    model: 'm',
    timeout_ms: 5_000,
    max_retries: 0,
    retry_base_ms: 10,
    ...extra,
  });
}
const req: ChatRequest = { model: 'm', messages: [{ role: 'user', content: 'hello' }] };

async function failure(p: Promise<unknown>): Promise<LlmError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(LlmError);
    return e as LlmError;
  }
  throw new Error('expected the call to fail');
}

describe('model-call transport', () => {
  it('sends sequential calls over one kept-alive connection', async () => {
    const s = await serve(answerJson);
    const p = provider(s.url);
    for (let i = 0; i < 5; i++) {
      expect((await p.chat(req)).content).toBe('hi');
      // What a server does between two model turns; see the next test for none at all.
      await new Promise((ok) => setImmediate(ok));
    }
    expect(s.hits).toBe(5);
    expect(s.sockets).toHaveLength(1);
    expect(s.closed.size).toBe(0);
  });

  it('calls sent back to back, with nothing between them, reuse at most two connections', async () => {
    // undici frees a connection a tick after its body ends: a call made in that tick opens a
    // second one, and from then on the two take turns.
    const s = await serve(answerJson);
    const p = provider(s.url);
    for (let i = 0; i < 10; i++) expect((await p.chat(req)).content).toBe('hi');
    expect(s.hits).toBe(10);
    expect(s.sockets.length).toBeLessThanOrEqual(2);
    expect(s.closed.size).toBe(0);
  });

  it('a caller abort mid-stream closes the connection, and the next call still works', async () => {
    let n = 0;
    const s = await serve((r, res, i) => (i === 0 ? startThenHang(r, res, i) : answerJson(r, res, i)));
    const ac = new AbortController();
    const e = await failure(
      (async () => {
        for await (const ev of provider(s.url).stream({ ...req, signal: ac.signal }))
          if (ev.type === 'text_delta') {
            n++;
            ac.abort();
          }
      })(),
    );
    expect(e.kind).toBe('cancelled');
    expect(n).toBe(1);
    await waitUntil(() => s.closed.has(s.sockets[0]!));
    expect((await provider(s.url).chat(req)).content).toBe('hi');
    expect(s.sockets).toHaveLength(2);
  });

  it('a consumer that stops reading a stream closes its connection', async () => {
    const s = await serve(startThenHang);
    for await (const ev of provider(s.url).stream(req)) if (ev.type === 'text_delta') break;
    await waitUntil(() => s.closed.has(s.sockets[0]!));
  });

  it('a body that stalls after the headers times out and its connection is closed', async () => {
    const s = await serve((_r, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 1000 });
      res.write('{"id":');
    });
    const e = await failure(provider(s.url, { timeout_ms: 200 }).chat(req));
    expect(e.kind).toBe('timeout');
    expect(e.message).toContain('timeout_ms = 200');
    await waitUntil(() => s.closed.has(s.sockets[0]!));
  });

  it('a stream silent for longer than timeout_ms times out', async () => {
    const s = await serve(startThenHang);
    const e = await failure(
      (async () => {
        for await (const ev of provider(s.url, { timeout_ms: 200 }).stream(req)) void ev;
      })(),
    );
    expect(e.kind).toBe('timeout');
    expect(e.message).toContain('while streaming');
  });

  it('does not follow a redirect, and says where it points', async () => {
    const elsewhere = await serve(answerJson);
    const s = await serve((_r, res) => {
      res.writeHead(307, { location: `${elsewhere.url}/chat/completions` }).end();
    });
    const e = await failure(provider(s.url).chat(req));
    expect(e.kind).toBe('connection');
    expect(e.httpStatus).toBe(307);
    expect(e.message).toContain(`redirects to ${elsewhere.url}/chat/completions`);
    expect(e.message).toContain('set base_url');
    expect(elsewhere.hits).toBe(0);
  });

  it('refuses a response body declared larger than the bound without reading it', async () => {
    const s = await serve((_r, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': MAX_RESPONSE_BYTES + 1 });
      res.write('{');
    });
    const e = await failure(provider(s.url).chat(req));
    expect(e.kind).toBe('malformed_response');
    expect(e.message).toContain(`larger than ${MAX_RESPONSE_BYTES} bytes`);
  });

  it('bounds a body sent without a length as it arrives: refused whole, or cut when quoted', async () => {
    const s = await serve((_r, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' }); // chunked: no content-length
      res.write('0123456789');
      res.end('abcdefghij');
    });
    const call = () => post(new URL(`${s.url}/chat/completions`), {}, '{}', new AbortController().signal);
    await expect(readText(await call(), 15)).rejects.toBeInstanceOf(BodyTooLarge);
    expect(await readText(await call(), 15, true)).toBe('0123456789abcde');
    expect(await readText(await call(), 100)).toBe('0123456789abcdefghij');
  });

  it('refuses a stream event longer than the bound', async () => {
    const s = await serve((_r, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`data: ${'x'.repeat(MAX_SSE_EVENT_CHARS + 10)}`);
    });
    const e = await failure(
      (async () => {
        for await (const ev of provider(s.url).stream(req)) void ev;
      })(),
    );
    expect(e.kind).toBe('malformed_response');
    expect(e.message).toContain(`longer than ${MAX_SSE_EVENT_CHARS} characters`);
  });

  it('refuses a base_url that is not http or https, in the project words', async () => {
    const e = await failure(provider('ftp://127.0.0.1/v1').chat(req));
    expect(e.kind).toBe('connection');
    expect(e.message).toContain('invalid base_url "ftp://127.0.0.1/v1"');
  });
});
