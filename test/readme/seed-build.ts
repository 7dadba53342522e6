/**
 * Gives a fresh clone this checkout's build outputs where they are provably the clone's own, so
 * `npm run build` in the clone does only the work its sources need: the stranger's path proves
 * that what is committed builds, and a full TypeScript and AssemblyScript build of an unchanged
 * tree proved nothing more while it cost about 45 s of CPU on every test run.
 *
 * Neither seed can hide a build failure:
 *  - dist/ with its .tsbuildinfo: tsc re-checks and re-emits every file whose content hash differs
 *    from the one recorded (and everything that depends on it), and keeps the recorded diagnostics
 *    of the rest. The record names node_modules by its path relative to dist/; the clone's
 *    node_modules is a symlink to this checkout's, which tsc follows to a different relative path,
 *    so those names are rewritten. If the record's format ever changes, tsc simply builds it all.
 *  - a tool module is copied only when every source the tool build reads (its assembly/ folder and
 *    the shared sources, as scripts/build-tools.mjs lists them) is byte-identical in both trees;
 *    the copy is newer than the clone's sources, so the build script keeps it.
 */
import { cpSync, existsSync, readdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Sources every AssemblyScript package reads besides its own assembly/ (scripts/build-tools.mjs). */
const SHARED_SOURCES = ['templates/tool-assemblyscript/assembly/caxton.ts', 'tools/builtin/shared'];

/** Every .ts and .json file under `path` (or `path` itself), relative to `root`, sorted. */
function sources(root: string, path: string): string[] {
  const full = join(root, path);
  if (!existsSync(full)) return [];
  if (!statSync(full).isDirectory()) return /\.(ts|json)$/.test(path) ? [path] : [];
  return readdirSync(full)
    .sort()
    .flatMap((name) => sources(root, join(path, name)));
}

function sameSources(from: string, to: string, paths: string[]): boolean {
  for (const p of paths) {
    const a = sources(from, p);
    const b = sources(to, p);
    if (a.join('\n') !== b.join('\n')) return false;
    for (const f of a) if (!readFileSync(join(from, f)).equals(readFileSync(join(to, f)))) return false;
  }
  return true;
}

/** The tool packages the build compiles: [package dir, module path] (from each caxton-tool.toml's folder). */
function toolPackages(root: string): string[] {
  const dirs = ['examples/tools/text', 'templates/tool-assemblyscript'];
  const builtin = join(root, 'tools/builtin');
  if (existsSync(builtin))
    for (const name of readdirSync(builtin).sort())
      if (existsSync(join(builtin, name, 'caxton-tool.toml'))) dirs.push(`tools/builtin/${name}`);
  return dirs;
}

export interface Seeded {
  dist: boolean;
  tools: number;
}

export function seedBuild(from: string, clone: string): Seeded {
  const seeded: Seeded = { dist: false, tools: 0 };
  const info = join(from, 'dist', '.tsbuildinfo');
  if (existsSync(info)) {
    cpSync(join(from, 'dist'), join(clone, 'dist'), { recursive: true });
    const record = JSON.parse(readFileSync(info, 'utf8')) as { fileNames?: unknown };
    if (Array.isArray(record.fileNames)) {
      const distDir = join(clone, 'dist');
      const modules = `${relative(distDir, realpathSync(join(from, 'node_modules')))}/`;
      record.fileNames = record.fileNames.map((n: unknown) =>
        typeof n === 'string' && n.startsWith('../node_modules/') ? modules + n.slice('../node_modules/'.length) : n,
      );
      writeFileSync(join(distDir, '.tsbuildinfo'), JSON.stringify(record));
      seeded.dist = true;
    }
  }
  for (const dir of toolPackages(clone)) {
    const build = join(from, dir, 'build');
    if (!existsSync(build) || !sameSources(from, clone, [join(dir, 'assembly'), ...SHARED_SOURCES])) continue;
    cpSync(build, join(clone, dir, 'build'), { recursive: true });
    seeded.tools++;
  }
  return seeded;
}
