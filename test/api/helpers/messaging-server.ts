/**
 * The messaging REST API's test server and its clients: a real Caxton (127.0.0.1, port 0) whose
 * agents talk to the scripted LLM stub, with agents whose answers a test can hold back, one whose
 * provider is unreachable, and helpers to send, read and follow server-sent events.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import {
  openaiProvider,
  parseSse,
  removeTempDirs,
  setTestKeys,
  startCaxton,
  type AgentSpec,
  type Caxton,
  type HttpResult,
  type SseEvent,
} from '../../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type RawHandler, type StubHit } from '../../execution/helpers/llm-stub.js';
import { openaiCompletion, sendJson } from '../../helpers/llm-standin.js';

/** The agent a stub request is for: the system prompt starts with "You are NAME." */
export function agentOf(hit: StubHit): string {
  const msgs = hit.body?.messages as { role: string; content: string }[] | undefined;
  return /You are ([\w-]+)\./.exec(msgs?.[0]?.content ?? '')?.[1] ?? '?';
}

function completion(res: ServerResponse, content: string): void {
  sendJson(res, openaiCompletion({ id: 'chatcmpl-gate', model: 'gpt-test', content }));
}

/** A stub answer held back until `open()` is called: the test decides when the agent replies. */
export function gate(content: string): { handler: RawHandler; open(): void } {
  let release!: () => void;
  const opened = new Promise<void>((r) => (release = r));
  return {
    handler: async (res) => {
      await opened;
      if (!res.destroyed) completion(res, content);
    },
    open: () => release(),
  };
}

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export async function request(
  base: string,
  method: string,
  path: string,
  body?: string | Uint8Array,
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  const res = await fetch(base + path, {
    method,
    headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
    ...(body !== undefined && { body }),
  });
  const text = await res.text();
  let json: unknown;
  if ((res.headers.get('content-type') ?? '').includes('json') && text !== '') json = JSON.parse(text);
  return { status: res.status, headers: res.headers, text, json };
}

export const send = (base: string, msg: unknown, query = ''): Promise<HttpResult> =>
  request(base, 'POST', `/api/v1/messages${query}`, typeof msg === 'string' ? msg : JSON.stringify(msg));
export const get = (base: string, path: string): Promise<HttpResult> => request(base, 'GET', path);

export interface EventStream {
  readonly status: number;
  readonly events: SseEvent[];
  /** Resolves once `until(events)` holds; fails if the stream ends first (or after 15 s: a hang, not a timing check). */
  next(until: (events: SseEvent[]) => boolean): Promise<SseEvent[]>;
  /** Resolves when the server has ended the stream. */
  readonly ended: Promise<void>;
  close(): void;
}

/** Follows a server-sent-events URL, collecting events as they arrive. */
export async function openEvents(url: string): Promise<EventStream> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
  const events: SseEvent[] = [];
  const waiters = new Set<() => void>();
  let finished = false;
  const ended = (async () => {
    if (!res.body) return;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        const at = buf.lastIndexOf('\n\n');
        if (at >= 0) {
          events.push(...parseSse(buf.slice(0, at + 2)));
          buf = buf.slice(at + 2);
          for (const w of waiters) w();
        }
      }
    } catch {
      // aborted by close()
    } finally {
      finished = true;
      for (const w of waiters) w();
    }
  })();
  return {
    status: res.status,
    events,
    ended,
    close: () => ac.abort(),
    next(until) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => done(new Error(`no matching event within 15 s; got: ${events.map((e) => e.event).join(', ')}`)),
          15_000,
        );
        const check = (): void => {
          if (until(events)) done();
          else if (finished) done(new Error(`the stream ended; got: ${events.map((e) => e.event).join(', ')}`));
        };
        const done = (err?: Error): void => {
          clearTimeout(timer);
          waiters.delete(check);
          if (err) reject(err);
          else resolve(events);
        };
        waiters.add(check);
        check();
      });
    },
  };
}

export async function conversationTotal(base: string): Promise<number> {
  const res = await get(base, '/api/v1/conversations?limit=1');
  expect(res.status, res.text).toBe(200);
  return res.json.total as number;
}

// ------------------------------------------------------------------------------------------------

/** The server's agents: `gated` answers when a test opens its gate, `fragile`'s provider is unreachable. */
export const MESSAGING_AGENTS: readonly AgentSpec[] = [
  { name: 'helper', capabilities: ['answering'] },
  { name: 'counter', capabilities: ['counting'] },
  { name: 'gated', capabilities: ['gated'] },
  { name: 'fragile', capabilities: ['fragile'], llm: { provider: 'closed' } },
];

/** A started messaging server: `gates` holds back an agent's answers while it has an entry. */
export interface MessagingServer {
  readonly stub: LlmStub;
  readonly cx: Caxton;
  readonly gates: Map<string, { handler: RawHandler; open(): void }>;
  close(): Promise<void>;
}

export async function startMessagingServer(): Promise<MessagingServer> {
  const gates = new Map<string, { handler: RawHandler; open(): void }>();
  setTestKeys();
  const stub = await startLlmStub((hit) => {
    const agent = agentOf(hit);
    const g = gates.get(agent);
    if (g) return g.handler;
    // A query-ref or a cfp offers its acts as tools, and the model must call one (src/messaging/acts.ts).
    const offered = ((hit.body?.tools ?? []) as { function: { name: string } }[]).map((t) => t.function.name);
    if (offered.includes('inform'))
      return { tool_calls: [{ id: 'call_inform', name: 'inform', arguments: { answer: `answer from ${agent}` } }] };
    if (offered.includes('propose'))
      return { tool_calls: [{ id: 'call_propose', name: 'propose', arguments: { price: 10 } }] };
    return { content: `answer from ${agent}` };
  });
  const port = await closedPort();
  const cx = await startCaxton({
    config: {
      server: { port: 0, max_body_size: '16KB' },
      llm: {
        default_provider: 'stub',
        providers: {
          stub: openaiProvider(stub.url),
          closed: openaiProvider(`http://127.0.0.1:${port}`, { max_retries: 0 }),
        },
      },
      messaging: { max_message_size: '4KB', max_attempts: 1, retry_base: '10ms' },
    },
    agents: [...MESSAGING_AGENTS],
  });
  return {
    stub,
    cx,
    gates,
    async close() {
      for (const g of gates.values()) g.open();
      await cx.close();
      await stub.close();
      removeTempDirs();
    },
  };
}
