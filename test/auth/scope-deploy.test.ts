/**
 * Deploy scope through a real server with real keys: a key scoped to agents `a-*` may create,
 * update, roll back, promote and remove only `a-*` agents, may declare only the capabilities of its
 * capabilities scope, and may not declare a capability an agent outside its agents scope provides
 * (which would take part of that agent's traffic). Each refusal is the same 403 forbidden with a
 * reason (agent_scope, capability_scope, capability_taken), whichever route deploys, and is
 * audited as denied.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/index.js';
import { assertDeployAllowed } from '../../src/auth/index.js';
import type { Principal } from '../../src/auth/index.js';
import { http, type HttpResult } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let ts: TestServer;
let admin: string;
/** Agents `a-*` only, any capability. */
let teamA: string;
/** Agents `a-*`, capabilities `cap-a-*`. */
let teamACaps: string;

const agent = (name: string, capabilities: string[] = [], prompt = 'x') =>
  `name = "${name}"\ncapabilities = ${JSON.stringify(capabilities)}\nsystem_prompt = "${prompt}"\n`;
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const deploy = (key: string, body: string) =>
  http(ts.url, 'POST', '/api/v1/agents', { body, contentType: 'application/toml', headers: bearer(key) });
const update = (key: string, name: string, body: string, query = '') =>
  http(ts.url, 'PUT', `/api/v1/agents/${name}${query}`, {
    body,
    contentType: 'application/toml',
    headers: bearer(key),
  });

interface ErrorJson {
  error: { code: string; message: string; details: { reason?: string; agent?: string; capability?: string } };
}

function expectRefused(r: HttpResult, reason: string, names: string): ErrorJson['error'] {
  expect(r.status, r.text).toBe(403);
  const e = (r.json as ErrorJson).error;
  expect(e.code).toBe('forbidden');
  expect(e.details.reason).toBe(reason);
  expect(e.message).toContain(names);
  return e;
}

async function key(name: string, scope: Record<string, string[]>): Promise<string> {
  const r = await http<{ secret: string }>(ts.url, 'POST', '/api/v1/keys', {
    body: JSON.stringify({ name, role: 'developer', ...scope }),
    contentType: 'application/json',
    headers: bearer(admin),
  });
  expect(r.status, r.text).toBe(201);
  return r.json.secret;
}

