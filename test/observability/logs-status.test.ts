/**
 * The log buffer (GET /api/v1/logs and its SSE follow), secrets never logged, and the live status
 * overview (GET /api/v1/status/overview), against a real server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogBuffer } from '../../src/observability/log-buffer.js';
import { OPENAI_KEY, openaiProvider, removeTempDirs, setTestKeys } from '../execution/helpers/caxton.js';
import { startLlmStub, status, type LlmStub } from '../execution/helpers/llm-stub.js';
import { freePorts } from '../cli/helpers/cli.js';
import { startObserved, type Observed } from './helpers/observed.js';
import { waitUntil } from '../helpers/wait.js';

const PROVIDER_BEARER = 'prov-bearer-5f1c2a9e77d4';
const MCP_BEARER = 'mcp-bearer-0b3e8c1d22aa';
const CLIENT_BEARER = 'client-bearer-9a7d6e5f4c3b';
const CLIENT_API_KEY = 'client-apikey-1a2b3c4d5e6f';
const DIRECT_KEY = 'sk-direct-0123456789abcdef';

let stub: LlmStub;
let cx: Observed;

type LogsBody = {
  logs: { seq: number; level: string; time: string; msg?: string; agent?: string }[];
  count: number;
  buffered: number;
  capacity: number;
};

beforeAll(async () => {
  setTestKeys();
  // The provider rejects the first call, quoting the key and header it was sent (as some do).
  stub = await startLlmStub((hit, n) =>
    n === 0
      ? status(401, {
          error: {
            message: `invalid api key ${String(hit.headers.authorization)} (x-extra: ${String(hit.headers['x-extra'])})`,
            type: 'invalid_request_error',
          },
        })
      : { content: 'fine', usage: { input: 3, output: 2 } },
  );
  const [closedPort] = await freePorts(1);
  cx = await startObserved({
    level: 'trace',
    config: {
      llm: {
        default_provider: 'stub',
        providers: {
          stub: openaiProvider(stub.url, { max_retries: 0, headers: { 'X-Extra': `Bearer ${PROVIDER_BEARER}` } }),
        },
      },
      mcp_servers: {
        remote: {
          url: `http://127.0.0.1:${closedPort}/mcp`,
          headers: { Authorization: `Bearer ${MCP_BEARER}` },
          timeout: '2s',
        },
      },
    },
  });
});

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

describe('secrets are never logged', () => {
  it('keeps API keys and bearer tokens out of every log line, at trace level, through failures', async () => {
    const auth = { authorization: `Bearer ${CLIENT_BEARER}`, 'x-api-key': CLIENT_API_KEY };
    await cx.deploy({ name: 'keyed', capabilities: ['secrets'] }, auth);
    const failed = await cx.send('POST', '/api/v1/agents/keyed/invoke', JSON.stringify({ request: 'hello' }), {
      'content-type': 'application/json',
      ...auth,
    });
    expect(failed.status).toBeGreaterThanOrEqual(400);
    const ok = await cx.send('POST', '/api/v1/agents/keyed/invoke', JSON.stringify({ request: 'hello again' }), {
      'content-type': 'application/json',
      ...auth,
    });
    expect(ok.status).toBe(200);
    expect((await cx.send('GET', '/api/v1/nope', undefined, auth)).status).toBe(404);
    // A careless log call with a key in an object and in a message.
    cx.server.logger.info(
      { provider: { api_key: DIRECT_KEY }, headers: { authorization: `Bearer ${CLIENT_BEARER}` } },
      'configured',
    );
    cx.server.logger.warn(`retrying with key ${OPENAI_KEY} and header Bearer ${PROVIDER_BEARER}`);
    cx.server.logger.flush();
    await new Promise((r) => setTimeout(r, 50));
    const all = cx.lines.join('');
    // The scenario did produce logs about the failure and the request.
    expect(cx.lines.length).toBeGreaterThan(5);
    expect(all).toContain('***');
    for (const secret of [OPENAI_KEY, PROVIDER_BEARER, MCP_BEARER, CLIENT_BEARER, CLIENT_API_KEY, DIRECT_KEY]) {
      expect(all, `secret ${secret} in the log`).not.toContain(secret);
    }
    // The buffer served by the API holds the same (scrubbed) lines.
    const served = await cx.get<LogsBody>('/api/v1/logs?limit=10000');
    const text = JSON.stringify(served.json);
    for (const secret of [OPENAI_KEY, PROVIDER_BEARER, MCP_BEARER, CLIENT_BEARER, CLIENT_API_KEY, DIRECT_KEY])
      expect(text).not.toContain(secret);
  });
});

describe('GET /api/v1/logs', () => {
  it('returns recent lines oldest first, filtered by level, agent, since and limit', async () => {
    cx.server.logger.warn({ agent: 'keyed' }, 'a warning about keyed');
    cx.server.logger.error({ agent: 'other' }, 'an error about other');
    const warn = await cx.get<LogsBody>('/api/v1/logs?level=warn&limit=1000');
    expect(warn.status).toBe(200);
    expect(warn.json.logs.length).toBeGreaterThanOrEqual(2);
    expect(warn.json.logs.every((l) => ['warn', 'error', 'fatal'].includes(l.level))).toBe(true);
    expect(warn.json.logs.at(-1)!.msg).toBe('an error about other');
    const seqs = warn.json.logs.map((l) => l.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    const agent = await cx.get<LogsBody>('/api/v1/logs?agent=keyed&level=WARN');
    expect(agent.json.logs.map((l) => l.msg)).toContain('a warning about keyed');
    expect(agent.json.logs.every((l) => l.agent === 'keyed')).toBe(true);
    const one = await cx.get<LogsBody>('/api/v1/logs?limit=1');
    expect(one.json.count).toBe(1);
    expect(one.json.capacity).toBe(10_000);
    const future = await cx.get<LogsBody>(`/api/v1/logs?since=${new Date(Date.now() + 60_000).toISOString()}`);
    expect(future.json.logs).toEqual([]);
  });

  it('follows new lines over SSE', async () => {
    const got = cx.stream('/api/v1/logs/stream?level=error&limit=1', (evs) =>
      evs.some((e) => (e.json as { msg?: string })?.msg === 'followed line'),
    );
    // The stream follows the log once the server has attached its tail.
    await waitUntil(() => cx.buffer.followers > 0, { timeoutMs: 5_000, what: 'the live tail to attach' });
    cx.server.logger.info('not an error');
    cx.server.logger.error({ agent: 'x' }, 'followed line');
    const events = await got;
    expect(events.every((e) => e.event === 'log' && (e.json as { level: string }).level === 'error')).toBe(true);
    expect(events.at(-1)!.json).toMatchObject({ msg: 'followed line', agent: 'x' });
  });

  it('answers a bad level or since with 400 naming the field', async () => {
    const level = await cx.get<{ error: { message: string; details: { issues: { field: string }[] } } }>(
      '/api/v1/logs?level=loud',
    );
    expect(level.status).toBe(400);
    expect(level.json.error.details.issues[0]!.field).toBe('level');
    expect(level.json.error.message).toContain('unknown log level "loud"');
    const since = await cx.get<{ error: { details: { issues: { field: string }[] } } }>(
      '/api/v1/logs?since=2025-13-45',
    );
    expect(since.status).toBe(400);
    expect(since.json.error.details.issues[0]!.field).toBe('since');
  });

  it('LogBuffer keeps only the last N lines', () => {
    const b = new LogBuffer(3);
    for (let i = 0; i < 5; i++)
      b.write(`${JSON.stringify({ level: 'info', time: new Date().toISOString(), msg: `m${i}` })}\n`);
    expect(b.size).toBe(3);
    expect(b.query().map((l) => l.msg)).toEqual(['m2', 'm3', 'm4']);
    expect(b.query({ limit: 2 }).map((l) => l.msg)).toEqual(['m3', 'm4']);
    expect(b.query({ after: 3 }).map((l) => l.msg)).toEqual(['m4']);
  });
});

describe('GET /api/v1/status/overview', () => {
  it('reports agents, rates from sampled counters, queue, dead letters and tool servers', async () => {
    for (let i = 0; i < 4; i++)
      expect(
        (
          await cx.send('POST', '/api/v1/agents/keyed/invoke', JSON.stringify({ request: `q${i}` }), {
            'content-type': 'application/json',
          })
        ).status,
      ).toBe(200);
    const r = await cx.get<Record<string, never>>('/api/v1/status/overview?window=1m');
    expect(r.status).toBe(200);
    const s = r.json as unknown as {
      ready: boolean;
      agents: { total: number };
      rates: {
        window_seconds: number;
        executions_per_second: number;
        execution_error_rate: number | null;
        errors_per_second: number;
      };
      totals: { executions: number; execution_errors: number };
      queue: { depth: number };
      dead_letters: number;
      tool_servers: { total: number } | null;
      events: { enabled: boolean; stored: number };
      metrics_enabled: boolean;
    };
    expect(s.ready).toBe(true);
    expect(s.metrics_enabled).toBe(true);
    expect(s.agents.total).toBe(1);
    expect(s.totals.executions).toBeGreaterThanOrEqual(6);
    expect(s.totals.execution_errors).toBeGreaterThanOrEqual(1);
    expect(s.rates.window_seconds).toBeGreaterThan(0);
    expect(s.rates.executions_per_second).toBeGreaterThan(0);
    expect(s.rates.execution_error_rate).toBeGreaterThan(0);
    expect(s.rates.execution_error_rate).toBeLessThan(1);
    expect(s.queue.depth).toBe(0);
    expect(s.dead_letters).toBe(0);
    expect(s.tool_servers).not.toBeNull();
    expect(s.events.enabled).toBe(true);
    expect(s.events.stored).toBeGreaterThan(0);
  });

  it('answers a bad window with 400 naming the field', async () => {
    const r = await cx.get<{ error: { details: { issues: { field: string }[] } } }>(
      '/api/v1/status/overview?window=forever',
    );
    expect(r.status).toBe(400);
    expect(r.json.error.details.issues[0]!.field).toBe('window');
  });
});
