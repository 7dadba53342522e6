/**
 * The saved HNSW graph (memory.usearch + sidecar) stays consistent with SQLite across restarts
 * and crashes: writes after the last save are replayed from the change log at start (a child
 * process writes, then is killed with SIGKILL before it saves), and a graph that cannot be
 * trusted (damaged file, missing or mismatched sidecar, older than the database's log) is rebuilt,
 * never used stale.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ANN_FILE_NAME, type AnnSidecar } from '../../src/memory/ann-file.js';
import type { MemoryStore } from '../../src/memory/sqlite-store.js';
import { entityText } from '../../src/memory/text.js';
import type { Db } from '../../src/storage/index.js';
import { openStore, removeTempDirs, SeededEmbedder, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const CHILD = fileURLToPath(new URL('./fixtures/ann-child.ts', import.meta.url));
const ANN_MIN = 1_000;
const N = 3_000;
const ALL = new Set(['workspace']);

async function graphReady(store: MemoryStore): Promise<void> {
  for (let i = 0; i < 20_000 && store.annStatus().state !== 'ready'; i++) await new Promise((r) => setImmediate(r));
  expect(store.annStatus().state).toBe('ready');
}

function open(dir: string): { store: MemoryStore; db: Db; emb: SeededEmbedder } {
  const emb = new SeededEmbedder();
  return { ...openStore(dir, { embedder: emb, annMinVectors: ANN_MIN }), emb };
}

/** A data dir holding N entities and a saved graph of them. */
async function seeded(): Promise<string> {
  const dir = tempDir();
  const { store, db } = open(dir);
  for (let i = 0; i < N; i += 500) {
    await store.createEntities(
      'workspace',
      Array.from({ length: 500 }, (_, k) => ({
        name: `old-${i + k}`,
        entityType: 'note',
        observations: [`a fact saved before, number ${i + k}`],
      })),
    );
  }
  await graphReady(store);
  await store.close(); // saves the graph
  db.close();
  expect(existsSync(join(dir, ANN_FILE_NAME))).toBe(true);
  return dir;
}

function sidecar(dir: string): AnnSidecar {
  return JSON.parse(readFileSync(join(dir, `${ANN_FILE_NAME}.json`), 'utf8')) as AnnSidecar;
}

function writeAndKill(dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(ANN_MIN)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('written')) child.kill('SIGKILL');
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      signal === 'SIGKILL' ? resolve(out) : reject(new Error(`child exited ${code}: ${err}`)),
    );
  });
}

/** The id of entity `name`, and the hits of the index for a text (through the graph when it is ready). */
function idOf(db: Db, name: string): number | undefined {
  return (
    db.prepare("SELECT id FROM memory_entities WHERE scope = 'workspace' AND name = ?").get(name) as
      { id: number } | undefined
  )?.id;
}

