/**
 * The secret scrubber (src/shared/secrets.ts, ADR 0017): every encoding of a configured secret is
 * replaced by "***", wherever it sits in a text, and nothing else is touched.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CaxtonError } from '../../src/shared/errors.js';
import { MIN_SECRET_LENGTH, SecretScrubber, secretVariants } from '../../src/shared/secrets.js';

const KEY = 'sk-test-0123456789abcdef/+=?&"\\ é';

/** The characters of base64(prefix + secret + suffix) that depend only on the secret: [start, end). */
function b64Span(prefixLen: number, secretLen: number): [number, number] {
  return [Math.ceil((8 * prefixLen) / 6), Math.floor((8 * (prefixLen + secretLen)) / 6)];
}

describe('SecretScrubber', () => {
  const s = new SecretScrubber([KEY]);

  it('replaces the secret as written, JSON-escaped, URL-encoded, form-encoded, base64, base64url and hex', () => {
    const bytes = Buffer.from(KEY, 'utf8');
    const forms = [
      KEY,
      JSON.stringify(KEY).slice(1, -1),
      encodeURIComponent(KEY),
      encodeURIComponent(KEY).replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()),
      new URLSearchParams({ k: KEY }).toString().slice(2),
      bytes.toString('base64'),
      bytes.toString('base64url'),
      bytes.toString('hex'),
      bytes.toString('hex').toUpperCase(),
    ];
    for (const f of forms) {
      const out = s.scrub(`before ${f} after`);
      expect(out, f).not.toContain(f);
      expect(out, f).toMatch(/^before \*\*\*.{0,3} after$/);
    }
  });

  it('finds the key inside a longer base64 string at every byte alignment (Basic base64(user:key))', () => {
    for (const user of ['', 'a', 'ab', 'abc', 'user', 'admin:x']) {
      const encoded = Buffer.from(`${user}:${KEY}`).toString('base64');
      const out = s.scrub(`Authorization: Basic ${encoded}`);
      const [start, end] = b64Span(user.length + 1, Buffer.byteLength(KEY));
      expect(out).toBe(`Authorization: Basic ${encoded.slice(0, start)}***${encoded.slice(end)}`);
      const url = Buffer.from(`${user}:${KEY}`).toString('base64url');
      expect(s.scrub(url)).not.toContain(url.slice(start, end));
    }
  });

  it('replaces every occurrence, and overlapping or adjacent ones once', () => {
    expect(s.scrub(`${KEY}${KEY} and ${KEY}`)).toBe('*** and ***');
    const overlap = new SecretScrubber(['abcdefgh12', 'gh12345678']);
    expect(overlap.scrub('xx abcdefgh12345678 yy')).toBe('xx *** yy');
    expect(overlap.scrub('xx abcdefgh12 gh12345678 yy')).toBe('xx *** *** yy');
  });

  it('leaves text without a secret unchanged (the same string) and ignores secrets shorter than 8 characters', () => {
    const text = 'nothing to see here: sk-test-0123456 is only a prefix';
    expect(s.scrub(text)).toBe(text);
    const short = new SecretScrubber(['short', '1234567']);
    expect(short.size).toBe(0);
    expect(short.scrub('short 1234567')).toBe('short 1234567');
    expect(secretVariants('1234567')).toEqual([]);
    expect(secretVariants('12345678').every((v) => v.length >= MIN_SECRET_LENGTH)).toBe(true);
  });

  it('scrubs strings and keys inside values, and errors with their details and causes in place', () => {
    const v = s.scrubValue({ a: [`x ${KEY}`, 1, null, { [KEY]: encodeURIComponent(KEY) }], n: 2 });
    expect(v).toEqual({ a: ['x ***', 1, null, { '***': '***' }], n: 2 });
    const cause = new Error(`inner ${KEY}`);
    const e = new Error(`outer ${Buffer.from(KEY).toString('base64')}`, { cause }) as Error & { details?: unknown };
    e.details = { body: KEY };
    s.scrubError(e);
    expect(e.message).toMatch(/^outer \*\*\*.{0,3}$/); // the padding of the base64 form may stay
    expect(e.stack).not.toContain(Buffer.from(KEY).toString('base64'));
    expect(e.details).toEqual({ body: '***' });
    expect(cause.message).toBe('inner ***');
  });

  it('a hostile text (a megabyte of near-misses) is scrubbed correctly in one pass', () => {
    const near = KEY.slice(0, -1);
    const text = `${near}`.repeat(30_000) + KEY;
    const out = s.scrub(text);
    expect(out.endsWith('***')).toBe(true);
    expect(out.length).toBe(text.length - KEY.length + 3);
  });

  it('property: any secret, embedded in any text in any of its encodings, is gone and the rest is kept', () => {
    const secretArb = fc.string({ minLength: MIN_SECRET_LENGTH, maxLength: 40, unit: 'grapheme' }).filter((x) => x.length >= MIN_SECRET_LENGTH);
    // Surrounding text from an alphabet no encoding of a secret uses, so a match can only be the secret.
    const around = fc.string({ maxLength: 30, unit: fc.constantFrom('.', ',', ';', ' ', '|', '#') });
    fc.assert(
      fc.property(secretArb, around, around, fc.constantFrom('raw', 'json', 'uri', 'form', 'hex'), (secret, pre, post, enc) => {
        const scrubber = new SecretScrubber([secret]);
        const bytes = Buffer.from(secret, 'utf8');
        const encoded =
          enc === 'raw'
            ? secret
            : enc === 'json'
              ? JSON.stringify(secret).slice(1, -1)
              : enc === 'uri'
                ? encodeURIComponent(secret)
                : enc === 'form'
                  ? new URLSearchParams({ k: secret }).toString().slice(2)
                  : bytes.toString('hex');
        expect(scrubber.scrub(`${pre}${encoded}${post}`)).toBe(`${pre}***${post}`);
      }),
      { numRuns: 300 },
    );
  });

  it('property: inside any base64 or base64url string, the characters that encode only the secret are replaced', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20 }), fc.string({ minLength: MIN_SECRET_LENGTH, maxLength: 40 }), fc.uint8Array({ maxLength: 20 }), fc.boolean(), (pre, secret, post, url) => {
        const bytes = Buffer.from(secret, 'utf8');
        const encoded = Buffer.concat([pre, bytes, post]).toString(url ? 'base64url' : 'base64');
        const [start, end] = b64Span(pre.length, bytes.length);
        const out = new SecretScrubber([secret]).scrub(encoded);
        expect(out).not.toContain(encoded.slice(start, end));
        expect(out).toContain('***');
      }),
      { numRuns: 300 },
    );
  });
});

describe('CaxtonError', () => {
  it('is built with its message and details scrubbed of the registered secrets', async () => {
    const { registerSecrets } = await import('../../src/shared/secrets.js');
    registerSecrets(['registered-secret-value-42']);
    const e = new CaxtonError('llm_error', 'provider said: bad key registered-secret-value-42', { body: encodeURIComponent('registered-secret-value-42') });
    expect(e.message).toBe('provider said: bad key ***');
    expect(e.details).toEqual({ body: '***' });
  });
});
