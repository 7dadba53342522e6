/**
 * The storages themselves (src/memory/storage.ts), without the graph, for the contract part of
 * the shared suite (storage.case.ts): SQLite in a temp dir, PostgreSQL in a fresh schema of the
 * test server (use it only when `hasSystem('pgvector')`). cleanup() closes and deletes the data.
 */
import { rmSync } from 'node:fs';
import { PgStorage } from '../../src/memory/pg-storage.js';
import { SqliteStorage } from '../../src/memory/sqlite-storage.js';
import type { MemoryStorage } from '../../src/memory/storage.js';
import { testPgAdmin, TEST_PG_URL } from './backends.js';
import { openMemoryDb, tempDir } from './helpers.js';

export interface OpenedStorage<Id> {
  /** The first storage over fresh, empty data. */
  storage: MemoryStorage<Id>;
  /** Closes the latest storage, then gives a new one over the same data (not opened yet). */
  reopen(): Promise<MemoryStorage<Id>>;
  /** Closes the latest storage and deletes the data. */
  cleanup(): Promise<void>;
}

/** Storages made by `make` one after the other over one set of data, deleted by `dispose`. */
function storages<Id>(make: () => MemoryStorage<Id>, dispose: () => Promise<void>): OpenedStorage<Id> {
  let latest = make();
  return {
    storage: latest,
    async reopen() {
      await latest.close();
      latest = make();
      return latest;
    },
    async cleanup() {
      await latest.close();
      await dispose();
    },
  };
}

export async function openSqliteStorage(): Promise<OpenedStorage<number>> {
  const dir = tempDir();
  const db = openMemoryDb(dir);
  return storages(
    () => new SqliteStorage(db, { annPath: null }),
    async () => {
      if (db.open) db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  );
}

export async function openPgStorage(): Promise<OpenedStorage<string>> {
  const admin = await testPgAdmin();
  const schema = `caxton_test_storage_${Math.random().toString(36).slice(2, 10)}`;
  return storages(
    () => new PgStorage({ url: TEST_PG_URL, schema }),
    async () => {
      try {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await admin.end();
      }
    },
  );
}