describe('the saved HNSW graph across restarts and crashes', () => {
  it('after kill -9 following writes that were never saved, the graph is repaired at start: new entities found, deleted ones gone', async () => {
    const dir = await seeded();
    const before = sidecar(dir);
    const out = await writeAndKill(dir);
    expect(out).toMatch(/loaded .*"source":"file"/); // the child started from the saved graph
    // The graph file was not saved again by the killed child: it reflects the state before its writes.
    expect(sidecar(dir).seq).toBe(before.seq);

    const { store, db, emb } = open(dir);
    await store.ready();
    const st = store.annStatus();
    expect(st).toMatchObject({
      state: 'ready',
      source: 'file',
      repaired: { added: 200, updated: 50, removed: 100 },
      saved_seq: before.seq,
    });
    expect(st.seq).toBeGreaterThan(before.seq);
    expect(emb.embedded).toBe(0); // vectors come from SQLite, nothing re-embedded
    const index = store.vectorIndex!;
    expect(index.size).toBe(N + 200 - 100);
    expect(index.annReady).toBe(true);

    // New entities: each one is its own best match through the graph.
    for (let i = 0; i < 200; i += 7) {
      const text = entityText({
        name: `new-${i}`,
        entityType: 'note',
        observations: [`a fact written after the save, number ${i}`],
      });
      const hits = index.search(emb.vectorOf(text), 5, ALL);
      expect(hits[0]).toMatchObject({ id: idOf(db, `new-${i}`) });
      expect(hits[0]!.similarity).toBeCloseTo(1, 5);
      const res = await store.search({ query: text, scopes: ['workspace'], limit: 3, mode: 'semantic' });
      expect(res[0]!.entity.name).toBe(`new-${i}`);
    }
    // Deleted entities: their old vectors find neighbours, never them.
    for (let i = 0; i < 100; i += 3) {
      const text = entityText({
        name: `old-${i}`,
        entityType: 'note',
        observations: [`a fact saved before, number ${i}`],
      });
      const res = await store.search({ query: text, scopes: ['workspace'], limit: 10, mode: 'semantic' });
      expect(res.map((h) => h.entity.name)).not.toContain(`old-${i}`);
      expect(res[0]!.similarity).toBeLessThan(0.9);
    }
    // Updated entities: found by their new text, not by the old one.
    for (let i = 200; i < 250; i += 5) {
      const text = entityText({
        name: `old-${i}`,
        entityType: 'note',
        observations: [`a fact saved before, number ${i}`, `an observation added after the save to ${i}`],
      });
      const hits = index.search(emb.vectorOf(text), 1, ALL);
      expect(hits[0]).toMatchObject({ id: idOf(db, `old-${i}`) });
      expect(hits[0]!.similarity).toBeCloseTo(1, 5);
    }
    // The graph agrees with the exact scan on random queries.
    let agree = 0;
    for (let q = 0; q < 30; q++) {
      const v = emb.vectorOf(`query ${q}`);
      const exact = new Set(index.exactSearch(v, 10, ALL).map((h) => h.id));
      agree += index.search(v, 10, ALL).filter((h) => exact.has(h.id)).length;
    }
    expect(agree / 300).toBeGreaterThanOrEqual(0.9);

    // Closing saves the repaired graph and prunes the change log: the next start has nothing to replay.
    await store.close();
    expect(sidecar(dir).seq).toBe(st.seq);
    expect((db.prepare('SELECT count(*) AS n FROM memory_vector_log').get() as { n: number }).n).toBe(0);
    db.close();
    const again = open(dir);
    await again.store.ready();
    expect(again.store.annStatus()).toMatchObject({
      state: 'ready',
      source: 'file',
      repaired: { added: 0, updated: 0, removed: 0 },
    });
    await again.store.close();
    again.db.close();
  }, 120_000);

  it('never uses a graph it cannot trust: damaged file, missing sidecar, a database older than the graph, another database', async () => {
    const dir = await seeded();
    const file = join(dir, ANN_FILE_NAME);
    const side = `${file}.json`;
    const restart = async (expectReason: RegExp) => {
      const { store, db } = open(dir);
      await store.ready();
      const st = store.annStatus();
      expect(st.source).toBe('built');
      expect(st.reason).toMatch(expectReason);
      // Exact answers while the graph is rebuilt, then the rebuilt graph (saved again).
      const text = entityText({ name: 'old-7', entityType: 'note', observations: ['a fact saved before, number 7'] });
      expect(
        (await store.search({ query: text, scopes: ['workspace'], limit: 1, mode: 'semantic' }))[0]!.entity.name,
      ).toBe('old-7');
      await graphReady(store);
      expect(
        (await store.search({ query: text, scopes: ['workspace'], limit: 1, mode: 'semantic' }))[0]!.entity.name,
      ).toBe('old-7');
      await store.close();
      db.close();
      expect(existsSync(side)).toBe(true);
    };

    // Damaged file (same size: only the hash tells).
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    writeFileSync(file, bytes);
    await restart(/SHA-256/);
    // Truncated file (usearch would crash the process loading it).
    truncateSync(file, Math.floor(statSync(file).size / 2));
    await restart(/bytes/);
    // A crash during a save: the sidecar is removed before the graph is written.
    unlinkSync(side);
    await restart(/no saved graph/);
    // The database is older than the graph (restored from a backup): the graph is ahead of it.
    writeFileSync(side, JSON.stringify({ ...sidecar(dir), seq: sidecar(dir).seq + 10 }));
    await restart(/restored/);
    // A graph file copied from another data dir.
    writeFileSync(side, JSON.stringify({ ...sidecar(dir), db_uid: 'someone-else' }));
    await restart(/another database/);
  }, 120_000);

  it('a graph older than the change log (log pruned by a later save) is rebuilt, not repaired from an incomplete log', async () => {
    const dir = await seeded();
    const old = readFileSync(join(dir, ANN_FILE_NAME));
    const oldSide = readFileSync(join(dir, `${ANN_FILE_NAME}.json`));
    {
      const { store, db } = open(dir);
      await store.ready();
      await store.deleteEntities('workspace', ['old-1', 'old-2']);
      await store.close(); // saves, prunes the log up to the new counter
      db.close();
    }
    // Put the older graph back (as a backup restore of the data dir's files would).
    writeFileSync(join(dir, ANN_FILE_NAME), old);
    writeFileSync(join(dir, `${ANN_FILE_NAME}.json`), oldSide);
    const { store, db } = open(dir);
    await store.ready();
    expect(store.annStatus()).toMatchObject({ source: 'built' });
    expect(store.annStatus().reason).toMatch(/change log starts after/);
    await store.close();
    db.close();
  }, 120_000);
});
