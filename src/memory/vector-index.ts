/**
 * The in-process vector index: every entity's vector in one growable Float32Array, scanned
 * exactly (a dot product per row; vectors are L2-normalized, so that is the cosine). It is built
 * from SQLite when the store opens and updated right after each committed transaction, in the
 * same tick, so it never disagrees with the database.
 *
 * Large sets also get an HNSW graph (usearch, f16 vectors; docs/adr/0010-memory-store.md): from
 * `annMinVectors` vectors on, it is built in the background in slices of ~20 ms (the event loop
 * keeps running; searches scan exactly until it is complete), then kept current on every set and
 * delete. A search asks it for several times `k` candidates, drops those outside the scopes and
 * type, re-scores the rest exactly against the float32 vectors, and falls back to the exact scan
 * when too few survive or when the scopes asked for hold only a small part of the vectors.
 *
 * The graph can be saved to a file and adopted again at the next start (`saveAnn`,
 * `adoptAnn`): the store (src/memory/ann-file.ts) records which SQLite state the file reflects
 * and hands the changes since then to `adoptAnn`, which applies them and checks that the graph
 * holds exactly the keys of the rows before it answers a search.
 */
import { createRequire } from 'node:module';
import type * as Usearch from 'usearch';

// usearch's ESM entry fails to locate its binary; its CommonJS entry works. Required by the first
// HNSW graph: a store below ANN_MIN_VECTORS never loads the 4 MiB native addon (nor does a start).
let usearch: typeof Usearch | undefined;
const loadUsearch = (): typeof Usearch => (usearch ??= createRequire(import.meta.url)('usearch') as typeof Usearch);

/** From this many vectors on, searches go through the HNSW graph. */
export const ANN_MIN_VECTORS = 20_000;
/** Vectors added to the graph per call while it is first built. */
const BUILD_BATCH = 64;
/** Time the background build may hold the event loop per turn. */
const BUILD_SLICE_MS = 20;
/** Candidates asked of the graph per result wanted. */
const OVERFETCH = 4;
/**
 * One more graph candidate per this many vectors: the beam widens as the graph grows (1,600 at
 * 1,000,000; below 100,000 the floor of 4 × k decides). Measured at 1,000,000 × 384 (bench, ADR
 * 0010): recall@10 0.78 / 0.89 / 0.95 / 0.98 with 200 / 400 / 800 / 1,600 candidates, p50 1.1 /
 * 2.3 / 4.0 / 8.0 ms.
 */
const CANDIDATES_PER_VECTORS = 625;

/** The graph's parameters (also recorded beside a saved graph: a file made with others is not adopted). */
export const ANN_PARAMS = {
  metric: 'cos',
  quantization: 'f16',
  connectivity: 16,
  expansion_add: 64,
  expansion_search: 64,
} as const;

export interface VectorIndexOptions {
  /** Threshold for the HNSW graph (default ANN_MIN_VECTORS; Infinity: exact only). */
  annMinVectors?: number;
  /** Do not start the graph's background build until `release()` (the store loads rows first, then adopts a saved graph or builds one). */
  hold?: boolean;
  /** Called once the background build has completed (the store saves the graph then). */
  onAnnBuilt?: () => void;
}

/** What `adoptAnn` did to a saved graph to bring it up to date. */
export interface AnnRepair {
  added: number;
  updated: number;
  removed: number;
}
export interface IndexHit {
  id: number;
  similarity: number;
}

export class VectorIndex {
  readonly dimensions: number;
  #vectors: Float32Array;
  #ids: number[] = [];
  #scopes: string[] = [];
  #types: string[] = [];
  readonly #rowOf = new Map<number, number>();
  /** Vectors per scope (to tell when the scopes asked for are too small a part for the graph). */
  readonly #perScope = new Map<string, number>();
  readonly #annMin: number;
  #ann: Usearch.Index | undefined;
  /** Rows visited by the background build; the graph answers searches once it reaches the end. */
  #annBuilt = 0;
  #annReady = false;
  #annTimer: NodeJS.Immediate | undefined;
  #hold: boolean;
  readonly #onAnnBuilt: (() => void) | undefined;

  constructor(dimensions: number, capacity = 1024, opts: VectorIndexOptions = {}) {
    this.dimensions = dimensions;
    this.#vectors = new Float32Array(dimensions * capacity);
    this.#annMin = opts.annMinVectors ?? ANN_MIN_VECTORS;
    this.#hold = opts.hold ?? false;
    this.#onAnnBuilt = opts.onAnnBuilt;
  }

