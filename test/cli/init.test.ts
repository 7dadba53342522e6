import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  cleanEnv,
  cleanup,
  CLI,
  expectExit,
  expectNoStackTrace,
  parseJson,
  repoRoot,
  runCli,
  startServe,
  stopServe,
  tempDir,
} from './helpers/cli.js';
import { writeLauncher } from '../readme/runner.js';

let cwd: string;
beforeAll(() => {
  assertBuilt();
  cwd = tempDir('caxton-init-');
});
afterAll(cleanup);

describe('caxton init', () => {
  it('creates caxton.toml and agents/ from the basic template by default', async () => {
    const r = await runCli(['init', 'proj'], { cwd });
    expectExit(r, 0);
    expect(r.stdout).toContain(`created ${join(cwd, 'proj')} from template "basic"`);
    expect(r.stdout).toContain('caxton serve --config proj/caxton.toml');
    const proj = join(cwd, 'proj');
    expect(statSync(join(proj, 'agents')).isDirectory()).toBe(true);
    expect(readFileSync(join(proj, 'caxton.toml'), 'utf8')).toBe(
      readFileSync(join(repoRoot, 'templates/basic/caxton.toml'), 'utf8'),
    );
    expect(readdirSync(join(proj, 'agents')).sort()).toEqual(
      readdirSync(join(repoRoot, 'templates/basic/agents')).sort(),
    );
  });

  it('--template minimal creates the minimal project', async () => {
    const r = await runCli(['init', 'mini', '--template', 'minimal'], { cwd });
    expectExit(r, 0);
    expect(r.stdout).toContain('from template "minimal"');
    expect(readFileSync(join(cwd, 'mini', 'caxton.toml'), 'utf8')).toBe(
      readFileSync(join(repoRoot, 'templates/minimal/caxton.toml'), 'utf8'),
    );
    expect(readdirSync(join(cwd, 'mini', 'agents'))).toEqual(['hello.toml']);
  });

  it('--json reports the directory, template and files', async () => {
    const r = await runCli(['--json', 'init', 'json-proj', '-t', 'minimal'], { cwd });
    expectExit(r, 0);
    const body = parseJson<{ dir: string; template: string; files: string[] }>(r);
    expect(body.dir).toBe(join(cwd, 'json-proj'));
    expect(body.template).toBe('minimal');
    expect(body.files.sort()).toEqual(['agents/hello.toml', 'caxton.toml', 'replies.toml']);
  });

  it('init into the same dir again exits 1 ("refusing to overwrite") and leaves edited files alone', async () => {
    const dir = join(cwd, 'twice');
    expectExit(await runCli(['init', dir, '-t', 'minimal'], { cwd }), 0);
    writeFileSync(join(dir, 'caxton.toml'), '# edited by hand\n');
    const r = await runCli(['init', dir, '-t', 'minimal'], { cwd });
    expectExit(r, 1);
    expect(r.stderr).toMatch(/refusing to overwrite existing files in .*twice: .*caxton\.toml/);
    expect(r.stderr).toContain('--force');
    expect(readFileSync(join(dir, 'caxton.toml'), 'utf8')).toBe('# edited by hand\n');
    expectNoStackTrace(r);

    const forced = await runCli(['init', dir, '-t', 'minimal', '--force'], { cwd });
    expectExit(forced, 0);
    expect(readFileSync(join(dir, 'caxton.toml'), 'utf8')).toBe(
      readFileSync(join(repoRoot, 'templates/minimal/caxton.toml'), 'utf8'),
    );
  });

  it('--template tool-assemblyscript creates a tool package and its next steps name only paths that exist', async () => {
    const r = await runCli(['init', 'hello-tool', '--template', 'tool-assemblyscript'], { cwd });
    expectExit(r, 0);
    const dir = join(cwd, 'hello-tool');
    expect(existsSync(join(dir, 'caxton-tool.toml'))).toBe(true);
    expect(existsSync(join(dir, 'agents'))).toBe(false);
    const next = r.stdout.slice(r.stdout.indexOf('next:'));
    expect(next).toContain('(cd hello-tool && npm install && npm run build)');
    expect(next).toContain('caxton tool deploy hello-tool');
    expect(next).toContain('caxton tool show hello');
    expect(next).not.toMatch(/agents\/|caxton\.toml/);
  });

  it('the tool-assemblyscript next steps run as printed, in order, from where init ran: built, deployed, shown', async () => {
    const here = tempDir('caxton-init-steps-');
    const r = await runCli(['init', 'steps-tool', '--template', 'tool-assemblyscript'], { cwd: here });
    expectExit(r, 0);
    const steps = r.stdout
      .slice(r.stdout.indexOf('next:') + 'next:'.length)
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
    expect(steps).toHaveLength(3);
    // A server to deploy to, started as a user would in a project of their own.
    const project = join(here, 'project');
    expectExit(await runCli(['init', project, '--template', 'minimal'], { cwd: here }), 0);
    const serve = await startServe({ cwd: project });
    const bin = writeLauncher(join(here, 'bin'), CLI);
    try {
      for (const step of steps) {
        const res = spawnSync('bash', ['-c', step], {
          cwd: here,
          encoding: 'utf8',
          timeout: 240_000,
          env: cleanEnv({
            PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
            CAXTON_SERVER_URL: serve.url,
            // npm's own cache (the CLI's HOME is a temporary one): the packages come from it when they are there.
            npm_config_cache: join(homedir(), '.npm'),
            npm_config_prefer_offline: 'true',
            npm_config_audit: 'false',
            npm_config_fund: 'false',
          }),
        });
        expect(res.status, `${step}\n--- stdout\n${res.stdout}\n--- stderr\n${res.stderr}`).toBe(0);
        if (step.startsWith('caxton tool show')) expect(res.stdout).toContain('hello.greet');
      }
    } finally {
      await stopServe(serve, 'SIGTERM');
    }
  }, 300_000);

  it("the tool templates' READMEs call tools with arguments the CLI accepts", async () => {
    const calls = readdirSync(join(repoRoot, 'templates')).flatMap((t) => {
      const file = join(repoRoot, 'templates', t, 'README.md');
      if (!existsSync(file)) return [];
      const blocks = [...readFileSync(file, 'utf8').matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
      return blocks.flatMap((b) => b.split('\n')).filter((l) => /^caxton tool call\b/.test(l));
    });
    expect(calls.length).toBeGreaterThanOrEqual(2);
    for (const line of calls) {
      // Shell words, single quotes only: what these lines use.
      const words = [...line.replace(/\s+#.*$/, '').matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
      // Nothing listens on port 1: a line the CLI accepts fails there (exit 1), a misspelt one is a usage error (2).
      const r = await runCli(words.slice(1), { cwd, env: { CAXTON_SERVER_URL: 'http://127.0.0.1:1' } });
      expect(r.code, `${line}\n${r.stderr}`).toBe(1);
      expect(r.stderr).toContain('cannot reach the Caxton server');
    }
  });

  it('an unknown template exits 2, lists the available ones and creates nothing', async () => {
    const r = await runCli(['init', 'nope', '--template', 'enterprise'], { cwd });
    expectExit(r, 2);
    expect(r.stderr).toMatch(/unknown template "enterprise"; available: basic, minimal/);
    expect(existsSync(join(cwd, 'nope'))).toBe(false);
  });

  for (const [template, agents] of [
    ['basic', ['assistant', 'code-reviewer']],
    ['minimal', ['hello']],
  ] as const) {
    it(`a "${template}" project validates and serves its agents`, async () => {
      const dir = join(cwd, `served-${template}`);
      expectExit(await runCli(['init', dir, '--template', template], { cwd }), 0);
      const files = readdirSync(join(dir, 'agents')).map((f) => join(dir, 'agents', f));
      expectExit(await runCli(['agent', 'validate', ...files], { cwd }), 0);

      // cwd elsewhere: the paths in caxton.toml are relative to the file, not to the cwd.
      const serve = await startServe({ cwd, args: ['--config', join(dir, 'caxton.toml')] });
      const r = await runCli(['--server', serve.url, 'agent', 'list'], { cwd });
      expectExit(r, 0);
      for (const a of agents) expect(r.stdout).toMatch(new RegExp(`^${a}\\s.*\\bfile\\b`, 'm'));
      expect(r.stdout.trimEnd().split('\n')).toHaveLength(agents.length + 1);
      expect(existsSync(join(dir, 'data'))).toBe(true);
      expect((await stopServe(serve, 'SIGTERM')).code).toBe(0);
      // Every tool its agents name resolves: no warning at start.
      expect(serve.stdout()).not.toContain('tool_unresolved');
      expect(serve.stdout()).not.toMatch(/"level":(40|50)/);
    });
  }

  it('the basic project grants itself read-only: its code reviewer reads the file it is asked to review, and never the data directory', async () => {
    const dir = join(cwd, 'review');
    expectExit(await runCli(['init', dir], { cwd }), 0);
    const serve = await startServe({ cwd: dir, args: [] });
    const r = await runCli(['--server', serve.url, 'agent', 'run', 'code-reviewer', 'review agents/assistant.toml'], {
      cwd: dir,
    });
    expectExit(r, 0);
    expect(r.stdout).toContain('I read agents/assistant.toml.');
    expect(r.stdout).toMatch(/^\s+1\tname = "assistant"$/m);
    expect(r.stderr).toMatch(/\[tool workspace\.read /);
    const secret = await runCli(['--server', serve.url, 'agent', 'run', 'code-reviewer', 'review data/caxton.db'], {
      cwd: dir,
    });
    // Its one call was refused, so the run says so and exits 3 (docs/cli.md, exit codes).
    expectExit(secret, 3);
    expect(secret.stderr).toContain('every tool call of this run was refused');
    expect(secret.stdout).not.toContain('SQLite');
    expect(secret.stderr).toContain("server's data directory");
    const write = await runCli(
      ['--server', serve.url, 'tool', 'call', 'workspace.write', '--args', '{"file_path": "x.txt", "content": "x"}'],
      { cwd: dir },
    );
    expect(write.stdout + write.stderr).toContain('[workspace] write = true');
    expect(existsSync(join(dir, 'x.txt'))).toBe(false);
    expect((await stopServe(serve, 'SIGTERM')).code).toBe(0);
    expect(serve.stdout()).not.toContain('tool_unresolved');
  });
});
