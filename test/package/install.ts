/**
 * `npm pack` of this repository and `npm install -g` of the tarball into a temporary prefix, for
 * test/package/pack.test.ts. No vitest import: vitest's global setup (setup.ts) starts it at the
 * beginning of a run, so the install (mostly waiting on npm's registry and disk) overlaps the
 * other test files instead of adding ~2.5 minutes to a run that uses one worker on 2 cores.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const INSTALL_TIMEOUT_MS = 240_000;

export interface Installed {
  dir: string;
  prefix: string;
  /** The prefix's bin/ (where `caxton` is). */
  bin: string;
  /** The installed package's directory. */
  installed: string;
  tarball: string;
  packedFiles: string[];
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();

/** Kills what is still running (a run that ended before the install did). */
export function killInstall(): void {
  for (const c of running) c.kill('SIGKILL');
}

export function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<RunResult> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(
        new Error(
          `${cmd} ${args.join(' ')} did not finish within ${opts.timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      running.delete(child);
      rej(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      res({ code, stdout, stderr });
    });
  });
}

/** PATH with the prefix's bin and node only: nothing from the repository (node_modules/.bin). */
export function userPath(bin: string): string {
  return [bin, dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(delimiter);
}

/** The environment of a user's shell: no CAXTON_* or vitest variables; npm's own settings kept. */
export function userEnv(bin: string, home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { PATH: userPath(bin), HOME: process.env.HOME ?? home, LANG: 'C.UTF-8', ...extra };
  // The machine's certificate settings too: a registry behind a TLS-inspecting proxy is reached
  // only with them (a user's shell has them as well).
  for (const k of [
    'npm_config_cache',
    'npm_config_userconfig',
    'NPM_CONFIG_USERCONFIG',
    'npm_config_registry',
    'npm_config_cafile',
    'NODE_EXTRA_CA_CERTS',
    'SSL_CERT_FILE',
    'SSL_CERT_DIR',
  ])
    if (process.env[k]) out[k] = process.env[k];
  // `npm install -g --prefix P` reads its global npmrc from P/etc/npmrc, so the machine's global
  // settings (such as cafile) are passed on explicitly.
  const globalConfig = process.env.npm_config_globalconfig ?? join(dirname(dirname(process.execPath)), 'etc', 'npmrc');
  if (existsSync(globalConfig)) out.npm_config_globalconfig = globalConfig;
  return out;
}

function check(r: RunResult, what: string): RunResult {
  if (r.code !== 0) throw new Error(`${what} exited with ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}

/**
 * The repository's compiled better-sqlite3 addon as a prebuild-install "local prebuild" (the
 * file name prebuild-install looks for: NAME-vVERSION-node-vABI-PLATFORM-ARCH.tar.gz): compiling
 * SQLite again took 7.5 minutes on the 2-core machine and tests nothing of Caxton's. Used only
 * when the install resolves the same version; otherwise it compiles, as a user's install does.
 */
function sqlitePrebuild(dir: string): Record<string, string> {
  const pkgDir = join(repoRoot, 'node_modules/better-sqlite3');
  if (!existsSync(join(pkgDir, 'build/Release/better_sqlite3.node')) || process.platform !== 'linux') return {};
  const { version } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string };
  const prebuilds = join(dir, 'prebuilds');
  mkdirSync(prebuilds, { recursive: true });
  const file = join(
    prebuilds,
    `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`,
  );
  const r = spawnSync('tar', ['-czf', file, '-C', pkgDir, 'build/Release/better_sqlite3.node'], { encoding: 'utf8' });
  return r.status === 0 ? { npm_config_better_sqlite3_local_prebuilds: prebuilds } : {};
}

/**
 * Packs with --ignore-scripts (`prepare` would rebuild dist/ while other test files run it;
 * `npm test` built it in pretest), then installs the tarball as README "Install as a package"
 * says, from `dir` (not the repository).
 */
export async function packAndInstall(dir: string): Promise<Installed> {
  if (!existsSync(join(repoRoot, 'dist/cli/main.js')) || !existsSync(join(repoRoot, 'dist/index.js')))
    throw new Error('dist/ is not built: run `npm run build` (npm test does it first)');
  const prefix = join(dir, 'prefix');
  const bin = join(prefix, 'bin');
  const packed = check(
    await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
      cwd: repoRoot,
      env: { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` },
      timeoutMs: 60_000,
    }),
    'npm pack',
  );
  const info = (JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[])[0]!;
  const tarball = join(dir, info.filename);
  check(
    await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], {
      cwd: dir,
      env: userEnv(bin, dir, { ONNXRUNTIME_NODE_INSTALL: 'skip', ...sqlitePrebuild(dir) }),
      timeoutMs: INSTALL_TIMEOUT_MS,
    }),
    'npm install -g',
  );
  return {
    dir,
    prefix,
    bin,
    installed: join(prefix, 'lib', 'node_modules', 'caxton-server'),
    tarball,
    packedFiles: info.files.map((f) => f.path),
  };
}

const RESULT = 'install-result.json';

/** Runs packAndInstall in the background; its outcome lands in `dir`/install-result.json. */
export function packAndInstallInBackground(dir: string): void {
  const write = (v: unknown) => {
    writeFileSync(join(dir, `${RESULT}.tmp`), JSON.stringify(v));
    renameSync(join(dir, `${RESULT}.tmp`), join(dir, RESULT));
  };
  packAndInstall(dir).then(
    (installed) => write({ installed }),
    (e: unknown) => write({ error: (e as Error).message }),
  );
}

/** Waits for the background install of `dir`. */
export async function waitForInstall(dir: string, timeoutMs = INSTALL_TIMEOUT_MS + 60_000): Promise<Installed> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(join(dir, RESULT))) {
    if (Date.now() > deadline)
      throw new Error(`the package install started by test/package/setup.ts did not finish within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const out = JSON.parse(readFileSync(join(dir, RESULT), 'utf8')) as { installed?: Installed; error?: string };
  if (!out.installed) throw new Error(out.error ?? 'the package install failed');
  return out.installed;
}
