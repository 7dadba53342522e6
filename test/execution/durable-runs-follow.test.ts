/**
 * Following a durable run and deciding on it from MCP (docs/runs.md): GET /api/v1/runs/{id}/events
 * streams the run's steps, its wait for a person (tool, call, arguments) and its end; the MCP run
 * tools (`[mcp] run_tools`) list, read, approve and deny with the REST routes' own checks and audit
 * rows; every stream a caller may be holding when a run pauses says it waits, on which run, tool
 * and call (invoke SSE, /v1/chat/completions and /v1/responses through the real openai client, the
 * agent event stream). A real server with authentication on, a real stdio MCP server whose tool
 * appends a line to a file (so "ran once" is a line count), the strict model stand-in, the real
 * MCP SDK client.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import OpenAI from 'openai';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import { openaiProvider, setTestKeys } from './helpers/caxton.js';
import { openStream, type SseEvent } from './helpers/event-stream.js';
import { startLlmStub, type LlmStub, type StubHit } from './helpers/llm-stub.js';

const FIXTURE = resolve(import.meta.dirname, 'fixtures/append-server.mjs');

let stub: LlmStub;
let srv: TestServer;
let admin: string;
let outFile: string;
const clients: Client[] = [];

/** The user's request as the model got it: the line the agent appends. */
function requestOf(hit: StubHit): string {
  const users = (hit.body.messages as { role: string; content: string }[]).filter((m) => m.role === 'user');
  return users[users.length - 1]!.content;
}

beforeAll(async () => {
  setTestKeys();
  // One call of journal.append with the request as its line, then an answer quoting the tool.
  stub = await startLlmStub((hit) => {
    const results = (hit.body.messages as { role: string; content: string }[]).filter((m) => m.role === 'tool');
    if (results.length > 0) return { content: `done: ${results.map((r) => r.content).join(' | ')}` };
    const wire = (hit.body.tools as { function: { name: string } }[])[0]!.function.name;
    return { tool_calls: [{ id: 'c-1', name: wire, arguments: { line: requestOf(hit) } }] };
  });
  const dir = makeTempDir('caxton-follow-');
  outFile = join(dir, 'out.txt');
  const agent = (name: string) =>
    stringify({
      name,
      system_prompt: 'Append the line.',
      tools: ['journal.append'],
      execution: { require_approval: ['journal.append'] },
    });
  srv = await startTestServer({
    dir,
    toml: stringify({
      auth: { enabled: true },
      mcp: { run_tools: true },
      llm: {
        default_provider: 'stub',
        providers: { stub: openaiProvider(stub.url, { max_retries: 0 }) },
      },
      mcp_servers: { journal: { command: process.execPath, args: [FIXTURE], env: { OUT_FILE: outFile } } },
    }),
    agentFiles: { 'writer.toml': agent('writer'), 'other.toml': agent('other') },
  });
  admin = adminKeyOf(srv.dataDir);
}, 60_000);

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => {});
  await srv?.close();
  await stub?.close();
  removeTempDirs();
});

function lines(): string[] {
  return existsSync(outFile) ? readFileSync(outFile, 'utf8').trim().split('\n').filter(Boolean) : [];
}

