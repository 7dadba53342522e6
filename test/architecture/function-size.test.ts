/**
 * No function in src/ is over 150 lines (the project guide's rule): a function that long holds
 * several jobs, and a reader cannot keep it in view. Counted from the line of its first token to
 * the line of its closing brace, nested functions counted in their own right as well.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');
const MAX_LINES = 150;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(path));
    else if (path.endsWith('.ts')) out.push(path);
  }
  return out;
}

function nameOf(fn: ts.FunctionLikeDeclaration, file: ts.SourceFile): string {
  if (fn.name) return fn.name.getText(file);
  const parent = fn.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent)) return parent.name.getText(file);
  return '<anonymous>';
}

interface Long {
  where: string;
  key: string;
  lines: number;
}

function longFunctions(): Long[] {
  const out: Long[] = [];
  for (const path of sources(SRC)) {
    const file = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body) {
        const fn = node as ts.FunctionLikeDeclaration;
        const first = file.getLineAndCharacterOfPosition(fn.getStart(file)).line;
        const last = file.getLineAndCharacterOfPosition(fn.end).line;
        const lines = last - first + 1;
        if (lines > MAX_LINES)
          out.push({
            where: `src/${relative(SRC, path)}:${first + 1}`,
            key: `${basename(path)}: ${nameOf(fn, file)}`,
            lines,
          });
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
  }
  return out;
}

describe('function size', () => {
  const found = longFunctions();

  it(`has no function over ${MAX_LINES} lines in src/`, () => {
    expect(found.map((f) => `${f.where} ${f.key} (${f.lines} lines)`)).toEqual([]);
  });
});
