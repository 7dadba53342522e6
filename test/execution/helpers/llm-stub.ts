/**
 * A real HTTP server on 127.0.0.1 (port 0) that emulates two LLM APIs, so Caxton's real provider
 * clients (fetch, SSE parsing, retries) run against it:
 *  - OpenAI chat completions: POST /v1/chat/completions (JSON, or SSE when body.stream);
 *  - Anthropic Messages:      POST /v1/messages         (JSON, or SSE when body.stream).
 *
 * What it answers is scripted per hit: a provider-neutral `Reply` (rendered in the wire format of
 * the endpoint that was hit, streamed or not) or a raw handler for error cases. Every request is
 * recorded as a `StubHit`, including whether the client went away before the answer was complete.
 *
 * It is strict (test/helpers/llm-standin.ts): a request the real API would refuse gets the real
 * API's 400 and never reaches the script, and a `Reply` is rendered as the real API renders it and
 * checked against the provider's schema; a rendering that fails the check makes close() reject.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  anthropicMessage,
  anthropicStream,
  openaiCompletion,
  openaiStream,
  parseBody,
  refuseInvalid,
  sendJson,
  wantsUsage,
  warmUp,
} from '../../helpers/llm-standin.js';

export interface StubHit {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  raw: string;
  /** The parsed JSON body (undefined when not JSON). Typed loosely: tests navigate it freely. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  /** 'openai' for /v1/chat/completions, 'anthropic' for /v1/messages, else 'other'. */
  api: 'openai' | 'anthropic' | 'other';
  stream: boolean;
  /** Set when the client closed the connection before the response was finished. */
  clientClosed: boolean;
  /** Why the stand-in refused this request as the real API would (then the script did not run). */
  refused?: string;
  at: number;
}

export interface ScriptedToolCall {
  id: string;
  name: string;
  arguments: Record<string, unknown>;
}

/** A model reply, independent of the wire format. */
export interface Reply {
  content?: string;
  tool_calls?: ScriptedToolCall[];
  usage?: { input: number; output: number };
  model?: string;
  /** Wait this long before answering (aborted when the client goes away). */
  delayMs?: number;
  /** Streaming only: content is sent in pieces of this many characters (default: per word). */
  chunkSize?: number;
  /** Called in the same tick as the reply's last byte is written (a test kills the client there). */
  afterSend?: () => void;
}

/** Full control over the response (error statuses, malformed bodies, hanging). */
export type RawHandler = (res: ServerResponse, hit: StubHit) => void | Promise<void>;
export type Action = Reply | RawHandler;
/** Picks the answer for hit number `n` (0-based, counting every request to this stub). */
export type Script = (hit: StubHit, n: number) => Action;

