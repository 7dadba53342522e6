import { CaxtonError, type ErrorCode } from '../shared/errors.js';
import { decodeUtf8 } from '../shared/utf8.js';
import { parseJsonText, scanJsonText } from '../shared/json-text.js';

/** Where a JSON text stops being JSON: 0-based offset, 1-based line and column, and what is wrong. */
export interface JsonSyntaxProblem {
  offset: number;
  line: number;
  column: number;
  problem: string;
}

/** Finds the first syntax error of a JSON text (iterative, linear). Undefined when the text is valid JSON. */
export function locateJsonError(text: string): JsonSyntaxProblem | undefined {
  const p = scanJsonText(text, { duplicateKeys: false, prototypeKeys: false });
  return p && { offset: p.offset, line: p.line, column: p.column, problem: p.problem };
}

/**
 * Parses a raw request body as JSON. Errors are `code` (400) naming the line and column, so a
 * client sees exactly where its body stops being JSON; the text is scanned before JSON.parse, so
 * nesting deeper than MAX_INPUT_DEPTH is a 400 input_too_deep before anything recursive sees it,
 * and a duplicate key or a prototype key (`__proto__`, `constructor.prototype`) is a 400 naming it.
 */
export function parseJsonBody(body: Buffer | string | undefined, code: ErrorCode = 'invalid_request'): unknown {
  if (body === undefined || body.length === 0) {
    throw new CaxtonError(code, 'the request body is empty; send a JSON object (content type application/json)', {
      issues: [{ field: '(body)', message: 'is empty' }],
    });
  }
  let text: string;
  if (typeof body === 'string') text = body;
  else {
    const dec = decodeUtf8(body);
    if (!dec.ok) {
      const message = `the request body is not valid UTF-8 (invalid byte at line ${dec.line}, column ${dec.column})`;
      throw new CaxtonError(code, message, {
        line: dec.line,
        column: dec.column,
        issues: [{ field: '(body)', message }],
      });
    }
    text = dec.text;
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return parseJsonText(text, { where: 'the request body', code });
}
