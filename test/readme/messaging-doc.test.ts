/**
 * docs/messaging.md's how-to, run as written (test/readme/runner.ts): a contract net among three
 * model-driven agents, and an English auction among three collectors beside a fourth whose model
 * server is down, each agent on a scripted model of its own, against a real server.
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
  dir = tempDir('caxton-messaging-doc-');
  run = await runReadme(join(repoRoot, 'docs/messaging.md'), {
    cwd: join(dir, 'work'),
    binDir: writeLauncher(join(dir, 'bin'), CLI),
    home: join(dir, 'home'),
  });
}, 240_000);

afterAll(async () => {
  await run?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const output = (text: string) => {
  const r = run.runs.find((x) => x.block.code.includes(text));
  expect(r, `no runnable block runs ${text}`).toBeDefined();
  return r!.stdout + r!.stderr;
};

describe('docs/messaging.md', () => {
  it('runs every block to exit 0', () => {
    expect(run.runs.filter((r) => !r.block.background && r.code !== 0)).toEqual([]);
  });

  it('the contract net awards the lowest price', () => {
    expect(output('fipa-contract-net')).toContain('is completed (awarded to ship-b)');
  });

  it('the English auction ends with the best live bid, the unreachable bidder shown failed', () => {
    const out = output('fipa-english-auction');
    expect(out).toContain('is completed (awarded to collector-a); went on without b5 (failed)');
    expect(out).toMatch(/failed: {7}b5 \(delivery to "b5" failed/);
  });
});
