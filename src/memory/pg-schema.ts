/**
 * The PostgreSQL memory storage's schema (pg-storage.ts): the pgvector extension, versioned
 * migrations, and the vector column's dimension. See docs/adr/0012-memory-postgres.md.
 *
 * Tables, in the store's own schema (default `caxton_memory`):
 *  - `migrations`: the migrations applied (id, when), so later versions can change the schema.
 *  - `meta`: one row, the embedding model and dimension the vectors are of.
 *  - `entities`: one row per (scope, name); observations as jsonb (an array), metadata as json
 *    (text kept as written: key order survives, as in SQLite), ISO timestamps as text, `words`
 *    (text.ts entityWords, GIN-indexed: keyword candidates), and the vector with its model.
 *  - `relations`: (scope, from, to, type) unique; endpoints by name, as in SQLite.
 * The HNSW index over `embedding` (cosine) is created once the dimension is known.
 */
import type pg from 'pg';
import { CaxtonError } from '../shared/errors.js';

export const DEFAULT_PG_SCHEMA = 'caxton_memory';

/** The script that installs pgvector on a Debian host (named in errors). */
export const SETUP_SCRIPT = 'scripts/setup-pgvector.sh';

export type Queryable = Pick<pg.ClientBase, 'query'>;

/** A schema name Caxton accepts: a plain lower-case identifier (quoted anyway). */
export function checkSchemaName(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new CaxtonError(
      'invalid_config',
      `memory PostgreSQL schema "${schema}" must be a lower-case identifier (letters, digits, _; at most 63)`,
      { field: 'schema' },
    );
  }
  return schema;
}

export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Advisory lock keys (hashtextextended of these strings): one per schema and purpose. */
export const lockName = {
  /** Held (session lock) while a store prepares the schema or re-embeds: instances starting together take turns. */
  ready: (schema: string) => `caxton-memory ready ${schema}`,
  /** Held (transaction lock) by every write: writes of all instances on a schema are serialized. */
  write: (schema: string) => `caxton-memory write ${schema}`,
  /** Database-wide, while the extension is created. */
  extension: 'caxton-memory create extension',
};

/** Maps the errors of CREATE EXTENSION to what an operator can act on. */
export function extensionError(err: unknown, extension: string, database: string | undefined): unknown {
  const e = err as { code?: string; message?: string };
  if (
    e.code === '58P01' ||
    (e.code === '0A000' && /not available/i.test(e.message ?? '')) ||
    /extension control file/i.test(e.message ?? '')
  ) {
    return new CaxtonError(
      'not_ready',
      `the PostgreSQL server has no pgvector extension ("${extension}" is not installed there: ${e.message}); on a Debian host run ${SETUP_SCRIPT} as root, or install pgvector 0.8 or later from your distribution`,
      { extension },
      { cause: err },
    );
  }
  if (e.code === '42501') {
    return new CaxtonError(
      'not_ready',
      `pgvector is installed but this PostgreSQL role may not create the extension (${e.message}); a superuser must run CREATE EXTENSION ${extension} once in database ${database ?? '(this database)'} (${SETUP_SCRIPT} installs the files)`,
      { extension },
      { cause: err },
    );
  }
  return err;
}

/**
 * Makes sure `extension` (pgvector: `vector`) exists in the database, creating it when missing;
 * returns its schema (quoted as needed) and version. Errors name what to do (setup-pgvector.sh).
 */
export async function ensureVectorExtension(
  c: Queryable,
  extension = 'vector',
): Promise<{ schema: string; version: string }> {
  const find = async () =>
    (
      await c.query<{ schema: string; version: string }>(
        'SELECT extnamespace::regnamespace::text AS schema, extversion AS version FROM pg_extension WHERE extname = $1',
        [extension],
      )
    ).rows[0];
  let found = await find();
  if (found) return found;
  const db = (await c.query<{ db: string }>('SELECT current_database() AS db')).rows[0]?.db;
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [lockName.extension]);
    await c.query(`CREATE EXTENSION IF NOT EXISTS ${ident(extension)}`);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw extensionError(err, extension, db);
  }
  found = await find();
  if (!found)
    throw new CaxtonError('internal', `CREATE EXTENSION ${extension} succeeded but the extension is not listed`);
  return found;
}

/** pgvector 0.8 added iterative index scans (filtered searches that keep looking until they have enough rows). */
export function hasIterativeScan(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 0 || minor >= 8;
}

export interface PgMigration {
  id: string;
  /** `s`: the store's schema, `v`: the extension's schema (both quoted). */
  sql: (s: string, v: string) => string;
}

