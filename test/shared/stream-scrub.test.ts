/**
 * StreamScrubber (src/shared/stream-scrub.ts): a text read in pieces is released scrubbed exactly
 * as the whole text scrubbed at once — whatever the boundaries, with secrets split at every
 * position, overlapping, adjacent or at the very end — and text that begins no secret is released
 * as soon as it arrives.
 */
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { registerSecrets, SecretScrubber, secretVariants } from '../../src/shared/secrets.js';
import { StreamScrubber } from '../../src/shared/stream-scrub.js';

const KEY = 'sk-proj-0123456789abcdef/+=';

/** The pieces released while reading `pieces`, then what the end released. */
function stream(s: SecretScrubber, pieces: string[]): { released: string[]; last: string; joined: string } {
  const sc = new StreamScrubber(s);
  const released = pieces.map((p) => sc.push(p));
  const last = sc.flush();
  return { released, last, joined: released.join('') + last };
}

/** `text` cut at the given positions. */
function cutAt(text: string, cuts: number[]): string[] {
  const at = [0, ...[...new Set(cuts)].sort((a, b) => a - b), text.length];
  return at.slice(1).map((end, i) => text.slice(at[i], end));
}

describe('StreamScrubber', () => {
  let s: SecretScrubber;
  beforeEach(() => {
    s = new SecretScrubber([KEY]);
  });

  it('a secret split in two at every position, in every form, is released as the whole text is scrubbed', () => {
    for (const form of secretVariants(KEY)) {
      const text = `before ${form} after`;
      const whole = s.scrub(text);
      expect(whole, form).not.toContain(form);
      for (let i = 0; i <= text.length; i++)
        expect(stream(s, cutAt(text, [i])).joined, `${form} cut at ${i}`).toBe(whole);
    }
  });

  it('a secret split into pieces of every size from 1 to its length is never released whole, nor any piece of it', () => {
    const text = `the key: ${KEY}. Done.`;
    for (let size = 1; size <= KEY.length; size++) {
      const pieces = text.match(new RegExp(`[^]{1,${size}}`, 'g'))!;
      const { released, joined } = stream(s, pieces);
      expect(joined, `pieces of ${size}`).toBe('the key: ***. Done.');
      // Nothing of the key itself ever left: the text before it, then "***".
      expect(released.join('').startsWith('the key: ')).toBe(true);
      for (const r of released) expect(r.replace(/^the key: /, '')).not.toMatch(/sk-|0123|cdef/);
    }
  });

  it('two overlapping secrets become one "***", as in the whole text, wherever the text is cut', () => {
    const a = 'ABCDEFGHIJ';
    const b = 'GHIJKLMNOP'; // overlaps a's end
    const two = new SecretScrubber([a, b]);
    const text = 'x ABCDEFGHIJKLMNOP y';
    expect(two.scrub(text)).toBe('x *** y');
    for (let i = 0; i <= text.length; i++)
      for (let j = i; j <= text.length; j++)
        expect(stream(two, cutAt(text, [i, j])).joined, `cut at ${i}, ${j}`).toBe('x *** y');
  });

  it('adjacent secrets, and a secret inside a longer one, read as in the whole text', () => {
    const two = new SecretScrubber(['secret-one', 'secret-one-and-more', 'secret-two']);
    for (const text of [
      'secret-onesecret-two!',
      'a secret-one-and-more b',
      'secret-one-and-mo',
      'xsecret-onsecret-one',
    ]) {
      const whole = two.scrub(text);
      for (let i = 0; i <= text.length; i++)
        expect(stream(two, cutAt(text, [i])).joined, `${text} cut at ${i}`).toBe(whole);
      expect(stream(two, [...text]).joined, `${text} one character at a time`).toBe(whole);
    }
  });

  it('a secret at the very end is held until the end, then released as "***"', () => {
    const sc = new StreamScrubber(s);
    expect(sc.push('The key is ')).toBe('The key is ');
    for (const piece of KEY.match(/[^]{1,8}/g)!) expect(sc.push(piece)).toBe('');
    expect(sc.flush()).toBe('***');
  });

  it('the beginning of a secret that never completes is released intact at the end', () => {
    const text = `almost ${KEY.slice(0, -1)}`;
    expect(stream(s, text.match(/[^]{1,8}/g)!).joined).toBe(text);
  });

  it('holds back no more than the longest form of a secret minus one character', () => {
    const longest = Math.max(...secretVariants(KEY).map((v) => v.length));
    const sc = new StreamScrubber(s);
    // The secret's longest form, but one character short: everything may still complete it.
    const form = secretVariants(KEY).find((v) => v.length === longest)!;
    expect(sc.push(`x${form.slice(0, -1)}`)).toBe('x');
    expect(sc.push('!')).toBe(`${form.slice(0, -1)}!`);
  });

  it('ordinary text is released as soon as it arrives, piece for piece', () => {
    const pieces = ['Hello, ', 'world. ', 'Nothing ', 'to hide ', 'here.'];
    expect(stream(s, pieces).released).toEqual(pieces);
  });

  it('without a secret, every piece is released unchanged at once', () => {
    const none = new SecretScrubber([]);
    const pieces = ['sk-proj-', '01234567', 'whatever'];
    const { released, last } = stream(none, pieces);
    expect(released).toEqual(pieces);
    expect(last).toBe('');
  });

  it('after flush it starts afresh: a part that ends with the start of a secret does not join the next part', () => {
    const sc = new StreamScrubber(s);
    expect(sc.push(`a ${KEY.slice(0, 10)}`)).toBe('a ');
    expect(sc.flush()).toBe(KEY.slice(0, 10));
    expect(sc.push(`${KEY.slice(10)} b`)).toBe(`${KEY.slice(10)} b`);
  });

  it('a secret registered mid-stream is matched in the text still held', () => {
    const prefix = `shared-${Math.random().toString(36).slice(2)}-`;
    registerSecrets([`${prefix}AAAA`]);
    const sc = new StreamScrubber(); // the process-wide scrubber
    expect(sc.push(`x ${prefix}`)).toBe('x '); // held: it begins the registered secret
    registerSecrets([`${prefix}BBBB`]);
    expect(sc.push('BBBB y') + sc.flush()).toBe('*** y');
  });

  it('any text in any pieces is released exactly as the whole text is scrubbed (property)', () => {
    const secrets = ['abcabcab', 'bcabXYZZ', 'ZZab=+/c'];
    const scrubber = new SecretScrubber(secrets);
    const alphabet = fc.constantFrom(...'abcXYZ=+/ ');
    const text = fc.oneof(
      fc.array(alphabet, { maxLength: 60 }).map((a) => a.join('')),
      fc
        .array(
          fc.oneof(
            fc.constantFrom(...secrets),
            fc.array(alphabet, { maxLength: 4 }).map((a) => a.join('')),
          ),
          { maxLength: 10 },
        )
        .map((a) => a.join('')),
    );
    fc.assert(
      fc.property(text, fc.array(fc.nat(), { maxLength: 8 }), (t, cuts) => {
        const { joined } = stream(
          scrubber,
          cutAt(
            t,
            cuts.map((c) => c % (t.length + 1)),
          ),
        );
        expect(joined).toBe(scrubber.scrub(t));
      }),
      { numRuns: 2000 },
    );
  });
});
