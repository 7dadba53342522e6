import type { Migration } from '../storage/index.js';

/**
 * The knowledge graph's tables (in the data dir's caxton.db):
 *  - `memory_entities`: one row per (scope, name); observations and metadata as JSON text.
 *  - `memory_relations`: (scope, from, to, type), unique; endpoints by name, as in the MCP
 *    reference server (a relation may name an entity that does not exist yet).
 *  - `memory_embeddings`: one vector per entity, float32 little-endian, with the model and
 *    dimension that produced it; rows of another model are re-embedded, never mixed.
 *  - `memory_fts`: FTS5 over name, type and observations (rowid = entity id), for keyword search.
 */
export const MEMORY_MIGRATIONS: readonly Migration[] = [
  {
    id: 'memory-001-create',
    sql: `
      CREATE TABLE memory_entities (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        scope        TEXT NOT NULL,
        name         TEXT NOT NULL,
        entity_type  TEXT NOT NULL,
        observations TEXT NOT NULL,
        metadata     TEXT NOT NULL DEFAULT '{}',
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        UNIQUE (scope, name)
      );
      CREATE INDEX memory_entities_type ON memory_entities (scope, entity_type);
      CREATE TABLE memory_relations (
        scope         TEXT NOT NULL,
        from_name     TEXT NOT NULL,
        to_name       TEXT NOT NULL,
        relation_type TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        PRIMARY KEY (scope, from_name, to_name, relation_type)
      ) WITHOUT ROWID;
      CREATE INDEX memory_relations_to ON memory_relations (scope, to_name);
      CREATE TABLE memory_embeddings (
        entity_id  INTEGER PRIMARY KEY REFERENCES memory_entities (id) ON DELETE CASCADE,
        model      TEXT NOT NULL,
        dimensions INTEGER NOT NULL,
        vector     BLOB NOT NULL
      );
      CREATE VIRTUAL TABLE memory_fts USING fts5 (name, entity_type, observations, tokenize = 'unicode61 remove_diacritics 2');
    `,
  },
];
