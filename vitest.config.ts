import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Probes PostgreSQL + pgvector and promtool once per run: missing ones skip their tests with one
    // printed line each, or fail the run in CI (test/helpers/system.ts).
    globalSetup: ['test/helpers/system-setup.ts'],
  },
});
