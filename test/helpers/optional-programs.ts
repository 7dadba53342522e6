/**
 * Which test files start an optional system program (clang, rustc, bwrap, chromium, promtool,
 * nats-server, PostgreSQL's binaries) and which ask test/helpers/system.ts about it. Read from
 * the sources, without running them: the static check (test/ci/optional-tools.test.ts) refuses a
 * test that starts one without asking, and the hidden-components stage (test/ci/without-system.ts)
 * picks the files to run with the components hidden. No vitest import: the stage runs it in a
 * plain Node process.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { repoRoot } from './fixtures.js';
import type { SystemComponent } from './system-probe.js';

/** Program names, as spawned, and the component that provides them. */
export const PROGRAMS: Record<string, SystemComponent> = {
  clang: 'wasm-c',
  'wasm-ld': 'wasm-c',
  rustc: 'wasm-rust',
  cargo: 'wasm-rust',
  bwrap: 'bwrap',
  chromium: 'chromium',
  'chromium-browser': 'chromium',
  promtool: 'promtool',
  'nats-server': 'nats-server',
  initdb: 'postgresql-server',
  pg_ctl: 'postgresql-server',
  postgres: 'postgresql-server',
  pg_isready: 'postgresql-server',
  psql: 'postgresql',
};

/** Names the helpers use for a program's path (test/helpers/nats-server.ts, system-probe.ts). */
export const PATH_NAMES: Record<string, SystemComponent> = {
  NATS_SERVER: 'nats-server',
  TEST_CHROMIUM: 'chromium',
};

/** Calls whose result is a program's location, so calling them means launching it next. */
export const LOCATORS: Record<string, SystemComponent> = {
  postgresBinDir: 'postgresql-server',
  wasmRustc: 'wasm-rust',
};

/** The probe and the helper themselves, which start the programs to find out whether they are there. */
export const EXEMPT = new Set([
  'test/helpers/system-probe.ts',
  'test/helpers/system.ts',
  'test/helpers/system-setup.ts',
  'test/helpers/optional-programs.ts',
  // Its own examples spawn programs in strings.
  'test/ci/optional-tools.test.ts',
]);

