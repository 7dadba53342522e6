/**
 * migrateSchema on a real PostgreSQL: migrations not yet recorded are applied once, and a node
 * whose store knows fewer migrations than the schema holds (an older version beside a newer one)
 * refuses to start, naming the migration, instead of reading and writing rows it does not know.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaxtonError } from '../../../src/shared/errors.js';
import { migrateSchema, type PgMigration } from '../../../src/storage/pg/index.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';

const run = hasSystem('postgresql');
const schema = `caxton_migrate_${process.pid}_${Date.now()}`;
let pool: pg.Pool;

beforeAll(() => {
  if (run) pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 2 });
});

afterAll(async () => {
  if (!run) return;
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const one: PgMigration = { id: 'test-things-001', sql: (s) => `CREATE TABLE ${s}.things (id text PRIMARY KEY)` };
const two: PgMigration = { id: 'test-things-002-size', sql: (s) => `ALTER TABLE ${s}.things ADD COLUMN size int` };
const other: PgMigration = { id: 'test-other-001', sql: (s) => `CREATE TABLE ${s}.other (id text PRIMARY KEY)` };

describe.runIf(run)('migrateSchema', () => {
  it('applies each migration once, then refuses a store that knows fewer than the schema holds', async () => {
    await migrateSchema(pool, schema, [one, two]);
    await migrateSchema(pool, schema, [one, two]);
    const ids = await pool.query<{ id: string }>(`SELECT id FROM "${schema}".migrations ORDER BY id`);
    expect(ids.rows.map((r) => r.id)).toEqual(['test-things-001', 'test-things-002-size']);

    // Another store's family in the same schema is not this store's concern.
    await migrateSchema(pool, schema, [other]);

    const refused = await migrateSchema(pool, schema, [one]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(CaxtonError);
    expect((refused as CaxtonError).code).toBe('invalid_config');
    expect((refused as CaxtonError).message).toBe(
      `cluster state schema "${schema}" holds migration "test-things-002-size", which this version of Caxton does not know: a newer version migrated it. Run the same Caxton version on every node of a cluster`,
    );
  });
});
