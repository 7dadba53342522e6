/**
 * The console's budget: the JavaScript the first page load needs — the entry script
 * index.html names and the chunks it preloads — is under 250 KB gzip-compressed. Pages are
 * separate chunks loaded when opened, so they do not count.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONSOLE_DIR } from '../../src/api/index.js';

const BUDGET = 250 * 1024;

describe('the web console bundle', () => {
  it('loads under 250 KB of compressed JavaScript on the first page', () => {
    const indexFile = join(DEFAULT_CONSOLE_DIR, 'index.html');
    expect(existsSync(indexFile), 'dist/console is missing: run npm run build (npm test does it first)').toBe(true);
    const html = readFileSync(indexFile, 'utf8');
    const scripts = [
      ...html.matchAll(/<script type="module" src="\/ui\/([^"]+)"><\/script>/g),
      ...html.matchAll(/<link rel="modulepreload" href="\/ui\/([^"]+)">/g),
    ].map((m) => m[1]!);
    expect(scripts.length).toBeGreaterThan(0);
    let total = 0;
    for (const s of scripts) total += gzipSync(readFileSync(join(DEFAULT_CONSOLE_DIR, s)), { level: 9 }).length;
    expect(total, `initial JavaScript: ${scripts.join(', ')}`).toBeLessThan(BUDGET);
    // The pages are chunks of their own, not part of that.
    const pageChunks = ['overview', 'agents'].map((p) => new RegExp(`/ui/assets/${p}-`).test(html));
    expect(pageChunks).toEqual([false, false]);
  });
});