const SPAWN = /\b(?:spawn|spawnSync|execFile|execFileSync|exec|execSync|execa)\s*\(/g;

/** The component the program argument (the text right after a spawn/exec call's parenthesis) names, if any. */
function programOf(arg: string): SystemComponent | undefined {
  // 'clang', `clang --version`, "promtool check rules"
  const literal = /^\s*(['"`])([\w.+-]+)(?=[\s'"`])/.exec(arg);
  if (literal) return PROGRAMS[literal[2]!];
  // join(bin.dir, 'pg_isready'), path.join(dir, "postgres")
  const joined = /^\s*(?:path\.)?join\([^()]*,\s*(['"`])([\w.+-]+)\1\s*\)/.exec(arg);
  if (joined) return PROGRAMS[joined[2]!];
  const name = /^\s*([A-Za-z_$][\w$]*)\s*[,)]/.exec(arg);
  return name ? PATH_NAMES[name[1]!] : undefined;
}

/** The optional components `text` starts itself. */
export function launches(text: string): Set<SystemComponent> {
  const out = new Set<SystemComponent>();
  for (const m of text.matchAll(SPAWN)) {
    const c = programOf(text.slice(m.index + m[0].length, m.index + m[0].length + 200));
    if (c) out.add(c);
  }
  for (const m of text.matchAll(/\bexecutablePath\s*:\s*(?:(['"`])([^'"`]+)\1|([A-Za-z_$][\w$]*))/g)) {
    const c = m[2] !== undefined ? PROGRAMS[m[2].split('/').pop()!] : PATH_NAMES[m[3]!];
    if (c) out.add(c);
  }
  for (const [fn, c] of Object.entries(LOCATORS)) if (new RegExp(`\\b${fn}\\s*\\(`).test(text)) out.add(c);
  return out;
}

/** The components `text` asks the helper about. */
export function asks(text: string): Set<SystemComponent> {
  const out = new Set<SystemComponent>();
  for (const m of text.matchAll(/\bhasSystem\(\s*(['"])([\w-]+)\1\s*\)/g)) out.add(m[2] as SystemComponent);
  return out;
}

/**
 * Whether `text` names an optional component at all: a program's name, the PostgreSQL or NATS
 * servers the tests connect to, the browser driver. Wider than `launches` on purpose: the
 * hidden-components stage runs every such file, so one that reaches a component some way the
 * static check does not read still has to skip when it is missing.
 */
export function mentions(text: string): boolean {
  return /\b(?:clang|wasm-ld|rustc|cargo|bwrap|chromium|promtool|nats-server|initdb|pg_ctl|psql|playwright-core|hasSystem|TEST_PG_URL|postgresBinDir|wasmRustc)\b|postgres(?:ql)?:\/\/|nats:\/\//.test(
    text,
  );
}

/** The test/ files `text` (the file at `file`) imports by relative path, as repo-relative .ts paths. */
export function importsOf(file: string, text: string): string[] {
  const out: string[] = [];
  const specs = /(?:\bfrom\s*|\bimport\s*\(?\s*)(['"])(\.{1,2}\/[^'"]+)\1/g;
  for (const m of text.matchAll(specs)) {
    const target = relative(repoRoot, resolve(dirname(join(repoRoot, file)), m[2]!)).replace(/\.js$/, '.ts');
    if (target.startsWith('test/')) out.push(target);
  }
  return out;
}

/** `text` without its block comments and whole-line // comments, where programs are named but not started. */
export function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

function filesUnder(dir: string): string[] {
  return readdirSync(join(repoRoot, dir), { withFileTypes: true }).flatMap((e) => {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) return e.name === 'fixtures' || e.name === 'node_modules' ? [] : filesUnder(path);
    return /\.(?:ts|mts)$/.test(e.name) ? [path] : [];
  });
}

/** Every TypeScript file under test/ (fixtures excluded), by repo-relative path, with its text. */
export function testSources(): Map<string, string> {
  return new Map(filesUnder('test').map((f) => [f, readFileSync(join(repoRoot, f), 'utf8')] as const));
}

/** Per test file (`*.test.ts`), its code without comments and that of the test helpers it imports, directly or not. */
function testFileClosures(sources: Map<string, string>): Map<string, string[]> {
  const code = new Map([...sources].map(([f, t]) => [f, EXEMPT.has(f) ? '' : withoutComments(t)] as const));
  const closure = (file: string, seen = new Set<string>()): Set<string> => {
    if (seen.has(file) || !code.has(file)) return seen;
    seen.add(file);
    for (const dep of importsOf(file, code.get(file)!)) closure(dep, seen);
    return seen;
  };
  const out = new Map<string, string[]>();
  for (const file of sources.keys()) {
    if (!file.endsWith('.test.ts') || EXEMPT.has(file)) continue;
    out.set(
      file,
      [...closure(file)].map((f) => code.get(f)!),
    );
  }
  return out;
}

/** For each test file, the components it launches, itself or through its helpers, without asking. */
export function unasked(sources: Map<string, string>): Map<string, SystemComponent[]> {
  const out = new Map<string, SystemComponent[]>();
  for (const [file, texts] of testFileClosures(sources)) {
    const launched = new Set<SystemComponent>();
    const asked = new Set<SystemComponent>();
    // A helper may ask for the file (a fixture that returns whether to run), so asking anywhere in
    // the file's own code or its helpers counts.
    for (const t of texts) {
      for (const c of launches(t)) launched.add(c);
      for (const c of asks(t)) asked.add(c);
    }
    const missing = [...launched].filter((c) => !asked.has(c)).sort();
    if (missing.length > 0) out.set(file, missing);
  }
  return out;
}

/** The test files that name an optional component, themselves or through their helpers, sorted. */
export function optionalComponentTests(sources: Map<string, string>): string[] {
  return [...testFileClosures(sources)]
    .filter(([, texts]) => texts.some((t) => mentions(t)))
    .map(([f]) => f)
    .sort();
}
