/**
 * README.md's quickstart, run as written: every block marked runnable, in a fresh directory, with
 * the built CLI (dist/, `npm test` builds it first) as `caxton` on the PATH and a real server. A
 * block that fails fails this test, so README cannot promise what Caxton no longer does.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, CLI, repoRoot, tempDir } from '../cli/helpers/cli.js';
import { runnableBlocks, runReadme, writeLauncher, type ReadmeRun } from './runner.js';

const README = join(repoRoot, 'README.md');
let dir: string;
let run: ReadmeRun;

beforeAll(async () => {
  assertBuilt();
  dir = tempDir('caxton-readme-');
  run = await runReadme(README, {
    cwd: join(dir, 'work'),
    binDir: writeLauncher(join(dir, 'bin'), CLI),
    home: join(dir, 'home'),
  });
}, 240_000);

afterAll(async () => {
  await run?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The output of the runnable block whose code contains `text`. */
function output(text: string): string {
  const r = run.runs.find((x) => x.block.code.includes(text));
  expect(r, `no runnable block runs ${text}`).toBeDefined();
  return r!.stdout + r!.stderr;
}

describe('README.md', () => {
  it('marks the quickstart runnable: a server, an agent run with a tool, a message between two agents, the console', () => {
    const blocks = runnableBlocks(readFileSync(README, 'utf8'));
    expect(blocks.filter((b) => b.background).map((b) => b.code)).toEqual(['caxton serve']);
    const all = blocks.map((b) => b.code).join('\n');
    for (const cmd of [
      'caxton init demo',
      'caxton agent run assistant',
      'caxton tool call',
      'caxton agent run coordinator',
      '/ui',
    ])
      expect(all).toContain(cmd);
    expect(readFileSync(README, 'utf8').split('\n').length).toBeLessThanOrEqual(260);
  });

  it('ran every runnable block to exit 0, and the server announced its console', () => {
    expect(run.runs.filter((r) => !r.block.background && r.code !== 0)).toEqual([]);
    expect(run.serverOutput().stderr).toContain(`web console ${run.url}/ui`);
  });

  it('the assistant answered through the calculator tool', () => {
    expect(output('caxton agent run assistant')).toContain('The answer is 42.');
    expect(output('csv_parser.parse')).toContain('Oslo');
  });

  it('the coordinator messaged the assistant and reported its answer', () => {
    const out = output('caxton agent run coordinator');
    expect(out).toMatch(/\[inform\] from assistant: The answer is 42\./);
    expect(out).toContain('is completed');
  });

  it('the console is reachable, and GET / redirects to it', async () => {
    expect(output('%{http_code}')).toMatch(/^200$/m);
    const root = await fetch(`${run.url}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/ui');
  });
});

describe('the README runner', () => {
  it('fails at the first runnable block that exits non-zero, naming its line and showing its output', async () => {
    const own = tempDir('caxton-readme-fail-');
    const readme = join(own, 'README.md');
    writeFileSync(
      readme,
      [
        '# x',
        '',
        '<!-- runnable -->',
        '```sh',
        'echo first',
        '```',
        '',
        '<!-- runnable -->',
        '```sh',
        'echo "went wrong" >&2',
        'exit 3',
        '```',
        '',
        '<!-- runnable -->',
        '```sh',
        'echo never',
        '```',
        '',
      ].join('\n'),
    );
    const blocks = runnableBlocks(readFileSync(readme, 'utf8'));
    expect(blocks.map((b) => b.line)).toEqual([4, 9, 15]);
    await expect(
      runReadme(readme, { cwd: join(own, 'work'), binDir: join(own, 'bin'), home: join(own, 'home') }),
    ).rejects.toThrow(/README\.md block at line 9:[\s\S]*exited 3[\s\S]*went wrong/);
  });
});
