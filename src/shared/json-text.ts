import { CaxtonError, type ErrorCode } from './errors.js';
import { MAX_INPUT_DEPTH, tooDeepError } from './depth.js';

/**
 * One linear, iterative pass over a JSON text from outside (request bodies, memory imports) that
 * finds what JSON.parse does not tell or does not refuse:
 *  - where the text stops being JSON (Node 20's JSON.parse names no position);
 *  - nesting deeper than a limit — checked BEFORE JSON.parse, so nothing recursive (zod,
 *    JSON.stringify, structuredClone) ever sees a value deeper than the limit;
 *  - duplicate keys in one object (JSON.parse silently keeps the last: a client's mistake, or an
 *    attempt to pass one value to a checker and another to a consumer);
 *  - prototype keys (`__proto__` anywhere, `prototype` directly under `constructor`): JSON.parse
 *    keeps them as plain data, but any later `Object.assign` or merge would turn them into
 *    prototype pollution, so they are refused with a message naming the key (ADR 0016).
 * It stops at the first problem, so a hostile text costs at most one scan.
 */

export type JsonProblemKind = 'syntax' | 'too_deep' | 'duplicate_key' | 'forbidden_key';

export interface JsonTextProblem {
  kind: JsonProblemKind;
  /** 0-based offset, 1-based line and column (in UTF-16 code units, as JavaScript counts). */
  offset: number;
  line: number;
  column: number;
  problem: string;
  /** duplicate_key / forbidden_key: the key; too_deep: the top-level key it is under (if any). */
  key?: string;
  /** duplicate_key / forbidden_key / too_deep: where in the document, e.g. `metadata.tags[2]` (`` for the top). */
  path?: string;
}

export interface JsonScanOptions {
  /** Refuse nesting deeper than this many objects/arrays (default: no limit). */
  maxDepth?: number;
  /** Refuse a key that appears twice in one object (default true). */
  duplicateKeys?: boolean;
  /** Refuse `__proto__` and `constructor.prototype` keys (default true). */
  prototypeKeys?: boolean;
}

class Stop {
  constructor(
    readonly offset: number,
    readonly kind: JsonProblemKind,
    readonly problem: string,
    readonly key?: string,
    readonly path?: string,
  ) {}
}

interface Frame {
  object: boolean;
  /** Keys seen in this object (created on the first key). */
  keys: Set<string> | undefined;
  /** The current key (object) or index (array). */
  at: string | number;
  /** The key this container is the value of, in its parent object. */
  parentKey: string | undefined;
}

const NUMBER_RE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
/** The next character inside a string that is not plain content (controls are what JSON forbids raw). */
// eslint-disable-next-line no-control-regex
const STRING_SPECIAL_RE = /["\\\u0000-\u001f]/g;
const ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);
const HEX4_RE = /^[0-9a-fA-F]{4}$/;

export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, column: offset - start + 1 };
}

