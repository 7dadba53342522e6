/**
 * MCP resources under authentication (principals): through POST /mcp, an API key
 * limited to some memory scopes reads entities of those scopes only (another scope answers
 * "not found", -32002, as the REST route answers 403), and reads conversations with messages:read.
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

const as = bearer;

const keyFor = (name: string, body: Record<string, unknown>) => createKey(srv.url, admin, name, body);

async function connect(key: string): Promise<Client> {
  const client = new Client({ name: 'resources-auth', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), { requestInit: { headers: as(key) } }),
  );
  return client;
}

beforeAll(async () => {
  srv = await startTestServer({ toml: '[auth]\nenabled = true\n' });
  admin = adminKeyOf(srv.dataDir);
  for (const scope of ['workspace', 'agent:helper']) {
    const r = await http(srv.url, 'POST', '/api/v1/memory/entities', {
      body: JSON.stringify({
        scope,
        entities: [{ name: 'Plan', entityType: 'note', observations: [`kept in ${scope}`] }],
      }),
      contentType: 'application/json',
      headers: as(admin),
    });
    expect(r.status, r.text).toBe(201);
  }
});

afterAll(async () => {
  await srv?.close();
  removeTempDirs();
});

describe('MCP resources with API keys', () => {
  it("a key limited to the workspace memory scope reads it, and another scope is not found (the REST route's rule)", async () => {
    const key = await keyFor('mcp-workspace-memory', { role: 'invoker', memory: ['workspace'] });
    // The REST route refuses the other scope for this key...
    expect(
      (await http(srv.url, 'GET', '/api/v1/memory/entities/Plan?scope=agent:helper', { headers: as(key) })).status,
    ).toBe(403);
    const client = await connect(key);
    try {
      const templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
      expect(templates).toEqual([
        'caxton://agents/{name}',
        'caxton://conversations/{id}',
        'caxton://memory/{scope}/{name}',
      ]);
      const read = await client.readResource({ uri: 'caxton://memory/workspace/Plan' });
      expect(JSON.parse((read.contents[0] as { text: string }).text)).toMatchObject({
        entity: { scope: 'workspace', name: 'Plan', observations: ['kept in workspace'] },
      });
      // ...and MCP does not even tell it exists.
      const refused = await client.readResource({ uri: 'caxton://memory/agent:helper/Plan' }).then(
        () => undefined,
        (e: unknown) => e as { code: number; message: string },
      );
      expect(refused).toMatchObject({ code: -32002 });
      expect(refused!.message).not.toContain('kept in');
    } finally {
      await client.close();
    }
  });

  it('a key without memory limits reads every scope; conversations need messages:read (every role has it)', async () => {
    const client = await connect(await keyFor('mcp-viewer', { role: 'invoker' }));
    try {
      const read = await client.readResource({ uri: 'caxton://memory/agent%3Ahelper/Plan' });
      expect(JSON.parse((read.contents[0] as { text: string }).text)).toMatchObject({
        entity: { scope: 'agent:helper' },
      });
      await expect(client.readResource({ uri: 'caxton://conversations/conv_none' })).rejects.toMatchObject({
        code: -32002,
      });
    } finally {
      await client.close();
    }
  });
});