async function api<T = Record<string, unknown>>(
  key: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${srv.url}${path}`, {
    method,
    headers: { ...bearer(key), ...(body !== undefined && { 'content-type': 'application/json' }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
}

async function startRun(agent: string, request: string): Promise<string> {
  const r = await api<{ run_id: string }>(admin, 'POST', `/api/v1/agents/${agent}/runs`, { request });
  expect(r.status).toBe(202);
  return r.body.run_id;
}

async function waiting(id: string): Promise<void> {
  await waitUntil(
    async () => (await api<{ status: string }>(admin, 'GET', `/api/v1/runs/${id}`)).body.status === 'awaiting_approval',
    { timeoutMs: 20_000, what: `run ${id} waiting` },
  );
}

async function mcp(key: string): Promise<Client> {
  const c = new Client({ name: 'follow-test', version: '1.0.0' });
  await c.connect(
    new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), { requestInit: { headers: bearer(key) } }),
  );
  clients.push(c);
  return c;
}

const call = (c: Client, name: string, args: Record<string, unknown>) =>
  c.callTool({ name, arguments: args }) as Promise<CallToolResult>;
const textOf = (r: CallToolResult) => (r.content[0] as { text: string }).text;

async function auditRows(
  action: string,
  target: string,
): Promise<{ principal: string | null; outcome: string; route: string }[]> {
  const r = await api<{ records: { principal: string | null; outcome: string; route: string }[] }>(
    admin,
    'GET',
    `/api/v1/audit?action=${action}&target=${encodeURIComponent(target)}`,
  );
  expect(r.status).toBe(200);
  return r.body.records;
}

describe('a run followed by its event stream and decided on through MCP', { timeout: 60_000 }, () => {
  it('streams its steps and its wait, is approved over MCP, runs the call once and ends the stream', async () => {
    const id = await startRun('writer', 'alpha');
    const stream = await openStream(`${srv.url}/api/v1/runs/${id}/events`, { headers: bearer(admin) });
    expect(stream.status).toBe(200);
    const wait = await stream.next((e) => e.event === 'status' && e.json.status === 'awaiting_approval');
    expect(wait.json).toMatchObject({
      run_id: id,
      agent: 'writer',
      waiting: [{ tool: 'journal.append', call_id: 'c-1', arguments: { line: 'alpha' } }],
    });
    // The steps recorded so far came first, in order, with their index.
    const before = stream.events.filter((e) => e.event === 'step');
    expect(before.map((e) => [e.json.index, e.json.kind])).toEqual([
      [0, 'model'],
      [1, 'approval_requested'],
    ]);
    expect(lines()).toEqual([]);

    const c = await mcp(admin);
    const listed = await call(c, 'list_waiting_runs', {});
    expect(listed.isError).toBeUndefined();
    const runs = (listed.structuredContent as { runs: { id: string; waiting: { call_id: string; tool: string }[] }[] })
      .runs;
    expect(runs.find((r) => r.id === id)?.waiting).toEqual([
      expect.objectContaining({ tool: 'journal.append', call_id: 'c-1', arguments: { line: 'alpha' } }),
    ]);
    const approved = await call(c, 'approve_run', { run_id: id, reason: 'fine' });
    expect(approved.isError, textOf(approved)).toBeUndefined();

    const end = await stream.next((e) => e.event === 'end');
    await stream.ended; // the server closed it
    expect(end.json).toMatchObject({ run_id: id, status: 'completed', response: { content: 'done: appended alpha' } });
    const kinds = stream.events.filter((e) => e.event === 'step').map((e) => e.json.kind);
    expect(kinds).toEqual(['model', 'approval_requested', 'approval', 'tool_start', 'tool_end', 'model']);
    // Opened while the run may still have been on its way to the wait: from the wait on.
    const statuses = stream.events.filter((e) => e.event === 'status').map((e) => e.json.status);
    expect(statuses.slice(statuses.indexOf('awaiting_approval'))).toEqual([
      'awaiting_approval',
      'running',
      'completed',
    ]);
    expect(lines()).toEqual(['alpha']);

    // Recorded as the caller's decision, and audited as the REST route's.
    const read = await call(c, 'read_run', { run_id: id });
    const who = (await api<{ id: string }>(admin, 'GET', '/api/v1/whoami')).body.id;
    expect(read.structuredContent).toMatchObject({
      id,
      status: 'completed',
      approvals: [{ call_id: 'c-1', decision: 'approved', decided_by: who, reason: 'fine' }],
    });
    const rows = (
      await waitUntil(async () => {
        const r = await auditRows('run.approve', id);
        return r.length > 0 && r;
      })
    ).value;
    expect(rows).toEqual([expect.objectContaining({ principal: who, outcome: 'ok', route: '/mcp' })]);

    // An ended run's stream says so and closes at once.
    const again = await openStream(`${srv.url}/api/v1/runs/${id}/events`, { headers: bearer(admin) });
    await again.ended;
    expect(again.events.map((e) => e.event)).toEqual([...kinds.map(() => 'step'), 'status', 'end']);
  });

  it('follows a change made outside this process by reading the journal', async () => {
    const id = await startRun('writer', 'beta');
    await waiting(id);
    const stream = await openStream(`${srv.url}/api/v1/runs/${id}/events`, { headers: bearer(admin) });
    await stream.next((e) => e.event === 'status');
    const from = stream.events.length;
    // Written straight to the journal, as another node of a cluster would: nothing here is told.
    await srv.server.executor.runs!.journal.finish(id, {
      status: 'cancelled',
      error: { code: 'cancelled', message: 'cancelled elsewhere' },
    });
    const end = await stream.next((e) => e.event === 'end', from);
    expect(end.json).toMatchObject({ status: 'cancelled', error: { message: 'cancelled elsewhere' } });
    await stream.ended;
  });

  it('refuses as REST does: outside the agent scope no run exists, a missing permission is refused', async () => {
    const id = await startRun('other', 'gamma');
    await waiting(id);
    const scoped = await createKey(srv.url, admin, 'scoped-runs', { role: 'operator', agents: ['writer'] });
    const c = await mcp(scoped);
    for (const [tool, args] of [
      ['approve_run', { run_id: id }],
      ['deny_run', { run_id: id, reason: 'no' }],
      ['read_run', { run_id: id }],
    ] as const) {
      const r = await call(c, tool, args);
      expect(r.isError, tool).toBe(true);
      expect(textOf(r)).toBe(`no run "${id}"`);
    }
    const listed = await call(c, 'list_waiting_runs', {});
    expect((listed.structuredContent as { runs: { id: string }[] }).runs.map((r) => r.id)).not.toContain(id);
    // REST answers the same.
    expect((await api(scoped, 'POST', `/api/v1/runs/${id}/approve`, {})).status).toBe(404);
    expect((await api(scoped, 'GET', `/api/v1/runs/${id}/events`)).status).toBe(404);

    // An invoker may decide (agents:invoke) but not read runs (observe:read), over MCP as over REST.
    const invoker = await createKey(srv.url, admin, 'invoker-runs', { role: 'invoker' });
    const ic = await mcp(invoker);
    const refused = await call(ic, 'read_run', { run_id: id });
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toMatch(/may not do this: it needs the permission observe:read/);
    expect((await api(invoker, 'GET', `/api/v1/runs/${id}`)).status).toBe(403);
    // A viewer may read runs but not decide: REST refuses it, and MCP does not let it in at all.
    const viewer = await createKey(srv.url, admin, 'viewer-runs', { role: 'viewer' });
    expect((await api(viewer, 'POST', `/api/v1/runs/${id}/approve`, {})).status).toBe(403);
    await expect(mcp(viewer)).rejects.toThrow(/403|permission/);

    // Nothing was decided or run, and the refusals are in the audit trail as the REST route's.
    expect(lines()).not.toContain('gamma');
    const run = await api<{ status: string; approvals: { decision: string | null }[] }>(
      admin,
      'GET',
      `/api/v1/runs/${id}`,
    );
    expect(run.body).toMatchObject({ status: 'awaiting_approval', approvals: [{ decision: null }] });
    // The scoped key's (MCP and REST: not found) and the viewer's (REST: refused).
    const rows = (
      await waitUntil(async () => {
        const r = await auditRows('run.approve', id);
        return r.length >= 3 && r;
      })
    ).value;
    expect(rows.map((r) => r.outcome).sort()).toEqual(['denied', 'error', 'error']);

    // Bad arguments name the field.
    const bad = await call(c, 'approve_run', { run_id: '' });
    expect(textOf(bad)).toMatch(/"run_id" must be the id of a run/);
    const badReason = await call(c, 'deny_run', { run_id: id, reason: 7 });
    expect(textOf(badReason)).toMatch(/"reason" must be a string/);
  });
});

describe('every stream says the run waits, on which run, tool and call', { timeout: 60_000 }, () => {
  const saysWhich = (text: string, run: string) => {
    expect(text).toContain(run);
    expect(text).toContain('journal.append');
    expect(text).toContain('c-1');
  };

  it('invoke with SSE ends with the awaiting_approval error naming them', async () => {
    const s = await openStream(`${srv.url}/api/v1/agents/writer/invoke`, {
      method: 'POST',
      headers: { ...bearer(admin), 'content-type': 'application/json' },
      body: JSON.stringify({ request: 'delta' }),
    });
    await s.ended;
    const err = s.events.find((e) => e.event === 'error')!;
    expect(err.json.error).toMatchObject({
      code: 'awaiting_approval',
      details: { tool: 'journal.append', call_id: 'c-1', arguments: { line: 'delta' } },
    });
    saysWhich(err.json.error.message, err.json.error.details.run_id);
  });

  it('/v1/chat/completions streamed: the openai client raises the error naming them', async () => {
    const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: admin, maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: 'writer',
      messages: [{ role: 'user', content: 'epsilon' }],
      stream: true,
    });
    let caught: unknown;
    try {
      for await (const chunk of stream) void chunk;
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(OpenAI.APIError);
    const e = caught as InstanceType<typeof OpenAI.APIError> & { error: { details: { run_id: string } } };
    expect(e.code).toBe('awaiting_approval');
    expect(e.error.details).toMatchObject({ tool: 'journal.append', call_id: 'c-1' });
    saysWhich(e.message, e.error.details.run_id);
  });

  it('/v1 not streamed: a 409 the openai client raises and does not retry, naming them', async () => {
    const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: admin, maxRetries: 2 });
    const before = (await api<{ runs: unknown[] }>(admin, 'GET', '/api/v1/runs?status=awaiting_approval&limit=500'))
      .body.runs.length;
    for (const call of [
      () => client.chat.completions.create({ model: 'writer', messages: [{ role: 'user', content: 'eta' }] }),
      () => client.responses.create({ model: 'writer', input: 'theta' }),
    ]) {
      let caught: unknown;
      try {
        await call();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(OpenAI.ConflictError);
      const e = caught as InstanceType<typeof OpenAI.APIError> & { error: { details: { run_id: string } } };
      expect(e.code).toBe('awaiting_approval');
      expect(e.error.details).toMatchObject({ tool: 'journal.append', call_id: 'c-1' });
      saysWhich(e.message, e.error.details.run_id);
    }
    // Not retried: one waiting run per request.
    const after = (await api<{ runs: unknown[] }>(admin, 'GET', '/api/v1/runs?status=awaiting_approval&limit=500')).body
      .runs.length;
    expect(after - before).toBe(2);
  });

  it('/v1/responses streamed: response.failed carries the error naming them', async () => {
    const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: admin, maxRetries: 0 });
    const stream = await client.responses.create({ model: 'writer', input: 'zeta', stream: true });
    const types: string[] = [];
    let failed: { code: string; message: string } | null | undefined;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'response.failed') failed = ev.response.error;
    }
    expect(types.at(-1)).toBe('response.failed');
    expect(failed?.code).toBe('awaiting_approval');
    const run = /run (exec_\S+) waits/.exec(failed!.message)?.[1];
    expect(run).toBeDefined();
    saysWhich(failed!.message, run!);
  });

  it('the agent event stream has run.awaiting_approval and run.approval_decided, without the arguments', async () => {
    const events = await openStream(`${srv.url}/api/v1/events/stream?type=run.awaiting_approval,run.approval_decided`, {
      headers: bearer(admin),
    });
    await events.next((e) => e.event === 'ready');
    const id = await startRun('writer', 'secret-eta');
    const asked = await events.next((e) => e.event === 'run.awaiting_approval' && e.json.data.run_id === id);
    expect(asked.json).toMatchObject({
      agent: 'writer',
      category: 'lifecycle',
      data: { run_id: id, tool: 'journal.append', call_id: 'c-1' },
    });
    expect(asked.data).not.toContain('secret-eta');
    const r = await api(admin, 'POST', `/api/v1/runs/${id}/deny`, { reason: 'no' });
    expect(r.status).toBe(200);
    const decided: SseEvent = await events.next((e) => e.event === 'run.approval_decided' && e.json.data.run_id === id);
    const who = (await api<{ id: string }>(admin, 'GET', '/api/v1/whoami')).body.id;
    expect(decided.json.data).toEqual({
      run_id: id,
      tool: 'journal.append',
      call_id: 'c-1',
      decision: 'denied',
      decided_by: who,
    });
    events.close();
  });
});