beforeAll(async () => {
  ts = await startTestServer({ toml: '[auth]\nenabled = true\n' });
  admin = readFileSync(join(ts.dataDir, 'admin.key'), 'utf8').trim();
  teamA = await key('team-a', { agents: ['a-*'] });
  teamACaps = await key('team-a-caps', { agents: ['a-*'], capabilities: ['cap-a-*'] });
  expect((await deploy(admin, agent('b-secret', ['cap-b-secret']))).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await ts?.close();
});

describe('deploy scope', () => {
  it('refuses a key scoped to a-* deploying an agent named b-new (agent_scope), naming the agent and what to do', async () => {
    const e = expectRefused(await deploy(teamA, agent('b-new')), 'agent_scope', '"b-new"');
    expect(e.message).toMatch(/a-\*/);
    expect(e.message).toMatch(/ask an administrator|choose a name/);
    expect((await http(ts.url, 'GET', '/api/v1/agents/b-new', { headers: bearer(admin) })).status).toBe(404);
    // Its own names deploy.
    expect((await deploy(teamA, agent('a-own'))).status).toBe(201);
  });

  it("refuses a-hijack declaring b-secret's capability (capability_taken): b-secret keeps all of its traffic", async () => {
    const e = expectRefused(
      await deploy(teamA, agent('a-hijack', ['cap-b-secret'])),
      'capability_taken',
      '"cap-b-secret"',
    );
    // The provider is outside the key's scope: the refusal does not name it.
    expect(e.message).not.toContain('"b-secret"');
    expect(e.message).toContain('an agent outside its agents scope (a-*) provides it');
    expect(e.details.capability).toBe('cap-b-secret');
    const caps = await http<{ capabilities: { capability: string; agents: string[] }[] }>(
      ts.url,
      'GET',
      '/api/v1/capabilities',
      { headers: bearer(admin) },
    );
    expect(caps.json.capabilities.find((c) => c.capability === 'cap-b-secret')?.agents).toEqual(['b-secret']);
    // Nor by updating an agent of its own to declare it.
    expectRefused(
      await update(teamA, 'a-own', agent('a-own', ['cap-b-secret'], 'y')),
      'capability_taken',
      '"cap-b-secret"',
    );
    // A capability nobody outside its scope provides is its own to use.
    expect((await deploy(teamA, agent('a-worker', ['cap-a-work']))).status).toBe(201);
    expect((await deploy(teamA, agent('a-worker-2', ['cap-a-work']))).status).toBe(201);
  });

  it('refuses a capability outside the capabilities scope (capability_scope)', async () => {
    expectRefused(await deploy(teamACaps, agent('a-caps', ['cap-free'])), 'capability_scope', '"cap-free"');
    expect((await deploy(teamACaps, agent('a-caps', ['cap-a-1']))).status).toBe(201);
    // An agent declaring no capability provides one made from its name: the name's scope covers
    // it, but not when an agent outside the scope already provides it.
    const plain = 'name = "a-plain"\nsystem_prompt = "x"\n';
    expect((await deploy(teamACaps, plain)).status).toBe(201);
    expect((await deploy(admin, agent('b-squatter', ['a-taken']))).status).toBe(201);
    expectRefused(await deploy(teamA, 'name = "a-taken"\nsystem_prompt = "x"\n'), 'capability_taken', '"a-taken"');
  });

  it('gives the same answer on update, removal, rollback and promotion of an agent outside the scope', async () => {
    expectRefused(
      await update(teamA, 'b-secret', agent('b-secret', ['cap-b-secret'], 'mine now')),
      'agent_scope',
      '"b-secret"',
    );
    expectRefused(
      await http(ts.url, 'DELETE', '/api/v1/agents/b-secret', { headers: bearer(teamA) }),
      'agent_scope',
      '"b-secret"',
    );
    expectRefused(
      await http(ts.url, 'POST', '/api/v1/agents/b-secret/rollback', {
        body: '{}',
        contentType: 'application/json',
        headers: bearer(teamA),
      }),
      'agent_scope',
      '"b-secret"',
    );
    expectRefused(
      await http(ts.url, 'POST', '/api/v1/agents/b-secret/promote', { headers: bearer(teamA) }),
      'agent_scope',
      '"b-secret"',
    );
    // A body naming another agent than the URL is refused for the body's name, before anything is told about either.
    expectRefused(await update(teamA, 'a-own', agent('b-secret')), 'agent_scope', '"b-secret"');
  });

  it('refuses a rollback to a version whose capability is now provided outside the scope', async () => {
    expect((await deploy(teamA, agent('a-roll', ['cap-shared']))).status).toBe(201);
    expect((await update(teamA, 'a-roll', agent('a-roll', [], 'v2'))).status).toBe(200);
    expect((await deploy(admin, agent('b-shared', ['cap-shared']))).status).toBe(201);
    const r = await http(ts.url, 'POST', '/api/v1/agents/a-roll/rollback', {
      body: '{}',
      contentType: 'application/json',
      headers: bearer(teamA),
    });
    expectRefused(r, 'capability_taken', '"cap-shared"');
    // The administrator is not scoped: the same rollback goes through.
    expect(
      (
        await http(ts.url, 'POST', '/api/v1/agents/a-roll/rollback', {
          body: '{}',
          contentType: 'application/json',
          headers: bearer(admin),
        })
      ).status,
    ).toBe(200);
  });

  it('refuses promoting a blue-green candidate that would take a capability provided outside the scope', async () => {
    expect((await deploy(admin, agent('a-blue', [], 'v1'))).status).toBe(201);
    const started = await update(admin, 'a-blue', agent('a-blue', ['cap-b-secret'], 'v2'), '?strategy=blue-green');
    expect(started.status, started.text).toBe(200);
    expectRefused(
      await http(ts.url, 'POST', '/api/v1/agents/a-blue/promote', { headers: bearer(teamA) }),
      'capability_taken',
      '"cap-b-secret"',
    );
    expect((await http(ts.url, 'POST', '/api/v1/agents/a-blue/promote', { headers: bearer(admin) })).status).toBe(200);
  });

  it('records each refused deploy in the audit trail as denied, with its reason', async () => {
    const rows = (
      await http<{ records: AuditRecord[] }>(
        ts.url,
        'GET',
        '/api/v1/audit?principal=key:team-a&outcome=denied&limit=100',
        { headers: bearer(admin) },
      )
    ).json.records;
    const deploys = rows.filter((r) => r.action === 'agent.deploy');
    expect(deploys.map((r) => r.details?.reason).sort()).toEqual([
      'agent_scope',
      'capability_taken',
      'capability_taken',
    ]);
    expect(
      rows.some((r) => r.action === 'agent.remove' && r.target === 'b-secret' && r.details?.reason === 'agent_scope'),
    ).toBe(true);
  });
});

describe('the rule itself', () => {
  const p = (scope: Principal['scope']): Principal => ({
    id: 'key:t',
    kind: 'key',
    name: 't',
    role: 'developer',
    scope,
  });
  const none = () => [];

  it('lets an unscoped principal deploy anything, and a capability scope alone not limit names', () => {
    expect(() =>
      assertDeployAllowed(p({}), { name: 'b-x', capabilities: ['anything'] }, () => ['z-other']),
    ).not.toThrow();
    expect(() =>
      assertDeployAllowed(p({ capabilities: ['c-*'] }), { name: 'b-x', capabilities: ['c-1'] }, () => ['z-other']),
    ).not.toThrow();
  });

  it('counts only providers outside the agents scope as taking a capability', () => {
    expect(() =>
      assertDeployAllowed(p({ agents: ['a-*'] }), { name: 'a-x', capabilities: ['c'] }, () => ['a-y']),
    ).not.toThrow();
    let refusal: unknown;
    try {
      assertDeployAllowed(p({ agents: ['a-*'] }), { name: 'a-x', capabilities: ['c'] }, () => ['a-y', 'b-z']);
    } catch (e) {
      refusal = e;
    }
    expect(String(refusal)).toMatch(/an agent outside its agents scope \(a-\*\) provides it/);
    // Neither provider is named: b-z is outside what the principal sees.
    expect(String(refusal)).not.toMatch(/b-z|a-y/);
    expect(() => assertDeployAllowed(p({ agents: ['a-*'] }), { name: 'a-x' }, none)).not.toThrow();
  });
});
