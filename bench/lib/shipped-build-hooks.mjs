/**
 * A module resolve hook: a module of the repository's `src/` resolves to its build in `dist/`.
 * Benchmarks import the source (for its types) but must time what ships: run from source through
 * tsx, every function expression is wrapped to keep its name, a property definition per closure
 * made, which the build (tsc) does not do. `npm run bench` builds first, so `dist/` is current.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const src = new URL('../../src/', import.meta.url).href;
const dist = new URL('../../dist/', import.meta.url).href;

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (r.url.startsWith(src) && r.url.endsWith('.ts')) {
    const url = `${dist}${r.url.slice(src.length, -'.ts'.length)}.js`;
    if (existsSync(fileURLToPath(url))) return { ...r, url, format: 'module' };
  }
  return r;
}
