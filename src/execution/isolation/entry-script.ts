import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CaxtonError } from '../../shared/errors.js';

export type EntryScriptName = 'worker-entry' | 'process-runner';

const cache = new Map<EntryScriptName, URL>();

/** True when some .ts file of `srcDir` is newer than its compiled .js in `distDir`. */
function isStale(srcDir: string, distDir: string): boolean {
  for (const file of readdirSync(srcDir)) {
    if (!file.endsWith('.ts') || file.endsWith('.d.ts')) continue;
    const built = path.join(distDir, file.replace(/\.ts$/, '.js'));
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(path.join(srcDir, file)).mtimeMs) return true;
  }
  return false;
}

/**
 * Locates the compiled JavaScript entry of a worker thread or child process. Workers and
 * children load plain `.js` (no TypeScript loader), so:
 *  - running compiled (dist/, production, `node dist/...`): the `.js` next to this module;
 *  - running from the TypeScript sources (vitest, tsx): the same file under `dist/`, i.e. the
 *    output of `npm run build`, with a warning if it is older than the sources.
 */
export function entryScript(name: EntryScriptName): URL {
  const cached = cache.get(name);
  if (cached) return cached;
  const here = fileURLToPath(import.meta.url);
  const dir = path.dirname(here);
  let found = path.join(dir, `${name}.js`);
  if (!existsSync(found) && here.endsWith('.ts')) {
    const marker = `${path.sep}src${path.sep}`;
    const at = `${dir}${path.sep}`.lastIndexOf(marker);
    if (at >= 0) {
      const distDir = path.join(dir.slice(0, at), 'dist', dir.slice(at + marker.length));
      found = path.join(distDir, `${name}.js`);
      if (existsSync(found) && isStale(dir, distDir)) {
        process.emitWarning(
          `${found} is older than the sources in ${dir}; run "npm run build"`,
          'CaxtonIsolationWarning',
        );
      }
    }
  }
  if (!existsSync(found)) {
    throw new CaxtonError(
      'isolation_failure',
      `cannot find the compiled ${name}.js (looked for ${found}); run "npm run build"`,
    );
  }
  const url = pathToFileURL(found);
  cache.set(name, url);
  return url;
}
