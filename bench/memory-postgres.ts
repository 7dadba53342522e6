/**
 * The memory store on PostgreSQL + pgvector (PgMemoryStore, ADR 0012), measured as the
 * embedded store is in memory.ts: insert with the real local embedding model, fill with given
 * vectors (rows, words, the vector and its HNSW entry in one transaction per batch), semantic
 * search through the store (HNSW with an iterative scan) against the exact scan of the same table
 * (index scans disabled: the same-run baseline and the recall reference), hybrid search including
 * the query's embedding, and bytes per entity (pg_total_relation_size of the schema's tables,
 * indexes and TOAST included).
 *
 * Server: BENCH_PG_URL (default CAXTON_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres);
 * pgvector must be installed (scripts/setup-pgvector.sh). Each size gets a fresh schema, dropped
 * at the end. Sizes: BENCH_PG_SIZES (default 10000,100000).
 */
import pg from 'pg';
import { createEmbedder } from '../src/memory/embedding/index.js';
import { entityText, type EntityWrite } from '../src/memory/index.js';
import { PgMemoryStore, vectorLiteral } from '../src/memory/pg-store.js';
import { entityAt, queryText, Replay, synthetic } from './lib/memory-data.js';
import { note } from './lib/progress.js';
import { rng } from './lib/random.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt, fmtMs, summarize } from './lib/stats.js';

const env = (name: string, def: string) => process.env[name] ?? def;
const PG_URL =
  process.env.BENCH_PG_URL ?? process.env.CAXTON_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const EMBED_N = Number(env('BENCH_MEMORY_EMBED', '2000'));
const SIZES = env('BENCH_PG_SIZES', '10000,100000').split(',').map(Number);
const QUERIES = Number(env('BENCH_MEMORY_QUERIES', '200'));
const EXACT_QUERIES = Number(env('BENCH_MEMORY_EXACT_QUERIES', '50'));
const FILL_BATCH = 5000;

const verdict = (ok: boolean) => (ok ? ('pass' as const) : ('fail' as const));

function schemaName(tag: string): string {
  return `caxton_bench_${tag}_${Math.random().toString(36).slice(2, 8)}`;
}

/** The exact top-10 names of `workspace` by cosine distance: a sequential scan, index scans disabled. */
async function exactTop10(admin: pg.Pool, schema: string, vectorSchema: string, v: Float32Array): Promise<string[]> {
  const c = await admin.connect();
  try {
    await c.query('BEGIN');
    await c.query('SET LOCAL enable_indexscan = off');
    await c.query('SET LOCAL enable_bitmapscan = off');
    const { rows } = await c.query<{ name: string }>(
      `SELECT name FROM "${schema}".entities WHERE scope = 'workspace' ORDER BY embedding OPERATOR("${vectorSchema}".<=>) $1::"${vectorSchema}".vector LIMIT 10`,
      [vectorLiteral(v)],
    );
    await c.query('COMMIT');
    return rows.map((r) => r.name);
  } finally {
    c.release();
  }
}

