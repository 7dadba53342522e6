/**
 * `caxton tool ...` as real child processes (dist/cli/main.js) against a real `caxton serve`:
 * deploy a package directory, list, show, call, audit, remove; usage errors exit 2, refusals 1.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  cleanup,
  expectExit,
  expectNoStackTrace,
  parseJson,
  runCli,
  startServe,
  tempDir,
  type CliResult,
  type ServeProcess,
} from '../../cli/helpers/cli.js';
import { ensureToolsBuilt, EXAMPLE_DIR } from './helpers.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

describe('caxton tool', () => {
  let dir: string;
  let serve: ServeProcess;
  const cli = (...args: string[]): Promise<CliResult> =>
    runCli(['--server', serve.url, ...args], { cwd: dir, timeoutMs: 30_000 });

  beforeAll(async () => {
    assertBuilt();
    ensureToolsBuilt();
    dir = tempDir('caxton-tool-cli-');
    writeFileSync(join(dir, 'caxton.toml'), 'data_dir = "data"\nagents_dir = "agents"\n\n[logging]\nlevel = "warn"\n');
    mkdirSync(join(dir, 'agents'));
    serve = await startServe({ cwd: dir, args: ['--config', join(dir, 'caxton.toml')] });
  });
  afterAll(cleanup);

  it('deploy DIR deploys the package (exit 0); again replaces it', async () => {
    const r = await cli('tool', 'deploy', EXAMPLE_DIR);
    expectExit(r, 0);
    expect(r.stdout).toBe('deployed text 0.1.0 (3 tools: text.echo, text.stats, text.read_file)\n');
    expect(r.stderr).toMatch(/asks for \/data \(read\), which the operator has not mapped/);
    const again = await cli('--json', 'tool', 'deploy', join(EXAMPLE_DIR, 'caxton-tool.toml'));
    expectExit(again, 0);
    expect(parseJson<Json>(again)).toMatchObject({ name: 'text', origin: 'api', state: 'loaded' });
  });

  it('list shows built-in and deployed servers, as a table or JSON', async () => {
    const r = await cli('tool', 'list');
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^NAME\s+KIND\s+VERSION\s+ORIGIN\s+STATE\s+TOOLS\s+DESCRIPTION$/m);
    expect(r.stdout).toMatch(/^csv_parser\s+wasm\s+0\.1\.0\s+builtin\s+loaded\s+parse\s+/m);
    expect(r.stdout).toMatch(/^text\s+wasm\s+0\.1\.0\s+api\s+loaded\s+echo, stats, read_file\s+/m);
    const j = parseJson<Json>(await cli('--json', 'tool', 'list'));
    expect(j.servers.map((s: Json) => s.name)).toEqual(
      expect.arrayContaining(['chart_generator', 'csv_parser', 'text']),
    );
  });

  it('show prints tools, limits and permissions', async () => {
    const r = await cli('tool', 'show', 'text');
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^name:\s+text$/m);
    expect(r.stdout).toMatch(/^ {2}text\.stats {2}Counts the characters, words and lines of a text$/m);
    expect(r.stdout).toMatch(/^limits:\s+memory 4194304 B, fuel 10000000, timeout 2000 ms/m);
    expect(r.stdout).toMatch(/^paths:\s+requested \/data \(read\); granted \(none\)$/m);
    const missing = await cli('tool', 'show', 'nope');
    expectExit(missing, 1);
    expect(missing.stderr).toMatch(/^error: no tool server named "nope"/);
  });

  it('call prints the result (exit 0); a failing call exits 1 with the reason', async () => {
    const r = await cli(
      'tool',
      'call',
      'csv_parser.parse',
      '--args',
      '{"text": "city,temp\\nOslo,4\\n", "infer_types": true}',
    );
    expectExit(r, 0);
    expect(JSON.parse(r.stdout)).toEqual({
      columns: ['city', 'temp'],
      rows: [{ city: 'Oslo', temp: 4 }],
      row_count: 1,
      truncated: false,
    });
    const j = await cli('--json', 'tool', 'call', 'text.stats', '--args', '{"text": "a b"}');
    expectExit(j, 0);
    expect(parseJson<Json>(j)).toMatchObject({ tool: 'text.stats', outcome: 'ok', json: { words: 2 } });

    const bad = await cli('tool', 'call', 'text.stats', '--args', '{"text": 1}');
    expectExit(bad, 1);
    expect(bad.stderr).toMatch(
      /^error: tool "text\.stats" failed \(invalid_input\): the arguments do not match the input schema/,
    );
    const unknown = await cli('tool', 'call', 'text.nope');
    expectExit(unknown, 1);
    expect(unknown.stderr).toMatch(/tool server "text" has no tool "nope"/);
    expectNoStackTrace(unknown);
  });

  it('usage errors exit 2', async () => {
    for (const args of [
      ['tool', 'call', '.nodot'],
      ['tool', 'call', 'text.stats', '--args', '{not json'],
      ['tool', 'call', 'text.stats', '--args', '[1]'],
      ['tool', 'audit', '--limit', '0'],
      ['tool', 'deploy'],
    ]) {
      const r = await cli(...args);
      expectExit(r, 2);
      expectNoStackTrace(r);
    }
    // A single name is a built-in or host tool: an unknown one is not found (exit 1), not a usage error.
    const single = await cli('tool', 'call', 'nodot');
    expectExit(single, 1);
    expect(single.stderr).toMatch(/no built-in or host tool named "nodot"/);
  });

  it('deploy refuses a bad package with the reason (exit 1)', async () => {
    const pkg = tempDir('caxton-tool-pkg-');
    writeFileSync(
      join(pkg, 'caxton-tool.toml'),
      'name = "broken"\nversion = "1.0"\ndescription = "x"\nmodule = "m.wasm"\n[[tools]]\nname = "t"\ndescription = "t"\n',
    );
    const noModule = await cli('tool', 'deploy', pkg);
    expectExit(noModule, 1);
    expect(noModule.stderr).toMatch(/module file "m\.wasm" not found/);
    copyFileSync(join(EXAMPLE_DIR, 'build/text.wasm'), join(pkg, 'm.wasm'));
    const badVersion = await cli('tool', 'deploy', pkg);
    expectExit(badVersion, 1);
    expect(badVersion.stderr).toMatch(
      /caxton-tool\.toml:2:1: error: expected a semantic version such as "1\.0\.0" \[version\]/,
    );
    const nothing = await cli('tool', 'deploy', join(pkg, 'missing'));
    expectExit(nothing, 1);
    expect(nothing.stderr).toMatch(/does not exist/);
  });

  it('audit lists the calls, filtered by agent and tool', async () => {
    const r = await cli('tool', 'audit', '--agent', 'api', '--tool', 'text.*');
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^TIME\s+AGENT\s+TOOL\s+OUTCOME\s+MS\s+FUEL\s+ARGS\s+ERROR$/m);
    expect(r.stdout).toMatch(/ api\s+text\.stats\s+ok\s+/);
    expect(r.stdout).toMatch(/ api\s+text\.stats\s+invalid_input\s+/);
    expect(r.stdout).not.toMatch(/csv_parser/);
    const j = parseJson<Json>(await cli('--json', 'tool', 'audit', '--limit', '1'));
    expect(j.records).toHaveLength(1);
    expect(j.records[0]).toMatchObject({ agent: 'api' });
    // --tool-server filters by the tools' server; the global --server (given by cli()) still names Caxton.
    const byServer = parseJson<Json>(await cli('--json', 'tool', 'audit', '--tool-server', 'text'));
    expect(byServer.records.length).toBeGreaterThan(0);
    expect(byServer.records.every((r: Json) => String(r.tool).startsWith('text.'))).toBe(true);
    const other = parseJson<Json>(await cli('--json', 'tool', 'audit', '--tool-server', 'csv_parser'));
    expect(other.records.every((r: Json) => String(r.tool).startsWith('csv_parser.'))).toBe(true);
  });

  it('remove removes a deployed server (exit 0); a built-in cannot be removed (exit 1)', async () => {
    const r = await cli('tool', 'remove', 'text');
    expectExit(r, 0);
    expect(r.stdout).toBe('removed text\n');
    expectExit(await cli('tool', 'remove', 'text'), 1);
    const b = await cli('tool', 'remove', 'csv_parser');
    expectExit(b, 1);
    expect(b.stderr).toMatch(/built-in tool server/);
  });

  it('--help describes each command', async () => {
    for (const sub of ['deploy', 'list', 'show', 'call', 'remove', 'audit']) {
      const r = await runCli(['tool', sub, '--help'], { cwd: dir });
      expectExit(r, 0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: caxton tool ${sub}`, 'm'));
    }
  });
});
