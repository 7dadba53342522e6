/**
 * The graph's storage on the data dir's SQLite: entity rows, an FTS5 index of their words,
 * vectors in `memory_embeddings` and in an in-process vector index (exact for small sets, an HNSW
 * graph from ANN_MIN_VECTORS on, saved to `memory.usearch`; see ADR 0010).
 *
 * Consistency: a write's change set is ONE SQLite transaction, entity rows, FTS rows and vectors
 * together, so a crash never leaves a half-written operation visible; the in-process index is
 * updated in the same tick, after the commit. The graph serializes writes, so the rows a write
 * decided from are still current when it commits. The index is built from SQLite at open();
 * vectors of another model or dimension are re-embedded then, never mixed.
 *
 * One storage per database: the in-process index assumes no other process writes the memory tables.
 */
import { statSync } from 'node:fs';
import { checkAnnFile, saveAnnFile } from './ann-file.js';
import type { Embedder } from './embedding/index.js';
import type { Db } from '../storage/index.js';
import type { Statement } from 'better-sqlite3';
import { toRelation } from './storage.js';
import type {
  Applied,
  Changes,
  Decision,
  EmbedTexts,
  EntityColumns,
  EntityRecord,
  MemoryStorage,
  RelationColumns,
  StorageOpen,
  StorageReader,
} from './storage.js';
import { chunks, dot, RARE_TERM_DOCS } from './text.js';
import type { Entity, StoredEntity } from './types.js';
import { blobToVector, VectorIndex, vectorToBlob, type AnnRepair } from './vector-index.js';

export interface SqliteStorageOptions {
  /** Where the HNSW graph is saved (with its sidecar `<path>.json`); null: never saved (rebuilt at every start). */
  annPath: string | null;
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

type EntityRow = EntityColumns<number, string, string>;
type RelationRow = RelationColumns;

/** Rows per lookup by name or id (SQLite's bound parameters). */
const READ_CHUNK = 500;
const REL_COLS = 'scope, from_name, to_name, relation_type';

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

const record = (r: EntityRow): EntityRecord<number> => ({ id: r.id, entity: toEntity(r) });
const placeholders = (xs: readonly unknown[]) => xs.map(() => '?').join(',');

export class SqliteStorage implements MemoryStorage<number> {
  readonly rareTermDocs = RARE_TERM_DOCS;
  readonly db: Db;
  #embedder: Embedder | undefined;
  #index: VectorIndex | undefined;
  #exclusive: StorageOpen<number>['exclusive'] | undefined;
  #closed = false;
  readonly #annPath: string | null;
  readonly #annMin: number | undefined;
  readonly #log: SqliteStorageOptions['log'];
  #annSource: Pick<AnnStatus, 'source' | 'reason' | 'repaired' | 'load_ms'> = { source: 'none' };
  #savedSeq: number | null = null;
  #savePending = false;
  #outStmt: Statement | undefined;
  #inStmt: Statement | undefined;

  constructor(db: Db, opts: SqliteStorageOptions) {
    this.db = db;
    this.#annPath = opts.annPath;
    this.#annMin = opts.annMinVectors;
    this.#log = opts.log;
  }

  /** The in-process vector index, once loaded (benchmarks and diagnostics). */
  get vectorIndex(): VectorIndex | undefined {
    return this.#index;
  }

