/**
 * The knowledge graph's rules, once, over a storage (storage.ts): the nine operations of the MCP
 * reference memory server (per scope), semantic / keyword / hybrid search, traversal, imports
 * (merge) and stats. What is new, what is a duplicate, how observations and metadata merge, the
 * limits and their messages, the search plan and ranking (text.ts) are decided here; the storage
 * stores and finds rows, applies a change set in one transaction and brings search candidates.
 *
 * Consistency: writes of one graph are serialized (one at a time); each is one storage write, so
 * a failure or a crash changes nothing. Embedding is asynchronous and slow, so a write decides
 * from the current rows what to embed, embeds it, then the storage commits (see
 * MemoryStorage.write). `ready()` loads the embedder and opens the storage (re-embedding vectors
 * of another model, never mixing them).
 */
import type { MemoryBackend, MemoryBackendKind } from './backend.js';
import type { Embedder } from './embedding/index.js';
import { CaxtonError } from '../shared/errors.js';
import type { Decision, EmbedTexts, EntityRecord, MemoryStorage, StorageReader } from './storage.js';
import {
  chunks,
  countsByScope,
  EMBED_BATCH,
  entityText,
  foldDuplicates,
  MAX_EMBED_CHARS,
  planSearch,
  rankHits,
  traverseGraph,
  type SearchPlan,
} from './text.js';
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
import { DEFAULT_LIMITS, type MemoryLimits } from './memory-validate.js';

/** What every graph takes, whatever its storage. */
export interface MemoryGraphOptions {
  /** The embedder, or a function that creates it on first use (the local model takes ~0.2-0.7 s and ~150 MB to load). */
  embedder: Embedder | (() => Promise<Embedder>);
  limits?: Partial<MemoryLimits>;
  /** How much keyword matches raise a hybrid score: score = cos + w · keyword · (1 − cos). Default 0.3. */
  keyword_weight?: number;
  /** Told about re-embedding progress when the model changed (done, total). */
  onReindex?: (done: number, total: number) => void;
}

/** Relations whose endpoints are looked up per statement. */
const TOUCH_CHUNK = 400;
const relationKey = (r: Relation) => JSON.stringify([r.from, r.to, r.relationType]);

