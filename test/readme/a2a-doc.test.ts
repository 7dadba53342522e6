/**
 * docs/a2a.md's examples, run as written (test/readme/runner.ts): a `caxton init` project with its
 * agent exposed over A2A, its card read and a message answered over JSON-RPC with curl, then over
 * HTTP+JSON (the task read back and listed).
 */
import { describe, expect, it } from 'vitest';
import { docRun } from './doc-run.js';

const docs = docRun('docs/a2a.md');

describe('docs/a2a.md', () => {
  it('runs every block to exit 0: the card is read, the message is answered by a completed task', () => {
    expect(docs().runs.filter((r) => !r.block.background && r.code !== 0)).toEqual([]);
    const outs = docs()
      .runs.map((r) => r.stdout)
      .join('\n');
    expect(outs).toContain('"protocolBinding":"JSONRPC"');
    expect(outs).toContain('"state":"TASK_STATE_COMPLETED"');
    expect(outs).toContain('The answer is 42.');
    // The HTTP+JSON block: the task read back completed, and listed once.
    expect(docs().runs.some((r) => /^"state":"TASK_STATE_COMPLETED"\n1\n?$/.test(r.stdout))).toBe(true);
  });
});
