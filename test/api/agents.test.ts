import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectErrorEnvelope, getJson, http, postAgent, putAgent, tomlAgent } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

interface Summary {
  name: string;
  version: string;
  description: string;
  capabilities: string[];
  tools: string[];
  format: string;
  origin: { kind: string; path?: string };
  revision: number;
}
interface Detail extends Summary {
  definition: Record<string, unknown> & {
    system_prompt: string;
    llm: Record<string, unknown>;
    metadata: Record<string, unknown>;
  };
}
interface List {
  agents: Summary[];
  total: number;
  limit: number;
  offset: number;
}

const FILE_AGENT = 'name = "file-agent"\ncapabilities = ["from-file"]\nsystem_prompt = "I live in a file."\n';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({
    toml: '[server]\nmax_body_size = "64KB"\n',
    agentFiles: { 'file-agent.toml': FILE_AGENT },
  });
});
afterAll(async () => {
  await t.close();
  removeTempDirs();
});

const names = async (query = '') =>
  (await getJson<List>(t.url, `/api/v1/agents${query}`)).json.agents.map((a) => a.name);

describe('agent management API', () => {
  it('deploys TOML: 201, Location header, the normalized definition', async () => {
    const res = await postAgent<{ agent: Detail; warnings: unknown[] }>(
      t.url,
      'name = "DataAnalyzer"\nversion = "1.1.0"\ndescription = "Analyzes"\ncapabilities = ["data-analysis", "reporting"]\ntools = ["http_client"]\nsystem_prompt = "You analyze."\n[limits]\ntimeout = "30s"\n',
    );
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe('/api/v1/agents/DataAnalyzer');
    // A bare server name grants that server's tools, as `http_client.*` does.
    expect(res.json.warnings).toEqual([]);
    expect(res.json.agent).toMatchObject({
      name: 'DataAnalyzer',
      version: '1.1.0',
      format: 'toml',
      origin: { kind: 'api' },
      revision: 1,
      capabilities: ['data-analysis', 'reporting'],
      tools: ['http_client'],
    });
    expect(res.json.agent.definition).toMatchObject({ system_prompt: 'You analyze.', limits: { timeout_ms: 30_000 } });

    const viaLocation = await getJson<Detail>(t.url, res.headers.get('location')!);
    expect(viaLocation.status).toBe(200);
    expect(viaLocation.json.name).toBe('DataAnalyzer');
  });

  it('deploys Markdown (text/markdown) with Claude tool mapping', async () => {
    const res = await postAgent<{ agent: Detail }>(
      t.url,
      '---\nname: md-reviewer\ndescription: Reviews\ntools: Read, Grep, TodoRead\nmodel: haiku\n---\nYou review code.\n',
      'text/markdown',
    );
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe('/api/v1/agents/md-reviewer');
    expect(res.json.agent).toMatchObject({
      name: 'md-reviewer',
      format: 'markdown',
      tools: ['workspace.read', 'workspace.grep'],
    });
    expect(res.json.agent.definition.system_prompt).toBe('You review code.');
    expect(res.json.agent.definition.llm).toEqual({ model: 'haiku' });
    expect(res.json.agent.definition.metadata.claude_tools_dropped).toEqual(['TodoRead']);
  });

  it('deploys JSON', async () => {
    const res = await postAgent<{ agent: Detail }>(
      t.url,
      JSON.stringify({ name: 'json-agent', capabilities: ['data-analysis'], system_prompt: 'JSON here.' }),
      'application/json',
    );
    expect(res.status).toBe(201);
    expect(res.json.agent).toMatchObject({ name: 'json-agent', format: 'json', revision: 1 });
  });

  it('returns warnings (e.g. a misspelt key) with a successful deploy', async () => {
    const res = await postAgent<{ agent: Detail; warnings: { code: string; field: string; suggestion?: string }[] }>(
      t.url,
      'name = "typo"\ncapabilites = ["x"]\nsystem_prompt = "p"\n',
    );
    expect(res.status).toBe(201);
    expect(res.json.warnings).toContainEqual(
      expect.objectContaining({
        code: 'unknown_key',
        field: 'capabilites',
        suggestion: 'did you mean "capabilities"?',
      }),
    );
  });

  it('lists agents sorted by name, with the file agent, and filters by capability', async () => {
    const all = await getJson<List>(t.url, '/api/v1/agents');
    expect(all.status).toBe(200);
    expect(all.json.agents.map((a) => a.name)).toEqual([
      'DataAnalyzer',
      'file-agent',
      'json-agent',
      'md-reviewer',
      'typo',
    ]);
    expect(all.json.total).toBe(5);
    expect(all.json.agents.find((a) => a.name === 'file-agent')?.origin).toMatchObject({ kind: 'file' });

    expect(await names('?capability=data-analysis')).toEqual(['DataAnalyzer', 'json-agent']);
    expect(await names('?capability=nobody-has-this')).toEqual([]);
    const page = await getJson<List>(t.url, '/api/v1/agents?limit=2&offset=1');
    expect(page.json).toMatchObject({ total: 5, limit: 2, offset: 1 });
    expect(page.json.agents.map((a) => a.name)).toEqual(['file-agent', 'json-agent']);
  });

  it('gets one agent, case-insensitively', async () => {
    for (const n of ['DataAnalyzer', 'dataanalyzer', 'DATAANALYZER']) {
      const res = await getJson<Detail>(t.url, `/api/v1/agents/${n}`);
      expect(res.status).toBe(200);
      expect(res.json.name).toBe('DataAnalyzer');
      expect(res.json.definition.system_prompt).toBe('You analyze.');
    }
  });

  it('serves the source an agent was deployed from', async () => {
    const res = await http(t.url, 'GET', '/api/v1/agents/md-reviewer/source');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/markdown');
    expect(res.text).toContain('tools: Read, Grep, TodoRead');
  });

  it('updates through PUT (revision 2), case-insensitive URL', async () => {
    const res = await putAgent<{ agent: Detail }>(
      t.url,
      'dataanalyzer',
      'name = "DataAnalyzer"\nversion = "1.2.0"\ncapabilities = ["data-analysis"]\nsystem_prompt = "You analyze, v2."\n',
    );
    expect(res.status).toBe(200);
    expect(res.json.agent).toMatchObject({ name: 'DataAnalyzer', version: '1.2.0', revision: 2 });
    const got = await getJson<Detail>(t.url, '/api/v1/agents/DataAnalyzer');
    expect(got.json).toMatchObject({ revision: 2, version: '1.2.0' });
    expect(got.json.definition.system_prompt).toBe('You analyze, v2.');
    // the dropped capability no longer routes to it
    expect(await names('?capability=reporting')).toEqual([]);
  });

  it('PUT of a name that is not deployed is 404, and deploys nothing', async () => {
    const err = expectErrorEnvelope(await putAgent(t.url, 'ghost', tomlAgent('ghost')), 404, 'agent_not_found');
    expect(err.message).toContain('ghost');
    expect((await getJson(t.url, '/api/v1/agents/ghost')).status).toBe(404);
  });

  it('PUT with a body naming another agent is rejected and the old revision still served', async () => {
    const err = expectErrorEnvelope(
      await putAgent(t.url, 'json-agent', tomlAgent('someone-else')),
      400,
      'invalid_request',
    );
    expect(err.message).toContain('someone-else');
    expect(err.message).toContain('json-agent');
    expect((await getJson<Detail>(t.url, '/api/v1/agents/json-agent')).json).toMatchObject({
      revision: 1,
      format: 'json',
    });
    expect((await getJson(t.url, '/api/v1/agents/someone-else')).status).toBe(404);
  });

  it('PUT and DELETE of a file-managed agent are 409 agent_managed_by_file; so is POST of its name', async () => {
    const put = expectErrorEnvelope(
      await putAgent(t.url, 'file-agent', FILE_AGENT.replace('I live', 'I moved')),
      409,
      'agent_managed_by_file',
    );
    expect(put.message).toContain('file-agent.toml');
    expectErrorEnvelope(await http(t.url, 'DELETE', '/api/v1/agents/FILE-AGENT'), 409, 'agent_managed_by_file');
    expectErrorEnvelope(await postAgent(t.url, FILE_AGENT), 409, 'agent_managed_by_file');
    const got = await getJson<Detail>(t.url, '/api/v1/agents/file-agent');
    expect(got.json.definition.system_prompt).toBe('I live in a file.');
    expect(got.json.origin.kind).toBe('file');
  });

  it('removes an agent (204), then it is 404 and gone from the list and capabilities', async () => {
    const del = await http(t.url, 'DELETE', '/api/v1/agents/TYPO');
    expect(del.status).toBe(204);
    expect(del.text).toBe('');
    expectErrorEnvelope(await getJson(t.url, '/api/v1/agents/typo'), 404, 'agent_not_found');
    expectErrorEnvelope(await http(t.url, 'DELETE', '/api/v1/agents/typo'), 404, 'agent_not_found');
    expect(await names()).not.toContain('typo');
  });

  it('lists capabilities with the agents providing each', async () => {
    const res = await getJson<{ capabilities: { capability: string; agents: string[] }[] }>(
      t.url,
      '/api/v1/capabilities',
    );
    expect(res.status).toBe(200);
    expect(res.json.capabilities).toEqual([
      { capability: 'data-analysis', agents: ['DataAnalyzer', 'json-agent'] },
      { capability: 'from-file', agents: ['file-agent'] },
      { capability: 'md-reviewer', agents: ['md-reviewer'] },
    ]);
  });
});

