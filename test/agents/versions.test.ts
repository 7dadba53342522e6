/**
 * Agent versions on a real server with authentication: every API deploy, file
 * change and rollback is a version with its hash, semver, principal and how; identical content is
 * a no-op that says so; history, one version, diff and rollback over REST and the real CLI; the bad
 * inputs (unknown version, nothing earlier, a file agent, a bad body) change nothing; versions and
 * the numbering survive a restart and the agent's removal; `[agents] keep_versions` bounds them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentVersion } from '../../src/agents/index.js';
import { http, tomlAgent } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import { assertBuilt, runCli } from '../cli/helpers/cli.js';

let srv: TestServer;
let admin: string;
const as = (key: string) => ({ authorization: `Bearer ${key}` });

type Version = AgentVersion;
interface History {
  agent: string;
  current: number | null;
  versions: Version[];
  total: number;
}

const api = <T = unknown>(method: string, path: string, body?: string, contentType = 'application/toml') =>
  http<T>(srv.url, method, path, { headers: as(admin), ...(body !== undefined && { body, contentType }) });
const history = async (name: string) => (await api<History>('GET', `/api/v1/agents/${name}/versions`)).json;
const cli = (...args: string[]) =>
  runCli(['--server', srv.url, ...args], { cwd: srv.dir, env: { CAXTON_API_KEY: admin } });

const v1 = tomlAgent('writer', 'version = "1.0.0"\n');
const v2 = tomlAgent('writer', 'version = "1.1.0"\n').replace('You are writer.', 'You are writer. Be terse.');

beforeAll(async () => {
  assertBuilt();
  srv = await startTestServer({
    toml: '[auth]\nenabled = true\n\n[agents]\nkeep_versions = 5\n',
    agentFiles: { 'filed.toml': tomlAgent('filed') },
  });
  admin = readFileSync(join(srv.dataDir, 'admin.key'), 'utf8').trim();
});

afterAll(async () => {
  await srv?.close();
  removeTempDirs();
});

describe('versions of an API-deployed agent', () => {
  it('records each deploy with hash, semver, principal and how; identical content is a no-op that says so', async () => {
    const created = await api<{ version: number }>('POST', '/api/v1/agents', v1);
    expect(created.status, created.text).toBe(201);
    expect(created.json.version).toBe(1);
    const same = await api<{ version: number; unchanged: boolean; message: string; agent: { revision: number } }>(
      'PUT',
      '/api/v1/agents/writer',
      v1,
    );
    expect(same.status).toBe(200);
    expect(same.json).toMatchObject({ version: 1, unchanged: true, agent: { revision: 1 } });
    expect(same.json.message).toContain('identical to version 1');
    // The same definition written differently (another key order, a comment) is the same content.
    const reordered = `# a comment\nsystem_prompt = "You are writer."\n${v1.replace('system_prompt = "You are writer."\n', '')}`;
    expect((await api<{ unchanged: boolean }>('PUT', '/api/v1/agents/writer', reordered)).json.unchanged).toBe(true);
    const updated = await api<{ version: number; unchanged?: boolean }>('PUT', '/api/v1/agents/writer', v2);
    expect(updated.json).toMatchObject({ version: 2 });
    expect(updated.json.unchanged).toBeUndefined();

    const h = await history('writer');
    expect(h).toMatchObject({ agent: 'writer', current: 2, total: 2 });
    expect(h.versions.map((v) => [v.version, v.semver, v.how, v.origin, v.deployed_by])).toEqual([
      [2, '1.1.0', 'api', 'api', 'key:admin'],
      [1, '1.0.0', 'api', 'api', 'key:admin'],
    ]);
    expect(h.versions[0]!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(h.versions[0]!.hash).not.toBe(h.versions[1]!.hash);
    const one = await api<{ source: string; definition: { system_prompt: string } }>(
      'GET',
      '/api/v1/agents/writer/versions/1',
    );
    expect(one.json.source).toBe(v1);
    expect(one.json.definition.system_prompt).toBe('You are writer.');
  });

  it('diffs two versions: the changed fields and a unified diff of the text', async () => {
    const d = await api<{
      from: number;
      to: number;
      changes: { field: string; from: unknown; to: unknown }[];
      source_diff: string;
    }>('GET', '/api/v1/agents/writer/diff');
    expect(d.status, d.text).toBe(200);
    expect(d.json).toMatchObject({ from: 1, to: 2 });
    expect(d.json.changes).toEqual([
      { field: 'system_prompt', from: 'You are writer.', to: 'You are writer. Be terse.' },
      { field: 'version', from: '1.0.0', to: '1.1.0' },
    ]);
    expect(d.json.source_diff).toContain('-system_prompt = "You are writer."');
    expect(d.json.source_diff).toContain('+system_prompt = "You are writer. Be terse."');
    const text = await cli('agent', 'diff', 'writer', '1', '2');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('writer: version 1 → 2');
    expect(text.stdout).toContain('~ system_prompt: "You are writer." → "You are writer. Be terse."');
  });

  it('rolls back to the previous content in one command, as a new version that the agent now runs', async () => {
    const r = await cli('agent', 'rollback', 'writer');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^rolled back writer to version 1 \(deployed .*\); now version 3$/m);
    expect(
      (await api<{ definition: { system_prompt: string } }>('GET', '/api/v1/agents/writer')).json.definition
        .system_prompt,
    ).toBe('You are writer.');
    const h = await history('writer');
    expect(h.versions[0]).toMatchObject({
      version: 3,
      how: 'rollback',
      restored_from: 1,
      semver: '1.0.0',
      deployed_by: 'key:admin',
      hash: h.versions[2]!.hash,
    });
    // Rolling back again switches back: the newest version whose content differs is 2.
    const again = await api<{ restored: { version: number }; version: { version: number } }>(
      'POST',
      '/api/v1/agents/writer/rollback',
    );
    expect(again.status, again.text).toBe(200);
    expect(again.json).toMatchObject({ restored: { version: 2 }, version: { version: 4 } });
    const listed = await cli('agent', 'history', 'writer');
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/^4 \(current\)\s+\S+ \S+\s+rollback to 2\s+key:admin\s+1\.1\.0/m);
    const json = await cli('--json', 'agent', 'history', 'writer');
    expect((JSON.parse(json.stdout) as History).versions.map((v) => v.version)).toEqual([4, 3, 2, 1]);
  });

  it('refuses bad rollbacks clearly and changes nothing', async () => {
    const before = await history('writer');
    const unknown = await api<{ error: { code: string; message: string } }>(
      'POST',
      '/api/v1/agents/writer/rollback',
      '{"to": 99}',
      'application/json',
    );
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toMatchObject({ code: 'version_not_found' });
    expect(unknown.json.error.message).toContain('has no version 99');
    const same = await api<{ error: { code: string } }>(
      'POST',
      '/api/v1/agents/writer/rollback',
      '{"to": 2}',
      'application/json',
    );
    expect(same.status).toBe(409);
    const bad = await api<{ error: { code: string; message: string } }>(
      'POST',
      '/api/v1/agents/writer/rollback',
      '{"to": "one"}',
      'application/json',
    );
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toContain('to');
    const cliBad = await cli('agent', 'rollback', 'writer', '--to', 'latest');
    expect(cliBad.code).not.toBe(0);
    expect(cliBad.stderr).toContain('--to must be a version number');
    expect(cliBad.stderr).not.toMatch(/\n\s+at /);
    expect((await api('GET', '/api/v1/agents/nobody/versions')).status).toBe(404);
    expect((await api('GET', '/api/v1/agents/writer/versions/77')).status).toBe(404);
    // A new agent has nothing earlier.
    await api('POST', '/api/v1/agents', tomlAgent('fresh'));
    const none = await api<{ error: { code: string; message: string } }>('POST', '/api/v1/agents/fresh/rollback');
    expect(none.status).toBe(409);
    expect(none.json.error.code).toBe('no_earlier_version');
    expect(await history('writer')).toEqual(before);
  });

  it('keeps at most [agents] keep_versions per agent, the oldest going first', async () => {
    for (let i = 0; i < 4; i++)
      await api('PUT', '/api/v1/agents/writer', tomlAgent('writer', `version = "2.0.${i}"\n`));
    const h = await history('writer');
    expect(h.total).toBe(5);
    expect(h.versions.map((v) => v.version)).toEqual([8, 7, 6, 5, 4]);
  });

  it('keeps the history and the numbering across removal and redeploy', async () => {
    expect((await api('DELETE', '/api/v1/agents/writer')).status).toBe(204);
    const gone = await history('writer');
    expect(gone.current).toBeNull();
    expect(gone.versions[0]!.version).toBe(8);
    expect((await api<{ version: number }>('POST', '/api/v1/agents', v1)).json.version).toBe(9);
  });
});

describe('versions of a file agent', () => {
  it('records a version when the file content changes, not when the same content is written again', async () => {
    expect((await history('filed')).versions.map((v) => [v.version, v.how, v.origin])).toEqual([[1, 'file', 'file']]);
    const file = join(srv.agentsDir, 'filed.toml');
    writeFileSync(file, tomlAgent('filed', 'version = "0.2.0"\n'));
    await waitUntil(async () => (await history('filed')).total === 2, {
      timeoutMs: 10_000,
      what: 'the file change recorded as version 2',
    });
    expect((await history('filed')).versions[0]).toMatchObject({
      version: 2,
      how: 'file',
      semver: '0.2.0',
      deployed_by: null,
      path: file,
    });
    // The same content again (a comment added): no version, and the agent is not reloaded. A real
    // change after it is the marker: once that applied, the touch before it had been seen too.
    const revision = (await api<{ revision: number }>('GET', '/api/v1/agents/filed')).json.revision;
    const before = new Date().toISOString();
    writeFileSync(file, `# touched\n${tomlAgent('filed', 'version = "0.2.0"\n')}`);
    await waitUntil(
      () => srv.server.service.files.fileStatuses().some((f) => f.path === file && f.updated_at > before),
      { timeoutMs: 10_000, what: 'the touched file seen by the watcher' },
    );
    expect((await history('filed')).total).toBe(2);
    writeFileSync(file, tomlAgent('filed', 'version = "0.3.0"\n'));
    await waitUntil(async () => (await history('filed')).total === 3, {
      timeoutMs: 10_000,
      what: 'the next change recorded as version 3',
    });
    expect((await history('filed')).versions.map((v) => v.semver)).toEqual(['0.3.0', '0.2.0', '1.0.0']);
    expect((await api<{ revision: number }>('GET', '/api/v1/agents/filed')).json.revision).toBe(revision + 1);
  });

  it('refuses a rollback of a file agent and says how to restore the file', async () => {
    const r = await api<{ error: { code: string; message: string } }>('POST', '/api/v1/agents/filed/rollback');
    expect(r.status).toBe(409);
    expect(r.json.error.code).toBe('agent_managed_by_file');
    expect(r.json.error.message).toContain('restoring the file');
  });
});
