/**
 * The PostgreSQL memory backend under concurrency and failure, on a real PostgreSQL
 * (CAXTON_TEST_PG_URL; pgvector from scripts/setup-pgvector.sh): two instances writing one schema
 * at once, re-embedding on a model change, a failed embedder, and a kill -9 in the middle of a
 * bulk merge changing nothing, and a link that drops under load ending nothing.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { HNSW_INDEX } from '../../src/memory/pg-schema.js';
import { PgMemoryStore } from '../../src/memory/pg-store.js';
import { entityText } from '../../src/memory/text.js';
import { hasSystem } from '../helpers/system.js';
import { startPgProxy } from '../helpers/tcp-proxy.js';
import { POSTGRES_BACKEND, TEST_PG_URL } from './backends.js';
import { HashEmbedder, removeTempDirs } from './helpers.js';
import { freshSchema } from './pg-schema-helper.js';

afterAll(removeTempDirs);

const pgBackend = POSTGRES_BACKEND;

/** Every test here needs PostgreSQL with pgvector: skipped with one printed line when missing (failed in CI). */
const PG = hasSystem('pgvector');

describe.skipIf(!PG)('PostgreSQL memory backend: several instances and failures', () => {
  it('a link to PostgreSQL that drops under load fails the calls in flight and ends nothing; the store works once it is back', async () => {
    const { schema, drop } = await freshSchema();
    const { proxy, url } = await startPgProxy();
    const store = new PgMemoryStore({ url, schema, embedder: new HashEmbedder() });
    // A connection that dies while checked out, with no listener of its own, emits an `error`
    // nobody hears: in a server, the end of its process.
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      await store.ready();
      await store.createEntities('workspace', [{ name: 'kept', entityType: 'note', observations: ['before the cut'] }]);
      let stop = false;
      const failed: unknown[] = [];
      // Reads and writes, each on a connection checked out of the pool for its transaction.
      const loops = Array.from({ length: 8 }, async (_, i) => {
        for (let n = 0; !stop; n++)
          await (
            i % 2 === 0
              ? store.getEntity('workspace', 'kept')
              : store.createEntities('workspace', [{ name: `w${i}-${n}`, entityType: 'note', observations: ['x'] }])
          ).catch((e: unknown) => failed.push(e));
      });
      await new Promise((r) => setTimeout(r, 300));
      proxy.cut();
      await new Promise((r) => setTimeout(r, 300));
      stop = true;
      await Promise.all(loops);
      proxy.restore();
      expect(failed.length).toBeGreaterThan(0);
      expect(uncaught).toEqual([]);
      expect((await store.getEntity('workspace', 'kept'))?.observations).toEqual(['before the cut']);
    } finally {
      process.off('uncaughtException', onUncaught);
      await store.close();
      await proxy.close();
      await drop();
    }
  }, 60_000);

  it('keeps two instances writing the same schema at once consistent', async () => {
    const { schema, admin, drop } = await freshSchema();
    const a = new PgMemoryStore({ url: TEST_PG_URL, schema, embedder: new HashEmbedder() });
    const b = new PgMemoryStore({ url: TEST_PG_URL, schema, embedder: new HashEmbedder() });
    try {
      // Both prepare the fresh schema at the same time.
      await Promise.all([a.ready(), b.ready()]);
      await a.createEntities('workspace', [{ name: 'shared', entityType: 'note', observations: ['start'] }]);
      // The same names created from both: each exactly once.
      const names = Array.from({ length: 40 }, (_, i) => ({
        name: `n${i}`,
        entityType: 'note',
        observations: [`fact ${i}`],
      }));
      const created = await Promise.all([
        a.createEntities('workspace', names),
        b.createEntities('workspace', [...names].reverse()),
      ]);
      expect(created[0].length + created[1].length).toBe(40);
      // Observations added to one entity from both, interleaved: none lost (no lost update).
      const adds: Promise<unknown>[] = [];
      for (let i = 0; i < 20; i++) {
        adds.push(a.addObservations('workspace', [{ entityName: 'shared', contents: [`from a ${i}`] }]));
        adds.push(b.addObservations('workspace', [{ entityName: 'shared', contents: [`from b ${i}`] }]));
      }
      await Promise.all(adds);
      const shared = await a.getEntity('workspace', 'shared');
      expect(shared?.observations).toHaveLength(41);
      expect(new Set(shared?.observations).size).toBe(41);
      // Merges and deletes racing: the end state is the one of some order of them.
      await Promise.all([
        a.merge(
          Array.from({ length: 300 }, (_, i) => ({
            scope: 'workspace',
            name: `m${i}`,
            entityType: 'bulk',
            observations: [`a ${i}`],
            metadata: { by: 'a' },
          })),
          [],
        ),
        b.merge(
          Array.from({ length: 300 }, (_, i) => ({
            scope: 'workspace',
            name: `m${i}`,
            entityType: 'bulk',
            observations: [`b ${i}`],
            metadata: { by: 'b' },
          })),
          [],
        ),
        b.deleteEntities('workspace', ['n0', 'n1']),
      ]);
      const graph = await a.readGraph(['workspace']);
      expect(graph.entities).toHaveLength(1 + 40 - 2 + 300);
      const m = graph.entities.filter((e) => e.name.startsWith('m'));
      // Whichever merge ran second added its observation to the first's.
      expect(new Set(m.map((e) => e.observations.length))).toEqual(new Set([2]));
      expect(new Set(m.map((e) => JSON.stringify(e.metadata))).size).toBe(1);
      // Every row has the vector of its current text, of the current model (the last writer re-read the row under the lock).
      const { rows } = await admin.query<{
        name: string;
        entity_type: string;
        observations: string[];
        model: string | null;
        v: string | null;
      }>(`SELECT name, entity_type, observations, model, embedding::text AS v FROM "${schema}".entities`);
      expect(rows).toHaveLength(graph.entities.length);
      const expected = await new HashEmbedder().embed(
        rows.map((r) => entityText({ name: r.name, entityType: r.entity_type, observations: r.observations })),
      );
      rows.forEach((r, i) => {
        expect(r.model).toBe('test:hash');
        const v = JSON.parse(r.v!) as number[];
        v.forEach((x, j) => expect(x).toBeCloseTo(expected[i]![j]!, 5));
      });
    } finally {
      await a.close();
      await b.close();
      await drop();
    }
  }, 60_000);

  it('re-embeds every vector when the model or its dimension changes, and reuses them otherwise', async () => {
    const first = new HashEmbedder('test:hash-a', 32);
    const { store, reopen, cleanup } = await pgBackend.open({ embedder: first, key: 'model' });
    const pgStore = store as PgMemoryStore;
    const admin = new pg.Client({ connectionString: TEST_PG_URL });
    await admin.connect();
    const column = async () =>
      (
        await admin.query<{ type: string }>(
          `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = ('"' || $1 || '".entities')::regclass AND attname = 'embedding'`,
          [pgStore.schema],
        )
      ).rows[0]?.type;
    const models = async () =>
      (
        await admin.query(
          `SELECT model, vector_dims(embedding) AS dims, count(*)::int AS n FROM "${pgStore.schema}".entities GROUP BY 1, 2 ORDER BY 1`,
        )
      ).rows;
    try {
      await store.createEntities(
        'global',
        Array.from({ length: 300 }, (_, i) => ({
          name: `E${i}`,
          entityType: 't',
          observations: [i === 7 ? 'red apples' : `filler ${i}`],
        })),
      );
      await store.createEntities('global', [{ name: 'B', entityType: 't', observations: ['blue sky'] }]);
      expect(await column()).toBe('vector(32)');

      const same = new HashEmbedder('test:hash-a', 32);
      let s = await reopen({ embedder: same });
      await s.ready();
      expect(same.embedded).toBe(0);
      // (An entity's own text finds it first: cosine 1.)
      const e7 = entityText({ name: 'E7', entityType: 't', observations: ['red apples'] });
      expect((await s.search({ query: e7, scopes: ['global'], mode: 'semantic' }))[0]).toMatchObject({
        entity: { name: 'E7' },
        similarity: 1,
      });

      // Same dimension, another model: vectors replaced in batches, never mixed.
      const renamed = new HashEmbedder('test:hash-c', 32);
      const progress1: [number, number][] = [];
      s = await reopen({ embedder: renamed, onReindex: (d, t) => progress1.push([d, t]) });
      await s.ready();
      expect(renamed.embedded).toBe(301);
      expect(progress1).toEqual([
        [256, 301],
        [301, 301],
      ]);
      expect(await models()).toEqual([{ model: 'test:hash-c', dims: 32, n: 301 }]);

      const other = new HashEmbedder('test:hash-b', 48);
      const progress: [number, number][] = [];
      s = await reopen({ embedder: other, onReindex: (d, t) => progress.push([d, t]) });
      await s.ready();
      expect(other.embedded).toBe(301);
      expect(progress.at(-1)).toEqual([301, 301]);
      expect(await column()).toBe('vector(48)');
      expect(await models()).toEqual([{ model: 'test:hash-b', dims: 48, n: 301 }]);
      const meta = await admin.query(`SELECT model, dimensions FROM "${pgStore.schema}".meta`);
      expect(meta.rows).toEqual([{ model: 'test:hash-b', dimensions: 48 }]);
      const idx = await admin.query('SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = $2', [
        pgStore.schema,
        HNSW_INDEX,
      ]);
      expect(idx.rows).toHaveLength(1);
      expect(
        (
          await s.search({
            query: entityText({ name: 'B', entityType: 't', observations: ['blue sky'] }),
            scopes: ['global'],
            mode: 'semantic',
          })
        )[0],
      ).toMatchObject({
        entity: { name: 'B' },
        similarity: 1,
      });
      expect((await s.search({ query: e7, scopes: ['global'], mode: 'semantic' }))[0]).toMatchObject({
        entity: { name: 'E7' },
        similarity: 1,
      });
      expect(await s.stats()).toMatchObject({ embedding: { model: 'test:hash-b', dimensions: 48, indexed: 301 } });
    } finally {
      await admin.end();
      await cleanup();
    }
  }, 60_000);

  it('changes nothing when the embedder fails in the middle of a merge, and keeps working', async () => {
    const emb = new HashEmbedder();
    const { store, cleanup } = await pgBackend.open({ embedder: emb, key: 'fail' });
    try {
      await store.createEntities('workspace', [
        { name: 'keep', entityType: 'note', observations: ['was here before'] },
      ]);
      const before = await store.readGraph(['workspace']);
      emb.failAfter = emb.embedded + 300; // the second batch of 256 fails
      const progress: [number, number][] = [];
      const writes = Array.from({ length: 600 }, (_, i) => ({
        scope: 'workspace',
        name: `E${i}`,
        entityType: 'bulk',
        observations: [`fact ${i}`],
        metadata: {},
      }));
      writes.push({
        scope: 'workspace',
        name: 'keep',
        entityType: 'note',
        observations: ['an update that must not land'],
        metadata: {},
      });
      await expect(
        store.merge(writes, [{ scope: 'workspace', from: 'E1', to: 'keep', relationType: 'r' }], (d, t) =>
          progress.push([d, t]),
        ),
      ).rejects.toThrow(/embedder failed/);
      expect(progress).toEqual([[256, 601]]);
      expect(await store.readGraph(['workspace'])).toEqual(before);
      expect(await store.stats()).toMatchObject({ entities: 1, relations: 0, embedding: { indexed: 1 } });
      emb.failAfter = Infinity;
      expect(await store.merge(writes.slice(0, 10), [])).toEqual({
        entities_created: 10,
        entities_updated: 0,
        relations_created: 0,
      });
      expect((await store.stats()).entities).toBe(11);
    } finally {
      await cleanup();
    }
  }, 60_000);
});

