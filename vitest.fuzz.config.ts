import { defineConfig } from 'vitest/config';

/** `npm run fuzz`: the fuzz harness (test/fuzz/*.fuzz.ts; budget and seed in docs/fuzzing.md). */
export default defineConfig({
  test: {
    include: ['test/fuzz/**/*.fuzz.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // The two files (in-process parsers, HTTP) run side by side: the budget is time, so the wall
    // time is what it costs (about two minutes at the default 8 s per target).
    fileParallelism: true,
    maxWorkers: 2,
    // Each target's progress line (runs, seed) is part of the CI log.
    silent: false,
  },
});
