/**
 * The in-process vector index: every entity's vector in one growable Float32Array, scanned
 * exactly (a dot product per row; vectors are L2-normalized, so that is the cosine). It is built
 * from SQLite when the store opens and updated right after each committed transaction, in the
 * same tick, so it never disagrees with the database. An ANN index (HNSW) is future work: see
 * docs/adr/0010-memory-store.md.
 */
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

  constructor(dimensions: number, capacity = 1024) {
    this.dimensions = dimensions;
    this.#vectors = new Float32Array(dimensions * capacity);
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
    if (v.length !== this.dimensions) throw new Error(`vector of ${v.length} dimensions in a ${this.dimensions}-dimension index`);
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
    } else {
      this.#scopes[row] = scope;
      this.#types[row] = type;
    }
    this.#vectors.set(v, row * this.dimensions);
  }

  /** Updates the type of an indexed entity (its vector unchanged). */
  setType(id: number, type: string): void {
    const row = this.#rowOf.get(id);
    if (row !== undefined) this.#types[row] = type;
  }

  delete(id: number): void {
    const row = this.#rowOf.get(id);
    if (row === undefined) return;
    const last = this.#ids.length - 1;
    if (row !== last) {
      const d = this.dimensions;
      this.#vectors.copyWithin(row * d, last * d, (last + 1) * d);
      const movedId = this.#ids[last]!;
      this.#ids[row] = movedId;
      this.#scopes[row] = this.#scopes[last]!;
      this.#types[row] = this.#types[last]!;
      this.#rowOf.set(movedId, row);
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
  }

  /** The `k` most similar entities in `scopes` (and of `type`, when given), best first. */
  search(query: Float32Array, k: number, scopes: ReadonlySet<string>, type?: string): IndexHit[] {
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
