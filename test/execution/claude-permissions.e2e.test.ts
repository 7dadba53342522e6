/**
 * A workspace whose .claude/settings.json holds Claude Code permission rules, on a real
 * `caxton serve` (durable runs, bubblewrap, the strict model stand-in): `Bash(npm test:*)` in
 * allow runs `npm test`; `Read(./secrets/**)` in deny refuses the secret; `Bash(git push:*)` in
 * ask stops the run in awaiting_approval, and once a person approves, the push runs.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanup, startServe, tempDir } from '../cli/helpers/cli.js';
import { hasSystem } from '../helpers/system.js';
import { startLlmStub, type LlmStub, type StubHit, stubLlmSection } from './helpers/llm-stub.js';
import { decide, startRun, toolMessages, waitForRun } from './helpers/runs.js';

let stub: LlmStub;

/** npm test, then read the secret, then git push; then answer with every result. */
function script(hit: StubHit) {
  const results = toolMessages(hit);
  const wire = (hit.body.tools as { function: { name: string } }[]).map((t) => t.function.name);
  const bash = wire.find((n) => n.includes('bash'))!;
  const read = wire.find((n) => n.includes('read'))!;
  const steps = [
    { id: 'c-test', name: bash, arguments: { command: 'npm test' } },
    { id: 'c-secret', name: read, arguments: { file_path: 'secrets/key.txt' } },
    { id: 'c-push', name: bash, arguments: { command: 'git push origin main' } },
  ];
  if (results.length >= steps.length) return { content: results.map((r) => r.content).join('\n---\n') };
  return { tool_calls: [steps[results.length]!] };
}

beforeAll(async () => {
  assertBuilt();
  stub = await startLlmStub(script);
});

afterAll(async () => {
  await cleanup();
  await stub?.close();
});

function project(): string {
  const dir = tempDir('caxton-perms-');
  const ws = join(dir, 'ws');
  mkdirSync(join(ws, '.claude'), { recursive: true });
  mkdirSync(join(ws, 'secrets'));
  mkdirSync(join(dir, 'agents'));
  writeFileSync(join(ws, 'secrets', 'key.txt'), 'hunter2\n');
  writeFileSync(
    join(ws, 'package.json'),
    JSON.stringify({ name: 'p', version: '1.0.0', scripts: { test: 'echo all-tests-passed' } }),
  );
  writeFileSync(
    join(ws, '.claude', 'settings.json'),
    JSON.stringify({
      permissions: { allow: ['Bash(npm test:*)'], deny: ['Read(./secrets/**)'], ask: ['Bash(git push:*)'] },
    }),
  );
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: ws, stdio: 'pipe' });
  git('init', '-q', '-b', 'main');
  git('init', '-q', '--bare', 'remote.git');
  git('add', 'package.json');
  git('commit', '-q', '-m', 'first');
  git('remote', 'add', 'origin', join(ws, 'remote.git'));
  writeFileSync(
    join(dir, 'agents', 'dev.toml'),
    stringify({
      name: 'dev',
      capabilities: ['development'],
      system_prompt: 'Test, then push.',
      tools: ['workspace.bash', 'workspace.read'],
    }),
  );
  writeFileSync(
    join(dir, 'caxton.toml'),
    stringify({
      data_dir: './data',
      agents_dir: './agents',
      logging: { level: 'warn' },
      auth: { enabled: false },
      workspace: {
        path: 'ws',
        write: true,
        bash: { enabled: true, commands: ['npm', 'git', 'ls', 'cat'], timeout: '60s' },
        permissions: { claude_settings: '.claude/settings.json' },
      },
      llm: stubLlmSection(stub.url),
    }),
  );
  return dir;
}

