/**
 * The scale-out memory backend: the knowledge graph in PostgreSQL, vectors in pgvector with an
 * HNSW index inside the database. Same operations, results, errors and ordering as the SQLite
 * store (store.ts); the shared logic (entity text, keyword words, hybrid ranking, traversal) is
 * text.ts. See docs/adr/0012-memory-postgres.md.
 *
 * Consistency: every write is ONE transaction that first takes a transaction-level advisory lock
 * per schema (`pg_advisory_xact_lock`), so the writes of every instance on a schema are
 * serialized, as SQLite serializes its writers. Embedding is slow, so a write reads the current
 * rows and embeds what it will change BEFORE the transaction; inside it, under the lock, it reads
 * them again and embeds anything that changed meanwhile (another instance wrote), then writes.
 * A failure or a crash at any point leaves the previous state. Reads of several statements run
 * in one REPEATABLE READ snapshot.
 *
 * `ready()` (and the first read) prepare the schema under a session advisory lock, so instances
 * starting together take turns: extension, migrations, the vector column's dimension, the HNSW
 * index, and vectors of another model re-embedded in batches (never mixed: searches only use
 * vectors of the current model). Every instance on a schema must use the same embedding model.
 */
import pg from 'pg';
import type { MemoryBackend } from './backend.js';
import type { Embedder } from './embedding/index.js';
import { CaxtonError } from '../shared/errors.js';
import { checkSchemaName, DEFAULT_PG_SCHEMA, ensureVectorExtension, hasIterativeScan, HNSW_INDEX, ident, lockName, migrate, type Queryable } from './pg-schema.js';
import { chunks, EMBED_BATCH, entityText, entityWords, foldDuplicates, MAX_EMBED_CHARS, countsByScope, planSearch, rankHits, traverseGraph, type SearchPlan } from './text.js';
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

export interface PgMemoryStoreOptions {
  /** A PostgreSQL connection string (the store creates and ends its pool). Either this or `pool`. */
  url?: string;
  /** A pool to use (left open by close()). */
  pool?: pg.Pool;
  /** The schema holding the store's tables (default `caxton_memory`); created when missing. */
  schema?: string;
  /** The embedder, or a function that creates it on first use. */
  embedder: Embedder | (() => Promise<Embedder>);
  limits?: Partial<MemoryLimits>;
  /** How much keyword matches raise a hybrid score: score = cos + w · keyword · (1 − cos). Default 0.3. */
  keyword_weight?: number;
  /** Told about re-embedding progress when the model changed (done, total). */
  onReindex?: (done: number, total: number) => void;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

interface EntityRow {
  id: string;
  scope: string;
  name: string;
  entity_type: string;
  observations: string[];
  metadata: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

interface RelationRow {
  scope: string;
  from_name: string;
  to_name: string;
  relation_type: string;
}

const COLS = 'id, scope, name, entity_type, observations, metadata, created_at, updated_at';

/**
 * Keyword search: terms held by more entities than this bring no candidates of their own. Lower
 * than SQLite's (text.ts RARE_TERM_DOCS, where FTS5 ranks with bm25 inside its index): here the
 * candidates of the rare terms are ranked by counting matching words row by row (51 ms p50 for a
 * hybrid search at 10,000 entities whose every query term was under 5,000).
 */
const PG_RARE_TERM_DOCS = 1_000;
const REL_COLS = 'scope, from_name, to_name, relation_type';
/** Rows per INSERT/UPDATE statement of a bulk write. */
const WRITE_CHUNK = 1000;
/** Rows per lookup by name or id. */
const READ_CHUNK = 5000;

function toEntity(r: EntityRow): StoredEntity {
  return { name: r.name, entityType: r.entity_type, observations: r.observations, scope: r.scope, metadata: r.metadata, created_at: r.created_at, updated_at: r.updated_at };
}

function toRelation(r: RelationRow): StoredRelation {
  return { from: r.from_name, to: r.to_name, relationType: r.relation_type, scope: r.scope };
}

/** pgvector's text form; 9 significant digits give back the same float32. */
export function vectorLiteral(v: Float32Array): string {
  let s = '[';
  for (let i = 0; i < v.length; i++) s += (i ? ',' : '') + (v[i] === 0 ? '0' : v[i]!.toPrecision(9));
  return `${s}]`;
}

/** PostgreSQL's refusals of input SQLite would store, as the caller's error. */
function inputError(err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  if (e.code === '22021' || e.code === '22P05') {
    return new CaxtonError('invalid_request', `PostgreSQL cannot store this text (${e.message}); the NUL character (U+0000) is not allowed`, undefined, { cause: err });
  }
  return err;
}

/** What a write decided from the rows it read: the texts to embed (in order) and what to apply. */
interface Decision<P> {
  texts: string[];
  plan: P;
}

export class PgMemoryStore implements MemoryBackend {
  readonly kind = 'postgres' as const;
  readonly limits: MemoryLimits;
  readonly keywordWeight: number;
  readonly schema: string;
  readonly #pool: pg.Pool;
  readonly #ownPool: boolean;
  readonly #s: string;
  readonly #embedderSource: PgMemoryStoreOptions['embedder'];
  readonly #onReindex: PgMemoryStoreOptions['onReindex'];
  readonly #log: PgMemoryStoreOptions['log'];
  #embedder: Embedder | undefined;
  /** The extension's schema (quoted), its version. */
  #vec: { schema: string; version: string } | undefined;
  #tablesReady: Promise<void> | undefined;
  #ready: Promise<void> | undefined;
  #lock: Promise<unknown> = Promise.resolve();
  readonly #pending = new Set<Promise<unknown>>();
  /** Connections whose rollback failed: destroyed on release. */
  readonly #broken = new WeakSet<pg.PoolClient>();
  #closed = false;

