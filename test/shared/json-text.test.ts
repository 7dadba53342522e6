/**
 * The JSON text scanner run on every request body and import (src/shared/json-text.ts): it agrees
 * with JSON.parse on what is JSON, and finds depth, duplicate keys and prototype keys with the
 * line, column and path — iteratively, so any depth is safe to scan.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CaxtonError } from '../../src/shared/errors.js';
import { jsonProblemError, parseJsonText, scanJsonText } from '../../src/shared/json-text.js';

const plain = { duplicateKeys: false, prototypeKeys: false };

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

describe('scanJsonText', () => {
  it('agrees with JSON.parse on generated JSON and on mutations of it', () => {
    fc.assert(
      fc.property(
        fc.json(),
        fc.nat(),
        fc.constantFrom('', '"', ',', '}', ']', '{', '[', ':', '\\', ' ', '01', '-', 'tru', '\u0001', '1e', '"\\u12"'),
        (text, at, insert) => {
          expect(scanJsonText(text, plain)).toBeUndefined();
          const i = at % (text.length + 1);
          const mutated = text.slice(0, i) + insert + text.slice(i);
          expect(scanJsonText(mutated, plain) === undefined).toBe(parses(mutated));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('scans 1,000,000 levels without recursion and stops at the limit with the path', () => {
    const deep = '['.repeat(1_000_000) + ']'.repeat(1_000_000);
    expect(scanJsonText(deep, plain)).toBeUndefined();
    const p = scanJsonText('{"a":{"b":[[{"c":1}]]}}', { maxDepth: 4 });
    expect(p).toMatchObject({ kind: 'too_deep', line: 1, column: 13, path: 'a.b[0][0]' });
    expect(scanJsonText('{"a":{"b":[[{"c":1}]]}}', { maxDepth: 5 })).toBeUndefined();
  });

  it('finds duplicate keys (also when escaped differently), not the same key in different objects', () => {
    expect(scanJsonText('{"a":1,\n "\\u0061":2}')).toMatchObject({
      kind: 'duplicate_key',
      key: 'a',
      line: 2,
      column: 2,
      path: 'a',
    });
    expect(scanJsonText('{"a":{"a":1},"b":[{"a":1},{"a":2}]}')).toBeUndefined();
    expect(scanJsonText('[{"k":1},{"x":[{"k":1,"k":2}]}]')).toMatchObject({
      kind: 'duplicate_key',
      key: 'k',
      path: '[1].x[0].k',
    });
  });

  it('finds __proto__ anywhere and prototype under constructor', () => {
    expect(scanJsonText('{"x":[{"__proto__":{}}]}')).toMatchObject({
      kind: 'forbidden_key',
      key: '__proto__',
      path: 'x[0].__proto__',
    });
    expect(scanJsonText('{"\\u005f_proto__":1}')).toMatchObject({ kind: 'forbidden_key', key: '__proto__' });
    expect(scanJsonText('{"constructor":{"prototype":{"polluted":true}}}')).toMatchObject({
      kind: 'forbidden_key',
      key: 'prototype',
      path: 'constructor.prototype',
    });
    expect(scanJsonText('{"constructor":"x","prototype":"y","a":{"prototype":1}}')).toBeUndefined();
    expect(scanJsonText('{"__proto__":1}', plain)).toBeUndefined();
  });
});

describe('parseJsonText', () => {
  it('throws input_too_deep naming where, the limit, line and column', () => {
    const text = `{"a":\n${'['.repeat(100)}${']'.repeat(100)}}`;
    let err: unknown;
    try {
      parseJsonText(text, { where: 'the request body' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CaxtonError);
    expect(err).toMatchObject({ code: 'input_too_deep', status: 400, details: { limit: 64, line: 2, column: 64 } });
    expect((err as Error).message).toBe(
      'the request body is nested more than 64 levels deep; flatten it (the limit is 64 levels of objects and arrays) (at line 2, column 64)',
    );
  });

  it('parses what it accepts exactly like JSON.parse', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = JSON.stringify(v);
        let expected: unknown;
        try {
          expected = parseJsonText(text, { where: 'x', duplicateKeys: false, prototypeKeys: false, maxDepth: 1000 });
        } catch {
          return;
        }
        expect(expected).toEqual(JSON.parse(text));
      }),
      { numRuns: 500 },
    );
  });

  it('answers every text as the scan followed by JSON.parse does, values and errors alike', () => {
    // parseJsonText skips the scan when it can prove the scan would pass: this is the proof's check.
    const outcome = (f: () => unknown): unknown => {
      try {
        return { value: f() };
      } catch (e) {
        return { error: (e as CaxtonError).message, code: (e as CaxtonError).code };
      }
    };
    const fragments = [
      '',
      '"a":1,"a":2,',
      '"a":1,',
      '{"x":{"y":1,"y":2}}',
      '{"y":1},{"y":2}',
      '"__proto__":1,',
      '{"constructor":{"prototype":1}}',
      '"\\u0061":1,"a":2,',
      '":"',
      '"a":',
      '['.repeat(70) + ']'.repeat(70),
      '{"a":'.repeat(3) + '1}}}',
      ',',
      '"',
      '{',
      ':',
    ];
    fc.assert(
      fc.property(
        fc.jsonValue(),
        fc.nat(),
        fc.constantFrom(...fragments),
        fc.boolean(),
        fc.boolean(),
        (v, at, insert, duplicateKeys, prototypeKeys) => {
          const text = JSON.stringify(v) ?? 'null';
          const i = at % (text.length + 1);
          for (const t of [text, text.slice(0, i) + insert + text.slice(i), `{${insert}"z":${text}}`]) {
            const opts = { where: 'the body', duplicateKeys, prototypeKeys };
            const expected = outcome(() => {
              const p = scanJsonText(t, { ...opts, maxDepth: 64 });
              if (p) throw jsonProblemError(p, 'the body');
              return JSON.parse(t) as unknown;
            });
            expect(outcome(() => parseJsonText(t, opts))).toEqual(expected);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});
