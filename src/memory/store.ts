/**
 * The knowledge graph store on the data dir's SQLite: the nine operations of the MCP reference
 * memory server (per scope), semantic / keyword / hybrid search, graph traversal, and stats.
 *
 * Consistency: every write runs as ONE transaction, entity rows, FTS rows and vectors together,
 * so a crash never leaves a half-written operation visible. Writes are serialized (one at a time
 * per store): an operation reads the current rows, embeds the texts it changes (before the
 * transaction, as embedding is asynchronous), then commits and updates the in-process vector
 * index in the same tick. The index is rebuilt from SQLite when the store first gets ready;
 * vectors of another model or dimension are re-embedded then, never mixed.
 *
 * One store per database: the in-process index assumes no other process writes the memory tables.
 */
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ANN_FILE_NAME, checkAnnFile, saveAnnFile } from './ann-file.js';
import type { MemoryBackend } from './backend.js';
import type { Embedder } from './embedding/index.js';
import { CaxtonError } from '../shared/errors.js';
import type { Db } from '../storage/index.js';
import { chunks, dot, EMBED_BATCH, entityText, foldDuplicates, MAX_EMBED_CHARS, countsByScope, planSearch, rankHits, RARE_TERM_DOCS, traverseGraph, type SearchPlan } from './text.js';
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
import { DEFAULT_LIMITS, type MemoryLimits } from './validate.js';
import { blobToVector, VectorIndex, vectorToBlob, type AnnRepair } from './vector-index.js';

export interface MemoryStoreOptions {
  /** The embedder, or a function that creates it on first use (the local model takes ~0.2-0.7 s and ~150 MB to load). */
  embedder: Embedder | (() => Promise<Embedder>);
  limits?: Partial<MemoryLimits>;
  /** How much keyword matches raise a hybrid score: score = cos + w · keyword · (1 − cos). Default 0.3. */
  keyword_weight?: number;
  /** Told about re-embedding progress when the model changed (done, total). */
  onReindex?: (done: number, total: number) => void;
  /**
   * Where the HNSW graph is saved (with its sidecar `<path>.json`); null: never saved (rebuilt
   * at every start). Default: `memory.usearch` beside the database file.
   */
  annPath?: string | null;
  /** Vectors from which searches go through the HNSW graph (default ANN_MIN_VECTORS). */
  annMinVectors?: number;
  /** Where graph loads, repairs, rebuilds and save failures are reported. */
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

/** How the HNSW graph came to be at start, and what is saved. */
export interface AnnStatus {
  /** `exact`: below the threshold, no graph; `building`: background build under way; `ready`. */
  state: 'exact' | 'building' | 'ready';
  /** `file`: the saved graph was loaded (and repaired); `built`: built from the vectors (`reason` says why the file was not used). */
  source: 'none' | 'file' | 'built';
  reason?: string;
  repaired?: AnnRepair;
  /** Time to check, load and repair the saved graph. */
  load_ms?: number;
  file: string | null;
  /** The change counter the saved graph reflects, and the database's. */
  saved_seq: number | null;
  seq: number;
}

interface EntityRow {
  id: number;
  scope: string;
  name: string;
  entity_type: string;
  observations: string;
  metadata: string;
  created_at: string;
  updated_at: string;
}

interface RelationRow {
  scope: string;
  from_name: string;
  to_name: string;
  relation_type: string;
}

/** Unsaved vector changes after which the graph is saved again: between 5,000 and 50,000, a tenth of the vectors. */
const saveAfter = (size: number) => Math.min(50_000, Math.max(5_000, Math.floor(size / 10)));
function toEntity(r: EntityRow): StoredEntity {
  return {
    name: r.name,
    entityType: r.entity_type,
    observations: JSON.parse(r.observations) as string[],
    scope: r.scope,
    metadata: JSON.parse(r.metadata) as Record<string, unknown>,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

function toRelation(r: RelationRow): StoredRelation {
  return { from: r.from_name, to: r.to_name, relationType: r.relation_type, scope: r.scope };
}

export class MemoryStore implements MemoryBackend {
  readonly kind = 'sqlite' as const;
  readonly db: Db;
  readonly limits: MemoryLimits;
  readonly keywordWeight: number;
  readonly #embedderSource: MemoryStoreOptions['embedder'];
  readonly #onReindex: MemoryStoreOptions['onReindex'];
  #embedder: Embedder | undefined;
  #index: VectorIndex | undefined;
  #ready: Promise<void> | undefined;
  #lock: Promise<unknown> = Promise.resolve();
  #closed = false;
  readonly #annPath: string | null;
  readonly #annMin: number | undefined;
  readonly #log: MemoryStoreOptions['log'];
  #annSource: Pick<AnnStatus, 'source' | 'reason' | 'repaired' | 'load_ms'> = { source: 'none' };
  #savedSeq: number | null = null;
  #savePending = false;

  constructor(db: Db, opts: MemoryStoreOptions) {
    this.db = db;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.keywordWeight = opts.keyword_weight ?? 0.3;
    this.#embedderSource = opts.embedder;
    this.#onReindex = opts.onReindex;
    this.#annPath = opts.annPath !== undefined ? opts.annPath : db.name && db.name !== ':memory:' ? join(dirname(db.name), ANN_FILE_NAME) : null;
    this.#annMin = opts.annMinVectors;
    this.#log = opts.log;
  }

  /** The embedder's model, once ready. */
  get model(): string | undefined {
    return this.#embedder?.model;
  }

  /** Loads the embedder and builds the vector index from SQLite (re-embedding what another model produced). Idempotent. */
  ready(): Promise<void> {
    this.#ready ??= this.#exclusive(() => this.#open()).catch((e: unknown) => {
      this.#ready = undefined;
      throw e;
    });
    return this.#ready;
  }

  async #open(): Promise<void> {
    const src = this.#embedderSource;
    const embedder = typeof src === 'function' ? await src() : src;
    this.#embedder = embedder;
    const index = new VectorIndex(embedder.dimensions, Math.max(1024, this.#count()), {
      ...(this.#annMin !== undefined && { annMinVectors: this.#annMin }),
      hold: true,
      onAnnBuilt: () => this.#scheduleSave(),
    });
    const stale: number[] = [];
    const rows = this.db
      .prepare(
        `SELECT e.id, e.scope, e.entity_type, v.model, v.dimensions, v.vector
           FROM memory_entities e LEFT JOIN memory_embeddings v ON v.entity_id = e.id`,
      )
      .iterate() as IterableIterator<{ id: number; scope: string; entity_type: string; model: string | null; dimensions: number | null; vector: Buffer | null }>;
    for (const r of rows) {
      if (r.model === embedder.model && r.dimensions === embedder.dimensions && r.vector && r.vector.byteLength === embedder.dimensions * 4) {
        index.set(r.id, r.scope, r.entity_type, blobToVector(r.vector));
      } else stale.push(r.id);
    }
    this.#index = index;
    if (stale.length > 0) await this.#reembed(stale);
    this.#adoptSavedGraph(index, embedder);
    index.release();
  }

  #indexState(): { uid: string; seq: number; log_since: number } {
    return this.db.prepare('SELECT uid, seq, log_since FROM memory_index_state WHERE id = 1').get() as { uid: string; seq: number; log_since: number };
  }