  /** Whether searches go through the HNSW graph (built and above the threshold). */
  get annReady(): boolean {
    return this.#annReady && this.#ids.length >= this.#annMin;
  }

  /** Whether the graph exists and holds every vector (whatever the threshold): it can be saved. */
  get annComplete(): boolean {
    return this.#annReady && this.#ann !== undefined;
  }

  /** Whether the background build is under way. */
  get annBuilding(): boolean {
    return this.#ann !== undefined && !this.#annReady;
  }

  get annMinVectors(): number {
    return this.#annMin;
  }

  /** Ends `hold`: starts the background build when the index is large enough and has no graph yet. */
  release(): void {
    this.#hold = false;
    if (!this.#ann && this.#ids.length >= this.#annMin) this.#startBuild();
  }

  /** Writes the complete graph to `path` (synchronously). */
  saveAnn(path: string): void {
    if (!this.annComplete) throw new Error('the HNSW graph is not complete; nothing to save');
    this.#ann!.save(path);
  }

  /**
   * Loads a saved graph and brings it up to date: keys in `removed` are taken out, keys in
   * `changed` are re-added from the current rows (or taken out when no row has them any more).
   * The graph is adopted only when it then holds exactly the keys of the rows; otherwise it is
   * dropped and an Error says why (the caller rebuilds). The file must have been checked against
   * its recorded size and hash first: usearch does not survive loading a damaged file.
   */
  adoptAnn(path: string, changed: Iterable<number>, removed: Iterable<number>): AnnRepair {
    if (this.#ann) throw new Error('the index already has an HNSW graph');
    const ann = newAnn(this.dimensions);
    ann.load(path);
    if (ann.dimensions() !== this.dimensions)
      throw new Error(`the saved graph has ${ann.dimensions()} dimensions, the index ${this.dimensions}`);
    let added = 0;
    let updated = 0;
    let dropped = 0;
    for (const id of removed) {
      if (ann.contains(BigInt(id))) dropped += Number(ann.remove(BigInt(id)));
    }
    const d = this.dimensions;
    for (const id of changed) {
      const key = BigInt(id);
      const had = ann.contains(key) as boolean;
      if (had) ann.remove(key);
      const row = this.#rowOf.get(id);
      if (row !== undefined) {
        ann.add(key, this.#vectors.subarray(row * d, (row + 1) * d), 1);
        if (had) updated++;
        else added++;
      } else if (had) dropped++;
    }
    // Every row's key in the graph and nothing else: equal counts and each key present.
    if (ann.size() !== this.#ids.length)
      throw new Error(`the saved graph holds ${ann.size()} vectors after repair, the index ${this.#ids.length}`);
    if (this.#ids.length > 0) {
      const present = ann.contains(BigUint64Array.from(this.#ids, (id) => BigInt(id))) as boolean[];
      const missing = present.indexOf(false);
      if (missing >= 0) throw new Error(`the saved graph lacks entity ${this.#ids[missing]}`);
    }
    this.#ann = ann;
    this.#annBuilt = this.#ids.length;
    this.#annReady = true;
    return { added, updated, removed: dropped };
  }

  get size(): number {
    return this.#ids.length;
  }

  has(id: number): boolean {
    return this.#rowOf.has(id);
  }

  vector(id: number): Float32Array | undefined {
    const row = this.#rowOf.get(id);
    if (row === undefined) return undefined;
    return this.#vectors.subarray(row * this.dimensions, (row + 1) * this.dimensions);
  }

  /** Adds or replaces the vector of entity `id`. */
  set(id: number, scope: string, type: string, v: Float32Array): void {
    if (v.length !== this.dimensions)
      throw new Error(`vector of ${v.length} dimensions in a ${this.dimensions}-dimension index`);
    let row = this.#rowOf.get(id);
    if (row === undefined) {
      row = this.#ids.length;
      if ((row + 1) * this.dimensions > this.#vectors.length) {
        const grown = new Float32Array(Math.max(this.#vectors.length * 2, (row + 1) * this.dimensions));
        grown.set(this.#vectors);
        this.#vectors = grown;
      }
      this.#ids.push(id);
      this.#scopes.push(scope);
      this.#types.push(type);
      this.#rowOf.set(id, row);
      this.#perScope.set(scope, (this.#perScope.get(scope) ?? 0) + 1);
    } else {
      const was = this.#scopes[row]!;
      if (was !== scope) {
        this.#perScope.set(was, this.#perScope.get(was)! - 1);
        this.#perScope.set(scope, (this.#perScope.get(scope) ?? 0) + 1);
      }
      this.#scopes[row] = scope;
      this.#types[row] = type;
    }
    this.#vectors.set(v, row * this.dimensions);
    if (this.#ann) {
      const key = BigInt(id);
      if (this.#ann.contains(key)) this.#ann.remove(key);
      // Rows the background build has not reached yet are left to it (one batched add).
      if (this.#annReady || row < this.#annBuilt)
        this.#ann.add(key, this.#vectors.subarray(row * this.dimensions, (row + 1) * this.dimensions), 1);
    } else if (!this.#hold && this.#ids.length >= this.#annMin) this.#startBuild();
  }

  /**
   * Builds the graph in the background: batches of BUILD_BATCH rows for up to BUILD_SLICE_MS per
   * event-loop turn. Single-threaded on purpose: usearch 2.25.3's multi-threaded `add` left about
   * 1 in 2,000 vectors unreachable (not found even when searched for with their own vector, at any
   * `k`) in our tests, while sequential insertion left none (ADR 0010).
   */
  #startBuild(): void {
    this.#ann = newAnn(this.dimensions);
    this.#annBuilt = 0;
    this.#annReady = false;
    const d = this.dimensions;
    const step = () => {
      this.#annTimer = undefined;
      const ann = this.#ann;
      if (!ann) return;
      const t0 = performance.now();
      do {
        const end = Math.min(this.#ids.length, this.#annBuilt + BUILD_BATCH);
        const keys: bigint[] = [];
        const rows: number[] = [];
        for (let row = this.#annBuilt; row < end; row++) {
          const key = BigInt(this.#ids[row]!);
          if (!ann.contains(key)) {
            keys.push(key);
            rows.push(row);
          }
        }
        if (keys.length > 0) {
          const batch = new Float32Array(keys.length * d);
          rows.forEach((row, i) => batch.set(this.#vectors.subarray(row * d, (row + 1) * d), i * d));
          ann.add(BigUint64Array.from(keys), batch, 1);
        }
        this.#annBuilt = end;
      } while (this.#annBuilt < this.#ids.length && performance.now() - t0 < BUILD_SLICE_MS);
      if (this.#annBuilt >= this.#ids.length) {
        this.#annReady = true;
        this.#onAnnBuilt?.();
      } else this.#annTimer = setImmediate(step);
    };
    this.#annTimer = setImmediate(step);
  }

  /** Stops a background build and drops the graph (the store is closing). */
  dispose(): void {
    if (this.#annTimer) clearImmediate(this.#annTimer);
    this.#annTimer = undefined;
    this.#ann = undefined;
    this.#annReady = false;
  }

  /** Updates the type of an indexed entity (its vector unchanged). */
  setType(id: number, type: string): void {
    const row = this.#rowOf.get(id);
    if (row !== undefined) this.#types[row] = type;
  }

  delete(id: number): void {
    const row = this.#rowOf.get(id);
    if (row === undefined) return;
    this.#perScope.set(this.#scopes[row]!, this.#perScope.get(this.#scopes[row]!)! - 1);
    if (this.#ann && this.#ann.contains(BigInt(id))) this.#ann.remove(BigInt(id));
    const last = this.#ids.length - 1;
    if (row !== last) {
      const d = this.dimensions;
      this.#vectors.copyWithin(row * d, last * d, (last + 1) * d);
      const movedId = this.#ids[last]!;
      this.#ids[row] = movedId;
      this.#scopes[row] = this.#scopes[last]!;
      this.#types[row] = this.#types[last]!;
      this.#rowOf.set(movedId, row);
      // A row moved behind the background build's position must not be missed by it.
      if (this.#ann && !this.#annReady && row < this.#annBuilt && !this.#ann.contains(BigInt(movedId))) {
        this.#ann.add(BigInt(movedId), this.#vectors.subarray(row * this.dimensions, (row + 1) * this.dimensions), 1);
      }
    }
    this.#ids.pop();
    this.#scopes.pop();
    this.#types.pop();
    this.#rowOf.delete(id);
  }

  clear(): void {
    this.#ids = [];
    this.#scopes = [];
    this.#types = [];
    this.#rowOf.clear();
    this.#perScope.clear();
    this.dispose();
  }

  /** The `k` most similar entities in `scopes` (and of `type`, when given), best first. */
  search(query: Float32Array, k: number, scopes: ReadonlySet<string>, type?: string): IndexHit[] {
    if (query.length !== this.dimensions)
      throw new Error(`query vector of ${query.length} dimensions in a ${this.dimensions}-dimension index`);
    if (this.annReady && k > 0) {
      let inScopes = 0;
      for (const sc of scopes) inScopes += this.#perScope.get(sc) ?? 0;
      // Scopes holding under a tenth of the vectors: most candidates would be dropped; scan.
      if (inScopes * 10 >= this.#ids.length) {
        const hits = this.#annSearch(query, k, scopes, type);
        if (hits) return hits;
      }
    }
    return this.exactSearch(query, k, scopes, type);
  }

  /** The graph's candidates, filtered and re-scored exactly; undefined when fewer than `k` survive. */
  #annSearch(
    query: Float32Array,
    k: number,
    scopes: ReadonlySet<string>,
    type: string | undefined,
  ): IndexHit[] | undefined {
    // The graph's beam is max(expansion_search, want): widen it as the graph grows (recall@10 at
    // 1,000,000 was 0.65 with 40 candidates, 0.98 with 1,600; re-scoring them costs ~0.5 ms).
    const want = Math.min(
      this.#ids.length,
      Math.max(k * OVERFETCH, k + 32, Math.ceil(this.#ids.length / CANDIDATES_PER_VECTORS)),
    );
    const m = this.#ann!.search(query, want, 1);
    const d = this.dimensions;
    const hits: IndexHit[] = [];
    for (let i = 0; i < m.keys.length; i++) {
      const id = Number(m.keys[i]);
      const row = this.#rowOf.get(id);
      if (row === undefined || !scopes.has(this.#scopes[row]!)) continue;
      if (type !== undefined && this.#types[row] !== type) continue;
      let s = 0;
      const off = row * d;
      for (let j = 0; j < d; j++) s += this.#vectors[off + j]! * query[j]!;
      hits.push({ id, similarity: s });
    }
    if (hits.length < k) return undefined;
    hits.sort((a, b) => b.similarity - a.similarity);
    return hits.slice(0, k);
  }

  /** The exact scan (also the baseline the graph is measured against). */
  exactSearch(query: Float32Array, k: number, scopes: ReadonlySet<string>, type?: string): IndexHit[] {
    const d = this.dimensions;
    if (query.length !== d) throw new Error(`query vector of ${query.length} dimensions in a ${d}-dimension index`);
    const v = this.#vectors;
    const n = this.#ids.length;
    // Scope and type tests as array lookups: the scan visits every row.
    const scopeOf = this.#scopes;
    const typeOf = this.#types;
    const allowed = new Map<string, boolean>();
    const topIds: number[] = [];
    const topSims: number[] = [];
    let floor = -Infinity;
    for (let row = 0; row < n; row++) {
      const sc = scopeOf[row]!;
      let ok = allowed.get(sc);
      if (ok === undefined) allowed.set(sc, (ok = scopes.has(sc)));
      if (!ok) continue;
      if (type !== undefined && typeOf[row] !== type) continue;
      const off = row * d;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let i = 0;
      for (; i + 3 < d; i += 4) {
        s0 += v[off + i]! * query[i]!;
        s1 += v[off + i + 1]! * query[i + 1]!;
        s2 += v[off + i + 2]! * query[i + 2]!;
        s3 += v[off + i + 3]! * query[i + 3]!;
      }
      for (; i < d; i++) s0 += v[off + i]! * query[i]!;
      const s = s0 + s1 + s2 + s3;
      if (topSims.length >= k && s <= floor) continue;
      let at = topSims.length;
      while (at > 0 && topSims[at - 1]! < s) at--;
      topSims.splice(at, 0, s);
      topIds.splice(at, 0, this.#ids[row]!);
      if (topSims.length > k) {
        topSims.pop();
        topIds.pop();
      }
      if (topSims.length >= k) floor = topSims[topSims.length - 1]!;
    }
    return topIds.map((id, i) => ({ id, similarity: topSims[i]! }));
  }
}

function newAnn(dimensions: number): Usearch.Index {
  const { Index, MetricKind, ScalarKind } = loadUsearch();
  const p = ANN_PARAMS;
  return new Index({
    dimensions,
    metric: MetricKind.Cos,
    quantization: ScalarKind.F16,
    connectivity: p.connectivity,
    expansion_add: p.expansion_add,
    expansion_search: p.expansion_search,
    multi: false,
  });
}

/** A vector as stored in SQLite: little-endian float32. */
export function vectorToBlob(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

export function blobToVector(b: Buffer): Float32Array {
  // Copy: the Buffer may be unaligned or reused.
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}
