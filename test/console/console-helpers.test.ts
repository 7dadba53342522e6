/**
 * The console's pure helpers, without a browser: the live tails' bounded buffer (Logs and Events
 * pages) and the located JSON errors of the Tools page's argument fields.
 */
import { describe, expect, it } from 'vitest';
import { firstJsonError, JsonTextError, parseJsonText } from '../../console/src/pages/json-text.js';
import { appendBounded, MAX_LINES } from '../../console/src/pages/tail-buffer.js';
import { EVENT_TYPES, FIPA_ACTS, RUN_ORIGINS, RUN_STATUSES } from '../../console/src/vocabulary.js';
import { RUN_ORIGINS as SERVER_RUN_ORIGINS, RUN_STATUSES as SERVER_RUN_STATUSES } from '../../src/execution/index.js';
import { PERFORMATIVES } from '../../src/messaging/index.js';
import { EVENT_TYPES as SERVER_EVENT_TYPES } from '../../src/observability/events.js';

describe("the console's copies of the server's words", () => {
  it('offers exactly the performatives, event types, run states and run origins the server knows', () => {
    expect([...FIPA_ACTS].sort()).toEqual([...PERFORMATIVES].sort());
    expect([...EVENT_TYPES].sort()).toEqual([...SERVER_EVENT_TYPES].sort());
    expect([...RUN_STATUSES]).toEqual([...SERVER_RUN_STATUSES]);
    expect([...RUN_ORIGINS]).toEqual([...SERVER_RUN_ORIGINS]);
  });
});

describe('the live tail buffer', () => {
  it(`keeps the last ${MAX_LINES} lines and counts the ones it drops`, () => {
    const first = Array.from({ length: MAX_LINES - 1 }, (_, i) => i);
    expect(appendBounded(first, [MAX_LINES - 1])).toEqual({ lines: [...first, MAX_LINES - 1], dropped: 0 });
    const full = Array.from({ length: MAX_LINES }, (_, i) => i);
    const next = appendBounded(full, [MAX_LINES, MAX_LINES + 1, MAX_LINES + 2]);
    expect(next.dropped).toBe(3);
    expect(next.lines).toHaveLength(MAX_LINES);
    expect(next.lines[0]).toBe(3);
    expect(next.lines.at(-1)).toBe(MAX_LINES + 2);
    // A batch larger than the bound keeps its own newest lines.
    expect(appendBounded([1, 2], [3, 4, 5, 6], 3)).toEqual({ lines: [4, 5, 6], dropped: 3 });
  });
});

describe('located JSON errors', () => {
  const where = (text: string) => {
    try {
      parseJsonText(text);
    } catch (e) {
      expect(e).toBeInstanceOf(JsonTextError);
      const j = e as JsonTextError;
      return `${j.line}:${j.column} ${j.reason}`;
    }
    return 'valid';
  };

  it('parses valid JSON and says nothing is wrong with it', () => {
    expect(parseJsonText('{"a": [1, -2.5e3, true, null, "x\\"y"]}')).toEqual({ a: [1, -2500, true, null, 'x"y'] });
    for (const ok of ['0', '"s"', '[]', '{}', ' {"a": {"b": [{}]}} ', '-0.5'])
      expect(firstJsonError(ok), ok).toBeUndefined();
  });

  it('names the line and column of the first problem, and what was expected', () => {
    expect(where('{\n  "a": 1,\n  "b": \n}')).toBe('4:1 expected a value, found "}"');
    expect(where('{"a": 1,}')).toBe('1:9 expected a property name in double quotes, found "}"');
    expect(where('[1 2]')).toBe('1:4 expected "," or "]" in the array, found "2"');
    expect(where('{"a" 1}')).toBe('1:6 expected ":" after the property name, found "1"');
    expect(where("{'a': 1}")).toBe('1:2 expected a property name in double quotes, found "\'"');
    expect(where('{"a": 1')).toBe('1:8 expected "," or "}" in the object, found the end of the text');
    expect(where('{"a": "open')).toBe('1:7 the string is never closed');
    expect(where('{"a": "line\nbreak"}')).toBe('1:12 a control character (a line break?) inside a string');
    expect(where('{} x')).toBe('1:4 unexpected "x" after the JSON value');
    expect(where('')).toBe('1:1 expected a value, found the end of the text');
    expect(where('[01]')).toBe('1:3 expected "," or "]" in the array, found "1"');
  });
});
