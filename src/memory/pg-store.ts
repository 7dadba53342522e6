/**
 * The scale-out memory backend: the graph (graph.ts) over PostgreSQL + pgvector (pg-storage.ts),
 * for several Caxton servers sharing one memory. See docs/adr/0012-memory-postgres.md.
 */
import { MemoryGraph, type MemoryGraphOptions } from './graph.js';
import { PgStorage, type PgStorageOptions } from './pg-storage.js';
import { planSearch } from './text.js';
import type { SearchQuery } from './types.js';

/** pgvector's text form of a vector (benchmarks write rows with it). */
export { vectorLiteral } from './pg-storage.js';

export interface PgMemoryStoreOptions extends MemoryGraphOptions, PgStorageOptions {}

export class PgMemoryStore extends MemoryGraph<string> {
  readonly schema: string;
  readonly #storage: PgStorage;

  constructor(opts: PgMemoryStoreOptions) {
    const storage = new PgStorage(opts);
    super('postgres', storage, opts);
    this.schema = storage.schema;
    this.#storage = storage;
  }

  /** EXPLAIN of the semantic candidates' query a search runs (diagnostics: shows whether the HNSW index is used). */
  async explainSearch(q: SearchQuery): Promise<string> {
    const plan = planSearch(q);
    await this.ready();
    return this.#storage.explainNearest(await this.embedQuery(q.query), plan.pool, q.scopes, q.entity_type);
  }
}