export const memoryPostgresSuite: Suite = {
  name: 'memory-postgres',
  description: `memory store on PostgreSQL + pgvector (${PG_URL.replace(/\/\/[^@]*@/, '//')}): insert with embedding (${EMBED_N} real), fill and search at ${SIZES.join(', ')} entities, recall@10, bytes per entity`,
  async run(): Promise<SuiteReport> {
    const rows: Row[] = [];
    const raw: Record<string, unknown> = { url: PG_URL.replace(/\/\/[^@]*@/, '//'), sizes: [] };
    const rand = rng(6);
    const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
    const schemas: string[] = [];
    const embedder = await createEmbedder({ kind: 'local' });
    try {
      const server = (await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
      await admin.query('CREATE EXTENSION IF NOT EXISTS vector').catch((e: unknown) => {
        throw new Error(
          `pgvector is not available at ${raw.url} (${(e as Error).message}): run scripts/setup-pgvector.sh`,
        );
      });
      const ext = (
        await admin.query<{ schema: string; version: string }>(
          "SELECT n.nspname AS schema, e.extversion AS version FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'",
        )
      ).rows[0]!;
      raw.server = { postgres: server, pgvector: ext.version };
      await embedder.embed(['warm up']);

      // 1. Insert with the real model: 500 entities per transaction; the baseline embeds the same texts alone.
      let realVectors: Float32Array[];
      {
        const schema = schemaName('insert');
        schemas.push(schema);
        const store = new PgMemoryStore({ url: PG_URL, schema, embedder });
        await store.ready();
        const items = Array.from({ length: EMBED_N }, (_, i) => entityAt(rand, i));
        const t0 = performance.now();
        for (let i = 0; i < items.length; i += 500) await store.merge(items.slice(i, i + 500), []);
        const perEntity = (performance.now() - t0) / EMBED_N;
        await store.close();
        const tEmbed = performance.now();
        realVectors = [];
        for (let i = 0; i < items.length; i += 500)
          realVectors.push(...(await embedder.embed(items.slice(i, i + 500).map(entityText))));
        const embedPerEntity = (performance.now() - tEmbed) / EMBED_N;
        note(
          `postgres: inserted ${EMBED_N} entities with embedding, ${fmtMs(perEntity)} per entity (embedding alone ${fmtMs(embedPerEntity)})`,
        );
        rows.push({
          metric: `insert with embedding (${EMBED_N} entities, 500 per transaction), per entity amortized`,
          value: fmtMs(perEntity),
          baseline: `embedding the same texts alone ${fmtMs(embedPerEntity)}`,
          target: '≤ 3 ms (documents: 5-20 ms)',
          verdict: verdict(perEntity <= 3),
        });
        raw.insert = { entities: EMBED_N, per_entity_ms: perEntity, embed_only_per_entity_ms: embedPerEntity };
      }

      const queryTexts = Array.from({ length: QUERIES }, () => queryText(rand));
      const qv = await embedder.embed(queryTexts);

      for (const size of SIZES) {
        const n = size.toLocaleString('en');
        const schema = schemaName(String(size));
        schemas.push(schema);
        const replay = new Replay(embedder.model, embedder.dimensions);
        const store = new PgMemoryStore({ url: PG_URL, schema, embedder: replay });
        await store.ready();
        const tFill = performance.now();
        let lastNote = tFill;
        for (let i = 0; i < size; i += FILL_BATCH) {
          const batch: EntityWrite[] = Array.from({ length: Math.min(FILL_BATCH, size - i) }, (_, k) =>
            entityAt(rand, i + k),
          );
          replay.queue.push(...batch.map(() => synthetic(realVectors, rand)));
          await store.merge(batch, []);
          if (performance.now() - lastNote > 30_000) {
            lastNote = performance.now();
            note(`  postgres fill at ${n}: ${i + batch.length} entities after ${fmt((lastNote - tFill) / 1000, 0)} s`);
          }
        }
        const fillMs = performance.now() - tFill;
        // Steady state: vacuumed and analyzed (autovacuum would otherwise run during the searches).
        await admin.query(`VACUUM ANALYZE "${schema}".entities`);
        note(`postgres size ${size}: filled in ${fmt(fillMs / 1000)} s`);

        const sem: number[] = [];
        const got: string[][] = [];
        for (const v of qv) {
          replay.queue = [v];
          const t = performance.now();
          const hits = await store.search({ query: 'x', scopes: ['workspace'], limit: 10, mode: 'semantic' });
          sem.push(performance.now() - t);
          got.push(hits.map((h) => h.entity.name));
        }
        const exactLat: number[] = [];
        let agree = 0;
        for (let q = 0; q < Math.min(EXACT_QUERIES, qv.length); q++) {
          const t = performance.now();
          const exact = await exactTop10(admin, schema, ext.schema, qv[q]!);
          exactLat.push(performance.now() - t);
          const mine = new Set(got[q]);
          agree += exact.filter((name) => mine.has(name)).length;
        }
        const recall = agree / (exactLat.length * 10);
        const stats = await store.stats();
        await store.close();

        // A second instance with the real model over the same schema: ready() at a restart, then hybrid search.
        const full = new PgMemoryStore({ url: PG_URL, schema, embedder });
        const tOpen = performance.now();
        await full.ready();
        const openMs = performance.now() - tOpen;
        const hybrid: number[] = [];
        for (const q of queryTexts) {
          const t = performance.now();
          await full.search({ query: q, scopes: ['workspace'], limit: 10 });
          hybrid.push(performance.now() - t);
        }
        await full.close();

        const sm = summarize(sem);
        const ex = summarize(exactLat);
        const h = summarize(hybrid);
        const bytes = stats.database_bytes ?? 0;
        const target = size >= 100_000 ? 5 : undefined;
        rows.push({
          metric: `PG fill at ${n} (merge, ${FILL_BATCH.toLocaleString('en')} per transaction, vectors given; HNSW kept up to date), per entity`,
          value: fmtMs(fillMs / size),
          baseline: '—',
        });
        rows.push({
          metric: `PG semantic search at ${n} entities (HNSW, iterative scan; + row reads), p50 / p99`,
          value: `${fmtMs(sm.p50)} / ${fmtMs(sm.p99)}`,
          baseline: `exact scan (index scans off) p50 ${fmtMs(ex.p50)} / p99 ${fmtMs(ex.p99)} (${ex.n} queries)`,
          ...(target !== undefined && {
            target: `p99 ≤ ${target} ms (documents: 10-50 ms)`,
            verdict: verdict(sm.p99 <= target),
          }),
        });
        rows.push({
          metric: `PG hybrid search at ${n} entities incl. embedding the query, p50 / p99`,
          value: `${fmtMs(h.p50)} / ${fmtMs(h.p99)}`,
          baseline: `restart: ready() ${fmtMs(openMs)}`,
        });
        rows.push({
          metric: `PG recall@10 against exact search at ${n} (${exactLat.length} queries)`,
          value: fmt(recall, 3),
          baseline: '1.000 (exact scan)',
          target: '≥ 0.95',
          verdict: verdict(recall >= 0.95),
        });
        rows.push({
          metric: `PG bytes per entity at ${n} (tables, indexes incl. HNSW, TOAST)`,
          value: `${fmt(bytes / size / 1024)} KB`,
          baseline: '—',
          target: 'documents: about 2.5 KB',
        });
        (raw.sizes as unknown[]).push({
          size,
          fill_ms: fillMs,
          restart_ms: openMs,
          recall,
          semantic: sm,
          exact: ex,
          hybrid: h,
          database_bytes: bytes,
        });
        note(
          `postgres size ${size}: semantic p99 ${fmtMs(sm.p99)}, recall ${fmt(recall, 3)}, ${fmt(bytes / size / 1024)} KB per entity`,
        );
      }
      return {
        rows,
        raw,
        notes: [
          `PostgreSQL ${server}, pgvector ${ext.version}, on this machine (127.0.0.1, same 2 cores as the benchmark process and the embedding model). Each size is a fresh schema, dropped afterwards.`,
          `Vectors beyond the ${EMBED_N} embedded for real are blends of two real ones plus noise, as in the memory suite; query vectors are the real model's. Recall compares the store's semantic top 10 with the exact top 10 of a sequential scan.`,
        ],
      };
    } finally {
      for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`).catch(() => undefined);
      await admin.end();
      await embedder.close();
    }
  },
};