export class MemoryGraph<Id> implements MemoryBackend {
  readonly kind: MemoryBackendKind;
  readonly limits: MemoryLimits;
  readonly keywordWeight: number;
  readonly #storage: MemoryStorage<Id>;
  readonly #embedderSource: MemoryGraphOptions['embedder'];
  readonly #onReindex: MemoryGraphOptions['onReindex'];
  #embedder: Embedder | undefined;
  #ready: Promise<void> | undefined;
  #lock: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(kind: MemoryBackendKind, storage: MemoryStorage<Id>, opts: MemoryGraphOptions) {
    this.kind = kind;
    this.#storage = storage;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.keywordWeight = opts.keyword_weight ?? 0.3;
    this.#embedderSource = opts.embedder;
    this.#onReindex = opts.onReindex;
  }

  /** The embedder's model, once ready. */
  get model(): string | undefined {
    return this.#embedder?.model;
  }

  /** Loads the embedder and opens the storage (re-embedding what another model produced). Idempotent. */
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
    await this.#storage.open({
      embedder,
      exclusive: (fn) => this.#exclusive(fn),
      reembed: async (ids, load, save) => {
        let done = 0;
        for (const batch of chunks(ids, EMBED_BATCH)) {
          const rows = await load(batch);
          await save(rows, await this.#embed(rows.map((r) => entityText(r.entity))));
          done += batch.length;
          this.#onReindex?.(done, ids.length);
        }
      },
    });
  }

  async #embed(texts: readonly string[]): Promise<Float32Array[]> {
    if (texts.length === 0) return [];
    const out: Float32Array[] = [];
    for (const batch of chunks(texts, EMBED_BATCH)) out.push(...(await this.#embedder!.embed(batch)));
    return out;
  }

  readonly #embedTexts: EmbedTexts = async (texts, progress) => {
    const out = new Map<string, Float32Array>();
    let done = 0;
    for (const batch of chunks(texts, EMBED_BATCH)) {
      const vs = await this.#embed(batch);
      batch.forEach((t, i) => out.set(t, vs[i]!));
      done += batch.length;
      progress?.(done, texts.length);
    }
    if (texts.length === 0) progress?.(0, 0);
    return out;
  };

  async similarity(a: string, b: string): Promise<number> {
    await this.ready();
    const [x, y] = await this.#embed([a.slice(0, MAX_EMBED_CHARS), b.slice(0, MAX_EMBED_CHARS)]);
    let dot = 0;
    let nx = 0;
    let ny = 0;
    for (let i = 0; i < x!.length; i++) {
      dot += x![i]! * y![i]!;
      nx += x![i]! * x![i]!;
      ny += y![i]! * y![i]!;
    }
    return nx === 0 || ny === 0 ? 0 : dot / Math.sqrt(nx * ny);
  }

  /** The vector of a search query (its first MAX_EMBED_CHARS characters). Needs ready(). */
  protected async embedQuery(query: string): Promise<Float32Array> {
    return (await this.#embed([query.slice(0, MAX_EMBED_CHARS)]))[0]!;
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

  async #write<R>(
    decide: (r: StorageReader<Id>) => Promise<Decision<Id, R>>,
    progress?: (done: number, total: number) => void,
  ): Promise<R> {
    await this.ready();
    const out = await this.#exclusive(() => this.#storage.write(decide, this.#embedTexts, progress));
    this.#storage.afterWrite?.();
    return out;
  }

  // ---- The reference server's operations ----

  /** Creates the entities whose name is new in `scope`; returns those created (existing names are left alone, as the reference server does). */
  createEntities(scope: string, entities: EntityInput[]): Promise<Entity[]> {
    return this.#write(async (r) => {
      const existing = await r.entitiesByName(
        scope,
        entities.map((e) => e.name),
      );
      const seen = new Set<string>();
      const fresh = entities.filter((e) => !existing.has(e.name) && !seen.has(e.name) && seen.add(e.name));
      const created = fresh.map((e) => ({
        name: e.name,
        entityType: e.entityType,
        observations: [...new Set(e.observations)],
      }));
      return {
        texts: created.map(entityText),
        changes: (vectorOf) => {
          const now = new Date().toISOString();
          return {
            insert: created.map((e, i) => ({
              entity: { ...e, scope, metadata: fresh[i]!.metadata ?? {} },
              created_at: now,
              updated_at: now,
              vector: vectorOf(entityText(e)),
            })),
          };
        },
        result: () => created,
      };
    });
  }

  /** Creates the relations not already present in `scope`; returns those created. */
  createRelations(scope: string, relations: Relation[]): Promise<Relation[]> {
    return this.#write(async (r) => {
      const existing = new Set((await r.existingRelations(scope, relations)).map(relationKey));
      const created: Relation[] = [];
      for (const rel of relations) {
        const k = relationKey(rel);
        if (existing.has(k)) continue;
        existing.add(k);
        created.push({ from: rel.from, to: rel.to, relationType: rel.relationType });
      }
      return {
        texts: [],
        changes: () => ({ relations: created.map((x) => ({ ...x, scope })) }),
        result: () => created,
      };
    });
  }

  /** Adds observations to existing entities (an unknown entity fails the whole call: nothing changes). */
  addObservations(
    scope: string,
    additions: ObservationAddition[],
  ): Promise<{ entityName: string; addedObservations: string[] }[]> {
    return this.#write(async (r) => {
      const rows = await r.entitiesByName(
        scope,
        additions.map((a) => a.entityName),
      );
      const missing = additions.find((a) => !rows.has(a.entityName));
      if (missing)
        throw new CaxtonError('not_found', `Entity with name ${missing.entityName} not found in scope ${scope}`, {
          entityName: missing.entityName,
          scope,
        });
      const results = additions.map((a) => {
        const e = rows.get(a.entityName)!.entity;
        const added = [...new Set(a.contents)].filter((c) => !e.observations.includes(c));
        e.observations.push(...added);
        if (e.observations.length > this.limits.max_observations) {
          throw new CaxtonError(
            'payload_too_large',
            `entity ${a.entityName} would hold ${e.observations.length} observations, more than the ${this.limits.max_observations} allowed`,
            {
              entityName: a.entityName,
            },
          );
        }
        return { entityName: a.entityName, addedObservations: added };
      });
      const changed = [...new Set(results.filter((x) => x.addedObservations.length > 0).map((x) => x.entityName))];
      return this.#rewrite(
        changed.map((n) => rows.get(n)!),
        results,
      );
    });
  }

  /** Removes the given observations; unknown entities or observations are ignored. */
  deleteObservations(scope: string, deletions: ObservationDeletion[]): Promise<void> {
    return this.#write(async (r) => {
      const rows = await r.entitiesByName(
        scope,
        deletions.map((d) => d.entityName),
      );
      const changed = new Set<string>();
      for (const d of deletions) {
        const e = rows.get(d.entityName)?.entity;
        if (!e) continue;
        const before = e.observations.length;
        e.observations = e.observations.filter((o) => !d.observations.includes(o));
        if (e.observations.length !== before) changed.add(d.entityName);
      }
      return this.#rewrite(
        [...changed].map((n) => rows.get(n)!),
        undefined,
      );
    });
  }

  /** Writes the new observations (and vectors) of existing entities. */
  #rewrite<R>(items: EntityRecord<Id>[], result: R): Decision<Id, R> {
    return {
      texts: items.map((x) => entityText(x.entity)),
      changes: (vectorOf) => {
        const now = new Date().toISOString();
        return {
          update: items.map((x) => ({
            id: x.id,
            entity: x.entity,
            updated_at: now,
            vector: vectorOf(entityText(x.entity)),
          })),
        };
      },
      result: () => result,
    };
  }

  /** Deletes entities and every relation from or to them; unknown names are ignored. Returns how many entities were deleted. */
  deleteEntities(scope: string, names: string[]): Promise<number> {
    return this.#write(async () => ({
      texts: [],
      changes: () => ({ deleteEntities: { scope, names: [...new Set(names)] } }),
      result: (a) => a.entitiesDeleted,
    }));
  }

  /** Deletes relations; unknown ones are ignored. Returns how many were deleted. */
  deleteRelations(scope: string, relations: Relation[]): Promise<number> {
    return this.#write(async () => ({
      texts: [],
      changes: () => ({ deleteRelations: { scope, relations } }),
      result: (a) => a.relationsDeleted,
    }));
  }

  /** Every entity and relation of `scopes`. */
  async readGraph(scopes: readonly string[]): Promise<Graph> {
    if (scopes.length === 0) return { entities: [], relations: [] };
    return this.#storage.read(async (r) => ({
      entities: await r.entities(scopes),
      relations: await r.relations(scopes),
    }));
  }

  /** The reference server's search: entities whose name, type or an observation contains `query` (case-insensitive), with their relations. */
  async searchNodes(scopes: readonly string[], query: string): Promise<Graph> {
    if (scopes.length === 0) return { entities: [], relations: [] };
    const q = query.toLowerCase();
    // The storages' LIKE folds ASCII case only, and observations are JSON text: prefilter only when that is exact.
    const pattern =
      /^[\x20-\x7e]*$/.test(query) && !/["\\]/.test(query) ? `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : undefined;
    return this.#storage.read(async (r) => {
      const rows = await r.entities(scopes, pattern);
      const entities = rows.filter(
        (e) =>
          e.name.toLowerCase().includes(q) ||
          e.entityType.toLowerCase().includes(q) ||
          e.observations.some((o) => o.toLowerCase().includes(q)),
      );
      return { entities, relations: await this.#relationsTouching(r, entities) };
    });
  }

  /** The named entities of `scopes`, with every relation from or to them. */
  openNodes(scopes: readonly string[], names: readonly string[]): Promise<Graph> {
    return this.#storage.read(async (r) => {
      const entities: StoredEntity[] = [];
      for (const s of scopes) {
        const rows = await r.entitiesByName(s, names);
        for (const n of names) {
          const x = rows.get(n);
          if (x) {
            entities.push(x.entity);
            rows.delete(n);
          }
        }
      }
      return { entities, relations: await this.#relationsTouching(r, entities) };
    });
  }

  /** Relations of the entities' scopes with at least one endpoint among them. */
  relationsTouching(entities: readonly Pick<StoredEntity, 'scope' | 'name'>[]): Promise<StoredRelation[]> {
    return this.#storage.read((r) => this.#relationsTouching(r, entities));
  }

  /** Per scope and chunk of names in the storage's order, each relation once. */
  async #relationsTouching(
    r: StorageReader<Id>,
    entities: readonly Pick<StoredEntity, 'scope' | 'name'>[],
  ): Promise<StoredRelation[]> {
    const byScope = new Map<string, string[]>();
    for (const e of entities) byScope.set(e.scope, [...(byScope.get(e.scope) ?? []), e.name]);
    const out: StoredRelation[] = [];
    const seen = new Set<string>();
    for (const [scope, names] of byScope) {
      for (const part of chunks(names, TOUCH_CHUNK)) {
        for (const rel of await r.relationsTouching(scope, part)) {
          const key = JSON.stringify([rel.scope, rel.from, rel.to, rel.relationType]);
          if (!seen.has(key)) {
            seen.add(key);
            out.push(rel);
          }
        }
      }
    }
    return out;
  }

  getEntity(scope: string, name: string): Promise<StoredEntity | undefined> {
    return this.#storage.read((r) => r.entity(scope, name), { snapshot: false });
  }

  // ---- Search and traversal ----

  /** Semantic, keyword or hybrid (default) search over `scopes`, best first. */
  async search(q: SearchQuery): Promise<SearchHit[]> {
    const plan = planSearch(q);
    if (q.scopes.length === 0) return [];
    await this.ready();
    const qv = plan.mode !== 'keyword' ? await this.embedQuery(q.query) : undefined;
    return this.#storage.read(async (r) => {
      const known = new Map<Id, number>();
      const ids = new Set<Id>();
      if (qv) {
        for (const h of await r.nearest(qv, plan.pool, q.scopes, q.entity_type)) {
          ids.add(h.id);
          if (h.similarity !== undefined) known.set(h.id, h.similarity);
        }
      }
      if (plan.mode !== 'semantic' && plan.terms.length > 0)
        for (const id of await this.#keywordCandidates(r, plan, q)) ids.add(id);
      if (ids.size === 0) return [];
      return rankHits(plan, this.keywordWeight, await r.scored([...ids], qv, known));
    });
  }

  /**
   * Entities matching the query's words, at a cost bounded by the storage's rareTermDocs rather
   * than by its size: the terms found in at most that many entities bring candidates (any of them,
   * best first); when every term is more common, entities holding all of them do (the first found:
   * each has the highest keyword score anyway). Common terms still count in the score.
   */
  async #keywordCandidates(r: StorageReader<Id>, plan: SearchPlan, q: SearchQuery): Promise<Id[]> {
    const docs = await r.termDocs(plan.terms);
    const present = plan.terms.filter((t) => (docs.get(t) ?? 0) > 0);
    if (present.length === 0) return [];
    const rare = present.filter((t) => docs.get(t)! <= this.#storage.rareTermDocs);
    const match = rare.length > 0 ? { terms: rare, every: false } : { terms: present, every: true };
    return r.keywordCandidates(match, plan.terms, plan.pool, q.scopes, q.entity_type);
  }

  /** Breadth-first walk from `from` along relations (of the given types), up to `max_depth` hops. */
  traverse(q: TraverseQuery): Promise<TraverseResult> {
    return this.#storage.read((r) =>
      traverseGraph(
        {
          getEntity: (scope, name) => r.entity(scope, name),
          relations: (scope, name, side) => r.relationsAt(scope, name, side),
          entities: async (scope, names) => [...(await r.entitiesByName(scope, names)).values()].map((x) => x.entity),
        },
        q,
      ),
    );
  }

  // ---- Bulk writes (imports) ----

  /**
   * Merges entities and relations in ONE transaction: new entities are created; for existing ones
   * observations are added (no duplicates), metadata merged and the type replaced. Everything is
   * embedded before the transaction starts, so a failure (bad input, embedder error, crash)
   * changes nothing. `onProgress` follows the embedding (done, total).
   */
  merge(
    entities: EntityWrite[],
    relations: StoredRelation[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<MergeResult> {
    type Item = { row?: EntityRecord<Id>; final: EntityWrite; changed: boolean; embed: boolean };
    return this.#write(async (r) => {
      const items = foldDuplicates(entities);
      const byScope = new Map<string, EntityWrite[]>();
      for (const e of items) byScope.set(e.scope, [...(byScope.get(e.scope) ?? []), e]);
      const plan: Item[] = [];
      for (const [scope, list] of byScope) {
        const rows = await r.entitiesByName(
          scope,
          list.map((e) => e.name),
        );
        for (const w of list) {
          const row = rows.get(w.name);
          if (!row) {
            plan.push({ final: w, changed: true, embed: true });
            continue;
          }
          const cur = row.entity;
          const observations = [...cur.observations, ...w.observations.filter((o) => !cur.observations.includes(o))];
          if (observations.length > this.limits.max_observations) {
            throw new CaxtonError(
              'payload_too_large',
              `entity ${w.name} (scope ${scope}) would hold ${observations.length} observations, more than the ${this.limits.max_observations} allowed`,
              {
                entityName: w.name,
              },
            );
          }
          const final: EntityWrite = { ...w, observations, metadata: { ...cur.metadata, ...w.metadata } };
          const embed = observations.length !== cur.observations.length || w.entityType !== cur.entityType;
          plan.push({
            row,
            final,
            changed: embed || JSON.stringify(final.metadata) !== JSON.stringify(cur.metadata),
            embed,
          });
        }
      }
      const fresh = plan.filter((p) => !p.row);
      const changed = plan.filter((p) => p.row && p.changed);
      return {
        texts: plan.filter((p) => p.embed).map((p) => entityText(p.final)),
        changes: (vectorOf) => {
          const now = new Date().toISOString();
          return {
            insert: fresh.map((p) => ({
              entity: p.final,
              created_at: p.final.created_at ?? now,
              updated_at: p.final.updated_at ?? now,
              vector: vectorOf(entityText(p.final)),
            })),
            update: changed.map((p) => ({
              id: p.row!.id,
              entity: p.final,
              updated_at: now,
              vector: p.embed ? vectorOf(entityText(p.final)) : null,
            })),
            relations,
          };
        },
        result: (a) => ({
          entities_created: fresh.length,
          entities_updated: changed.length,
          relations_created: a.relationsCreated,
        }),
      };
    }, onProgress);
  }

  /** Deletes everything in `scopes` (one transaction); returns how many entities. */
  clear(scopes: readonly string[]): Promise<number> {
    return this.#write(async () => ({
      texts: [],
      changes: () => (scopes.length === 0 ? {} : { clear: scopes }),
      result: (a) => a.cleared,
    }));
  }

  scopes(): Promise<string[]> {
    return this.#storage.scopes();
  }

  countEntities(): Promise<number> {
    return this.#storage.countEntities();
  }

  async stats(): Promise<MemoryStats> {
    const s = await this.#storage.stats();
    return {
      ...countsByScope(s.entities, s.relations),
      embedding: s.embedding,
      ...(s.database_bytes !== undefined && { database_bytes: s.database_bytes }),
    };
  }

  /** Waits for pending writes, then refuses new ones and closes the storage; closes the embedder when the graph created it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#lock;
    this.#closed = true;
    await this.#storage.close();
    if (typeof this.#embedderSource === 'function') await this.#embedder?.close();
  }
}
