/**
 * The memory store on a backend (docs/benchmarks.md, "Memory on SQLite" and "Memory on PostgreSQL
 * + pgvector"): insert with the real local embedding model beside embedding alone, fill with given
 * vectors (blends of the real ones, bench/lib/memory-data.ts), semantic search through the store
 * beside the exact scan (the recall reference), hybrid search including the query's embedding, a
 * restart, and bytes per entity. `memory` runs SQLite (above BENCH_MEMORY_STORE_MAX the vector index
 * alone, as at 1,000,000); `memory-postgres` runs PgMemoryStore on BENCH_PG_URL, a fresh schema a size.
 */
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import pg from 'pg';
import type * as Usearch from 'usearch';
import { sha256File } from '../src/memory/ann-file.js';
import { createEmbedder, type Embedder } from '../src/memory/embedding/index.js';
import { ANN_FILE_NAME, entityText, MEMORY_MIGRATIONS, MemoryStore } from '../src/memory/index.js';
import { PgMemoryStore, vectorLiteral } from '../src/memory/pg-store.js';
import { ANN_MIN_VECTORS, ANN_PARAMS, VectorIndex } from '../src/memory/vector-index.js';
import { migrate, openDatabase } from '../src/storage/index.js';
import { MB, settle } from './lib/memory.js';
import { entityAt, queryText, Replay, synthetic } from './lib/memory-data.js';
import { note } from './lib/progress.js';
import { rng } from './lib/random.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { envNumber, fmt, fmtMs, summarize, verdict, type Summary } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const QUICK = process.env.BENCH_MEMORY_QUICK === '1';
const EMBED_N = envNumber('BENCH_MEMORY_EMBED', 2000);
const STORE_MAX = envNumber('BENCH_MEMORY_STORE_MAX', 100_000);
const QUERIES = envNumber('BENCH_MEMORY_QUERIES', 200);
/** Queries timed with the exact scan where it is slow (PostgreSQL, the index alone at 1,000,000). */
const EXACT_QUERIES = envNumber('BENCH_MEMORY_EXACT_QUERIES', 50);
const PG_URL =
  process.env.BENCH_PG_URL ?? process.env.CAXTON_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const sizes = (name: string, def: string) => (process.env[name] ?? def).split(',').map(Number);
const pq = (s: Summary) => `${fmtMs(s.p50)} / ${fmtMs(s.p99)}`;
/** What the store's semantic search asks of the index for 10 results (MemoryStore.search: the pool). */
const POOL = 40;
const WORKSPACE = new Set(['workspace']);

type Store = Pick<MemoryStore, 'merge' | 'search' | 'close' | 'ready'>;

/** One size's store on a backend: what differs between SQLite and PostgreSQL. */
interface Opened {
  store: Store;
  /** After the fill: wait for what the backend does in the background; a row's text when it has one. */
  settled(): Promise<Row | undefined>;
  /** Exact top-10 timings and recall@10 of the semantic search's `names` (per query) against them. */
  exact(qv: Float32Array[], names: string[][]): Promise<{ exact: Summary; recall: number }>;
  /** Closes `store` and gives the bytes per entity and their parts. */
  closeAndMeasure(): Promise<{ bytes: number; parts?: string }>;
  /** A second store with the real model on the same data (a restart). */
  reopen(e: Embedder): Store;
  dispose(): Promise<void>;
}

interface Backend {
  prefix: string;
  sizes: number[];
  /** The bytes row's parenthesis. */
  bytesWhat: string;
  open(size: number, e: Embedder): Promise<Opened>;
  close(): Promise<void>;
}

function sqlite(): Backend {
  return {
    prefix: '',
    sizes: sizes('BENCH_MEMORY_SIZES', QUICK ? '10000,100000' : '10000,100000,1000000'),
    bytesWhat: 'SQLite: rows, FTS5, f32 vectors; + memory.usearch from the graph size',
    async open(size, e) {
      const dir = tempDir();
      const db = openDatabase(dir.path);
      migrate(db, MEMORY_MIGRATIONS);
      const store = new MemoryStore(db, { embedder: e });
      const graph = size >= ANN_MIN_VECTORS;
      return {
        store,
        async settled() {
          if (!graph) return undefined;
          const t = performance.now();
          while (!store.vectorIndex!.annComplete) await new Promise((r) => setImmediate(r));
          const built = performance.now() - t;
          while (store.annStatus().saved_seq === null) await new Promise((r) => setImmediate(r));
          return {
            metric: `HNSW graph at ${size.toLocaleString('en')}: background build after the fill; saved`,
            value: `built ${fmt(built / 1000)} s after the fill; saved ${fmtMs(performance.now() - t - built)} after`,
            baseline: '—',
          };
        },
        async exact(qv) {
          const lat = qv.map((v) => {
            const t = performance.now();
            store.vectorIndex!.exactSearch(v, 10, WORKSPACE);
            return performance.now() - t;
          });
          return { exact: summarize(lat), recall: recallAt10(store.vectorIndex!, qv) };
        },
        async closeAndMeasure() {
          await store.close();
          db.pragma('wal_checkpoint(TRUNCATE)');
          const rows = statSync(join(dir.path, 'caxton.db')).size / size;
          const file = graph ? statSync(join(dir.path, ANN_FILE_NAME)).size / size : 0;
          return { bytes: rows + file, ...(graph && { parts: `${fmt(rows / 1024)} + ${fmt(file / 1024)}` }) };
        },
        reopen: (real) => new MemoryStore(db, { embedder: real }),
        async dispose() {
          db.close();
          dir.remove();
        },
      };
    },
    close: async () => undefined,
  };
}

