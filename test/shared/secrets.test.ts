/**
 * The secret scrubber (src/shared/secrets.ts, ADR 0017): every encoding of a configured secret is
 * replaced by "***", wherever it sits in a text, and nothing else is touched.
 */
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { CaxtonError } from '../../src/shared/errors.js';
import {
  MIN_SECRET_LENGTH,
  registerSecrets,
  scrubError,
  SecretScrubber,
  scrubSecrets,
  scrubSecretsIn,
  secretScrubber,
  secretVariants,
} from '../../src/shared/secrets.js';

const KEY = 'sk-test-0123456789abcdef/+=?&"\\ é';

/** The characters of base64(prefix + secret + suffix) that depend only on the secret: [start, end). */
function b64Span(prefixLen: number, secretLen: number): [number, number] {
  return [Math.ceil((8 * prefixLen) / 6), Math.floor((8 * (prefixLen + secretLen)) / 6)];
}

// Scrubbers are built in beforeEach, not while the file is collected: a scrubber that fails to build
// must fail the tests, not the collection (which Stryker's vitest runner reads as "no test failed").
describe('SecretScrubber', () => {
  let s: SecretScrubber;
  beforeEach(() => {
    s = new SecretScrubber([KEY]);
  });

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
    const secretArb = fc
      .string({ minLength: MIN_SECRET_LENGTH, maxLength: 40, unit: 'grapheme' })
      .filter((x) => x.length >= MIN_SECRET_LENGTH);
    // Surrounding text from an alphabet no encoding of a secret uses, so a match can only be the secret.
    const around = fc.string({ maxLength: 30, unit: fc.constantFrom('.', ',', ';', ' ', '|', '#') });
    fc.assert(
      fc.property(
        secretArb,
        around,
        around,
        fc.constantFrom('raw', 'json', 'uri', 'form', 'hex'),
        (secret, pre, post, enc) => {
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
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: inside any base64 or base64url string, the characters that encode only the secret are replaced', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 20 }),
        fc.string({ minLength: MIN_SECRET_LENGTH, maxLength: 40 }),
        fc.uint8Array({ maxLength: 20 }),
        fc.boolean(),
        (pre, secret, post, url) => {
          const bytes = Buffer.from(secret, 'utf8');
          const encoded = Buffer.concat([pre, bytes, post]).toString(url ? 'base64url' : 'base64');
          const [start, end] = b64Span(pre.length, bytes.length);
          const out = new SecretScrubber([secret]).scrub(encoded);
          expect(out).not.toContain(encoded.slice(start, end));
          expect(out).toContain('***');
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('SecretScrubber: the less common encodings', () => {
  let s: SecretScrubber;
  beforeEach(() => {
    s = new SecretScrubber([KEY]);
  });

  it('replaces the \\uXXXX-escaped form (non-ASCII, quote, backslash and slash escaped) and the JSON form with "\\/"', () => {
    const unicode = 'sk-test-0123456789abcdef\\u002f+=?&\\u0022\\u005c \\u00e9';
    const slashes = 'sk-test-0123456789abcdef\\/+=?&\\"\\\\ é';
    for (const f of [unicode, slashes]) expect(s.scrub(`{"key":"${f}"}`), f).toBe('{"key":"***"}');
  });

  it('replaces the URI-encoded form with "+" for spaces, the form-encoded one and the encodeURI one, which differ for !\'()*~', () => {
    const secret = "it's a (key)!*~";
    const plus = "it's+a+(key)!*~";
    const form = 'it%27s+a+%28key%29%21*%7E';
    const uri = "it's%20a%20(key)!*~";
    const one = new SecretScrubber([secret]);
    for (const f of [plus, form, uri]) expect(one.scrub(`?q=${f}&x=1`), f).toBe('?q=***&x=1');
    expect(s.scrub('GET /x?k=sk-test-0123456789abcdef/+=?&%22%5C%20%C3%A9 HTTP/1.1')).toBe('GET /x?k=*** HTTP/1.1');
  });

  it('a secret of exactly MIN_SECRET_LENGTH characters is scrubbed in every form; one character less is not', () => {
    const eight = new SecretScrubber(['abcd1234']);
    expect(eight.size).toBe(1);
    expect([...eight.secrets]).toEqual(['abcd1234']);
    expect(eight.scrub('[abcd1234] [6162636431323334] [YWJjZDEyMzQ=]')).toBe('[***] [***] [***Q=]'); // base64: the last character also holds padding bits
    expect(new SecretScrubber(['abcd123']).scrub('abcd123')).toBe('abcd123');
    expect(new SecretScrubber(['abcd1234', 'abcd1234', 7 as unknown as string]).size).toBe(1);
  });

  it('a secret that ends another one, or sits inside it, is found wherever it occurs (failure links of the matcher)', () => {
    const m = new SecretScrubber(['xabcdefghij', 'cdefghij', 'bcdefghijkl']);
    expect(m.scrub('xabcdefghiX')).toBe('xabcdefghiX');
    expect(m.scrub('-xabcdefghiZ-abcdefghij-')).toBe('-xabcdefghiZ-ab***-');
    expect(m.scrub('xabcdefghijkl')).toBe('***');
    expect(m.scrub('zzcdefghijzz')).toBe('zz***zz');
    expect(m.scrub('xabcdefghixabcdefghij')).toBe('xabcdefghi***');
  });

  it('a match covering earlier ones replaces them all with one "***"; separate ones stay separate', () => {
    const m = new SecretScrubber(['12345678', '3456789a', '0123456789abcdef']);
    expect(m.scrub('.0123456789abcdef.')).toBe('.***.');
    expect(m.scrub('.123456789a.')).toBe('.***.');
    expect(m.scrub('.12345678.3456789a.')).toBe('.***.***.');
  });
});

describe('SecretScrubber.scrubValue and scrubError', () => {
  const SECRET = 'value-walk-secret-1';
  let s: SecretScrubber;
  beforeEach(() => {
    s = new SecretScrubber([SECRET]);
  });

  function nest(levels: number, leaf: unknown): unknown {
    let v = leaf;
    for (let i = 0; i < levels; i++) v = [v];
    return v;
  }

  it('walks 100 levels deep and replaces anything deeper by a marker, never by the unscrubbed value', () => {
    expect(s.scrubValue(nest(100, SECRET))).toEqual(nest(100, '***'));
    expect(s.scrubValue(nest(101, SECRET))).toEqual(nest(100, '[nested too deeply]'));
    expect(s.scrubValue(nest(150, { k: SECRET }))).toEqual(nest(100, '[nested too deeply]'));
    const deepObject = { a: nest(99, { b: SECRET }) };
    expect(s.scrubValue(deepObject)).toEqual({ a: nest(99, '[nested too deeply]') });
  });

  it('keeps numbers, booleans, null, undefined and non-plain objects (the same instances); scrubs null-prototype objects', () => {
    const date = new Date(0);
    const map = new Map([[SECRET, SECRET]]);
    class Holder {
      secret = SECRET;
    }
    const holder = new Holder();
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { [SECRET]: `x${SECRET}` });
    const out = s.scrubValue({ n: 1, t: true, f: false, z: null, u: undefined, big: 10n, date, map, holder, bare });
    expect(out).toEqual({
      n: 1,
      t: true,
      f: false,
      z: null,
      u: undefined,
      big: 10n,
      date,
      map,
      holder,
      bare: { '***': 'x***' },
    });
    expect(out.date).toBe(date);
    expect(out.map).toBe(map);
    expect(out.holder).toBe(holder);
    expect(s.scrubValue(42)).toBe(42);
    expect(s.scrubValue(`a ${SECRET}`)).toBe('a ***');
  });

  it('without secrets, returns text and values as they are', () => {
    const none = new SecretScrubber([]);
    const v = { a: [SECRET] };
    expect(none.size).toBe(0);
    expect(none.scrub(SECRET)).toBe(SECRET);
    expect(none.scrubValue(v)).toBe(v); // not even copied: the common case, a server without secrets
    expect(v).toEqual({ a: [SECRET] });
    const e = new Error(SECRET);
    expect(none.scrubError(e)).toBe(e);
    expect(e.message).toBe(SECRET);
  });

  it('scrubError scrubs details even when the error has no stack, and adds no details to an error without them', () => {
    const e = new Error(`m ${SECRET}`) as Error & { details?: unknown };
    delete e.stack;
    e.details = [SECRET];
    expect(s.scrubError(e)).toBe(e);
    expect(e.message).toBe('m ***');
    expect(e.stack).toBeUndefined();
    expect(e.details).toEqual(['***']);
    expect(Object.getOwnPropertyDescriptor(e, 'details')).toMatchObject({
      writable: true,
      enumerable: true,
      configurable: true,
    });
    e.details = 'replaced';
    expect(e.details).toBe('replaced');

    // V8 writes the stack text (which starts with the message) when it is first read: once read, it
    // keeps the secret unless scrubbed too.
    const plain = new Error(`p ${SECRET}`);
    expect(plain.stack).toContain(SECRET);
    s.scrubError(plain);
    expect(plain.message).toBe('p ***');
    expect(plain.stack).not.toContain(SECRET);
    expect(Object.hasOwn(plain, 'details')).toBe(false);
  });

  it('scrubError follows causes (a chain of 8), stops on a cycle, and leaves a frozen error and non-errors as they are', () => {
    let chain: Error = new Error(`0 ${SECRET}`);
    const all = [chain];
    for (let i = 1; i < 8; i++) all.push((chain = new Error(`${i} ${SECRET}`, { cause: chain })));
    s.scrubError(chain);
    expect(all.map((e) => e.message)).toEqual(['0 ***', '1 ***', '2 ***', '3 ***', '4 ***', '5 ***', '6 ***', '7 ***']);

    const loop = new Error(`loop ${SECRET}`) as Error & { cause?: unknown };
    loop.cause = loop;
    expect(s.scrubError(loop)).toBe(loop);
    expect(loop.message).toBe('loop ***');

    const frozen = Object.freeze(new Error(`frozen ${SECRET}`));
    expect(s.scrubError(frozen)).toBe(frozen);
    const text = `not an error ${SECRET}`;
    expect(s.scrubError(text)).toBe(text);
  });
});

describe('the process-wide scrubber', () => {
  it('registerSecrets adds to the secrets already registered, ignores short and known ones, and every helper reads it', () => {
    const first = 'process-wide-secret-A1';
    const second = 'process-wide-secret-B2';
    const after = registerSecrets([first, 'short']);
    expect(secretScrubber()).toBe(after);
    expect(registerSecrets(['short', 7 as unknown as string])).toBe(after);
    expect(registerSecrets([])).toBe(after);
    expect(after.secrets.has(first)).toBe(true);
    expect(after.secrets.has('short')).toBe(false);
    expect(registerSecrets([first])).toBe(after);
    const both = registerSecrets([second]);
    expect(both.secrets.has(first) && both.secrets.has(second)).toBe(true);
    expect(scrubSecrets(`${first} ${second}`)).toBe('*** ***');
    expect(scrubSecretsIn({ [first]: [second] })).toEqual({ '***': ['***'] });
    const e = scrubError(new Error(encodeURIComponent(second)));
    expect(e.message).toBe('***');
    registerSecrets(['8charsPW']);
    expect(scrubSecrets('pw=8charsPW')).toBe('pw=***');
  });
});

describe('CaxtonError', () => {
  it('is built with its message and details scrubbed of the registered secrets', async () => {
    const { registerSecrets } = await import('../../src/shared/secrets.js');
    registerSecrets(['registered-secret-value-42']);
    const e = new CaxtonError('llm_error', 'provider said: bad key registered-secret-value-42', {
      body: encodeURIComponent('registered-secret-value-42'),
    });
    expect(e.message).toBe('provider said: bad key ***');
    expect(e.details).toEqual({ body: '***' });
  });
});
