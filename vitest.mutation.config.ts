import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * The tests Stryker runs (stryker.config.mjs, `npm run mutate`): the in-process suites of the
 * mutated modules. Suites that start `caxton serve` children run the built dist/, which Stryker's
 * mutants never reach, and would only cost time.
 */
export default defineConfig({
  test: {
    ...base.test,
    include: [
      'test/messaging/*.test.ts',
      'test/shared/*.test.ts',
      'test/memory/scope*.test.ts',
      'test/memory/sqlite-storage.test.ts',
      'test/tools/wasm/*.test.ts',
    ],
    exclude: ['test/messaging/flood.test.ts'],
    globalSetup: ['test/helpers/system-setup.ts'],
    maxWorkers: 1,
  },
});
