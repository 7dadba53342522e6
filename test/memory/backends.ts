/**
 * The memory backends the tests run against: the embedded SQLite store and PostgreSQL +
 * pgvector. The storages' shared suite (storage.case.ts) takes SQLITE_BACKEND.open or
 * POSTGRES_BACKEND.open; tests of what sits above the backend use BACKENDS:
 *
 *   describe.each(BACKENDS)('memory ($name)', (backend) => {
 *     it('...', async () => {
 *       const { store, reopen, cleanup } = await backend.open({ embedder: new HashEmbedder() });
 *       try { ... } finally { await cleanup(); }
 *     });
 *   });
 *
 * PostgreSQL: CAXTON_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test), a fresh
 * schema per open(), dropped by cleanup(). When PostgreSQL or pgvector is missing, BACKENDS holds
 * only SQLite: the run prints one line saying so and how to install it (test/helpers/system.ts),
 * and in CI (CI=true) the run fails instead. open() still fails, saying to run
 * scripts/setup-pgvector.sh, if either goes away after that check.
 */
import { rmSync } from 'node:fs';
import pg from 'pg';
import type { MemoryBackend, MemoryBackendKind } from '../../src/memory/backend.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import type { Embedder } from '../../src/memory/embedding/index.js';
import { PgMemoryStore } from '../../src/memory/pg-store.js';
import { MemoryStore } from '../../src/memory/sqlite-store.js';
import type { MemoryLimits } from '../../src/memory/memory-validate.js';
import { openMemoryDb, tempDir } from './helpers.js';

export interface BackendOpenOptions {
  embedder: Embedder | (() => Promise<Embedder>);
  limits?: Partial<MemoryLimits>;
  keyword_weight?: number;
  onReindex?: (done: number, total: number) => void;
  /** A label for the data (in the temp dir's or schema's name), to tell test data apart when debugging. */
  key?: string;
}

export interface OpenedBackend {
  /** The first instance over fresh, empty data. */
  store: MemoryBackend;
  /**
   * Closes the latest instance (if still open), then opens a new one over the same data with
   * `opts` (e.g. another embedder: model-change tests). Returns the new instance.
   */
  reopen(opts: BackendOpenOptions): Promise<MemoryBackend>;
  /** Closes every instance opened and deletes the data (temp dir / schema). Safe to call twice. */
  cleanup(): Promise<void>;
}

export interface BackendFactory {
  name: MemoryBackendKind;
  open(opts: BackendOpenOptions): Promise<OpenedBackend>;
}

export { TEST_PG_URL };

function label(key: string | undefined): string {
  return (key ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 20);
}

/** Instances over one set of data: the first opened with `first`, `reopen` closes the latest and opens another, `cleanup` closes all and runs `dispose`. */
function instances(
  first: BackendOpenOptions,
  openOne: (o: BackendOpenOptions) => { store: MemoryBackend; close(): Promise<void> },
  dispose: () => Promise<void>,
): OpenedBackend {
  const opened = [openOne(first)];
  let done = false;
  return {
    store: opened[0]!.store,
    async reopen(o) {
      await opened.at(-1)?.close();
      const next = openOne(o);
      opened.push(next);
      return next.store;
    },
    async cleanup() {
      if (done) return;
      done = true;
      for (const x of opened) await x.close();
      await dispose();
    },
  };
}

/** The SQLite backend: a temp dir per open(), deleted by cleanup(). */
export const SQLITE_BACKEND: BackendFactory = {
  name: 'sqlite',
  async open(opts) {
    const dir = tempDir();
    const openOne = (o: BackendOpenOptions) => {
      const db = openMemoryDb(dir);
      const store = new MemoryStore(db, {
        embedder: o.embedder,
        ...(o.limits && { limits: o.limits }),
        ...(o.keyword_weight !== undefined && { keyword_weight: o.keyword_weight }),
        ...(o.onReindex && { onReindex: o.onReindex }),
      });
      const close = async () => {
        await store.close();
        if (db.open) db.close();
      };
      return { store, close };
    };
    return instances(opts, openOne, async () => rmSync(dir, { recursive: true, force: true }));
  },
};

/** Fails with what to do when the test server or pgvector is missing. */
async function checkPostgres(admin: pg.Pool): Promise<void> {
  try {
    await admin.query('SELECT 1');
  } catch (e) {
    throw new Error(
      `cannot connect to the test PostgreSQL at ${TEST_PG_URL} (${(e as Error).message}): start PostgreSQL (or set CAXTON_TEST_PG_URL) and run scripts/setup-pgvector.sh to install pgvector`,
      { cause: e },
    );
  }
  const { rows } = await admin.query("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'");
  if (rows.length === 0)
    throw new Error(
      `PostgreSQL at ${TEST_PG_URL} has no pgvector extension: run scripts/setup-pgvector.sh (as root) to install it`,
    );
}

/** A one-connection pool on the test server, once it is known to have pgvector (else ended, and the error says what to do). */
export async function testPgAdmin(): Promise<pg.Pool> {
  const admin = new pg.Pool({ connectionString: TEST_PG_URL, max: 1 });
  try {
    await checkPostgres(admin);
  } catch (e) {
    await admin.end();
    throw e;
  }
  return admin;
}

/** The PostgreSQL backend: use it only when `hasSystem('pgvector')` (BACKENDS does that). */
export const POSTGRES_BACKEND: BackendFactory = {
  name: 'postgres',
  async open(opts) {
    const admin = await testPgAdmin();
    const schema = `caxton_test_${label(opts.key)}${label(opts.key) ? '_' : ''}${Math.random().toString(36).slice(2, 10)}`;
    const openOne = (o: BackendOpenOptions) => {
      const store = new PgMemoryStore({
        url: TEST_PG_URL,
        schema,
        embedder: o.embedder,
        ...(o.limits && { limits: o.limits }),
        ...(o.keyword_weight !== undefined && { keyword_weight: o.keyword_weight }),
        ...(o.onReindex && { onReindex: o.onReindex }),
      });
      return { store, close: () => store.close() };
    };
    return instances(opts, openOne, async () => {
      try {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await admin.end();
      }
    });
  },
};

/** SQLite always; PostgreSQL when it and pgvector are installed (else skipped, see the header). */
export const BACKENDS: BackendFactory[] = hasSystem('pgvector') ? [SQLITE_BACKEND, POSTGRES_BACKEND] : [SQLITE_BACKEND];

/** `[memory]` of a test server on `backend` with `settings` (lines); PostgreSQL: the test server, in `schema`. */
export function serverMemoryToml(backend: MemoryBackendKind, schema: string, settings = ''): string {
  const head = `[memory]\n${settings}`;
  if (backend === 'postgres')
    return `${head}backend = "postgres"\n[memory.postgres]\nurl = "${TEST_PG_URL}"\nschema = "${schema}"\n`;
  return settings ? head : '';
}

/** Drops a test schema a server created on the test PostgreSQL (nothing to do for SQLite). */
export async function dropServerSchema(backend: MemoryBackendKind, schema: string): Promise<void> {
  if (backend !== 'postgres') return;
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  try {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await admin.end();
  }
}
