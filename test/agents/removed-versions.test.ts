/**
 * The version history of removed agents is bounded: each agent's by `[agents] keep_versions`, and
 * only the `[agents] keep_removed_agents` most recently removed agents keep theirs (older ones are
 * deleted whole, and a redeploy of such a name starts again at version 1). Repeated deploy and
 * remove cycles, of one name or of new names each time, leave the table bounded.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, tomlAgent } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

let srv: TestServer;
const rows = () => srv.server.db.prepare('SELECT COUNT(*) FROM agent_versions').pluck().get() as number;
const deploy = (name: string, extra: string, create = true) =>
  http<{ version: number }>(srv.url, create ? 'POST' : 'PUT', create ? '/api/v1/agents' : `/api/v1/agents/${name}`, {
    body: tomlAgent(name, extra),
    contentType: 'application/toml',
  });
const remove = (name: string) => http(srv.url, 'DELETE', `/api/v1/agents/${name}`);

beforeAll(async () => {
  srv = await startTestServer({
    toml: '[agents]\nkeep_versions = 3\nkeep_removed_agents = 2\n',
    agentFiles: { 'filed.toml': tomlAgent('filed') },
  });
});
afterAll(async () => {
  await srv.close();
  removeTempDirs();
});

describe('versions of removed agents', () => {
  it('deploy and remove cycles of new names keep the histories of the last keep_removed_agents removed only', async () => {
    for (let i = 0; i < 30; i++) {
      for (let v = 0; v < 4; v++)
        expect((await deploy(`cycle-${i}`, `version = "1.0.${v}"\n`, v === 0)).status).toBeLessThan(300);
      expect((await remove(`cycle-${i}`)).status).toBe(204);
      // Two removed agents' 3 versions each, and the live file agent's one.
      expect(rows()).toBeLessThanOrEqual(2 * 3 + 1);
    }
    // The two most recently removed keep their newest 3 versions, and a redeploy continues the numbering.
    expect((await http<{ total: number }>(srv.url, 'GET', '/api/v1/agents/cycle-29/versions')).json.total).toBe(3);
    expect((await http(srv.url, 'GET', '/api/v1/agents/cycle-0/versions')).status).toBe(404);
    expect((await deploy('cycle-29', 'version = "2.0.0"\n')).json.version).toBe(5);
    // An agent removed longer ago starts again.
    expect((await deploy('cycle-0', 'version = "2.0.0"\n')).json.version).toBe(1);
  });

  it('deploy and remove cycles of one name keep at most keep_versions of it', async () => {
    const before = rows();
    for (let i = 0; i < 30; i++) {
      expect((await deploy('again', `version = "1.0.${i}"\n`)).status).toBeLessThan(300);
      expect((await remove('again')).status).toBe(204);
    }
    expect(rows() - before).toBeLessThanOrEqual(3);
  });

  it('a file agent whose file is deleted is a removed agent: its history joins theirs, pushing out the oldest', async () => {
    const removedKeys = () =>
      srv.server.db.prepare('SELECT key FROM agent_version_removals ORDER BY seq DESC').pluck().all() as string[];
    const before = removedKeys();
    expect((await http<{ total: number }>(srv.url, 'GET', '/api/v1/agents/filed/versions')).json.total).toBe(1);
    rmSync(join(srv.agentsDir, 'filed.toml'));
    await waitUntil(() => removedKeys()[0] === 'filed', {
      timeoutMs: 10_000,
      what: 'the deleted file agent counted as removed',
    });
    expect(removedKeys()).toEqual(['filed', before[0]]);
    expect((await http<{ total: number }>(srv.url, 'GET', '/api/v1/agents/filed/versions')).json.total).toBe(1);
    expect((await http(srv.url, 'GET', `/api/v1/agents/${before[1]}/versions`)).status).toBe(404);
  });
});
