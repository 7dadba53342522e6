/**
 * Every `src/…` path named in a comment under src/ or in a document under docs/ names a file or
 * folder that exists, so a reader following a mention lands somewhere.
 *
 * What counts as a mention: `src/` at the start of a word, followed by path characters (letters,
 * digits, `_`, `-`, `.`, `/`). Trailing punctuation (`.`, `,`, `:`, `)`) is not part of the path.
 * Skipped, by rule:
 * - mentions holding a glob or a placeholder (`*`, `{`, `<`, `…`, `...`, `NNNN`, `NAME`): they name a
 *   pattern, not a file;
 * - `console/src/…` and other paths where `src/` follows another folder name: they are checked
 *   against the repository root when they start with a known top-level folder, else skipped
 *   (a package's own `src/` in an example, e.g. `my-tool/src/lib.rs`).
 * docs/adr/ is checked too: a decision naming a file that has since moved names where it is now.
 * In src/ only comments are read (`//` lines and `/* … *\/` blocks), not strings.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

/** Folders at the repository root whose own `src/` a mention may start from. */
const ROOT_PACKAGES = ['console'];

const MENTION = /(?<![\w./-])((?:[\w-]+\/)?src\/[\w./-]*)/g;
const PLACEHOLDER = /[*{<…]|\.\.\.|NNNN|NAME/;

function files(dir: string, keep: (path: string) => boolean): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...files(path, keep));
    else if (keep(path)) out.push(path);
  }
  return out;
}

/** The comment text of a TypeScript/JavaScript source, lines kept in place. */
function commentsOf(source: string): string[] {
  const lines = source.split('\n');
  let inBlock = false;
  return lines.map((line) => {
    if (inBlock) {
      const end = line.indexOf('*/');
      if (end >= 0) inBlock = false;
      return end >= 0 ? line.slice(0, end) : line;
    }
    const block = line.indexOf('/*');
    const slashes = line.indexOf('//');
    if (slashes >= 0 && (block < 0 || slashes < block)) return line.slice(slashes);
    if (block >= 0) {
      const end = line.indexOf('*/', block + 2);
      if (end < 0) inBlock = true;
      return end < 0 ? line.slice(block) : line.slice(block, end);
    }
    return '';
  });
}

interface Mention {
  where: string;
  path: string;
}

function mentionsIn(where: string, lines: readonly string[]): Mention[] {
  const out: Mention[] = [];
  lines.forEach((line, index) => {
    for (const match of line.matchAll(MENTION)) {
      const path = (match[1] ?? '').replace(/[.,:;)]+$/, '');
      if (PLACEHOLDER.test(line.slice(match.index, match.index + path.length + 1))) continue;
      out.push({ where: `${where}:${index + 1}`, path });
    }
  });
  return out;
}

/** The path to check against the root, or undefined when the mention is skipped by rule. */
function checked(path: string): string | undefined {
  if (path.startsWith('src/')) return path;
  const head = path.slice(0, path.indexOf('/'));
  return ROOT_PACKAGES.includes(head) ? path : undefined;
}

function allMentions(): Mention[] {
  const source = files(join(ROOT, 'src'), (p) => /\.(ts|mts|js|mjs)$/.test(p));
  const docs = files(join(ROOT, 'docs'), (p) => p.endsWith('.md'));
  return [
    ...source.flatMap((p) => mentionsIn(relative(ROOT, p), commentsOf(readFileSync(p, 'utf8')))),
    ...docs.flatMap((p) => mentionsIn(relative(ROOT, p), readFileSync(p, 'utf8').split('\n'))),
  ];
}

describe('src/ paths named in comments and docs', () => {
  it('finds mentions to check (the scan itself works)', () => {
    expect(allMentions().length).toBeGreaterThan(100);
  });

  it('names files or folders that exist', () => {
    const missing = allMentions()
      .map((m) => ({ ...m, path: checked(m.path) }))
      .filter((m) => m.path !== undefined && m.path !== 'src/')
      .filter((m) => !existsSync(join(ROOT, m.path as string)))
      .map((m) => `${m.where}: ${m.path}`);
    expect(missing).toEqual([]);
  });

  it('reads comments only, not strings', () => {
    const lines = commentsOf("const a = 'src/nowhere.ts'; // see src/shared/ids.ts\n/* src/x\n y */");
    expect(lines.join('\n')).not.toContain('nowhere');
    expect(mentionsIn('t', lines).map((m) => m.path)).toEqual(['src/shared/ids.ts', 'src/x']);
    expect(statSync(join(ROOT, 'src/shared/ids.ts')).isFile()).toBe(true);
  });
});
