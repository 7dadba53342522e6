/**
 * `node --import ./test/mcp/conformance/node20-shim.mjs …/conformance/dist/index.js …` on Node 20.
 *
 * @modelcontextprotocol/conformance imports `globSync` from "fs" (Node >= 22). A named import of a
 * missing built-in export fails at link time, before any code runs, so defining `fs.globSync` is
 * not enough: this registers a resolve hook that, on Node versions without `fs.globSync`, sends
 * "fs" / "node:fs" to a module re-exporting node:fs plus a small `globSync` (only the
 * `**\/NAME` and plain-name patterns the suite uses, for its tier-check summary). Self-contained;
 * on Node 22+ it does nothing.
 */
import fs from 'node:fs';
import { register } from 'node:module';

if (typeof fs.globSync !== 'function') {
  const shim = `
import fs from 'node:fs';
import { join, relative } from 'node:path';
export * from 'node:fs';
export default fs;
export function globSync(pattern, options = {}) {
  const cwd = options.cwd ?? process.cwd();
  const m = /^(\\*\\*\\/)?([^*?/[\\]{}]+)$/.exec(pattern);
  if (!m) throw new Error('globSync shim (Node 20): unsupported pattern ' + pattern);
  const out = [];
  const walk = (dir) => {
    let entries;
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.name === m[2]) out.push(relative(cwd, p));
      if (m[1] && e.isDirectory()) walk(p);
    }
  };
  walk(cwd);
  return out;
}`;
  const target = 'data:text/javascript,' + encodeURIComponent(shim);
  const hooks = `
export async function resolve(specifier, context, next) {
  if ((specifier === 'fs' || specifier === 'node:fs') && context.parentURL && !context.parentURL.startsWith('data:')) {
    return { url: ${JSON.stringify(target)}, shortCircuit: true };
  }
  return next(specifier, context);
}`;
  register('data:text/javascript,' + encodeURIComponent(hooks));
}