/** `a.b[2].c`; keys that are not identifiers are quoted. */
function pathOf(stack: readonly Frame[], depth = stack.length): string {
  let out = '';
  for (let k = 0; k < depth; k++) {
    const at = stack[k]!.at;
    if (typeof at === 'number') out += `[${at}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(at)) out += out === '' ? at : `.${at}`;
    else out += `[${JSON.stringify(at)}]`;
  }
  return out;
}

/** Scans a JSON text; undefined when it is valid JSON without any of the refused problems. */
export function scanJsonText(text: string, opts: JsonScanOptions = {}): JsonTextProblem | undefined {
  try {
    new JsonScanner(text, opts).run();
    return undefined;
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
    return {
      kind: e.kind,
      offset: e.offset,
      ...lineColumn(text, e.offset),
      problem: e.problem,
      ...(e.key !== undefined && { key: e.key }),
      ...(e.path !== undefined && { path: e.path }),
    };
  }
}

/** One scan's position and open containers; each step throws a Stop at the first problem. */
class JsonScanner {
  readonly #text: string;
  readonly #n: number;
  readonly #maxDepth: number;
  readonly #checkDuplicates: boolean;
  readonly #checkProto: boolean;
  readonly #stack: Frame[] = [];
  #i = 0;

  constructor(text: string, opts: JsonScanOptions) {
    this.#text = text;
    this.#n = text.length;
    this.#maxDepth = opts.maxDepth ?? Number.POSITIVE_INFINITY;
    this.#checkDuplicates = opts.duplicateKeys ?? true;
    this.#checkProto = opts.prototypeKeys ?? true;
  }

  /** Scans the whole text: a small state machine instead of recursion, so deep input cannot overflow the stack. */
  run(): void {
    const text = this.#text;
    const stack = this.#stack;
    let state: 'value' | 'after' | 'key' | 'first-key' | 'first-item' = 'value';
    for (;;) {
      if (state === 'value') {
        if (this.#value() === 'open') state = stack[stack.length - 1]!.object ? 'first-key' : 'first-item';
        else state = 'after';
        continue;
      }
      if (state === 'first-item') {
        this.#ws();
        if (text[this.#i] === ']') {
          this.#i++;
          stack.pop();
          state = 'after';
        } else state = 'value';
        continue;
      }
      if (state === 'first-key' || state === 'key') {
        this.#ws();
        if (state === 'first-key' && text[this.#i] === '}') {
          this.#i++;
          stack.pop();
          state = 'after';
          continue;
        }
        if (text[this.#i] !== '"') this.#stop('a property name in double quotes');
        this.#key();
        this.#ws();
        if (text[this.#i] !== ':') this.#stop('":" after the property name');
        this.#i++;
        state = 'value';
        continue;
      }
      // after a complete value
      this.#ws();
      const top = stack[stack.length - 1];
      if (top === undefined) {
        if (this.#i < this.#n) this.#stop('the end of the input (only one JSON value is allowed)');
        return;
      }
      const close = top.object ? '}' : ']';
      if (text[this.#i] === ',') {
        this.#i++;
        if (top.object) state = 'key';
        else {
          (top.at as number)++;
          state = 'value';
        }
      } else if (text[this.#i] === close) {
        this.#i++;
        stack.pop();
      } else this.#stop(`"," or "${close}"`);
    }
  }

  #found(): string {
    const i = this.#i;
    if (i >= this.#n) return 'the end of the input';
    const cp = this.#text.codePointAt(i)!;
    return cp < 0x20
      ? `a control character (U+${cp.toString(16).padStart(4, '0').toUpperCase()})`
      : `"${String.fromCodePoint(cp)}"`;
  }

  #stop(expected: string): never {
    throw new Stop(this.#i, 'syntax', `expected ${expected} but found ${this.#found()}`);
  }

  #ws(): void {
    const text = this.#text;
    const n = this.#n;
    let i = this.#i;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else break;
    }
    this.#i = i;
  }

  /** Skips a string starting at the position (a quote); returns whether it held an escape. */
  #string(): boolean {
    const text = this.#text;
    const open = this.#i;
    let escaped = false;
    let i = open + 1;
    for (;;) {
      STRING_SPECIAL_RE.lastIndex = i;
      const m = STRING_SPECIAL_RE.exec(text);
      if (m === null) throw new Stop(open, 'syntax', 'this string is never closed (missing ")');
      i = m.index;
      const c = text.charCodeAt(i);
      if (c === 34) {
        this.#i = i + 1;
        return escaped;
      }
      if (c === 92) {
        escaped = true;
        const e = text[i + 1];
        if (e === 'u') {
          if (!HEX4_RE.test(text.slice(i + 2, i + 6)))
            throw new Stop(i, 'syntax', 'invalid \\u escape: expected 4 hex digits');
          i += 6;
        } else if (e !== undefined && ESCAPES.has(e)) i += 2;
        else throw new Stop(i, 'syntax', `invalid escape "\\${e ?? ''}" in a string`);
        continue;
      }
      throw new Stop(
        i,
        'syntax',
        'a control character (such as a raw line break) inside a string; escape it (e.g. \\n)',
      );
    }
  }

  #open(object: boolean): void {
    const stack = this.#stack;
    if (stack.length + 1 > this.#maxDepth) {
      const top = stack[0];
      throw new Stop(
        this.#i,
        'too_deep',
        `nested more than ${this.#maxDepth} levels deep`,
        top?.object && stack.length > 1 ? (top.at as string) : undefined,
        pathOf(stack),
      );
    }
    const parent = stack[stack.length - 1];
    stack.push({
      object,
      keys: undefined,
      at: object ? '' : 0,
      parentKey: parent?.object ? (parent.at as string) : undefined,
    });
    this.#i++;
  }

  #value(): 'scalar' | 'open' {
    this.#ws();
    const text = this.#text;
    const i = this.#i;
    const c = text[i];
    if (c === '{' || c === '[') {
      this.#open(c === '{');
      return 'open';
    }
    if (c === '"') {
      this.#string();
      return 'scalar';
    }
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      NUMBER_RE.lastIndex = i;
      if (!NUMBER_RE.exec(text)) this.#stop('a number');
      this.#i = NUMBER_RE.lastIndex;
      return 'scalar';
    }
    for (const lit of ['true', 'false', 'null']) {
      if (text.startsWith(lit, i)) {
        this.#i = i + lit.length;
        return 'scalar';
      }
    }
    return this.#stop('a JSON value (object, array, string, number, true, false or null)');
  }

  #key(): void {
    const text = this.#text;
    const stack = this.#stack;
    const start = this.#i;
    const escaped = this.#string();
    const end = this.#i;
    const frame = stack[stack.length - 1]!;
    const k = escaped ? (JSON.parse(text.slice(start, end)) as string) : text.slice(start + 1, end - 1);
    frame.at = k;
    if (this.#checkProto && (k === '__proto__' || (k === 'prototype' && frame.parentKey === 'constructor'))) {
      const what = k === '__proto__' ? '"__proto__"' : '"constructor.prototype"';
      throw new Stop(
        start,
        'forbidden_key',
        `the key ${what} is refused: it could change object prototypes (prototype pollution); rename it`,
        k,
        pathOf(stack),
      );
    }
    if (this.#checkDuplicates) {
      frame.keys ??= new Set();
      if (frame.keys.has(k))
        throw new Stop(
          start,
          'duplicate_key',
          `the key ${JSON.stringify(k)} appears twice in the same object; keep one`,
          k,
          pathOf(stack),
        );
      frame.keys.add(k);
    }
  }
}

