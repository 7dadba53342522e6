import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';
import LongestFirst from './test/helpers/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Four test files at a time, each worker process kept from one file to the next with its
    // loaded modules (isolate: false): most files wait on child processes, servers, browsers and
    // deadlines rather than compute, and loading the server's modules again for each of the suite's
    // files cost about as much CPU as the tests themselves (docs/testing.md, ADR 0133). Tests
    // therefore restore what they change in process-wide state (environment variables, timers).
    // `--maxWorkers=1 --isolate` on the command line goes back to one fresh process per file at a
    // time.
    maxWorkers: 4,
    isolate: false,
    sequence: { sequencer: LongestFirst },
    // A page or a server observed under three other files' load can take seconds to show a
    // change; a poll still fails when the change never comes.
    expect: { poll: { timeout: 10_000 } },
    // Probes PostgreSQL + pgvector and promtool once per run: missing ones skip their tests with one
    // printed line each, or fail the run in CI (test/helpers/system.ts).
    // test/package/setup.ts starts `npm pack` + the global install of the tarball in the background
    // when the run includes test/package/pack.test.ts, so it overlaps the other files.
    // The CLI's credentials and servers' run records (src/auth/local-auth.ts) stay out of the real home.
    env: { CAXTON_HOME: join(tmpdir(), `caxton-test-home-${process.pid}`) },
    globalSetup: ['test/helpers/system-setup.ts', 'test/package/setup.ts'],
  },
});
