import { defineConfig } from 'vitest/config';

/** `npm run fuzz`: the fuzz harness (test/fuzz/*.fuzz.ts; budget and seed in docs/fuzzing.md). */
export default defineConfig({
  test: {
    include: ['test/fuzz/**/*.fuzz.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Each target's progress line (runs, seed) is part of the CI log.
    silent: false,
  },
});
