/**
 * The hidden-components stage (test/ci/without-system.ts) fails when a test starts an optional
 * program without asking test/helpers/system.ts, and lets the same test pass by skipping when it
 * asks: a real stage run (bubblewrap namespace, vitest inside) over the two examples in
 * test/fixtures/without-system/, on a machine where clang is installed and works outside.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';
import { hasSystem } from '../helpers/system.js';

function stage(args: string[]): Promise<{ code: number | null; out: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.CAXTON_TEST_SKIP_LOG;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'test/ci/without-system.ts'), ...args], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

const config = ['--config', 'test/fixtures/without-system/vitest.config.ts'];

describe.skipIf(!hasSystem('bwrap') || !hasSystem('wasm-c'))('the hidden-components stage', () => {
  it('fails a test that starts clang without asking, and passes the one that asks by skipping it', async () => {
    const bad = await stage([...config, 'test/fixtures/without-system/']);
    expect(bad.code, bad.out).toBe(1);
    expect(bad.out).toContain('all 9 optional components hidden');
    expect(bad.out).toMatch(/FAIL\s+test\/fixtures\/without-system\/spawns-clang\.spec\.ts/);
    expect(bad.out).toMatch(/spawnSync clang (?:ENOENT|EACCES)/);
    expect(bad.out).toContain("ask hasSystem('<component>') from test/helpers/system.ts");
    expect(bad.out).toMatch(/Tests\s+1 failed \| 1 skipped/);

    const good = await stage([...config, 'test/fixtures/without-system/asks-first.spec.ts']);
    expect(good.code, good.out).toBe(0);
    expect(good.out).toMatch(/Tests\s+1 skipped/);
    expect(good.out).toContain('without-system: passed; components the tests skipped for: wasm-c');
  }, 180_000);
});