function postgres(): Backend {
  const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
  let vectorSchema: string | undefined;
  return {
    prefix: 'PG ',
    sizes: sizes('BENCH_PG_SIZES', '10000,100000'),
    bytesWhat: 'tables, indexes incl. HNSW and GIN, TOAST',
    async open(size, e) {
      if (vectorSchema === undefined) {
        await admin.query('CREATE EXTENSION IF NOT EXISTS vector').catch((err: unknown) => {
          throw new Error(`pgvector is not available (${(err as Error).message}): run scripts/setup-pgvector.sh`);
        });
        const sql =
          "SELECT n.nspname AS s FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'";
        vectorSchema = (await admin.query<{ s: string }>(sql)).rows[0]!.s;
      }
      const schema = `caxton_bench_${size}_${Math.random().toString(36).slice(2, 8)}`;
      const store = new PgMemoryStore({ url: PG_URL, schema, embedder: e });
      await store.ready();
      let bytes = 0;
      return {
        store,
        async settled() {
          // Steady state: vacuumed and analyzed (autovacuum would otherwise run during the searches).
          await admin.query(`VACUUM ANALYZE "${schema}".entities`);
          return undefined;
        },
        async exact(qv, names) {
          const lat: number[] = [];
          let agree = 0;
          for (const [q, v] of qv.slice(0, EXACT_QUERIES).entries()) {
            const c = await admin.connect();
            const t = performance.now();
            try {
              await c.query('BEGIN; SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off');
              const { rows } = await c.query<{ name: string }>(
                `SELECT name FROM "${schema}".entities WHERE scope = 'workspace' ORDER BY embedding OPERATOR("${vectorSchema}".<=>) $1::"${vectorSchema}".vector LIMIT 10`,
                [vectorLiteral(v)],
              );
              await c.query('COMMIT');
              lat.push(performance.now() - t);
              agree += rows.filter((r) => names[q]!.includes(r.name)).length;
            } finally {
              c.release();
            }
          }
          return { exact: summarize(lat), recall: agree / (lat.length * 10) };
        },
        async closeAndMeasure() {
          bytes = ((await store.stats()).database_bytes ?? 0) / size;
          await store.close();
          return { bytes };
        },
        reopen: (real) => new PgMemoryStore({ url: PG_URL, schema, embedder: real }),
        async dispose() {
          await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
        },
      };
    },
    close: () => admin.end(),
  };
}

function recallAt10(index: VectorIndex, queries: Float32Array[]): number {
  let agree = 0;
  for (const v of queries) {
    const got = new Set(
      index
        .search(v, POOL, WORKSPACE)
        .slice(0, 10)
        .map((x) => x.id),
    );
    agree += index.exactSearch(v, 10, WORKSPACE).filter((x) => got.has(x.id)).length;
  }
  return agree / (queries.length * 10);
}

/** Insert with the real model, 500 per transaction, beside embedding the same texts alone; the vectors. */
async function insert(b: Backend, e: Embedder, rand: () => number) {
  const items = Array.from({ length: EMBED_N }, (_, i) => entityAt(rand, i));
  const s = await b.open(EMBED_N, e);
  try {
    const t0 = performance.now();
    for (let i = 0; i < items.length; i += 500) await s.store.merge(items.slice(i, i + 500), []);
    const perEntity = (performance.now() - t0) / EMBED_N;
    await s.store.close();
    const t1 = performance.now();
    const vectors: Float32Array[] = [];
    for (let i = 0; i < items.length; i += 500)
      vectors.push(...(await e.embed(items.slice(i, i + 500).map(entityText))));
    return { perEntity, embedPerEntity: (performance.now() - t1) / EMBED_N, vectors };
  } finally {
    await s.dispose();
  }
}

