import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLE_PERMISSIONS, ROLES, type Role } from '../../src/auth/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { http } from '../helpers/http.js';
import { makeTempDir } from '../helpers/tmp.js';

const AGENT = `name = "helper"\nsystem_prompt = "You help."\ncapabilities = ["helping"]\n`;
const TOML = `[auth]\nenabled = true\n\n[llm]\ndefault_provider = "s"\n[llm.providers.s]\ntype = "scripted"\nscript = "replies.toml"\n`;
const REPLIES = 'fallback = "ok"\n';

let srv: TestServer;
let admin: string;
const keys: Partial<Record<Role, string>> = {};

const auth = (key: string | undefined): Record<string, string> => (key ? { authorization: `Bearer ${key}` } : {});

async function call(
  method: string,
  path: string,
  key: string | undefined,
  body?: unknown,
  contentType = 'application/json',
) {
  return http<
    { error?: { code: string; message: string; details: Record<string, unknown> } } & Record<string, unknown>
  >(srv.url, method, path, {
    headers: auth(key),
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body), contentType }),
  });
}

beforeAll(async () => {
  const dir = makeTempDir('caxton-auth-');
  writeFileSync(join(dir, 'replies.toml'), REPLIES);
  srv = await startTestServer({ dir, toml: TOML, agentFiles: { 'helper.toml': AGENT } });
  admin = readFileSync(join(srv.dataDir, 'admin.key'), 'utf8').trim();
  for (const role of ROLES) {
    const res = await call('POST', '/api/v1/keys', admin, { name: `k-${role}`, role });
    expect(res.status, res.text).toBe(201);
    keys[role] = res.json.secret as string;
  }
});
afterAll(() => srv?.close());

describe('the first start', () => {
  it('writes an admin key readable only by this user, and the key works', async () => {
    const st = statSync(join(srv.dataDir, 'admin.key'));
    expect(st.mode & 0o777).toBe(0o600);
    expect(admin).toMatch(/^cxk_[A-Za-z0-9_-]{12}_[A-Za-z0-9_-]{32}$/);
    const who = await call('GET', '/api/v1/whoami', admin);
    expect(who.status).toBe(200);
    expect(who.json).toMatchObject({ id: 'key:admin', role: 'admin' });
  });

  it('stores only a hash of each key', () => {
    const rows = srv.server.db.prepare('SELECT * FROM api_keys').all() as Record<string, unknown>[];
    const dump = JSON.stringify(rows, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v));
    for (const k of [admin, ...Object.values(keys)]) {
      expect(dump).not.toContain(k!.slice(-32));
    }
  });
});

describe('every route has a policy', () => {
  it("the route table holds only routes with an explicit policy; only the probes, CORS preflights, the web console's files and its single sign-on are public", () => {
    const table = srv.server.app.accessTable;
    expect(table.length).toBeGreaterThan(50);
    const pub = table.filter((r) => 'public' in r.access).map((r) => `${r.method} ${r.url}`);
    // HEAD is answered as GET before routing (src/api/head-requests.ts): no HEAD routes.
    expect(table.filter((r) => r.method === 'HEAD')).toEqual([]);
    // The console's files hold no data: the page asks the API for everything with the caller's own key.
    // Its single sign-on runs before any credential exists (bounded in src/auth/sso.ts).
    expect(pub.sort()).toEqual(
      [
        'GET /',
        'GET /health',
        'GET /ready',
        'GET /ui',
        'GET /ui/*',
        'GET /api/v1/auth/sso',
        'POST /api/v1/auth/sso/token',
      ].sort(),
    );
  });

  it('every non-public route answers 401 without credentials', async () => {
    const failures: string[] = [];
    for (const r of srv.server.app.accessTable) {
      if ('public' in r.access || r.url === '*' || r.method === 'HEAD') continue;
      const path = r.url.replace(/:([A-Za-z_]+)/g, 'x');
      const res = await call(r.method, path, undefined, r.method === 'GET' || r.method === 'DELETE' ? undefined : {});
      if (res.status !== 401) failures.push(`${r.method} ${r.url} → ${res.status}`);
      else expect(res.headers.get('www-authenticate')).toBe('Bearer realm="caxton"');
    }
    expect(failures).toEqual([]);
  });

  it('a wrong or revoked key is a 401 that never echoes the key', async () => {
    const bad = 'cxk_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
    const res = await call('GET', '/api/v1/agents', bad);
    expect(res.status).toBe(401);
    expect(res.text).not.toContain('BBBBBBBB');
    expect(res.json.error!.code).toBe('unauthenticated');
    const garbage = await call('GET', '/api/v1/agents', 'not-a-key');
    expect(garbage.status).toBe(401);
  });

  it('a route registered without a policy stops the server from starting', async () => {
    await expect(
      startTestServer({
        dir: srv.dir,
        toml: TOML,
        flags: { dataDir: join(srv.dir, 'other-data') },
        plugins: [
          async (app) => {
            app.get('/forgotten', async () => ({ ok: true }));
          },
        ],
      }),
    ).rejects.toThrow(/route GET \/api\/v1\/forgotten has no access policy/);
  });
});

