/**
 * Lists of agents are filtered by the caller's agent scope (src/auth/scope-read.ts): a key limited
 * to `a-*` sees a-one and never b-secret in the agents, the capabilities, the directory and its
 * stream, the OpenAI models, the status counts and the audit trail, while a key without an agents scope sees both. A
 * model outside the scope reads as a missing one.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditStore } from '../../src/audit/index.js';
import { openDatabase } from '../../src/storage/index.js';
import { parseSse, type SseEvent } from '../execution/helpers/caxton.js';
import { http } from '../helpers/http.js';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

let srv: TestServer;
let admin: string;
let scoped: string;
let open: string;

const get = <T>(key: string, path: string) => http<T>(srv.url, 'GET', path, { headers: bearer(key) });
const post = <T>(key: string, path: string, body: unknown) =>
  http<T>(srv.url, 'POST', path, { body: JSON.stringify(body), contentType: 'application/json', headers: bearer(key) });
const agentToml = (name: string, capability: string) =>
  `name = "${name}"\nsystem_prompt = "You are ${name}."\ncapabilities = ["${capability}"]\n`;

async function deploy(name: string, capability: string): Promise<void> {
  const r = await http(srv.url, 'POST', '/api/v1/agents', {
    body: agentToml(name, capability),
    contentType: 'application/toml',
    headers: bearer(admin),
  });
  expect(r.status, r.text).toBe(201);
}

async function remove(name: string): Promise<void> {
  const r = await http(srv.url, 'DELETE', `/api/v1/agents/${name}`, { headers: bearer(admin) });
  expect(r.status, r.text).toBe(204);
}

/** Follows GET /directory/events with `key`, collecting its events. */
async function follow(
  key: string,
): Promise<{ events: SseEvent[]; until(done: (es: SseEvent[]) => boolean): Promise<void>; close(): void }> {
  const ac = new AbortController();
  const res = await fetch(`${srv.url}/api/v1/directory/events`, {
    headers: { ...bearer(key), accept: 'text/event-stream' },
    signal: ac.signal,
  });
  expect(res.status).toBe(200);
  const events: SseEvent[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let wake = (): void => {};
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        const at = buf.lastIndexOf('\n\n');
        if (at >= 0) {
          events.push(...parseSse(buf.slice(0, at + 2)));
          buf = buf.slice(at + 2);
          wake();
        }
      }
    } catch {
      // closed by close()
    }
  })();
  return {
    events,
    until: (done) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no such directory event within 15 s; got: ${JSON.stringify(events)}`)),
          15_000,
        );
        wake = () => {
          if (!done(events)) return;
          clearTimeout(timer);
          resolve();
        };
        wake();
      }),
    close: () => ac.abort(),
  };
}

const agentsOf = (events: SseEvent[]) =>
  events.map((e) => `${e.event} ${(e.json as { entry: { agent: string } }).entry.agent}`);

beforeAll(async () => {
  const dir = makeTempDir('caxton-scope-lists-');
  writeFileSync(join(dir, 'replies.toml'), 'fallback = "noted"\n');
  srv = await startTestServer({
    dir,
    toml: '[auth]\nenabled = true\n\n[llm]\ndefault_provider = "s"\n[llm.providers.s]\ntype = "scripted"\nscript = "replies.toml"\n',
    agentFiles: { 'a-one.toml': agentToml('a-one', 'cap-a'), 'b-secret.toml': agentToml('b-secret', 'cap-b-secret') },
  });
  admin = adminKeyOf(srv.dataDir);
  // Operators: they may read the agents and the audit trail.
  scoped = await createKey(srv.url, admin, 'lister-a', { role: 'operator', agents: ['a-*'] });
  open = await createKey(srv.url, admin, 'lister-all', { role: 'operator' });
}, 60_000);

afterAll(async () => {
  await srv?.close();
  removeTempDirs();
});

describe('agent lists by agent scope', () => {
  it('GET /api/v1/agents lists only agents in scope, with a total and pages that count only those', async () => {
    const names = async (key: string, query = '') =>
      (await get<{ agents: { name: string }[]; total: number }>(key, `/api/v1/agents${query}`)).json;
    expect(await names(scoped)).toMatchObject({ agents: [{ name: 'a-one' }], total: 1 });
    expect((await names(open)).agents.map((a) => a.name)).toEqual(['a-one', 'b-secret']);
    // b-secret sorts after a-one: a page past the visible ones is empty, not b-secret.
    expect(await names(scoped, '?limit=1&offset=1')).toMatchObject({ agents: [], total: 1 });
    expect(await names(scoped, '?capability=cap-b-secret')).toMatchObject({ agents: [], total: 0 });
    expect(await names(open, '?capability=cap-b-secret')).toMatchObject({ agents: [{ name: 'b-secret' }], total: 1 });
  });

  it('GET /api/v1/capabilities lists a capability only with its providers in scope, and not at all without one', async () => {
    await deploy('b-shared', 'cap-a');
    try {
      const scopedCaps = await get<{ capabilities: { capability: string; agents: string[] }[] }>(
        scoped,
        '/api/v1/capabilities',
      );
      expect(scopedCaps.json.capabilities).toEqual([{ capability: 'cap-a', agents: ['a-one'] }]);
      const all = await get<{ capabilities: { capability: string; agents: string[] }[] }>(open, '/api/v1/capabilities');
      expect(all.json.capabilities).toEqual([
        { capability: 'cap-a', agents: ['a-one', 'b-shared'] },
        { capability: 'cap-b-secret', agents: ['b-secret'] },
      ]);
    } finally {
      await remove('b-shared');
    }
  });

  it('GET /api/v1/directory lists only agents in scope', async () => {
    const entries = async (key: string, query = '') =>
      (await get<{ entries: { agent: string }[]; total: number }>(key, `/api/v1/directory${query}`)).json;
    expect(await entries(scoped)).toMatchObject({ entries: [{ agent: 'a-one' }], total: 1 });
    expect((await entries(open)).entries.map((e) => e.agent)).toEqual(['a-one', 'b-secret']);
    expect(await entries(scoped, '?capability=cap-b-secret')).toEqual({ entries: [], total: 0 });
    expect((await entries(open, '?capability=cap-b-secret')).total).toBe(1);
  });

  it('GET /v1/models lists only agents in scope; one outside it is a missing model (404, OpenAI shape)', async () => {
    const ids = async (key: string) =>
      (await get<{ data: { id: string }[] }>(key, '/v1/models')).json.data.map((m) => m.id);
    expect(await ids(scoped)).toEqual(['a-one']);
    expect(await ids(open)).toEqual(['a-one', 'b-secret']);
    expect((await get(scoped, '/v1/models/a-one')).status).toBe(200);
    expect((await get(open, '/v1/models/b-secret')).status).toBe(200);
    type OpenAiError = { error: { type: string; code: string; param: string; request_id?: string } };
    const hidden = await get<OpenAiError>(scoped, '/v1/models/b-secret');
    const missing = await get<OpenAiError>(scoped, '/v1/models/b-nobody');
    expect(hidden.status, hidden.text).toBe(404);
    expect(missing.status).toBe(404);
    expect(hidden.json.error).toMatchObject({ type: 'invalid_request_error', code: 'agent_not_found', param: 'model' });
    // Nothing tells the two apart but the name.
    const shape = (e: OpenAiError['error'], name: string) =>
      JSON.stringify({ ...e, request_id: undefined }).replaceAll(name, 'NAME');
    expect(shape(hidden.json.error, 'b-secret')).toBe(shape(missing.json.error, 'b-nobody'));
  });

  it('GET /api/v1/status and /status/overview count only agents and capabilities in scope', async () => {
    type Counts = { agents: { total: number; from_files: number; capabilities: number } };
    for (const path of ['/api/v1/status', '/api/v1/status/overview']) {
      expect((await get<Counts>(scoped, path)).json.agents, path).toMatchObject({
        total: 1,
        from_files: 1,
        capabilities: 1,
      });
      expect((await get<Counts>(open, path)).json.agents, path).toMatchObject({
        total: 2,
        from_files: 2,
        capabilities: 2,
      });
    }
  });

  it('GET /api/v1/directory/events does not carry the changes of agents out of scope', async () => {
    const scopedStream = await follow(scoped);
    const openStream = await follow(open);
    try {
      await deploy('b-x', 'cap-b-secret');
      await remove('b-x');
      await deploy('a-x', 'cap-a');
      await remove('a-x');
      await openStream.until((es) => es.length >= 4);
      expect(agentsOf(openStream.events)).toEqual([
        'registered b-x',
        'deregistered b-x',
        'registered a-x',
        'deregistered a-x',
      ]);
      // a-x's changes come after b-x's on the same stream: once they are in, b-x's would be too.
      await scopedStream.until((es) => es.some((e) => e.event === 'deregistered'));
      expect(agentsOf(scopedStream.events)).toEqual(['registered a-x', 'deregistered a-x']);
    } finally {
      scopedStream.close();
      openStream.close();
    }
  });
});

describe('the audit trail by agent scope', () => {
  it('leaves out the rows whose target is an agent out of scope', async () => {
    for (const name of ['a-one', 'b-secret']) {
      const r = await post(admin, `/api/v1/agents/${name}/invoke`, { request: 'hi' });
      expect(r.status, r.text).toBe(200);
    }
    const r = await post(admin, '/v1/chat/completions', {
      model: 'b-secret',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(r.status, r.text).toBe(200);
    type Rows = { records: { action: string; target: string | null }[] };
    const rows = async (key: string) => (await get<Rows>(key, '/api/v1/audit?limit=1000')).json.records;
    const all = await rows(open);
    expect(all.filter((x) => x.target === 'b-secret').length).toBeGreaterThanOrEqual(2);
    const seen = await rows(scoped);
    expect(seen.filter((x) => x.action.startsWith('agent.') && x.target !== 'a-one' && x.target !== 'a-x')).toEqual([]);
    expect(seen).toContainEqual(expect.objectContaining({ action: 'agent.invoke', target: 'a-one' }));
    // Rows about other things (keys here) stay.
    expect(seen).toContainEqual(expect.objectContaining({ action: 'key.create', target: 'lister-a' }));
    // A page is full while visible rows remain.
    const page = await get<Rows>(scoped, '/api/v1/audit?limit=2');
    expect(page.json.records).toEqual(seen.slice(0, 2));
  });

  it('reads a version, MCP ask_ tools and null targets by the agent they name (the store on its own)', async () => {
    const db = openDatabase(makeTempDir('caxton-scope-lists-audit-'));
    const audit = new AuditStore(db);
    const rows: [string, string | null][] = [
      ['agent.invoke', 'a-one@2'],
      ['agent.invoke', 'b-secret@2'],
      ['agent.deploy', null],
      ['agent.remove', 'b-secret'],
      ['mcp.tool_call', 'ask_a-one'],
      ['mcp.tool_call', 'ask_b-secret'],
      ['mcp.tool_call', 'memory_search'],
      ['tool.call', 'b-secret.x'],
      ['memory.write', 'workspace'],
    ];
    for (const [action, target] of rows) audit.record({ action, target, outcome: 'ok' });
    const seen = (reader?: { scope: { agents?: string[] } }) =>
      audit
        .query({}, reader)
        .map((r) => `${r.action} ${r.target ?? '-'}`)
        .reverse();
    expect(seen({ scope: { agents: ['a-*'] } })).toEqual([
      'agent.invoke a-one@2',
      'agent.deploy -',
      'mcp.tool_call ask_a-one',
      'mcp.tool_call memory_search',
      'tool.call b-secret.x',
      'memory.write workspace',
    ]);
    expect(seen({ scope: { agents: ['a-one'] } })).toEqual(seen({ scope: { agents: ['a-*'] } }));
    expect(seen({ scope: {} })).toHaveLength(rows.length);
    expect(seen()).toHaveLength(rows.length);
    expect(seen({ scope: { agents: [] } })).toEqual([
      'agent.deploy -',
      'mcp.tool_call memory_search',
      'tool.call b-secret.x',
      'memory.write workspace',
    ]);
    await audit.close();
    db.close();
  });
});
