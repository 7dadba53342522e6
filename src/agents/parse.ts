import { describeIssue } from '../shared/zod-issues.js';
import type { z } from 'zod';
import { closest } from '../shared/suggest.js';
import { decodeUtf8 } from '../shared/utf8.js';
import { agentKey, type AgentDefinition, type AgentFormat, type Capability } from './definition.js';
import { fieldPath, type SourceIssue as AgentIssue } from '../shared/issues.js';
import { agentDocumentSchema, TABLE_KEYS, TOP_LEVEL_KEYS, TOP_LEVEL_VALUE_KEYS } from './agent-schema.js';
import { scanTomlKeys, tomlLocator } from '../shared/toml-locator.js';
import { parseTomlBounded } from '../shared/toml.js';
import { MAX_INPUT_DEPTH } from '../shared/depth.js';
import { scanJsonText } from '../shared/json-text.js';
import { tooDeepField } from './bounds.js';
import { readMarkdown } from './parse-markdown.js';
import { UNLISTED_TOOLS_KEY } from './claude.js';
import { readCaxtonToolLists } from './tool-lists.js';
import { isRecord, offsetToLineCol, tooDeepIssue, type Raw } from './parse-raw.js';

export interface ParseOptions {
  /** Format to parse as; when absent it is taken from the file name, then sniffed from the content. */
  format?: AgentFormat;
  /** File name used in messages and for format detection. */
  file?: string;
}

export type ParseResult =
  | { ok: true; format: AgentFormat; definition: AgentDefinition; warnings: AgentIssue[] }
  | { ok: false; format: AgentFormat; errors: AgentIssue[]; warnings: AgentIssue[] };

export function detectFormat(file: string | undefined, text: string): AgentFormat {
  const lower = file?.toLowerCase() ?? '';
  if (lower.endsWith('.toml')) return 'toml';
  if (lower.endsWith('.md') || lower.endsWith('.markdown')) return 'markdown';
  if (lower.endsWith('.json')) return 'json';
  const head = text.trimStart();
  if (head.startsWith('---')) return 'markdown';
  if (head.startsWith('{')) return 'json';
  return 'toml';
}