export interface ParseJsonTextOptions extends JsonScanOptions {
  /** Names the text in messages, e.g. "the request body", "line 3 of the import". */
  where: string;
  /** The code of syntax, duplicate and prototype-key errors (depth is always input_too_deep). */
  code?: ErrorCode;
}

/** The CaxtonError for a problem found by scanJsonText: names where, the line and column, the key or the limit. */
export function jsonProblemError(
  p: JsonTextProblem,
  where: string,
  code: ErrorCode = 'invalid_request',
  maxDepth = MAX_INPUT_DEPTH,
): CaxtonError {
  const at = { line: p.line, column: p.column };
  if (p.kind === 'too_deep') {
    const base = tooDeepError(where, maxDepth);
    const field = p.path ? `${where}: ${p.path}` : where;
    return new CaxtonError('input_too_deep', `${base.message} (at line ${p.line}, column ${p.column})`, {
      ...(base.details as object),
      ...at,
      ...(p.path !== undefined && { path: p.path }),
      issues: [{ field, message: `nested more than ${maxDepth} levels deep`, ...at }],
    });
  }
  const prefix = p.kind === 'syntax' ? `${where} is not valid JSON` : where;
  const message = `${prefix}: line ${p.line}, column ${p.column}: ${p.problem}`;
  const field = p.path ? p.path : where;
  return new CaxtonError(code, message, {
    ...at,
    ...(p.key !== undefined && { key: p.key }),
    ...(p.path !== undefined && { path: p.path }),
    reason: p.kind,
    issues: [{ field, message: p.problem, ...at }],
  });
}

/**
 * Parses a JSON text from outside: scanned first (depth limit — MAX_INPUT_DEPTH unless given —,
 * duplicate and prototype keys, syntax with line/column), then JSON.parse; a text proven to pass
 * the scan (parseUnscanned) goes to JSON.parse alone. Throws CaxtonError.
 */
export function parseJsonText(text: string, opts: ParseJsonTextOptions): unknown {
  const maxDepth = opts.maxDepth ?? MAX_INPUT_DEPTH;
  const quick = parseUnscanned(text, maxDepth, opts.duplicateKeys ?? true, opts.prototypeKeys ?? true);
  if (quick !== NOT_PROVEN) return quick;
  const p = scanJsonText(text, { ...opts, maxDepth });
  if (p) throw jsonProblemError(p, opts.where, opts.code, maxDepth);
  return JSON.parse(text) as unknown;
}

const NOT_PROVEN: unique symbol = Symbol('not proven');

/**
 * The common request body without the scan, which costs several times JSON.parse on it: the
 * value when the text is proven to be one the scan passes, else NOT_PROVEN (then it is scanned,
 * and the scan names the problem). Proven when
 *  - it holds no backslash, so a quote always opens or closes a string and every key is spelled
 *    as it reads;
 *  - outside its strings no `{` or `[` lies deeper than `maxDepth`;
 *  - `prototypeKeys`: neither `__proto__` nor `prototype` occurs anywhere in it;
 *  - JSON.parse accepts it (so the quotes, brackets and colons counted are the JSON's);
 *  - `duplicateKeys`: its objects have as many keys as it has colons outside strings (one per
 *    member): a key given twice in one object would leave one key for two colons.
 */
function parseUnscanned(text: string, maxDepth: number, duplicateKeys: boolean, prototypeKeys: boolean): unknown {
  if (text.includes('\\')) return NOT_PROVEN;
  if (prototypeKeys && (text.includes('__proto__') || text.includes('prototype'))) return NOT_PROVEN;
  let depth = 0;
  let colons = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) inString = !inString;
    else if (inString) continue;
    else if (c === 123 || c === 91) {
      if (++depth > maxDepth) return NOT_PROVEN;
    } else if (c === 125 || c === 93) depth--;
    else if (c === 58) colons++;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return NOT_PROVEN;
  }
  if (duplicateKeys && colons > 0 && keyCount(value) !== colons) return NOT_PROVEN;
  return value;
}

/** The keys of every object in a parsed value (nested no deeper than the limit just checked). */
function keyCount(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  let n = 0;
  if (Array.isArray(v)) {
    for (const x of v) n += keyCount(x);
    return n;
  }
  for (const k in v) {
    n++;
    n += keyCount((v as Record<string, unknown>)[k]);
  }
  return n;
}
