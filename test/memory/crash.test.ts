/**
 * kill -9 in the middle of a bulk import: after a restart the graph, the vectors, the keyword
 * index and the in-process vector index agree, and nothing half-written is visible (the import is
 * one SQLite transaction in WAL mode).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { HashEmbedder, openStore, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const CHILD = fileURLToPath(new URL('./fixtures/import-child.ts', import.meta.url));

function importAndKill(dir: string, n: number): Promise<{ killed: boolean; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(n)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let killed = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (!killed && out.includes('committing')) {
        killed = child.kill('SIGKILL');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL' && code !== 0) reject(new Error(`child exited ${code}: ${err}`));
      else resolve({ killed: signal === 'SIGKILL', out });
    });
  });
}

describe('kill -9 during a bulk import', () => {
  it('leaves the whole import or none of it, and the index agrees with the tables after restart', async () => {
    const dir = tempDir();
    // Something committed before, which must survive.
    {
      const { store, db } = openStore(dir, { embedder: new HashEmbedder() });
      await store.createEntities('global', [
        { name: 'before', entityType: 'note', observations: ['committed earlier'] },
      ]);
      await store.close();
      db.close();
    }
    const n = 20_000;
    const r = await importAndKill(dir, n);
    expect(r.killed).toBe(true);
    expect(r.out).not.toContain('done');

    const { store, db } = openStore(dir, { embedder: new HashEmbedder() });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
    const bulk = count("SELECT count(*) AS n FROM memory_entities WHERE scope = 'workspace'");
    expect([0, n]).toContain(bulk); // all or nothing
    expect(count("SELECT count(*) AS n FROM memory_relations WHERE scope = 'workspace'")).toBe(bulk === 0 ? 0 : n - 1);
    const entities = count('SELECT count(*) AS n FROM memory_entities');
    expect(entities).toBe(bulk + 1);
    expect(count('SELECT count(*) AS n FROM memory_embeddings')).toBe(entities);
    expect(count('SELECT count(*) AS n FROM memory_fts')).toBe(entities);
    expect(
      count(
        'SELECT count(*) AS n FROM memory_entities e LEFT JOIN memory_embeddings v ON v.entity_id = e.id WHERE v.entity_id IS NULL',
      ),
    ).toBe(0);
    const emb = new HashEmbedder();
    const reopened = openStore(dir, { embedder: emb });
    await reopened.store.ready();
    expect(emb.embedded).toBe(0); // nothing needed repair
    expect(await reopened.store.stats()).toMatchObject({ entities, embedding: { indexed: entities } });
    expect((await reopened.store.search({ query: 'committed earlier', scopes: ['global'] }))[0]?.entity.name).toBe(
      'before',
    );
    reopened.db.close();
    await store.close();
    db.close();
  }, 120_000);
});
