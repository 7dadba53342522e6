/**
 * The graph's storage in PostgreSQL: entity rows with their words (keyword candidates) and their
 * vector in pgvector, with an HNSW index inside the database; relation rows. See
 * docs/adr/0012-memory-postgres.md.
 *
 * Consistency: every write is ONE transaction that first takes a transaction-level advisory lock
 * per schema (`pg_advisory_xact_lock`), so the writes of every instance on a schema are
 * serialized, as SQLite serializes its writers. Embedding is slow, so a write reads the current
 * rows and embeds what it will change BEFORE the transaction; inside it, under the lock, it reads
 * them again and embeds anything that changed meanwhile (another instance wrote), then writes.
 * A failure or a crash at any point leaves the previous state. Reads of several statements run
 * in one REPEATABLE READ snapshot.
 *
 * `open()` (and the first read) prepare the schema under a session advisory lock, so instances
 * starting together take turns: extension, migrations, the vector column's dimension, the HNSW
 * index, and vectors of another model re-embedded in batches (never mixed: searches only use
 * vectors of the current model). Every instance on a schema must use the same embedding model.
 */
import pg from 'pg';
import { guardConnections } from '../storage/pg/index.js';
import type { Embedder } from './embedding/index.js';
import { CaxtonError } from '../shared/errors.js';
import {
  checkSchemaName,
  DEFAULT_PG_SCHEMA,
  ensureVectorExtension,
  hasIterativeScan,
  HNSW_INDEX,
  ident,
  lockName,
  migrate,
  type Queryable,
} from './pg-schema.js';
import { toRelation } from './storage.js';
import type {
  Applied,
  Changes,
  Decision,
  EmbedTexts,
  EntityColumns,
  EntityInsert,
  EntityUpdate,
  MemoryStorage,
  RelationColumns,
  StorageOpen,
  StorageReader,
} from './storage.js';
import { chunks, entityWords } from './text.js';
import type { StoredEntity, StoredRelation } from './types.js';

export interface PgStorageOptions {
  /** A PostgreSQL connection string (the storage creates and ends its pool). Either this or `pool`. */
  url?: string;
  /** A pool to use (left open by close()). */
  pool?: pg.Pool;
  /** The schema holding the tables (default `caxton_memory`); created when missing. */
  schema?: string;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

type EntityRow = EntityColumns<string, string[], Record<string, unknown>>;
type RelationRow = RelationColumns;

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
  return {
    name: r.name,
    entityType: r.entity_type,
    observations: r.observations,
    scope: r.scope,
    metadata: r.metadata,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
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
    return new CaxtonError(
      'invalid_request',
      `PostgreSQL cannot store this text (${e.message}); the NUL character (U+0000) is not allowed`,
      undefined,
      { cause: err },
    );
  }
  return err;
}

export class PgStorage implements MemoryStorage<string> {
  readonly rareTermDocs = PG_RARE_TERM_DOCS;
  readonly schema: string;
  readonly #pool: pg.Pool;
  readonly #ownPool: boolean;
  readonly #s: string;
  readonly #log: PgStorageOptions['log'];
  #embedder: Embedder | undefined;
  /** The extension's schema (quoted), its version. */
  #vec: { schema: string; version: string } | undefined;
  #tablesReady: Promise<void> | undefined;
  readonly #pending = new Set<Promise<unknown>>();
  /** Connections whose rollback failed: destroyed on release. */
  readonly #broken = new WeakSet<pg.PoolClient>();
  #closed = false;

  constructor(opts: PgStorageOptions) {
    if (!opts.pool && !opts.url)
      throw new CaxtonError('invalid_config', 'the PostgreSQL memory store needs a connection url or a pool', {
        field: 'url',
      });
    this.schema = checkSchemaName(opts.schema ?? DEFAULT_PG_SCHEMA);
    this.#s = ident(this.schema);
    this.#log = opts.log;
    this.#ownPool = !opts.pool;
    this.#pool = opts.pool ?? new pg.Pool({ connectionString: opts.url, application_name: 'caxton-memory' });
    if (this.#ownPool) {
      this.#pool.on('error', (err) => this.#log?.warn({ err }, 'memory: an idle PostgreSQL connection failed'));
      // A connection that dies while checked out fails its query; its `error` event must not end the process.
      guardConnections(this.#pool);
    }
  }

  // ---- Schema, readiness, locking ----

  #t(table: string): string {
    return `${this.#s}.${table}`;
  }

