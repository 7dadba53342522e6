/**
 * Starts the longest test files first. vitest orders files by the durations it cached on the last
 * run, which a fresh clone (CI) does not have: it then orders by file size, and a 100-second file
 * that starts last holds the whole run up by its length. test/durations.json holds the seconds of
 * each file that took 5 s or more on a full run (`node scripts/test-durations.mjs` writes it from
 * a vitest JSON report); a file missing from it only loses its head start.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const durations = JSON.parse(readFileSync(new URL('../durations.json', import.meta.url), 'utf8')) as Record<
  string,
  number
>;

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const seconds = (f: TestSpecification) => durations[relative(f.project.config.root, f.moduleId)] ?? 0;
    // Array.prototype.sort is stable: the files without a duration keep vitest's order.
    return sorted.sort((a, b) => seconds(b) - seconds(a));
  }
}
