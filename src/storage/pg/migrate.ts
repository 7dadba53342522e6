import type pg from 'pg';
import { CaxtonError } from '../../shared/errors.js';
import { inTransaction } from './tx.js';

/** A lower-case SQL identifier: what `[cluster.state] schema` may be. */
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** One step of a cluster table's DDL; `sql` gets the quoted schema. Ids are unique across stores. */
export interface PgMigration {
  id: string;
  sql: (schema: string) => string;
}

/** `"schema"`, after checking it is a lower-case identifier (refused as invalid_config otherwise). */
export function quotedSchema(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new CaxtonError(
      'invalid_config',
      `cluster state schema "${schema}" must be a lower-case identifier (letters, digits, _; at most 63)`,
      { field: 'schema' },
    );
  }
  return `"${schema}"`;
}

/**
 * Creates the schema if missing and applies the migrations not yet recorded in its `migrations`
 * table, in one transaction under an advisory lock on the schema's name: nodes starting together
 * take turns, and each store (messages, tool packages, events, tool audit) brings its own list.
 */
export async function migrateSchema(pool: pg.Pool, schema: string, migrations: readonly PgMigration[]): Promise<void> {
  const s = quotedSchema(schema);
  await inTransaction(pool, 'BEGIN', async (c) => {
    await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`caxton-cluster-migrate:${schema}`]);
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await c.query(
      `CREATE TABLE IF NOT EXISTS ${s}.migrations (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Set((await c.query<{ id: string }>(`SELECT id FROM ${s}.migrations`)).rows.map((r) => r.id));
    const unknown = newerMigration(done, migrations);
    if (unknown !== undefined) {
      throw new CaxtonError(
        'invalid_config',
        `cluster state schema "${schema}" holds migration "${unknown}", which this version of Caxton does not know: a newer version migrated it. Run the same Caxton version on every node of a cluster`,
        { field: 'schema', migration: unknown },
      );
    }
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      await c.query(m.sql(s));
      await c.query(`INSERT INTO ${s}.migrations (id) VALUES ($1)`, [m.id]);
    }
  });
}

/**
 * A migration of this store's family (the ids' common stem, e.g. `cluster-messaging-`) that the
 * schema holds and this list does not: the schema was migrated by a newer version, whose rows an
 * older node would read and write wrongly (ADR 0080), so such a node must not start on it.
 */
function newerMigration(done: ReadonlySet<string>, migrations: readonly PgMigration[]): string | undefined {
  const first = migrations[0]?.id;
  const stem = first === undefined ? undefined : /^(.*-)\d{3}/.exec(first)?.[1];
  if (stem === undefined) return undefined;
  const known = new Set(migrations.map((m) => m.id));
  for (const id of done) if (id.startsWith(stem) && /^\d{3}/.test(id.slice(stem.length)) && !known.has(id)) return id;
  return undefined;
}