export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    id: 'pg-memory-001-create',
    sql: (s, v) => `
      CREATE TABLE ${s}.meta (
        id         int PRIMARY KEY CHECK (id = 1),
        model      text,
        dimensions int,
        updated_at text NOT NULL
      );
      INSERT INTO ${s}.meta (id, model, dimensions, updated_at) VALUES (1, NULL, NULL, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
      CREATE TABLE ${s}.entities (
        id           bigserial PRIMARY KEY,
        scope        text NOT NULL,
        name         text NOT NULL,
        entity_type  text NOT NULL,
        observations jsonb NOT NULL,
        metadata     json NOT NULL DEFAULT '{}',
        created_at   text NOT NULL,
        updated_at   text NOT NULL,
        words        text[] NOT NULL,
        model        text,
        embedding    ${v}.vector,
        UNIQUE (scope, name)
      );
      CREATE INDEX entities_scope_type ON ${s}.entities (scope, entity_type);
      CREATE INDEX entities_words ON ${s}.entities USING gin (words);
      CREATE TABLE ${s}.relations (
        scope         text NOT NULL,
        from_name     text NOT NULL,
        to_name       text NOT NULL,
        relation_type text NOT NULL,
        created_at    text NOT NULL,
        PRIMARY KEY (scope, from_name, to_name, relation_type)
      );
      CREATE INDEX relations_to ON ${s}.relations (scope, to_name);
    `,
  },
  {
    // How many entities hold each keyword word, kept by statement triggers in the writing
    // transaction: a search ORs only the rare query terms (bounded work), as SQLite's fts5vocab.
    id: 'pg-memory-002-word-docs',
    sql: (s) => `
      CREATE TABLE ${s}.word_docs (word text PRIMARY KEY, docs bigint NOT NULL);
      INSERT INTO ${s}.word_docs (word, docs) SELECT w, count(*) FROM ${s}.entities, unnest(words) AS w GROUP BY w;
      CREATE FUNCTION ${s}.word_docs_change() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'INSERT' THEN
          INSERT INTO ${s}.word_docs AS d (word, docs) SELECT w, count(*) FROM new_rows, unnest(new_rows.words) AS w GROUP BY w
            ON CONFLICT (word) DO UPDATE SET docs = d.docs + excluded.docs;
        ELSIF TG_OP = 'DELETE' THEN
          UPDATE ${s}.word_docs AS d SET docs = d.docs - x.n FROM (SELECT w, count(*) AS n FROM old_rows, unnest(old_rows.words) AS w GROUP BY w) AS x WHERE d.word = x.w;
        ELSE
          INSERT INTO ${s}.word_docs AS d (word, docs)
            SELECT w, sum(n) FROM (SELECT w, 1 AS n FROM new_rows, unnest(new_rows.words) AS w
                                   UNION ALL SELECT w, -1 FROM old_rows, unnest(old_rows.words) AS w) AS x
             GROUP BY w HAVING sum(n) <> 0
            ON CONFLICT (word) DO UPDATE SET docs = d.docs + excluded.docs;
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER word_docs_insert AFTER INSERT ON ${s}.entities REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${s}.word_docs_change();
      CREATE TRIGGER word_docs_update AFTER UPDATE ON ${s}.entities REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${s}.word_docs_change();
      CREATE TRIGGER word_docs_delete AFTER DELETE ON ${s}.entities REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ${s}.word_docs_change();
    `,
  },
];

/** Name of the HNSW index over `entities.embedding` (cosine distance). */
export const HNSW_INDEX = 'entities_embedding_hnsw';

/** Creates the schema and applies the migrations not applied yet (each in its own transaction). */
export async function migrate(c: Queryable, schema: string, vectorSchema: string): Promise<string[]> {
  const s = ident(schema);
  await c.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
  await c.query(`CREATE TABLE IF NOT EXISTS ${s}.migrations (id text PRIMARY KEY, applied_at text NOT NULL)`);
  const done = new Set((await c.query<{ id: string }>(`SELECT id FROM ${s}.migrations`)).rows.map((r) => r.id));
  const applied: string[] = [];
  for (const m of PG_MIGRATIONS) {
    if (done.has(m.id)) continue;
    try {
      await c.query('BEGIN');
      await c.query(m.sql(s, vectorSchema));
      await c.query(`INSERT INTO ${s}.migrations (id, applied_at) VALUES ($1, $2)`, [m.id, new Date().toISOString()]);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw new CaxtonError(
        'internal',
        `memory PostgreSQL migration ${m.id} failed in schema ${schema}: ${(err as Error).message}`,
        { migration: m.id },
        { cause: err },
      );
    }
    applied.push(m.id);
  }
  return applied;
}