/** Parses an agent file (bytes or text) into a validated AgentDefinition, or every error found. */
export function parseAgent(input: string | Uint8Array, opts: ParseOptions = {}): ParseResult {
  const file = opts.file;
  let text: string;
  if (typeof input === 'string') text = input;
  else {
    const dec = decodeUtf8(input);
    if (!dec.ok) {
      const format = opts.format ?? detectFormat(file, '');
      return {
        ok: false,
        format,
        warnings: [],
        errors: [
          {
            severity: 'error',
            code: 'not_utf8',
            message: `the file is not valid UTF-8 (invalid byte at offset ${dec.offset})`,
            ...(file !== undefined && { file }),
            line: dec.line,
            column: dec.column,
            suggestion: 'save the file as UTF-8 (e.g. `iconv -f LATIN1 -t UTF-8 in > out`)',
          },
        ],
      };
    }
    text = dec.text;
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const format = opts.format ?? detectFormat(file, text);
  const at = (i: Omit<AgentIssue, 'file'>): AgentIssue => (file !== undefined ? { ...i, file } : i);

  let raw: Raw | { errors: AgentIssue[] };
  switch (format) {
    case 'toml':
      raw = readToml(text, at);
      break;
    case 'markdown':
      raw = readMarkdown(text, at);
      break;
    case 'json':
      raw = readJson(text, at);
      break;
    default: {
      const never: never = format;
      throw new Error(`unhandled format ${String(never)}`);
    }
  }
  if ('errors' in raw) return { ok: false, format, errors: raw.errors, warnings: [] };
  return validateDocument(raw, format, at);
}

function validateDocument(raw: Raw, format: AgentFormat, at: (i: Omit<AgentIssue, 'file'>) => AgentIssue): ParseResult {
  const warnings = raw.issues.filter((i) => i.severity === 'warning');
  const errors = raw.issues.filter((i) => i.severity === 'error');
  const withPos = (
    path: readonly (string | number)[],
    i: Omit<AgentIssue, 'file' | 'line' | 'column' | 'field'>,
  ): AgentIssue => {
    const pos = raw.locate(path);
    return at({
      ...i,
      ...(path.length > 0 && { field: fieldPath(path) }),
      ...(pos && { line: pos.line, column: pos.column }),
    });
  };
  // Before anything recursive (structuredClone, zod, later JSON.stringify and the renderer).
  const deep = tooDeepField(raw.doc);
  if (deep !== undefined)
    return { ok: false, format, errors: [...errors, withPos([deep], tooDeepIssue(deep))], warnings };
  const doc = structuredClone(raw.doc);
  // A TOML or JSON agent's tool lists and mode, read as a Markdown agent's are (tool-lists.ts).
  if (format !== 'markdown')
    for (const { path, note } of readCaxtonToolLists(doc)) {
      const issue = withPos(path, {
        severity: note.problem ? 'error' : 'warning',
        code: note.code,
        message: note.message,
        suggestion: note.suggestion,
      });
      (note.problem ? errors : warnings).push(issue);
    }

  // Unknown keys are warnings; strip them and validate what remains.
  let result = agentDocumentSchema.safeParse(doc);
  for (let guard = 0; !result.success && guard < 8; guard++) {
    const unknown = result.error.issues.filter((i) => i.code === 'unrecognized_keys');
    if (unknown.length === 0) break;
    for (const issue of unknown) {
      const parentPath = issue.path as (string | number)[];
      const parent = parentPath.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], doc) as Record<
        string,
        unknown
      >;
      const known = parentPath.length === 0 ? TOP_LEVEL_KEYS : (TABLE_KEYS[String(parentPath[0])] ?? []);
      for (const key of (issue as z.core.$ZodIssueUnrecognizedKeys).keys) {
        delete parent[key];
        const guess = closest(key, known);
        warnings.push(
          withPos([...parentPath, key], {
            severity: 'warning',
            code: 'unknown_key',
            message: `unknown key "${key}" is ignored`,
            ...(guess && { suggestion: `did you mean "${guess}"?` }),
          }),
        );
      }
    }
    result = agentDocumentSchema.safeParse(doc);
  }

  if (!result.success) {
    // A field the reader already reported (e.g. the empty Markdown body) is not reported twice.
    const reported = new Set(errors.map((e) => e.field?.split(/[.[]/)[0]));
    for (const issue of result.error.issues) {
      const path = issue.path as (string | number)[];
      const top = String(path[0] ?? '');
      if (reported.has(top)) continue;
      const missing =
        (issue.code === 'invalid_type' || (issue.code === 'custom' && issue.params?.missing === true)) &&
        pathValue(doc, path) === undefined;
      const suggestion = suggestionFor(top, missing, format);
      const text = describeIssue(issue, pathValue(doc, path));
      const err = withPos(path, {
        severity: 'error',
        code: missing ? 'missing_field' : issue.code === 'invalid_type' ? 'invalid_type' : 'invalid_value',
        // Unit messages (src/shared/zod-units.ts) name the value and the range; add the field.
        message: missing
          ? `required field "${fieldPath(path)}" is missing`
          : issue.code === 'custom' &&
              path.length > 0 &&
              /^(duration|size|expected a (duration|size))\b/.test(issue.message)
            ? `${fieldPath(path)}: ${issue.message}`
            : text.message,
        ...(issue.code === 'invalid_type'
          ? { expected: issue.expected }
          : text.expected !== undefined && { expected: text.expected }),
        ...((suggestion ?? text.suggestion) && { suggestion: suggestion ?? text.suggestion }),
      });
      // A missing top-level key has no position of its own: point at where it belongs (the top of
      // the file, or the first frontmatter line).
      if (missing && path.length === 1 && err.line === undefined)
        Object.assign(err, format === 'markdown' ? { line: 2, column: 1 } : { line: 1, column: 1 });
      errors.push(err);
    }
  }
  if (errors.length > 0 || !result.success) return { ok: false, format, errors, warnings };

  const def = result.data;
  // Only the Markdown (Claude Code) reader marks an agent that lists no tools.
  if (format !== 'markdown') delete def.metadata[UNLISTED_TOOLS_KEY];
  if (def.capabilities.length === 0) {
    const cap = defaultCapability(def.name) as Capability;
    def.capabilities = [cap];
    warnings.push(
      withPos(['capabilities'], {
        severity: 'warning',
        code: 'default_capability',
        message: `no capabilities declared; the agent provides "${cap}" (derived from its name)`,
        suggestion: 'declare what the agent can do, e.g. capabilities = ["data-analysis"]',
      }),
    );
  }
  return { ok: true, format, definition: def, warnings };
}