/** One size through the store: fill, semantic search beside the exact scan, restart, hybrid search, bytes. */
async function throughStore(
  b: Backend,
  size: number,
  ctx: { e: Embedder; real: Float32Array[]; qv: Float32Array[]; texts: string[]; rand: () => number },
): Promise<Row[]> {
  const n = size.toLocaleString('en');
  const replay = new Replay(ctx.e.model, ctx.e.dimensions);
  const s = await b.open(size, replay);
  try {
    const t0 = performance.now();
    for (let i = 0; i < size; i += 5000) {
      const batch = Array.from({ length: Math.min(5000, size - i) }, (_, k) => entityAt(ctx.rand, i + k));
      replay.queue.push(...batch.map(() => synthetic(ctx.real, ctx.rand)));
      await s.store.merge(batch, []);
    }
    const fillMs = performance.now() - t0;
    note(`${b.prefix}size ${size}: filled in ${fmt(fillMs / 1000)} s`);
    const graphRow = await s.settled();
    const sem: number[] = [];
    const names: string[][] = [];
    for (const v of ctx.qv) {
      replay.queue = [v];
      const t = performance.now();
      const hits = await s.store.search({ query: 'x', scopes: ['workspace'], limit: 10, mode: 'semantic' });
      sem.push(performance.now() - t);
      names.push(hits.map((h) => h.entity.name));
    }
    const { exact, recall } = await s.exact(ctx.qv, names);
    const { bytes, parts } = await s.closeAndMeasure();
    const full = s.reopen(ctx.e);
    const tOpen = performance.now();
    await full.ready();
    const openMs = performance.now() - tOpen;
    const hybrid: number[] = [];
    for (const q of ctx.texts) {
      const t = performance.now();
      await full.search({ query: q, scopes: ['workspace'], limit: 10 });
      hybrid.push(performance.now() - t);
    }
    await full.close();
    const sm = summarize(sem);
    note(`${b.prefix}size ${size}: semantic p99 ${fmtMs(sm.p99)}, recall ${fmt(recall, 3)}`);
    return [
      {
        metric: `${b.prefix}fill at ${n} (5,000 per transaction, vectors given), per entity`,
        value: fmtMs(fillMs / size),
        baseline: '—',
      },
      ...(graphRow ? [graphRow] : []),
      {
        metric: `${b.prefix}semantic search at ${n} (+ row reads), p50 / p99`,
        value: pq(sm),
        baseline: `exact scan ${pq(exact)} (${exact.n} queries)`,
        ...(size >= 100_000 && { target: 'p99 ≤ 5 ms (documents: 10-50 ms)', verdict: verdict(sm.p99 <= 5) }),
      },
      {
        metric: `${b.prefix}hybrid search at ${n} incl. embedding the query, p50 / p99`,
        value: pq(summarize(hybrid)),
        baseline: `restart: ready() ${fmtMs(openMs)}`,
      },
      {
        metric: `${b.prefix}recall@10 at ${n}`,
        value: fmt(recall, 3),
        baseline: '1.000 (exact scan)',
        target: '≥ 0.95',
        verdict: verdict(recall >= 0.95),
      },
      {
        metric: `${b.prefix}bytes per entity at ${n} (${b.bytesWhat})`,
        value: `${fmt(bytes / 1024)} KB${parts ? ` (${parts})` : ''}`,
        baseline: '—',
        target: 'documents: about 2.5 KB',
      },
    ];
  } finally {
    await s.dispose();
  }
}

