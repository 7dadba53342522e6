import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectErrorEnvelope,
  getJson,
  http,
  postAgent,
  putAgent,
  rawRequest,
  tomlAgent,
  type HttpResult,
} from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

interface Issue {
  code: string;
  field?: string;
  line?: number;
  column?: number;
  suggestion?: string;
}

const EXISTING = 'name = "existing"\nversion = "1.0.0"\ncapabilities = ["testing"]\nsystem_prompt = "The original."\n';
const EXISTING_V2 = EXISTING.replace('1.0.0', '2.0.0').replace('The original.', 'Revision two.');

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({ toml: '[server]\nmax_body_size = "64KB"\n' });
  expect((await postAgent(t.url, tomlAgent('other'))).status).toBe(201);
  expect((await postAgent(t.url, EXISTING)).status).toBe(201);
  expect((await putAgent(t.url, 'existing', EXISTING_V2)).status).toBe(200);
});
afterAll(async () => {
  await t.close();
  removeTempDirs();
});

/** Everything a client can see of the stored state. */
async function snapshot() {
  const list = await getJson(t.url, '/api/v1/agents');
  const caps = await getJson(t.url, '/api/v1/capabilities');
  const existing = await getJson(t.url, '/api/v1/agents/existing');
  const source = await http(t.url, 'GET', '/api/v1/agents/existing/source');
  expect(list.status).toBe(200);
  expect(existing.status).toBe(200);
  return { list: list.json, caps: caps.json, existing: existing.json, source: source.text };
}

async function expectNothingChanged(before: Awaited<ReturnType<typeof snapshot>>) {
  const after = await snapshot();
  expect(after).toEqual(before);
  // the previous revision is still the one served
  expect(after.existing).toMatchObject({ revision: 2, version: '2.0.0' });
  expect((after.list as { total: number }).total).toBe(2);
  const health = await getJson(t.url, '/health');
  expect(health.status).toBe(200);
  // Degraded only by the provider this server has none of, never by the refused input.
  expect(health.json).toEqual({ status: 'ok', degraded: ['llm.providers'] });
}

function issues(res: HttpResult): Issue[] {
  const details = (res.json as { error: { details: { errors: Issue[] } } }).error.details;
  expect(Array.isArray(details.errors)).toBe(true);
  return details.errors;
}

const bigPrompt = 'x'.repeat(70 * 1024);

interface Case {
  label: string;
  body: string | Uint8Array;
  contentType: string;
  status: number;
  code: string;
  /** Extra checks on the response. */
  check?: (res: HttpResult) => void;
  /** Also try it as a PUT over "existing" (not for cases about the name). */
  put?: boolean;
}

