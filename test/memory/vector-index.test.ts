/**
 * The HNSW graph behind large vector sets (usearch, f16): built in the background, recall@10
 * against the exact scan, scope/type filters honoured (with the exact fallback), and kept current
 * through updates and deletes.
 */
import { describe, expect, it } from 'vitest';
import { VectorIndex } from '../../src/memory/vector-index.js';
import { SeededEmbedder } from './helpers.js';

const D = 384;

/** Deterministic clustered unit vectors (random unit vectors would make every neighbour equally far). */
function dataset(n: number, clusters: number, seed = 7): Float32Array[] {
  let x = seed;
  const rnd = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5;
  const centers = Array.from({ length: clusters }, () => Float32Array.from({ length: D }, rnd));
  return Array.from({ length: n }, (_, i) => {
    const c = centers[i % clusters]!;
    const v = Float32Array.from({ length: D }, (_, j) => c[j]! + rnd() * 0.6);
    const norm = Math.hypot(...v);
    return v.map((y) => y / norm);
  });
}

async function ready(index: VectorIndex): Promise<void> {
  for (let i = 0; i < 10_000 && !index.annReady; i++) await new Promise((r) => setImmediate(r));
  expect(index.annReady).toBe(true);
}

const ALL = new Set(['global', 'agent:x']);

describe('VectorIndex with the HNSW graph', () => {
  const N = 12_000;
  const vectors = dataset(N, 120);
  const index = new VectorIndex(D, 1024, { annMinVectors: 5_000 });
  vectors.forEach((v, i) => index.set(i + 1, i % 20 === 0 ? 'agent:x' : 'global', i % 3 === 0 ? 'person' : 'place', v));

  it('builds in the background: exact answers meanwhile, the graph once complete', async () => {
    expect(index.annReady).toBe(false);
    const q = vectors[42]!;
    expect(index.search(q, 1, ALL)[0]!.id).toBe(43);
    await ready(index);
  });

  it('recall@10 against the exact scan is at least 0.95', async () => {
    await ready(index);
    let found = 0;
    const queries = 60;
    for (let i = 0; i < queries; i++) {
      const q = dataset(1, 1, 1000 + i)[0]!.map((y, j) => y * 0.2 + vectors[(i * 197) % N]![j]!);
      const norm = Math.hypot(...q);
      const qn = q.map((y) => y / norm);
      const exact = new Set(index.exactSearch(qn, 10, ALL).map((h) => h.id));
      const ann = index.search(qn, 10, ALL);
      expect(ann).toHaveLength(10);
      found += ann.filter((h) => exact.has(h.id)).length;
      // Scores are exact (re-scored against the float32 vectors), best first.
      for (let j = 1; j < ann.length; j++) expect(ann[j - 1]!.similarity).toBeGreaterThanOrEqual(ann[j]!.similarity);
    }
    expect(found / (queries * 10)).toBeGreaterThanOrEqual(0.95);
  });

  it('honours scopes and types: a small scope and a type filter give what the exact scan gives', async () => {
    await ready(index);
    const q = vectors[100]!;
    const small = new Set(['agent:x']);
    expect(index.search(q, 10, small)).toEqual(index.exactSearch(q, 10, small));
    for (const h of index.search(q, 10, ALL, 'person')) expect((h.id - 1) % 3).toBe(0);
    expect(index.search(q, 10, new Set(['nobody']))).toEqual([]);
  });

  it('follows updates and deletes', async () => {
    await ready(index);
    const q = vectors[500]!;
    expect(index.search(q, 1, ALL)[0]!.id).toBe(501);
    index.delete(501);
    expect(index.search(q, 5, ALL).map((h) => h.id)).not.toContain(501);
    // Entity 7 takes entity 501's old vector: it is now the best match.
    index.set(7, 'global', 'place', q);
    expect(index.search(q, 1, ALL)[0]).toMatchObject({ id: 7 });
    expect(index.search(q, 1, ALL)[0]!.similarity).toBeCloseTo(1, 5);
    index.dispose();
  });
});

describe('the background build', () => {
  it('leaves no vector unreachable: each one, searched with its own vector, comes first (multi-threaded adds did not)', async () => {
    const emb = new SeededEmbedder();
    const n = 6_000;
    const index = new VectorIndex(emb.dimensions, 1024, { annMinVectors: 1_000 });
    const vs = Array.from({ length: n }, (_, i) => emb.vectorOf(`reachable ${i}`));
    vs.forEach((v, i) => index.set(i + 1, 'global', 'note', v));
    await ready(index);
    const unreachable = vs.filter((v, i) => index.search(v, 1, ALL)[0]?.id !== i + 1).length;
    expect(unreachable).toBe(0);
    index.dispose();
  });
});