describe('roles', () => {
  // Per route class: no credentials → 401, a role without the permission → 403, one with it → success.
  const cases: {
    name: string;
    method: string;
    path: string;
    body?: unknown;
    contentType?: string;
    ok: number;
    permission: string;
  }[] = [
    { name: 'list agents', method: 'GET', path: '/api/v1/agents', ok: 200, permission: 'agents:read' },
    {
      name: 'deploy an agent',
      method: 'POST',
      path: '/api/v1/agents',
      body: 'name = "deployed-ROLE"\nsystem_prompt = "x"\n',
      contentType: 'application/toml',
      ok: 201,
      permission: 'agents:write',
    },
    {
      name: 'invoke an agent',
      method: 'POST',
      path: '/api/v1/agents/helper/invoke',
      body: { request: 'hi' },
      ok: 200,
      permission: 'agents:invoke',
    },
    {
      name: 'send a message',
      method: 'POST',
      path: '/api/v1/messages',
      body: { performative: 'inform', receiver: 'helper', content: 'hi' },
      ok: 202,
      permission: 'messages:send',
    },
    { name: 'read conversations', method: 'GET', path: '/api/v1/conversations', ok: 200, permission: 'messages:read' },
    { name: 'search memory', method: 'GET', path: '/api/v1/memory/stats', ok: 200, permission: 'memory:read' },
    {
      name: 'write memory',
      method: 'POST',
      path: '/api/v1/memory/entities',
      body: { entities: [{ name: 'e-ROLE', entityType: 't', observations: ['o'] }] },
      ok: 201,
      permission: 'memory:write',
    },
    { name: 'list tools', method: 'GET', path: '/api/v1/tools', ok: 200, permission: 'tools:read' },
    { name: 'read the configuration', method: 'GET', path: '/api/v1/config', ok: 200, permission: 'config:read' },
    { name: 'read the status', method: 'GET', path: '/api/v1/status', ok: 200, permission: 'observe:read' },
    { name: 'list keys', method: 'GET', path: '/api/v1/keys', ok: 200, permission: 'keys:manage' },
    // Admin only: no MCP server is mounted here, so the admin's answer is 404 (past the access check).
    {
      name: 'log in to a mounted MCP server',
      method: 'POST',
      path: '/api/v1/mcp/servers/none/login',
      body: { redirect_uri: 'http://127.0.0.1:1/callback' },
      ok: 404,
      permission: 'mcp:authorize',
    },
    {
      name: 'retrieve an agent as a model',
      method: 'GET',
      path: '/v1/models/helper',
      ok: 200,
      permission: 'agents:read',
    },
    {
      name: 'chat completions',
      method: 'POST',
      path: '/v1/chat/completions',
      body: { model: 'helper', messages: [{ role: 'user', content: 'hi' }] },
      ok: 200,
      permission: 'agents:invoke',
    },
  ];

  for (const c of cases) {
    it(`${c.name}: 401 without a key, 403 for roles without ${c.permission}, success for the others`, async () => {
      const body = (role: string) =>
        typeof c.body === 'string'
          ? c.body.replace('ROLE', role)
          : c.body === undefined
            ? undefined
            : JSON.parse(JSON.stringify(c.body).replace('ROLE', role));
      expect((await call(c.method, c.path, undefined, body('none'), c.contentType)).status).toBe(401);
      for (const role of ROLES) {
        const res = await call(c.method, c.path, keys[role], body(role), c.contentType);
        const allowed = ROLE_PERMISSIONS[role].has(c.permission as never);
        if (allowed) expect([c.ok, 502, 503], `${role}: ${res.text}`).toContain(res.status);
        else {
          expect(res.status, `${role}: ${res.text}`).toBe(403);
          expect(res.json.error!.details).toMatchObject({ permission: c.permission, role });
        }
      }
    });
  }

  it('a key scoped to some agents cannot use the others', async () => {
    const created = await call('POST', '/api/v1/keys', admin, {
      name: 'scoped',
      role: 'developer',
      agents: ['support-*'],
    });
    const k = created.json.secret as string;
    expect((await call('GET', '/api/v1/agents/helper', k)).status).toBe(403);
    expect((await call('POST', '/api/v1/agents/helper/invoke', k, { request: 'x' })).status).toBe(403);
    expect(
      (await call('POST', '/v1/chat/completions', k, { model: 'helper', messages: [{ role: 'user', content: 'x' }] }))
        .status,
    ).toBe(403);
    expect(
      (await call('POST', '/api/v1/messages', k, { performative: 'inform', receiver: 'helper', content: 'x' })).status,
    ).toBe(403);
    const deployed = await call(
      'POST',
      '/api/v1/agents',
      k,
      'name = "support-a"\nsystem_prompt = "x"\n',
      'application/toml',
    );
    expect(deployed.status, deployed.text).toBe(201);
    expect(
      (await call('PUT', '/api/v1/agents/helper', k, 'name = "helper"\nsystem_prompt = "y"\n', 'application/toml'))
        .status,
    ).toBe(403);
  });
});

