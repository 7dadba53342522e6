/**
 * Probing the system components some tests need beyond `npm ci` (see system.ts for why). No
 * vitest import here: vitest's global setup (system-setup.ts) runs it in the main process.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export type SystemComponent =
  | 'postgresql'
  | 'pgvector'
  | 'postgresql-server'
  | 'promtool'
  | 'nats-server'
  | 'chromium'
  | 'bwrap'
  | 'wasm-c'
  | 'wasm-rust';

/** What each component is and the command that installs it (Debian; see README "Test"). */
export const SYSTEM_COMPONENTS: Record<SystemComponent, { label: string; install: string }> = {
  postgresql: {
    label: 'PostgreSQL',
    install: 'sudo apt-get install postgresql (local trust auth, database "test"), or set CAXTON_TEST_PG_URL',
  },
  pgvector: { label: 'pgvector', install: 'sudo scripts/setup-pgvector.sh' },
  'postgresql-server': {
    label: "PostgreSQL's server binaries",
    install:
      'sudo apt-get install postgresql (or set CAXTON_TEST_PG_BIN to the directory of initdb, postgres and pg_ctl)',
  },
  promtool: { label: 'promtool', install: 'sudo apt-get install --no-install-recommends prometheus' },
  'nats-server': {
    label: 'nats-server',
    install: 'sudo apt-get install nats-server (or set CAXTON_TEST_NATS_SERVER to its path)',
  },
  chromium: {
    label: 'Chromium',
    install: 'sudo apt-get install --no-install-recommends chromium (or set CAXTON_TEST_CHROMIUM to its path)',
  },
  bwrap: { label: 'bubblewrap', install: 'sudo apt-get install --no-install-recommends bubblewrap' },
  'wasm-c': {
    label: 'the C to WebAssembly toolchain',
    install: 'sudo apt-get install --no-install-recommends clang lld wasi-libc libclang-rt-dev-wasm32 make',
  },
  'wasm-rust': {
    label: 'the Rust to WebAssembly toolchain',
    install: 'sudo apt-get install --no-install-recommends rustc libstd-rust-dev-wasm32 make',
  },
};

const PG_ROOT = '/usr/lib/postgresql';

/**
 * The directory holding initdb, postgres and pg_ctl (the highest major under /usr/lib/postgresql,
 * or $CAXTON_TEST_PG_BIN), or why there is none: the tests that start a PostgreSQL of their own
 * (test/cluster/helpers/private-postgres.ts) need them, not just a server to connect to.
 */
export function postgresBinDir(): { dir: string } | { missing: string } {
  const fromEnv = process.env.CAXTON_TEST_PG_BIN;
  const candidates = fromEnv
    ? [fromEnv]
    : existsSync(PG_ROOT)
      ? readdirSync(PG_ROOT)
          .filter((v) => /^\d+$/.test(v))
          .sort((a, b) => Number(b) - Number(a))
          .map((v) => join(PG_ROOT, v, 'bin'))
      : [];
  for (const dir of candidates) {
    if (['initdb', 'postgres', 'pg_ctl'].every((b) => existsSync(join(dir, b)))) return { dir };
  }
  return {
    missing: fromEnv
      ? `CAXTON_TEST_PG_BIN=${fromEnv} does not hold initdb, postgres and pg_ctl`
      : `no initdb, postgres and pg_ctl under ${PG_ROOT}/<major>/bin`,
  };
}

/** The first `rustc` (PATH, then Debian's) whose sysroot has the wasm32-unknown-unknown standard library. */
export function wasmRustc(): string | null {
  for (const rustc of ['rustc', '/usr/bin/rustc']) {
    const r = spawnSync(rustc, ['--print', 'sysroot'], { encoding: 'utf8', timeout: 10_000 });
    if (r.status === 0 && existsSync(join(r.stdout.trim(), 'lib/rustlib/wasm32-unknown-unknown'))) return rustc;
  }
  return null;
}

