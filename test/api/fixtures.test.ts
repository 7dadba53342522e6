import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claudeAgentFiles, claudeAgentsDir, EXPECTED_FIXTURE_COUNT } from '../helpers/fixtures.js';
import { getJson, http, postAgent } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t.close();
  removeTempDirs();
});

describe('community Claude Code subagents through the API', () => {
  it(`deploys all ${EXPECTED_FIXTURE_COUNT} fixtures as text/markdown (all 201) and lists them`, async () => {
    const files = claudeAgentFiles();
    expect(files).toHaveLength(EXPECTED_FIXTURE_COUNT);
    const failures: string[] = [];
    const deployed: string[] = [];
    for (const file of files) {
      const res = await postAgent<{ agent: { name: string; format: string } }>(
        t.url,
        readFileSync(file),
        'text/markdown',
      );
      if (res.status !== 201)
        failures.push(`${relative(claudeAgentsDir, file)}: ${res.status} ${res.text.slice(0, 300)}`);
      else {
        expect(res.json.agent.format).toBe('markdown');
        deployed.push(res.json.agent.name);
      }
    }
    expect(failures, failures.join('\n')).toEqual([]);

    const list = await getJson<{ agents: { name: string; origin: { kind: string } }[]; total: number }>(
      t.url,
      '/api/v1/agents',
    );
    expect(list.json.total).toBe(EXPECTED_FIXTURE_COUNT);
    expect(list.json.agents.map((a) => a.name).sort()).toEqual([...deployed].sort());
    expect(list.json.agents.every((a) => a.origin.kind === 'api')).toBe(true);

    // The original text is kept byte for byte
    const first = files[0]!;
    const src = await http(t.url, 'GET', `/api/v1/agents/${encodeURIComponent(deployed[0]!)}/source`);
    expect(src.text).toBe(readFileSync(first, 'utf8'));
  });
});