describe('memory and tool scopes', () => {
  it('a key limited to some memory scopes must name one it may use', async () => {
    const created = await call('POST', '/api/v1/keys', admin, {
      name: 'mem-scoped',
      role: 'developer',
      memory: ['agent:helper'],
    });
    const k = created.json.secret as string;
    const entity = { entities: [{ name: 'scoped-e', entityType: 't', observations: ['o'] }] };
    const noScope = await call('POST', '/api/v1/memory/entities', k, entity);
    expect(noScope.status).toBe(403);
    expect(noScope.json.error!.details).toMatchObject({ reason: 'memory_scope' });
    expect((await call('POST', '/api/v1/memory/entities?scope=global', k, entity)).status).toBe(403);
    expect((await call('POST', '/api/v1/memory/entities?scope=agent:helper', k, entity)).status).toBe(201);
    expect((await call('GET', '/api/v1/memory/entities', k)).status).toBe(403);
    expect((await call('GET', '/api/v1/memory/entities?scope=agent:helper', k)).status).toBe(200);
  });

  it('a key limited to some tools cannot call the others directly', async () => {
    const created = await call('POST', '/api/v1/keys', admin, {
      name: 'tool-scoped',
      role: 'developer',
      tools: ['csv_parser.*'],
    });
    const k = created.json.secret as string;
    const denied = await call('POST', '/api/v1/tools/json_query/query/call', k, { args: {} });
    expect(denied.status).toBe(403);
    expect(denied.json.error!.details).toMatchObject({ reason: 'tool_scope', tool: 'json_query.query' });
    const allowed = await call('POST', '/api/v1/tools/csv_parser/parse/call', k, { args: { text: 'a,b\n1,2' } });
    expect(allowed.status, allowed.text).not.toBe(403);
  });
});

describe('keys', () => {
  it('revoke and rotate take effect at once; expired keys are refused', async () => {
    const created = await call('POST', '/api/v1/keys', admin, { name: 'short', role: 'viewer' });
    const k1 = created.json.secret as string;
    expect((await call('GET', '/api/v1/agents', k1)).status).toBe(200);
    const rotated = await call('POST', '/api/v1/keys/short/rotate', admin);
    const k2 = rotated.json.secret as string;
    expect((await call('GET', '/api/v1/agents', k1)).status).toBe(401);
    expect((await call('GET', '/api/v1/agents', k2)).status).toBe(200);
    const shown = await call('GET', '/api/v1/keys/short', admin);
    expect(shown.json.key).toMatchObject({ name: 'short', state: 'active' });
    expect((shown.json.key as { last_used_at: string | null }).last_used_at).not.toBeNull();
    expect(shown.text).not.toContain(k2.slice(-32));
    expect((await call('DELETE', '/api/v1/keys/short', admin)).status).toBe(200);
    const after = await call('GET', '/api/v1/agents', k2);
    expect(after.status).toBe(401);
    expect(after.json.error!.message).toContain('revoked');
  });

  it('a duplicate name is a 409 and a bad role a 400 naming the field', async () => {
    expect((await call('POST', '/api/v1/keys', admin, { name: 'k-viewer', role: 'viewer' })).status).toBe(409);
    const bad = await call('POST', '/api/v1/keys', admin, { name: 'x', role: 'root' });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('role');
  });
});

