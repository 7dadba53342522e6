/**
 * The memory tools through POST /mcp honour an API key's memory scopes exactly as the REST memory
 * routes do: a key limited to `workspace` reads and writes the workspace, and every `global` call
 * is refused (an MCP tool error naming the scope, audited as denied) with global data untouched.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { adminKeyOf, bearer, createKey } from '../helpers/keys.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

let srv: TestServer;
let admin: string;
let key: string;

async function connect(k: string): Promise<Client> {
  const client = new Client({ name: 'memory-scope', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), { requestInit: { headers: bearer(k) } }),
  );
  return client;
}

const textOf = (r: Record<string, unknown>) =>
  (r.content as { type: string; text: string }[]).map((c) => c.text).join('');

async function globalEntities(): Promise<string[]> {
  const r = await http(srv.url, 'GET', '/api/v1/memory/entities?scope=global', { headers: bearer(admin) });
  expect(r.status, r.text).toBe(200);
  return (JSON.parse(r.text) as { entities: { name: string }[] }).entities.map((e) => e.name).sort();
}

beforeAll(async () => {
  srv = await startTestServer({ toml: '[auth]\nenabled = true\n' });
  admin = adminKeyOf(srv.dataDir);
  for (const scope of ['workspace', 'global']) {
    const r = await http(srv.url, 'POST', '/api/v1/memory/entities', {
      body: JSON.stringify({
        scope,
        entities: [{ name: `Secret-${scope}`, entityType: 'note', observations: [`kept in ${scope}`] }],
      }),
      contentType: 'application/json',
      headers: bearer(admin),
    });
    expect(r.status, r.text).toBe(201);
  }
  key = await createKey(srv.url, admin, 'dev-workspace', { role: 'developer', memory: ['workspace'] });
});

afterAll(async () => {
  await srv?.close();
  removeTempDirs();
});

describe('memory tools through MCP under a key limited to some memory scopes', () => {
  it('refuses every global call with a tool error naming the scope, leaving global data as it was', async () => {
    const client = await connect(key);
    try {
      const calls: [string, Record<string, unknown>][] = [
        ['read_graph', { scope: 'global' }],
        ['search_nodes', { scope: 'global', query: 'kept' }],
        ['open_nodes', { scope: 'global', names: ['Secret-global'] }],
        [
          'create_entities',
          { scope: 'global', entities: [{ name: 'Injected', entityType: 'note', observations: ['x'] }] },
        ],
        [
          'add_observations',
          { scope: 'global', observations: [{ entityName: 'Secret-global', contents: ['changed'] }] },
        ],
        ['delete_entities', { scope: 'global', entityNames: ['Secret-global'] }],
      ];
      for (const [name, args] of calls) {
        const r = await client.callTool({ name, arguments: args });
        expect(r.isError, `${name}: ${textOf(r)}`).toBe(true);
        expect(textOf(r)).toContain('"global"');
        expect(textOf(r)).not.toContain('kept in global');
      }
    } finally {
      await client.close();
    }
    expect(await globalEntities()).toEqual(['Secret-global']);
    const e = await http(srv.url, 'GET', '/api/v1/memory/entities/Secret-global?scope=global', {
      headers: bearer(admin),
    });
    expect(JSON.parse(e.text).entities[0].observations).toEqual(['kept in global']);
  });

  it('allows the workspace scope', async () => {
    const client = await connect(key);
    try {
      const read = await client.callTool({ name: 'read_graph', arguments: { scope: 'workspace' } });
      expect(read.isError ?? false, textOf(read)).toBe(false);
      expect(textOf(read)).toContain('kept in workspace');
      const found = await client.callTool({ name: 'search_nodes', arguments: { scope: 'workspace', query: 'kept' } });
      expect(found.isError ?? false, textOf(found)).toBe(false);
      expect(textOf(found)).toContain('Secret-workspace');
      const created = await client.callTool({
        name: 'create_entities',
        arguments: { scope: 'workspace', entities: [{ name: 'Made', entityType: 'note', observations: ['y'] }] },
      });
      expect(created.isError ?? false, textOf(created)).toBe(false);
      const deleted = await client.callTool({
        name: 'delete_entities',
        arguments: { scope: 'workspace', entityNames: ['Made'] },
      });
      expect(deleted.isError ?? false, textOf(deleted)).toBe(false);
    } finally {
      await client.close();
    }
  });

  it('reads without a scope see only the allowed scopes', async () => {
    const client = await connect(key);
    try {
      const read = await client.callTool({ name: 'read_graph', arguments: {} });
      expect(textOf(read)).not.toContain('kept in global');
    } finally {
      await client.close();
    }
  });

  it('REST gives the same answers for the same key', async () => {
    const post = (path: string, body: unknown) =>
      http(srv.url, 'POST', path, {
        body: JSON.stringify(body),
        contentType: 'application/json',
        headers: bearer(key),
      });
    const refused = [
      await http(srv.url, 'GET', '/api/v1/memory/entities?scope=global', { headers: bearer(key) }),
      await post('/api/v1/memory/search', { query: 'kept', scope: 'global' }),
      await post('/api/v1/memory/entities', {
        scope: 'global',
        entities: [{ name: 'Injected', entityType: 'note', observations: ['x'] }],
      }),
      await post('/api/v1/memory/entities/delete', { scope: 'global', entityNames: ['Secret-global'] }),
    ];
    for (const r of refused) {
      expect(r.status, r.text).toBe(403);
      expect(JSON.parse(r.text)).toMatchObject({ error: { code: 'forbidden' } });
      expect(r.text).toContain('"global"');
    }
    expect(
      (await http(srv.url, 'GET', '/api/v1/memory/entities?scope=workspace', { headers: bearer(key) })).status,
    ).toBe(200);
    expect((await post('/api/v1/memory/search', { query: 'kept', scope: 'workspace' })).status).toBe(200);
    expect(await globalEntities()).toEqual(['Secret-global']);
  });

  it('audits a refused MCP call as denied', async () => {
    const auditedKey = await createKey(srv.url, admin, 'dev-audited', { role: 'developer', memory: ['workspace'] });
    const client = await connect(auditedKey);
    try {
      await client.callTool({
        name: 'delete_entities',
        arguments: { scope: 'global', entityNames: ['Secret-global'] },
      });
    } finally {
      await client.close();
    }
    const r = await http(srv.url, 'GET', '/api/v1/audit?action=mcp.tool_call', { headers: bearer(admin) });
    expect(r.status, r.text).toBe(200);
    const rows = (
      JSON.parse(r.text) as { records: { target?: string; outcome: string; principal: string | { id: string } }[] }
    ).records.filter((e) => e.target === 'delete_entities' && JSON.stringify(e.principal).includes('dev-audited'));
    expect(rows.map((e) => e.outcome)).toEqual(['denied']);
  });
});
