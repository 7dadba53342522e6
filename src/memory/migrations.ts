import type { Migration } from '../storage/index.js';

/**
 * The knowledge graph's tables (in the data dir's caxton.db):
 *  - `memory_entities`: one row per (scope, name); observations and metadata as JSON text.
 *  - `memory_relations`: (scope, from, to, type), unique; endpoints by name, as in the MCP
 *    reference server (a relation may name an entity that does not exist yet).
 *  - `memory_embeddings`: one vector per entity, float32 little-endian, with the model and
 *    dimension that produced it; rows of another model are re-embedded, never mixed.
 *  - `memory_fts`: FTS5 over name, type and observations (rowid = entity id), for keyword search.
 *  - `memory_index_state` and `memory_vector_log` (memory-002): a change counter bumped by
 *    triggers on every vector written or deleted, in the same transaction, and per entity the
 *    counter of its last vector change (and whether it was a delete). A saved HNSW graph records
 *    the counter it reflects; at start the changes after it are replayed, so the graph is never
 *    silently stale (src/memory/ann-file.ts). `log_since`: the log is complete after this value
 *    (entries up to it are pruned once a graph that reflects them is saved); `uid` tells this
 *    database from a copy's graph file.
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
  {
    id: 'memory-002-vector-log',
    sql: `
      CREATE TABLE memory_index_state (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        uid       TEXT NOT NULL,
        seq       INTEGER NOT NULL,
        log_since INTEGER NOT NULL
      );
      INSERT INTO memory_index_state (id, uid, seq, log_since) VALUES (1, lower(hex(randomblob(16))), 0, 0);
      CREATE TABLE memory_vector_log (
        entity_id INTEGER PRIMARY KEY,
        seq       INTEGER NOT NULL,
        deleted   INTEGER NOT NULL
      );
      CREATE INDEX memory_vector_log_seq ON memory_vector_log (seq);
      -- Upserts, not INSERT OR REPLACE: the conflict policy of the statement firing a trigger
      -- (e.g. an upsert of memory_embeddings) overrides OR REPLACE inside it.
      CREATE TRIGGER memory_embeddings_logged_insert AFTER INSERT ON memory_embeddings BEGIN
        UPDATE memory_index_state SET seq = seq + 1 WHERE id = 1;
        INSERT INTO memory_vector_log (entity_id, seq, deleted) VALUES (NEW.entity_id, (SELECT seq FROM memory_index_state WHERE id = 1), 0)
          ON CONFLICT (entity_id) DO UPDATE SET seq = excluded.seq, deleted = excluded.deleted;
      END;
      CREATE TRIGGER memory_embeddings_logged_update AFTER UPDATE ON memory_embeddings BEGIN
        UPDATE memory_index_state SET seq = seq + 1 WHERE id = 1;
        INSERT INTO memory_vector_log (entity_id, seq, deleted) VALUES (NEW.entity_id, (SELECT seq FROM memory_index_state WHERE id = 1), 0)
          ON CONFLICT (entity_id) DO UPDATE SET seq = excluded.seq, deleted = excluded.deleted;
      END;
      CREATE TRIGGER memory_embeddings_logged_delete AFTER DELETE ON memory_embeddings BEGIN
        UPDATE memory_index_state SET seq = seq + 1 WHERE id = 1;
        INSERT INTO memory_vector_log (entity_id, seq, deleted) VALUES (OLD.entity_id, (SELECT seq FROM memory_index_state WHERE id = 1), 1)
          ON CONFLICT (entity_id) DO UPDATE SET seq = excluded.seq, deleted = excluded.deleted;
      END;
    `,
  },
  {
    // Per-term document counts of memory_fts (a view of its index, nothing stored): keyword search
    // asks it which query terms are rare enough to bring candidates cheaply.
    id: 'memory-003-fts-vocab',
    sql: `CREATE VIRTUAL TABLE memory_fts_vocab USING fts5vocab (memory_fts, 'row');`,
  },
];
