/**
 * docs/runs.md's examples, run as written (test/readme/runner.ts): a background run read back by
 * its id, and a call that waits for approval, approved over REST, then finished.
 */
import { describe, expect, it } from 'vitest';
import { docRun } from './doc-run.js';

const docs = docRun('docs/runs.md');

describe('docs/runs.md', () => {
  it('runs every block to exit 0: the background run answers, the approved call runs', () => {
    expect(docs().runs.filter((r) => !r.block.background && r.code !== 0)).toEqual([]);
    const outs = docs().runs.map((r) => r.stdout);
    expect(outs.filter((o) => o.includes('"content":"The answer is 42."'))).toHaveLength(2);
    expect(outs.some((o) => o.includes('"code":"awaiting_approval"'))).toBe(true);
  });
});
