/**
 * The narrow interface the memory graph (graph.ts) keeps its rows in: rows read by name or id,
 * relation rows, one atomic write of a change set the graph decided, vectors and keyword
 * candidates. What a storage knows is how to store and find rows; every domain rule (what is new,
 * what merges into what, the limits, the messages, ranking, traversal) is the graph's, once.
 *
 * Two implementations: SQLite with an in-process HNSW graph (sqlite-storage.ts) and PostgreSQL +
 * pgvector (pg-storage.ts); one test suite runs against both (test/memory/storage.case.ts).
 * `Id` is the storage's row id (a number in SQLite, a bigint's text in PostgreSQL).
 */
import type { Embedder } from './embedding/index.js';
import type { EntityWrite, MemoryStats, Relation, StoredEntity, StoredRelation } from './types.js';

/** An entity row's columns as a storage's driver returns them (`Json`: text in SQLite, parsed in PostgreSQL). */
export interface EntityColumns<Id, Observations, Metadata> {
  id: Id;
  scope: string;
  name: string;
  entity_type: string;
  observations: Observations;
  metadata: Metadata;
  created_at: string;
  updated_at: string;
}

/** A relation row's columns (both storages). */
export interface RelationColumns {
  scope: string;
  from_name: string;
  to_name: string;
  relation_type: string;
}

export function toRelation(r: RelationColumns): StoredRelation {
  return { from: r.from_name, to: r.to_name, relationType: r.relation_type, scope: r.scope };
}

/** A stored entity and its row id. */
export interface EntityRecord<Id> {
  id: Id;
  entity: StoredEntity;
}

/** What a storage reads: inside one snapshot (PostgreSQL) or straight from the database (SQLite). */
export interface StorageReader<Id> {
  /** The named entities of `scope` by name (names may repeat; missing ones are absent). */
  entitiesByName(scope: string, names: readonly string[]): Promise<Map<string, EntityRecord<Id>>>;
  entity(scope: string, name: string): Promise<StoredEntity | undefined>;
  /**
   * The entities of `scopes` in id order; with `pattern` only those whose name, type or
   * observations' JSON text are LIKE it, folding ASCII case only (`\` escapes); a prefilter.
   */
  entities(scopes: readonly string[], pattern?: string): Promise<StoredEntity[]>;
  /** Every relation of `scopes`, in the order the graph lists them (scope, creation, from). */
  relations(scopes: readonly string[]): Promise<StoredRelation[]>;
  /** Relations of `scope` from or to one of `names` (at most a few hundred). */
  relationsTouching(scope: string, names: readonly string[]): Promise<StoredRelation[]>;
  /** Relations from `name` ordered by (to, type) when `out`; to `name` ordered by (from, type) otherwise. */
  relationsAt(scope: string, name: string, side: 'out' | 'in'): Promise<StoredRelation[]>;
  /** Which of `relations` are stored in `scope`. */
  existingRelations(scope: string, relations: readonly Relation[]): Promise<Relation[]>;

  // Search candidates.
  /** The `pool` vectors of the current model nearest to `v` in `scopes` (of `type`), with their cosine when the storage has it. */
  nearest(
    v: Float32Array,
    pool: number,
    scopes: readonly string[],
    type: string | undefined,
  ): Promise<{ id: Id; similarity?: number }[]>;
  /** How many entities hold each of `terms` (terms no entity holds may be absent). */
  termDocs(terms: readonly string[]): Promise<Map<string, number>>;
  /**
   * At most `pool` entities of `scopes` (of `type`) holding every one of `match.terms` when
   * `every` (the first found), else any of them, best first (SQLite: bm25; PostgreSQL: most of
   * `rankBy` held, then id).
   */
  keywordCandidates(
    match: { terms: readonly string[]; every: boolean },
    rankBy: readonly string[],
    pool: number,
    scopes: readonly string[],
    type: string | undefined,
  ): Promise<Id[]>;
  /** The entities `ids` with the cosine of their vector and `v` (`known` where nearest() gave it; 0 without `v` or a vector). */
  scored(
    ids: readonly Id[],
    v: Float32Array | undefined,
    known: ReadonlyMap<Id, number>,
  ): Promise<{ entity: StoredEntity; similarity: number }[]>;
}

