/**
 * File names under src/ (docs/architecture.md, "Naming"):
 * - two files with different jobs do not share a name, so a name in a stack trace, a search or a
 *   review points at one file; the names below are the exceptions, each for the reason given;
 * - the SQLite and PostgreSQL adapters of one port are `sqlite-X.ts` and `pg-X.ts`, never
 *   `X-sqlite.ts`, `X-pg.ts` or a bare `sqlite.ts` / `pg.ts`.
 */
import { readdirSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const SRC = join(ROOT, 'src');

/** Names many folders may hold, because the folder gives the file its meaning. */
const SHARED: ReadonlyMap<string, string> = new Map([
  ['index.ts', "a folder's one entry point: what the folder offers to the rest of the tree"],
  ['types.ts', "a folder's own types, imported as `./types.js` by that folder's modules"],
  ['errors.ts', "a folder's own error classes or codes, imported as `./errors.js` within it"],
]);

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(path));
    else if (path.endsWith('.ts')) out.push(relative(SRC, path));
  }
  return out;
}

describe('file names under src/', () => {
  const files = sources(SRC);

  it('finds the sources (the scan itself works)', () => {
    expect(files.length).toBeGreaterThan(300);
    expect(files).toContain('execution/runs/sqlite-runs.ts');
  });

  it('gives each job its own file name', () => {
    const byName = new Map<string, string[]>();
    for (const file of files) {
      const name = basename(file);
      byName.set(name, [...(byName.get(name) ?? []), file]);
    }
    const clashes: string[] = [];
    for (const [name, paths] of byName) {
      if (paths.length < 2 || SHARED.has(name)) continue;
      clashes.push(`${name}: ${paths.sort().join(', ')} (name each for its job)`);
    }
    expect(clashes).toEqual([]);
  });

  it('names SQLite and PostgreSQL adapters sqlite-X.ts and pg-X.ts', () => {
    const misnamed = files.filter((file) => /(^|\/)(sqlite|pg|postgres)\.ts$|-(sqlite|pg|postgres)\.ts$/.test(file));
    expect(misnamed).toEqual([]);
  });
});