describe.skipIf(!hasSystem('bwrap'))('a workspace with Claude Code permission rules', () => {
  it('runs npm test, refuses secrets/, and holds git push for a person', { timeout: 120_000 }, async () => {
    const dir = project();
    const server = await startServe({
      cwd: dir,
      args: ['--config', join(dir, 'caxton.toml')],
      env: { STUB_KEY: 'k' },
      readyTimeoutMs: 30_000,
    });
    const id = await startRun(server.url, 'dev', 'test and push');
    const waiting = await waitForRun(server.url, id, 'awaiting_approval', 60_000);
    expect(waiting.approvals).toEqual([
      expect.objectContaining({
        call_id: 'c-push',
        tool: 'workspace.bash',
        arguments: { command: 'git push origin main' },
        decision: null,
      }),
    ]);
    // Nothing was pushed while it waits.
    const remoteHead = () =>
      execFileSync('git', ['--git-dir', join(dir, 'ws', 'remote.git'), 'rev-parse', '--verify', '-q', 'main'], {
        stdio: 'pipe',
      })
        .toString()
        .trim();
    expect(remoteHead).toThrow();

    expect((await decide(server.url, id, 'approve', { reason: 'ship it' })).status).toBe(200);
    const done = await waitForRun(server.url, id, 'completed', 60_000);
    const [test, secret, push] = done.response!.content.split('\n---\n');
    expect(test).toContain('all-tests-passed');
    expect(secret).toBe(
      'Error: Permission to use Read has been denied: the rule "Read(./secrets/**)" (.claude/settings.json permissions.deny) refuses this call.',
    );
    expect(done.response!.content).not.toContain('hunter2');
    expect(push).toMatch(/main -> main/);
    expect(remoteHead()).toMatch(/^[0-9a-f]{40}$/);
    // One call refused by a rule, the others ran: not a run whose every call was refused.
    expect(done.response).not.toHaveProperty('all_tool_calls_refused');
    server.child.kill('SIGTERM');
    await server.exited;
  });

  it('permissionMode default asks for a Bash call no rule allows; plan refuses it', { timeout: 120_000 }, async () => {
    const dir = project();
    for (const mode of ['default', 'plan'])
      writeFileSync(
        join(dir, 'agents', `${mode}-lister.md`),
        `---\nname: ${mode}-lister\ndescription: Lists the files\ntools: Bash, Read\npermissionMode: ${mode}\n---\nList the files.\n`,
      );
    stub.setScript((hit) => {
      const results = toolMessages(hit);
      if (results.length > 0) return { content: `listed: ${results[0]!.content}` };
      const bash = (hit.body.tools as { function: { name: string } }[]).find((t) => t.function.name.includes('bash'))!;
      return { tool_calls: [{ id: 'c-ls', name: bash.function.name, arguments: { command: 'ls' } }] };
    });
    const server = await startServe({
      cwd: dir,
      args: ['--config', join(dir, 'caxton.toml')],
      env: { STUB_KEY: 'k' },
      readyTimeoutMs: 30_000,
    });
    const asked = await startRun(server.url, 'default-lister', 'list');
    const waiting = await waitForRun(server.url, asked, 'awaiting_approval', 60_000);
    expect(waiting.approvals.map((a) => [a.tool, a.arguments])).toEqual([['workspace.bash', { command: 'ls' }]]);
    await decide(server.url, asked, 'approve');
    expect((await waitForRun(server.url, asked, 'completed', 60_000)).response!.content).toContain('package.json');

    const planned = await startRun(server.url, 'plan-lister', 'list');
    const refused = await waitForRun(server.url, planned, 'completed', 60_000);
    expect(refused.approvals).toEqual([]);
    expect(refused.response!.content).toBe(
      'listed: Error: Permission to use Bash has been denied: the agent is in plan mode (permissionMode: plan), where only tools that read may run.',
    );
    // Its one call was refused by the mode, none ran: the run says so, and its journal marks the call.
    expect(refused.response).toMatchObject({ all_tool_calls_refused: true });
    const steps = (refused as unknown as { steps: { kind: string; refused?: boolean }[] }).steps;
    expect(steps.filter((st) => st.kind === 'tool_end').map((st) => st.refused)).toEqual([true]);
    server.child.kill('SIGTERM');
    await server.exited;
  });
});
