/**
 * docs/a2a.md's examples, run as written (test/readme/runner.ts): a `caxton init` project with its
 * agent exposed over A2A, its card read and a message answered over JSON-RPC with curl.
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
  dir = tempDir('caxton-a2a-doc-');
  run = await runReadme(join(repoRoot, 'docs/a2a.md'), {
    cwd: join(dir, 'work'),
    binDir: writeLauncher(join(dir, 'bin'), CLI),
    home: join(dir, 'home'),
  });
}, 120_000);

afterAll(async () => {
  await run?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('docs/a2a.md', () => {
  it('runs every block to exit 0: the card is read, the message is answered by a completed task', () => {
    expect(run.runs.filter((r) => !r.block.background && r.code !== 0)).toEqual([]);
    const outs = run.runs.map((r) => r.stdout).join('\n');
    expect(outs).toContain('"protocolBinding":"JSONRPC"');
    expect(outs).toContain('"state":"TASK_STATE_COMPLETED"');
    expect(outs).toContain('The answer is 42.');
  });
});
