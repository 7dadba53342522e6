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
import { describe, expect, it } from 'vitest';
import {
  LOCATORS,
  PATH_NAMES,
  PROGRAMS,
  launches,
  optionalComponentTests,
  testSources,
  unasked,
} from '../helpers/optional-programs.js';
import { SYSTEM_COMPONENTS } from '../helpers/system-probe.js';

describe('optional system programs', () => {
  it('every test that starts one, itself or through a helper, asks hasSystem for it first', () => {
    const sources = testSources();
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

  it('picks for the hidden-components stage every test file that names a component, itself or through a helper', () => {
    const sources = new Map([
      ['test/a/spawns.test.ts', "execFileSync('clang', []);\n"],
      ['test/a/db.ts', "export const url = 'postgres://postgres@127.0.0.1:5432/test';\n"],
      ['test/a/uses-db.test.ts', "import { url } from './db.js';\n"],
      ['test/a/asks.test.ts', "if (hasSystem('promtool')) run();\n"],
      ['test/a/browser.test.ts', "import { chromium } from 'playwright-core';\n"],
      ['test/a/plain.test.ts', "import { spawn } from 'node:child_process';\nspawn(process.execPath, []);\n"],
      ['test/a/comment.test.ts', '// clang, rustc and postgres:// in a comment only\nconst x = 1;\n'],
    ]);
    expect(optionalComponentTests(sources)).toEqual([
      'test/a/asks.test.ts',
      'test/a/browser.test.ts',
      'test/a/spawns.test.ts',
      'test/a/uses-db.test.ts',
    ]);
    // The repository's own: the files that ask the helper are all among them.
    const real = testSources();
    const picked = new Set(optionalComponentTests(real));
    const asking = [...real].filter(([f, t]) => f.endsWith('.test.ts') && /\bhasSystem\(/.test(t)).map(([f]) => f);
    expect(asking.length).toBeGreaterThan(20);
    expect(asking.filter((f) => !picked.has(f) && f !== 'test/ci/optional-tools.test.ts')).toEqual([]);
  });
});