  constructor(opts: PgMemoryStoreOptions) {
    if (!opts.pool && !opts.url) throw new CaxtonError('invalid_config', 'the PostgreSQL memory store needs a connection url or a pool', { field: 'url' });
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.keywordWeight = opts.keyword_weight ?? 0.3;
    this.schema = checkSchemaName(opts.schema ?? DEFAULT_PG_SCHEMA);
    this.#s = ident(this.schema);
    this.#embedderSource = opts.embedder;
    this.#onReindex = opts.onReindex;
    this.#log = opts.log;
    this.#ownPool = !opts.pool;
    this.#pool = opts.pool ?? new pg.Pool({ connectionString: opts.url, application_name: 'caxton-memory' });
    if (this.#ownPool) this.#pool.on('error', (err) => this.#log?.warn({ err }, 'memory: an idle PostgreSQL connection failed'));
  }

  /** The embedder's model, once ready. */
  get model(): string | undefined {
    return this.#embedder?.model;
  }

  // ---- Schema, readiness, locking ----

  #t(table: string): string {
    return `${this.#s}.${table}`;
  }

  /** `vector` and `<=>` qualified with the extension's schema (the store never relies on search_path). */
  get #vector(): string {
    return `${this.#vec!.schema}.vector`;
  }

  get #cosine(): string {
    return `OPERATOR(${this.#vec!.schema}.<=>)`;
  }

