/**
 * What every memory backend provides: the embedded one (SQLite + an in-process HNSW graph,
 * sqlite-store.ts) and the scale-out one (PostgreSQL + pgvector, pg-store.ts), both the graph
 * (graph.ts, which implements this interface once) over a storage (storage.ts). The tools, the
 * agent integration, import/export, REST and CLI use only this interface, and one test suite runs
 * against both storages (test/memory/storage.case.ts).
 *
 * Every operation is asynchronous (a PostgreSQL round trip), every write is one transaction
 * (a failure or crash changes nothing), and vectors of another model are re-embedded at
 * `ready()`, never mixed.
 */
import type {
  Entity,
  EntityInput,
  EntityWrite,
  Graph,
  MemoryStats,
  MergeResult,
  ObservationAddition,
  ObservationDeletion,
  Relation,
  SearchHit,
  SearchQuery,
  StoredEntity,
  StoredRelation,
  TraverseQuery,
  TraverseResult,
} from './types.js';
import type { MemoryLimits } from './memory-validate.js';

export type MemoryBackendKind = 'sqlite' | 'postgres';

export interface MemoryBackend {
  readonly kind: MemoryBackendKind;
  readonly limits: MemoryLimits;
  /** The embedder's model, once ready. */
  readonly model: string | undefined;
  /** Loads the embedder, prepares tables and indexes, re-embeds vectors of another model. Idempotent. */
  ready(): Promise<void>;
  /** Cosine similarity (-1..1) of two texts by the embedding model (each cut to the model's input limit). */
  similarity(a: string, b: string): Promise<number>;

  // The MCP reference memory server's operations, per scope.
  /** Creates the entities whose name is new in `scope`; returns those created. */
  createEntities(scope: string, entities: EntityInput[]): Promise<Entity[]>;
  /** Creates the relations not already present in `scope`; returns those created. */
  createRelations(scope: string, relations: Relation[]): Promise<Relation[]>;
  /** Adds observations to existing entities (an unknown entity fails the whole call: nothing changes). */
  addObservations(
    scope: string,
    additions: ObservationAddition[],
  ): Promise<{ entityName: string; addedObservations: string[] }[]>;
  /** Deletes entities and every relation from or to them; unknown names are ignored. */
  deleteEntities(scope: string, names: string[]): Promise<number>;
  /** Removes the given observations; unknown entities or observations are ignored. */
  deleteObservations(scope: string, deletions: ObservationDeletion[]): Promise<void>;
  /** Deletes relations; unknown ones are ignored. */
  deleteRelations(scope: string, relations: Relation[]): Promise<number>;
  /** Every entity and relation of `scopes`. */
  readGraph(scopes: readonly string[]): Promise<Graph>;
  /** Entities whose name, type or an observation contains `query` (case-insensitive), with their relations. */
  searchNodes(scopes: readonly string[], query: string): Promise<Graph>;
  /** The named entities of `scopes`, with every relation from or to them. */
  openNodes(scopes: readonly string[], names: readonly string[]): Promise<Graph>;
  /** Relations of the entities' scopes with at least one endpoint among them. */
  relationsTouching(entities: readonly Pick<StoredEntity, 'scope' | 'name'>[]): Promise<StoredRelation[]>;
  getEntity(scope: string, name: string): Promise<StoredEntity | undefined>;

  // Search and traversal.
  /** Semantic, keyword or hybrid (default) search over `scopes`, best first. */
  search(q: SearchQuery): Promise<SearchHit[]>;
  /** Breadth-first walk from `from` along relations (of the given types), up to `max_depth` hops. */
  traverse(q: TraverseQuery): Promise<TraverseResult>;

  // Bulk writes and administration.
  /** Merges entities and relations in ONE transaction (imports); `onProgress` follows the embedding. */
  merge(
    entities: EntityWrite[],
    relations: StoredRelation[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<MergeResult>;
  /** Deletes everything in `scopes` (one transaction); returns how many entities. */
  clear(scopes: readonly string[]): Promise<number>;
  stats(): Promise<MemoryStats>;
  /** Every scope holding an entity or a relation, in binary order (cheaper than stats()). */
  scopes(): Promise<string[]>;
  /** How many entities are stored (the entities gauge; cheaper than stats()). */
  countEntities(): Promise<number>;
  /** Waits for pending writes, then refuses new ones and releases what the backend holds. */
  close(): Promise<void>;
}