describe('messages from outside', () => {
  it('are sent as the authenticated principal; another sender needs impersonate', async () => {
    const own = await call('POST', '/api/v1/messages', keys.invoker, {
      performative: 'inform',
      receiver: 'helper',
      content: 'hi',
    });
    expect(own.status, own.text).toBe(202);
    const stored = await call('GET', `/api/v1/messages/${String(own.json.id)}`, admin);
    expect(stored.json.sender).toBe('key:k-invoker');
    const spoof = await call('POST', '/api/v1/messages', keys.operator, {
      performative: 'inform',
      receiver: 'helper',
      content: 'hi',
      sender: 'secy',
    });
    expect(spoof.status).toBe(403);
    expect(spoof.json.error!.details).toMatchObject({ reason: 'impersonate', field: 'sender' });
    const asAdmin = await call('POST', '/api/v1/messages', admin, {
      performative: 'inform',
      receiver: 'helper',
      content: 'hi',
      sender: 'secy',
    });
    expect(asAdmin.status).toBe(202);
    const s2 = await call('GET', `/api/v1/messages/${String(asAdmin.json.id)}`, admin);
    expect(s2.json.sender).toBe('secy');
  });
});

describe('browser safety', () => {
  function raw(
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: string,
  ): Promise<{ status: number; text: string }> {
    const u = new URL(srv.url + path);
    return new Promise((resolve, reject) => {
      const req = request({ host: u.hostname, port: u.port, method, path: u.pathname, headers }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('refuses a request for Host: evil.example (DNS rebinding), even with a valid key', async () => {
    const res = await raw('GET', '/api/v1/agents', { host: 'evil.example', authorization: `Bearer ${admin}` });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.text).error.details.reason).toBe('host_not_allowed');
    expect((await raw('GET', '/health', { host: 'evil.example:8080' })).status).toBe(403);
    expect((await raw('GET', '/health', { host: `localhost:${new URL(srv.url).port}` })).status).toBe(200);
  });

  it('refuses a cross-site text/plain POST with a foreign Origin', async () => {
    const host = new URL(srv.url).host;
    const res = await raw(
      'POST',
      '/api/v1/agents',
      { host, origin: 'https://evil.example', 'content-type': 'text/plain' },
      'name = "x"\nsystem_prompt = "y"\n',
    );
    expect(res.status).toBe(403);
    expect(JSON.parse(res.text).error.details.reason).toBe('origin_not_allowed');
    // Even with a key (a page cannot hold one, but the Origin alone decides).
    const withKey = await raw(
      'POST',
      '/api/v1/agents',
      { host, origin: 'https://evil.example', 'content-type': 'application/toml', authorization: `Bearer ${admin}` },
      'name = "x"\nsystem_prompt = "y"\n',
    );
    expect(withKey.status).toBe(403);
    // A simple content type without a credential or X-Caxton-Request header, no Origin at all.
    const simple = await raw(
      'POST',
      '/api/v1/messages',
      { host, 'content-type': 'application/x-www-form-urlencoded' },
      'a=b',
    );
    expect(simple.status).toBe(403);
    expect(JSON.parse(simple.text).error.details.reason).toBe('simple_content_type');
    // Same-origin pages (a console served by this host) are fine.
    const same = await raw('GET', '/api/v1/agents', {
      host,
      origin: `http://${host}`,
      authorization: `Bearer ${admin}`,
    });
    expect(same.status).toBe(200);
  });

  it('sends no CORS headers unless origins are configured', async () => {
    const res = await fetch(`${srv.url}/api/v1/agents`, {
      headers: { origin: 'https://evil.example', authorization: `Bearer ${admin}` },
    });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('the policy table', () => {
  it('has no entry for a route that does not exist (a stale policy hides a missing one)', async () => {
    const { ROUTE_POLICIES } = await import('../../src/auth/index.js');
    const registered = new Set(srv.server.app.accessTable.map((r) => `${r.method} ${r.url}`));
    // Served only with CORS configured or by later components.
    const optional = new Set(['OPTIONS *']);
    const stale = Object.keys(ROUTE_POLICIES).filter((k) => !registered.has(k) && !optional.has(k));
    expect(stale).toEqual([]);
  });
});
