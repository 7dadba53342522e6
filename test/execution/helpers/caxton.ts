/**
 * A real Caxton server for the execution tests: caxton.toml in a temp dir, API on 127.0.0.1
 * port 0, metrics off, and an in-memory log so tests can check what the server logged.
 * Agents are deployed through the REST API; requests go through real HTTP.
 */
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'smol-toml';
import { expect } from 'vitest';
import { localAuthUnlessConfigured } from '../../helpers/server.js';
import { loadServerConfig } from '../../../src/config/index.js';
import { createLogger } from '../../../src/observability/index.js';
import { startServer, type CaxtonServer } from '../../../src/server/index.js';

export interface LogLine {
  level: string;
  msg?: string;
  [k: string]: unknown;
}

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export interface SseEvent {
  event: string | undefined;
  data: string;
  /** `data` parsed as JSON (undefined when it is not JSON, e.g. "[DONE]"). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export interface Caxton {
  readonly server: CaxtonServer;
  readonly url: string;
  readonly dir: string;
  readonly logs: LogLine[];
  /** POSTs an agent (TOML) and expects 201. */
  deploy(agent: AgentSpec): Promise<void>;
  /** PUTs a new version of an agent (TOML) and expects 200. */
  update(agent: AgentSpec): Promise<void>;
  invoke(name: string, body: unknown, headers?: Record<string, string>): Promise<HttpResult>;
  /** Invokes with Accept: text/event-stream and reads the whole stream. */
  invokeStream(name: string, body: unknown): Promise<{ status: number; headers: Headers; events: SseEvent[] }>;
  close(): Promise<void>;
}

/** A TOML-able object (serialized with smol-toml). */
export type TomlTable = Record<string, unknown>;

export interface AgentSpec {
  name: string;
  system_prompt?: string;
  user_prompt_template?: string;
  tools?: string[];
  capabilities?: string[];
  parameters?: TomlTable;
  llm?: TomlTable;
  limits?: TomlTable;
  execution?: TomlTable;
  messaging?: TomlTable;
}

export function agentToml(a: AgentSpec): string {
  return stringify({
    name: a.name,
    description: `execution test agent ${a.name}`,
    capabilities: a.capabilities ?? ['testing'],
    tools: a.tools ?? [],
    system_prompt: a.system_prompt ?? `You are ${a.name}.`,
    ...(a.user_prompt_template !== undefined && { user_prompt_template: a.user_prompt_template }),
    ...(a.parameters && { parameters: a.parameters }),
    ...(a.llm && { llm: a.llm }),
    ...(a.limits && { limits: a.limits }),
    ...(a.execution && { execution: a.execution }),
    ...(a.messaging !== undefined && { messaging: a.messaging }),
  });
}

/** `[llm.providers.NAME]` for an OpenAI-compatible stub (base_url ends in /v1, as for OpenAI). */
export function openaiProvider(stubUrl: string, extra: TomlTable = {}): TomlTable {
  return {
    type: 'openai',
    base_url: `${stubUrl}/v1`,
    api_key_env: 'TEST_OPENAI_KEY',
    model: 'gpt-test',
    retry_base: '10ms',
    ...extra,
  };
}

/** `[llm.providers.NAME]` for an Anthropic-compatible stub (the client appends /v1/messages). */
export function anthropicProvider(stubUrl: string, extra: TomlTable = {}): TomlTable {
  return {
    type: 'anthropic',
    base_url: stubUrl,
    api_key_env: 'TEST_ANTHROPIC_KEY',
    model: 'claude-test',
    retry_base: '10ms',
    ...extra,
  };
}

export const OPENAI_KEY = 'sk-test-openai-key';
export const ANTHROPIC_KEY = 'sk-ant-test-key';

/** Sets the API key variables the stub providers name (before any server or pool starts). */
export function setTestKeys(): void {
  process.env.TEST_OPENAI_KEY = OPENAI_KEY;
  process.env.TEST_ANTHROPIC_KEY = ANTHROPIC_KEY;
}

const tempDirs: string[] = [];

