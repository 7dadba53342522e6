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
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text, { maxDepth: max }) as Record<string, unknown>;
  } catch (e) {
    if (!(e instanceof TomlError)) throw e;
    if (/excessively nested/.test(e.message)) {
      return { ok: false, issue: { severity: 'error', code: 'input_too_deep', message: `an inline array or table is nested more than ${max} levels deep (the limit is ${max})`, line: e.line, column: e.column, suggestion: 'flatten the structure' } };
    }
    return { ok: false, issue: { severity: 'error', code: 'toml_syntax', message: `TOML syntax error: ${tomlSyntaxMessage(e, text)}`, line: e.line, column: e.column } };
  }
  for (const [key, v] of Object.entries(doc)) {
    if (valueDepth(v, max) <= max) continue;
    // The field's own line, or (for `[key.a.b...]` headers) the first line below it.
    let pos = tomlLocator(text)([key]);
    if (!pos) for (const [path, info] of scanTomlKeys(text)) if (path.startsWith(`${key}.`) && (!pos || info.line < pos.line)) pos = info;
    return {
      ok: false,
      issue: { severity: 'error', code: 'input_too_deep', field: key, message: `"${key}" is nested more than ${max} levels deep (the limit is ${max} levels of tables, dotted keys and arrays)`, ...(pos && { line: pos.line, column: pos.column }), suggestion: 'flatten the structure' },
    };
  }
  return { ok: true, doc };
}
