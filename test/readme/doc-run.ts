/**
 * A documentation page's runnable blocks, run once for the test file that asks (test/readme/
 * runner.ts): in beforeAll, in a fresh directory with `caxton` on the PATH and a home of its own;
 * what they started is stopped and the directory removed in afterAll. The returned function gives
 * the run to the tests.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { assertBuilt, CLI, repoRoot, tempDir } from '../cli/helpers/cli.js';
import { runReadme, writeLauncher, type ReadmeRun } from './runner.js';

export function docRun(page: string, timeoutMs = 120_000): () => ReadmeRun {
  let dir: string | undefined;
  let run: ReadmeRun | undefined;
  beforeAll(async () => {
    assertBuilt();
    dir = tempDir(`caxton-${page.replace(/\W+/g, '-')}-`);
    run = await runReadme(join(repoRoot, page), {
      cwd: join(dir, 'work'),
      binDir: writeLauncher(join(dir, 'bin'), CLI),
      home: join(dir, 'home'),
    });
  }, timeoutMs);
  afterAll(async () => {
    await run?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    if (!run) throw new Error(`${page} was not run (its beforeAll failed)`);
    return run;
  };
}
