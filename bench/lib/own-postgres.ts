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
import {
  chownSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  appendFileSync,
} from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './caxton-nodes.js';
import { processTree } from './proc-cpu.js';

const run = promisify(execFile);

export const PG_BIN = process.env.BENCH_PG_BIN ?? '/usr/lib/postgresql/15/bin';
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
  port: number;
  /** The postmaster's pid. */
  pid: number;
  /** The postmaster and every process it started (backends, walwriter, checkpointer...), now. */
  pids(): number[];
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

/** `extra`: more server options a suite needs (monitoring settings, never durability ones). */
export async function startOwnPostgres(opts: { extra?: readonly string[] } = {}): Promise<OwnPostgres> {
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
      // BENCH_PG_LOG_SLOW_MS: statements slower than this are logged (server.log, kept by BENCH_PG_LOG_KEEP), to find stalls.
      ...(process.env.BENCH_PG_LOG_SLOW_MS
        ? [`-c log_min_duration_statement=${process.env.BENCH_PG_LOG_SLOW_MS}`]
        : []),
      // BENCH_PG_WAL_STATS: the whole run's WAL is kept (not recycled at checkpoints) for pg_waldump at stop.
      ...(process.env.BENCH_PG_WAL_STATS ? ['-c wal_keep_size=8GB'] : []),
      ...(opts.extra ?? []),
      // BENCH_PG_OPTS: more server options for an experiment (e.g. "-c synchronous_commit=off"), after the copied ones.
      ...(process.env.BENCH_PG_OPTS ? [process.env.BENCH_PG_OPTS] : []),
    ].join(' ');
    await as('pg_ctl', ['start', '-w', '-t', '60', '-D', data, '-l', join(dir, 'server.log'), '-o', options]);
    const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      port,
      pid,
      pids: () => processTree(pid),
      pidsOf: (kind) => processTree(pid).filter((p) => kindOf(p, pid) === kind),
      settings,
      copied: reference !== undefined,
      async stop() {
        // With BENCH_PG_WAL_STATS, the rows each table was written, beside its WAL: which tables the WAL comes from.
        const tables = process.env.BENCH_PG_WAL_STATS
          ? await as('psql', [
              '-h',
              '127.0.0.1',
              '-p',
              String(port),
              '-U',
              'postgres',
              '-c',
              `SELECT pg_stat_force_next_flush(); SELECT schemaname || '.' || relname AS "table", n_tup_ins AS inserted, n_tup_upd AS updated, n_tup_hot_upd AS hot, n_tup_del AS deleted,
                 (SELECT count(*) FROM pg_index i WHERE i.indrelid = t.relid) AS indexes
               FROM pg_stat_user_tables t WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY n_tup_ins + n_tup_upd DESC`,
            ]).then(
              (r) => r.stdout,
              (e: unknown) => String(e),
            )
          : '';
        // With BENCH_PG_WAL_STATS, each index's file, to count the B-tree entries the run's WAL wrote into it by name.
        const indexFiles = process.env.BENCH_PG_WAL_STATS
          ? await indexFilesOf(port).catch(() => new Map<string, string>())
          : new Map<string, string>();
        await as('pg_ctl', ['stop', '-m', 'fast', '-w', '-D', data]).catch(() => {});
        const keep = process.env.BENCH_PG_LOG_KEEP;
        if (keep && existsSync(join(dir, 'server.log'))) copyFileSync(join(dir, 'server.log'), keep);
        // BENCH_PG_WAL_STATS=FILE: what the run's WAL holds, by record kind (pg_waldump --stats=record), to see which writes it is made of.
        const walStats = process.env.BENCH_PG_WAL_STATS;
        if (walStats)
          await as('pg_waldump', [
            '--stats=record',
            '-p',
            join(data, 'pg_wal'),
            ...readdirSync(join(data, 'pg_wal'))
              .filter((f) => /^[0-9A-F]{24}$/.test(f))
              .sort()
              .filter((f, i, all) => i === 0 || i === all.length - 1),
          ])
            .then((r) => writeFileSync(walStats, `${tables}${r.stdout}`))
            // It ends with an error at the end of the WAL (the record after the last), its figures printed before.
            .catch((e: unknown) =>
              writeFileSync(walStats, `${tables}${(e as { stdout?: string }).stdout ?? ''}${String(e)}`),
            )
            .then(() => btreeEntriesByIndex(join(data, 'pg_wal'), indexFiles))
            .then((byIndex) => appendFileSync(walStats, byIndex))
            .catch((e: unknown) => appendFileSync(walStats, `\nB-tree entries by index: ${String(e)}\n`));
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

/** Every index's file (`tablespace/database/relfilenode`, as pg_waldump names a block's relation) and its schema-qualified name. */
async function indexFilesOf(port: number): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const c = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
  await c.connect();
  try {
    const r = await c.query<{ file: string; name: string }>(
      `SELECT coalesce(nullif(c.reltablespace, 0), (SELECT oid FROM pg_tablespace WHERE spcname = 'pg_default')) || '/' ||
              (SELECT oid FROM pg_database WHERE datname = current_database()) || '/' || pg_relation_filenode(c.oid) AS file,
              n.nspname || '.' || c.relname AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind = 'i' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')`,
    );
    for (const row of r.rows) files.set(row.file, row.name);
  } finally {
    await c.end();
  }
  return files;
}

/**
 * The B-tree leaf entries (INSERT_LEAF and INSERT_POST records) the whole WAL in `walDir` wrote,
 * per user index, as a table: which index of which table a run's writes went into.
 */
async function btreeEntriesByIndex(walDir: string, files: ReadonlyMap<string, string>): Promise<string> {
  const segments = readdirSync(walDir)
    .filter((f) => /^[0-9A-F]{24}$/.test(f))
    .sort();
  // Read as whoever runs the suite (root reads the postgres user's files); the listing is tens of MB.
  const out = await run(
    join(PG_BIN, 'pg_waldump'),
    ['-r', 'Btree', '-p', walDir, segments[0]!, segments[segments.length - 1]!],
    { maxBuffer: 1 << 30 },
  ).then(
    (r) => r.stdout,
    // It ends with an error at the end of the WAL, its records printed before.
    (e: unknown) => (e as { stdout?: string }).stdout ?? '',
  );
  const counts = new Map<string, number>();
  for (const m of out.matchAll(/desc: INSERT_(?:LEAF|POST)\b.*?blkref #0: rel (\d+\/\d+\/\d+)/g)) {
    const name = files.get(m[1]!);
    if (name !== undefined) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const rows = [...counts].sort((a, b) => b[1] - a[1]);
  return `\nB-tree entries by index (INSERT_LEAF + INSERT_POST records of the whole run):\n${rows.map(([n, c]) => `${String(c).padStart(9)}  ${n}`).join('\n')}\n`;
}
