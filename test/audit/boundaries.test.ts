/**
 * src/audit's place in the layering: it may import src/shared, src/storage, src/auth (types) and
 * src/observability; src/storage and src/shared never import it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

function imports(folder: string): { file: string; spec: string }[] {
  const out: { file: string; spec: string }[] = [];
  for (const f of readdirSync(join(SRC, folder), { recursive: true, encoding: 'utf8' }).filter((f) =>
    f.endsWith('.ts'),
  )) {
    const text = readFileSync(join(SRC, folder, f), 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g))
      out.push({ file: `${folder}/${f}`, spec: m[1]! });
  }
  return out;
}

describe('src/audit boundaries', () => {
  it('imports only shared, storage, auth and observability among the domain folders', () => {
    const cross = imports('audit').filter((i) => i.spec.startsWith('../'));
    expect(cross.length).toBeGreaterThan(0);
    const bad = cross.filter((i) => !/^\.\.\/(shared|storage|auth|observability)\//.test(i.spec));
    expect(bad).toEqual([]);
  });

  it('is imported by neither src/storage nor src/shared', () => {
    const bad = [...imports('storage'), ...imports('shared')].filter((i) => /(^|\/)audit(\/|\.js$)/.test(i.spec));
    expect(bad).toEqual([]);
  });
});
