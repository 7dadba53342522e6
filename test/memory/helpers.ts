/** Shared pieces of the memory tests: temp data dirs with real SQLite files, and embedders. */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbedder, type Embedder } from '../../src/memory/embedding/index.js';
import { MEMORY_MIGRATIONS, MemoryStore, type MemoryStoreOptions } from '../../src/memory/index.js';
import { migrate, openDatabase, type Db } from '../../src/storage/index.js';

const dirs: string[] = [];

export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'caxton-memory-'));
  dirs.push(d);
  return d;
}

export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function openMemoryDb(dir: string): Db {
  const db = openDatabase(dir);
  migrate(db, MEMORY_MIGRATIONS);
  return db;
}

export function openStore(dir: string, opts: MemoryStoreOptions): { db: Db; store: MemoryStore } {
  const db = openMemoryDb(dir);
  return { db, store: new MemoryStore(db, opts) };
}

let shared: Promise<Embedder> | undefined;
/** The real local all-MiniLM-L6-v2, loaded once per test file. */
export function localEmbedder(): Promise<Embedder> {
  shared ??= createEmbedder({ kind: 'local' });
  return shared;
}

/**
 * A deterministic bag-of-words embedder (hashed words into `dimensions` buckets), for tests about
 * plumbing rather than meaning: model switches, counting calls, failures.
 */
export class HashEmbedder implements Embedder {
  readonly model: string;
  readonly dimensions: number;
  calls = 0;
  embedded = 0;
  failAfter = Infinity;
  constructor(model = 'test:hash', dimensions = 32) {
    this.model = model;
    this.dimensions = dimensions;
  }
  async embed(texts: string[]): Promise<Float32Array[]> {
    this.calls++;
    if (this.embedded + texts.length > this.failAfter) throw new Error('embedder failed (test)');
    this.embedded += texts.length;
    return texts.map((t) => {
      const v = new Float32Array(this.dimensions);
      for (const w of t.toLowerCase().match(/[a-z0-9]+/g) ?? [])
        v[createHash('md5').update(w).digest()[0]! % this.dimensions]! += 1;
      let n = 0;
      for (const x of v) n += x * x;
      n = Math.sqrt(n) || 1;
      return v.map((x) => x / n);
    });
  }
  async close(): Promise<void> {}
}

/**
 * A deterministic embedder giving every distinct text its own pseudo-random unit vector (seeded
 * by the text's SHA-256): the same text always finds itself first, different texts are far apart.
 * For tests about index plumbing (the HNSW graph's persistence and repair).
 */
export class SeededEmbedder implements Embedder {
  readonly model: string;
  readonly dimensions: number;
  embedded = 0;
  constructor(model = 'test:seeded', dimensions = 48) {
    this.model = model;
    this.dimensions = dimensions;
  }
  vectorOf(text: string): Float32Array {
    const seed = createHash('sha256').update(text).digest();
    let x = seed.readUInt32LE(0) || 1;
    const v = new Float32Array(this.dimensions);
    let n = 0;
    for (let i = 0; i < v.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      v[i] = ((x >>> 0) / 4294967296) * 2 - 1;
      n += v[i]! * v[i]!;
    }
    n = Math.sqrt(n);
    return v.map((y) => y / n);
  }
  async embed(texts: string[]): Promise<Float32Array[]> {
    this.embedded += texts.length;
    return texts.map((t) => this.vectorOf(t));
  }
  async close(): Promise<void> {}
}

/** The error `p` rejects with (fails when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string; details?: unknown }> {
  try {
    await p;
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error('expected a rejection');
}
