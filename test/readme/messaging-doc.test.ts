/**
 * docs/messaging.md's how-to, run as written (test/readme/runner.ts): a contract net among three
 * model-driven agents, and an English auction among three collectors beside a fourth whose model
 * server is down, each agent on a scripted model of its own, against a real server.
 */
import { describe, expect, it } from 'vitest';
import { docRun } from './doc-run.js';

// Three model-driven agents and an auction: more to start than the other pages.
const docs = docRun('docs/messaging.md', 240_000);

const output = (text: string) => {
  const r = docs().runs.find((x) => x.block.code.includes(text));
  expect(r, `no runnable block runs ${text}`).toBeDefined();
  return r!.stdout + r!.stderr;
};

describe('docs/messaging.md', () => {
  it('runs every block to exit 0', () => {
    expect(docs().runs.filter((r) => !r.block.background && r.code !== 0)).toEqual([]);
  });

  it('the contract net awards the lowest price', () => {
    expect(output('fipa-contract-net')).toContain('is completed (awarded to ship-b)');
  });

  it('the English auction ends with the best live bid, the unreachable bidder shown failed', () => {
    const out = output('fipa-english-auction');
    expect(out).toContain('is completed (awarded to collector-a); went on without b5 (failed)');
    expect(out).toMatch(/failed: {7}b5 \(delivery to "b5" failed/);
  });
});