  async open(ctx: StorageOpen<number>): Promise<void> {
    const { embedder } = ctx;
    this.#embedder = embedder;
    this.#exclusive = ctx.exclusive;
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
      .iterate() as IterableIterator<{
      id: number;
      scope: string;
      entity_type: string;
      model: string | null;
      dimensions: number | null;
      vector: Buffer | null;
    }>;
    for (const r of rows) {
      if (
        r.model === embedder.model &&
        r.dimensions === embedder.dimensions &&
        r.vector &&
        r.vector.byteLength === embedder.dimensions * 4
      ) {
        index.set(r.id, r.scope, r.entity_type, blobToVector(r.vector));
      } else stale.push(r.id);
    }
    this.#index = index;
    if (stale.length > 0) {
      const get = this.db.prepare('SELECT * FROM memory_entities WHERE id = ?');
      await ctx.reembed(
        stale,
        async (batch) =>
          batch
            .map((id) => get.get(id) as EntityRow | undefined)
            .filter((r): r is EntityRow => r !== undefined)
            .map(record),
        async (rows, vectors) => {
          this.db.transaction(() => rows.forEach((r, i) => this.#putVector(r.id, vectors[i]!)))();
          rows.forEach((r, i) => index.set(r.id, r.entity.scope, r.entity.entityType, vectors[i]!));
        },
      );
    }
    this.#adoptSavedGraph(index, embedder);
    index.release();
  }

  #indexState(): { uid: string; seq: number; log_since: number } {
    return this.db.prepare('SELECT uid, seq, log_since FROM memory_index_state WHERE id = 1').get() as {
      uid: string;
      seq: number;
      log_since: number;
    };
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
    const check = checkAnnFile(path, {
      db_uid: state.uid,
      seq: state.seq,
      log_since: state.log_since,
      model: embedder.model,
      dimensions: embedder.dimensions,
    });
    let reason: string;
    if (check.ok) {
      const changes = this.db
        .prepare('SELECT entity_id, deleted FROM memory_vector_log WHERE seq > ?')
        .all(check.sidecar.seq) as { entity_id: number; deleted: number }[];
      try {
        const repaired = index.adoptAnn(
          path,
          changes.filter((c) => !c.deleted).map((c) => c.entity_id),
          changes.filter((c) => c.deleted).map((c) => c.entity_id),
        );
        this.#savedSeq = check.sidecar.seq;
        this.#annSource = { source: 'file', repaired, load_ms: performance.now() - t0 };
        this.#log?.info(
          {
            file: path,
            vectors: index.size,
            saved_seq: check.sidecar.seq,
            seq: state.seq,
            ...repaired,
            ms: Math.round(performance.now() - t0),
          },
          'memory: loaded the saved HNSW graph',
        );
        return;
      } catch (e) {
        reason = `the saved graph disagrees with the database: ${(e as Error).message}`;
      }
    } else reason = check.reason;
    this.#annSource = { source: 'built', reason };
    this.#log?.warn(
      { file: path, vectors: index.size, reason },
      'memory: rebuilding the HNSW graph in the background (exact search meanwhile)',
    );
  }

