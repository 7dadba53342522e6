import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { CaxtonError, type ErrorCode } from '../../src/shared/errors.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Absolute path of a test task module in test/fixtures/isolation. */
export function fixture(name: string): string {
  return path.join(root, 'test/fixtures/isolation', name);
}

export const TASKS = fixture('tasks.mjs');

/** Generous deadline for jobs that are expected to succeed (slow 2-core CI machines). */
export const OK_TIMEOUT = 20_000;

function isStale(): boolean {
  const srcDir = path.join(root, 'src/execution/isolation');
  const distDir = path.join(root, 'dist/execution/isolation');
  return readdirSync(srcDir)
    .filter((f) => f.endsWith('.ts'))
    .some((f) => {
      const built = path.join(distDir, f.replace(/\.ts$/, '.js'));
      return !existsSync(built) || statSync(built).mtimeMs < statSync(path.join(srcDir, f)).mtimeMs;
    });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Worker threads and child processes load the compiled worker-entry.js / process-runner.js
 * from dist/ when the library runs from its TypeScript sources (as under vitest). `npm test`
 * builds first (pretest); this makes `npx vitest` work too by building when dist/ is missing
 * or older than src/execution/isolation. A lock directory keeps parallel test files from
 * building at the same time.
 */
export async function ensureBuilt(): Promise<void> {
  if (!isStale()) return;
  const lock = path.join(os.tmpdir(), `caxton-build-${Buffer.from(root).toString('base64url').slice(-40)}.lock`);
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`timed out waiting for the build lock ${lock}`);
      const held = statSync(lock, { throwIfNoEntry: false });
      if (held && Date.now() - held.mtimeMs > 120_000) rmSync(lock, { recursive: true, force: true });
      await sleep(200);
    }
  }
  try {
    if (!isStale()) return;
    try {
      execFileSync(
        process.execPath,
        [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
        { cwd: root, stdio: 'pipe' },
      );
    } catch {
      // Type errors elsewhere in src still emit; what matters is checked below.
    }
    if (isStale()) throw new Error('dist/execution/isolation is still out of date after "tsc -p tsconfig.build.json"');
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Awaits a rejection and checks it is a CaxtonError with `code` (and message matching `message`). */
export async function expectCaxtonError(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<CaxtonError> {
  let error: unknown;
  try {
    await p;
  } catch (e) {
    error = e;
  }
  expect(error, 'expected the job to fail').toBeInstanceOf(CaxtonError);
  const ce = error as CaxtonError;
  expect({ code: ce.code, message: ce.message }).toMatchObject({ code });
  if (message) expect(ce.message).toMatch(message);
  return ce;
}

/** Polls `check` until it returns true (or fails after `ms`). */
export async function eventually(check: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
