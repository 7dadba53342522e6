import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Probes PostgreSQL + pgvector and promtool once per run: missing ones skip their tests with one
    // printed line each, or fail the run in CI (test/helpers/system.ts).
    // test/package/setup.ts starts `npm pack` + the global install of the tarball in the background
    // when the run includes test/package/pack.test.ts, so it overlaps the other files.
    // The CLI's credentials and servers' run records (src/auth/local.ts) stay out of the real home.
    env: { CAXTON_HOME: join(tmpdir(), `caxton-test-home-${process.pid}`) },
    globalSetup: ['test/helpers/system-setup.ts', 'test/package/setup.ts'],
  },
});
