/** A fresh PostgreSQL schema per test, for the memory backend tests that open stores themselves. */
import pg from 'pg';
import { TEST_PG_URL } from './backends.js';

/** A fresh schema on the test server, for tests that open PgMemoryStore instances themselves. */
export async function freshSchema(): Promise<{ admin: pg.Pool; schema: string; drop(): Promise<void> }> {
  const admin = new pg.Pool({ connectionString: TEST_PG_URL, max: 2 });
  const schema = `caxton_test_${Math.random().toString(36).slice(2, 10)}`;
  return {
    admin,
    schema,
    async drop() {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    },
  };
}
