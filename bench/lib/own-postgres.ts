/**
 * A PostgreSQL instance of the benchmark's own (initdb into a temporary directory, pg_ctl start on
 * a free loopback port), so that the CPU of its postmaster and backends — and of nothing else — can
 * be read from /proc: the machine's shared server also runs other people's sessions.
 *
 * The durability settings (fsync, synchronous_commit, wal_sync_method, full_page_writes) are copied
 * from the machine's default server when it answers, so the figures stay comparable with runs
 * against it; otherwise initdb's defaults, which are the same on a stock Debian install.
 *
 * initdb refuses to run as root: then every PostgreSQL command runs as the `postgres` user
 * (`runuser -u postgres`, Debian's postgresql package creates it) and the directory is handed to it.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './caxton-nodes.js';
import { processTree } from './proc-cpu.js';

const run = promisify(execFile);

const PG_BIN = process.env.BENCH_PG_BIN ?? '/usr/lib/postgresql/15/bin';
/**
 * Where to write what every statement cost over the whole run (pg_stat_statements, read before
 * the instance stops), when set: which statements of a workload the sessions' CPU goes to.
 */
const STATEMENTS_FILE = process.env.BENCH_PG_STATEMENTS;
/** The server whose durability settings are copied (the machine's default one). */
const REFERENCE_URL = process.env.BENCH_PG_REFERENCE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const PG_PROCESS_KINDS = ['sessions', 'autovacuum', 'writers', 'postmaster'] as const;
export type PgProcessKind = (typeof PG_PROCESS_KINDS)[number];

/** What a process of the instance does, from the title PostgreSQL gives it (`postgres: checkpointer`...). */
function kindOf(pid: number, postmaster: number): PgProcessKind {
  if (pid === postmaster) return 'postmaster';
  let title = '';
  try {
    title = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return 'sessions';
  }
  if (/autovacuum/.test(title)) return 'autovacuum';
  if (/checkpointer|background writer|walwriter|logical replication|archiver|stats/.test(title)) return 'writers';
  return 'sessions';
}

const DURABILITY = ['fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes'] as const;

export interface OwnPostgres {
  /** Connection URL (trust auth, user postgres, database postgres). */
  url: string;
  /**
   * The same processes by what they do: client sessions, autovacuum, the writers (checkpointer,
   * background writer, WAL writer), and the postmaster, whose time includes the processes that
   * exited (an autovacuum worker's run, a session closed), as their parent waited for them.
   */
  pidsOf(kind: PgProcessKind): number[];
  /** The durability settings it runs with. */
  settings: Record<string, string>;
  /** Whether they were copied from the machine's default server (false: initdb's defaults). */
  copied: boolean;
  stop(): Promise<void>;
}

async function referenceSettings(): Promise<Record<string, string> | undefined> {
  const c = new pg.Client({ connectionString: REFERENCE_URL, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    const { rows } = await c.query<{ name: string; setting: string }>(
      'SELECT name, setting FROM pg_settings WHERE name = ANY($1)',
      [[...DURABILITY]],
    );
    return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  } catch {
    return undefined;
  } finally {
    await c.end().catch(() => {});
  }
}

async function statements(url: string, sql: string): Promise<Record<string, unknown>[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql)).rows as Record<string, unknown>[];
  } finally {
    await c.end().catch(() => {});
  }
}

/** The run's statements by the time they took, most first, as tab-separated lines. */
async function writeStatements(url: string, file: string): Promise<void> {
  const rows = await statements(
    url,
    `SELECT calls, rows, round(total_exec_time::numeric, 1) AS ms, wal_records, left(regexp_replace(query, '\\s+', ' ', 'g'), 300) AS query
       FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 60`,
  );
  writeFileSync(
    file,
    [
      'calls\trows\tms\twal_records\tquery',
      ...rows.map((r) => [r.calls, r.rows, r.ms, r.wal_records, r.query].join('\t')),
    ].join('\n') + '\n',
  );
}

export async function startOwnPostgres(): Promise<OwnPostgres> {
  for (const bin of ['initdb', 'pg_ctl'])
    if (!existsSync(join(PG_BIN, bin)))
      throw new Error(
        `${join(PG_BIN, bin)} is missing: install postgresql-15, or set BENCH_PG_BIN to its bin directory`,
      );
  const root = userInfo().uid === 0;
  const as = (cmd: string, args: string[]) =>
    root ? run('runuser', ['-u', 'postgres', '--', join(PG_BIN, cmd), ...args]) : run(join(PG_BIN, cmd), args);
  const dir = mkdtempSync(join(tmpdir(), 'caxton-bench-pg-'));
  const data = join(dir, 'data');
  if (root) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    chownSync(dir, uid, gid);
  }
  try {
    await as('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
    const reference = await referenceSettings();
    const settings: Record<string, string> = reference ?? {
      fsync: 'on',
      synchronous_commit: 'on',
      wal_sync_method: 'fdatasync',
      full_page_writes: 'on',
    };
    const port = await freePort();
    const options = [
      `-p ${port}`,
      `-c listen_addresses=127.0.0.1`,
      `-k ${dir}`,
      ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`),
      ...(STATEMENTS_FILE ? ['-c shared_preload_libraries=pg_stat_statements', '-c pg_stat_statements.track=all'] : []),
    ].join(' ');
    await as('pg_ctl', ['start', '-w', '-t', '60', '-D', data, '-l', join(dir, 'server.log'), '-o', options]);
    const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    if (STATEMENTS_FILE) await statements(url, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return {
      url,
      pidsOf: (kind) => processTree(pid).filter((p) => kindOf(p, pid) === kind),
      settings,
      copied: reference !== undefined,
      async stop() {
        if (STATEMENTS_FILE) await writeStatements(url, STATEMENTS_FILE).catch(() => {});
        await as('pg_ctl', ['stop', '-m', 'fast', '-w', '-D', data]).catch(() => {});
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    const log = existsSync(join(dir, 'server.log')) ? readFileSync(join(dir, 'server.log'), 'utf8').slice(-2000) : '';
    await as('pg_ctl', ['stop', '-m', 'immediate', '-D', data]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`the benchmark's own PostgreSQL did not start: ${(e as Error).message}${log && `\n${log}`}`);
  }
}
