import { readFileSync } from 'node:fs';
/**
 * A real Caxton server for the observability tests: caxton.toml in a temp dir, API on 127.0.0.1
 * port 0, metrics on port 0, and the logger the serve command builds (in-memory ring buffer,
 * secrets scrubbed) plus a copy of every line for the test to inspect.
 */
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'smol-toml';
import { localAuthUnlessConfigured } from '../../helpers/server.js';
import { loadServerConfig, secretValues } from '../../../src/config/index.js';
import { createLogger } from '../../../src/observability/index.js';
import { LogBuffer } from '../../../src/observability/log-buffer.js';
import { startServer, type CaxtonServer } from '../../../src/server/index.js';
import {
  agentToml,
  parseSse,
  tempDir,
  type AgentSpec,
  type SseEvent,
  type TomlTable,
} from '../../execution/helpers/caxton.js';

export interface Observed {
  readonly server: CaxtonServer;
  readonly url: string;
  readonly dir: string;
  /** Every raw line the logger wrote, as written. */
  readonly lines: string[];
  /** The server's log ring (GET /api/v1/logs and its live tail read it). */
  readonly buffer: LogBuffer;
  get<T = unknown>(path: string, headers?: Record<string, string>): Promise<{ status: number; json: T; text: string }>;
  send(
    method: string,
    path: string,
    body?: string,
    headers?: Record<string, string>,
  ): Promise<{ status: number; json: unknown; text: string }>;
  deploy(agent: AgentSpec, headers?: Record<string, string>): Promise<void>;
  /** Reads an event stream until `until` says stop (or the timeout), then aborts it. */
  stream(path: string, until: (events: SseEvent[]) => boolean, timeoutMs?: number): Promise<SseEvent[]>;
  close(): Promise<void>;
}

export async function startObserved(opts: {
  config: TomlTable;
  level?: string;
  agents?: AgentSpec[];
  env?: NodeJS.ProcessEnv;
  spanProcessors?: SpanProcessor[];
}): Promise<Observed> {
  const dir = tempDir('caxton-obs-');
  const configPath = join(dir, 'caxton.toml');
  writeFileSync(
    configPath,
    stringify({
      server: { port: 0 },
      metrics: { enabled: true, port: 0 },
      logging: { level: opts.level ?? 'info' },
      ...opts.config,
    }),
  );
  const config = localAuthUnlessConfigured(
    loadServerConfig({ file: configPath, env: {}, cwd: dir }),
    readFileSync(configPath, 'utf8'),
  );
  const lines: string[] = [];
  const buffer = new LogBuffer(config.logging.buffer_lines);
  const logger = createLogger(
    config.logging.level,
    { write: (l: string) => void lines.push(l) },
    { buffer, secrets: secretValues(config, opts.env ?? process.env) },
  );
  const server = await startServer({
    config,
    logger,
    logBuffer: buffer,
    ...(opts.spanProcessors && { spanProcessors: opts.spanProcessors }),
  });
  const url = server.url;
  const send = async (method: string, path: string, body?: string, headers: Record<string, string> = {}) => {
    const res = await fetch(url + path, { method, headers, ...(body !== undefined && { body }) });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, json, text };
  };
  const o: Observed = {
    server,
    url,
    dir,
    lines,
    buffer,
    get: (path, headers) => send('GET', path, undefined, headers) as never,
    send,
    async deploy(agent, headers = {}) {
      const r = await send('POST', '/api/v1/agents', agentToml(agent), {
        'content-type': 'application/toml',
        ...headers,
      });
      if (r.status !== 201) throw new Error(`deploy ${agent.name}: ${r.status} ${r.text}`);
    },
    async stream(path, until, timeoutMs = 10_000) {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), timeoutMs);
      const res = await fetch(url + path, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
      if (!(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
        clearTimeout(timer);
        throw new Error(`${path}: ${res.status} ${await res.text()}`);
      }
      let text = '';
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          text += dec.decode(value, { stream: true });
          const complete = text.slice(0, text.lastIndexOf('\n\n') + 2);
          if (until(parseSse(complete))) break;
        }
      } catch (e) {
        if (!ac.signal.aborted) throw e;
      } finally {
        clearTimeout(timer);
        ac.abort();
      }
      return parseSse(text.slice(0, text.lastIndexOf('\n\n') + 2));
    },
    async close() {
      const force = setTimeout(() => server.app.server.closeAllConnections(), 1_000);
      try {
        await server.close();
      } finally {
        clearTimeout(force);
      }
    },
  };
  for (const a of opts.agents ?? []) await o.deploy(a);
  return o;
}