/** Whether clang can link a module for wasm32 against wasi-libc (what templates/tool-c's Makefile runs). */
function probeWasmC(): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'caxton-probe-c-'));
  try {
    writeFileSync(
      join(dir, 't.c'),
      '#include <stdlib.h>\n__attribute__((export_name("t"))) int t(void) { return malloc(8) != 0; }\n',
    );
    const r = spawnSync(
      'clang',
      [
        '--target=wasm32-wasi',
        '--sysroot=/usr',
        '-O2',
        '-nostartfiles',
        '-Wl,--no-entry',
        '-o',
        join(dir, 't.wasm'),
        join(dir, 't.c'),
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    if (r.error) return `clang not found on PATH (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`;
    if (r.status !== 0) return `clang cannot build for wasm32 here: ${r.stderr.trim().split('\n')[0] ?? ''}`;
    const make = spawnSync('make', ['--version'], { encoding: 'utf8', timeout: 10_000 });
    return make.status === 0 ? null : 'make not found on PATH';
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The browser the web console's end-to-end tests drive (test/console/harness.ts); never downloaded. */
export const TEST_CHROMIUM = process.env.CAXTON_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Per component: null when present, else why it is missing. */
export type SystemStatus = Record<SystemComponent, string | null>;

// The global setup hands the status to the test files (`inject('caxtonSystem')`). A type-only
// augmentation: nothing of vitest is loaded by this file.
declare module 'vitest' {
  export interface ProvidedContext {
    caxtonSystem: SystemStatus;
  }
}

/** The test PostgreSQL (test/memory/backends.ts uses the same). */
export const TEST_PG_URL = process.env.CAXTON_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** True when a missing component must fail the tests instead of skipping them (CI). */
export function systemRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const on = (v: string | undefined) => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
  return on(env.CI) || on(env.CAXTON_TEST_REQUIRE_SYSTEM);
}

/** Probes every component (a PostgreSQL connection bounded to 5 s, `promtool --version`). */
export async function probeSystem(): Promise<SystemStatus> {
  let postgresql: string | null = null;
  let pgvector: string | null = null;
  const client = new pg.Client({ connectionString: TEST_PG_URL, connectionTimeoutMillis: 5000, query_timeout: 5000 });
  try {
    await client.connect();
    const { rows } = await client.query("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'");
    if (rows.length === 0) pgvector = `PostgreSQL at ${TEST_PG_URL} has no "vector" extension`;
  } catch (e) {
    postgresql = `cannot connect to PostgreSQL at ${TEST_PG_URL} (${(e as Error).message})`;
    pgvector = postgresql;
  } finally {
    await client.end().catch(() => undefined);
  }
  const r = spawnSync('promtool', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const promtool = r.error
    ? `promtool not found on PATH (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`
    : r.status !== 0
      ? `promtool --version exited with ${r.status}`
      : null;
  // The cluster tests start their own JetStream servers (test/helpers/nats-server.ts).
  const natsBin = process.env.CAXTON_TEST_NATS_SERVER ?? 'nats-server';
  const n = spawnSync(natsBin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const nats = n.error
    ? `${natsBin} not found on PATH (${(n.error as NodeJS.ErrnoException).code ?? n.error.message})`
    : n.status !== 0
      ? `${natsBin} --version exited with ${n.status}`
      : null;
  // The web console's end-to-end tests drive Debian's chromium (test/console/).
  const c = spawnSync(TEST_CHROMIUM, ['--version'], { encoding: 'utf8', timeout: 20_000 });
  const chromium = c.error
    ? `${TEST_CHROMIUM} not found (${(c.error as NodeJS.ErrnoException).code ?? c.error.message})`
    : c.status !== 0
      ? `${TEST_CHROMIUM} --version exited with ${c.status}`
      : null;
  // workspace.bash runs commands in a bubblewrap sandbox (test/tools/workspace/bash.test.ts): it must be able to make its namespaces here.
  const b = spawnSync('bwrap', ['--ro-bind', '/', '/', '--unshare-all', '--', '/bin/true'], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  const bwrap = b.error
    ? `bwrap not found on PATH (${(b.error as NodeJS.ErrnoException).code ?? b.error.message})`
    : b.status !== 0
      ? `bwrap cannot create a sandbox here: ${b.stderr.trim()}`
      : null;
  // templates/tool-c and templates/tool-rust are built with Debian's toolchains (test/tools/wasm/sdk-templates.test.ts).
  const wasmC = probeWasmC();
  const wasmRust =
    wasmRustc() === null ? 'no rustc with the wasm32-unknown-unknown target (rustc, /usr/bin/rustc)' : null;
  const pgBin = postgresBinDir();
  return {
    postgresql,
    pgvector,
    'postgresql-server': 'missing' in pgBin ? pgBin.missing : null,
    promtool,
    'nats-server': nats,
    chromium,
    bwrap,
    'wasm-c': wasmC,
    'wasm-rust': wasmRust,
  };
}

/** The one line printed for a missing component. */
export function missingLine(name: SystemComponent, reason: string, required = false): string {
  const then = required ? 'required here (CI)' : 'skipping the tests that need it';
  return `[caxton tests] ${SYSTEM_COMPONENTS[name].label} missing (${reason}): ${then}; install it with: ${SYSTEM_COMPONENTS[name].install}`;
}

/** The lines to print for a run: one per missing component (pgvector's is implied by PostgreSQL's). */
export function missingLines(status: SystemStatus, required = false): string[] {
  const out: string[] = [];
  for (const name of Object.keys(SYSTEM_COMPONENTS) as SystemComponent[]) {
    const reason = status[name];
    if (reason === null) continue;
    if (name === 'pgvector' && status.postgresql !== null) continue;
    out.push(missingLine(name, reason, required));
  }
  return out;
}