  /** Saves the graph soon (after pending writes), unless a save is already queued. */
  #scheduleSave(): void {
    const exclusive = this.#exclusive;
    if (this.#savePending || !this.#annPath || this.#closed || !exclusive) return;
    this.#savePending = true;
    setImmediate(() => {
      exclusive(() => {
        this.#savePending = false;
        this.#saveGraph();
      }).catch((err: unknown) => {
        this.#savePending = false;
        if (!this.#closed)
          this.#log?.warn(
            { err, file: this.#annPath },
            'memory: saving the HNSW graph failed; it is rebuilt or repaired at the next start',
          );
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

  /** Queues a save of the graph once enough vector changes are unsaved (bounds the replay at the next start). */
  afterWrite(): void {
    const index = this.#index;
    if (!this.#annPath || !index?.annComplete || this.#savePending || this.#closed) return;
    if (this.#savedSeq === null || this.#indexState().seq - this.#savedSeq >= saveAfter(index.size))
      this.#scheduleSave();
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

  #putVector(id: number, v: Float32Array): void {
    this.db
      .prepare(
        'INSERT INTO memory_embeddings (entity_id, model, dimensions, vector) VALUES (?, ?, ?, ?) ON CONFLICT (entity_id) DO UPDATE SET model = excluded.model, dimensions = excluded.dimensions, vector = excluded.vector',
      )
      .run(id, this.#embedder!.model, v.length, vectorToBlob(v));
  }

  #putFts(id: number, e: Entity, replace: boolean): void {
    if (replace) this.db.prepare('DELETE FROM memory_fts WHERE rowid = ?').run(id);
    this.db
      .prepare('INSERT INTO memory_fts (rowid, name, entity_type, observations) VALUES (?, ?, ?, ?)')
      .run(id, e.name, e.entityType, e.observations.join('\n'));
  }

  // ---- Reads ----

  async read<T>(fn: (r: StorageReader<number>) => Promise<T>): Promise<T> {
    return fn(this.#reader);
  }

  /** Relations from / to one entity (a traversal asks for many: prepared once). */
  get #outQ(): Statement {
    return (this.#outStmt ??= this.db.prepare(
      `SELECT ${REL_COLS} FROM memory_relations WHERE scope = ? AND from_name = ? ORDER BY to_name, relation_type`,
    ));
  }

  get #inQ(): Statement {
    return (this.#inStmt ??= this.db.prepare(
      `SELECT ${REL_COLS} FROM memory_relations WHERE scope = ? AND to_name = ? ORDER BY from_name, relation_type`,
    ));
  }

  #rows(scope: string, names: readonly string[]): Map<string, EntityRecord<number>> {
    const out = new Map<string, EntityRecord<number>>();
    for (const part of chunks([...new Set(names)], READ_CHUNK)) {
      const rows = this.db
        .prepare(`SELECT * FROM memory_entities WHERE scope = ? AND name IN (${placeholders(part)})`)
        .all(scope, ...part) as EntityRow[];
      for (const r of rows) out.set(r.name, record(r));
    }
    return out;
  }

  readonly #reader: StorageReader<number> = {
    entitiesByName: async (scope, names) => this.#rows(scope, names),
    entity: async (scope, name) => {
      const r = this.db.prepare('SELECT * FROM memory_entities WHERE scope = ? AND name = ?').get(scope, name) as
        EntityRow | undefined;
      return r && toEntity(r);
    },
    entities: async (scopes, pattern) => {
      const ph = placeholders(scopes);
      const rows =
        pattern === undefined
          ? this.db.prepare(`SELECT * FROM memory_entities WHERE scope IN (${ph}) ORDER BY id`).all(...scopes)
          : this.db
              .prepare(
                `SELECT * FROM memory_entities WHERE scope IN (${ph}) AND (name LIKE ? ESCAPE '\\' OR entity_type LIKE ? ESCAPE '\\' OR observations LIKE ? ESCAPE '\\') ORDER BY id`,
              )
              .all(...scopes, pattern, pattern, pattern);
      return (rows as EntityRow[]).map(toEntity);
    },
    relations: async (scopes) =>
      (
        this.db
          .prepare(
            `SELECT ${REL_COLS} FROM memory_relations WHERE scope IN (${placeholders(scopes)}) ORDER BY scope, created_at, from_name`,
          )
          .all(...scopes) as RelationRow[]
      ).map(toRelation),
    relationsTouching: async (scope, names) => {
      const ph = placeholders(names);
      return (
        this.db
          .prepare(
            `SELECT ${REL_COLS} FROM memory_relations WHERE scope = ? AND (from_name IN (${ph}) OR to_name IN (${ph}))`,
          )
          .all(scope, ...names, ...names) as RelationRow[]
      ).map(toRelation);
    },
    relationsAt: async (scope, name, side) =>
      ((side === 'out' ? this.#outQ : this.#inQ).all(scope, name) as RelationRow[]).map(toRelation),
    existingRelations: async (scope, relations) => {
      const has = this.db
        .prepare(
          'SELECT 1 FROM memory_relations WHERE scope = ? AND from_name = ? AND to_name = ? AND relation_type = ?',
        )
        .pluck();
      return relations.filter((r) => has.get(scope, r.from, r.to, r.relationType) !== undefined);
    },
    nearest: async (v, pool, scopes, type) =>
      this.#index!.search(v, pool, new Set(scopes), type).map((h) => ({ id: h.id, similarity: h.similarity })),
    termDocs: async (terms) => {
      const docs = this.db.prepare('SELECT doc FROM memory_fts_vocab WHERE term = ?').pluck();
      const out = new Map<string, number>();
      for (const t of terms) {
        const n = docs.get(t) as number | undefined;
        if (n !== undefined) out.set(t, n);
      }
      return out;
    },
    // FTS5 ranks the candidates of any term with bm25 inside its index.
    keywordCandidates: async (match, _rankBy, pool, scopes, type) => this.#keywordCandidates(match, pool, scopes, type),
    scored: async (ids, v, known) => {
      const rows: EntityRow[] = [];
      for (const part of chunks(ids, READ_CHUNK))
        rows.push(
          ...(this.db
            .prepare(`SELECT * FROM memory_entities WHERE id IN (${placeholders(part)})`)
            .all(...part) as EntityRow[]),
        );
      return rows.map((r) => {
        let similarity = known.get(r.id);
        if (similarity === undefined && v) {
          const stored = this.#index!.vector(r.id);
          similarity = stored ? dot(stored, v) : 0;
        }
        return { entity: toEntity(r), similarity: similarity ?? 0 };
      });
    },
  };

  /** Keyword candidates: FTS5 matches of the terms (any of them ranked by bm25, or all of them). */
  #keywordCandidates(
    match: { terms: readonly string[]; every: boolean },
    pool: number,
    scopes: readonly string[],
    type: string | undefined,
  ): number[] {
    const expr = match.terms.map((t) => `"${t}"`).join(match.every ? ' AND ' : ' OR ');
    return this.db
      .prepare(
        `SELECT e.id FROM memory_fts f JOIN memory_entities e ON e.id = f.rowid
          WHERE memory_fts MATCH ? AND e.scope IN (${placeholders(scopes)}) ${type !== undefined ? 'AND e.entity_type = ?' : ''}
          ${match.every ? '' : 'ORDER BY bm25(memory_fts)'} LIMIT ?`,
      )
      .pluck()
      .all(expr, ...scopes, ...(type !== undefined ? [type] : []), pool) as number[];
  }

  // ---- Writes ----

  /** The graph serializes writes and nothing else writes these tables: the rows `decide` read are current at commit. */
  async write<R>(
    decide: (r: StorageReader<number>) => Promise<Decision<number, R>>,
    embed: EmbedTexts,
    progress?: (done: number, total: number) => void,
  ): Promise<R> {
    const d = await decide(this.#reader);
    const vectors = await embed(d.texts, progress);
    return d.result(this.#apply(d.changes((t) => vectors.get(t)!)));
  }

  /** Applies a change set in ONE transaction, then updates the in-process index (same tick). */
  #apply(c: Changes<number>): Applied {
    const applied: Applied = { relationsCreated: 0, entitiesDeleted: 0, relationsDeleted: 0, cleared: 0 };
    const indexed: { id: number; scope: string; type: string; v: Float32Array | null }[] = [];
    const removed: number[] = [];
    this.db.transaction(() => {
      const ins = this.db.prepare(
        'INSERT INTO memory_entities (scope, name, entity_type, observations, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      );
      for (const x of c.insert ?? []) {
        const e = x.entity;
        const id = Number(
          ins.run(
            e.scope,
            e.name,
            e.entityType,
            JSON.stringify(e.observations),
            JSON.stringify(e.metadata),
            x.created_at,
            x.updated_at,
          ).lastInsertRowid,
        );
        this.#putFts(id, e, false);
        this.#putVector(id, x.vector);
        indexed.push({ id, scope: e.scope, type: e.entityType, v: x.vector });
      }
      const upd = this.db.prepare(
        'UPDATE memory_entities SET entity_type = ?, observations = ?, metadata = ?, updated_at = ? WHERE id = ?',
      );
      for (const x of c.update ?? []) {
        const e = x.entity;
        upd.run(e.entityType, JSON.stringify(e.observations), JSON.stringify(e.metadata), x.updated_at, x.id);
        this.#putFts(x.id, e, true);
        if (x.vector) this.#putVector(x.id, x.vector);
        indexed.push({ id: x.id, scope: e.scope, type: e.entityType, v: x.vector });
      }
      if (c.relations) {
        const rel = this.db.prepare(
          'INSERT OR IGNORE INTO memory_relations (scope, from_name, to_name, relation_type, created_at) VALUES (?, ?, ?, ?, ?)',
        );
        const now = new Date().toISOString();
        for (const r of c.relations)
          applied.relationsCreated += rel.run(r.scope, r.from, r.to, r.relationType, now).changes;
      }
      if (c.deleteEntities) {
        const { scope, names } = c.deleteEntities;
        for (const { id } of this.#rows(scope, names).values()) {
          this.db.prepare('DELETE FROM memory_embeddings WHERE entity_id = ?').run(id);
          this.db.prepare('DELETE FROM memory_fts WHERE rowid = ?').run(id);
          this.db.prepare('DELETE FROM memory_entities WHERE id = ?').run(id);
          removed.push(id);
        }
        applied.entitiesDeleted = removed.length;
        const del = this.db.prepare('DELETE FROM memory_relations WHERE scope = ? AND (from_name = ? OR to_name = ?)');
        for (const n of names) del.run(scope, n, n);
      }
      if (c.deleteRelations) {
        const del = this.db.prepare(
          'DELETE FROM memory_relations WHERE scope = ? AND from_name = ? AND to_name = ? AND relation_type = ?',
        );
        for (const r of c.deleteRelations.relations)
          applied.relationsDeleted += del.run(c.deleteRelations.scope, r.from, r.to, r.relationType).changes;
      }
      if (c.clear) {
        const scopes = c.clear;
        const ph = placeholders(scopes);
        const ids = this.db
          .prepare(`SELECT id FROM memory_entities WHERE scope IN (${ph})`)
          .pluck()
          .all(...scopes) as number[];
        this.db
          .prepare(`DELETE FROM memory_fts WHERE rowid IN (SELECT id FROM memory_entities WHERE scope IN (${ph}))`)
          .run(...scopes);
        this.db
          .prepare(
            `DELETE FROM memory_embeddings WHERE entity_id IN (SELECT id FROM memory_entities WHERE scope IN (${ph}))`,
          )
          .run(...scopes);
        this.db.prepare(`DELETE FROM memory_entities WHERE scope IN (${ph})`).run(...scopes);
        this.db.prepare(`DELETE FROM memory_relations WHERE scope IN (${ph})`).run(...scopes);
        removed.push(...ids);
        applied.cleared = ids.length;
      }
    })();
    const index = this.#index!;
    for (const x of indexed) {
      if (x.v) index.set(x.id, x.scope, x.type, x.v);
      else index.setType(x.id, x.type);
    }
    for (const id of removed) index.delete(id);
    return applied;
  }

  // ---- Administration ----

  async scopes(): Promise<string[]> {
    return this.db
      .prepare('SELECT scope FROM memory_entities UNION SELECT scope FROM memory_relations ORDER BY 1')
      .pluck()
      .all() as string[];
  }

  async countEntities(): Promise<number> {
    return this.db.prepare('SELECT count(*) FROM memory_entities').pluck().get() as number;
  }

  async stats(): ReturnType<MemoryStorage<number>['stats']> {
    const entities = this.db
      .prepare(
        'SELECT scope, count(*) AS n, coalesce(sum(json_array_length(observations)), 0) AS o FROM memory_entities GROUP BY scope',
      )
      .all() as {
      scope: string;
      n: number;
      o: number;
    }[];
    const relations = this.db.prepare('SELECT scope, count(*) AS n FROM memory_relations GROUP BY scope').all() as {
      scope: string;
      n: number;
    }[];
    const embedder = this.#embedder;
    const index = this.#index;
    const embedding =
      embedder && index
        ? { model: embedder.model, dimensions: embedder.dimensions, indexed: index.size, ann: this.annStatus() }
        : null;
    let database_bytes: number | undefined;
    try {
      if (this.db.name && this.db.name !== ':memory:') database_bytes = statSync(this.db.name).size;
    } catch {
      // no file size (a temporary database)
    }
    return { entities, relations, embedding, ...(database_bytes !== undefined && { database_bytes }) };
  }

  /** Saves the HNSW graph if it changed (the graph's writes have finished), then frees the index. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (this.db.open) this.#saveGraph();
    } catch (err) {
      this.#log?.warn(
        { err, file: this.#annPath },
        'memory: saving the HNSW graph at close failed; it is rebuilt or repaired at the next start',
      );
    }
    this.#index?.dispose();
  }
}
