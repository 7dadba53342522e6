import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  cleanup,
  expectExit,
  expectNoStackTrace,
  markdownAgent,
  parseJson,
  repoRoot,
  runCli,
  tempDir,
  tomlAgent,
} from './helpers/cli.js';

interface ValidateJson {
  valid: boolean;
  files: {
    file: string;
    valid: boolean;
    format: string;
    name?: string;
    errors: { code: string; field?: string; line?: number; column?: number; message: string; file?: string }[];
  }[];
}

let dir: string;
beforeAll(() => {
  assertBuilt();
  dir = tempDir('caxton-validate-');
  writeFileSync(join(dir, 'good.toml'), tomlAgent('good-toml'));
  writeFileSync(join(dir, 'good.md'), markdownAgent('good-md'));
  // capabilities is a string, not an array (line 3); version is a number (line 5).
  writeFileSync(
    join(dir, 'bad.toml'),
    'name = "bad"\ndescription = "broken"\ncapabilities = "testing"\nsystem_prompt = "hi"\nversion = 3\n',
  );
  // The classic mistake: system_prompt after the [llm] header lands inside [llm].
  writeFileSync(
    join(dir, 'misplaced.toml'),
    'name = "misplaced"\ndescription = "x"\ncapabilities = ["a"]\n\n[llm]\ntemperature = 0.2\nsystem_prompt = "You are lost."\n',
  );
  // 0xFF 0xFE is never valid UTF-8 (a Latin-1 or UTF-16 file saved by mistake).
  writeFileSync(
    join(dir, 'latin1.toml'),
    Buffer.concat([Buffer.from('name = "caf'), Buffer.from([0xe9]), Buffer.from('"\ndescription = "x"\n')]),
  );
});
afterAll(cleanup);

