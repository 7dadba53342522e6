import type pg from 'pg';
import { CaxtonError } from '../shared/errors.js';
import { inTransaction } from './pg-tx.js';

/** A migration of the cluster schema: its id (recorded in `<schema>.migrations`) and its DDL for the quoted schema name. */
export interface PgMigration {
  id: string;
  sql: (quotedSchema: string) => string;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Refuses a `[cluster.state] schema` that is not a plain lower-case identifier; returns it quoted. */
export function quoteSchema(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new CaxtonError('invalid_config', `cluster state schema "${schema}" must be a lower-case identifier (letters, digits, _; at most 63)`, { field: 'schema' });
  }
  return `"${schema}"`;
}

/**
 * Creates the schema and its `migrations` table if missing and applies the migrations not yet
 * recorded there, in one transaction holding the schema's migration lock: nodes starting together
 * take turns, and each store (messages, events, tool audit) adds its own ids to the one table.
 */
export async function migrateSchema(pool: pg.Pool, schema: string, migrations: readonly PgMigration[]): Promise<void> {
  const s = quoteSchema(schema);
  await inTransaction(pool, 'BEGIN', async (c) => {
    await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`caxton-cluster-migrate:${schema}`]);
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await c.query(`CREATE TABLE IF NOT EXISTS ${s}.migrations (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await c.query<{ id: string }>(`SELECT id FROM ${s}.migrations`)).rows.map((r) => r.id));
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      await c.query(m.sql(s));
      await c.query(`INSERT INTO ${s}.migrations (id) VALUES ($1)`, [m.id]);
    }
  });
}