export function tempDir(prefix = 'caxton-exec-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

export function removeTempDirs(): void {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Writes a scripted-provider reply file (TOML) and returns its path. */
export function writeScript(dir: string, script: TomlTable, file = 'replies.toml'): string {
  const p = join(dir, file);
  writeFileSync(p, stringify(script));
  return p;
}

export interface StartCaxtonOptions {
  /** Everything but [server], [metrics] and [logging]: [llm], [execution], ... */
  config: TomlTable;
  /** Agents deployed through the API once the server is up. */
  agents?: AgentSpec[];
  /** Span processors (an in-memory exporter) for tests that assert traces. */
  spanProcessors?: SpanProcessor[];
  /** The directory of an earlier server (its caxton.toml and data dir): a restart of that server. */
  dir?: string;
}

export async function startCaxton(opts: StartCaxtonOptions): Promise<Caxton> {
  const dir = opts.dir ?? tempDir();
  const configPath = join(dir, 'caxton.toml');
  writeFileSync(
    configPath,
    stringify({ server: { port: 0 }, metrics: { enabled: false }, logging: { level: 'silent' }, ...opts.config }),
  );
  const config = localAuthUnlessConfigured(
    loadServerConfig({ file: configPath, env: {}, cwd: dir }),
    readFileSync(configPath, 'utf8'),
  );
  const logs: LogLine[] = [];
  const logger = createLogger('info', {
    write(line: string) {
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        logs.push({ level: 'unparsed', msg: line });
      }
    },
  });
  const server = await startServer({
    config,
    logger,
    ...(opts.spanProcessors && { spanProcessors: opts.spanProcessors }),
  });
  const url = server.url;

  const invoke = async (name: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpResult> => {
    const res = await fetch(`${url}/api/v1/agents/${encodeURIComponent(name)}/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown;
    if ((res.headers.get('content-type') ?? '').includes('json') && text !== '') json = JSON.parse(text);
    return { status: res.status, headers: res.headers, text, json };
  };

  const c: Caxton = {
    server,
    url,
    dir,
    logs,
    async deploy(agent) {
      const res = await fetch(`${url}/api/v1/agents`, {
        method: 'POST',
        headers: { 'content-type': 'application/toml' },
        body: agentToml(agent),
      });
      expect(res.status, await res.clone().text()).toBe(201);
      await res.arrayBuffer();
    },
    async update(agent) {
      const res = await fetch(`${url}/api/v1/agents/${encodeURIComponent(agent.name)}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/toml' },
        body: agentToml(agent),
      });
      expect(res.status, await res.clone().text()).toBe(200);
      await res.arrayBuffer();
    },
    invoke,
    async invokeStream(name, body) {
      const res = await fetch(`${url}/api/v1/agents/${encodeURIComponent(name)}/invoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify(body),
      });
      return { status: res.status, headers: res.headers, events: parseSse(await res.text()) };
    },
    async close() {
      // The server waits for open connections (forceCloseConnections: false). After a client
      // aborted a request, fetch may leave a fresh keep-alive socket that never carries a request
      // and that Node does not count as idle; don't let it hold the test up for seconds.
      const force = setTimeout(() => server.app.server.closeAllConnections(), 1_000);
      try {
        await server.close();
      } finally {
        clearTimeout(force);
      }
    },
  };
  for (const a of opts.agents ?? []) await c.deploy(a);
  return c;
}

/** Parses a complete server-sent-events body into its events. */
export function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const block of text.replace(/\r\n/g, '\n').split(/\n\n+/)) {
    if (block.trim() === '') continue;
    let event: string | undefined;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    const joined = data.join('\n');
    let json: unknown;
    try {
      json = JSON.parse(joined);
    } catch {
      json = undefined;
    }
    events.push({ event, data: joined, json });
  }
  return events;
}

/** Asserts the API's error envelope and returns its `error` object. */
export function expectEnvelope(
  res: HttpResult,
  status: number,
  code: string,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
): { code: string; message: string; details: any; request_id: string } {
  expect(res.status, `HTTP status (body: ${res.text.slice(0, 400)})`).toBe(status);
  expect(res.headers.get('content-type') ?? '').toContain('application/json');
  expect(Object.keys(res.json as object)).toEqual(['error']);
  const err = res.json.error;
  expect(err.code).toBe(code);
  expect(typeof err.message).toBe('string');
  expect(err.request_id).toMatch(/\S/);
  return err;
}

/**
 * Child processes of this process whose command line contains `needle` (Linux /proc): the
 * isolation pool's `process-runner` children.
 */
export function childPids(needle: string, parent = process.pid): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== parent || fields[0] === 'Z') continue;
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(needle)) out.push(Number(entry));
    } catch {
      // the process went away while we looked
    }
  }
  return out.sort((a, b) => a - b);
}

export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] !== 'Z';
  } catch {
    return false;
  }
}