  /** Runs `fn` on one connection holding the schema's session advisory lock (instances take turns preparing). */
  async #underReadyLock<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await c.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [lockName.ready(this.schema)]);
      try {
        return await fn(c);
      } finally {
        await c.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [lockName.ready(this.schema)]).catch((e: unknown) => (broken = e as Error));
      }
    } finally {
      c.release(broken);
    }
  }

  /** The extension and tables (no embedder needed): what reads wait for. */
  #tables(): Promise<void> {
    this.#tablesReady ??= this.#underReadyLock(async (c) => {
      this.#vec = await ensureVectorExtension(c);
      const applied = await migrate(c, this.schema, this.#vec.schema);
      if (applied.length > 0) this.#log?.info({ schema: this.schema, migrations: applied }, 'memory: PostgreSQL schema migrated');
    }).catch((e: unknown) => {
      this.#tablesReady = undefined;
      throw e;
    });
    return this.#tablesReady;
  }

  /** Loads the embedder, prepares the schema, the vector column and its HNSW index; re-embeds vectors of another model. Idempotent. */
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
    await this.#tables();
    await this.#underReadyLock(async (c) => {
      const meta = (await c.query<{ model: string | null; dimensions: number | null }>(`SELECT model, dimensions FROM ${this.#t('meta')} WHERE id = 1`)).rows[0];
      const now = new Date().toISOString();
      if (meta?.dimensions !== embedder.dimensions) {
        // Another dimension: the column's type changes, every vector is re-embedded.
        await this.#inTx(c, async () => {
          await c.query(`DROP INDEX IF EXISTS ${this.#t(HNSW_INDEX)}`);
          await c.query(`ALTER TABLE ${this.#t('entities')} ALTER COLUMN embedding TYPE ${this.#vector}(${embedder.dimensions}) USING NULL`);
          await c.query(`UPDATE ${this.#t('entities')} SET model = NULL WHERE model IS NOT NULL`);
          await c.query(`UPDATE ${this.#t('meta')} SET model = $1, dimensions = $2, updated_at = $3 WHERE id = 1`, [embedder.model, embedder.dimensions, now]);
        });
        if (meta?.dimensions != null) this.#log?.warn({ from: meta.dimensions, to: embedder.dimensions }, 'memory: embedding dimension changed; re-embedding everything');
      } else if (meta.model !== embedder.model) {
        await c.query(`UPDATE ${this.#t('meta')} SET model = $1, updated_at = $2 WHERE id = 1`, [embedder.model, now]);
        this.#log?.warn({ from: meta.model, to: embedder.model }, 'memory: embedding model changed; re-embedding everything');
      }
      const stale = (await c.query<{ id: string }>(`SELECT id FROM ${this.#t('entities')} WHERE model IS DISTINCT FROM $1 OR embedding IS NULL ORDER BY id`, [embedder.model])).rows.map((r) => r.id);
      if (stale.length > 0) await this.#reembed(c, stale);
      await c.query(`CREATE INDEX IF NOT EXISTS ${ident(HNSW_INDEX)} ON ${this.#t('entities')} USING hnsw (embedding ${this.#vec!.schema}.vector_cosine_ops)`);
    });
  }

  /**
   * Re-embeds entities whose vector is missing or of another model, in batches (each its own
   * write transaction). A row changed meanwhile by another instance is left as that write made it.
   */
  async #reembed(c: pg.PoolClient, ids: string[]): Promise<void> {
    let done = 0;
    for (const batch of chunks(ids, EMBED_BATCH)) {
      const rows = (await c.query<EntityRow>(`SELECT ${COLS} FROM ${this.#t('entities')} WHERE id = ANY($1::bigint[]) ORDER BY id`, [batch])).rows;
      const vectors = await this.#embed(rows.map((r) => entityText(toEntity(r))));
      await this.#inTx(c, async () => {
        await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [lockName.write(this.schema)]);
        await c.query(
          `UPDATE ${this.#t('entities')} e SET embedding = x.v::${this.#vector}, model = $5
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS x(id, v, t, o)
            WHERE e.id = x.id AND e.entity_type = x.t AND e.observations = x.o::jsonb`,
          [rows.map((r) => r.id), vectors.map(vectorLiteral), rows.map((r) => r.entity_type), rows.map((r) => JSON.stringify(r.observations)), this.#embedder!.model],
        );
      });
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

  async #inTx<T>(c: pg.PoolClient, fn: () => Promise<T>, begin = 'BEGIN'): Promise<T> {
    await c.query(begin);
    try {
      const out = await fn();
      await c.query('COMMIT');
      return out;
    } catch (e) {
      // A connection that cannot even roll back is not given back to the pool.
      await c.query('ROLLBACK').catch(() => this.#broken.add(c));
      throw inputError(e);
    }
  }

  /** Runs `fn` after every earlier write of this instance has finished. */
  #exclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.#lock.then(() => {
      if (this.#closed) throw new CaxtonError('not_ready', 'the memory store is closed');
      return fn();
    });
    this.#lock = run.catch(() => undefined);
    return run;
  }

  /** Tracks a read so close() waits for it. */
  #track<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new CaxtonError('not_ready', 'the memory store is closed'));
    const p = fn();
    this.#pending.add(p);
    const drop = () => this.#pending.delete(p);
    p.then(drop, drop);
    return p;
  }

  /** A read: one REPEATABLE READ snapshot on one connection. */
  #read<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.#track(async () => {
      await this.#tables();
      const c = await this.#pool.connect();
      try {
        return await this.#inTx(c, () => fn(c), 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      } finally {
        c.release(this.#broken.has(c));
      }
    });
  }

  /**
   * A write: `decide` reads the rows and says what to embed; the texts are embedded outside any
   * transaction; then, in one transaction holding the schema's write lock, `decide` runs again on
   * the current rows (texts not embedded yet are embedded now) and `apply` writes.
   */
  async #write<P, T>(
    decide: (q: Queryable) => Promise<Decision<P>>,
    apply: (c: pg.PoolClient, plan: P, vectorOf: (text: string) => string) => Promise<T>,
    onProgress?: (done: number, total: number) => void,
  ): Promise<T> {
    await this.ready();
    return this.#exclusive(async () => {
      const vectors = new Map<string, string>();
      const embedInto = async (texts: string[], progress?: typeof onProgress) => {
        let done = 0;
        for (const batch of chunks(texts, EMBED_BATCH)) {
          const vs = await this.#embed(batch);
          batch.forEach((t, i) => vectors.set(t, vectorLiteral(vs[i]!)));
          done += batch.length;
          progress?.(done, texts.length);
        }
        if (texts.length === 0) progress?.(0, 0);
      };
      const first = await decide(this.#pool);
      await embedInto(first.texts, onProgress);
      const c = await this.#pool.connect();
      try {
        return await this.#inTx(c, async () => {
          await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [lockName.write(this.schema)]);
          const now = await decide(c);
          await embedInto(now.texts.filter((t) => !vectors.has(t)));
          return apply(c, now.plan, (t) => vectors.get(t)!);
        });
      } finally {
        c.release(this.#broken.has(c));
      }
    });
  }

  async #rows(q: Queryable, scope: string, names: readonly string[]): Promise<Map<string, EntityRow>> {
    const out = new Map<string, EntityRow>();
    for (const part of chunks([...new Set(names)], READ_CHUNK)) {
      const rows = (await q.query<EntityRow>(`SELECT ${COLS} FROM ${this.#t('entities')} WHERE scope = $1 AND name = ANY($2::text[])`, [scope, part])).rows;
      for (const r of rows) out.set(r.name, r);
    }
    return out;
  }

  /** Inserts new entities with their vectors; returns nothing (ids are not needed). */
  async #insert(c: Queryable, items: { e: EntityWrite; created_at: string; updated_at: string; vector: string }[]): Promise<void> {
    for (const part of chunks(items, WRITE_CHUNK)) {
      await c.query(
        `INSERT INTO ${this.#t('entities')} (scope, name, entity_type, observations, metadata, created_at, updated_at, words, model, embedding)
         SELECT s, n, t, o::jsonb, m::json, ca, ua, ARRAY(SELECT jsonb_array_elements_text(w::jsonb)), $10, v::${this.#vector}
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[]) WITH ORDINALITY AS x(s, n, t, o, m, ca, ua, w, v, i)
          ORDER BY i`,
        [
          part.map((x) => x.e.scope),
          part.map((x) => x.e.name),
          part.map((x) => x.e.entityType),
          part.map((x) => JSON.stringify(x.e.observations)),
          part.map((x) => JSON.stringify(x.e.metadata)),
          part.map((x) => x.created_at),
          part.map((x) => x.updated_at),
          part.map((x) => JSON.stringify(entityWords(x.e))),
          part.map((x) => x.vector),
          this.#embedder!.model,
        ],
      );
    }
  }

  /** Updates existing entities (type, observations, metadata, words; the vector when given). */
  async #update(c: Queryable, items: { id: string; e: Pick<EntityWrite, 'name' | 'entityType' | 'observations' | 'metadata'>; updated_at: string; vector: string | null }[]): Promise<void> {
    for (const part of chunks(items, WRITE_CHUNK)) {
      await c.query(
        `UPDATE ${this.#t('entities')} e
            SET entity_type = x.t, observations = x.o::jsonb, metadata = x.m::json, updated_at = x.ua,
                words = ARRAY(SELECT jsonb_array_elements_text(x.w::jsonb)),
                embedding = CASE WHEN x.v IS NULL THEN e.embedding ELSE x.v::${this.#vector} END,
                model = CASE WHEN x.v IS NULL THEN e.model ELSE $8 END
           FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS x(id, t, o, m, ua, w, v)
          WHERE e.id = x.id`,
        [
          part.map((x) => x.id),
          part.map((x) => x.e.entityType),
          part.map((x) => JSON.stringify(x.e.observations)),
          part.map((x) => JSON.stringify(x.e.metadata)),
          part.map((x) => x.updated_at),
          part.map((x) => JSON.stringify(entityWords(x.e))),
          part.map((x) => x.vector),
          this.#embedder!.model,
        ],
      );
    }
  }

  // ---- The reference server's operations ----

  /** Creates the entities whose name is new in `scope`; returns those created (existing names are left alone). */
  createEntities(scope: string, entities: EntityInput[]): Promise<Entity[]> {
    return this.#write(
      async (q) => {
        const existing = await this.#rows(
          q,
          scope,
          entities.map((e) => e.name),
        );
        const seen = new Set<string>();
        const fresh = entities.filter((e) => !existing.has(e.name) && !seen.has(e.name) && seen.add(e.name));
        const created = fresh.map((e) => ({ name: e.name, entityType: e.entityType, observations: [...new Set(e.observations)] }));
        return { texts: created.map(entityText), plan: { fresh, created } };
      },
      async (c, { fresh, created }, vectorOf) => {
        const now = new Date().toISOString();
        await this.#insert(
          c,
          created.map((e, i) => ({ e: { ...e, scope, metadata: fresh[i]!.metadata ?? {} }, created_at: now, updated_at: now, vector: vectorOf(entityText(e)) })),
        );
        return created;
      },
    );
  }

  /** Creates the relations not already present in `scope`; returns those created. */
  createRelations(scope: string, relations: Relation[]): Promise<Relation[]> {
    return this.#write(
      async () => ({ texts: [], plan: undefined }),
      async (c) => {
        const existing = new Set<string>();
        const key = (from: string, to: string, type: string) => JSON.stringify([from, to, type]);
        for (const part of chunks(relations, READ_CHUNK)) {
          const rows = (
            await c.query<RelationRow>(
              `SELECT ${REL_COLS} FROM ${this.#t('relations')} r JOIN unnest($2::text[], $3::text[], $4::text[]) AS x(f, t, y)
                 ON r.from_name = x.f AND r.to_name = x.t AND r.relation_type = x.y WHERE r.scope = $1`,
              [scope, part.map((r) => r.from), part.map((r) => r.to), part.map((r) => r.relationType)],
            )
          ).rows;
          for (const r of rows) existing.add(key(r.from_name, r.to_name, r.relation_type));
        }
        const created: Relation[] = [];
        for (const r of relations) {
          const k = key(r.from, r.to, r.relationType);
          if (existing.has(k)) continue;
          existing.add(k);
          created.push({ from: r.from, to: r.to, relationType: r.relationType });
        }
        await this.#insertRelations(
          c,
          created.map((r) => ({ ...r, scope })),
          new Date().toISOString(),
        );
        return created;
      },
    );
  }

  /** Inserts relations, ignoring those present; returns how many were inserted. */
  async #insertRelations(c: Queryable, relations: readonly StoredRelation[], now: string): Promise<number> {
    let n = 0;
    for (const part of chunks(relations, WRITE_CHUNK)) {
      const r = await c.query(
        `INSERT INTO ${this.#t('relations')} (scope, from_name, to_name, relation_type, created_at)
         SELECT s, f, t, y, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS x(s, f, t, y, i) ORDER BY i
         ON CONFLICT DO NOTHING`,
        [part.map((x) => x.scope), part.map((x) => x.from), part.map((x) => x.to), part.map((x) => x.relationType), now],
      );
      n += r.rowCount ?? 0;
    }
    return n;
  }

  /** Adds observations to existing entities (an unknown entity fails the whole call: nothing changes). */
  addObservations(scope: string, additions: ObservationAddition[]): Promise<{ entityName: string; addedObservations: string[] }[]> {
    return this.#write(
      async (q) => {
        const rows = await this.#rows(
          q,
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
        const items = changed.map((n) => ({ row: rows.get(n)!, entity: current.get(n)! }));
        return { texts: items.map((x) => entityText(x.entity)), plan: { results, items } };
      },
      async (c, { results, items }, vectorOf) => {
        await this.#rewrite(c, items, vectorOf);
        return results;
      },
    );
  }

  /** Writes new observations (and their vectors) of existing entities. */
  async #rewrite(c: Queryable, items: { row: EntityRow; entity: StoredEntity }[], vectorOf: (text: string) => string): Promise<void> {
    if (items.length === 0) return;
    const now = new Date().toISOString();
    await this.#update(
      c,
      items.map((x) => ({ id: x.row.id, e: x.entity, updated_at: now, vector: vectorOf(entityText(x.entity)) })),
    );
  }

  /** Deletes entities and every relation from or to them; unknown names are ignored. Returns how many entities were deleted. */
  deleteEntities(scope: string, names: string[]): Promise<number> {
    return this.#write(
      async () => ({ texts: [], plan: undefined }),
      async (c) => {
        const unique = [...new Set(names)];
        let n = 0;
        for (const part of chunks(unique, READ_CHUNK)) {
          n += (await c.query(`DELETE FROM ${this.#t('entities')} WHERE scope = $1 AND name = ANY($2::text[])`, [scope, part])).rowCount ?? 0;
          await c.query(`DELETE FROM ${this.#t('relations')} WHERE scope = $1 AND (from_name = ANY($2::text[]) OR to_name = ANY($2::text[]))`, [scope, part]);
        }
        return n;
      },
    );
  }

  /** Removes the given observations; unknown entities or observations are ignored. */
  deleteObservations(scope: string, deletions: ObservationDeletion[]): Promise<void> {
    return this.#write(
      async (q) => {
        const rows = await this.#rows(
          q,
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
        const items = [...changed].map((n) => ({ row: rows.get(n)!, entity: current.get(n)! }));
        return { texts: items.map((x) => entityText(x.entity)), plan: items };
      },
      async (c, items, vectorOf) => this.#rewrite(c, items, vectorOf),
    );
  }

  /** Deletes relations; unknown ones are ignored. Returns how many were deleted. */
  deleteRelations(scope: string, relations: Relation[]): Promise<number> {
    return this.#write(
      async () => ({ texts: [], plan: undefined }),
      async (c) => {
        let n = 0;
        for (const part of chunks(relations, READ_CHUNK)) {
          const r = await c.query(
            `DELETE FROM ${this.#t('relations')} r USING (SELECT DISTINCT f, t, y FROM unnest($2::text[], $3::text[], $4::text[]) AS x(f, t, y)) x
              WHERE r.scope = $1 AND r.from_name = x.f AND r.to_name = x.t AND r.relation_type = x.y`,
            [scope, part.map((x) => x.from), part.map((x) => x.to), part.map((x) => x.relationType)],
          );
          n += r.rowCount ?? 0;
        }
        return n;
      },
    );
  }

  /** Every entity and relation of `scopes`. */
  readGraph(scopes: readonly string[]): Promise<Graph> {
    if (scopes.length === 0) return Promise.resolve({ entities: [], relations: [] });
    return this.#read(async (c) => {
      const entities = (await c.query<EntityRow>(`SELECT ${COLS} FROM ${this.#t('entities')} WHERE scope = ANY($1::text[]) ORDER BY id`, [scopes])).rows.map(toEntity);
      const relations = (
        await c.query<RelationRow>(
          `SELECT ${REL_COLS} FROM ${this.#t('relations')} WHERE scope = ANY($1::text[])
            ORDER BY scope COLLATE "C", created_at COLLATE "C", from_name COLLATE "C", to_name COLLATE "C", relation_type COLLATE "C"`,
          [scopes],
        )
      ).rows.map(toRelation);
      return { entities, relations };
    });
  }

  /** The reference server's search: entities whose name, type or an observation contains `query` (case-insensitive), with their relations. */
  searchNodes(scopes: readonly string[], query: string): Promise<Graph> {
    if (scopes.length === 0) return Promise.resolve({ entities: [], relations: [] });
    return this.#read(async (c) => {
      const q = query.toLowerCase();
      let rows: EntityRow[];
      // As store.ts: a prefilter only for printable ASCII without quotes or backslashes, folding
      // ASCII case only (SQLite's LIKE), over the observations' JSON text; the filter below decides.
      if (/^[\x20-\x7e]*$/.test(query) && !/["\\]/.test(query)) {
        const pat = `%${q.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
        const fold = (col: string) => `translate(${col}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') LIKE $2 ESCAPE '\\'`;
        rows = (
          await c.query<EntityRow>(
            `SELECT ${COLS} FROM ${this.#t('entities')} WHERE scope = ANY($1::text[]) AND (${fold('name')} OR ${fold('entity_type')} OR ${fold('observations::text')}) ORDER BY id`,
            [scopes, pat],
          )
        ).rows;
      } else rows = (await c.query<EntityRow>(`SELECT ${COLS} FROM ${this.#t('entities')} WHERE scope = ANY($1::text[]) ORDER BY id`, [scopes])).rows;
      const entities = rows.map(toEntity).filter((e) => e.name.toLowerCase().includes(q) || e.entityType.toLowerCase().includes(q) || e.observations.some((o) => o.toLowerCase().includes(q)));
      return { entities, relations: await this.#relationsTouching(c, entities) };
    });
  }

  /** The named entities of `scopes`, with every relation from or to them. */
  openNodes(scopes: readonly string[], names: readonly string[]): Promise<Graph> {
    return this.#read(async (c) => {
      const entities: StoredEntity[] = [];
      for (const s of scopes) {
        const rows = await this.#rows(c, s, names);
        for (const n of names) {
          const r = rows.get(n);
          if (r) {
            entities.push(toEntity(r));
            rows.delete(n);
          }
        }
      }
      return { entities, relations: await this.#relationsTouching(c, entities) };
    });
  }

  /** Relations of the entities' scopes with at least one endpoint among them. */
  relationsTouching(entities: readonly Pick<StoredEntity, 'scope' | 'name'>[]): Promise<StoredRelation[]> {
    return this.#read((c) => this.#relationsTouching(c, entities));
  }

  /**
   * SQLite gives no ORDER BY here: its plan scans the scope's (to, from, type) index, so that is the
   * order, per scope (and per chunk of names).
   */
  async #relationsTouching(c: Queryable, entities: readonly Pick<StoredEntity, 'scope' | 'name'>[]): Promise<StoredRelation[]> {
    const byScope = new Map<string, string[]>();
    for (const e of entities) byScope.set(e.scope, [...(byScope.get(e.scope) ?? []), e.name]);
    const out: StoredRelation[] = [];
    const seen = new Set<string>();
    for (const [scope, names] of byScope) {
      for (const part of chunks(names, 400)) {
        const rows = (
          await c.query<RelationRow>(
            `SELECT ${REL_COLS} FROM ${this.#t('relations')} WHERE scope = $1 AND (from_name = ANY($2::text[]) OR to_name = ANY($2::text[]))
              ORDER BY to_name COLLATE "C", from_name COLLATE "C", relation_type COLLATE "C"`,
            [scope, part],
          )
        ).rows;
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

  getEntity(scope: string, name: string): Promise<StoredEntity | undefined> {
    return this.#track(async () => {
      await this.#tables();
      const r = (await this.#pool.query<EntityRow>(`SELECT ${COLS} FROM ${this.#t('entities')} WHERE scope = $1 AND name = $2`, [scope, name])).rows[0];
      return r && toEntity(r);
    });
  }

  // ---- Search and traversal ----

  /** The semantic candidates' query: nearest vectors of the current model in `scopes` (the HNSW index, filtered with an iterative scan). */
  #semanticSql(withType: boolean): string {
    return `SELECT id FROM ${this.#t('entities')}
             WHERE scope = ANY($1::text[]) AND model = $2 ${withType ? 'AND entity_type = $5' : ''}
             ORDER BY embedding ${this.#cosine} $3::${this.#vector} LIMIT $4`;
  }

  async #searchSettings(c: Queryable, pool: number): Promise<void> {
    const ef = String(Math.min(1000, Math.max(100, pool)));
    if (hasIterativeScan(this.#vec!.version)) await c.query("SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)", [ef]);
    else await c.query("SELECT set_config('hnsw.ef_search', $1, true)", [ef]);
  }

  /**
   * Entities holding the query's words, at a cost bounded by PG_RARE_TERM_DOCS rather than by the
   * store's size (as the SQLite store): the terms held by at most that many entities (word_docs)
   * bring candidates (OR, most query terms held first); when every term is more common, entities
   * holding all of them do (AND, the first found: each has the highest keyword score anyway).
   */
  async #keywordCandidates(c: Queryable, plan: SearchPlan, q: SearchQuery): Promise<string[]> {
    const present = (await c.query<{ word: string; docs: string }>(`SELECT word, docs FROM ${this.#t('word_docs')} WHERE word = ANY($1::text[]) AND docs > 0`, [plan.terms])).rows;
    if (present.length === 0) return [];
    const rare = present.filter((r) => Number(r.docs) <= PG_RARE_TERM_DOCS).map((r) => r.word);
    const typed = q.entity_type !== undefined;
    const args: unknown[] = [q.scopes, rare.length > 0 ? rare : present.map((r) => r.word), plan.pool];
    if (typed) args.push(q.entity_type);
    const where = `scope = ANY($1::text[]) AND words ${rare.length > 0 ? '&&' : '@>'} $2::text[] ${typed ? 'AND entity_type = $4' : ''}`;
    let order = '';
    if (rare.length > 0) {
      args.push(plan.terms);
      order = `ORDER BY (SELECT count(*) FROM unnest(words) AS w WHERE w = ANY($${args.length}::text[])) DESC, id`;
    }
    return (await c.query<{ id: string }>(`SELECT id FROM ${this.#t('entities')} WHERE ${where} ${order} LIMIT $3`, args)).rows.map((r) => r.id);
  }

  /** Semantic, keyword or hybrid (default) search over `scopes`, best first. */
  async search(q: SearchQuery): Promise<SearchHit[]> {
    const plan = planSearch(q);
    if (q.scopes.length === 0) return [];
    await this.ready();
    let qv: string | undefined;
    if (plan.mode !== 'keyword') qv = vectorLiteral((await this.#embed([q.query.slice(0, MAX_EMBED_CHARS)]))[0]!);
    const model = this.#embedder!.model;
    const typeArgs = q.entity_type !== undefined ? [q.entity_type] : [];
    return this.#read(async (c) => {
      const ids = new Set<string>();
      if (qv) {
        await this.#searchSettings(c, plan.pool);
        for (const r of (await c.query<{ id: string }>(this.#semanticSql(q.entity_type !== undefined), [q.scopes, model, qv, plan.pool, ...typeArgs])).rows) ids.add(r.id);
      }
      if (plan.mode !== 'semantic' && plan.terms.length > 0) for (const id of await this.#keywordCandidates(c, plan, q)) ids.add(id);
      if (ids.size === 0) return [];
      const rows = (
        await c.query<EntityRow & { sim: number | null }>(
          `SELECT ${COLS}, CASE WHEN $2::text IS NOT NULL AND model = $3 THEN 1 - (embedding ${this.#cosine} $2::text::${this.#vector}) END AS sim
             FROM ${this.#t('entities')} WHERE id = ANY($1::bigint[]) ORDER BY id`,
          [[...ids], qv ?? null, model],
        )
      ).rows;
      return rankHits(
        plan,
        this.keywordWeight,
        rows.map((r) => ({ entity: toEntity(r), similarity: r.sim === null || Number.isNaN(r.sim) ? 0 : r.sim })),
      );
    });
  }

  /** EXPLAIN of the semantic candidates' query a search runs (diagnostics: shows whether the HNSW index is used). */
  async explainSearch(q: SearchQuery): Promise<string> {
    const plan = planSearch(q);
    await this.ready();
    const qv = vectorLiteral((await this.#embed([q.query.slice(0, MAX_EMBED_CHARS)]))[0]!);
    return this.#read(async (c) => {
      await this.#searchSettings(c, plan.pool);
      const rows = (
        await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${this.#semanticSql(q.entity_type !== undefined)}`, [
          q.scopes,
          this.#embedder!.model,
          qv,
          plan.pool,
          ...(q.entity_type !== undefined ? [q.entity_type] : []),
        ])
      ).rows;
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    });
  }

  /** Breadth-first walk from `from` along relations (of the given types), up to `max_depth` hops. */
  traverse(q: TraverseQuery): Promise<TraverseResult> {
    return this.#read((c) =>
      traverseGraph(
        {
          getEntity: async (scope, name) => {
            const r = (await c.query<EntityRow>(`SELECT ${COLS} FROM ${this.#t('entities')} WHERE scope = $1 AND name = $2`, [scope, name])).rows[0];
            return r && toEntity(r);
          },
          relations: async (scope, name, side) =>
            (
              await c.query<RelationRow>(
                side === 'out'
                  ? `SELECT ${REL_COLS} FROM ${this.#t('relations')} WHERE scope = $1 AND from_name = $2 ORDER BY to_name COLLATE "C", relation_type COLLATE "C"`
                  : `SELECT ${REL_COLS} FROM ${this.#t('relations')} WHERE scope = $1 AND to_name = $2 ORDER BY from_name COLLATE "C", relation_type COLLATE "C"`,
                [scope, name],
              )
            ).rows.map(toRelation),
          entities: async (scope, names) => [...(await this.#rows(c, scope, names)).values()].map(toEntity),
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
  merge(entities: EntityWrite[], relations: StoredRelation[], onProgress?: (done: number, total: number) => void): Promise<MergeResult> {
    type Item = { row?: EntityRow; final: EntityWrite; changed: boolean; embed: boolean };
    return this.#write(
      async (q) => {
        const items = foldDuplicates(entities);
        const byScope = new Map<string, EntityWrite[]>();
        for (const e of items) byScope.set(e.scope, [...(byScope.get(e.scope) ?? []), e]);
        const plan: Item[] = [];
        for (const [scope, list] of byScope) {
          const rows = await this.#rows(
            q,
            scope,
            list.map((e) => e.name),
          );
          for (const w of list) {
            const row = rows.get(w.name);
            if (!row) {
              plan.push({ final: w, changed: true, embed: true });
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
            const embed = observations.length !== cur.observations.length || w.entityType !== cur.entityType;
            plan.push({ row, final, changed: embed || JSON.stringify(final.metadata) !== JSON.stringify(cur.metadata), embed });
          }
        }
        return { texts: plan.filter((p) => p.embed).map((p) => entityText(p.final)), plan };
      },
      async (c, plan, vectorOf) => {
        const now = new Date().toISOString();
        const fresh = plan.filter((p) => !p.row);
        const changed = plan.filter((p) => p.row && p.changed);
        await this.#insert(
          c,
          fresh.map((p) => ({ e: p.final, created_at: p.final.created_at ?? now, updated_at: p.final.updated_at ?? now, vector: vectorOf(entityText(p.final)) })),
        );
        await this.#update(
          c,
          changed.map((p) => ({ id: p.row!.id, e: p.final, updated_at: now, vector: p.embed ? vectorOf(entityText(p.final)) : null })),
        );
        const relCreated = await this.#insertRelations(c, relations, now);
        return { entities_created: fresh.length, entities_updated: changed.length, relations_created: relCreated };
      },
      onProgress,
    );
  }

  /** Deletes everything in `scopes` (one transaction). */
  clear(scopes: readonly string[]): Promise<number> {
    return this.#write(
      async () => ({ texts: [], plan: undefined }),
      async (c) => {
        if (scopes.length === 0) return 0;
        const n = (await c.query(`DELETE FROM ${this.#t('entities')} WHERE scope = ANY($1::text[])`, [scopes])).rowCount ?? 0;
        await c.query(`DELETE FROM ${this.#t('relations')} WHERE scope = ANY($1::text[])`, [scopes]);
        return n;
      },
    );
  }

  scopes(): Promise<string[]> {
    return this.#track(async () => {
      await this.#tables();
      const sql = `SELECT scope FROM (SELECT scope FROM ${this.#t('entities')} UNION SELECT scope FROM ${this.#t('relations')}) AS s ORDER BY scope COLLATE "C"`;
      return (await this.#pool.query<{ scope: string }>(sql)).rows.map((r) => r.scope);
    });
  }

  countEntities(): Promise<number> {
    return this.#track(async () => {
      await this.#tables();
      return (await this.#pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${this.#t('entities')}`)).rows[0]!.n;
    });
  }

  async stats(): Promise<MemoryStats> {
    const embedder = this.#ready ? this.#embedder : undefined;
    return this.#read(async (c) => {
      const by = (
        await c.query<{ scope: string; n: number; o: number }>(
          `SELECT scope, count(*)::int AS n, coalesce(sum(jsonb_array_length(observations)), 0)::float8 AS o FROM ${this.#t('entities')} GROUP BY scope ORDER BY scope COLLATE "C"`,
        )
      ).rows;
      const rels = (await c.query<{ scope: string; n: number }>(`SELECT scope, count(*)::int AS n FROM ${this.#t('relations')} GROUP BY scope ORDER BY scope COLLATE "C"`)).rows;
      let embedding: MemoryStats['embedding'] = null;
      if (embedder) {
        const indexed = (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${this.#t('entities')} WHERE model = $1 AND embedding IS NOT NULL`, [embedder.model])).rows[0]!.n;
        embedding = { model: embedder.model, dimensions: embedder.dimensions, indexed };
      }
      const bytes = (
        await c.query<{ b: string | null }>(
          `SELECT sum(pg_total_relation_size(c.oid))::text AS b FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`,
          [this.schema],
        )
      ).rows[0]?.b;
      return { ...countsByScope(by, rels), embedding, ...(bytes != null && { database_bytes: Number(bytes) }) };
    });
  }

  /** Waits for pending operations, then refuses new ones; ends the pool when the store created it, and closes the embedder when the store created it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#lock;
    this.#closed = true;
    await Promise.allSettled([...this.#pending]);
    if (this.#ownPool) await this.#pool.end();
    if (typeof this.#embedderSource === 'function') await this.#embedder?.close();
  }
}