  /**
   * Loads the saved HNSW graph when the index is large enough to use one, replaying the vector
   * changes committed after it was saved (a crash or kill -9 since the last save); otherwise the
   * graph is built in the background (`release`). Never adopts a graph that disagrees with SQLite.
   */
  #adoptSavedGraph(index: VectorIndex, embedder: Embedder): void {
    const path = this.#annPath;
    if (!path || index.size < index.annMinVectors) return;
    const t0 = performance.now();
    const state = this.#indexState();
    const check = checkAnnFile(path, { db_uid: state.uid, seq: state.seq, log_since: state.log_since, model: embedder.model, dimensions: embedder.dimensions });
    let reason: string;
    if (check.ok) {
      const changes = this.db.prepare('SELECT entity_id, deleted FROM memory_vector_log WHERE seq > ?').all(check.sidecar.seq) as { entity_id: number; deleted: number }[];
      try {
        const repaired = index.adoptAnn(
          path,
          changes.filter((c) => !c.deleted).map((c) => c.entity_id),
          changes.filter((c) => c.deleted).map((c) => c.entity_id),
        );
        this.#savedSeq = check.sidecar.seq;
        this.#annSource = { source: 'file', repaired, load_ms: performance.now() - t0 };
        this.#log?.info({ file: path, vectors: index.size, saved_seq: check.sidecar.seq, seq: state.seq, ...repaired, ms: Math.round(performance.now() - t0) }, 'memory: loaded the saved HNSW graph');
        return;
      } catch (e) {
        reason = `the saved graph disagrees with the database: ${(e as Error).message}`;
      }
    } else reason = check.reason;
    this.#annSource = { source: 'built', reason };
    this.#log?.warn({ file: path, vectors: index.size, reason }, 'memory: rebuilding the HNSW graph in the background (exact search meanwhile)');
  }

  /** Saves the graph soon (after pending writes), unless a save is already queued. */
  #scheduleSave(): void {
    if (this.#savePending || !this.#annPath || this.#closed) return;
    this.#savePending = true;
    setImmediate(() => {
      this.#exclusive(() => {
        this.#savePending = false;
        this.#saveGraph();
      }).catch((err: unknown) => {
        this.#savePending = false;
        if (!this.#closed) this.#log?.warn({ err, file: this.#annPath }, 'memory: saving the HNSW graph failed; it is rebuilt or repaired at the next start');
      });
    }).unref();
  }

  /**
   * Saves the complete graph with the change counter it reflects (run between writes: the graph
   * then holds exactly the committed vectors), then prunes the change log up to that counter.
   */
  #saveGraph(): void {
    const index = this.#index;
    if (!this.#annPath || !index?.annComplete || !this.#embedder) return;
    const state = this.#indexState();
    if (state.seq === this.#savedSeq) return;
    saveAnnFile(index, this.#annPath, { db_uid: state.uid, seq: state.seq, model: this.#embedder.model });
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM memory_vector_log WHERE seq <= ?').run(state.seq);
      this.db.prepare('UPDATE memory_index_state SET log_since = max(log_since, ?) WHERE id = 1').run(state.seq);
    })();
    this.#savedSeq = state.seq;
  }

  /** The HNSW graph: its state, where it came from at start, and what is saved. */
  annStatus(): AnnStatus {
    const index = this.#index;
    const built = this.#annSource.source === 'none' && (index?.annComplete || index?.annBuilding);
    return {
      state: index?.annReady ? 'ready' : index?.annBuilding ? 'building' : 'exact',
      ...this.#annSource,
      ...(built && { source: 'built' as const }),
      file: this.#annPath,
      saved_seq: this.#savedSeq,
      seq: this.#indexState().seq,
    };
  }

  #count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM memory_entities').get() as { n: number }).n;
  }

  /** Re-embeds entities whose vector is missing or from another model, in batches (each its own transaction). */
  async #reembed(ids: number[]): Promise<void> {
    const get = this.db.prepare('SELECT * FROM memory_entities WHERE id = ?');
    let done = 0;
    for (const batch of chunks(ids, EMBED_BATCH)) {
      const rows = batch.map((id) => get.get(id) as EntityRow | undefined).filter((r): r is EntityRow => r !== undefined);
      const vectors = await this.#embed(rows.map((r) => entityText(toEntity(r))));
      this.db.transaction(() => rows.forEach((r, i) => this.#putVector(r.id, vectors[i]!)))();
      rows.forEach((r, i) => this.#index!.set(r.id, r.scope, r.entity_type, vectors[i]!));
      done += batch.length;
      this.#onReindex?.(done, ids.length);
    }
  }

  async #embed(texts: string[]): Promise<Float32Array[]> {
    if (texts.length === 0) return [];
    const out: Float32Array[] = [];
    for (const batch of chunks(texts, EMBED_BATCH)) out.push(...(await this.#embedder!.embed(batch)));
    return out;
  }

  #putVector(id: number, v: Float32Array): void {
    this.db
      .prepare(
        'INSERT INTO memory_embeddings (entity_id, model, dimensions, vector) VALUES (?, ?, ?, ?) ON CONFLICT (entity_id) DO UPDATE SET model = excluded.model, dimensions = excluded.dimensions, vector = excluded.vector',
      )
      .run(id, this.#embedder!.model, v.length, vectorToBlob(v));
  }

  #putFts(id: number, e: Entity, replace: boolean): void {
    if (replace) this.db.prepare('DELETE FROM memory_fts WHERE rowid = ?').run(id);
    this.db.prepare('INSERT INTO memory_fts (rowid, name, entity_type, observations) VALUES (?, ?, ?, ?)').run(id, e.name, e.entityType, e.observations.join('\n'));
  }

  /** Runs `fn` after every earlier write has finished (writes are serialized). */
  #exclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.#lock.then(() => {
      if (this.#closed) throw new CaxtonError('not_ready', 'the memory store is closed');
      return fn();
    });
    this.#lock = run.catch(() => undefined);
    return run;
  }

  async #write<T>(fn: () => Promise<T> | T): Promise<T> {
    await this.ready();
    const out = await this.#exclusive(fn);
    this.#maybeSave();
    return out;
  }

  /** Queues a save of the graph once enough vector changes are unsaved (bounds the replay at the next start). */
  #maybeSave(): void {
    const index = this.#index;
    if (!this.#annPath || !index?.annComplete || this.#savePending || this.#closed) return;
    if (this.#savedSeq === null || this.#indexState().seq - this.#savedSeq >= saveAfter(index.size)) this.#scheduleSave();
  }

  #rows(scope: string, names: readonly string[]): Map<string, EntityRow> {
    const out = new Map<string, EntityRow>();
    for (const part of chunks([...new Set(names)], 500)) {
      const rows = this.db.prepare(`SELECT * FROM memory_entities WHERE scope = ? AND name IN (${part.map(() => '?').join(',')})`).all(scope, ...part) as EntityRow[];
      for (const r of rows) out.set(r.name, r);
    }
    return out;
  }

  // ---- The reference server's operations ----

  /** Creates the entities whose name is new in `scope`; returns those created (existing names are left alone, as the reference server does). */
  createEntities(scope: string, entities: EntityInput[]): Promise<Entity[]> {
    return this.#write(async () => {
      const existing = this.#rows(
        scope,
        entities.map((e) => e.name),
      );
      const seen = new Set<string>();
      const fresh = entities.filter((e) => !existing.has(e.name) && !seen.has(e.name) && seen.add(e.name));
      const created = fresh.map((e) => ({ name: e.name, entityType: e.entityType, observations: [...new Set(e.observations)] }));
      const vectors = await this.#embed(created.map(entityText));
      const now = new Date().toISOString();
      const ids: number[] = [];
      this.db.transaction(() => {
        const ins = this.db.prepare('INSERT INTO memory_entities (scope, name, entity_type, observations, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
        created.forEach((e, i) => {
          const id = Number(ins.run(scope, e.name, e.entityType, JSON.stringify(e.observations), JSON.stringify(fresh[i]!.metadata ?? {}), now, now).lastInsertRowid);
          ids.push(id);
          this.#putFts(id, e, false);
          this.#putVector(id, vectors[i]!);
        });
      })();
      created.forEach((e, i) => this.#index!.set(ids[i]!, scope, e.entityType, vectors[i]!));
      return created;
    });
  }

  /** Creates the relations not already present in `scope`; returns those created. */
  createRelations(scope: string, relations: Relation[]): Promise<Relation[]> {
    return this.#write(() => {
      const created: Relation[] = [];
      const now = new Date().toISOString();
      this.db.transaction(() => {
        const ins = this.db.prepare('INSERT OR IGNORE INTO memory_relations (scope, from_name, to_name, relation_type, created_at) VALUES (?, ?, ?, ?, ?)');
        for (const r of relations) {
          if (ins.run(scope, r.from, r.to, r.relationType, now).changes > 0) created.push({ from: r.from, to: r.to, relationType: r.relationType });
        }
      })();
      return created;
    });
  }

  /** Adds observations to existing entities (an unknown entity fails the whole call: nothing changes). */
  addObservations(scope: string, additions: ObservationAddition[]): Promise<{ entityName: string; addedObservations: string[] }[]> {
    return this.#write(async () => {
      const rows = this.#rows(
        scope,
        additions.map((a) => a.entityName),
      );
      const missing = additions.find((a) => !rows.has(a.entityName));
      if (missing) throw new CaxtonError('not_found', `Entity with name ${missing.entityName} not found in scope ${scope}`, { entityName: missing.entityName, scope });
      const current = new Map([...rows].map(([name, r]) => [name, toEntity(r)]));
      const results = additions.map((a) => {
        const e = current.get(a.entityName)!;
        const added = [...new Set(a.contents)].filter((c) => !e.observations.includes(c));
        e.observations.push(...added);
        if (e.observations.length > this.limits.max_observations) {
          throw new CaxtonError('payload_too_large', `entity ${a.entityName} would hold ${e.observations.length} observations, more than the ${this.limits.max_observations} allowed`, {
            entityName: a.entityName,
          });
        }
        return { entityName: a.entityName, addedObservations: added };
      });
      const changed = [...new Set(results.filter((r) => r.addedObservations.length > 0).map((r) => r.entityName))];
      await this.#rewrite(changed.map((n) => ({ row: rows.get(n)!, entity: current.get(n)! })));
      return results;
    });
  }

  /** Writes new observations (and their vectors) of existing entities in one transaction. */
  async #rewrite(items: { row: EntityRow; entity: StoredEntity }[]): Promise<void> {
    if (items.length === 0) return;
    const vectors = await this.#embed(items.map((x) => entityText(x.entity)));
    const now = new Date().toISOString();
    this.db.transaction(() => {
      const upd = this.db.prepare('UPDATE memory_entities SET observations = ?, updated_at = ? WHERE id = ?');
      items.forEach((x, i) => {
        upd.run(JSON.stringify(x.entity.observations), now, x.row.id);
        this.#putFts(x.row.id, x.entity, true);
        this.#putVector(x.row.id, vectors[i]!);
      });
    })();
    items.forEach((x, i) => this.#index!.set(x.row.id, x.row.scope, x.row.entity_type, vectors[i]!));
  }

  /** Deletes entities and every relation from or to them; unknown names are ignored. Returns how many entities were deleted. */
  deleteEntities(scope: string, names: string[]): Promise<number> {
    return this.#write(() => {
      const rows = this.#rows(scope, names);
      this.db.transaction(() => {
        for (const r of rows.values()) {
          this.db.prepare('DELETE FROM memory_embeddings WHERE entity_id = ?').run(r.id);
          this.db.prepare('DELETE FROM memory_fts WHERE rowid = ?').run(r.id);
          this.db.prepare('DELETE FROM memory_entities WHERE id = ?').run(r.id);
        }
        const del = this.db.prepare('DELETE FROM memory_relations WHERE scope = ? AND (from_name = ? OR to_name = ?)');
        for (const n of new Set(names)) del.run(scope, n, n);
      })();
      for (const r of rows.values()) this.#index!.delete(r.id);
      return rows.size;
    });
  }

  /** Removes the given observations; unknown entities or observations are ignored. */
  deleteObservations(scope: string, deletions: ObservationDeletion[]): Promise<void> {
    return this.#write(async () => {
      const rows = this.#rows(
        scope,
        deletions.map((d) => d.entityName),
      );
      const current = new Map([...rows].map(([name, r]) => [name, toEntity(r)]));
      const changed = new Set<string>();
      for (const d of deletions) {
        const e = current.get(d.entityName);
        if (!e) continue;
        const before = e.observations.length;
        e.observations = e.observations.filter((o) => !d.observations.includes(o));
        if (e.observations.length !== before) changed.add(d.entityName);
      }
      await this.#rewrite([...changed].map((n) => ({ row: rows.get(n)!, entity: current.get(n)! })));
    });
  }

  /** Deletes relations; unknown ones are ignored. Returns how many were deleted. */
  deleteRelations(scope: string, relations: Relation[]): Promise<number> {
    return this.#write(() => {
      let n = 0;
      this.db.transaction(() => {
        const del = this.db.prepare('DELETE FROM memory_relations WHERE scope = ? AND from_name = ? AND to_name = ? AND relation_type = ?');
        for (const r of relations) n += del.run(scope, r.from, r.to, r.relationType).changes;
      })();
      return n;
    });
  }

  /** Every entity and relation of `scopes`. */
  async readGraph(scopes: readonly string[]): Promise<Graph> {
    const ph = scopes.map(() => '?').join(',');
    if (scopes.length === 0) return { entities: [], relations: [] };
    const entities = (this.db.prepare(`SELECT * FROM memory_entities WHERE scope IN (${ph}) ORDER BY id`).all(...scopes) as EntityRow[]).map(toEntity);
    const relations = (
      this.db.prepare(`SELECT scope, from_name, to_name, relation_type FROM memory_relations WHERE scope IN (${ph}) ORDER BY scope, created_at, from_name`).all(...scopes) as RelationRow[]
    ).map(toRelation);
    return { entities, relations };
  }

  /** The reference server's search: entities whose name, type or an observation contains `query` (case-insensitive), with their relations. */
  async searchNodes(scopes: readonly string[], query: string): Promise<Graph> {
    if (scopes.length === 0) return { entities: [], relations: [] };
    const q = query.toLowerCase();
    const ph = scopes.map(() => '?').join(',');
    let rows: EntityRow[];
    // SQLite's LIKE folds ASCII case only, and observations are JSON text: prefilter only when that is exact.
    if (/^[\x20-\x7e]*$/.test(query) && !/["\\]/.test(query)) {
      const pat = `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      rows = this.db
        .prepare(`SELECT * FROM memory_entities WHERE scope IN (${ph}) AND (name LIKE ? ESCAPE '\\' OR entity_type LIKE ? ESCAPE '\\' OR observations LIKE ? ESCAPE '\\') ORDER BY id`)
        .all(...scopes, pat, pat, pat) as EntityRow[];
    } else rows = this.db.prepare(`SELECT * FROM memory_entities WHERE scope IN (${ph}) ORDER BY id`).all(...scopes) as EntityRow[];
    const entities = rows.map(toEntity).filter((e) => e.name.toLowerCase().includes(q) || e.entityType.toLowerCase().includes(q) || e.observations.some((o) => o.toLowerCase().includes(q)));
    return { entities, relations: this.#relationsTouching(entities) };
  }

  /** The named entities of `scopes`, with every relation from or to them. */
  async openNodes(scopes: readonly string[], names: readonly string[]): Promise<Graph> {
    const entities: StoredEntity[] = [];
    for (const s of scopes) {
      const rows = this.#rows(s, names);
      for (const n of names) {
        const r = rows.get(n);
        if (r) {
          entities.push(toEntity(r));
          rows.delete(n);
        }
      }
    }
    return { entities, relations: this.#relationsTouching(entities) };
  }

  /** Relations of the entities' scopes with at least one endpoint among them. */
  async relationsTouching(entities: readonly Pick<StoredEntity, 'scope' | 'name'>[]): Promise<StoredRelation[]> {
    return this.#relationsTouching(entities);
  }

  #relationsTouching(entities: readonly Pick<StoredEntity, 'scope' | 'name'>[]): StoredRelation[] {
    const byScope = new Map<string, string[]>();
    for (const e of entities) byScope.set(e.scope, [...(byScope.get(e.scope) ?? []), e.name]);
    const out: StoredRelation[] = [];
    const seen = new Set<string>();
    for (const [scope, names] of byScope) {
      for (const part of chunks(names, 400)) {
        const ph = part.map(() => '?').join(',');
        const rows = this.db
          .prepare(`SELECT scope, from_name, to_name, relation_type FROM memory_relations WHERE scope = ? AND (from_name IN (${ph}) OR to_name IN (${ph}))`)
          .all(scope, ...part, ...part) as RelationRow[];
        for (const r of rows) {
          const key = JSON.stringify([r.scope, r.from_name, r.to_name, r.relation_type]);
          if (!seen.has(key)) {
            seen.add(key);
            out.push(toRelation(r));
          }
        }
      }
    }
    return out;
  }

  async getEntity(scope: string, name: string): Promise<StoredEntity | undefined> {
    return this.#getEntity(scope, name);
  }

  #getEntity(scope: string, name: string): StoredEntity | undefined {
    const r = this.db.prepare('SELECT * FROM memory_entities WHERE scope = ? AND name = ?').get(scope, name) as EntityRow | undefined;
    return r && toEntity(r);
  }

  // ---- Search and traversal ----

  /** Semantic, keyword or hybrid (default) search over `scopes`, best first. */
  async search(q: SearchQuery): Promise<SearchHit[]> {
    const plan = planSearch(q);
    if (q.scopes.length === 0) return [];
    await this.ready();
    const scopes = new Set(q.scopes);
    const sims = new Map<number, number>();
    let qv: Float32Array | undefined;
    if (plan.mode !== 'keyword') {
      [qv] = await this.#embed([q.query.slice(0, MAX_EMBED_CHARS)]);
      for (const h of this.#index!.search(qv!, plan.pool, scopes, q.entity_type)) sims.set(h.id, h.similarity);
    }
    const candidates = new Set(sims.keys());
    if (plan.mode !== 'semantic' && plan.terms.length > 0) for (const id of this.#keywordCandidates(plan, q)) candidates.add(id);
    if (candidates.size === 0) return [];
    const ids = [...candidates];
    const rows: EntityRow[] = [];
    for (const part of chunks(ids, 500)) rows.push(...(this.db.prepare(`SELECT * FROM memory_entities WHERE id IN (${part.map(() => '?').join(',')})`).all(...part) as EntityRow[]));
    return rankHits(
      plan,
      this.keywordWeight,
      rows.map((r) => {
        let similarity = sims.get(r.id);
        if (similarity === undefined && qv) {
          const v = this.#index!.vector(r.id);
          similarity = v ? dot(v, qv) : 0;
        }
        return { entity: toEntity(r), similarity: similarity ?? 0 };
      }),
    );
  }

  /**
   * Entities matching the query's words, at a cost bounded by RARE_TERM_DOCS rather than by the
   * store's size: the terms found in at most that many entities bring candidates (OR, best BM25
   * first); when every term is more common, entities holding all of them do (AND, the first
   * found: each has the highest keyword score anyway). Common terms still count in the score.
   */
  #keywordCandidates(plan: SearchPlan, q: SearchQuery): number[] {
    const docs = this.db.prepare('SELECT doc FROM memory_fts_vocab WHERE term = ?').pluck();
    const present = plan.terms.map((t) => ({ t, n: (docs.get(t) as number | undefined) ?? 0 })).filter((x) => x.n > 0);
    if (present.length === 0) return [];
    const rare = present.filter((x) => x.n <= RARE_TERM_DOCS);
    const match = (rare.length > 0 ? rare : present).map((x) => `"${x.t}"`).join(rare.length > 0 ? ' OR ' : ' AND ');
    const ph = q.scopes.map(() => '?').join(',');
    return this.db
      .prepare(
        `SELECT e.id FROM memory_fts f JOIN memory_entities e ON e.id = f.rowid
          WHERE memory_fts MATCH ? AND e.scope IN (${ph}) ${q.entity_type !== undefined ? 'AND e.entity_type = ?' : ''}
          ${rare.length > 0 ? 'ORDER BY bm25(memory_fts)' : ''} LIMIT ?`,
      )
      .pluck()
      .all(match, ...q.scopes, ...(q.entity_type !== undefined ? [q.entity_type] : []), plan.pool) as number[];
  }

  /** Breadth-first walk from `from` along relations (of the given types), up to `max_depth` hops. */
  traverse(q: TraverseQuery): Promise<TraverseResult> {
    const outQ = this.db.prepare('SELECT scope, from_name, to_name, relation_type FROM memory_relations WHERE scope = ? AND from_name = ? ORDER BY to_name, relation_type');
    const inQ = this.db.prepare('SELECT scope, from_name, to_name, relation_type FROM memory_relations WHERE scope = ? AND to_name = ? ORDER BY from_name, relation_type');
    return traverseGraph(
      {
        getEntity: async (scope, name) => this.#getEntity(scope, name),
        relations: async (scope, name, side) => ((side === 'out' ? outQ : inQ).all(scope, name) as RelationRow[]).map(toRelation),
        entities: async (scope, names) => [...this.#rows(scope, names).values()].map(toEntity),
      },
      q,
    );
  }

  // ---- Bulk writes (imports) ----

  /**
   * Merges entities and relations in ONE transaction: new entities are created; for existing ones
   * observations are added (no duplicates), metadata merged and the type replaced. Everything is
   * embedded before the transaction starts, so a failure (bad input, embedder error, crash)
   * changes nothing. `onProgress` follows the embedding (done, total).
   */
  merge(entities: EntityWrite[], relations: StoredRelation[], onProgress?: (done: number, total: number) => void): Promise<MergeResult> {
    return this.#write(async () => {
      const items = foldDuplicates(entities);
      const byScope = new Map<string, EntityWrite[]>();
      for (const e of items) byScope.set(e.scope, [...(byScope.get(e.scope) ?? []), e]);
      const plan: { write: EntityWrite; row?: EntityRow; final: EntityWrite; changed: boolean }[] = [];
      for (const [scope, list] of byScope) {
        const rows = this.#rows(
          scope,
          list.map((e) => e.name),
        );
        for (const w of list) {
          const row = rows.get(w.name);
          if (!row) {
            plan.push({ write: w, final: w, changed: true });
            continue;
          }
          const cur = toEntity(row);
          const observations = [...cur.observations, ...w.observations.filter((o) => !cur.observations.includes(o))];
          if (observations.length > this.limits.max_observations) {
            throw new CaxtonError('payload_too_large', `entity ${w.name} (scope ${scope}) would hold ${observations.length} observations, more than the ${this.limits.max_observations} allowed`, {
              entityName: w.name,
            });
          }
          const final: EntityWrite = { ...w, observations, metadata: { ...cur.metadata, ...w.metadata } };
          const changed = observations.length !== cur.observations.length || w.entityType !== cur.entityType;
          plan.push({ write: w, row, final, changed: changed || JSON.stringify(final.metadata) !== JSON.stringify(cur.metadata) });
        }
      }
      const toEmbed = plan.filter((p) => p.changed && (!p.row || p.final.observations.length !== JSON.parse(p.row.observations).length || p.final.entityType !== p.row.entity_type));
      const vectors: Float32Array[] = [];
      for (const batch of chunks(toEmbed, EMBED_BATCH)) {
        vectors.push(...(await this.#embed(batch.map((p) => entityText(p.final)))));
        onProgress?.(vectors.length, toEmbed.length);
      }
      if (toEmbed.length === 0) onProgress?.(0, 0);
      const vectorOf = new Map(toEmbed.map((p, i) => [p, vectors[i]!]));
      const now = new Date().toISOString();
      const indexed: { id: number; scope: string; type: string; v?: Float32Array }[] = [];
      let created = 0;
      let updated = 0;
      let relCreated = 0;
      this.db.transaction(() => {
        const ins = this.db.prepare('INSERT INTO memory_entities (scope, name, entity_type, observations, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
        const upd = this.db.prepare('UPDATE memory_entities SET entity_type = ?, observations = ?, metadata = ?, updated_at = ? WHERE id = ?');
        for (const p of plan) {
          if (!p.changed) continue;
          const f = p.final;
          const v = vectorOf.get(p);
          let id: number;
          if (!p.row) {
            id = Number(ins.run(f.scope, f.name, f.entityType, JSON.stringify(f.observations), JSON.stringify(f.metadata), f.created_at ?? now, f.updated_at ?? now).lastInsertRowid);
            created++;
          } else {
            id = p.row.id;
            upd.run(f.entityType, JSON.stringify(f.observations), JSON.stringify(f.metadata), now, id);
            updated++;
          }
          this.#putFts(id, f, p.row !== undefined);
          if (v) this.#putVector(id, v);
          indexed.push({ id, scope: f.scope, type: f.entityType, ...(v && { v }) });
        }
        const rel = this.db.prepare('INSERT OR IGNORE INTO memory_relations (scope, from_name, to_name, relation_type, created_at) VALUES (?, ?, ?, ?, ?)');
        for (const r of relations) relCreated += rel.run(r.scope, r.from, r.to, r.relationType, now).changes;
      })();
      for (const x of indexed) {
        if (x.v) this.#index!.set(x.id, x.scope, x.type, x.v);
        else this.#index!.setType(x.id, x.type);
      }
      return { entities_created: created, entities_updated: updated, relations_created: relCreated };
    });
  }

  /** Deletes everything in `scopes` (one transaction). */
  clear(scopes: readonly string[]): Promise<number> {
    return this.#write(() => {
      if (scopes.length === 0) return 0;
      const ph = scopes.map(() => '?').join(',');
      const ids = (this.db.prepare(`SELECT id FROM memory_entities WHERE scope IN (${ph})`).all(...scopes) as { id: number }[]).map((r) => r.id);
      this.db.transaction(() => {
        this.db.prepare(`DELETE FROM memory_fts WHERE rowid IN (SELECT id FROM memory_entities WHERE scope IN (${ph}))`).run(...scopes);
        this.db.prepare(`DELETE FROM memory_embeddings WHERE entity_id IN (SELECT id FROM memory_entities WHERE scope IN (${ph}))`).run(...scopes);
        this.db.prepare(`DELETE FROM memory_entities WHERE scope IN (${ph})`).run(...scopes);
        this.db.prepare(`DELETE FROM memory_relations WHERE scope IN (${ph})`).run(...scopes);
      })();
      for (const id of ids) this.#index!.delete(id);
      return ids.length;
    });
  }

  async scopes(): Promise<string[]> {
    return this.db.prepare('SELECT scope FROM memory_entities UNION SELECT scope FROM memory_relations ORDER BY 1').pluck().all() as string[];
  }

  async countEntities(): Promise<number> {
    return this.db.prepare('SELECT count(*) FROM memory_entities').pluck().get() as number;
  }

  async stats(): Promise<MemoryStats> {
    const by = this.db.prepare('SELECT scope, count(*) AS n, coalesce(sum(json_array_length(observations)), 0) AS o FROM memory_entities GROUP BY scope').all() as {
      scope: string;
      n: number;
      o: number;
    }[];
    const rels = this.db.prepare('SELECT scope, count(*) AS n FROM memory_relations GROUP BY scope').all() as { scope: string; n: number }[];
    const stats: MemoryStats = {
      ...countsByScope(by, rels),
      embedding: this.#embedder && this.#index ? { model: this.#embedder.model, dimensions: this.#embedder.dimensions, indexed: this.#index.size, ann: this.annStatus() } : null,
    };
    try {
      if (this.db.name && this.db.name !== ':memory:') stats.database_bytes = statSync(this.db.name).size;
    } catch {
      // no file size (a temporary database)
    }
    return stats;
  }

  /** The in-process vector index, once loaded (benchmarks and diagnostics). */
  get vectorIndex(): VectorIndex | undefined {
    return this.#index;
  }

  /** Waits for pending writes, then refuses new ones, saves the HNSW graph if it changed; closes the embedder when the store created it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#lock;
    this.#closed = true;
    try {
      if (this.db.open) this.#saveGraph();
    } catch (err) {
      this.#log?.warn({ err, file: this.#annPath }, 'memory: saving the HNSW graph at close failed; it is rebuilt or repaired at the next start');
    }
    this.#index?.dispose();
    if (typeof this.#embedderSource === 'function') await this.#embedder?.close();
  }
}
