#!/usr/bin/env node
/**
 * Builds the AssemblyScript tool servers shipped with Caxton: the built-in servers under
 * tools/builtin/<name>/ (every directory holding a caxton-tool.toml), the example under
 * examples/tools/ and the template under templates/tool-assemblyscript/ (so CI proves the template
 * compiles). `npm run build:tools` (also part of `npm run build`). Writes each package's
 * build/*.wasm (git-ignored). A module newer than all of its sources is not rebuilt; pass
 * `--force` to rebuild everything.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';
import { parse as parseToml } from 'smol-toml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Where the built-in tool servers live, relative to the repository root. */
export const BUILTIN_DIR = 'tools/builtin';

/** Shared sources every AssemblyScript package may import (a change rebuilds them all). */
const SHARED_SOURCES = ['templates/tool-assemblyscript/assembly/caxton.ts', `${BUILTIN_DIR}/shared`];

/** The built-in packages: [package dir, entry, output], the output taken from the manifest's `module`. */
export function builtinBuilds() {
  const dir = join(root, BUILTIN_DIR);
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const manifest = join(dir, name, 'caxton-tool.toml');
    if (!existsSync(manifest)) continue;
    const m = parseToml(readFileSync(manifest, 'utf8'));
    out.push([
      `${BUILTIN_DIR}/${name}`,
      'assembly/index.ts',
      typeof m.module === 'string' ? m.module : `${m.name}.wasm`,
    ]);
  }
  return out;
}

/** [package dir, entry, output] relative to the repository root. */
export const TOOL_BUILDS = [
  ['examples/tools/text', 'assembly/index.ts', 'build/text.wasm'],
  ['templates/tool-assemblyscript', 'assembly/index.ts', 'build/hello.wasm'],
  ...builtinBuilds(),
];

function newestSource(paths) {
  let newest = 0;
  for (const p of paths) {
    if (!existsSync(p)) continue;
    const st = statSync(p);
    if (st.isDirectory()) newest = Math.max(newest, newestSource(readdirSync(p).map((n) => join(p, n))));
    else if (p.endsWith('.ts') || p.endsWith('.json')) newest = Math.max(newest, st.mtimeMs);
  }
  return newest;
}

function upToDate(dir, out) {
  const file = join(root, dir, out);
  if (!existsSync(file)) return false;
  const sources = [join(root, dir, 'assembly'), ...SHARED_SOURCES.map((s) => join(root, s))];
  return statSync(file).mtimeMs >= newestSource(sources);
}

export async function buildTools({ quiet = false, force = false } = {}) {
  for (const [dir, entry, out] of TOOL_BUILDS) {
    if (!force && upToDate(dir, out)) {
      if (!quiet) console.log(`${join(dir, out)} is up to date`);
      continue;
    }
    const t0 = Date.now();
    const { error, stderr } = await asc.main(
      [
        join(root, dir, entry),
        '--outFile',
        join(root, dir, out),
        '--optimizeLevel',
        '3',
        '--shrinkLevel',
        '1',
        '--runtime',
        'incremental',
        '--baseDir',
        root,
      ],
      {
        stdout: process.stdout,
        stderr: process.stderr,
      },
    );
    if (error) throw new Error(`building ${dir} failed: ${error.message}\n${stderr.toString()}`);
    if (!quiet) console.log(`built ${relative(root, join(root, dir, out))} (${Date.now() - t0} ms)`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildTools({ force: process.argv.includes('--force') });
}
