/**
 * A PostgreSQL server of a test's own, which the test may stop and start again (for "PostgreSQL
 * restarted during traffic"): the machine's PostgreSQL on 5432 is shared with every other test
 * file running in parallel, so it is never restarted.
 *
 * Debian's server binaries (/usr/lib/postgresql/<major>/bin, the highest major installed, or
 * $CAXTON_TEST_PG_BIN) run in a fresh temp directory: `initdb` with trust authentication, then
 * `postgres` listening on 127.0.0.1 on a free port with its unix socket in that directory, and
 * fsync off (a test's data need not survive a power cut of the machine, only its own processes
 * ending: the OS keeps what was written). synchronous_commit stays on: with it off, a commit is
 * answered before its WAL is written, and `stop -m immediate` would lose commits a client was told
 * of (a caxton node acknowledges a delivery to JetStream after its row's commit, so a lost commit
 * would look like a lost message). initdb and postgres refuse to run as
 * root, so when the tests run as root (as here and in CI) both run as the `postgres` OS user and
 * the directory is handed to it.
 *
 * `stop({ mode })` is `pg_ctl stop -m fast|immediate` (fast: sessions terminated with an error
 * and rolled back, a clean shutdown; immediate: every process quits at once, recovery at the next
 * start), `start()` starts it again on the same port and data directory, and `cleanup()` kills
 * whatever still runs and removes the directory; call it in afterAll whatever happened.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../../cli/helpers/cli.js';
import { postgresBinDir } from '../../helpers/system-probe.js';

/** The uid and gid to run the server as: the `postgres` user when we are root, else ourselves. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0)
    throw new Error(
      'running as root, and there is no `postgres` OS user to run initdb and postgres as (they refuse root)',
    );
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Whether the server runs now. */
  readonly running: boolean;
  /** Starts the server (again), on the same port and data; resolves once it accepts connections. */
  start(): Promise<void>;
  /** `pg_ctl stop -m <mode>` (default fast); resolves once the postmaster has exited. */
  stop(opts?: { mode?: 'fast' | 'immediate' }): Promise<void>;
  /** stop(opts) then start(). */
  restart(opts?: { mode?: 'fast' | 'immediate' }): Promise<void>;
  /** The server's log so far (every run), for failure messages. */
  log(chars?: number): string;
  /** Kills the server if it runs (whatever state it is in) and removes its directory. Never throws. */
  cleanup(): Promise<void>;
}

/** Creates a cluster with initdb and starts it; on failure everything made is removed again. */
export async function startPrivatePostgres(opts: { startTimeoutMs?: number } = {}): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  if ('missing' in bin) throw new Error(bin.missing);
  const as = runAs();
  const dir = mkdtempSync(join(tmpdir(), 'caxton-pg-'));
  if (as) chownSync(dir, as.uid, as.gid);
  const data = join(dir, 'data');
  const [port] = (await freePorts(1)) as [number];
  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  let log = '';
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', PGTZ: 'UTC' };
  const spawnOpts = { cwd: dir, env, ...(as && { uid: as.uid, gid: as.gid }) };

  const run = (cmd: string, args: string[]) => {
    const r = spawnSync(join(bin.dir, cmd), args, { ...spawnOpts, encoding: 'utf8', timeout: 60_000 });
    if (r.error || r.status !== 0)
      throw new Error(
        `${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}${r.stderr}`,
      );
    return r;
  };

  const accepting = async (): Promise<boolean> => {
    const r = spawnSync(join(bin.dir, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-t', '1'], {
      ...spawnOpts,
      encoding: 'utf8',
    });
    return r.status === 0;
  };

  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;

  const start = async (): Promise<void> => {
    if (running()) return;
    const c = spawn(
      join(bin.dir, 'postgres'),
      [
        '-D',
        data,
        '-p',
        String(port),
        '-k',
        dir,
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'fsync=off',
        '-c',
        'full_page_writes=off',
        '-c',
        'max_connections=100',
        '-c',
        'shared_buffers=32MB',
      ],
      { ...spawnOpts, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = c;
    c.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
    exited = new Promise<void>((res) => c.once('exit', () => res()));
    const t0 = Date.now();
    for (;;) {
      if (!running()) throw new Error(`postgres exited before accepting connections:\n${log.slice(-3000)}`);
      if (/ready to accept connections/.test(log.slice(-4000)) && (await accepting())) return;
      if (Date.now() - t0 > timeoutMs)
        throw new Error(`postgres did not accept connections within ${timeoutMs} ms:\n${log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const stop = async ({ mode = 'fast' }: { mode?: 'fast' | 'immediate' } = {}): Promise<void> => {
    if (!running()) return;
    // pg_ctl waits (-w) until the postmaster is gone; the child's exit is awaited too, so the port
    // is free and `running` is false when this resolves.
    run('pg_ctl', ['stop', '-D', data, '-m', mode, '-w', '-t', '30']);
    await exited;
    log += `\n--- (stopped: -m ${mode})\n`;
  };

  const kill = async (): Promise<void> => {
    if (!running()) return;
    // SIGQUIT is the immediate shutdown (the postmaster takes its backends down with it); SIGKILL
    // after 5 s would leave backends to notice their postmaster is gone on their own.
    child!.kill('SIGQUIT');
    const t = setTimeout(() => child?.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  };

  try {
    run('initdb', [
      '-D',
      data,
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
      '--no-instructions',
    ]);
    await start();
  } catch (e) {
    await kill().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    get running() {
      return running();
    },
    start,
    stop,
    async restart(o) {
      await stop(o);
      await start();
    },
    log: (chars = 4000) => log.slice(-chars),
    async cleanup() {
      await kill().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
