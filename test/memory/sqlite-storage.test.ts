/** The shared storage suite (storage.case.ts) on SQLite files with the in-process HNSW graph. */
import { SQLITE_BACKEND } from './backends.js';
import { storageSuite } from './storage.case.js';
import { openSqliteStorage } from './storages.js';

storageSuite('sqlite', SQLITE_BACKEND.open, openSqliteStorage);
