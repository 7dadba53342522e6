/**
 * docs/signed-messages.md's example, run as written (test/readme/runner.ts): a caller's Ed25519 key
 * registered with the CLI, a message signed with nothing but node:crypto accepted, the same one
 * sent again refused as a replay, a changed one refused, and the stored message naming its signer.
 */
import { describe, expect, it } from 'vitest';
import { docRun } from './doc-run.js';

const docs = docRun('docs/signed-messages.md');

describe('docs/signed-messages.md', () => {
  it('runs every block to exit 0: the signed message accepted, a copy and a changed one refused', () => {
    expect(docs().runs.filter((r) => !r.block.background && r.code !== 0)).toEqual([]);
    const out = docs()
      .runs.map((r) => r.stdout)
      .join('\n');
    expect(out).toContain('signed: 202 accepted');
    expect(out).toContain('sent again: 409 replayed');
    expect(out).toContain('changed: 403 signature_invalid');
    expect(out).toMatch(/signed by key:admin with sk_[A-Za-z0-9_-]{22}/);
  });
});
