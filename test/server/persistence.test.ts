import { afterEach, describe, expect, it } from 'vitest';
import { getJson, http, postAgent, putAgent, tomlAgent } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

interface Detail {
  name: string;
  revision: number;
  version: string;
  deployed_at: string;
  updated_at: string;
  format: string;
  origin: { kind: string };
  definition: { system_prompt: string };
}

const running: TestServer[] = [];
async function start(dir: string, agentFiles?: Record<string, string>): Promise<TestServer> {
  const t = await startTestServer({ dir, ...(agentFiles && { agentFiles }) });
  running.push(t);
  return t;
}

afterEach(async () => {
  for (const t of running.splice(0)) await t.close();
  removeTempDirs();
});

describe('restart persistence', () => {
  it('API-deployed agents come back after a restart with the same data_dir, same revision and content', async () => {
    const dir = makeTempDir();
    const first = await start(dir);
    expect((await postAgent(first.url, tomlAgent('persisted'))).status).toBe(201);
    expect((await putAgent(first.url, 'persisted', tomlAgent('persisted', 'version = "1.1.0"\n'))).status).toBe(200);
    expect(
      (
        await postAgent(
          first.url,
          '---\nname: md-kept\ndescription: d\ntools: Read\n---\nMarkdown prompt\n',
          'text/markdown',
        )
      ).status,
    ).toBe(201);
    expect((await postAgent(first.url, tomlAgent('removed-before-restart'))).status).toBe(201);
    expect((await http(first.url, 'DELETE', '/api/v1/agents/removed-before-restart')).status).toBe(204);
    const before = (await getJson<Detail>(first.url, '/api/v1/agents/persisted')).json;
    expect(before.revision).toBe(2);
    await first.close();
    // The first server is closed for good: its port no longer answers.
    await expect(fetch(`${first.url}/health`)).rejects.toThrow();

    const second = await start(dir);
    expect(second.dataDir).toBe(first.dataDir);
    const after = await getJson<Detail>(second.url, '/api/v1/agents/persisted');
    expect(after.status).toBe(200);
    expect(after.json).toEqual(before);
    expect(after.json).toMatchObject({ revision: 2, version: '1.1.0', origin: { kind: 'api' } });

    const md = await getJson<Detail>(second.url, '/api/v1/agents/md-kept');
    expect(md.json).toMatchObject({ format: 'markdown', revision: 1 });
    expect(md.json.definition.system_prompt).toBe('Markdown prompt');
    expect((await http(second.url, 'GET', '/api/v1/agents/md-kept/source')).text).toContain('tools: Read');

    expect((await getJson(second.url, '/api/v1/agents/removed-before-restart')).status).toBe(404);
    const list = await getJson<{ total: number }>(second.url, '/api/v1/agents');
    expect(list.json.total).toBe(2);

    // ...and it keeps counting revisions from where it was
    const upd = await putAgent<{ agent: Detail }>(
      second.url,
      'PERSISTED',
      tomlAgent('persisted', 'version = "1.2.0"\n'),
    );
    expect(upd.json.agent.revision).toBe(3);
    expect(upd.json.agent.deployed_at).toBe(before.deployed_at);
  });

  it('file agents are loaded again from agents_dir after a restart; they are not stored', async () => {
    const dir = makeTempDir();
    const first = await start(dir, { 'filed.toml': tomlAgent('filed') });
    expect((await getJson(first.url, '/api/v1/agents/filed')).status).toBe(200);
    await first.close();

    const second = await start(dir);
    const got = await getJson<Detail>(second.url, '/api/v1/agents/filed');
    expect(got.status).toBe(200);
    expect(got.json.origin.kind).toBe('file');
    const status = await getJson<{ agents: { from_files: number; from_api: number } }>(second.url, '/api/v1/status');
    expect(status.json.agents).toMatchObject({ from_files: 1, from_api: 0 });
  });
});
