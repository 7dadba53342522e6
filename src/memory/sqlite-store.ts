/**
 * The embedded memory backend: the graph (graph.ts) over the data dir's SQLite (sqlite-storage.ts),
 * with the HNSW graph saved beside the database.
 */
import { dirname, join } from 'node:path';
import { ANN_FILE_NAME } from './ann-file.js';
import { MemoryGraph, type MemoryGraphOptions } from './graph.js';
import { SqliteStorage, type AnnStatus, type SqliteStorageOptions } from './sqlite-storage.js';
import type { Db } from '../storage/index.js';
import type { VectorIndex } from './vector-index.js';

export type { AnnStatus };

export interface MemoryStoreOptions extends MemoryGraphOptions, Partial<SqliteStorageOptions> {
  /**
   * Where the HNSW graph is saved (with its sidecar `<path>.json`); null: never saved (rebuilt
   * at every start). Default: `memory.usearch` beside the database file.
   */
  annPath?: string | null;
}

export class MemoryStore extends MemoryGraph<number> {
  readonly db: Db;
  readonly #storage: SqliteStorage;

  constructor(db: Db, opts: MemoryStoreOptions) {
    const annPath =
      opts.annPath !== undefined
        ? opts.annPath
        : db.name && db.name !== ':memory:'
          ? join(dirname(db.name), ANN_FILE_NAME)
          : null;
    const storage = new SqliteStorage(db, {
      annPath,
      ...(opts.annMinVectors !== undefined && { annMinVectors: opts.annMinVectors }),
      ...(opts.log && { log: opts.log }),
    });
    super('sqlite', storage, opts);
    this.db = db;
    this.#storage = storage;
  }

  /** The HNSW graph: its state, where it came from at start, and what is saved. */
  annStatus(): AnnStatus {
    return this.#storage.annStatus();
  }

  /** The in-process vector index, once loaded (benchmarks and diagnostics). */
  get vectorIndex(): VectorIndex | undefined {
    return this.#storage.vectorIndex;
  }
}
