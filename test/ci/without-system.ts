/**
 * The hidden-components stage of .ci/run: the test files that use an optional system component
 * run with every such component hidden, as on a fresh machine, and must pass or skip. CI installs
 * everything first, so without this stage nothing would prove that a missing component skips its
 * tests with one line instead of failing them (ADR 0129).
 *
 *     node --import tsx test/ci/without-system.ts [--config FILE] [TEST_FILE...]
 *
 * Hidden in a bubblewrap mount and network namespace around the vitest run, not by telling the
 * probe: a test that starts clang without asking test/helpers/system.ts must really fail to start
 * it. Each optional program on PATH (and its target) is covered by /dev/null, the directories the
 * toolchains, browser and PostgreSQL live in by an empty tmpfs, and the network is a private
 * loopback, so the PostgreSQL and NATS servers of the machine are not reachable. The probe is run
 * inside first and every component must come out missing, so a hiding that stopped working (a new
 * toolchain path) fails the stage instead of passing it without proving anything.
 *
 * Without file arguments it runs the files test/helpers/optional-programs.ts picks: every test
 * file that names a component, itself or through a helper. Exit code 0 when all pass or skip.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { repoRoot } from '../helpers/fixtures.js';
import { optionalComponentTests, testSources } from '../helpers/optional-programs.js';
import { SYSTEM_COMPONENTS, type SystemComponent } from '../helpers/system-probe.js';

/** Program names that belong to an optional component, in any directory on PATH. */
const HIDDEN_PROGRAM =
  /^(?:clang(?:\+\+|-cpp)?(?:-[\d.]+)?|wasm-ld(?:-[\d.]+)?|(?:ld\.)?lld(?:-[\d.]+)?|rustc|rustdoc|rustup|cargo|bwrap|chromium(?:-browser)?|promtool|nats-server|psql|initdb|postgres|postmaster|pg_[\w]+)$/;

/** Directories whose whole content belongs to an optional component. */
function hiddenDirs(): string[] {
  const out = ['/usr/lib/postgresql', '/usr/lib/chromium', join(homedir(), '.rustup')];
  if (existsSync('/usr/lib'))
    for (const e of readdirSync('/usr/lib')) if (/^llvm-\d+$/.test(e)) out.push(`/usr/lib/${e}`);
  for (const root of ['/usr/lib/rustlib', '/usr/local/lib/rustlib'])
    if (existsSync(root)) for (const e of readdirSync(root)) if (e.startsWith('wasm32')) out.push(join(root, e));
  if (process.env.CAXTON_TEST_PG_BIN) out.push(process.env.CAXTON_TEST_PG_BIN);
  return out.filter((d) => existsSync(d) && statSync(d).isDirectory());
}

/** Files to cover: every optional program on PATH and in the usual bin directories, with the files their links point at. */
function hiddenFiles(): string[] {
  const dirs = new Set<string>();
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin', '/bin'])
    if (d && existsSync(d)) dirs.add(realpathSync(d));
  // A bind mount lands on a link's target, so the targets are what gets covered; a link into a
  // directory emptied below dangles, which hides it as a missing file does.
  const underDir = hiddenDirs();
  const out = new Set<string>();
  for (const d of dirs)
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (HIDDEN_PROGRAM.test(e) && existsSync(p)) out.add(realpathSync(p));
    }
  for (const v of [process.env.CAXTON_TEST_CHROMIUM, process.env.CAXTON_TEST_NATS_SERVER])
    if (v && existsSync(v)) out.add(realpathSync(v));
  return [...out].filter((f) => !underDir.some((d) => f.startsWith(`${d}/`))).sort();
}

/** The bwrap arguments that hide the components around `argv`. */
function sandbox(argv: string[]): string[] {
  const args = ['--dev-bind', '/', '/', '--unshare-net', '--die-with-parent'];
  for (const d of hiddenDirs()) args.push('--tmpfs', d);
  for (const f of hiddenFiles()) args.push('--ro-bind', '/dev/null', f);
  return [...args, '--', ...argv];
}

/** This environment without the CI switches, which turn a missing component into a failure. */
function localEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.CI;
  delete env.CAXTON_TEST_REQUIRE_SYSTEM;
  return env;
}

const PROBE = `import { probeSystem } from ${JSON.stringify(join(repoRoot, 'test/helpers/system-probe.ts'))};
process.stdout.write(JSON.stringify(await probeSystem()));`;

function main(): number {
  const args = process.argv.slice(2);
  const config: string[] = [];
  const i = args.indexOf('--config');
  if (i >= 0) config.push(...args.splice(i, 2));
  const files = args.length > 0 ? args : optionalComponentTests(testSources());

  const bwrap = spawnSync('bwrap', ['--version'], { encoding: 'utf8' });
  if (bwrap.error) {
    console.error(
      `without-system: bwrap is needed to hide the optional components (${SYSTEM_COMPONENTS.bwrap.install})`,
    );
    return 1;
  }

  // Everything hidden, or the stage proves nothing.
  const probe = spawnSync('bwrap', sandbox([process.execPath, '--import', 'tsx', '--input-type=module', '-e', PROBE]), {
    cwd: repoRoot,
    env: localEnv({}),
    encoding: 'utf8',
  });
  if (probe.status !== 0) {
    console.error(`without-system: the probe failed in the sandbox:\n${probe.stderr}`);
    return 1;
  }
  const status = JSON.parse(probe.stdout) as Record<SystemComponent, string | null>;
  const found = Object.entries(status).filter(([, reason]) => reason === null);
  if (found.length > 0) {
    console.error(
      `without-system: still available with the components hidden: ${found.map(([c]) => c).join(', ')}; ` +
        'hide where it is installed in test/ci/without-system.ts',
    );
    return 1;
  }
  console.log(
    `without-system: all ${Object.keys(status).length} optional components hidden; ${files.length} test files`,
  );

  const dir = mkdtempSync(join(tmpdir(), 'caxton-without-system-'));
  try {
    const log = join(dir, 'skips.log');
    const run = spawnSync(
      'bwrap',
      sandbox([process.execPath, join(repoRoot, 'node_modules/vitest/vitest.mjs'), 'run', ...config, ...files]),
      { cwd: repoRoot, env: localEnv({ CAXTON_TEST_SKIP_LOG: log }), stdio: 'inherit' },
    );
    if (run.status !== 0) {
      console.error(
        'without-system: a test failed with the optional components hidden; on a machine without them it must ' +
          "skip: ask hasSystem('<component>') from test/helpers/system.ts before using it",
      );
      return 1;
    }
    // One line per component and test process, each naming the component first.
    const lines = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
    const skipped = [...new Set(lines.map((l) => l.split('\t')[0]))].sort();
    console.log(`without-system: passed; components the tests skipped for: ${skipped.join(', ') || 'none'}`);
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = main();