const CHILD = fileURLToPath(new URL('./fixtures/pg-merge-child.ts', import.meta.url));

describe.skipIf(!PG)('PostgreSQL memory backend: kill -9 during a bulk merge', () => {
  it('leaves the whole merge or none of it: no half-written rows, locks released', async () => {
    const { schema, admin, drop } = await freshSchema();
    try {
      const first = new PgMemoryStore({ url: TEST_PG_URL, schema, embedder: new HashEmbedder() });
      await first.createEntities('global', [
        { name: 'before', entityType: 'note', observations: ['committed earlier'] },
      ]);
      await first.close();

      const n = 8_000; // eight INSERTs of relations, each long enough for the 5 ms watch to see
      const app = `caxton-crash-${schema}`;
      let sawWriting = false;
      const r = await new Promise<{ killed: boolean; out: string }>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', CHILD, TEST_PG_URL, schema, String(n), app], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        let watching = false;
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          if (watching || !out.includes('committing')) return;
          watching = true;
          // Kill once the merge's transaction has written every entity and is writing the
          // relations (it has a transaction id and its last statement inserts relations).
          const poll = async () => {
            while (child.exitCode === null && child.signalCode === null) {
              const { rows } = await admin.query(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND backend_xid IS NOT NULL AND query LIKE 'INSERT INTO %.relations %'",
                [app],
              );
              if (rows.length > 0) {
                sawWriting = true;
                child.kill('SIGKILL');
                return;
              }
              await new Promise((res) => setTimeout(res, 5));
            }
          };
          poll().catch(reject);
        });
        child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
        child.on('error', reject);
        child.on('close', (code, signal) => {
          if (signal !== 'SIGKILL' && code !== 0) reject(new Error(`child exited ${code}: ${err}`));
          else resolve({ killed: signal === 'SIGKILL', out });
        });
      });
      expect(r.killed).toBe(true);
      expect(sawWriting).toBe(true);
      expect(r.out).not.toContain('done');

      // PostgreSQL aborts the dead client's transaction once its backend notices the closed socket.
      for (let i = 0; i < 600; i++) {
        const { rows } = await admin.query('SELECT 1 FROM pg_stat_activity WHERE application_name = $1', [app]);
        if (rows.length === 0) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      const count = async (sql: string) => (await admin.query<{ n: number }>(sql)).rows[0]!.n;
      const bulk = await count(`SELECT count(*)::int AS n FROM "${schema}".entities WHERE scope = 'workspace'`);
      expect([0, n]).toContain(bulk); // all or nothing
      expect(bulk).toBe(0); // killed while its transaction was open: nothing of it committed
      expect(await count(`SELECT count(*)::int AS n FROM "${schema}".relations WHERE scope = 'workspace'`)).toBe(0);
      expect(await count(`SELECT count(*)::int AS n FROM "${schema}".entities`)).toBe(1);
      expect(
        await count(`SELECT count(*)::int AS n FROM "${schema}".entities WHERE embedding IS NULL OR model IS NULL`),
      ).toBe(0);

      // A new instance needs no repair, can write (the advisory locks died with the child) and search.
      const emb = new HashEmbedder();
      const again = new PgMemoryStore({ url: TEST_PG_URL, schema, embedder: emb });
      try {
        await again.ready();
        expect(emb.embedded).toBe(0);
        await again.createEntities('workspace', [
          { name: 'after', entityType: 'note', observations: ['written after the crash'] },
        ]);
        expect(await again.stats()).toMatchObject({ entities: 2, relations: 0, embedding: { indexed: 2 } });
        expect((await again.search({ query: 'committed earlier', scopes: ['global'] }))[0]?.entity.name).toBe('before');
      } finally {
        await again.close();
      }
    } finally {
      await drop();
    }
  }, 180_000);
});