describe('validate endpoint', () => {
  it('returns every error and deploys nothing', async () => {
    const before = await getJson<List>(t.url, '/api/v1/agents');
    const res = await http<{
      valid: boolean;
      format: string;
      errors: { code: string; field?: string; line?: number; column?: number }[];
    }>(t.url, 'POST', '/api/v1/agents/validate', {
      contentType: 'application/toml',
      body: 'name = "bad/name"\nversion = "one"\ncapabilities = "x"\nsystem_prompt = "p"\n[limits]\nmax_turns = 0\n',
    });
    expect(res.status).toBe(200);
    expect(res.json.valid).toBe(false);
    expect(res.json.format).toBe('toml');
    expect(res.json.errors.map((e) => [e.field, e.line])).toEqual([
      ['name', 1],
      ['version', 2],
      ['capabilities', 3],
      ['limits.max_turns', 6],
    ]);
    for (const e of res.json.errors) expect(e.column).toBe(1);
    expect((await getJson<List>(t.url, '/api/v1/agents')).json).toEqual(before.json);
  });

  it('a valid document validates without being deployed', async () => {
    const res = await http<{ valid: boolean; name: string; format: string; warnings: unknown[] }>(
      t.url,
      'POST',
      '/api/v1/agents/validate',
      {
        contentType: 'text/markdown',
        body: '---\nname: not-deployed\ndescription: Use when: testing\n---\nPrompt\n',
      },
    );
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ valid: true, name: 'not-deployed', format: 'markdown' });
    expect(res.json.warnings).toContainEqual(expect.objectContaining({ code: 'yaml_unquoted_colon' }));
    expect((await getJson(t.url, '/api/v1/agents/not-deployed')).status).toBe(404);
  });

  it('validate of an empty body is a 400 envelope', async () => {
    expectErrorEnvelope(
      await http(t.url, 'POST', '/api/v1/agents/validate', { contentType: 'application/toml', body: '' }),
      400,
      'invalid_request',
    );
  });
});