  /** `vector` and `<=>` qualified with the extension's schema (the storage never relies on search_path). */
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
        await c
          .query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [lockName.ready(this.schema)])
          .catch((e: unknown) => (broken = e as Error));
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
      if (applied.length > 0)
        this.#log?.info({ schema: this.schema, migrations: applied }, 'memory: PostgreSQL schema migrated');
    }).catch((e: unknown) => {
      this.#tablesReady = undefined;
      throw e;
    });
    return this.#tablesReady;
  }

  /** Prepares the schema, the vector column and its HNSW index for the embedder; re-embeds vectors of another model. */
  async open(ctx: StorageOpen<string>): Promise<void> {
    this.#embedder = ctx.embedder;
    try {
      await this.#prepare(ctx);
    } catch (e) {
      // Stats report no embedding until an open succeeds or is under way again.
      this.#embedder = undefined;
      throw e;
    }
  }

  async #prepare(ctx: StorageOpen<string>): Promise<void> {
    const { embedder } = ctx;
    await this.#tables();
    await this.#underReadyLock(async (c) => {
      const meta = (
        await c.query<{ model: string | null; dimensions: number | null }>(
          `SELECT model, dimensions FROM ${this.#t('meta')} WHERE id = 1`,
        )
      ).rows[0];
      const now = new Date().toISOString();
      if (meta?.dimensions !== embedder.dimensions) {
        // Another dimension: the column's type changes, every vector is re-embedded.
        await this.#inTx(c, async () => {
          await c.query(`DROP INDEX IF EXISTS ${this.#t(HNSW_INDEX)}`);
          await c.query(
            `ALTER TABLE ${this.#t('entities')} ALTER COLUMN embedding TYPE ${this.#vector}(${embedder.dimensions}) USING NULL`,
          );
          await c.query(`UPDATE ${this.#t('entities')} SET model = NULL WHERE model IS NOT NULL`);
          await c.query(`UPDATE ${this.#t('meta')} SET model = $1, dimensions = $2, updated_at = $3 WHERE id = 1`, [
            embedder.model,
            embedder.dimensions,
            now,
          ]);
        });
        if (meta?.dimensions != null)
          this.#log?.warn(
            { from: meta.dimensions, to: embedder.dimensions },
            'memory: embedding dimension changed; re-embedding everything',
          );
      } else if (meta.model !== embedder.model) {
        await c.query(`UPDATE ${this.#t('meta')} SET model = $1, updated_at = $2 WHERE id = 1`, [embedder.model, now]);
        this.#log?.warn(
          { from: meta.model, to: embedder.model },
          'memory: embedding model changed; re-embedding everything',
        );
      }
      const stale = (
        await c.query<{ id: string }>(
          `SELECT id FROM ${this.#t('entities')} WHERE model IS DISTINCT FROM $1 OR embedding IS NULL ORDER BY id`,
          [embedder.model],
        )
      ).rows.map((r) => r.id);
      // Each batch its own write transaction; a row changed meanwhile by another instance is left as that write made it.
      if (stale.length > 0) {
        await ctx.reembed(
          stale,
          async (batch) =>
            (
              await c.query<EntityRow>(
                `SELECT ${COLS} FROM ${this.#t('entities')} WHERE id = ANY($1::bigint[]) ORDER BY id`,
                [batch],
              )
            ).rows.map((r) => ({ id: r.id, entity: toEntity(r) })),
          (rows, vectors) =>
            this.#inTx(c, async () => {
              await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [lockName.write(this.schema)]);
              await c.query(
                `UPDATE ${this.#t('entities')} e SET embedding = x.v::${this.#vector}, model = $5
                   FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS x(id, v, t, o)
                  WHERE e.id = x.id AND e.entity_type = x.t AND e.observations = x.o::jsonb`,
                [
                  rows.map((r) => r.id),
                  vectors.map(vectorLiteral),
                  rows.map((r) => r.entity.entityType),
                  rows.map((r) => JSON.stringify(r.entity.observations)),
                  embedder.model,
                ],
              );
            }),
        );
      }
      await c.query(
        `CREATE INDEX IF NOT EXISTS ${ident(HNSW_INDEX)} ON ${this.#t('entities')} USING hnsw (embedding ${this.#vec!.schema}.vector_cosine_ops)`,
      );
    });
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

  /** Tracks a read so close() waits for it. */
  #track<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new CaxtonError('not_ready', 'the memory store is closed'));
    const p = fn();
    this.#pending.add(p);
    const drop = () => this.#pending.delete(p);
    p.then(drop, drop);
    return p;
  }

  /** One REPEATABLE READ snapshot on one connection. */
  #snapshot<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
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

  /** A read: in one snapshot (default), or single statements on the pool. */
  read<T>(fn: (r: StorageReader<string>) => Promise<T>, opts?: { snapshot?: boolean }): Promise<T> {
    if (opts?.snapshot !== false) return this.#snapshot((c) => fn(this.#reader(c)));
    return this.#track(async () => {
      await this.#tables();
      return fn(this.#reader(this.#pool));
    });
  }

  /**
   * A write: `decide` reads the rows and says what to embed; the texts are embedded outside any
   * transaction; then, in one transaction holding the schema's write lock, `decide` runs again on
   * the current rows (texts not embedded yet are embedded now) and its changes are applied.
   */
  async write<R>(
    decide: (r: StorageReader<string>) => Promise<Decision<string, R>>,
    embed: EmbedTexts,
    progress?: (done: number, total: number) => void,
  ): Promise<R> {
    const first = await decide(this.#reader(this.#pool));
    const vectors = await embed(first.texts, progress);
    const c = await this.#pool.connect();
    try {
      return await this.#inTx(c, async () => {
        await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [lockName.write(this.schema)]);
        const now = await decide(this.#reader(c));
        for (const [t, v] of await embed(now.texts.filter((t) => !vectors.has(t)))) vectors.set(t, v);
        return now.result(
          await this.#apply(
            c,
            now.changes((t) => vectors.get(t)!),
          ),
        );
      });
    } finally {
      c.release(this.#broken.has(c));
    }
  }

  // ---- Reads ----

  #reader(q: Queryable): StorageReader<string> {
    return {
      entitiesByName: async (scope, names) => {
        const out = new Map<string, { id: string; entity: StoredEntity }>();
        for (const part of chunks([...new Set(names)], READ_CHUNK)) {
          const rows = (
            await q.query<EntityRow>(
              `SELECT ${COLS} FROM ${this.#t('entities')} WHERE scope = $1 AND name = ANY($2::text[])`,
              [scope, part],
            )
          ).rows;
          for (const r of rows) out.set(r.name, { id: r.id, entity: toEntity(r) });
        }
        return out;
      },
      entity: async (scope, name) => {
        const r = (
          await q.query<EntityRow>(`SELECT ${COLS} FROM ${this.#t('entities')} WHERE scope = $1 AND name = $2`, [
            scope,
            name,
          ])
        ).rows[0];
        return r && toEntity(r);
      },
      entities: async (scopes, pattern) => {
        if (pattern === undefined)
          return (
            await q.query<EntityRow>(
              `SELECT ${COLS} FROM ${this.#t('entities')} WHERE scope = ANY($1::text[]) ORDER BY id`,
              [scopes],
            )
          ).rows.map(toEntity);
        // As SQLite's LIKE: ASCII case folded only, over the observations' JSON text; the graph's filter decides.
        const fold = (col: string) =>
          `translate(${col}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') LIKE $2 ESCAPE '\\'`;
        return (
          await q.query<EntityRow>(
            `SELECT ${COLS} FROM ${this.#t('entities')} WHERE scope = ANY($1::text[]) AND (${fold('name')} OR ${fold('entity_type')} OR ${fold('observations::text')}) ORDER BY id`,
            [scopes, pattern],
          )
        ).rows.map(toEntity);
      },
      relations: async (scopes) =>
        (
          await q.query<RelationRow>(
            `SELECT ${REL_COLS} FROM ${this.#t('relations')} WHERE scope = ANY($1::text[])
              ORDER BY scope COLLATE "C", created_at COLLATE "C", from_name COLLATE "C", to_name COLLATE "C", relation_type COLLATE "C"`,
            [scopes],
          )
        ).rows.map(toRelation),
      // SQLite gives no ORDER BY here: its plan scans the scope's (to, from, type) index, so that is the order.
      relationsTouching: async (scope, names) =>
        (
          await q.query<RelationRow>(
            `SELECT ${REL_COLS} FROM ${this.#t('relations')} WHERE scope = $1 AND (from_name = ANY($2::text[]) OR to_name = ANY($2::text[]))
              ORDER BY to_name COLLATE "C", from_name COLLATE "C", relation_type COLLATE "C"`,
            [scope, names],
          )
        ).rows.map(toRelation),
      relationsAt: async (scope, name, side) =>
        (
          await q.query<RelationRow>(
            side === 'out'
              ? `SELECT ${REL_COLS} FROM ${this.#t('relations')} WHERE scope = $1 AND from_name = $2 ORDER BY to_name COLLATE "C", relation_type COLLATE "C"`
              : `SELECT ${REL_COLS} FROM ${this.#t('relations')} WHERE scope = $1 AND to_name = $2 ORDER BY from_name COLLATE "C", relation_type COLLATE "C"`,
            [scope, name],
          )
        ).rows.map(toRelation),
      existingRelations: async (scope, relations) => {
        const out: StoredRelation[] = [];
        for (const part of chunks(relations, READ_CHUNK)) {
          const rows = (
            await q.query<RelationRow>(
              `SELECT ${REL_COLS} FROM ${this.#t('relations')} r JOIN unnest($2::text[], $3::text[], $4::text[]) AS x(f, t, y)
                 ON r.from_name = x.f AND r.to_name = x.t AND r.relation_type = x.y WHERE r.scope = $1`,
              [scope, part.map((r) => r.from), part.map((r) => r.to), part.map((r) => r.relationType)],
            )
          ).rows;
          out.push(...rows.map(toRelation));
        }
        return out;
      },
      nearest: async (v, pool, scopes, type) => {
        await this.#searchSettings(q, pool);
        return (
          await q.query<{ id: string }>(this.#semanticSql(type !== undefined), [
            scopes,
            this.#embedder!.model,
            vectorLiteral(v),
            pool,
            ...(type !== undefined ? [type] : []),
          ])
        ).rows;
      },
      termDocs: async (terms) =>
        new Map(
          (
            await q.query<{ word: string; docs: string }>(
              `SELECT word, docs FROM ${this.#t('word_docs')} WHERE word = ANY($1::text[]) AND docs > 0`,
              [terms],
            )
          ).rows.map((r) => [r.word, Number(r.docs)]),
        ),
      keywordCandidates: (match, rankBy, pool, scopes, type) =>
        this.#keywordCandidates(q, match, rankBy, pool, scopes, type),
      scored: async (ids, v) => {
        const rows = (
          await q.query<EntityRow & { sim: number | null }>(
            `SELECT ${COLS}, CASE WHEN $2::text IS NOT NULL AND model = $3 THEN 1 - (embedding ${this.#cosine} $2::text::${this.#vector}) END AS sim
               FROM ${this.#t('entities')} WHERE id = ANY($1::bigint[]) ORDER BY id`,
            [ids, v ? vectorLiteral(v) : null, this.#embedder!.model],
          )
        ).rows;
        return rows.map((r) => ({
          entity: toEntity(r),
          similarity: r.sim === null || Number.isNaN(r.sim) ? 0 : r.sim,
        }));
      },
    };
  }

  /** The semantic candidates' query: nearest vectors of the current model in `scopes` (the HNSW index, filtered with an iterative scan). */
  #semanticSql(withType: boolean): string {
    return `SELECT id FROM ${this.#t('entities')}
             WHERE scope = ANY($1::text[]) AND model = $2 ${withType ? 'AND entity_type = $5' : ''}
             ORDER BY embedding ${this.#cosine} $3::${this.#vector} LIMIT $4`;
  }

  async #searchSettings(c: Queryable, pool: number): Promise<void> {
    const ef = String(Math.min(1000, Math.max(100, pool)));
    if (hasIterativeScan(this.#vec!.version))
      await c.query(
        "SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)",
        [ef],
      );
    else await c.query("SELECT set_config('hnsw.ef_search', $1, true)", [ef]);
  }

  /** Keyword candidates: entities whose words hold all the terms (`@>`), or any of them (`&&`) ranked by how many of `rankBy` they hold. */
  async #keywordCandidates(
    c: Queryable,
    match: { terms: readonly string[]; every: boolean },
    rankBy: readonly string[],
    pool: number,
    scopes: readonly string[],
    type: string | undefined,
  ): Promise<string[]> {
    const typed = type !== undefined;
    const args: unknown[] = [scopes, match.terms, pool];
    if (typed) args.push(type);
    const where = `scope = ANY($1::text[]) AND words ${match.every ? '@>' : '&&'} $2::text[] ${typed ? 'AND entity_type = $4' : ''}`;
    let order = '';
    if (!match.every) {
      args.push(rankBy);
      order = `ORDER BY (SELECT count(*) FROM unnest(words) AS w WHERE w = ANY($${args.length}::text[])) DESC, id`;
    }
    return (
      await c.query<{ id: string }>(`SELECT id FROM ${this.#t('entities')} WHERE ${where} ${order} LIMIT $3`, args)
    ).rows.map((r) => r.id);
  }

  /** EXPLAIN of the semantic candidates' query (diagnostics: shows whether the HNSW index is used). */
  explainNearest(v: Float32Array, pool: number, scopes: readonly string[], type: string | undefined): Promise<string> {
    return this.#snapshot(async (c) => {
      await this.#searchSettings(c, pool);
      const args = [scopes, this.#embedder!.model, vectorLiteral(v), pool, ...(type !== undefined ? [type] : [])];
      const rows = (await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${this.#semanticSql(type !== undefined)}`, args))
        .rows;
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    });
  }

  // ---- Writes ----

  /** Applies a change set inside the write's transaction. */
  async #apply(c: Queryable, changes: Changes<string>): Promise<Applied> {
    const applied: Applied = { relationsCreated: 0, entitiesDeleted: 0, relationsDeleted: 0, cleared: 0 };
    if (changes.insert) await this.#insert(c, changes.insert);
    if (changes.update) await this.#update(c, changes.update);
    if (changes.relations)
      applied.relationsCreated = await this.#insertRelations(c, changes.relations, new Date().toISOString());
    if (changes.deleteEntities) {
      const { scope, names } = changes.deleteEntities;
      for (const part of chunks(names, READ_CHUNK)) {
        applied.entitiesDeleted +=
          (
            await c.query(`DELETE FROM ${this.#t('entities')} WHERE scope = $1 AND name = ANY($2::text[])`, [
              scope,
              part,
            ])
          ).rowCount ?? 0;
        await c.query(
          `DELETE FROM ${this.#t('relations')} WHERE scope = $1 AND (from_name = ANY($2::text[]) OR to_name = ANY($2::text[]))`,
          [scope, part],
        );
      }
    }
    if (changes.deleteRelations) {
      const { scope, relations } = changes.deleteRelations;
      for (const part of chunks(relations, READ_CHUNK)) {
        const r = await c.query(
          `DELETE FROM ${this.#t('relations')} r USING (SELECT DISTINCT f, t, y FROM unnest($2::text[], $3::text[], $4::text[]) AS x(f, t, y)) x
            WHERE r.scope = $1 AND r.from_name = x.f AND r.to_name = x.t AND r.relation_type = x.y`,
          [scope, part.map((x) => x.from), part.map((x) => x.to), part.map((x) => x.relationType)],
        );
        applied.relationsDeleted += r.rowCount ?? 0;
      }
    }
    if (changes.clear) {
      applied.cleared =
        (await c.query(`DELETE FROM ${this.#t('entities')} WHERE scope = ANY($1::text[])`, [changes.clear])).rowCount ??
        0;
      await c.query(`DELETE FROM ${this.#t('relations')} WHERE scope = ANY($1::text[])`, [changes.clear]);
    }
    return applied;
  }

  /** Inserts new entities with their words and vectors. */
  async #insert(c: Queryable, items: readonly EntityInsert[]): Promise<void> {
    for (const part of chunks(items, WRITE_CHUNK)) {
      await c.query(
        `INSERT INTO ${this.#t('entities')} (scope, name, entity_type, observations, metadata, created_at, updated_at, words, model, embedding)
         SELECT s, n, t, o::jsonb, m::json, ca, ua, ARRAY(SELECT jsonb_array_elements_text(w::jsonb)), $10, v::${this.#vector}
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[]) WITH ORDINALITY AS x(s, n, t, o, m, ca, ua, w, v, i)
          ORDER BY i`,
        [
          part.map((x) => x.entity.scope),
          part.map((x) => x.entity.name),
          part.map((x) => x.entity.entityType),
          part.map((x) => JSON.stringify(x.entity.observations)),
          part.map((x) => JSON.stringify(x.entity.metadata)),
          part.map((x) => x.created_at),
          part.map((x) => x.updated_at),
          part.map((x) => JSON.stringify(entityWords(x.entity))),
          part.map((x) => vectorLiteral(x.vector)),
          this.#embedder!.model,
        ],
      );
    }
  }

  /** Updates existing entities (type, observations, metadata, words; the vector when given). */
  async #update(c: Queryable, items: readonly EntityUpdate<string>[]): Promise<void> {
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
          part.map((x) => x.entity.entityType),
          part.map((x) => JSON.stringify(x.entity.observations)),
          part.map((x) => JSON.stringify(x.entity.metadata)),
          part.map((x) => x.updated_at),
          part.map((x) => JSON.stringify(entityWords(x.entity))),
          part.map((x) => (x.vector ? vectorLiteral(x.vector) : null)),
          this.#embedder!.model,
        ],
      );
    }
  }

  /** Inserts relations, ignoring those present; returns how many were inserted. */
  async #insertRelations(c: Queryable, relations: readonly StoredRelation[], now: string): Promise<number> {
    let n = 0;
    for (const part of chunks(relations, WRITE_CHUNK)) {
      const r = await c.query(
        `INSERT INTO ${this.#t('relations')} (scope, from_name, to_name, relation_type, created_at)
         SELECT s, f, t, y, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS x(s, f, t, y, i) ORDER BY i
         ON CONFLICT DO NOTHING`,
        [
          part.map((x) => x.scope),
          part.map((x) => x.from),
          part.map((x) => x.to),
          part.map((x) => x.relationType),
          now,
        ],
      );
      n += r.rowCount ?? 0;
    }
    return n;
  }

  // ---- Administration ----

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
      return (await this.#pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${this.#t('entities')}`)).rows[0]!
        .n;
    });
  }

  stats(): ReturnType<MemoryStorage<string>['stats']> {
    const embedder = this.#embedder;
    return this.#snapshot(async (c) => {
      const entities = (
        await c.query<{ scope: string; n: number; o: number }>(
          `SELECT scope, count(*)::int AS n, coalesce(sum(jsonb_array_length(observations)), 0)::float8 AS o FROM ${this.#t('entities')} GROUP BY scope ORDER BY scope COLLATE "C"`,
        )
      ).rows;
      const relations = (
        await c.query<{ scope: string; n: number }>(
          `SELECT scope, count(*)::int AS n FROM ${this.#t('relations')} GROUP BY scope ORDER BY scope COLLATE "C"`,
        )
      ).rows;
      let embedding: Awaited<ReturnType<MemoryStorage<string>['stats']>>['embedding'] = null;
      if (embedder) {
        const indexed = (
          await c.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM ${this.#t('entities')} WHERE model = $1 AND embedding IS NOT NULL`,
            [embedder.model],
          )
        ).rows[0]!.n;
        embedding = { model: embedder.model, dimensions: embedder.dimensions, indexed };
      }
      const bytes = (
        await c.query<{ b: string | null }>(
          `SELECT sum(pg_total_relation_size(c.oid))::text AS b FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`,
          [this.schema],
        )
      ).rows[0]?.b;
      return { entities, relations, embedding, ...(bytes != null && { database_bytes: Number(bytes) }) };
    });
  }

  /** Refuses new reads, waits for those under way; ends the pool when the storage created it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#pending]);
    if (this.#ownPool) await this.#pool.end();
  }
}