const cases: Case[] = [
  {
    label: 'malformed TOML',
    body: 'name = "existing"\nsystem_prompt = "unterminated\ncapabilities = ["x"]\n',
    contentType: 'application/toml',
    status: 422,
    code: 'invalid_agent',
    put: true,
    check: (res) => expect(issues(res)[0]).toMatchObject({ code: 'toml_syntax', line: 2 }),
  },
  {
    label: 'malformed YAML frontmatter',
    body: '---\nname: existing\ntools: [Read, Write\n---\nPrompt\n',
    contentType: 'text/markdown',
    status: 422,
    code: 'invalid_agent',
    put: true,
    check: (res) => expect(issues(res)[0]!.code).toBe('yaml_syntax'),
  },
  {
    label: 'Markdown without frontmatter',
    body: '# existing\n\nNo frontmatter.\n',
    contentType: 'text/markdown',
    status: 422,
    code: 'invalid_agent',
    put: true,
    check: (res) => expect(issues(res)[0]).toMatchObject({ code: 'missing_frontmatter', line: 1, column: 1 }),
  },
  {
    label: 'malformed JSON',
    body: '{"name": "existing", "system_prompt" "p"}',
    contentType: 'application/json',
    status: 422,
    code: 'invalid_agent',
    put: true,
    check: (res) => expect(issues(res)[0]).toMatchObject({ code: 'json_syntax', line: 1, column: 38 }),
  },
  {
    label: 'JSON that is not an object',
    body: '["existing"]',
    contentType: 'application/json',
    status: 422,
    code: 'invalid_agent',
    put: true,
  },
  {
    label: 'wrong types',
    body: 'name = "existing"\nsystem_prompt = "p"\ncapabilities = "x"\n[llm]\ntemperature = "hot"\n[limits]\nmax_turns = 0\n',
    contentType: 'application/toml',
    status: 422,
    code: 'invalid_agent',
    put: true,
    check: (res) =>
      expect(issues(res).map((i) => [i.field, i.line])).toEqual([
        ['capabilities', 3],
        ['llm.temperature', 5],
        ['limits.max_turns', 7],
      ]),
  },
  {
    label: 'system_prompt after [memory]',
    body: 'name = "existing"\ncapabilities = ["x"]\n[memory]\nenabled = true\nsystem_prompt = "p"\n',
    contentType: 'application/toml',
    status: 422,
    code: 'invalid_agent',
    put: true,
    check: (res) =>
      expect(issues(res)[0]).toMatchObject({ code: 'misplaced_key', field: 'memory.system_prompt', line: 5 }),
  },
  {
    label: 'non-UTF-8 body',
    body: Buffer.concat([Buffer.from('name = "existing"\nsystem_prompt = "caf'), Buffer.from([0xe9, 0x22, 0x0a])]),
    contentType: 'application/toml',
    status: 422,
    code: 'invalid_agent',
    put: true,
    check: (res) => expect(issues(res)[0]).toMatchObject({ code: 'not_utf8', line: 2, column: 21 }),
  },
  {
    label: 'oversized body',
    body: `name = "existing"\ncapabilities = ["x"]\nsystem_prompt = """${bigPrompt}"""\n`,
    contentType: 'application/toml',
    status: 413,
    code: 'payload_too_large',
    put: true,
    check: (res) =>
      expect((res.json as { error: { details: { limit_bytes: number } } }).error.details.limit_bytes).toBe(65_536),
  },
  { label: 'empty body', body: '', contentType: 'application/toml', status: 400, code: 'invalid_request', put: true },
  {
    label: 'unsupported content type',
    body: EXISTING_V2,
    contentType: 'image/png',
    status: 415,
    code: 'unsupported_media_type',
    put: true,
  },
  {
    label: 'duplicate name, same case',
    body: tomlAgent('existing'),
    contentType: 'application/toml',
    status: 409,
    code: 'agent_exists',
  },
  {
    label: 'duplicate name, different case',
    body: tomlAgent('EXISTING'),
    contentType: 'application/toml',
    status: 409,
    code: 'agent_exists',
  },
  {
    label: 'duplicate name in another format',
    body: '---\nname: Existing\n---\nPrompt\n',
    contentType: 'text/markdown',
    status: 409,
    code: 'agent_exists',
  },
  {
    label: 'name with a path separator',
    body: tomlAgent('agents/evil'),
    contentType: 'application/toml',
    status: 422,
    code: 'invalid_agent',
    check: (res) => expect(issues(res)[0]).toMatchObject({ field: 'name', line: 1, column: 1 }),
  },
  {
    label: 'name with a backslash',
    body: 'name = "agents\\\\evil"\ncapabilities = ["x"]\nsystem_prompt = "p"\n',
    contentType: 'application/toml',
    status: 422,
    code: 'invalid_agent',
    check: (res) => expect(issues(res)[0]!.field).toBe('name'),
  },
  {
    label: 'name with ..',
    body: JSON.stringify({ name: '../etc/passwd', system_prompt: 'p' }),
    contentType: 'application/json',
    status: 422,
    code: 'invalid_agent',
    check: (res) => expect(issues(res).every((i) => i.field === 'name')).toBe(true),
  },
];

