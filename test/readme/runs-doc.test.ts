/**
 * docs/runs.md's examples, run as written (test/readme/runner.ts): a background run read back by
 * its id, and a call that waits for approval, approved over REST, then finished.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, CLI, repoRoot, tempDir } from '../cli/helpers/cli.js';
import { runReadme, writeLauncher, type ReadmeRun } from './runner.js';

let dir: string;
let run: ReadmeRun;

beforeAll(async () => {
  assertBuilt();
  dir = tempDir('caxton-runs-doc-');
  run = await runReadme(join(repoRoot, 'docs/runs.md'), {
    cwd: join(dir, 'work'),
    binDir: writeLauncher(join(dir, 'bin'), CLI),
    home: join(dir, 'home'),
  });
}, 120_000);

afterAll(async () => {
  await run?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('docs/runs.md', () => {
  it('runs every block to exit 0: the background run answers, the approved call runs', () => {
    expect(run.runs.filter((r) => !r.block.background && r.code !== 0)).toEqual([]);
    const outs = run.runs.map((r) => r.stdout);
    expect(outs.filter((o) => o.includes('"content":"The answer is 42."'))).toHaveLength(2);
    expect(outs.some((o) => o.includes('"code":"awaiting_approval"'))).toBe(true);
  });
});