export interface EntityInsert {
  entity: EntityWrite;
  created_at: string;
  updated_at: string;
  vector: Float32Array;
}

export interface EntityUpdate<Id> {
  id: Id;
  /** The whole new state (type, observations, metadata); the scope and name stay. */
  entity: EntityWrite;
  updated_at: string;
  /** A new vector, or null to keep the stored one. */
  vector: Float32Array | null;
}

/** One write, applied as ONE transaction, in this order. */
export interface Changes<Id> {
  insert?: EntityInsert[];
  update?: EntityUpdate<Id>[];
  /** Relations to insert; those already stored are left alone. */
  relations?: readonly StoredRelation[];
  /** Entities to delete with every relation from or to them. */
  deleteEntities?: { scope: string; names: readonly string[] };
  deleteRelations?: { scope: string; relations: readonly Relation[] };
  /** Scopes to empty. */
  clear?: readonly string[];
}

/** What a change set did (counts from the database). */
export interface Applied {
  relationsCreated: number;
  entitiesDeleted: number;
  relationsDeleted: number;
  cleared: number;
}

/** What a write decided from the rows it read: the texts to embed, then the changes (given their vectors) and the result. */
export interface Decision<Id, R> {
  texts: string[];
  changes(vectorOf: (text: string) => Float32Array): Changes<Id>;
  result(applied: Applied): R;
}

/** Embeds texts in batches; `progress` is told (done, total) after each batch, and (0, 0) when there is nothing. */
export type EmbedTexts = (
  texts: readonly string[],
  progress?: (done: number, total: number) => void,
) => Promise<Map<string, Float32Array>>;

/** What the graph gives a storage when it opens. */
export interface StorageOpen<Id> {
  embedder: Embedder;
  /** Re-embeds the entities `ids` in batches: `load` reads a batch's rows, `save` writes their vectors (each batch its own transaction). */
  reembed(
    ids: readonly Id[],
    load: (batch: Id[]) => Promise<EntityRecord<Id>[]>,
    save: (rows: EntityRecord<Id>[], vectors: Float32Array[]) => Promise<void>,
  ): Promise<void>;
  /** Runs `fn` between the graph's writes (writes are serialized). */
  exclusive<T>(fn: () => Promise<T> | T): Promise<T>;
}

export interface MemoryStorage<Id> {
  /** Keyword search: terms held by more entities than this bring no candidates of their own (what ranking the candidates costs differs per storage). */
  readonly rareTermDocs: number;
  /** Prepares tables and indexes for the embedder; re-embeds vectors of another model. Runs once, between writes. */
  open(ctx: StorageOpen<Id>): Promise<void>;
  /**
   * Reads with `fn`: in one snapshot when `snapshot` (default) and the storage has them. Reads do
   * not need open(); a storage that is closed refuses them if it cannot serve them any more.
   */
  read<T>(fn: (r: StorageReader<Id>) => Promise<T>, opts?: { snapshot?: boolean }): Promise<T>;
  /**
   * One write: `decide` reads the rows and says what to embed and change; the texts are embedded
   * (outside any transaction); then the changes are applied in ONE transaction. A storage shared
   * by several writers runs `decide` again inside the transaction, under its write lock, and
   * embeds what changed meanwhile. `progress` follows the first embedding.
   */
  write<R>(
    decide: (r: StorageReader<Id>) => Promise<Decision<Id, R>>,
    embed: EmbedTexts,
    progress?: (done: number, total: number) => void,
  ): Promise<R>;
  /** Called after each write (SQLite saves its HNSW graph now and then). */
  afterWrite?(): void;
  scopes(): Promise<string[]>;
  countEntities(): Promise<number>;
  /** Per-scope counts, the vectors indexed for the embedder open() was given (null before, or after it failed) and the database's size when known. */
  stats(): Promise<{
    entities: { scope: string; n: number; o: number }[];
    relations: { scope: string; n: number }[];
    embedding: MemoryStats['embedding'];
    database_bytes?: number;
  }>;
  /** Refuses new reads, waits for those under way, releases what the storage holds. The graph's writes have finished. */
  close(): Promise<void>;
}