describe('bad input is rejected with a clear error and changes nothing', () => {
  for (const c of cases) {
    it(`POST: ${c.label} → ${c.status} ${c.code}`, async () => {
      const before = await snapshot();
      const res = await postAgent(t.url, c.body, c.contentType);
      const err = expectErrorEnvelope(res, c.status, c.code);
      expect(err.message).not.toMatch(/\bat .*\.(ts|js):\d+/); // no stack traces
      c.check?.(res);
      await expectNothingChanged(before);
    });
    if (c.put) {
      it(`PUT over an existing agent: ${c.label} → ${c.status} ${c.code}, previous revision still served`, async () => {
        const before = await snapshot();
        const res = await putAgent(t.url, 'existing', c.body, c.contentType);
        expectErrorEnvelope(res, c.status, c.code);
        c.check?.(res);
        await expectNothingChanged(before);
      });
    }
  }

  it('POST with a body but no content type at all is 415', async () => {
    const before = await snapshot();
    const res = await rawRequest(t.url, 'POST', '/api/v1/agents', { body: tomlAgent('no-type') });
    expectErrorEnvelope(res, 415, 'unsupported_media_type');
    await expectNothingChanged(before);
  });

  it('a PUT whose body names another agent is rejected', async () => {
    const before = await snapshot();
    expectErrorEnvelope(await putAgent(t.url, 'existing', tomlAgent('other')), 400, 'invalid_request');
    await expectNothingChanged(before);
  });
});

describe('path separators and .. in the URL', () => {
  const paths = [
    '/api/v1/agents/..%2Fetc',
    '/api/v1/agents/..%2F..%2Fetc%2Fpasswd',
    '/api/v1/agents/..',
    '/api/v1/agents/%2e%2e',
    '/api/v1/agents/..%5Cexisting',
    '/api/v1/agents/a%2Fb',
    '/api/v1/agents/../existing',
    '/api/v1/agents/%ff',
    `/api/v1/agents/${'a'.repeat(300)}`,
  ];
  for (const method of ['GET', 'DELETE']) {
    for (const path of paths) {
      it(`${method} ${path.slice(0, 60)} → clean 4xx envelope, nothing removed`, async () => {
        const before = await snapshot();
        const res = await rawRequest(t.url, method, path);
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        expectErrorEnvelope(res, res.status, (res.json as { error: { code: string } }).error.code);
        await expectNothingChanged(before);
      });
    }
  }

  it('PUT /api/v1/agents/..%2Fetc is rejected and deploys nothing', async () => {
    const before = await snapshot();
    const a = await rawRequest(t.url, 'PUT', '/api/v1/agents/..%2Fetc', {
      body: tomlAgent('etc'),
      headers: { 'content-type': 'application/toml' },
    });
    expectErrorEnvelope(a, 400, 'invalid_request');
    const b = await rawRequest(t.url, 'PUT', '/api/v1/agents/..%2Fetc', {
      body: JSON.stringify({ name: '../etc', system_prompt: 'p' }),
      headers: { 'content-type': 'application/json' },
    });
    expectErrorEnvelope(b, 422, 'invalid_agent');
    await expectNothingChanged(before);
  });
});

describe('error envelope', () => {
  it('unknown routes are 404 route_not_found', async () => {
    const a = expectErrorEnvelope(await getJson(t.url, '/api/v1/nope'), 404, 'route_not_found');
    expect(a.message).toContain('/api/v1/nope');
    expectErrorEnvelope(
      await http(t.url, 'PATCH', '/api/v1/agents/existing', { body: '{}', contentType: 'application/json' }),
      404,
      'route_not_found',
    );
    expectErrorEnvelope(
      await http(t.url, 'POST', '/nope', { body: 'x', contentType: 'image/png' }),
      404,
      'route_not_found',
    );
  });

  it("keeps the server's request id whatever x-request-id the client sends; refuses a malformed one", async () => {
    const a = await http(t.url, 'GET', '/api/v1/agents/ghost', { headers: { 'x-request-id': 'client-req-42' } });
    expect(expectErrorEnvelope(a, 404, 'agent_not_found').request_id).not.toBe('client-req-42');
    const b = await http(t.url, 'GET', '/api/v1/agents/ghost', { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(expectErrorEnvelope(b, 400, 'invalid_request').message).toContain('X-Request-Id');
  });

  it('each request gets its own id', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++)
      ids.add(expectErrorEnvelope(await getJson(t.url, '/api/v1/agents/ghost'), 404, 'agent_not_found').request_id);
    expect(ids.size).toBe(5);
  });

  it('a bad query string is a 400 envelope naming the parameter', async () => {
    const err = expectErrorEnvelope(await getJson(t.url, '/api/v1/agents?limit=0'), 400, 'invalid_request');
    expect(err.message).toContain('limit');
  });
});
