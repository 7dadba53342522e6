/**
 * A stranger's path: a fresh clone of this repository (what is committed, nothing of this working
 * tree), installed, then README's quickstart as written, ending at the web console. Each phase is
 * timed and printed; docs/benchmarks.md ("A stranger's path") keeps the figures.
 *
 * Install: `npm ci` is the README's command, but it downloads and compiles ~270 packages (the
 * SQLite addon from C++) and took minutes here (docs/benchmarks.md), too long for every test run.
 * So the clone reuses this checkout's node_modules through a symlink and runs what `npm ci` runs
 * after installing them: the `prepare` script, `npm run build` (the TypeScript, the WebAssembly
 * tools and the console, from the clone's own sources). `caxton` is put on the PATH as `npm link`
 * does: a launcher of the clone's dist/cli/main.js. The clone starts from this checkout's build
 * outputs where they are provably its own (seed-build.ts), so the build does only what differs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot, tempDir } from '../cli/helpers/cli.js';
import { runReadme, writeLauncher, type ReadmeRun } from './runner.js';
import { seedBuild } from './seed-build.js';

let dir: string | undefined;
let run: ReadmeRun | undefined;

afterAll(async () => {
  await run?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function step(cmd: string, args: string[], cwd: string): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
    maxBuffer: 64 * 1024 * 1024,
  });
  expect(r.status, `${cmd} ${args.join(' ')} in ${cwd}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`).toBe(0);
  return (performance.now() - t0) / 1000;
}

describe("a stranger's path", () => {
  it('fresh clone, install, README quickstart, console reachable', async () => {
    expect(existsSync(join(repoRoot, 'node_modules')), 'run `npm ci` in this checkout first').toBe(true);
    dir = tempDir('caxton-stranger-');
    const clone = join(dir, 'caxton');
    const t0 = performance.now();
    const cloneS = step('git', ['clone', '--quiet', repoRoot, clone], dir);
    symlinkSync(join(repoRoot, 'node_modules'), join(clone, 'node_modules'));
    const seeded = seedBuild(repoRoot, clone);
    const buildS = step('npm', ['run', 'build', '--silent'], clone);

    const t1 = performance.now();
    run = await runReadme(join(clone, 'README.md'), {
      cwd: join(dir, 'work'),
      binDir: writeLauncher(join(dir, 'bin'), join(clone, 'dist/cli/main.js')),
      home: join(dir, 'home'),
    });
    const page = await fetch(`${run.url}/ui`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module"');
    const quickstartS = (performance.now() - t1) / 1000;
    const totalS = (performance.now() - t0) / 1000;

    const agentRun = run.runs.find((r) => r.block.code.includes('caxton agent run assistant'));
    expect(agentRun?.stdout).toContain('The answer is 42.');
    process.stdout.write(
      `stranger's path: clone ${cloneS.toFixed(1)} s, install (build; node_modules linked; seeded ${JSON.stringify(seeded)}) ${buildS.toFixed(1)} s, ` +
        `quickstart to the console ${quickstartS.toFixed(1)} s, total ${totalS.toFixed(1)} s\n`,
    );
  }, 900_000);
});
