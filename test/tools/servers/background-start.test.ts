/**
 * Tool servers start off the server's critical path: a server whose module has not arrived yet
 * (its file is a named pipe the test writes into when it chooses, so the load is held for as long
 * as the test needs, without timing) still answers /health and an agent request that does not
 * need the tool; its tools are listed as loading; a call to one waits for its own server and
 * succeeds once the module is there.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../../src/config/index.js';
import { startServer, type CaxtonServer } from '../../../src/server/index.js';
import { localAuthUnlessConfigured } from '../../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp.js';
import { api, ensureToolsBuilt } from './helpers.js';

const BUILTIN = join(import.meta.dirname, '../../../tools/builtin/csv_parser');

let server: CaxtonServer | undefined;
let pipe: string;
let wasm: Buffer;

beforeAll(async () => {
  ensureToolsBuilt();
  const dir = makeTempDir('caxton-tools-background-');
  // A built-in directory of one package, whose module is a named pipe: reading it waits for a writer.
  const pkg = join(dir, 'builtin', 'csv_parser');
  mkdirSync(join(pkg, 'build'), { recursive: true });
  copyFileSync(join(BUILTIN, 'caxton-tool.toml'), join(pkg, 'caxton-tool.toml'));
  wasm = readFileSync(join(BUILTIN, 'build', 'csv_parser.wasm'));
  pipe = join(pkg, 'build', 'csv_parser.wasm');
  const made = spawnSync('mkfifo', [pipe]);
  expect(made.status, made.stderr?.toString()).toBe(0);

  mkdirSync(join(dir, 'agents'));
  writeFileSync(
    join(dir, 'agents', 'echo.toml'),
    'name = "echo"\ndescription = "answers"\nsystem_prompt = "Answer."\n',
  );
  writeFileSync(join(dir, 'replies.toml'), 'fallback = "hello"\n');
  const toml =
    'agents_dir = "agents"\n[llm]\ndefault_provider = "fake"\n[llm.providers.fake]\ntype = "scripted"\nscript = "replies.toml"\n';
  writeFileSync(join(dir, 'caxton.toml'), toml);
  const config = loadServerConfig({
    file: join(dir, 'caxton.toml'),
    env: {},
    cwd: dir,
    flags: { port: 0, metricsPort: 0, logLevel: process.env.CAXTON_TEST_LOG ?? 'silent' },
  });
  localAuthUnlessConfigured(config, toml);
  server = await startServer({ config, builtinToolsDir: join(dir, 'builtin') });
});

afterAll(async () => {
  await server?.close();
  removeTempDirs();
});

describe('tool servers start in the background', () => {
  it('answers /health and an agent request before the tool server has loaded; a call waits for it, then succeeds', async () => {
    const url = server!.url;
    const health = await api(url, 'GET', '/health');
    expect(health.status).toBe(200);
    const invoked = await api(url, 'POST', '/api/v1/agents/echo/invoke', { request: 'hi' });
    expect(invoked.status, invoked.text).toBe(200);
    expect(invoked.json.content).toBe('hello');

    // Its tools are registered at once (an agent naming them deploys), the server listed as loading.
    const listed = await api(url, 'GET', '/api/v1/tools/csv_parser');
    expect(listed.status).toBe(200);
    expect(listed.json).toMatchObject({ state: 'loading', tools: ['csv_parser.parse'], error: null });
    expect(server!.executor.hostTools.get('csv_parser.parse')).toBeDefined();

    // Two calls while it loads: through the REST API and through the host tool registry, as an agent's would go.
    let settled = false;
    const rest = api(url, 'POST', '/api/v1/tools/csv_parser/parse/call', { args: { text: 'a,b\n1,2\n' } }).finally(
      () => (settled = true),
    );
    const direct = server!.executor.hostTools.invoke(
      ['csv_parser.parse'],
      'csv_parser.parse',
      { text: 'x\n3\n' },
      {
        agent: 'test',
        execution_id: 'background-start-1',
        deadline: Date.now() + 60_000,
        signal: new AbortController().signal,
      },
    );
    // Another request is answered while both wait: the module has still not arrived.
    expect((await api(url, 'GET', '/health')).status).toBe(200);
    expect(settled).toBe(false);

    await writeFile(pipe, wasm);
    const r = await rest;
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ tool: 'csv_parser.parse', is_error: false, outcome: 'ok' });
    expect(JSON.stringify(r.json.json)).toContain('"a"');
    const d = await direct;
    expect(d.is_error ?? false).toBe(false);
    expect(d.content).toContain('"x"');

    await server!.tools.ready;
    expect((await api(url, 'GET', '/api/v1/tools/csv_parser')).json).toMatchObject({
      state: 'loaded',
      tools: ['csv_parser.parse'],
    });
  });
});
