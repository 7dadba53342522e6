/**
 * The memory store: insert with embedding (the real local all-MiniLM-L6-v2, in one
 * transaction per batch), search latency (the HNSW graph from ANN_MIN_VECTORS entities on, else
 * the exact scan of the in-process Float32Array index, which is also measured alone as the
 * same-run baseline; and the whole hybrid search including the query's embedding and the FTS5
 * keyword part), recall@10 of the semantic search against the exact scan, the graph's build time,
 * its save and its load at a restart, bytes per entity on disk, and resident memory with the model
 * loaded.
 *
 * Sizes (BENCH_MEMORY_SIZES, default 10000,100000,1000000; BENCH_MEMORY_QUICK=1: 10000,100000):
 *  - up to BENCH_MEMORY_STORE_MAX (100,000) the entities go through the store (SQLite rows, FTS5,
 *    vectors, the graph kept by the store, saved at close and loaded at the restart);
 *  - above it (1,000,000) only the vector index is measured, filled with precomputed vectors:
 *    embedding a million texts with the local model would take about 50 minutes here. SQLite bytes
 *    per entity are then taken from the largest store size.
 *
 * Vectors: BENCH_MEMORY_EMBED entities are embedded for real (the insert measurement); the rest
 * are made from those (a blend of two real vectors plus Gaussian noise, renormalized), so the
 * index holds realistic, non-uniform vectors. Queries are embedded by the real model.
 */
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as Usearch from 'usearch';
import { sha256File } from '../src/memory/ann-file.js';
import { createEmbedder, type Embedder } from '../src/memory/embedding/index.js';
import { ANN_FILE_NAME, entityText, MEMORY_MIGRATIONS, MemoryStore } from '../src/memory/index.js';
import { ANN_MIN_VECTORS, ANN_PARAMS, VectorIndex } from '../src/memory/vector-index.js';
import { migrate, openDatabase } from '../src/storage/index.js';
import { MB, settle } from './lib/memory.js';
import { note } from './lib/progress.js';
import { entityAt, queryText, Replay, synthetic } from './lib/memory-data.js';
import { rng } from './lib/random.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt, fmtMs, summarize } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const env = (name: string, def: string) => process.env[name] ?? def;
const QUICK = env('BENCH_MEMORY_QUICK', '') === '1';
const EMBED_N = Number(env('BENCH_MEMORY_EMBED', '2000'));
const SIZES = env('BENCH_MEMORY_SIZES', QUICK ? '10000,100000' : '10000,100000,1000000')
  .split(',')
  .map(Number);
const STORE_MAX = Number(env('BENCH_MEMORY_STORE_MAX', '100000'));
const QUERIES = Number(env('BENCH_MEMORY_QUERIES', '200'));
/** Queries timed with the exact scan when only the index is measured (a scan of 1M takes ~0.4 s). */
const EXACT_QUERIES_LARGE = Number(env('BENCH_MEMORY_EXACT_QUERIES', '50'));

const { Index, MetricKind, ScalarKind } = createRequire(import.meta.url)('usearch') as typeof Usearch;

const verdict = (ok: boolean) => (ok ? ('pass' as const) : ('fail' as const));

/** What the store's semantic search asks of the index for `limit` results (MemoryStore.search: the pool). */
const POOL = Math.max(10 * 4, 20);

function recallAt10(index: VectorIndex, queries: Float32Array[], scopes: ReadonlySet<string>): number {
  let agree = 0;
  for (const v of queries) {
    const exact = index.exactSearch(v, 10, scopes);
    const got = new Set(
      index
        .search(v, POOL, scopes)
        .slice(0, 10)
        .map((x) => x.id),
    );
    agree += exact.filter((x) => got.has(x.id)).length;
  }
  return agree / (queries.length * 10);
}

async function untilBuilt(index: VectorIndex): Promise<void> {
  while (!index.annComplete) await new Promise((r) => setImmediate(r));
}

