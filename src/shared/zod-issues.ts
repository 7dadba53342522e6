import { z } from 'zod';
import { fieldPath } from './issues.js';
import { closest } from './suggest.js';

/**
 * A schema issue in the project's words: which field, what it expects, what it got, and what to
 * do. The schemas' own messages (`{ error: '...' }`) are kept; zod's default texts ("Too small:
 * expected number to be >0", "Invalid option: ...") never reach a user.
 */
export interface IssueText {
  message: string;
  expected?: string;
  suggestion?: string;
  /** The field the problem is in when it lies below the issue's own path (inside a union's branch). */
  field?: string;
}

type Issue = z.core.$ZodIssue;

const defaultText = z.locales.en().localeError;

/** Phrases of zod's English messages: text that matches one came from the library unchanged. */
export const LIBRARY_PHRASES =
  /\b(Invalid input|Invalid option|Invalid string|Invalid URL|Invalid (?:key|element|union|type|value|number|date|email)\b|Too small|Too big|Unrecognized keys?|expected \w+, received|Expected \w+, received|must match pattern|Required$|String must contain|Number must be)/;

/** Whether `message` is zod's own text for `issue` rather than one the schema wrote. */
export function isLibraryText(issue: Issue, message = issue.message): boolean {
  let own: string | undefined;
  try {
    const t = defaultText(issue as never);
    own = typeof t === 'string' ? t : t?.message;
  } catch {
    own = undefined;
  }
  return message === own || LIBRARY_PHRASES.test(message);
}

/** A value as it would be written in the file: `"abc"`, `0`, `true`, a list, a table, nothing. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') return v.length > 60 ? `${JSON.stringify(v.slice(0, 57))}...` : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (v instanceof Date) return v.toISOString();
  return 'a table';
}

const TYPE_WORDS: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  string: 'a string',
  boolean: 'true or false',
  array: 'a list',
  object: 'a table',
  record: 'a table',
  date: 'a date',
  bigint: 'a whole number',
};
const typeWords = (t: string) => TYPE_WORDS[t] ?? t;

function bound(issue: { origin?: string; inclusive?: boolean }, n: number | bigint, kind: 'min' | 'max'): string {
  const origin = issue.origin ?? 'number';
  const num = Number(n);
  if (origin === 'string')
    return kind === 'min' && num === 1 ? 'not empty' : `${kind === 'min' ? 'at least' : 'at most'} ${num} characters`;
  if (origin === 'array' || origin === 'set')
    return kind === 'min' && num === 1
      ? 'at least one entry'
      : `${kind === 'min' ? 'at least' : 'at most'} ${num} entries`;
  if (issue.inclusive === false) return `${kind === 'min' ? 'greater than' : 'less than'} ${num}`;
  return `${kind === 'min' ? 'at least' : 'at most'} ${num}`;
}

/**
 * For a union no branch of which accepted the value: the issue of the branch that failed deepest
 * down, with its full path, when that is below the union (a list whose entry has a field of the
 * wrong type). That field is what to fix, so it is what an error names; "none of the accepted
 * forms" only says where to start looking.
 */
function branchIssue(issue: Issue): Issue | undefined {
  if (issue.code !== 'invalid_union') return undefined;
  const deepest = issue.errors
    .flat()
    .reduce<Issue | undefined>((best, i) => (i.path.length > (best?.path.length ?? 0) ? i : best), undefined);
  return deepest && ({ ...deepest, path: [...issue.path, ...deepest.path] } as Issue);
}

/** `issue`, or for a union the innermost field issue that explains it (see branchIssue). */
export function innermostIssue(issue: Issue): Issue {
  // Each step goes into a branch's own issues, so it ends.
  for (let i = issue; ;) {
    if (i.code === 'invalid_union' && i.errors.flat().some((e) => !isLibraryText(e))) return i;
    const deeper = branchIssue(i);
    if (!deeper) return i;
    i = deeper;
  }
}

