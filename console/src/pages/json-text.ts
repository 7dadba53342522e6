/**
 * JSON text typed by a person (the Tools page's argument fields): parsed, or refused with the line
 * and column of the first problem. Browsers word JSON.parse errors differently and not all give a
 * position, so the position comes from a small scanner of our own.
 */

/** A JSON.parse failure with where it is: "line 2, column 5: ...". */
export class JsonTextError extends Error {
  constructor(
    readonly line: number,
    readonly column: number,
    readonly reason: string,
  ) {
    super(`line ${line}, column ${column}: ${reason}`);
  }
}

/** Parses JSON text, throwing a JsonTextError with the line and column of the first problem (found by scanning, as browsers word JSON.parse errors differently and not all give a position). */
export function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const found = firstJsonError(text);
    const at = found?.at ?? text.length;
    const before = text.slice(0, at).split('\n');
    throw new JsonTextError(
      before.length,
      before.at(-1)!.length + 1,
      found?.reason ?? (e instanceof Error ? e.message : 'invalid JSON'),
    );
  }
}

/** Where JSON text first goes wrong, and why (undefined: it is valid). */
export function firstJsonError(s: string): { at: number; reason: string } | undefined {
  let i = 0;
  class Stop {
    constructor(
      readonly at: number,
      readonly reason: string,
    ) {}
  }
  const fail = (reason: string, at = i): never => {
    throw new Stop(at, reason);
  };
  const ws = () => {
    while (i < s.length && ' \t\n\r'.includes(s[i]!)) i++;
  };
  const what = () => (i >= s.length ? 'the end of the text' : JSON.stringify(s[i]));
  const value = (): void => {
    ws();
    const c = s[i];
    if (c === '{') {
      i++;
      ws();
      if (s[i] === '}') return void i++;
      for (;;) {
        ws();
        if (s[i] !== '"') fail(`expected a property name in double quotes, found ${what()}`);
        string();
        ws();
        if (s[i] !== ':') fail(`expected ":" after the property name, found ${what()}`);
        i++;
        value();
        ws();
        if (s[i] === ',') {
          i++;
          continue;
        }
        if (s[i] === '}') return void i++;
        fail(`expected "," or "}" in the object, found ${what()}`);
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (s[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (s[i] === ',') {
          i++;
          continue;
        }
        if (s[i] === ']') return void i++;
        fail(`expected "," or "]" in the array, found ${what()}`);
      }
    }
    if (c === '"') return string();
    const lit = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(s.slice(i, i + 400));
    if (lit) return void (i += lit[0].length);
    fail(`expected a value, found ${what()}`);
  };
  const string = () => {
    const start = i++;
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\') i++;
      else if (s[i]! < ' ') fail('a control character (a line break?) inside a string');
      i++;
    }
    if (i >= s.length) fail('the string is never closed', start);
    i++;
  };
  try {
    value();
    ws();
    if (i < s.length) fail(`unexpected ${what()} after the JSON value`);
    return undefined;
  } catch (e) {
    if (e instanceof Stop) return { at: e.at, reason: e.reason };
    throw e;
  }
}
