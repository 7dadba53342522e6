/**
 * docs/signed-messages.md's example, run as written (test/readme/runner.ts): a caller's Ed25519 key
 * registered with the CLI, a message signed with nothing but node:crypto accepted, the same one
 * sent again refused as a replay, a changed one refused, and the stored message naming its signer.
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
  dir = tempDir('caxton-signed-doc-');
  run = await runReadme(join(repoRoot, 'docs/signed-messages.md'), {
    cwd: join(dir, 'work'),
    binDir: writeLauncher(join(dir, 'bin'), CLI),
    home: join(dir, 'home'),
  });
}, 120_000);

afterAll(async () => {
  await run?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('docs/signed-messages.md', () => {
  it('runs every block to exit 0: the signed message accepted, a copy and a changed one refused', () => {
    expect(run.runs.filter((r) => !r.block.background && r.code !== 0)).toEqual([]);
    const out = run.runs.map((r) => r.stdout).join('\n');
    expect(out).toContain('signed: 202 accepted');
    expect(out).toContain('sent again: 409 replayed');
    expect(out).toContain('changed: 403 signature_invalid');
    expect(out).toMatch(/signed by key:admin with sk_[A-Za-z0-9_-]{22}/);
  });
});
