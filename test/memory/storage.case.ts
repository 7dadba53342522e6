/**
 * The shared suite every memory storage runs (as Hono's router/common.case.test.ts): the graph
 * (src/memory/graph.ts) over the storage, through the MemoryBackend interface: the reference
 * server's nine operations, atomic writes, scopes, semantic / keyword / hybrid search with the
 * real local embedder, traversal, re-indexing on a model change and the index rebuilt on reopen.
 * Called by sqlite-storage.test.ts and pg-storage.test.ts, each with its own openers; the
 * contract of the storage alone is storage-contract.case.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemoryBackendKind } from '../../src/memory/backend.js';
import type { Embedder } from '../../src/memory/embedding/index.js';
import { agentScope, type MemoryBackend } from '../../src/memory/index.js';
import type { BackendFactory, BackendOpenOptions, OpenedBackend } from './backends.js';
import { HashEmbedder, localEmbedder, rejection, removeTempDirs } from './helpers.js';
import { contractSuite } from './storage-contract.case.js';
import type { OpenedStorage } from './storages.js';

/**
 * Defines the suite for the storage `name`: `openBackend` opens the graph over fresh data of that
 * storage (the MemoryBackend tests), `openStorage` the storage alone (its MemoryStorage contract).
 */
export function storageSuite<Id>(
  name: MemoryBackendKind,
  openBackend: BackendFactory['open'],
  openStorage: () => Promise<OpenedStorage<Id>>,
): void {
  afterAll(removeTempDirs);
  contractSuite(name, openStorage);

  const opened: OpenedBackend[] = [];
  afterAll(async () => {
    for (const o of opened.splice(0)) await o.cleanup();
  });

  /** Opens a graph over fresh data, cleaned up after the file. */
  const open = async (opts: BackendOpenOptions): Promise<OpenedBackend> => {
    const o = await openBackend(opts);
    opened.push(o);
    return o;
  };

  describe(`memory store (${name}): the reference operations`, () => {
    it('creates, reads, opens, searches and deletes like the MCP reference server', async () => {
      const { store } = await open({ embedder: new HashEmbedder() });
      const s = 'workspace';
      const created = await store.createEntities(s, [
        { name: 'Alice', entityType: 'person', observations: ['works at Acme', 'likes tea'] },
        { name: 'Acme', entityType: 'organization', observations: ['makes anvils'] },
      ]);
      expect(created.map((e) => e.name)).toEqual(['Alice', 'Acme']);
      // existing names are skipped, not overwritten
      const again = await store.createEntities(s, [
        { name: 'Alice', entityType: 'robot', observations: [] },
        { name: 'Bob', entityType: 'person', observations: [] },
      ]);
      expect(again.map((e) => e.name)).toEqual(['Bob']);
      expect((await store.getEntity(s, 'Alice'))?.entityType).toBe('person');

      expect(
        await store.createRelations(s, [
          { from: 'Alice', to: 'Acme', relationType: 'works_at' },
          { from: 'Bob', to: 'Alice', relationType: 'knows' },
        ]),
      ).toHaveLength(2);
      expect(await store.createRelations(s, [{ from: 'Alice', to: 'Acme', relationType: 'works_at' }])).toEqual([]);

      const added = await store.addObservations(s, [{ entityName: 'Alice', contents: ['likes tea', 'speaks French'] }]);
      expect(added).toEqual([{ entityName: 'Alice', addedObservations: ['speaks French'] }]);
      expect((await store.getEntity(s, 'Alice'))?.observations).toEqual([
        'works at Acme',
        'likes tea',
        'speaks French',
      ]);

      expect(await store.scopes()).toEqual(['workspace']);
      await store.createRelations('global', [{ from: 'X', to: 'Y', relationType: 'relates' }]); // a scope with a relation only
      expect(await store.scopes()).toEqual(['global', 'workspace']);
      expect(await store.countEntities()).toBe(3);
      await store.deleteRelations('global', [{ from: 'X', to: 'Y', relationType: 'relates' }]);

      const graph = await store.readGraph([s]);
      expect(graph.entities.map((e) => e.name)).toEqual(['Alice', 'Acme', 'Bob']);
      expect(graph.relations).toHaveLength(2);
      expect(graph.entities[0]).toMatchObject({ scope: 'workspace', metadata: {} });
      expect(graph.entities[0]!.created_at).toMatch(/^\d{4}-/);

      // search_nodes: case-insensitive substring of name, type or observation; relations touching the matches
      const found = await store.searchNodes([s], 'ANVIL');
      expect(found.entities.map((e) => e.name)).toEqual(['Acme']);
      expect(found.relations).toEqual([{ from: 'Alice', to: 'Acme', relationType: 'works_at', scope: 'workspace' }]);
      expect((await store.searchNodes([s], '100%_"x')).entities).toEqual([]);

      // open_nodes: relations with at least one endpoint requested
      const opened = await store.openNodes([s], ['Bob', 'Nobody']);
      expect(opened.entities.map((e) => e.name)).toEqual(['Bob']);
      expect(opened.relations).toEqual([{ from: 'Bob', to: 'Alice', relationType: 'knows', scope: 'workspace' }]);

      await store.deleteObservations(s, [
        { entityName: 'Alice', observations: ['likes tea'] },
        { entityName: 'Nobody', observations: ['x'] },
      ]);
      expect((await store.getEntity(s, 'Alice'))?.observations).toEqual(['works at Acme', 'speaks French']);
      expect(await store.deleteRelations(s, [{ from: 'Bob', to: 'Alice', relationType: 'knows' }])).toBe(1);
      // deleting an entity deletes its relations
      expect(await store.deleteEntities(s, ['Acme', 'Nobody'])).toBe(1);
      expect((await store.readGraph([s])).relations).toEqual([]);
      expect(await store.stats()).toMatchObject({
        entities: 2,
        relations: 0,
        observations: 2,
        embedding: { model: 'test:hash', dimensions: 32, indexed: 2 },
      });
      // the keyword side agrees with the tables after the deletes
      expect(
        (await store.search({ query: 'Acme French', scopes: [s], mode: 'keyword' })).map((h) => h.entity.name),
      ).toEqual(['Alice']);
      await store.close();
    });

    it('fails add_observations on an unknown entity and changes nothing (one transaction per operation)', async () => {
      const { store } = await open({ embedder: new HashEmbedder() });
      await store.createEntities('global', [{ name: 'A', entityType: 't', observations: ['one'] }]);
      const err = await rejection(
        store.addObservations('global', [
          { entityName: 'A', contents: ['two'] },
          { entityName: 'Missing', contents: ['x'] },
        ]),
      );
      expect(err.code).toBe('not_found');
      expect(err.message).toMatch(/Missing/);
      expect((await store.getEntity('global', 'A'))?.observations).toEqual(['one']);
    });

    it('changes nothing when the embedder fails mid-operation', async () => {
      const emb = new HashEmbedder();
      const { store } = await open({ embedder: emb });
      await store.createEntities('global', [{ name: 'A', entityType: 't', observations: ['one'] }]);
      emb.failAfter = emb.embedded;
      await expect(
        store.createEntities('global', [{ name: 'B', entityType: 't', observations: ['two'] }]),
      ).rejects.toThrow(/embedder failed/);
      expect((await store.readGraph(['global'])).entities.map((e) => e.name)).toEqual(['A']);
      emb.failAfter = Infinity;
      // the store keeps working after a failed write
      await store.createEntities('global', [{ name: 'B', entityType: 't', observations: ['two'] }]);
      expect((await store.stats()).entities).toBe(2);
    });

    it('keeps scopes apart: the same name in two scopes is two entities', async () => {
      const { store } = await open({ embedder: new HashEmbedder() });
      await store.createEntities(agentScope('Alpha'), [
        { name: 'secret', entityType: 'note', observations: ['alpha only'] },
      ]);
      await store.createEntities(agentScope('beta'), [
        { name: 'secret', entityType: 'note', observations: ['beta only'] },
      ]);
      expect((await store.readGraph([agentScope('alpha')])).entities.map((e) => e.observations)).toEqual([
        ['alpha only'],
      ]);
      expect((await store.searchNodes([agentScope('beta'), 'workspace', 'global'], 'alpha')).entities).toEqual([]);
      expect(await store.search({ query: 'alpha only', scopes: [agentScope('beta')], min_similarity: 0 })).toEqual([
        expect.objectContaining({ entity: expect.objectContaining({ observations: ['beta only'] }) }),
      ]);
    });

    it('reuses the stored vectors on reopen, and re-embeds everything when the model changes', async () => {
      const first = new HashEmbedder('test:hash-a', 32);
      const data = await open({ embedder: first });
      let store: MemoryBackend = data.store;
      await store.createEntities('global', [
        { name: 'A', entityType: 't', observations: ['red apples'] },
        { name: 'B', entityType: 't', observations: ['blue sky'] },
      ]);
      await store.close();

      const same = new HashEmbedder('test:hash-a', 32);
      store = await data.reopen({ embedder: same });
      await store.ready();
      expect(same.embedded).toBe(0); // vectors of the same model are reused
      expect((await store.search({ query: 'apples', scopes: ['global'], mode: 'semantic' }))[0]?.entity.name).toBe('A');
      await store.close();

      const other = new HashEmbedder('test:hash-b', 48);
      const progress: [number, number][] = [];
      store = await data.reopen({ embedder: other, onReindex: (d, t) => progress.push([d, t]) });
      await store.ready();
      expect(other.embedded).toBe(2);
      expect(progress.at(-1)).toEqual([2, 2]);
      expect((await store.stats()).embedding).toMatchObject({ model: 'test:hash-b', dimensions: 48, indexed: 2 });
      expect((await store.search({ query: 'blue', scopes: ['global'], mode: 'semantic' }))[0]?.entity.name).toBe('B');
      await store.close();

      // The re-embedded vectors were saved: a third start with the new model embeds nothing.
      const again = new HashEmbedder('test:hash-b', 48);
      store = await data.reopen({ embedder: again });
      await store.ready();
      expect(again.embedded).toBe(0);
      expect((await store.search({ query: 'apples', scopes: ['global'], mode: 'semantic' }))[0]?.entity.name).toBe('A');
    });
  });

  describe(`memory store (${name}): keyword candidates when words are common`, () => {
    it('finds the entity with a rare word among thousands sharing the common ones, and entities holding every common word', async () => {
      const { store } = await open({ embedder: new HashEmbedder() });
      // 5,100 entities all saying "status report", a third also "weekly": more than RARE_TERM_DOCS (5,000) hold "status"
      const many = Array.from({ length: 5_100 }, (_, i) => ({
        scope: 'workspace',
        name: `r${i}`,
        entityType: 'note',
        observations: [i % 3 === 0 ? 'weekly status report' : 'status report'],
        metadata: {},
      }));
      many.push({
        scope: 'workspace',
        name: 'zebra',
        entityType: 'note',
        observations: ['status report about the zebra enclosure'],
        metadata: {},
      });
      await store.merge(many, []);
      // a rare word among common ones: its entity is a candidate, ranked first by keyword share
      const rare = await store.search({
        query: 'zebra status report',
        scopes: ['workspace'],
        mode: 'keyword',
        limit: 3,
      });
      expect(rare[0]).toMatchObject({ entity: { name: 'zebra' }, keyword: 1 });
      // only common words: entities holding all of them come back, each with keyword score 1
      const common = await store.search({ query: 'weekly status', scopes: ['workspace'], mode: 'keyword', limit: 5 });
      expect(common).toHaveLength(5);
      for (const h of common)
        expect(h).toMatchObject({ keyword: 1, entity: { observations: ['weekly status report'] } });
      // a word no entity holds brings nothing; the entity type filter applies to keyword candidates
      expect(await store.search({ query: 'giraffe', scopes: ['workspace'], mode: 'keyword' })).toEqual([]);
      expect(
        await store.search({ query: 'zebra', scopes: ['workspace'], mode: 'keyword', entity_type: 'person' }),
      ).toEqual([]);
      await store.close();
    });
  });

  describe(`memory store (${name}): search with the local all-MiniLM-L6-v2`, () => {
    let emb: Embedder;
    let store: MemoryBackend;
    beforeAll(async () => {
      emb = await localEmbedder();
      ({ store } = await open({ embedder: emb }));
      await store.createEntities('workspace', [
        {
          name: 'Mittens',
          entityType: 'pet',
          observations: ['A grey cat who sleeps on the warm windowsill every afternoon'],
        },
        { name: 'Q3 report', entityType: 'document', observations: ['Quarterly revenue grew by twelve percent'] },
        {
          name: 'Incident 42',
          entityType: 'incident',
          observations: ['The database migration failed because the disk was full'],
        },
        {
          name: 'Clara',
          entityType: 'person',
          observations: ['She is learning to play the violin', 'Lives in Vienna'],
        },
        { name: 'Weather note', entityType: 'note', observations: ['Heavy rain is expected in the city tomorrow'] },
        { name: 'Watchdog', entityType: 'service', observations: ['The server restarts automatically after a crash'] },
        { name: 'Dinner', entityType: 'event', observations: ['He cooked pasta with tomato sauce'] },
        { name: 'Trip', entityType: 'event', observations: ['The train to Berlin was delayed by two hours'] },
        { name: 'ZX-9000', entityType: 'product', observations: ['Internal code name of the new billing module'] },
      ]);
      await store.createRelations('workspace', [
        { from: 'Clara', to: 'Trip', relationType: 'took' },
        { from: 'Trip', to: 'Berlin', relationType: 'went_to' },
        { from: 'Clara', to: 'Dinner', relationType: 'attended' },
        { from: 'Dinner', to: 'Mittens', relationType: 'disturbed' },
      ]);
    });

    it('finds the right entity first for paraphrased queries (small labelled set)', async () => {
      const queries: [string, string][] = [
        ['A kitten naps by the sunny window.', 'Mittens'],
        ['Sales went up 12% this quarter.', 'Q3 report'],
        ['The schema upgrade broke since there was no storage space left.', 'Incident 42'],
        ['Who takes violin lessons?', 'Clara'],
        ["Tomorrow's forecast calls for a lot of rain in town.", 'Weather note'],
        ['After crashing, the service comes back up on its own.', 'Watchdog'],
        ['He made spaghetti with marinara for supper.', 'Dinner'],
        ['The Berlin-bound train arrived two hours late.', 'Trip'],
      ];
      for (const mode of ['semantic', 'hybrid'] as const) {
        for (const [q, want] of queries) {
          const hits = await store.search({ query: q, scopes: ['workspace'], limit: 3, mode });
          expect(hits[0]?.entity.name, `${mode}: ${q}`).toBe(want);
          expect(hits[0]!.score).toBeGreaterThan(hits[1]?.score ?? 0);
        }
      }
    });

    it('filters by entity type, limit and min_similarity, and reports scores', async () => {
      const hits = await store.search({
        query: 'a trip by rail',
        scopes: ['workspace'],
        entity_type: 'event',
        limit: 5,
        mode: 'semantic',
      });
      expect(hits.map((h) => h.entity.name)).toEqual(['Trip', 'Dinner']);
      expect(hits[0]!.similarity).toBeGreaterThan(0.3);
      expect(await store.search({ query: 'a trip by rail', scopes: ['workspace'], limit: 1 })).toHaveLength(1);
      const strict = await store.search({ query: 'a trip by rail', scopes: ['workspace'], min_similarity: 0.99 });
      expect(strict).toEqual([]);
      // another scope sees nothing
      expect(await store.search({ query: 'a trip by rail', scopes: ['global'] })).toEqual([]);
    });

    it('hybrid search ranks an exact keyword (a code name) first where meaning alone does not', async () => {
      const hybrid = await store.search({ query: 'ZX-9000', scopes: ['workspace'], limit: 3 });
      expect(hybrid[0]?.entity.name).toBe('ZX-9000');
      expect(hybrid[0]!.keyword).toBe(1);
      expect(hybrid[0]!.score).toBeGreaterThan(hybrid[0]!.similarity);
      const keyword = await store.search({ query: 'violin Vienna', scopes: ['workspace'], mode: 'keyword' });
      expect(keyword.map((h) => [h.entity.name, h.keyword])).toEqual([['Clara', 1]]);
    });

    it('traverses relations by type, direction and depth', async () => {
      const out = await store.traverse({ scope: 'workspace', from: 'Clara', max_depth: 2 });
      expect(out.entities.map((e) => [e.name, e.depth])).toEqual([
        ['Clara', 0],
        ['Dinner', 1],
        ['Trip', 1],
        ['Mittens', 2],
      ]); // "Berlin" is named by a relation but is not an entity
      expect(out.relations).toHaveLength(4);
      const one = await store.traverse({ scope: 'workspace', from: 'Clara', max_depth: 1, relation_types: ['took'] });
      expect(one.entities.map((e) => e.name)).toEqual(['Clara', 'Trip']);
      const back = await store.traverse({ scope: 'workspace', from: 'Mittens', direction: 'in', max_depth: 5 });
      expect(back.entities.map((e) => e.name)).toEqual(['Mittens', 'Dinner', 'Clara']);
      await expect(store.traverse({ scope: 'global', from: 'Clara' })).rejects.toThrow(
        /no entity named "Clara" in scope global/,
      );
    });
  });
}
