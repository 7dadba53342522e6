/**
 * "Did you mean" suggestions (src/shared/suggest.ts) for outside input: the same answers as
 * comparing with every candidate, but a long unknown key (an ACL parameter, an agent-file key) is
 * not compared character by character with every candidate — fuzzing found a 180 KB message key
 * costing a second of event-loop time (test/fuzz/corpus/acl-message/).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { closest, levenshtein } from '../../src/shared/suggest.js';

/** The definition: the candidate with the smallest edit distance, if within the typo threshold. */
function naive(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) {
      bestDist = d;
      best = c;
    }
  }
  return best !== undefined && bestDist <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

const KEYS = [
  'performative',
  'sender',
  'receivers',
  'reply_to',
  'content',
  'language',
  'encoding',
  'ontology',
  'protocol',
  'conversation_id',
  'reply_with',
  'in_reply_to',
  'reply_by',
  'capability',
];

describe('closest', () => {
  it('gives the same suggestion as comparing with every candidate', () => {
    const word = fc.oneof(
      fc
        .constantFrom(...KEYS)
        .chain((k) =>
          fc.tuple(fc.nat(k.length), fc.string({ maxLength: 3 })).map(([i, s]) => k.slice(0, i) + s + k.slice(i + 1)),
        ),
      fc.string({ maxLength: 40 }),
    );
    fc.assert(
      fc.property(word, fc.shuffledSubarray(KEYS, { minLength: 1 }), (w, cands) => {
        expect(closest(w, cands)).toBe(naive(w, cands));
      }),
      { numRuns: 3000 },
    );
  });

  it('suggests for typos and nothing for a 200,000-character key', () => {
    expect(closest('recievers', KEYS)).toBe('receivers');
    expect(closest('in-reply-tp'.replace(/-/g, '_'), KEYS)).toBe('in_reply_to');
    expect(closest('&a '.repeat(70_000), KEYS)).toBeUndefined();
  });
});
