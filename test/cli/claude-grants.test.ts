/**
 * What the CLI says about a Claude Code agent's tools against the operator's grants, as real child
 * processes (dist/cli/main.js) against a real `caxton serve` and a strict stand-in model: a listed
 * tool that is offered but not granted (Write without `[workspace] write = true`, Bash without
 * `[workspace.bash]`) is named with its setting by `agent validate`, `agent deploy` and `agent
 * show`; an agent with no tools key is shown with what it gets; a run whose every tool call was
 * refused says so and exits 3; Claude Code's `mcp__server__tool` works in a TOML agent.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from '../execution/helpers/llm-stub.js';
import { assistantTurns } from '../execution/helpers/wire.js';
import {
  assertBuilt,
  cleanup,
  expectExit,
  expectNoStackTrace,
  parseJson,
  repoRoot,
  runCli,
  startServe,
  tempDir,
  type ServeProcess,
} from './helpers/cli.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const KEYS = { OPENAI_KEY_FOR_TEST: 'sk-grants-openai' };

/** The model writes a file (refused here: the workspace is read-only), then answers. */
function model(hit: StubHit): Reply {
  if (assistantTurns(hit) > 0) return { content: 'I tried to write the report.' };
  return {
    tool_calls: [
      { id: 'call_w', name: 'workspace_write', arguments: { file_path: 'report.md', content: '# Report\n' } },
    ],
  };
}

let stub: LlmStub;
let serve: ServeProcess;
let dir: string;
const cli = (...args: string[]) => runCli(['--server', serve.url, ...args], { cwd: dir, env: KEYS, timeoutMs: 30_000 });

const WRITER = '---\nname: writer\ndescription: Writes reports\ntools: Read, Write, Bash\n---\n\nYou write reports.\n';
const UNLISTED = '---\nname: helper\ndescription: Helps with anything\n---\n\nYou help.\n';

beforeAll(async () => {
  assertBuilt();
  stub = await startLlmStub((hit) => model(hit));
  dir = tempDir('caxton-grants-');
  mkdirSync(join(dir, 'ws'));
  writeFileSync(join(dir, 'ws', 'README.md'), '# Project\n');
  writeFileSync(
    join(dir, 'caxton.toml'),
    [
      'data_dir = "data"',
      'agents_dir = "agents"',
      '[logging]',
      'level = "info"',
      '[llm]',
      'default_provider = "openai"',
      '[llm.providers.openai]',
      'type = "openai"',
      `base_url = "${stub.url}/v1"`,
      'api_key_env = "OPENAI_KEY_FOR_TEST"',
      'model = "gpt-4o-mini"',
      '[workspace]',
      'path = "ws"',
      '[mcp_servers.mini]',
      `command = "${process.execPath}"`,
      `args = [${JSON.stringify(join(repoRoot, 'test/mcp/fixtures/mini-server.mjs'))}]`,
      `cwd = ${JSON.stringify(repoRoot)}`,
    ].join('\n'),
  );
  mkdirSync(join(dir, 'agents'));
  writeFileSync(join(dir, 'agents', 'helper.md'), UNLISTED);
  writeFileSync(join(dir, 'writer.md'), WRITER);
  serve = await startServe({ cwd: dir, args: ['--config', join(dir, 'caxton.toml')], env: KEYS });
}, 60_000);

afterAll(async () => {
  await cleanup();
  await stub?.close();
});

describe('tools listed but not granted', () => {
  it('agent validate names each one with its setting (a warning: the file is valid)', async () => {
    const r = await runCli(['agent', 'validate', 'writer.md', '--config', 'caxton.toml'], { cwd: dir });
    expectExit(r, 0);
    expect(r.stderr).toMatch(
      /warning: the tool "workspace\.write" \(Claude Code's Write\) is listed and offered, but not granted: writing in the workspace is not granted\. .*\[workspace\] write = true/,
    );
    expect(r.stderr).toMatch(/the tool "workspace\.bash" \(Claude Code's Bash\).*\[workspace\.bash\] enabled = true/);
    expect(r.stderr).not.toMatch(/"workspace\.read"/);
  });

  it('agent deploy says so, and agent show marks them with the setting', async () => {
    const d = await cli('agent', 'deploy', 'writer.md');
    expectExit(d, 0);
    expect(d.stderr).toMatch(/tool_not_granted|not granted: writing in the workspace is not granted/);
    const s = await cli('agent', 'show', 'writer');
    expectExit(s, 0);
    expect(s.stdout).toMatch(
      /^tools: +workspace\.read, workspace\.write \(not granted\), workspace\.bash \(not granted\)$/m,
    );
    expect(s.stdout).toMatch(/^ {2}not granted workspace\.write: .*\[workspace\] write = true/m);
    const j = parseJson<Json>(await cli('--json', 'agent', 'show', 'writer'));
    expect(j.ungranted_tools.map((u: Json) => u.tool)).toEqual(['workspace.write', 'workspace.bash']);
  });

  it('a run whose every tool call was refused says so and exits 3; --json carries all_tool_calls_refused', async () => {
    stub.reset();
    const r = await cli('agent', 'run', 'writer', 'Write the report');
    expectExit(r, 3);
    expectNoStackTrace(r);
    expect(r.stdout).toBe('I tried to write the report.\n');
    expect(r.stderr).toMatch(/\[workspace\] write = true/);
    expect(r.stderr).toMatch(/every tool call of this run was refused \(1\): none ran/);
    stub.reset();
    const j = await cli('--json', 'agent', 'run', 'writer', 'Write the report');
    expectExit(j, 3);
    expect(parseJson<Json>(j)).toMatchObject({ all_tool_calls_refused: true });
  });
});

describe('an agent with no tools key', () => {
  it('agent show says it gets the granted tools, naming the setting; the load log said it once', async () => {
    const s = await cli('agent', 'show', 'helper');
    expectExit(s, 0);
    const line = s.stdout.split('\n').find((l) => l.startsWith('tools:'))!;
    expect(line).toContain('[agents.claude] unlisted_tools = "granted"');
    expect(line).toContain('workspace.read');
    // Write is not granted here, so it is not given either; neither is Bash.
    expect(line).not.toContain('workspace.write');
    expect(line).not.toContain('workspace.bash');
    const said = serve
      .stdout()
      .split('\n')
      .filter((l) => l.includes('agent \\"helper\\" lists no tools'));
    expect(said).toHaveLength(1);
  });
});

describe("Claude Code's MCP spelling in a TOML agent", () => {
  it('validates when the server is mounted; unmounted, the hint names the server part', async () => {
    writeFileSync(
      join(dir, 'mcp.toml'),
      'name = "mcp-user"\ndescription = "Uses mini"\ntools = ["mcp__mini__count_words"]\nsystem_prompt = "You count."\n',
    );
    const ok = await runCli(['agent', 'validate', 'mcp.toml', '--config', 'caxton.toml'], { cwd: dir });
    expectExit(ok, 0);
    writeFileSync(
      join(dir, 'git.toml'),
      'name = "git-user"\ndescription = "Uses git"\ntools = ["mcp__git__git_diff"]\nsystem_prompt = "You diff."\n',
    );
    const bad = await runCli(['agent', 'validate', 'git.toml', '--config', 'caxton.toml'], { cwd: dir });
    expectExit(bad, 1);
    expect(bad.stderr).toContain('[mcp_servers.git]');
    expect(bad.stderr).not.toContain('mcp_servers.mcp__git');
  });
});
