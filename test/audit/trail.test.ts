/**
 * The audit trail on a real server (127.0.0.1, port 0, SQLite in a temp dir): deploys, removals,
 * tool deploys, memory imports, dead-letter replays, MCP tool calls and configuration reads are
 * recorded with principal, source address, request id, target and outcome; failures as `error`,
 * 401/403 as `denied`; GET /api/v1/audit filters; the JSON-lines copy; no secret in a row; the
 * tool audit names the principal; `caxton audit`. Requests authenticate with real API keys
 * (created with the admin key the first start wrote); `anon` requests send none.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/index.js';
import { registerSecrets } from '../../src/shared/secrets.js';
import { assertBuilt, cleanup, expectExit, parseJson, runCli, tempDir } from '../cli/helpers/cli.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import { deployBody, ensureToolsBuilt, EXAMPLE_DIR } from '../tools/servers/helpers.js';

const SECRET = 'audit-secret-7f3c9a1e52';

interface Http {
  status: number;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

let ts: TestServer;
let jsonlPath: string;

let admin: string;
const keys: Record<string, string> = {};

async function call(
  method: string,
  path: string,
  opts: { body?: unknown; type?: string; headers?: Record<string, string>; anon?: boolean } = {},
): Promise<Http> {
  const headers: Record<string, string> = { ...opts.headers };
  if (!opts.anon && headers.authorization === undefined) headers.authorization = `Bearer ${admin}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    headers['content-type'] = opts.type ?? 'application/json';
  }
  const res = await fetch(`${ts.url}${path}`, { method, headers, ...(body !== undefined && { body }) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

const as = (principal: string, requestId: string) => ({
  authorization: `Bearer ${keys[principal.slice(4)]!}`,
  'x-request-id': requestId,
});

async function audit(query = ''): Promise<AuditRecord[]> {
  const r = await call('GET', `/api/v1/audit${query}`);
  expect(r.status, r.text).toBe(200);
  return r.json.records as AuditRecord[];
}

const byRequest = async (id: string) => (await audit()).filter((r) => r.client_request_id === id);

const AGENT = `name = "auditee"
description = "an agent for the audit tests"
capabilities = ["auditing"]
system_prompt = "You are audited."
`;

beforeAll(async () => {
  ensureToolsBuilt();
  const dir = makeTempDir('caxton-audit-');
  // No fallback: an unmatched request is an error, so a message to the agent fails and is dead-lettered.
  writeFileSync(
    join(dir, 'replies.toml'),
    '[[rules]]\nmatch = "hello"\n  [[rules.turns]]\n  content = "hi"\n' +
      '[[rules]]\nmatch = "echo please"\n  [[rules.turns]]\n  content = ""\n  tool_calls = [{ name = "text.echo", arguments = { a = 1 } }]\n  [[rules.turns]]\n  content = "done"\n',
  );
  ts = await startTestServer({
    dir,
    toml: `[auth]\nenabled = true\n\n[llm]\ndefault_provider = "demo"\n[llm.providers.demo]\ntype = "scripted"\nscript = "replies.toml"\n\n[messaging]\nmax_attempts = 1\n\n[audit]\njsonl = "logs/audit.jsonl"\nanonymous_interval = "1s"\n`,
  });
  admin = readFileSync(join(dir, 'data', 'admin.key'), 'utf8').trim();
  registerSecrets([SECRET]);
  for (const [name, role] of [
    ['ci', 'developer'],
    ['ops', 'operator'],
    ['viewer', 'viewer'],
    ['mcp', 'developer'],
    ['tools', 'developer'],
    [SECRET, 'developer'],
  ] as const) {
    const r = await call('POST', '/api/v1/keys', {
      body: { name, role },
      headers: { 'x-request-id': `setup-${name === SECRET ? 'secret' : name}` },
    });
    expect(r.status, r.text).toBe(201);
    keys[name] = r.json.secret as string;
  }
  jsonlPath = join(dir, 'logs', 'audit.jsonl');
}, 60_000);

afterAll(async () => {
  await ts?.close();
  await cleanup();
  removeTempDirs();
});

describe('recording', () => {
  it('records agent deploys and removals, tool deploys, memory imports and dead-letter replays with principal, source, request id, target and outcome', async () => {
    expect(
      (
        await call('POST', '/api/v1/agents', {
          body: AGENT,
          type: 'application/toml',
          headers: as('key:ci', 'req-deploy'),
        })
      ).status,
    ).toBe(201);

    // A message the agent cannot answer: one attempt, then the dead-letter queue.
    const sent = await call('POST', '/api/v1/messages?wait=30', {
      body: { performative: 'request', capability: 'auditing', content: 'fail me' },
      headers: as('key:ci', 'req-send'),
    });
    expect(sent.status, sent.text).toBe(200);
    expect(sent.json.conversation.state).toBe('failed');
    const dead = (await call('GET', '/api/v1/dead-letters')).json.dead_letters.find(
      (d: { message_id: string }) => d.message_id === sent.json.id,
    );
    expect(dead).toBeDefined();
    expect(
      (await call('POST', `/api/v1/dead-letters/${dead.id}/replay`, { headers: as('key:ops', 'req-replay') })).status,
    ).toBe(202);

    const tool = await call('POST', '/api/v1/tools', {
      body: deployBody(EXAMPLE_DIR),
      headers: as('key:ops', 'req-tool'),
    });
    expect(tool.status, tool.text).toBe(201);
    const imported = await call('POST', '/api/v1/memory/import?scope=workspace', {
      body: { format: 'caxton-memory', version: 1, entities: [] },
      headers: as('key:ci', 'req-import'),
    });
    expect(imported.status, imported.text).toBe(200);
    expect((await call('DELETE', '/api/v1/agents/auditee', { headers: as('key:ci', 'req-remove') })).status).toBe(204);
    expect((await call('GET', '/api/v1/config', { headers: as('key:ops', 'req-config') })).status).toBe(200);

    const rows = await audit();
    const one = (id: string) => {
      const r = rows.filter((x) => x.client_request_id === id);
      expect(r, id).toHaveLength(1);
      return r[0]!;
    };
    const common = { principal_kind: 'key', source: '127.0.0.1', outcome: 'ok' };
    expect(one('req-deploy')).toMatchObject({
      ...common,
      principal: 'key:ci',
      action: 'agent.deploy',
      method: 'POST',
      route: '/api/v1/agents',
      target: 'auditee',
      status: 201,
    });
    expect(one('req-send')).toMatchObject({
      ...common,
      principal: 'key:ci',
      action: 'message.send',
      target: sent.json.conversation_id,
      status: 200,
    });
    expect(one('req-replay')).toMatchObject({
      ...common,
      principal: 'key:ops',
      action: 'dead_letter.replay',
      route: '/api/v1/dead-letters/:id/replay',
      target: String(dead.id),
      status: 202,
    });
    expect(one('req-tool')).toMatchObject({
      ...common,
      principal: 'key:ops',
      action: 'tool.deploy',
      target: 'text',
      status: 201,
    });
    expect(one('req-import')).toMatchObject({
      ...common,
      principal: 'key:ci',
      action: 'memory.import',
      target: 'workspace',
      status: 200,
    });
    expect(one('req-remove')).toMatchObject({
      ...common,
      principal: 'key:ci',
      action: 'agent.remove',
      method: 'DELETE',
      target: 'auditee',
      status: 204,
    });
    expect(one('req-config')).toMatchObject({
      ...common,
      principal: 'key:ops',
      action: 'config.read',
      method: 'GET',
      status: 200,
    });
    expect(Date.parse(one('req-deploy').time)).toBeGreaterThan(Date.now() - 60_000);
    // Reads are not recorded (GET /api/v1/dead-letters above, and the audit queries themselves).
    expect(rows.filter((r) => r.method === 'GET' && r.action !== 'config.read')).toEqual([]);
  });

  it("counts a request without credentials (401) into its address's aggregate row, principal null, not a row of its own", async () => {
    const r = await call('POST', '/api/v1/agents', {
      body: AGENT.replace('auditee', 'anonymous'),
      type: 'application/toml',
      headers: { 'x-request-id': 'req-anon' },
      anon: true,
    });
    expect(r.status).toBe(401);
    const { value: row } = await waitUntil(
      async () => (await audit('?action=auth.anonymous_refusals')).find((x) => x.source === '127.0.0.1'),
      { what: 'the aggregate row' },
    );
    expect(row).toMatchObject({
      principal: null,
      principal_kind: null,
      outcome: 'denied',
      details: { reasons: { missing_credentials: 1 }, routes: { 'POST /api/v1/agents': 1 } },
    });
    expect(await byRequest('req-anon')).toEqual([]);
    // Deployed for real (by the admin) for the 401/403 test below.
    expect(
      (await call('POST', '/api/v1/agents', { body: AGENT.replace('auditee', 'anonymous'), type: 'application/toml' }))
        .status,
    ).toBe(201);
  });

  it('records a failing request (422) as error with its status and error code, never the body', async () => {
    const bad = 'name = "broken"\ncapabilities = "not a list"\nsystem_prompt = "hush"\n';
    const r = await call('POST', '/api/v1/agents', {
      body: bad,
      type: 'application/toml',
      headers: as('key:ci', 'req-bad'),
    });
    expect(r.status, r.text).toBe(422);
    const [row] = await byRequest('req-bad');
    expect(row).toMatchObject({
      principal: 'key:ci',
      action: 'agent.deploy',
      outcome: 'error',
      status: 422,
      target: null,
      details: { error_code: r.json.error.code },
    });
    expect(JSON.stringify(row)).not.toContain('hush');
    // A 404 on a removal is an error too, with the target from the path.
    expect((await call('DELETE', '/api/v1/agents/ghost', { headers: as('key:ci', 'req-ghost') })).status).toBe(404);
    expect((await byRequest('req-ghost'))[0]).toMatchObject({
      action: 'agent.remove',
      target: 'ghost',
      outcome: 'error',
      status: 404,
      details: { error_code: 'agent_not_found' },
    });
  });

  it('records 403 answers as denied with the principal; a 401 is counted in the aggregate only', async () => {
    expect(
      (await call('DELETE', '/api/v1/agents/anonymous', { headers: { 'x-request-id': 'req-401' }, anon: true })).status,
    ).toBe(401);
    expect(
      (await call('POST', '/api/v1/tools', { body: deployBody(EXAMPLE_DIR), headers: as('key:viewer', 'req-403') }))
        .status,
    ).toBe(403);
    expect(await byRequest('req-401')).toEqual([]);
    expect((await byRequest('req-403'))[0]).toMatchObject({
      principal: 'key:viewer',
      action: 'tool.deploy',
      outcome: 'denied',
      status: 403,
      details: { error_code: 'forbidden' },
    });
    // Not deleted: the 401 stopped it.
    expect((await call('GET', '/api/v1/agents/anonymous')).status).toBe(200);
  });

  it('records MCP tools/call requests (one row per call), not initialize or tools/list', async () => {
    const headers = { ...as('key:mcp', 'req-mcp-call'), accept: 'application/json, text/event-stream' };
    const rpc = (id: number, method: string, params: unknown) => ({ jsonrpc: '2.0', id, method, params });
    await call('POST', '/mcp', {
      body: rpc(1, 'tools/call', { name: 'calculator', arguments: { expression: '1+2' } }),
      headers,
    });
    await call('POST', '/mcp', {
      body: rpc(2, 'tools/list', {}),
      headers: { ...headers, 'x-request-id': 'req-mcp-list' },
    });
    expect(await byRequest('req-mcp-call')).toMatchObject([
      { principal: 'key:mcp', action: 'mcp.tool_call', route: '/mcp', target: 'calculator' },
    ]);
    expect(await byRequest('req-mcp-list')).toEqual([]);
  });

  it('tool audit rows carry the principal of the request that called the tool', async () => {
    const r = await call('POST', '/api/v1/tools/text/echo/call', {
      body: { args: { a: 1 } },
      headers: as('key:tools', 'req-tool-call'),
    });
    expect(r.json).toMatchObject({ is_error: false });
    expect((await byRequest('req-tool-call'))[0]).toMatchObject({
      action: 'tool.call',
      target: 'text.echo',
      principal: 'key:tools',
    });
    const calls = await call('GET', '/api/v1/tools/audit?principal=key:tools');
    expect(calls.json.records).toHaveLength(1);
    expect(calls.json.records[0]).toMatchObject({
      tool: 'text.echo',
      agent: 'api',
      principal: 'key:tools',
      outcome: 'ok',
    });
    // Another caller's call carries that caller.
    await call('POST', '/api/v1/tools/text/echo/call', { body: { args: { b: 2 } } });
    const all = (await call('GET', '/api/v1/tools/audit?tool=text.echo')).json.records as { principal?: string }[];
    expect(all.map((x) => x.principal ?? null)).toEqual(['key:admin', 'key:tools']);
  });

  it('an execution started for a principal passes it to the tool calls the agent makes (InvokeRequest.principal)', async () => {
    const toolbox = AGENT.replace('auditee', 'toolbox').replace(
      'capabilities = ["auditing"]',
      'capabilities = ["boxing"]\ntools = ["text.echo"]',
    );
    expect((await call('POST', '/api/v1/agents', { body: toolbox, type: 'application/toml' })).status).toBe(201);
    const res = await ts.server.executor.invoke('toolbox', { request: 'echo please', principal: 'key:exec' });
    expect(res.content).toBe('done');
    expect(res.tool_calls.map((c) => c.name)).toEqual(['text.echo']);
    const rows = (await call('GET', '/api/v1/tools/audit?agent=toolbox')).json.records;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      tool: 'text.echo',
      execution_id: res.execution_id,
      principal: 'key:exec',
      outcome: 'ok',
    });
  });

  it('non-HTTP events go through audit.record', async () => {
    ts.server.audit!.record({
      action: 'key.create',
      principal: { id: 'local:admin', kind: 'local' },
      target: 'ci',
      outcome: 'ok',
      details: { role: 'operator' },
    });
    expect((await audit('?action=key.create'))[0]).toMatchObject({
      action: 'key.create',
      principal: 'local:admin',
      target: 'ci',
      method: null,
      details: { role: 'operator' },
    });
  });
});

describe('GET /api/v1/audit filters', () => {
  it('by action (exact and family), outcome, target, principal, time and page', async () => {
    expect((await audit('?action=agent.deploy')).every((r) => r.action === 'agent.deploy')).toBe(true);
    const agentActions = new Set((await audit('?action=agent.*')).map((r) => r.action));
    expect([...agentActions].sort()).toEqual(['agent.deploy', 'agent.remove']);
    const errors = await audit('?outcome=error');
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(errors.every((r) => r.outcome === 'error')).toBe(true);
    expect((await audit('?target=auditee')).map((r) => r.action).sort()).toEqual(['agent.deploy', 'agent.remove']);
    expect((await audit('?principal=key:ops')).map((r) => r.client_request_id).sort()).toEqual([
      'req-config',
      'req-replay',
      'req-tool',
    ]);
    const anonymous = await audit('?principal=-');
    expect(anonymous.length).toBeGreaterThan(0);
    expect(anonymous.every((r) => r.principal === null)).toBe(true);
    expect((await audit('?since=1h')).length).toBeGreaterThan(5);
    expect(await audit('?until=2000-01-01T00:00:00Z')).toEqual([]);
    expect(await audit(`?since=${new Date(Date.now() + 60_000).toISOString()}`)).toEqual([]);
    // Newest first, paged by limit and offset. Paged within one principal's finished requests:
    // unfiltered, a row written between the two reads (the anonymous refusals' periodic summary)
    // would shift the page.
    const all = await audit();
    expect(all.map((r) => r.id)).toEqual([...all.map((r) => r.id)].sort((a, b) => b - a));
    const ops = await audit('?principal=key:ops');
    expect(ops).toHaveLength(3);
    const page = await audit('?principal=key:ops&limit=2&offset=1');
    expect(page.map((r) => r.id)).toEqual(ops.slice(1, 3).map((r) => r.id));
  });

  it('refuses bad filters with a 400 naming the field', async () => {
    const since = await call('GET', '/api/v1/audit?since=yesterday');
    expect(since.status).toBe(400);
    expect(since.json.error.message).toContain('since');
    const outcome = await call('GET', '/api/v1/audit?outcome=maybe');
    expect(outcome.status).toBe(400);
    expect(outcome.json.error.message).toMatch(/outcome.*ok, denied, error/);
    expect((await call('GET', '/api/v1/audit?limit=0')).status).toBe(400);
  });

  it('is in the OpenAPI document with its filters', async () => {
    const doc = (await call('GET', '/api/v1/openapi.json')).json;
    const op = doc.paths['/api/v1/audit'].get;
    expect(op.parameters.map((p: { name: string }) => p.name).sort()).toEqual([
      'action',
      'limit',
      'offset',
      'outcome',
      'principal',
      'since',
      'target',
      'until',
    ]);
  });
});

describe('secrets', () => {
  it('never land in a row or the JSON-lines file, wherever the request carried them', async () => {
    const enc = encodeURIComponent(SECRET);
    const bySecretKey = { authorization: `Bearer ${keys[SECRET]!}` };
    await call('DELETE', `/api/v1/agents/${enc}`, { headers: { 'x-request-id': SECRET, ...bySecretKey } });
    await call('POST', `/api/v1/memory/import?scope=agent:${enc}`, {
      body: { format: 'caxton-memory', version: 1, entities: [] },
      headers: { 'x-request-id': 'req-secret-2', ...bySecretKey },
    });
    await call('POST', '/api/v1/agents', {
      body: AGENT.replace('You are audited.', SECRET),
      type: 'application/toml',
      headers: { 'x-request-id': 'req-secret-3', ...bySecretKey },
    });
    ts.server.audit!.record({
      action: 'key.create',
      target: SECRET,
      outcome: 'ok',
      details: { note: `token ${SECRET}` },
    });
    ts.server.audit!.flush();
    const rows = ts.server.db.prepare('SELECT * FROM audit_log').all();
    const text = JSON.stringify(rows);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(enc);
    // The rows are there, the secret replaced.
    expect(rows.some((r) => (r as { target: string | null }).target === '***')).toBe(true);
    expect(rows.some((r) => (r as { client_request_id: string | null }).client_request_id === '***')).toBe(true);
    expect(rows.some((r) => (r as { principal: string | null }).principal === 'key:***')).toBe(true);
    expect(rows.some((r) => (r as { target: string | null }).target === 'agent:***')).toBe(true);
    await waitUntil(() => readFileSync(jsonlPath, 'utf8').includes('key:***'), {
      timeoutMs: 5000,
      what: 'the JSON lines',
    });
    expect(readFileSync(jsonlPath, 'utf8')).not.toContain(SECRET);
  });
});

describe('the JSON-lines file', () => {
  it('gets one line per row (the same record as the API) and is created 0600', async () => {
    ts.server.audit!.flush();
    const count = (ts.server.db.prepare('SELECT count(*) AS n FROM audit_log').get() as { n: number }).n;
    const { value: lines } = await waitUntil(
      () => {
        const l = readFileSync(jsonlPath, 'utf8').trim().split('\n');
        return l.length === count && l;
      },
      { timeoutMs: 5000, what: `${count} JSON lines` },
    );
    const parsed = lines.map((l) => JSON.parse(l) as AuditRecord);
    const api = (await audit('?limit=1000')).reverse();
    expect(parsed).toEqual(api);
    expect(statSync(jsonlPath).mode & 0o777).toBe(0o600);
  });
});

describe('caxton audit', () => {
  let cwd: string;
  beforeAll(() => {
    assertBuilt();
    cwd = tempDir();
  });
  const cli = (...args: string[]) => runCli(['--server', ts.url, ...args], { cwd, env: { CAXTON_API_KEY: admin } });

  it('prints the trail as a table (newest last) and as JSON, with filters as flags', async () => {
    const text = await cli('audit', '--action', 'agent.*', '--principal', 'key:ci');
    expectExit(text, 0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[0]).toMatch(
      /^TIME\s+PRINCIPAL\s+SOURCE\s+ACTION\s+TARGET\s+OUTCOME\s+STATUS\s+REQUEST\s+CLIENT REQUEST\s+DETAILS$/,
    );
    expect(lines[1]).toMatch(/key:ci\s+127\.0\.0\.1\s+agent\.deploy\s+auditee\s+ok\s+201\s+[0-9a-f-]{36}\s+req-deploy/);
    expect(text.stdout).toMatch(/agent\.remove\s+auditee\s+ok\s+204\s+[0-9a-f-]{36}\s+req-remove/);
    expect(text.stdout).toMatch(/agent\.deploy\s+-\s+error\s+422\s+[0-9a-f-]{36}\s+req-bad\s+error_code=invalid_agent/);
    // The two 401s are in their address's aggregate rows, which carry no request id; the second
    // one's row is written when its interval (1 s here) ends.
    const anonymousCount = (records: AuditRecord[]) =>
      records.filter((r) => r.action === 'auth.anonymous_refusals').reduce((n, r) => n + Number(r.details?.count), 0);
    const { value: res } = await waitUntil(
      async () => {
        const json = await cli('--json', 'audit', '--outcome', 'denied', '--since', '1h');
        expectExit(json, 0);
        const out = parseJson<{ records: AuditRecord[] }>(json);
        return anonymousCount(out.records) >= 2 ? out : undefined;
      },
      { what: 'both anonymous refusals counted' },
    );
    expect(res.records.filter((r) => r.action !== 'auth.anonymous_refusals').map((r) => r.client_request_id)).toEqual([
      'req-403',
    ]);
    expect(anonymousCount(res.records)).toBe(2);
  });

  it('caxton tool audit --principal selects the tool calls made for that caller', async () => {
    const r = await cli('--json', 'tool', 'audit', '--principal', 'key:tools');
    expectExit(r, 0);
    expect(parseJson<{ records: { tool: string; principal?: string }[] }>(r).records).toMatchObject([
      { tool: 'text.echo', principal: 'key:tools' },
    ]);
  });

  it('says when nothing matches, and refuses a bad flag as a usage error', async () => {
    const none = await cli('audit', '--target', 'nobody-at-all');
    expectExit(none, 0);
    expect(none.stderr).toContain('no audit records match');
    expectExit(await cli('audit', '--outcome', 'maybe'), 2);
    const bad = await cli('audit', '--since', 'yesterday');
    expectExit(bad, 1);
    expect(bad.stderr).toContain('since');
    const help = await cli('audit', '--help');
    expect(help.stdout).toContain('--principal <id>');
  });
});
