/**
 * vitest global setup: probes the system components once per run (test/helpers/system.ts),
 * prints one line per missing one, and hands the result to the test files (`inject`). In CI
 * (CI=true or CAXTON_TEST_REQUIRE_SYSTEM=1) a missing component fails the run here, before any
 * test starts.
 */
import type { TestProject } from 'vitest/node';
import { appendFileSync } from 'node:fs';
import { missingLines, probeSystem, systemRequired } from './system-probe.js';

export default async function setup(project: TestProject): Promise<void> {
  const status = await probeSystem();
  const required = systemRequired();
  const lines = missingLines(status, required);
  if (lines.length > 0 && required) {
    const log = process.env.CAXTON_TEST_SKIP_LOG;
    if (log) appendFileSync(log, lines.join('\n') + '\n');
    throw new Error(
      `missing system components, required in CI (CI=true or CAXTON_TEST_REQUIRE_SYSTEM=1):\n${lines.join('\n')}`,
    );
  }
  for (const line of lines) console.log(line);
  project.provide('caxtonSystem', status);
}