/** The capability an agent declaring none provides: its name, lower-cased, runs of other characters as "-". */
export function defaultCapability(name: string): string {
  return agentKey(name)
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

function pathValue(doc: unknown, path: readonly (string | number)[]): unknown {
  let cur: unknown = doc;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}

function suggestionFor(top: string, missing: boolean, format: AgentFormat): string | undefined {
  if (top === 'name' && missing)
    return format === 'markdown'
      ? 'add `name: my-agent` to the frontmatter'
      : 'add name = "my-agent" at the top of the file';
  if (top === 'system_prompt' && missing)
    return format === 'markdown'
      ? 'write the system prompt as the Markdown body after the closing ---'
      : "add system_prompt = '''...''' before the first [table] header, or name a WebAssembly module: [wasm] module = \"agent.wasm\"";
  if (top === 'name') return 'use letters, digits, "-", "_" or ".", starting with a letter, e.g. "data-analyzer"';
  if (top === 'version') return 'use semantic versioning, e.g. version = "1.0.0"';
  if (top === 'capabilities') return 'e.g. capabilities = ["data-analysis", "report-generation"]';
  if (top === 'tools') return 'e.g. tools = ["http_client", "csv_parser"]';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// TOML

function readToml(text: string, at: (i: Omit<AgentIssue, 'file'>) => AgentIssue): Raw | { errors: AgentIssue[] } {
  const parsed = parseTomlBounded(text);
  if (!parsed.ok) {
    const suggestion =
      parsed.issue.code === 'toml_syntax'
        ? "check quotes, brackets and `key = value` pairs on this line; multi-line text needs '''...'''"
        : parsed.issue.suggestion;
    return { errors: [at({ ...parsed.issue, ...(suggestion !== undefined && { suggestion }) })] };
  }
  const doc = parsed.doc;
  const issues: AgentIssue[] = [];
  const keys = scanTomlKeys(text);
  // The classic mistake: `system_prompt = ...` written after a [table] header lands inside that table.
  for (const table of Object.keys(doc)) {
    const v = doc[table];
    if (v === null || typeof v !== 'object' || Array.isArray(v)) continue;
    for (const key of TOP_LEVEL_VALUE_KEYS) {
      if (!Object.hasOwn(v, key)) continue;
      if (table === 'tools' && key === 'tools') continue;
      const info = keys.get(`${table}.${key}`);
      const headerLine = keys.get(table)?.line;
      const topLevelToo = Object.hasOwn(doc, key);
      const loc = info ? { line: info.line, column: info.column } : {};
      const moved = `"${key}" is inside the [${table}] table because it comes after the [${table}] header${headerLine ? ` on line ${headerLine}` : ''}; TOML puts every key after a table header into that table`;
      const fix = `move ${key} = ... above the first [table] header${headerLine ? ` (line ${headerLine})` : ''}`;
      if (topLevelToo || table === 'parameters') {
        if (table === 'parameters' && !topLevelToo) {
          issues.push(
            at({
              severity: 'error',
              code: 'misplaced_key',
              message: moved,
              field: `${table}.${key}`,
              ...loc,
              suggestion: fix,
            }),
          );
          // Keep validating as if it were written where it was meant, so other errors are found too.
          doc[key] = (v as Record<string, unknown>)[key];
          delete (v as Record<string, unknown>)[key];
        } else if (table === 'parameters') {
          issues.push(
            at({
              severity: 'warning',
              code: 'shadowed_key',
              message: `parameters.${key} looks like a top-level key written after [parameters]`,
              field: `${table}.${key}`,
              ...loc,
              suggestion: fix,
            }),
          );
        }
        continue;
      }
      issues.push(
        at({
          severity: 'error',
          code: 'misplaced_key',
          message: moved,
          field: `${table}.${key}`,
          ...loc,
          suggestion: fix,
        }),
      );
      doc[key] = (v as Record<string, unknown>)[key];
      delete (v as Record<string, unknown>)[key];
    }
  }
  return { doc, locate: tomlLocator(text), issues };
}

// ---------------------------------------------------------------------------------------------
// JSON

function readJson(text: string, at: (i: Omit<AgentIssue, 'file'>) => AgentIssue): Raw | { errors: AgentIssue[] } {
  // Deep text is slow for JSON.parse and overflows everything recursive after it: refuse it first.
  // (A field's own container is level 1, so the document may be one level deeper.)
  const deep = scanJsonText(text, { maxDepth: MAX_INPUT_DEPTH + 1, duplicateKeys: false, prototypeKeys: false });
  if (deep?.kind === 'too_deep')
    return {
      errors: [
        at({
          ...tooDeepIssue(deep.key),
          ...(deep.key !== undefined && { field: deep.key }),
          ...offsetToLineCol(text, deep.offset),
        }),
      ],
    };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const pos = /position (\d+)/.exec(msg);
    // Node 20 gives no position for truncated input ("Unexpected end of JSON input"): it is the end of the text.
    const offset = pos ? Number(pos[1]) : /end of JSON input/i.test(msg) ? text.length : undefined;
    const lineCol = offset !== undefined ? offsetToLineCol(text, offset) : {};
    return {
      errors: [at({ severity: 'error', code: 'json_syntax', message: `JSON syntax error: ${msg}`, ...lineCol })],
    };
  }
  if (!isRecord(doc)) {
    return {
      errors: [
        at({
          severity: 'error',
          code: 'invalid_type',
          message: 'an agent document must be a JSON object',
          expected: 'object',
          line: 1,
          column: 1,
        }),
      ],
    };
  }
  return { doc, locate: () => undefined, issues: [] };
}
