import { CaxtonError, type ErrorCode } from '../shared/errors.js';
import { decodeUtf8 } from '../shared/utf8.js';

/** Where a JSON text stops being JSON: 0-based offset, 1-based line and column, and what is wrong. */
export interface JsonSyntaxProblem {
  offset: number;
  line: number;
  column: number;
  problem: string;
}

class Stop {
  constructor(
    readonly offset: number,
    readonly problem: string,
  ) {}
}

const NUMBER_RE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, column: offset - start + 1 };
}

/**
 * Finds the first syntax error of a JSON text (Node 20's JSON.parse names no position). Iterative,
 * so deeply nested input cannot overflow the stack. Undefined when the text is valid JSON.
 */
export function locateJsonError(text: string): JsonSyntaxProblem | undefined {
  const n = text.length;
  let i = 0;
  const found = (): string => {
    if (i >= n) return 'the end of the input';
    const cp = text.codePointAt(i)!;
    return cp < 0x20 ? `a control character (U+${cp.toString(16).padStart(4, '0').toUpperCase()})` : `"${String.fromCodePoint(cp)}"`;
  };
  const stop = (expected: string): never => {
    throw new Stop(i, `expected ${expected} but found ${found()}`);
  };
  const ws = (): void => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else break;
    }
  };
  const string = (): void => {
    const open = i;
    i++; // the opening quote
    for (;;) {
      if (i >= n) throw new Stop(open, 'this string is never closed (missing ")');
      const c = text.charCodeAt(i);
      if (c === 34) {
        i++;
        return;
      }
      if (c === 92) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) throw new Stop(i, 'invalid \\u escape: expected 4 hex digits');
          i += 6;
        } else if (e !== undefined && ESCAPES.has(e)) i += 2;
        else throw new Stop(i, `invalid escape "\\${e ?? ''}" in a string`);
        continue;
      }
      if (c < 0x20) throw new Stop(i, 'a control character (such as a raw line break) inside a string; escape it (e.g. \\n)');
      i++;
    }
  };
  // The stack of open containers: '{' or '['.
  const stack: string[] = [];
  const value = (): 'scalar' | 'open' => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      stack.push(c);
      i++;
      return 'open';
    }
    if (c === '"') {
      string();
      return 'scalar';
    }
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      NUMBER_RE.lastIndex = i;
      const m = NUMBER_RE.exec(text);
      if (!m) stop('a number');
      i = NUMBER_RE.lastIndex;
      return 'scalar';
    }
    for (const lit of ['true', 'false', 'null']) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return 'scalar';
      }
    }
    return stop('a JSON value (object, array, string, number, true, false or null)');
  };
  try {
    // A small state machine instead of recursion.
    let state: 'value' | 'after' | 'key' | 'first-key' | 'first-item' = 'value';
    for (;;) {
      if (state === 'value') {
        if (value() === 'open') state = stack[stack.length - 1] === '{' ? 'first-key' : 'first-item';
        else state = 'after';
        continue;
      }
      if (state === 'first-item') {
        ws();
        if (text[i] === ']') {
          i++;
          stack.pop();
          state = 'after';
        } else state = 'value';
        continue;
      }
      if (state === 'first-key' || state === 'key') {
        ws();
        if (state === 'first-key' && text[i] === '}') {
          i++;
          stack.pop();
          state = 'after';
          continue;
        }
        if (text[i] !== '"') stop('a property name in double quotes');
        string();
        ws();
        if (text[i] !== ':') stop('":" after the property name');
        i++;
        state = 'value';
        continue;
      }
      // after a complete value
      ws();
      const top = stack[stack.length - 1];
      if (top === undefined) {
        if (i < n) stop('the end of the input (only one JSON value is allowed)');
        return undefined;
      }
      const close = top === '{' ? '}' : ']';
      if (text[i] === ',') {
        i++;
        state = top === '{' ? 'key' : 'value';
      } else if (text[i] === close) {
        i++;
        stack.pop();
      } else stop(`"," or "${close}"`);
    }
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
    return { offset: e.offset, ...lineColumn(text, e.offset), problem: e.problem };
  }
}

/**
 * Parses a raw request body as JSON. Errors are `code` (400) naming the line and column, so a
 * client sees exactly where its body stops being JSON.
 */
export function parseJsonBody(body: Buffer | undefined, code: ErrorCode = 'invalid_request'): unknown {
  if (body === undefined || body.length === 0) {
    throw new CaxtonError(code, 'the request body is empty; send a JSON object (content type application/json)', { issues: [{ field: '(body)', message: 'is empty' }] });
  }
  const dec = decodeUtf8(body);
  if (!dec.ok) {
    const message = `the request body is not valid UTF-8 (invalid byte at line ${dec.line}, column ${dec.column})`;
    throw new CaxtonError(code, message, { line: dec.line, column: dec.column, issues: [{ field: '(body)', message }] });
  }
  const text = dec.text.charCodeAt(0) === 0xfeff ? dec.text.slice(1) : dec.text;
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const where = locateJsonError(text);
    const message = where
      ? `the request body is not valid JSON: line ${where.line}, column ${where.column}: ${where.problem}`
      : `the request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`;
    throw new CaxtonError(code, message, { ...(where && { line: where.line, column: where.column }), issues: [{ field: '(body)', message }] });
  }
}