export const memorySuite: Suite = {
  name: 'memory',
  description: `memory store: insert with embedding (${EMBED_N} real), search at ${SIZES.join(', ')} entities (store up to ${STORE_MAX}, index only above), graph build/save/load, bytes on disk, RSS`,
  async run(): Promise<SuiteReport> {
    const rows: Row[] = [];
    const raw: Record<string, unknown> = { sizes: [] };
    const notes: string[] = [];
    const rand = rng(6);
    await settle();
    const rssBefore = process.memoryUsage().rss;
    const embedder = await createEmbedder({ kind: 'local' });
    await embedder.embed(['warm up']);
    await settle();
    const rssModel = process.memoryUsage().rss;
    const scopes = new Set(['workspace']);
    let sqliteBytesPerEntity: { size: number; bytes: number } | undefined;

    // 1. Insert with real embedding, batches of 500 entities per transaction: the default fp32
    // graph, then the int8 option on the same texts. Baseline: embedding the same texts alone.
    const items = Array.from({ length: EMBED_N }, (_, i) => entityAt(rand, i));
    const insert = async (
      e: Embedder,
    ): Promise<{ perEntity: number; embedPerEntity: number; vectors: Float32Array[] }> => {
      const dir = tempDir();
      try {
        const db = openDatabase(dir.path);
        migrate(db, MEMORY_MIGRATIONS);
        const store = new MemoryStore(db, { embedder: e });
        const t0 = performance.now();
        for (let i = 0; i < items.length; i += 500) await store.merge(items.slice(i, i + 500), []);
        const perEntity = (performance.now() - t0) / EMBED_N;
        const tEmbed = performance.now();
        for (let i = 0; i < items.length; i += 500) await e.embed(items.slice(i, i + 500).map(entityText));
        const embedPerEntity = (performance.now() - tEmbed) / EMBED_N;
        const vectors = (
          db.prepare('SELECT vector FROM memory_embeddings ORDER BY entity_id').all() as { vector: Buffer }[]
        ).map(
          (r) =>
            new Float32Array(r.vector.buffer.slice(r.vector.byteOffset, r.vector.byteOffset + r.vector.byteLength)),
        );
        await store.close();
        db.close();
        return { perEntity, embedPerEntity, vectors };
      } finally {
        dir.remove();
      }
    };
    const fp32 = await insert(embedder);
    const realVectors = fp32.vectors;
    const int8Embedder = await createEmbedder({ kind: 'local', graph: 'int8' });
    await int8Embedder.embed(['warm up']);
    const int8 = await insert(int8Embedder);
    await int8Embedder.close();
    note(
      `inserted ${EMBED_N} entities with embedding: ${fmtMs(fp32.perEntity)} per entity (embedding alone ${fmtMs(fp32.embedPerEntity)}); int8 graph ${fmtMs(int8.perEntity)} (${fmtMs(int8.embedPerEntity)})`,
    );
    rows.push({
      metric: `insert with embedding (${EMBED_N} entities, 500 per transaction), per entity amortized`,
      value: fmtMs(fp32.perEntity),
      baseline: `embedding the same texts alone ${fmtMs(fp32.embedPerEntity)}`,
      target: '≤ 3 ms (documents: 5-20 ms)',
      verdict: verdict(fp32.perEntity <= 3),
    });
    rows.push({
      metric: `insert with embedding, option local_graph = "int8" (quantized model), per entity amortized`,
      value: fmtMs(int8.perEntity),
      baseline: `embedding the same texts alone ${fmtMs(int8.embedPerEntity)}`,
      target: '≤ 3 ms',
      verdict: verdict(int8.perEntity <= 3),
    });
    raw.insert = {
      entities: EMBED_N,
      fp32: { per_entity_ms: fp32.perEntity, embed_only_per_entity_ms: fp32.embedPerEntity },
      int8: { per_entity_ms: int8.perEntity, embed_only_per_entity_ms: int8.embedPerEntity },
    };

    const queryTexts = Array.from({ length: QUERIES }, () => queryText(rand));
    const qv = await embedder.embed(queryTexts);

    // 2. Through the store (SQLite rows, FTS5, vectors, the graph saved and loaded again).
    for (const size of SIZES.filter((n) => n <= STORE_MAX)) {
      const d = tempDir();
      try {
        const sdb = openDatabase(d.path);
        migrate(sdb, MEMORY_MIGRATIONS);
        const replay = new Replay(embedder.model, embedder.dimensions);
        const sstore = new MemoryStore(sdb, { embedder: replay });
        const t1 = performance.now();
        for (let i = 0; i < size; i += 5000) {
          const batch = Array.from({ length: Math.min(5000, size - i) }, (_, k) => entityAt(rand, i + k));
          replay.queue.push(...batch.map(() => synthetic(realVectors, rand)));
          await sstore.merge(batch, []);
        }
        const fillMs = performance.now() - t1;
        // The graph is built in the background once the store holds ANN_MIN_VECTORS (it started during the fill).
        const tAnn = performance.now();
        const vindex = sstore.vectorIndex!;
        const graph = size >= ANN_MIN_VECTORS;
        if (graph) await untilBuilt(vindex);
        const annWaitMs = performance.now() - tAnn;
        // The store saves the graph once it is built (in the background): wait for that too.
        const tSaved = performance.now();
        if (graph) while (sstore.annStatus().saved_seq === null) await new Promise((r) => setImmediate(r));
        const savedMs = performance.now() - tSaved;
        // Semantic search through the store, the query vector given (no embedding), then the exact scan alone.
        const sem: number[] = [];
        for (const v of qv) {
          replay.queue = [v];
          const t = performance.now();
          await sstore.search({ query: 'x', scopes: ['workspace'], limit: 10, mode: 'semantic' });
          sem.push(performance.now() - t);
        }
        const exactLat: number[] = [];
        for (const v of qv) {
          const t = performance.now();
          vindex.exactSearch(v, 10, scopes);
          exactLat.push(performance.now() - t);
        }
        // Close: saves the graph (timed), then restart with the real model (timed: rows from SQLite + the saved graph).
        const tClose = performance.now();
        await sstore.close();
        const closeMs = performance.now() - tClose;
        sdb.pragma('wal_checkpoint(TRUNCATE)');
        const dbBytes = statSync(join(d.path, 'caxton.db')).size;
        const graphBytes = graph ? statSync(join(d.path, ANN_FILE_NAME)).size : 0;
        sqliteBytesPerEntity = { size, bytes: dbBytes / size };
        const full = new MemoryStore(sdb, { embedder });
        const tOpen = performance.now();
        await full.ready();
        const openMs = performance.now() - tOpen;
        const ann = full.annStatus();
        const hybrid: number[] = [];
        for (const q of queryTexts) {
          const t = performance.now();
          await full.search({ query: q, scopes: ['workspace'], limit: 10 });
          hybrid.push(performance.now() - t);
        }
        // Recall@10 of what the semantic search uses (the loaded graph, or the exact scan) against the exact scan.
        const recall = recallAt10(full.vectorIndex!, qv, scopes);
        await full.close();
        sdb.close();

        const ex = summarize(exactLat);
        const sm = summarize(sem);
        const h = summarize(hybrid);
        const n = size.toLocaleString('en');
        const how = graph ? 'HNSW f16 graph' : 'exact scan';
        const target = size >= 100_000 ? 5 : undefined;
        rows.push({
          metric: `store fill at ${n} (merge, 5,000 per transaction, vectors given; graph built alongside), per entity`,
          value: fmtMs(fillMs / size),
          baseline: '—',
        });
        if (graph)
          rows.push({
            metric: `HNSW graph at ${n}: background build finished ${fmt(annWaitMs / 1000)} s after the fill; saved at close; restart (rows from SQLite + saved graph checked and loaded)`,
            value: `saved ${fmtMs(savedMs)} after the build; restart ${fmtMs(openMs)} (graph from ${ann.source}: checked and loaded in ${fmtMs(ann.load_ms ?? 0)})`,
            baseline: '—',
          });
        rows.push({
          metric: `semantic search at ${n} entities (${how}; + row reads), p50 / p99`,
          value: `${fmtMs(sm.p50)} / ${fmtMs(sm.p99)}`,
          baseline: `exact scan alone p50 ${fmtMs(ex.p50)} / p99 ${fmtMs(ex.p99)}`,
          ...(target !== undefined && {
            target: `p99 ≤ ${target} ms (documents: 10-50 ms)`,
            verdict: verdict(sm.p99 <= target),
          }),
        });
        rows.push({
          metric: `hybrid search at ${n} entities incl. embedding the query, p50 / p99`,
          value: `${fmtMs(h.p50)} / ${fmtMs(h.p99)}`,
          baseline: '—',
        });
        rows.push({
          metric: `recall@10 against exact search at ${n}`,
          value: fmt(recall, 3),
          baseline: '1.000 (exact scan)',
          target: '≥ 0.95',
          verdict: verdict(recall >= 0.95),
        });
        rows.push({
          metric: `bytes per entity on disk at ${n} (SQLite: rows, FTS5, f32 vectors${graph ? ' + memory.usearch' : ''})`,
          value: `${fmt((dbBytes + graphBytes) / size / 1024)} KB${graph ? ` (${fmt(dbBytes / size / 1024)} + ${fmt(graphBytes / size / 1024)})` : ''}`,
          baseline: '—',
          target: 'documents: about 2.5 KB',
        });
        (raw.sizes as unknown[]).push({
          size,
          mode: 'store',
          fill_ms: fillMs,
          ann_wait_after_fill_ms: annWaitMs,
          close_ms: closeMs,
          saved_after_build_ms: savedMs,
          restart_ms: openMs,
          ann,
          recall,
          exact: ex,
          semantic: sm,
          hybrid: h,
          db_bytes: dbBytes,
          graph_bytes: graphBytes,
        });
        note(
          `size ${size}: filled in ${fmt(fillMs / 1000)} s, graph ${fmt(annWaitMs / 1000)} s after, ${fmt((dbBytes + graphBytes) / MB)} MB on disk, recall ${fmt(recall, 3)}`,
        );
      } finally {
        d.remove();
      }
    }

    // 3. Index only, precomputed vectors (sizes above STORE_MAX).
    for (const size of SIZES.filter((n) => n > STORE_MAX)) {
      const d = tempDir();
      try {
        const n = size.toLocaleString('en');
        const index = new VectorIndex(embedder.dimensions, size, { hold: true });
        const tFill = performance.now();
        const v = new Float32Array(embedder.dimensions);
        for (let i = 0; i < size; i++) index.set(i + 1, 'workspace', 'note', synthetic(realVectors, rand, v));
        const fillMs = performance.now() - tFill;
        note(
          `size ${size}: ${n} precomputed vectors in the index (${fmt(fillMs / 1000)} s); building the HNSW graph in the background (single-threaded)`,
        );
        const tBuild = performance.now();
        index.release();
        let last = performance.now();
        while (!index.annComplete) {
          await new Promise((r) => setImmediate(r));
          if (performance.now() - last > 30_000) {
            last = performance.now();
            note(`  graph build: ${fmt((last - tBuild) / 1000, 0)} s`);
          }
        }
        const buildMs = performance.now() - tBuild;
        note(`size ${size}: graph built in ${fmt(buildMs / 1000)} s`);
        const lat: number[] = [];
        for (const q of qv) {
          const t = performance.now();
          index.search(q, POOL, scopes);
          lat.push(performance.now() - t);
        }
        const exactLat: number[] = [];
        for (const q of qv.slice(0, EXACT_QUERIES_LARGE)) {
          const t = performance.now();
          index.exactSearch(q, 10, scopes);
          exactLat.push(performance.now() - t);
        }
        const recall = recallAt10(index, qv.slice(0, EXACT_QUERIES_LARGE), scopes);
        const rss = process.memoryUsage().rss;
        // Save the graph, then what a restart does with it: hash check and load.
        const file = join(d.path, ANN_FILE_NAME);
        const tSave = performance.now();
        index.saveAnn(file);
        const saveMs = performance.now() - tSave;
        const graphBytes = statSync(file).size;
        const tLoad = performance.now();
        sha256File(file);
        const hashMs = performance.now() - tLoad;
        const loaded = new Index({
          dimensions: embedder.dimensions,
          metric: MetricKind.Cos,
          quantization: ScalarKind.F16,
          connectivity: ANN_PARAMS.connectivity,
          expansion_add: ANN_PARAMS.expansion_add,
          expansion_search: ANN_PARAMS.expansion_search,
          multi: false,
        });
        loaded.load(file);
        const loadMs = performance.now() - tLoad;
        index.dispose();
        const sm = summarize(lat);
        const ex = summarize(exactLat);
        rows.push({
          metric: `HNSW graph at ${n} (index only, precomputed vectors): background build from scratch, single-threaded`,
          value: `${fmt(buildMs / 1000)} s`,
          baseline: `saved file: save ${fmtMs(saveMs)}, check (SHA-256) + load ${fmtMs(loadMs)} (hash ${fmtMs(hashMs)})`,
        });
        rows.push({
          metric: `semantic search at ${n} entities (index only: HNSW f16 graph, beam widened with the size, candidates re-scored), p50 / p99`,
          value: `${fmtMs(sm.p50)} / ${fmtMs(sm.p99)}`,
          baseline: `exact scan alone p50 ${fmtMs(ex.p50)} / p99 ${fmtMs(ex.p99)} (${ex.n} queries)`,
          target: 'p99 ≤ 20 ms',
          verdict: verdict(sm.p99 <= 20),
        });
        rows.push({
          metric: `recall@10 against exact search at ${n} (${EXACT_QUERIES_LARGE} queries)`,
          value: fmt(recall, 3),
          baseline: '1.000 (exact scan)',
          target: '≥ 0.95',
          verdict: verdict(recall >= 0.95),
        });
        if (sqliteBytesPerEntity) {
          rows.push({
            metric: `bytes per entity on disk at ${n} (SQLite per entity as measured at ${sqliteBytesPerEntity.size.toLocaleString('en')} + memory.usearch measured)`,
            value: `${fmt((sqliteBytesPerEntity.bytes + graphBytes / size) / 1024)} KB (${fmt(sqliteBytesPerEntity.bytes / 1024)} + ${fmt(graphBytes / size / 1024)})`,
            baseline: '—',
            target: 'documents: about 2.5 KB',
          });
        }
        rows.push({
          metric: `resident memory at ${n} (model + f32 rows + f16 graph, this process)`,
          value: `${fmt(rss / MB, 0)} MB`,
          baseline: '—',
        });
        (raw.sizes as unknown[]).push({
          size,
          mode: 'index-only',
          fill_ms: fillMs,
          build_ms: buildMs,
          save_ms: saveMs,
          hash_ms: hashMs,
          load_ms: loadMs,
          graph_bytes: graphBytes,
          recall,
          exact: ex,
          semantic: sm,
          rss,
        });
        notes.push(
          `${n} entities: the vector index alone, filled with ${n} precomputed vectors (blends of the real ones, no SQLite and no model for the fill: embedding a million texts would take ~50 minutes here); queries are real embeddings. The graph is built from scratch as at a first start without a saved file; later starts load the file instead.`,
        );
      } finally {
        d.remove();
      }
    }
    await settle();
    rows.push({
      metric: 'resident memory with the model loaded (this process, before the sizes)',
      value: `${fmt(rssModel / MB, 0)} MB (+${fmt((rssModel - rssBefore) / MB, 0)} MB for the model)`,
      baseline: '—',
      target: 'documents: about 200 MB',
    });
    raw.rss = { before: rssBefore, model_loaded: rssModel, end: process.memoryUsage().rss };
    await embedder.close();
    return {
      rows,
      raw,
      notes: [
        `Sizes: BENCH_MEMORY_SIZES (default 10000,100000,1000000; BENCH_MEMORY_QUICK=1 runs 10000,100000). Up to ${STORE_MAX.toLocaleString('en')} entities go through the store; above, the index alone. From ${ANN_MIN_VECTORS.toLocaleString('en')} vectors the search goes through the HNSW graph (ADR 0010), re-scored exactly; the exact scan is measured beside it.`,
        `Beyond the ${EMBED_N} entities embedded for real, vectors are blends of two real ones plus noise, renormalized (realistic, non-uniform); query vectors are the real model's.`,
        ...notes,
      ],
    };
  },
};
