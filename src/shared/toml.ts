import { parse as parseToml, TomlError } from 'smol-toml';
import { MAX_INPUT_DEPTH, valueDepth } from './depth.js';
import type { SourceIssue } from './issues.js';
import { scanTomlKeys, tomlLocator, tomlSyntaxMessage } from './toml-locator.js';

export type TomlParse = { ok: true; doc: Record<string, unknown> } | { ok: false; issue: Omit<SourceIssue, 'file'> };

/**
 * Parses TOML from outside (agent files, tool manifests, caxton.toml) with the nesting bound of
 * src/shared/depth.ts: smol-toml's `maxDepth` stops deep inline arrays/tables inside the parser,
 * and the parsed value is checked for tables and dotted keys nested deeper (smol-toml builds
 * those iteratively, but zod and JSON.stringify after it recurse). Syntax errors keep their
 * line and column; a too-deep document names the top-level field and the limit.
 */
export function parseTomlBounded(text: string, max = MAX_INPUT_DEPTH): TomlParse {
  const dotted = longDottedKey(text, max);
  if (dotted) {
    const what = dotted.table !== undefined ? `the table name [${dotted.table}.…]` : 'a dotted key';
    return {
      ok: false,
      issue: {
        severity: 'error',
        code: 'input_too_deep',
        ...(dotted.table !== undefined && { field: dotted.table }),
        message: `${what} has more than ${max + 1} parts, so it nests more than ${max} levels deep (the limit is ${max})`,
        line: dotted.line,
        column: dotted.column,
        suggestion: 'flatten the structure',
      },
    };
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text, { maxDepth: max }) as Record<string, unknown>;
  } catch (e) {
    if (!(e instanceof TomlError)) throw e;
    if (/excessively nested/.test(e.message)) {
      return {
        ok: false,
        issue: {
          severity: 'error',
          code: 'input_too_deep',
          message: `an inline array or table is nested more than ${max} levels deep (the limit is ${max})`,
          line: e.line,
          column: e.column,
          suggestion: 'flatten the structure',
        },
      };
    }
    return {
      ok: false,
      issue: {
        severity: 'error',
        code: 'toml_syntax',
        message: `TOML syntax error: ${tomlSyntaxMessage(e, text)}`,
        line: e.line,
        column: e.column,
      },
    };
  }
  for (const [key, v] of Object.entries(doc)) {
    if (valueDepth(v, max) <= max) continue;
    // The field's own line, or (for `[key.a.b...]` headers) the first line below it.
    let pos = tomlLocator(text)([key]);
    if (!pos)
      for (const [path, info] of scanTomlKeys(text))
        if (path.startsWith(`${key}.`) && (!pos || info.line < pos.line)) pos = info;
    return {
      ok: false,
      issue: {
        severity: 'error',
        code: 'input_too_deep',
        field: key,
        message: `"${key}" is nested more than ${max} levels deep (the limit is ${max} levels of tables, dotted keys and arrays)`,
        ...(pos && { line: pos.line, column: pos.column }),
        suggestion: 'flatten the structure',
      },
    };
  }
  return { ok: true, doc };
}

/**
 * Where a dotted key or table name (`a.b.c = 1`, `[a.b.c]`, `{ a.b.c = 1 }`) first has more than
 * `maxDots` dots, outside strings and comments; undefined when none does. One pass: smol-toml
 * builds such keys correctly but slowly (about 10 µs a part), so 20,000 parts (40 KB) would hold
 * the event loop for 0.2 s before the depth check after parsing could refuse them.
 */
export function longDottedKey(
  text: string,
  maxDots: number,
): { line: number; column: number; table?: string } | undefined {
  let dots = 0;
  let line = 1;
  let lineStart = 0;
  let runStart = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      lineStart = i + 1;
      dots = 0;
      runStart = i + 1;
    } else if (c === '.') {
      if (++dots > maxDots) {
        // A table header names its top-level field first: `[parameters.a.b...]`.
        const header = text.slice(lineStart, runStart).trim();
        const first = text
          .slice(runStart, text.indexOf('.', runStart))
          .trim()
          .replace(/^(["'])(.*)\1$/, '$2');
        return { line, column: i - lineStart + 1, ...((header === '[' || header === '[[') && { table: first }) };
      }
    } else if (c === '=' || c === ',' || c === '[' || c === ']' || c === '{' || c === '}') {
      dots = 0;
      runStart = i + 1;
    } else if (c === '#') {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
    } else if (c === '"' || c === "'") {
      // Skip the string: basic "..." (with escapes), literal '...', or their multi-line forms.
      const triple = text.startsWith(c.repeat(3), i);
      const close = triple ? c.repeat(3) : c;
      let j = i + close.length;
      for (; j < text.length; j++) {
        const d = text[j]!;
        if (d === '\\' && c === '"') j++;
        else if (d === '\n') {
          if (!triple) break;
          line++;
          lineStart = j + 1;
        } else if (text.startsWith(close, j)) break;
      }
      i = triple ? j + 2 : text[j] === '\n' ? j - 1 : j;
    }
  }
  return undefined;
}