export interface LlmStub {
  /** http://127.0.0.1:PORT (no trailing slash). */
  readonly url: string;
  readonly hits: StubHit[];
  /** Replaces the script (and keeps the recorded hits). */
  setScript(script: Script | Action[]): void;
  /** Forgets the recorded hits and restarts hit numbering. */
  reset(): void;
  /** Answers the stand-in failed to render validly (close() rejects when there are any). */
  readonly invalidAnswers: string[];
  /** Resolves once at least `n` hits were recorded. */
  waitForHits(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

function toScript(s: Script | Action[]): Script {
  if (typeof s === 'function') return s;
  const list = s;
  if (list.length === 0) throw new Error('empty stub script');
  return (_hit, n) => list[Math.min(n, list.length - 1)]!;
}

export async function startLlmStub(script: Script | Action[] = [{ content: 'ok' }]): Promise<LlmStub> {
  let current = toScript(script);
  warmUp();
  const hits: StubHit[] = [];
  const invalidAnswers: string[] = [];
  const waiters = new Set<() => void>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const body = parseBody(raw);
      const path = req.url ?? '';
      const api = path.endsWith('/chat/completions') ? 'openai' : path.endsWith('/v1/messages') ? 'anthropic' : 'other';
      const hit: StubHit = {
        method: req.method ?? '',
        path,
        headers: req.headers,
        raw,
        body,
        api,
        stream: typeof body === 'object' && body !== null && (body as { stream?: unknown }).stream === true,
        clientClosed: false,
        at: Date.now(),
      };
      res.on('close', () => {
        if (!res.writableFinished) hit.clientClosed = true;
      });
      const refusal = refuseInvalid(req.method, path, body, res);
      if (refusal !== undefined) hit.refused = refusal.message;
      const n = hits.push(hit) - 1;
      for (const w of waiters) w();
      if (refusal !== undefined) return;
      const action = current(hit, n);
      const run = typeof action === 'function' ? action(res, hit) : reply(res, hit, action);
      void Promise.resolve(run).catch((err: unknown) => {
        if (typeof action !== 'function') {
          invalidAnswers.push(String(err));
          process.stderr.write(`[llm stub] ${String(err)}\n`);
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
    invalidAnswers,
    setScript(s) {
      current = toScript(s);
    },
    reset() {
      hits.length = 0;
    },
    async waitForHits(n, timeoutMs = 10_000) {
      if (hits.length >= n) return;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`the LLM stub got ${hits.length} hits, expected ${n} within ${timeoutMs} ms`));
        }, timeoutMs);
        const check = (): void => {
          if (hits.length < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
      });
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close(() =>
          invalidAnswers.length > 0
            ? reject(new Error(`the LLM stub rendered invalid answers:\n${invalidAnswers.join('\n')}`))
            : resolve(),
        );
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// Raw handlers for failure cases.

export function status(code: number, body: unknown, headers: Record<string, string> = {}): RawHandler {
  return (res) => {
    res.writeHead(code, { 'content-type': 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
}

/** A 200 whose body is not JSON. */
export const malformedJson: RawHandler = (res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end('{"choices": [ this is not json');
};

/** Never answers (the socket stays open until the client gives up). */
export const hang: RawHandler = () => undefined;

/** Starts a stream, sends some tokens, then reports an error inside the stream. */
export function streamThenError(tokens: string[], message: string): RawHandler {
  return async (res, hit) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (hit.api === 'anthropic') {
      res.write(
        sse(
          {
            type: 'message_start',
            message: {
              id: 'msg_err',
              type: 'message',
              role: 'assistant',
              model: 'claude-test',
              content: [],
              usage: { input_tokens: 1, output_tokens: 0 },
            },
          },
          'message_start',
        ),
      );
      res.write(
        sse(
          { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
          'content_block_start',
        ),
      );
      for (const t of tokens) {
        res.write(
          sse({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } }, 'content_block_delta'),
        );
        await tick();
      }
      res.end(sse({ type: 'error', error: { type: 'overloaded_error', message } }, 'error'));
      return;
    }
    for (const t of tokens) {
      res.write(
        sse({
          id: 'chatcmpl-err',
          object: 'chat.completion.chunk',
          model: 'gpt-test',
          choices: [{ index: 0, delta: { content: t }, finish_reason: null }],
        }),
      );
      await tick();
    }
    res.end(sse({ error: { message, type: 'server_error' } }));
  };
}

// ---------------------------------------------------------------------------------------------
// Rendering a Reply in the wire format of the endpoint that was hit.

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 1));

function sse(data: unknown, event?: string): string {
  return `${event !== undefined ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
}

function pieces(text: string, size: number | undefined): string[] {
  if (text === '') return [];
  if (size !== undefined) {
    const out: string[] = [];
    for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
    return out;
  }
  return text.split(/(?<=\s)(?=\S)/);
}

function waitOrClose(res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      res.off('close', onClose);
      resolve(true);
    }, ms);
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    res.once('close', onClose);
  });
}

/** The names of the tools a request offered, as it sent them. */
function offeredNames(hit: StubHit): string[] {
  const tools = Array.isArray(hit.body?.tools)
    ? (hit.body.tools as { name?: unknown; function?: { name?: unknown } }[])
    : [];
  return tools.map((t) => t.function?.name ?? t.name).filter((n): n is string => typeof n === 'string');
}

/**
 * A scripted call names its tool as Caxton does (`csv_parser.parse`); a model calls it by the name
 * the request offered it under (`csv_parser_parse`), so that is the name answered. A name the
 * request did not offer in either form (a test of an unknown tool) is answered as scripted.
 */
function offeredName(hit: StubHit, name: string): string {
  const offered = offeredNames(hit);
  if (offered.includes(name)) return name;
  const plain = name.replace(/[^A-Za-z0-9_-]/g, '_');
  return (
    offered.find((o) => o === plain || (o.length === 64 && plain.startsWith(o.slice(0, o.lastIndexOf('_'))))) ?? name
  );
}

async function reply(res: ServerResponse, hit: StubHit, r: Reply): Promise<void> {
  if (r.delayMs !== undefined && r.delayMs > 0 && !(await waitOrClose(res, r.delayMs))) return;
  if (hit.api === 'other') {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: `no such endpoint ${hit.path}` } }));
    return;
  }
  const model = r.model ?? (typeof hit.body?.model === 'string' ? (hit.body.model as string) : 'stub-model');
  const calls = r.tool_calls?.map((c) => ({ ...c, name: offeredName(hit, c.name) }));
  const answer = {
    content: r.content,
    tool_calls: calls,
    usage: r.usage,
    model,
    id: hit.api === 'openai' ? 'chatcmpl-stub' : 'msg_stub',
  };
  if (!hit.stream) {
    sendJson(res, hit.api === 'openai' ? openaiCompletion(answer) : anthropicMessage(answer));
    r.afterSend?.();
    return;
  }
  const parts = pieces(r.content ?? '', r.chunkSize);
  const frames =
    hit.api === 'openai'
      ? openaiStream({ ...answer, pieces: parts, includeUsage: wantsUsage(hit.body) })
      : anthropicStream({ ...answer, pieces: parts });
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  // A pause after each frame, so clients see the pieces arrive separately.
  for (const f of frames.slice(0, -1)) {
    res.write(f);
    await tick();
  }
  res.end(frames.at(-1));
  r.afterSend?.();
}

/** A caxton.toml `[llm]` section whose one provider, `stub`, is the stand-in at `url` (key in STUB_KEY, no retries). */
export function stubLlmSection(url: string): Record<string, unknown> {
  return {
    default_provider: 'stub',
    providers: { stub: { type: 'openai', base_url: `${url}/v1`, api_key_env: 'STUB_KEY', model: 'm', max_retries: 0 } },
  };
}
