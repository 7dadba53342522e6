/**
 * Tests that need a system component (PostgreSQL + pgvector, promtool) skip with one printed line
 * on a developer machine where it is missing, and fail the run in CI (test/helpers/system.ts).
 * Shown with real vitest runs of test/memory/pg-store.test.ts against a PostgreSQL URL where
 * nothing listens, so it holds whatever this machine has installed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';
import { missingLines, systemRequired } from '../helpers/system-probe.js';

const dir = mkdtempSync(join(tmpdir(), 'caxton-system-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A vitest run of one file with `env` on top of this environment minus the CI switches. */
function vitest(file: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const base = { ...process.env };
  delete base.CI;
  delete base.CAXTON_TEST_REQUIRE_SYSTEM;
  delete base.CAXTON_TEST_SKIP_LOG;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'node_modules/vitest/vitest.mjs'), 'run', file], {
      cwd: repoRoot,
      env: { ...base, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 100_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

// Port 1 on loopback: nothing listens there, so PostgreSQL (and with it pgvector) is "missing".
const NO_PG = 'postgres://postgres@127.0.0.1:1/test';

describe('system components missing', () => {
  it('skips the dependent tests with one line naming the component and its install command, and logs the skip', async () => {
    const log = join(dir, 'skips.log');
    const r = await vitest('test/memory/pg-store.test.ts', { CAXTON_TEST_PG_URL: NO_PG, CAXTON_TEST_SKIP_LOG: log });
    expect(r.code, r.out).toBe(0);
    const lines = r.out.split('\n').filter((l) => l.startsWith('[caxton tests] PostgreSQL missing'));
    expect(lines, r.out).toHaveLength(1);
    expect(lines[0]).toContain('127.0.0.1:1');
    expect(lines[0]).toContain('install it with: sudo apt-get install postgresql');
    expect(r.out).not.toMatch(/\[caxton tests\] pgvector missing/); // implied by PostgreSQL's line
    expect(r.out).toMatch(/Tests\s+7 skipped/);
    expect(existsSync(log)).toBe(true);
    expect(readFileSync(log, 'utf8')).toMatch(
      /^pgvector\tcannot connect to PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:1\/test/,
    );
  }, 120_000);

  it('fails the run instead in CI (CI=true), naming the component', async () => {
    const log = join(dir, 'ci.log');
    const r = await vitest('test/memory/pg-store.test.ts', {
      CAXTON_TEST_PG_URL: NO_PG,
      CI: 'true',
      CAXTON_TEST_SKIP_LOG: log,
    });
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain('missing system components, required in CI');
    expect(r.out).toContain('PostgreSQL missing');
    expect(r.out).toContain('required here (CI); install it with');
    expect(r.out).not.toMatch(/Tests\s+\d+ skipped/);
    expect(readFileSync(log, 'utf8')).toContain('PostgreSQL missing');
  }, 120_000);

  it('reads CI and CAXTON_TEST_REQUIRE_SYSTEM as switches', () => {
    expect(systemRequired({})).toBe(false);
    expect(systemRequired({ CI: '' })).toBe(false);
    expect(systemRequired({ CI: 'false' })).toBe(false);
    expect(systemRequired({ CI: '0' })).toBe(false);
    expect(systemRequired({ CI: 'true' })).toBe(true);
    expect(systemRequired({ CI: '1' })).toBe(true);
    expect(systemRequired({ CAXTON_TEST_REQUIRE_SYSTEM: '1' })).toBe(true);
  });

  it('prints one line per missing component, pgvector implied by PostgreSQL', () => {
    expect(
      missingLines({
        postgresql: null,
        pgvector: null,
        'postgresql-server': null,
        promtool: null,
        'nats-server': null,
        chromium: null,
        bwrap: null,
        'wasm-c': null,
        'wasm-rust': null,
      }),
    ).toEqual([]);
    const both = missingLines({
      postgresql: 'down',
      pgvector: 'down',
      'postgresql-server': null,
      promtool: 'not found',
      'nats-server': null,
      chromium: null,
      bwrap: null,
      'wasm-c': null,
      'wasm-rust': null,
    });
    expect(both).toHaveLength(2);
    expect(both[0]).toMatch(
      /^\[caxton tests\] PostgreSQL missing \(down\): skipping the tests that need it; install it with: sudo apt-get install postgresql/,
    );
    expect(both[1]).toMatch(/promtool missing \(not found\).*apt-get install --no-install-recommends prometheus$/);
    expect(
      missingLines({
        postgresql: null,
        pgvector: 'no extension',
        'postgresql-server': null,
        promtool: null,
        'nats-server': null,
        chromium: null,
        bwrap: null,
        'wasm-c': null,
        'wasm-rust': null,
      }),
    ).toEqual([
      '[caxton tests] pgvector missing (no extension): skipping the tests that need it; install it with: sudo scripts/setup-pgvector.sh',
    ]);
    expect(
      missingLines({
        postgresql: null,
        pgvector: null,
        'postgresql-server': null,
        promtool: null,
        'nats-server': 'nats-server not found on PATH (ENOENT)',
        chromium: null,
        bwrap: null,
        'wasm-c': null,
        'wasm-rust': null,
      }),
    ).toEqual([
      '[caxton tests] nats-server missing (nats-server not found on PATH (ENOENT)): skipping the tests that need it; install it with: sudo apt-get install nats-server (or set CAXTON_TEST_NATS_SERVER to its path)',
    ]);
  });
});
