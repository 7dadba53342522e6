/**
 * vitest global setup: when this run includes test/package/pack.test.ts, starts `npm pack` and
 * the global install of the tarball right away in the background (see install.ts for why); the
 * test file waits for it. Without a built dist/ nothing starts (the test file says what to do).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { killInstall, packAndInstallInBackground, repoRoot } from './install.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The directory of the install started here; undefined when none was started. */
    caxtonPackageDir: string | undefined;
  }
}

const FILE = 'test/package/pack.test.ts';

/** Whether the run's file filters (the CLI's positional arguments) select the package test. */
function selected(argv: string[]): boolean {
  const at = argv.findIndex((a) => a === 'run' || a === 'related');
  const filters = argv.slice(at + 1).filter((a) => !a.startsWith('-'));
  return filters.length === 0 || filters.some((f) => FILE.includes(f.replace(/^\.\//, '')));
}

export default function setup(project: TestProject): (() => void) | undefined {
  project.provide('caxtonPackageDir', undefined);
  if (!selected(process.argv.slice(2)) || !existsSync(join(repoRoot, 'dist/index.js'))) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'caxton-pack-'));
  packAndInstallInBackground(dir);
  project.provide('caxtonPackageDir', dir);
  return () => {
    killInstall();
    // ~270 installed packages: removing them took over a minute here, so a detached rm does it.
    spawn('rm', ['-rf', dir], { detached: true, stdio: 'ignore' }).unref();
  };
}
