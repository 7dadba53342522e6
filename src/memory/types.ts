/**
 * The knowledge graph's data model: the MCP reference memory server's (entities with a name, a
 * type and observations; relations from → to with a type, in active voice), plus what Caxton adds
 * (a scope, metadata and timestamps per entity).
 */

/** An entity as the reference memory server has it (and as its tools take and return it). */
export interface Entity {
  name: string;
  entityType: string;
  observations: string[];
}

/** A directed relation between two entities of the same scope, by name. */
export interface Relation {
  from: string;
  to: string;
  relationType: string;
}

/** An entity as stored: the reference fields plus its scope, metadata and timestamps. */
export interface StoredEntity extends Entity {
  scope: string;
  metadata: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

export interface StoredRelation extends Relation {
  scope: string;
}

export interface Graph {
  entities: StoredEntity[];
  relations: StoredRelation[];
}

/** What create_entities takes: the reference fields, metadata optional. */
export interface EntityInput extends Entity {
  metadata?: Record<string, unknown>;
}

export interface ObservationAddition {
  entityName: string;
  contents: string[];
}

export interface ObservationDeletion {
  entityName: string;
  observations: string[];
}

export type SearchMode = 'hybrid' | 'semantic' | 'keyword';

export interface SearchQuery {
  query: string;
  /** Scope keys to search (see scope.ts). */
  scopes: string[];
  entity_type?: string;
  /** Most results (default 10, at most 100). */
  limit?: number;
  /** Results scoring below this are left out (default 0). */
  min_similarity?: number;
  /** Default `hybrid`. */
  mode?: SearchMode;
}

export interface SearchHit {
  entity: StoredEntity;
  /** What results are ranked and filtered by: the cosine, raised toward 1 by keyword matches (hybrid). */
  score: number;
  /** Cosine similarity of the query and entity vectors (0 in keyword mode). */
  similarity: number;
  /** Share of the query's words found in the entity's name, type or observations (0..1). */
  keyword: number;
}

export type Direction = 'out' | 'in' | 'both';

export interface TraverseQuery {
  scope: string;
  from: string;
  /** Follow only these relation types (default: all). */
  relation_types?: string[];
  /** Default 2, at most 10. */
  max_depth?: number;
  /** Default `out`: follow relations from → to. */
  direction?: Direction;
  /** Most entities returned (default 1000). */
  limit?: number;
}

export interface TraverseResult {
  root: string;
  /** Reached entities (the root first, depth 0), in breadth-first order. */
  entities: (StoredEntity & { depth: number })[];
  /** The relations followed. */
  relations: StoredRelation[];
  /** True when `limit` cut the walk short. */
  truncated: boolean;
}

export interface MemoryStats {
  entities: number;
  relations: number;
  observations: number;
  by_scope: Record<string, { entities: number; relations: number; observations: number }>;
  /** `ann`: the HNSW graph's state (MemoryStore.annStatus). */
  embedding: {
    model: string;
    dimensions: number;
    indexed: number;
    ann?: {
      state: string;
      source: string;
      reason?: string;
      file: string | null;
      saved_seq: number | null;
      seq: number;
    };
  } | null;
  database_bytes?: number;
}

/** What an import or merge writes for one entity. */
export interface EntityWrite {
  scope: string;
  name: string;
  entityType: string;
  observations: string[];
  metadata: Record<string, unknown>;
  created_at?: string;
  updated_at?: string;
}

export interface MergeResult {
  entities_created: number;
  entities_updated: number;
  relations_created: number;
}
