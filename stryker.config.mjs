// Mutation testing: `npm run mutate` mutates the modules where a silent break costs
// most and runs the vitest tests related to each mutant. Too slow for CI on 2 cores (see
// docs/mutation.md for the time it takes and the surviving mutants); run it before changing
// these modules. Narrow it with --mutate, e.g. `npm run mutate -- --mutate src/shared/secrets.ts`.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts', related: true },
  plugins: ['@stryker-mutator/vitest-runner'],
  mutate: [
    'src/messaging/protocols/selection.ts',
    'src/messaging/performatives.ts',
    'src/messaging/dispatcher.ts',
    'src/shared/secrets.ts',
    'src/shared/secret-matcher.ts',
    'src/shared/stream-scrub.ts',
    'src/memory/scope.ts',
    'src/tools/servers/manifest-limits.ts',
  ],
  coverageAnalysis: 'perTest',
  concurrency: 1,
  timeoutMS: 60_000,
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
