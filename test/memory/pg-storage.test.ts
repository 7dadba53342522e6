/**
 * The shared storage suite (storage.case.ts) on PostgreSQL + pgvector (CAXTON_TEST_PG_URL); skipped
 * with one printed line when either is missing, failed in CI (test/helpers/system.ts).
 */
import { describe } from 'vitest';
import { hasSystem } from '../helpers/system.js';
import { POSTGRES_BACKEND } from './backends.js';
import { storageSuite } from './storage.case.js';
import { openPgStorage } from './storages.js';

describe.skipIf(!hasSystem('pgvector'))('PostgreSQL storage', () => {
  storageSuite('postgres', POSTGRES_BACKEND.open, openPgStorage);
});
