/**
 * A test that starts an optional system program (clang, rustc, bwrap, chromium, promtool,
 * nats-server, PostgreSQL's binaries) must ask test/helpers/system.ts first (`hasSystem(name)`),
 * so that on a machine without it the test skips with the helper's one line instead of failing
 * with `spawn… ENOENT`. CI installs everything, so only this check keeps that path honest.
 *
 * Static: every file under test/ is read; a file launches a component when it passes the
 * program's name (or a helper's name for its path, such as NATS_SERVER) as the program of a
 * spawn/exec call or as a browser's executablePath. A test file must ask `hasSystem('<component>')`
 * for every component that it, or any test helper it imports (directly or through other helpers),
 * launches; the asking may be in one of those helpers too (a fixture that says whether to run).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';
import { SYSTEM_COMPONENTS, type SystemComponent } from '../helpers/system-probe.js';

/** Program names, as spawned, and the component that provides them. */
const PROGRAMS: Record<string, SystemComponent> = {
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
const PATH_NAMES: Record<string, SystemComponent> = {
  NATS_SERVER: 'nats-server',
  TEST_CHROMIUM: 'chromium',
};

/** Calls whose result is a program's location, so calling them means launching it next. */
const LOCATORS: Record<string, SystemComponent> = {
  postgresBinDir: 'postgresql-server',
  wasmRustc: 'wasm-rust',
};

/** The probe and the helper themselves, which start the programs to find out whether they are there. */
const EXEMPT = new Set([
  'test/helpers/system-probe.ts',
  'test/helpers/system.ts',
  'test/helpers/system-setup.ts',
  // This file: its own examples below spawn programs in strings.
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
function launches(text: string): Set<SystemComponent> {
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
function asks(text: string): Set<SystemComponent> {
  const out = new Set<SystemComponent>();
  for (const m of text.matchAll(/\bhasSystem\(\s*(['"])([\w-]+)\1\s*\)/g)) out.add(m[2] as SystemComponent);
  return out;
}

/** The test/ files `text` (the file at `file`) imports by relative path, as repo-relative .ts paths. */
function importsOf(file: string, text: string): string[] {
  const out: string[] = [];
  const specs = /(?:\bfrom\s*|\bimport\s*\(?\s*)(['"])(\.{1,2}\/[^'"]+)\1/g;
  for (const m of text.matchAll(specs)) {
    const target = relative(repoRoot, resolve(dirname(join(repoRoot, file)), m[2]!)).replace(/\.js$/, '.ts');
    if (target.startsWith('test/')) out.push(target);
  }
  return out;
}

/** `text` without its block comments and whole-line // comments, where programs are named but not started. */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

function filesUnder(dir: string): string[] {
  return readdirSync(join(repoRoot, dir), { withFileTypes: true }).flatMap((e) => {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) return e.name === 'fixtures' || e.name === 'node_modules' ? [] : filesUnder(path);
    return /\.(?:ts|mts)$/.test(e.name) ? [path] : [];
  });
}

/** For each test file (`*.test.ts`), the components it launches, itself or through its helpers, without asking. */
function unasked(sources: Map<string, string>): Map<string, SystemComponent[]> {
  const code = new Map([...sources].map(([f, t]) => [f, EXEMPT.has(f) ? '' : withoutComments(t)] as const));
  /** The files `file` is made of: itself and the test helpers it imports, directly or not. */
  const closure = (file: string, seen = new Set<string>()): Set<string> => {
    if (seen.has(file) || !code.has(file)) return seen;
    seen.add(file);
    for (const dep of importsOf(file, code.get(file)!)) closure(dep, seen);
    return seen;
  };
  const out = new Map<string, SystemComponent[]>();
  for (const file of sources.keys()) {
    if (!file.endsWith('.test.ts') || EXEMPT.has(file)) continue;
    const launched = new Set<SystemComponent>();
    const asked = new Set<SystemComponent>();
    // A helper may ask for the file (a fixture that returns whether to run), so asking anywhere in
    // the file's own code or its helpers counts.
    for (const f of closure(file)) {
      for (const c of launches(code.get(f)!)) launched.add(c);
      for (const c of asks(code.get(f)!)) asked.add(c);
    }
    const missing = [...launched].filter((c) => !asked.has(c)).sort();
    if (missing.length > 0) out.set(file, missing);
  }
  return out;
}

describe('optional system programs', () => {
  it('every test that starts one, itself or through a helper, asks hasSystem for it first', () => {
    const sources = new Map(filesUnder('test').map((f) => [f, readFileSync(join(repoRoot, f), 'utf8')] as const));
    expect(sources.size).toBeGreaterThan(100);
    const bad = [...unasked(sources)].map(([f, cs]) => `${f}: ${cs.map((c) => `hasSystem('${c}')`).join(', ')}`);
    expect(bad, 'these test files start an optional program without asking test/helpers/system.ts').toEqual([]);
  });

  it('knows every program by a component the probe defines', () => {
    for (const c of [...Object.values(PROGRAMS), ...Object.values(PATH_NAMES), ...Object.values(LOCATORS)])
      expect(Object.keys(SYSTEM_COMPONENTS)).toContain(c);
  });

  it('finds the programs spawned by name, by a helper path, through a join, or as a browser', () => {
    expect([...launches("execFileSync('clang', ['--target=wasm32-wasi'])")]).toEqual(['wasm-c']);
    expect([...launches('spawnSync(`promtool check rules x`, { shell: true })')]).toEqual(['promtool']);
    expect([...launches("execSync('rustc --print sysroot')")]).toEqual(['wasm-rust']);
    expect([...launches('const child = spawn(\n  NATS_SERVER,\n  args)')]).toEqual(['nats-server']);
    expect([...launches("spawnSync(join(bin.dir, 'pg_isready'), [])")]).toEqual(['postgresql-server']);
    expect([...launches('chromium.launch({ executablePath: TEST_CHROMIUM })')]).toEqual(['chromium']);
    expect([...launches("spawn('bwrap', ['--ro-bind', '/', '/'])")]).toEqual(['bwrap']);
    expect([...launches("spawn(process.execPath, [CLI, 'serve']); spawnSync('git', ['clone']); exec('x')")]).toEqual(
      [],
    );
    expect([...launches("// clang is not spawned here\nconst s = 'clang';")]).toEqual([]);
  });

  it('refuses a test that spawns one without asking, directly or through a helper, and accepts one that asks', () => {
    const sources = new Map([
      ['test/a/direct.test.ts', "import { execFileSync } from 'node:child_process';\nexecFileSync('clang', []);\n"],
      [
        'test/a/asks.test.ts',
        "const haveC = hasSystem('wasm-c');\nbeforeAll(() => { if (haveC) execFileSync('clang', []); });\n",
      ],
      ['test/a/helper.ts', "export const start = () => spawn(NATS_SERVER, ['-js']);\n"],
      ['test/a/middle.ts', "export { start } from './helper.js';\n"],
      ['test/a/via-helper.test.ts', "import { start } from './middle.js';\nstart();\n"],
      [
        'test/a/via-helper-asks.test.ts',
        "import { start } from './middle.js';\nif (hasSystem('nats-server')) start();\n",
      ],
      ['test/a/wrong-one.test.ts', "hasSystem('wasm-rust');\nexecFileSync('clang', []);\n"],
      ['test/a/comment.test.ts', "// hasSystem('wasm-c') is not asked in a comment\nexecFileSync('clang', []);\n"],
      ['test/a/fixture.ts', "import { start } from './helper.js';\nexport const run = hasSystem('nats-server');\n"],
      ['test/a/via-fixture.test.ts', "import { run } from './fixture.js';\n"],
      ['test/helpers/system-probe.ts', "spawnSync('promtool', ['--version']);\n"],
    ]);
    expect(Object.fromEntries(unasked(sources))).toEqual({
      'test/a/direct.test.ts': ['wasm-c'],
      'test/a/via-helper.test.ts': ['nats-server'],
      'test/a/wrong-one.test.ts': ['wasm-c'],
      'test/a/comment.test.ts': ['wasm-c'],
    });
  });
});
