/**
 * Node 20 shim for tools written for Node 22: `node --import ./scripts/node20-globsync.mjs tool.js`.
 *
 * @modelcontextprotocol/conformance 0.1.16 imports `globSync` from "fs" (Node 22+; used by its
 * tier-check command only). On Node 20 that named import fails when the module is linked, before
 * any of its commands runs. This module registers a resolve hook that hands modules asking for
 * "fs" a copy of node:fs with a small `globSync(pattern, { cwd })` added (patterns made of `**`,
 * `*`, `?` and literal path segments). On Node 22 and later nothing is registered.
 */
import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const FS_WITH_GLOB = `
import fs from 'node:fs';
import { join, sep } from 'node:path';
export * from 'node:fs';
export default fs;
function toRegExp(pattern) {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      i++;
      if (pattern[i + 1] === '/') { i++; re += '(?:.*/)?'; } else re += '.*';
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^$()|[\\]{}\\\\]/g, '\\\\$&');
  }
  return new RegExp('^' + re + '$');
}
export function globSync(pattern, options = {}) {
  const cwd = options.cwd === undefined ? process.cwd() : String(options.cwd);
  const patterns = Array.isArray(pattern) ? pattern : [pattern];
  const res = patterns.map(toRegExp);
  let entries;
  try { entries = fs.readdirSync(cwd, { recursive: true }); } catch { return []; }
  return entries.map(String).filter((p) => { const posix = p.split(sep).join('/'); return res.some((r) => r.test(posix)); });
}
`;
const FS_URL = `data:text/javascript,${encodeURIComponent(FS_WITH_GLOB)}`;

/** Resolve hook (runs on the loader thread): "fs" and "node:fs", asked for by a module outside node:, get the copy with globSync. */
export async function resolve(specifier, context, next) {
  if ((specifier === 'fs' || specifier === 'node:fs') && context.parentURL && !context.parentURL.startsWith('data:'))
    return { url: FS_URL, shortCircuit: true };
  return next(specifier, context);
}

const hasGlobSync = typeof (await import('node:fs')).globSync === 'function';
if (isMainThread && !hasGlobSync) register(import.meta.url);