/** The vector index alone, filled with `size` precomputed vectors: build, save, check + load, search. */
async function indexOnly(
  size: number,
  dims: number,
  real: Float32Array[],
  qv: Float32Array[],
  rand: () => number,
): Promise<Row[]> {
  const n = size.toLocaleString('en');
  const d = tempDir();
  const index = new VectorIndex(dims, size, { hold: true, annMinVectors: Math.min(size, ANN_MIN_VECTORS) });
  try {
    const v = new Float32Array(dims);
    for (let i = 0; i < size; i++) index.set(i + 1, 'workspace', 'note', synthetic(real, rand, v));
    note(`size ${size}: building the HNSW graph in the background (single-threaded)`);
    const t0 = performance.now();
    index.release();
    while (!index.annComplete) await new Promise((r) => setTimeout(r, 5));
    const buildMs = performance.now() - t0;
    const time = (qs: Float32Array[], f: (q: Float32Array) => unknown) =>
      summarize(qs.map((q) => ((t) => (f(q), performance.now() - t))(performance.now())));
    const sm = time(qv, (q) => index.search(q, POOL, WORKSPACE));
    const ex = time(qv.slice(0, EXACT_QUERIES), (q) => index.exactSearch(q, 10, WORKSPACE));
    const recall = recallAt10(index, qv.slice(0, EXACT_QUERIES));
    const rss = process.memoryUsage().rss;
    const file = join(d.path, ANN_FILE_NAME);
    const tSave = performance.now();
    index.saveAnn(file);
    const saveMs = performance.now() - tSave;
    const tLoad = performance.now();
    sha256File(file);
    const { Index, MetricKind, ScalarKind } = createRequire(import.meta.url)('usearch') as typeof Usearch;
    const { connectivity, expansion_add, expansion_search } = ANN_PARAMS;
    new Index({
      dimensions: dims,
      metric: MetricKind.Cos,
      quantization: ScalarKind.F16,
      connectivity,
      expansion_add,
      expansion_search,
      multi: false,
    }).load(file);
    const loadMs = performance.now() - tLoad;
    return [
      {
        metric: `HNSW graph at ${n} (index only): build from scratch, single-threaded`,
        value: `${fmt(buildMs / 1000)} s`,
        baseline: `save ${fmtMs(saveMs)}; SHA-256 check + load ${fmtMs(loadMs)}`,
      },
      {
        metric: `semantic search at ${n} (index only: HNSW f16, beam widened, re-scored), p50 / p99`,
        value: pq(sm),
        baseline: `exact scan ${pq(ex)} (${ex.n} queries)`,
        target: 'p99 ≤ 20 ms',
        verdict: verdict(sm.p99 <= 20),
      },
      {
        metric: `recall@10 at ${n} (${ex.n} queries)`,
        value: fmt(recall, 3),
        baseline: '1.000 (exact scan)',
        target: '≥ 0.95',
        verdict: verdict(recall >= 0.95),
      },
      {
        metric: `memory.usearch per entity at ${n} / resident memory (model + f32 rows + f16 graph)`,
        value: `${fmt(statSync(file).size / size / 1024)} KB / ${fmt(rss / MB, 0)} MB`,
        baseline: '—',
      },
    ];
  } finally {
    index.dispose();
    d.remove();
  }
}

function memorySuiteOn(name: string, make: () => Backend): Suite {
  return {
    name,
    description: `memory store (${name}): insert with embedding, fill and search, recall@10, bytes per entity`,
    async run(): Promise<SuiteReport> {
      const b = make();
      const rand = rng(6);
      await settle();
      const rssBefore = process.memoryUsage().rss;
      const e = await createEmbedder({ kind: 'local' });
      await e.embed(['warm up']);
      await settle();
      const rssModel = process.memoryUsage().rss;
      const rows: Row[] = [];
      try {
        const graphs = b.prefix === '' ? ['fp32', 'int8'] : ['fp32'];
        let real: Float32Array[] = [];
        for (const graph of graphs) {
          const g = graph === 'int8' ? await createEmbedder({ kind: 'local', graph: 'int8' }) : e;
          await g.embed(['warm up']);
          const r = await insert(b, g, rand);
          if (g !== e) await g.close();
          else real = r.vectors;
          rows.push({
            metric: `${b.prefix}insert with embedding (${EMBED_N} entities, 500 per transaction${graph === 'int8' ? ', local_graph = "int8"' : ''}), per entity`,
            value: fmtMs(r.perEntity),
            baseline: `embedding the same texts alone ${fmtMs(r.embedPerEntity)}`,
            target: '≤ 3 ms (documents: 5-20 ms)',
            verdict: verdict(r.perEntity <= 3),
          });
        }
        const texts = Array.from({ length: QUERIES }, () => queryText(rand));
        const ctx = { e, real, qv: await e.embed(texts), texts, rand };
        for (const size of b.sizes)
          rows.push(
            ...(size <= STORE_MAX || b.prefix !== ''
              ? await throughStore(b, size, ctx)
              : await indexOnly(size, e.dimensions, real, ctx.qv, rand)),
          );
      } finally {
        await b.close();
        await e.close();
      }
      if (b.prefix === '')
        rows.push({
          metric: 'resident memory with the model loaded (this process, before the sizes)',
          value: `${fmt(rssModel / MB, 0)} MB (+${fmt((rssModel - rssBefore) / MB, 0)} MB for the model)`,
          baseline: '—',
          target: 'documents: about 200 MB',
        });
      return {
        rows,
        notes: [
          `Beyond the ${EMBED_N} entities embedded for real, vectors are blends of two real ones plus noise; query vectors are the real model's. From ${ANN_MIN_VECTORS.toLocaleString('en')} vectors SQLite searches the HNSW graph (ADR 0010).`,
        ],
        raw: { rows },
      };
    },
  };
}

export const memorySuite = memorySuiteOn('memory', sqlite);
export const memoryPostgresSuite = memorySuiteOn('memory-postgres', postgres);
