/**
 * The CLI reads the API key from $CAXTON_API_KEY (src/cli/credentials.ts); a page that exports the
 * key under another name leaves a reader with a client that sends none. So every doc, template and
 * example names only that variable for the key.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';

/** Variable names that end in KEY and are not the API key. */
const OTHERS = new Set([
  // docs/configuration.md: the pattern of any configuration key set from the environment.
  'CAXTON_SECTION__KEY',
]);

function files(dir: string): string[] {
  return readdirSync(join(repoRoot, dir)).flatMap((name) => {
    const path = `${dir}/${name}`;
    if (name === 'node_modules') return [];
    return statSync(join(repoRoot, path)).isDirectory() ? files(path) : [path];
  });
}

describe('the API key variable', () => {
  it('has one name, CAXTON_API_KEY, in README, docs, templates and examples', () => {
    const read = ['README.md', ...files('docs'), ...files('templates'), ...files('examples')].filter((f) =>
      /\.(md|toml|ts|js|mjs|py|sh|json|ya?ml)$/.test(f),
    );
    expect(read.length).toBeGreaterThan(20);
    const wrong = read.flatMap((f) =>
      [...readFileSync(join(repoRoot, f), 'utf8').matchAll(/\bCAXTON_\w*KEY\w*\b/g)]
        .map((m) => m[0])
        .filter((name) => name !== 'CAXTON_API_KEY' && !OTHERS.has(name))
        .map((name) => `${f}: ${name}`),
    );
    expect(wrong).toEqual([]);
  });
});