/** What `value` holds at `path` below it (undefined where the path leaves it). */
export function valueAtPath(value: unknown, path: readonly PropertyKey[]): unknown {
  let v = value;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/** "a string, a list or null" when every branch of a union refused the value's type, else undefined. */
function unionForms(branches: Issue[][]): string | undefined {
  const words: string[] = [];
  for (const branch of branches) {
    const first = branch[0];
    if (branch.length !== 1 || first?.code !== 'invalid_type') return undefined;
    const w = first.expected === 'null' ? 'null' : typeWords(first.expected);
    if (!words.includes(w)) words.push(w);
  }
  if (words.length === 0) return undefined;
  return words.length === 1 ? words[0] : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

/**
 * `issue` in the project's words; `value` is what the file holds at the issue's path. A message
 * the schema wrote itself is kept (it already names the fix), with the value it got added.
 */
export function describeIssue(issue: Issue, value: unknown): IssueText {
  const field = issue.path.length > 0 ? fieldPath(issue.path) : 'the document';
  const got = describeValue(value);
  const own = !isLibraryText(issue);
  const withGot = (m: string) => (value === undefined || m.includes(got) ? m : `${m} (got ${got})`);
  switch (issue.code) {
    case 'invalid_type': {
      const expected = typeWords(issue.expected);
      if (value === undefined)
        return {
          message: `required field "${field}" is missing`,
          expected,
          suggestion: `add ${field} = ${expected === 'a string' ? '"..."' : `<${expected}>`}`,
        };
      return own
        ? { message: withGot(issue.message), expected }
        : {
            message: `${field} must be ${expected}, got ${got}`,
            expected,
            suggestion: `write ${field} as ${expected}`,
          };
    }
    case 'too_small':
    case 'too_big': {
      const expected = bound(
        issue,
        issue.code === 'too_small' ? issue.minimum : issue.maximum,
        issue.code === 'too_small' ? 'min' : 'max',
      );
      return own
        ? { message: withGot(issue.message), expected }
        : {
            message: `${field} must be ${expected}, got ${got}`,
            expected,
            suggestion: `set ${field} to a value ${expected}`,
          };
    }
    case 'invalid_value': {
      const options = issue.values.map((v) => JSON.stringify(v));
      const expected = options.length === 1 ? options[0]! : `one of ${options.join(', ')}`;
      const guess = typeof value === 'string' ? closest(value, issue.values.map(String)) : undefined;
      return {
        message: own ? withGot(issue.message) : `${field} must be ${expected}, got ${got}`,
        expected,
        ...(guess !== undefined && { suggestion: `did you mean "${guess}"?` }),
      };
    }
    case 'invalid_format': {
      if (own) return { message: withGot(issue.message) };
      const expected =
        issue.format === 'url'
          ? 'a URL such as "http://127.0.0.1:8080"'
          : issue.format === 'regex'
            ? `text matching ${issue.pattern ?? 'the pattern'}`
            : `a valid ${issue.format}`;
      return { message: `${field} must be ${expected}, got ${got}`, expected };
    }
    case 'not_multiple_of':
      return own
        ? { message: withGot(issue.message) }
        : {
            message: `${field} must be a multiple of ${Number(issue.divisor)}, got ${got}`,
            expected: `a multiple of ${Number(issue.divisor)}`,
          };
    case 'invalid_union': {
      const suggestion = 'see examples/caxton.toml or docs/agent-format.md for the forms this field accepts';
      // A branch's own message (e.g. "expected a duration such as 30s") says more than "none matched".
      const inner = issue.errors.flat().find((i) => !isLibraryText(i));
      if (inner) return { message: withGot(`${field}: ${inner.message}`), suggestion };
      const deeper = branchIssue(issue);
      if (deeper) {
        const nested = describeIssue(deeper, valueAtPath(value, deeper.path.slice(issue.path.length)));
        return { ...nested, field: nested.field ?? fieldPath(deeper.path) };
      }
      const forms = unionForms(issue.errors);
      return {
        message: `${field} has none of the accepted forms${forms ? ` (${forms})` : ''}, got ${got}`,
        ...(forms && { expected: forms }),
        suggestion,
      };
    }
    case 'invalid_key': {
      if (own) return { message: withGot(issue.message) };
      const key = issue.path.length > 0 ? String(issue.path[issue.path.length - 1]) : '';
      const inner = issue.issues[0];
      const expected =
        inner?.code === 'invalid_format' && inner.format === 'regex'
          ? `a name matching ${inner.pattern ?? 'the pattern'}`
          : 'a name this table accepts';
      return {
        message: `${field}: the name "${key}" is not allowed here`,
        expected,
        suggestion: `rename it to ${expected}`,
      };
    }
    case 'invalid_element':
      return { message: own ? withGot(issue.message) : `${field} has an entry that is not allowed here` };
    case 'unrecognized_keys':
      return {
        message: `unknown key${issue.keys.length === 1 ? '' : 's'} ${issue.keys.map((k) => `"${k}"`).join(', ')} in ${field}`,
      };
    default:
      return { message: own ? withGot(issue.message) : `${field} is not valid here, got ${got}` };
  }
}

type SchemaNode = {
  _zod: {
    def: {
      type: string;
      innerType?: SchemaNode;
      in?: SchemaNode;
      shape?: Record<string, SchemaNode>;
      catchall?: SchemaNode;
      valueType?: SchemaNode;
      element?: SchemaNode;
      options?: SchemaNode[];
    };
  };
};

/** The keys a table at `path` of `schema` accepts, for "did you mean" on an unknown key. */
export function knownKeysAt(schema: unknown, path: readonly PropertyKey[]): string[] {
  const unwrap = (n: SchemaNode | undefined): SchemaNode | undefined => {
    for (let guard = 0; n && guard < 20; guard++) {
      const d = n._zod.def;
      if (d.innerType) n = d.innerType;
      else if (d.type === 'pipe' && d.in) n = d.in;
      else break;
    }
    return n;
  };
  const keysOf = (n: SchemaNode | undefined): string[] => {
    const u = unwrap(n);
    if (!u) return [];
    if (u._zod.def.shape) return Object.keys(u._zod.def.shape);
    return (u._zod.def.options ?? []).flatMap((o) => keysOf(o));
  };
  let node = unwrap(schema as SchemaNode);
  for (const key of path) {
    if (!node) return [];
    const d = node._zod.def;
    if (d.shape) node = unwrap(d.shape[String(key)] ?? d.catchall);
    else if (d.valueType) node = unwrap(d.valueType);
    else if (d.element) node = unwrap(d.element);
    else if (d.options) node = unwrap(d.options.find((o) => keysOf(o).includes(String(key))) ?? d.options[0]);
    else return [];
  }
  return keysOf(node);
}
