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
  storage: MemoryStorage<Id>;
  cleanup(): Promise<void>;
}

export async function openSqliteStorage(): Promise<OpenedStorage<number>> {
  const dir = tempDir();
  const db = openMemoryDb(dir);
  const storage = new SqliteStorage(db, { annPath: null });
  return {
    storage,
    async cleanup() {
      await storage.close();
      if (db.open) db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function openPgStorage(): Promise<OpenedStorage<string>> {
  const admin = await testPgAdmin();
  const schema = `caxton_test_storage_${Math.random().toString(36).slice(2, 10)}`;
  const storage = new PgStorage({ url: TEST_PG_URL, schema });
  return {
    storage,
    async cleanup() {
      try {
        await storage.close();
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await admin.end();
      }
    },
  };
}