describe('caxton agent validate (offline, no server)', () => {
  it('valid TOML and Markdown files exit 0 with one "ok" line each', async () => {
    const r = await runCli(['agent', 'validate', 'good.toml', 'good.md'], { cwd: dir });
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^ok\s+good\.toml \(good-toml, toml\)$/m);
    expect(r.stdout).toMatch(/^ok\s+good\.md \(good-md, markdown\)$/m);
    expect(r.stdout).toMatch(/2 valid, 0 invalid/);
    expect(r.stderr).toBe('');
  });

  it('an invalid file exits 1; stderr has file:line:column and the field of each error', async () => {
    const r = await runCli(['agent', 'validate', 'bad.toml'], { cwd: dir });
    expectExit(r, 1);
    expect(r.stderr).toMatch(/invalid\s+bad\.toml/);
    expect(r.stderr).toMatch(/bad\.toml:3:1: error: .*\[capabilities\]/);
    expect(r.stderr).toMatch(/bad\.toml:5:1: error: .*\[version\]/);
    expect(r.stdout).toMatch(/0 valid, 1 invalid/);
    expectNoStackTrace(r);
  });

  it('a mix of valid and invalid files exits 1 and still reports the valid ones', async () => {
    const r = await runCli(['agent', 'validate', 'good.toml', 'bad.toml', 'good.md'], { cwd: dir });
    expectExit(r, 1);
    expect(r.stdout).toMatch(/^ok\s+good\.toml/m);
    expect(r.stdout).toMatch(/^ok\s+good\.md/m);
    expect(r.stdout).toMatch(/2 valid, 1 invalid/);
  });

  it('--json before the command prints parseable JSON with valid:false and the errors array', async () => {
    const r = await runCli(['--json', 'agent', 'validate', 'bad.toml', 'good.toml'], { cwd: dir });
    expectExit(r, 1);
    const body = parseJson<ValidateJson>(r);
    expect(body.valid).toBe(false);
    expect(body.files.map((f) => [f.file, f.valid])).toEqual([
      ['bad.toml', false],
      ['good.toml', true],
    ]);
    const errors = body.files[0]!.errors;
    expect(errors.length).toBe(2);
    expect(errors.map((e) => e.field).sort()).toEqual(['capabilities', 'version']);
    const caps = errors.find((e) => e.field === 'capabilities')!;
    expect(caps).toMatchObject({ line: 3, column: 1, file: 'bad.toml' });
    expect(typeof caps.code).toBe('string');
    expect(body.files[1]).toMatchObject({ name: 'good-toml', format: 'toml', errors: [] });
  });

  it('--json with only valid files prints valid:true and exits 0', async () => {
    const r = await runCli(['--json', 'agent', 'validate', 'good.toml', 'good.md'], { cwd: dir });
    expectExit(r, 0);
    const body = parseJson<ValidateJson>(r);
    expect(body.valid).toBe(true);
    expect(body.files.map((f) => f.name)).toEqual(['good-toml', 'good-md']);
  });

  it('a folder is read as agents_dir is: two files of one name, the second invalid naming the first (as the server says)', async () => {
    const folder = join(dir, 'team');
    mkdirSync(join(folder, 'skills'), { recursive: true });
    writeFileSync(join(folder, 'a.toml'), tomlAgent('helper'));
    writeFileSync(join(folder, 'b.md'), markdownAgent('Helper'));
    // Not agents: a skill is left out, as the server leaves it out.
    writeFileSync(join(folder, 'skills', 'SKILL.md'), '# a skill\n');
    const r = await runCli(['--json', 'agent', 'validate', 'team'], { cwd: dir });
    expectExit(r, 1);
    const body = parseJson<ValidateJson>(r);
    expect(body.files.map((f) => [f.file, f.valid])).toEqual([
      [join('team', 'a.toml'), true],
      [join('team', 'b.md'), false],
    ]);
    expect(body.files[1]!.errors).toEqual([
      expect.objectContaining({
        code: 'duplicate_name',
        field: 'name',
        message: `agent name "Helper" is already used by the file ${join('team', 'a.toml')}`,
      }),
    ]);
    const empty = join(dir, 'empty');
    mkdirSync(empty, { recursive: true });
    const none = await runCli(['agent', 'validate', 'empty'], { cwd: dir });
    expectExit(none, 1);
    expect(none.stderr).toContain('empty holds no agent files');
  });

  it('system_prompt written after a [table] header gets the explanatory message', async () => {
    const r = await runCli(['agent', 'validate', 'misplaced.toml'], { cwd: dir });
    expectExit(r, 1);
    expect(r.stderr).toMatch(/misplaced\.toml:7:1:/);
    expect(r.stderr).toContain(
      '"system_prompt" is inside the [llm] table because it comes after the [llm] header on line 5',
    );
    expect(r.stderr).toMatch(/move system_prompt = \.\.\. above the first \[table\] header/);
  });

  it('a nonexistent file exits 1 with a clear message, no stack trace', async () => {
    const r = await runCli(['agent', 'validate', 'does-not-exist.toml'], { cwd: dir });
    expectExit(r, 1);
    expect(r.stderr).toMatch(/cannot read does-not-exist\.toml: no such file/);
    expectNoStackTrace(r);
  });

  it('a file that is not UTF-8 exits 1 with a clear error and its position', async () => {
    const r = await runCli(['agent', 'validate', 'latin1.toml'], { cwd: dir });
    expectExit(r, 1);
    expect(r.stderr).toMatch(/latin1\.toml:1:\d+: error: .*not valid UTF-8/);
    expectNoStackTrace(r);
  });

  it('a tool that resolves to nothing is an error with a did-you-mean; built-in tools and servers resolve, bare names too', async () => {
    const tools = join(dir, 'tools');
    mkdirSync(tools);
    writeFileSync(
      join(tools, 'typo.toml'),
      tomlAgent('typo', {
        extra:
          'tools = ["calculater", "csv_parser.parse", "csv_parser", "http_client.*", "send_message", "workspace.read"]\n',
      }),
    );
    writeFileSync(
      join(tools, 'mounted.toml'),
      tomlAgent('mounted', { extra: 'tools = ["github.*", "github.create_issue"]\n' }),
    );
    writeFileSync(join(tools, 'claude.md'), '---\nname: claudish\ndescription: d\ntools: Read, calculater\n---\nHi.\n');
    const r = await runCli(['--json', 'agent', 'validate', 'typo.toml', 'mounted.toml', 'claude.md'], { cwd: tools });
    expectExit(r, 1);
    const body = parseJson<ValidateJson & { config: string | null }>(r);
    expect(body.config).toBeNull();
    const [typo, mounted, claude] = body.files;
    expect(typo!.valid).toBe(false);
    expect(typo!.errors).toEqual([
      expect.objectContaining({
        code: 'tool_unresolved',
        field: 'tools.0',
        message: expect.stringContaining('did you mean "calculator"?'),
      }),
    ]);
    // No caxton.toml: no MCP server is mounted, and the error says how to mount one.
    expect(mounted!.valid).toBe(false);
    expect(mounted!.errors[0]!.message).toContain('"github.*"');
    expect((mounted!.errors[0] as { suggestion?: string }).suggestion).toContain('[mcp_servers.github]');
    // A Claude Code file loads as Claude Code loads it: the unknown tool ignored, with a warning.
    expect(claude!.valid).toBe(true);
    expect(
      (claude as unknown as { warnings: { code: string; message: string }[] }).warnings.filter(
        (w) => w.code === 'tool_unresolved',
      ),
    ).toEqual([
      expect.objectContaining({
        code: 'tool_unresolved',
        message: expect.stringContaining('did you mean "calculator"?'),
      }),
    ]);

    // The caxton.toml beside (or above) the files names the servers they may use.
    writeFileSync(
      join(dir, 'caxton.toml'),
      '[mcp_servers.github]\ncommand = "github-mcp"\n[llm.providers.main]\ntype = "scripted"\nscript = "replies.toml"\n',
    );
    const found = await runCli(['--json', 'agent', 'validate', 'mounted.toml'], { cwd: tools });
    expectExit(found, 0);
    expect(parseJson<{ config: string }>(found).config).toBe(join(dir, 'caxton.toml'));
    const given = await runCli(['agent', 'validate', '--config', join(dir, 'caxton.toml'), 'mounted.toml'], {
      cwd: tools,
    });
    expectExit(given, 0);
    rmSync(join(dir, 'caxton.toml'));
  });

  it('every bundled example and template agent is valid', async () => {
    const dirs = [
      join(repoRoot, 'examples/agents'),
      ...readdirSync(join(repoRoot, 'templates'))
        .map((t) => join(repoRoot, 'templates', t, 'agents'))
        .filter((d) => existsSync(d)),
    ]; // tool templates hold no agents
    const files = dirs.flatMap((d) => readdirSync(d).map((f) => join(d, f)));
    expect(files.length).toBeGreaterThanOrEqual(5);
    // Each folder against the caxton.toml shipped beside it: the grants its agents' tools need are there.
    for (const d of dirs) {
      const here = readdirSync(d).map((f) => join(d, f));
      const r = await runCli(['agent', 'validate', ...here, '--config', join(d, '..', 'caxton.toml')], { cwd: dir });
      expectExit(r, 0);
      expect(r.stdout).toContain(`${here.length} valid, 0 invalid`);
      for (const f of here) expect(r.stdout).toContain(`ok       ${f}`);
      // No warnings either: the shipped files should be exemplary.
      expect(r.stderr).toBe('');
    }
  });
});
