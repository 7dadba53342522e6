/**
 * The shared suite every memory storage runs (as Hono's router/common.case.test.ts): the graph
 * (src/memory/graph.ts) over the storage, through the MemoryBackend interface: the reference
 * server's nine operations, atomic writes, scopes, semantic / keyword / hybrid search with the
 * real local embedder, traversal, re-indexing on a model change and the index rebuilt on reopen.
 * Called by sqlite-storage.test.ts and pg-storage.test.ts, each with its own `open`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemoryBackendKind } from '../../src/memory/backend.js';
import type { Embedder } from '../../src/memory/embedding/index.js';
import { agentScope, type MemoryBackend } from '../../src/memory/index.js';
import type { Applied, Changes, EmbedTexts, EntityInsert, MemoryStorage } from '../../src/memory/storage.js';
import { entityText } from '../../src/memory/text.js';
import type { EntityWrite, StoredRelation } from '../../src/memory/types.js';
import type { BackendFactory, BackendOpenOptions, OpenedBackend } from './backends.js';
import { HashEmbedder, localEmbedder, rejection, removeTempDirs } from './helpers.js';
import type { OpenedStorage } from './storages.js';

/**
 * Defines the suite for the storage `name`: `openBackend` opens the graph over fresh data of that
 * storage (the MemoryBackend tests), `openStorage` the storage alone (its MemoryStorage contract).
 */
export function storageSuite<Id>(name: MemoryBackendKind, openBackend: BackendFactory['open'], openStorage: () => Promise<OpenedStorage<Id>>): void {
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
      expect((await store.getEntity(s, 'Alice'))?.observations).toEqual(['works at Acme', 'likes tea', 'speaks French']);

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
      expect(await store.stats()).toMatchObject({ entities: 2, relations: 0, observations: 2, embedding: { model: 'test:hash', dimensions: 32, indexed: 2 } });
      // the keyword side agrees with the tables after the deletes
      expect((await store.search({ query: 'Acme French', scopes: [s], mode: 'keyword' })).map((h) => h.entity.name)).toEqual(['Alice']);
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
      await expect(store.createEntities('global', [{ name: 'B', entityType: 't', observations: ['two'] }])).rejects.toThrow(/embedder failed/);
      expect((await store.readGraph(['global'])).entities.map((e) => e.name)).toEqual(['A']);
      emb.failAfter = Infinity;
      // the store keeps working after a failed write
      await store.createEntities('global', [{ name: 'B', entityType: 't', observations: ['two'] }]);
      expect((await store.stats()).entities).toBe(2);
    });

    it('keeps scopes apart: the same name in two scopes is two entities', async () => {
      const { store } = await open({ embedder: new HashEmbedder() });
      await store.createEntities(agentScope('Alpha'), [{ name: 'secret', entityType: 'note', observations: ['alpha only'] }]);
      await store.createEntities(agentScope('beta'), [{ name: 'secret', entityType: 'note', observations: ['beta only'] }]);
      expect((await store.readGraph([agentScope('alpha')])).entities.map((e) => e.observations)).toEqual([['alpha only']]);
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
      many.push({ scope: 'workspace', name: 'zebra', entityType: 'note', observations: ['status report about the zebra enclosure'], metadata: {} });
      await store.merge(many, []);
      // a rare word among common ones: its entity is a candidate, ranked first by keyword share
      const rare = await store.search({ query: 'zebra status report', scopes: ['workspace'], mode: 'keyword', limit: 3 });
      expect(rare[0]).toMatchObject({ entity: { name: 'zebra' }, keyword: 1 });
      // only common words: entities holding all of them come back, each with keyword score 1
      const common = await store.search({ query: 'weekly status', scopes: ['workspace'], mode: 'keyword', limit: 5 });
      expect(common).toHaveLength(5);
      for (const h of common) expect(h).toMatchObject({ keyword: 1, entity: { observations: ['weekly status report'] } });
      // a word no entity holds brings nothing; the entity type filter applies to keyword candidates
      expect(await store.search({ query: 'giraffe', scopes: ['workspace'], mode: 'keyword' })).toEqual([]);
      expect(await store.search({ query: 'zebra', scopes: ['workspace'], mode: 'keyword', entity_type: 'person' })).toEqual([]);
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
        { name: 'Mittens', entityType: 'pet', observations: ['A grey cat who sleeps on the warm windowsill every afternoon'] },
        { name: 'Q3 report', entityType: 'document', observations: ['Quarterly revenue grew by twelve percent'] },
        { name: 'Incident 42', entityType: 'incident', observations: ['The database migration failed because the disk was full'] },
        { name: 'Clara', entityType: 'person', observations: ['She is learning to play the violin', 'Lives in Vienna'] },
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
      const hits = await store.search({ query: 'a trip by rail', scopes: ['workspace'], entity_type: 'event', limit: 5, mode: 'semantic' });
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
      await expect(store.traverse({ scope: 'global', from: 'Clara' })).rejects.toThrow(/no entity named "Clara" in scope global/);
    });
  });
}

const T0 = '2026-01-01T00:00:00.000Z';
const byKey = (a: StoredRelation, b: StoredRelation) => JSON.stringify([a.from, a.to, a.relationType]).localeCompare(JSON.stringify([b.from, b.to, b.relationType]));

/** The MemoryStorage contract, on the storage alone: what the graph relies on. */
function contractSuite<Id>(name: MemoryBackendKind, openStorage: () => Promise<OpenedStorage<Id>>): void {
  describe(`${name} storage: the MemoryStorage contract`, () => {
    const embedder = new HashEmbedder();
    const opened: OpenedStorage<Id>[] = [];
    afterAll(async () => {
      for (const o of opened.splice(0)) await o.cleanup();
    });

    /** A storage over fresh data, opened for `embedder` (nothing to re-embed, writes are not concurrent here). */
    async function ready(s?: MemoryStorage<Id>): Promise<MemoryStorage<Id>> {
      if (!s) {
        const o = await openStorage();
        opened.push(o);
        s = o.storage;
      }
      await s.open({ embedder, exclusive: async (fn) => fn(), reembed: async () => {} });
      return s;
    }
    const vec = async (text: string) => (await embedder.embed([text]))[0]!;
    const embed: EmbedTexts = async (texts) => new Map(await Promise.all(texts.map(async (t) => [t, await vec(t)] as const)));
    /** Applies `changes` through write(), with a decision that reads nothing; returns the counts. */
    const apply = (s: MemoryStorage<Id>, changes: Changes<Id>): Promise<Applied> => s.write(async () => ({ texts: [], changes: () => changes, result: (a) => a }), embed);
    const entity = (name: string, entityType: string, observations: string[], scope = 'global'): EntityWrite => ({ scope, name, entityType, observations, metadata: {} });
    const insert = async (e: EntityWrite): Promise<EntityInsert> => ({ entity: e, created_at: T0, updated_at: T0, vector: await vec(entityText(e)) });
    const rel = (from: string, to: string, relationType: string): StoredRelation => ({ scope: 'global', from, to, relationType });
    const idOf = async (s: MemoryStorage<Id>, n: string): Promise<Id> => (await s.read((r) => r.entitiesByName('global', [n]))).get(n)!.id;

    it('applies a change set in ONE transaction: one that fails part-way changes nothing', async () => {
      const s = await ready();
      const a = entity('A', 'person', ['first']);
      await expect(apply(s, { insert: [await insert(a), await insert(entity('B', 'person', [])), await insert(a)] })).rejects.toThrow();
      expect(await s.read((r) => r.entities(['global']))).toEqual([]);
      expect(await s.countEntities()).toBe(0);
      // a decision that fails writes nothing either
      await expect(s.write(async () => Promise.reject(new Error('decided not to')), embed)).rejects.toThrow('decided not to');
      expect(await s.scopes()).toEqual([]);
    });

    it('reads rows back by name, one by one, in id order, and with a pattern that folds ASCII case only', async () => {
      const s = await ready();
      await apply(s, { insert: [await insert(entity('Alice', 'person', ['Works at ACME'])), await insert(entity('bob', 'person', ['likes tea'])), await insert(entity('Carol', 'company', []))] });
      const rows = await s.read((r) => r.entitiesByName('global', ['bob', 'Alice', 'nobody', 'bob']));
      expect([...rows.keys()].sort()).toEqual(['Alice', 'bob']);
      expect(rows.get('Alice')!.id).not.toEqual(rows.get('bob')!.id);
      expect(await s.read((r) => r.entity('global', 'Alice'), { snapshot: false })).toEqual({
        name: 'Alice',
        entityType: 'person',
        observations: ['Works at ACME'],
        scope: 'global',
        metadata: {},
        created_at: T0,
        updated_at: T0,
      });
      expect(await s.read((r) => r.entity('workspace', 'Alice'))).toBeUndefined();
      expect((await s.read((r) => r.entities(['global']))).map((e) => e.name)).toEqual(['Alice', 'bob', 'Carol']);
      expect((await s.read((r) => r.entities(['global'], '%acme%'))).map((e) => e.name)).toEqual(['Alice']);
      expect((await s.read((r) => r.entities(['global'], '%alice%'))).map((e) => e.name)).toEqual(['Alice']);
      expect((await s.read((r) => r.entities(['global'], '%compan%'))).map((e) => e.name)).toEqual(['Carol']);
      expect((await s.read((r) => r.entities(['global'], '%100\\%%'))).map((e) => e.name)).toEqual([]);
      expect(await s.read((r) => r.entities(['workspace']))).toEqual([]);
    });

    it('updates type, observations, metadata and words; a null vector keeps the stored one', async () => {
      const s = await ready();
      const a = entity('A', 'person', ['zebra keeper']);
      await apply(s, { insert: [await insert(a)] });
      const id = await idOf(s, 'A');
      const next: EntityWrite = { ...a, entityType: 'keeper', observations: ['walrus keeper'], metadata: { shift: 'night' } };
      await apply(s, { update: [{ id, entity: next, updated_at: '2026-02-01T00:00:00.000Z', vector: null }] });
      expect(await s.read((r) => r.entity('global', 'A'))).toMatchObject({
        entityType: 'keeper',
        observations: ['walrus keeper'],
        metadata: { shift: 'night' },
        updated_at: '2026-02-01T00:00:00.000Z',
      });
      expect(await s.read((r) => r.keywordCandidates({ terms: ['walrus'], every: false }, ['walrus'], 10, ['global'], undefined))).toEqual([id]);
      expect(await s.read((r) => r.keywordCandidates({ terms: ['zebra'], every: false }, ['zebra'], 10, ['global'], undefined))).toEqual([]);
      // the vector is still the old text's, until an update gives a new one
      const old = await vec(entityText(a));
      expect((await s.read((r) => r.scored([id], old, new Map())))[0]!.similarity).toBeCloseTo(1, 4);
      await apply(s, { update: [{ id, entity: next, updated_at: '2026-02-01T00:00:00.000Z', vector: await vec(entityText(next)) }] });
      expect((await s.read((r) => r.scored([id], old, new Map())))[0]!.similarity).toBeLessThan(0.999);
      const fresh = await vec(entityText(next));
      expect((await s.read((r) => r.scored([id], fresh, new Map())))[0]!.similarity).toBeCloseTo(1, 4);
    });

    it('stores each relation once, finds them by endpoint in order, and deletes them with their entities', async () => {
      const s = await ready();
      await apply(s, { insert: await Promise.all(['A', 'B', 'C'].map((n) => insert(entity(n, 'node', [])))) });
      const rels = [rel('A', 'C', 'knows'), rel('A', 'B', 'likes'), rel('A', 'B', 'knows'), rel('C', 'A', 'knows')];
      expect((await apply(s, { relations: rels })).relationsCreated).toBe(4);
      expect((await apply(s, { relations: [rel('A', 'B', 'knows'), rel('B', 'A', 'knows')] })).relationsCreated).toBe(1);
      expect(await s.read((r) => r.existingRelations('global', [rel('A', 'B', 'knows'), rel('B', 'C', 'knows')]))).toEqual([rel('A', 'B', 'knows')]);
      expect(await s.read((r) => r.relationsAt('global', 'A', 'out'))).toEqual([rel('A', 'B', 'knows'), rel('A', 'B', 'likes'), rel('A', 'C', 'knows')]);
      expect(await s.read((r) => r.relationsAt('global', 'A', 'in'))).toEqual([rel('B', 'A', 'knows'), rel('C', 'A', 'knows')]);
      expect((await s.read((r) => r.relationsTouching('global', ['C']))).sort(byKey)).toEqual([rel('A', 'C', 'knows'), rel('C', 'A', 'knows')]);
      expect((await s.read((r) => r.relations(['global']))).sort(byKey)).toEqual([...rels, rel('B', 'A', 'knows')].sort(byKey));
      expect(await s.read((r) => r.relations(['workspace']))).toEqual([]);
      expect((await apply(s, { deleteRelations: { scope: 'global', relations: [rel('A', 'B', 'likes'), rel('A', 'B', 'likes'), rel('B', 'C', 'x')] } })).relationsDeleted).toBe(1);
      const del = await apply(s, { deleteEntities: { scope: 'global', names: ['C', 'nobody'] } });
      expect(del.entitiesDeleted).toBe(1);
      expect((await s.read((r) => r.relations(['global']))).sort(byKey)).toEqual([rel('A', 'B', 'knows'), rel('B', 'A', 'knows')]);
      expect((await apply(s, { clear: ['global'] })).cleared).toBe(2);
      expect(await s.scopes()).toEqual([]);
    });

    it('re-embeds the vectors of another model at open and saves them: the next open has nothing to re-embed', async () => {
      const o = await openStorage();
      opened.push(o);
      const a = entity('A', 'fruit', ['apples are red']);
      await apply(await ready(o.storage), { insert: [await insert(a), await insert(entity('B', 'fruit', ['bananas are yellow']))] });
      const other = new HashEmbedder('test:other', embedder.dimensions);
      const asked: number[] = [];
      const openWith = (s: MemoryStorage<Id>) =>
        s.open({
          embedder: other,
          exclusive: async (fn) => fn(),
          reembed: async (ids, load, save) => {
            asked.push(ids.length);
            const rows = await load([...ids]);
            await save(rows, await other.embed(rows.map((r) => entityText(r.entity))));
          },
        });
      const second = await o.reopen();
      await openWith(second);
      expect(asked).toEqual([2]);
      expect((await second.stats()).embedding).toMatchObject({ model: 'test:other', indexed: 2 });
      const third = await o.reopen();
      await openWith(third);
      expect(asked).toEqual([2]);
      const q = (await other.embed([entityText(a)]))[0]!;
      const id = await idOf(third, 'A');
      expect((await third.read((r) => r.nearest(q, 2, ['global'], undefined)))[0]!.id).toEqual(id);
      expect((await third.read((r) => r.scored([id], q, new Map())))[0]!.similarity).toBeCloseTo(1, 4);
    });

    it('brings search candidates: nearest vectors, keyword candidates (of a type), scored rows', async () => {
      const s = await ready();
      const es = [entity('Zed', 'animal', ['zebra stripes savanna']), entity('Pen', 'bird', ['penguin ice swimming']), entity('Cam', 'animal', ['camel desert hump savanna'])];
      await apply(s, { insert: await Promise.all(es.map(insert)) });
      const zed = await idOf(s, 'Zed');
      const pen = await idOf(s, 'Pen');
      const cam = await idOf(s, 'Cam');
      const q = await vec(entityText(es[1]!));
      const near = await s.read((r) => r.nearest(q, 3, ['global'], undefined));
      expect(near[0]!.id).toEqual(pen);
      expect(near.map((h) => h.id)).toHaveLength(3);
      expect((await s.read((r) => r.nearest(q, 3, ['global'], 'animal'))).map((h) => h.id)).not.toContainEqual(pen);
      expect(await s.read((r) => r.nearest(q, 3, ['workspace'], undefined))).toEqual([]);
      const docs = await s.read((r) => r.termDocs(['zebra', 'savanna', 'nothing']));
      expect([docs.get('zebra'), docs.get('savanna'), docs.get('nothing') ?? 0]).toEqual([1, 2, 0]);
      const any = { terms: ['zebra', 'savanna'], every: false };
      expect(await s.read((r) => r.keywordCandidates(any, ['zebra', 'savanna'], 10, ['global'], undefined))).toEqual([zed, cam]);
      expect(await s.read((r) => r.keywordCandidates(any, ['zebra', 'savanna'], 1, ['global'], undefined))).toEqual([zed]);
      expect(await s.read((r) => r.keywordCandidates({ terms: ['zebra', 'savanna'], every: true }, [], 10, ['global'], undefined))).toEqual([zed]);
      expect(await s.read((r) => r.keywordCandidates(any, ['zebra'], 10, ['global'], 'bird'))).toEqual([]);
      expect(await s.read((r) => r.keywordCandidates(any, ['zebra'], 10, ['workspace'], undefined))).toEqual([]);
      const scored = await s.read((r) => r.scored([zed, pen], q, new Map()));
      expect(scored.map((x) => x.entity.name).sort()).toEqual(['Pen', 'Zed']);
      expect(scored.find((x) => x.entity.name === 'Pen')!.similarity).toBeCloseTo(1, 4);
      expect((await s.read((r) => r.scored([pen], undefined, new Map())))[0]!.similarity).toBe(0);
    });

    it('counts entities, observations and relations per scope, and the vectors of the model it was opened for', async () => {
      const o = await openStorage();
      opened.push(o);
      // before open(): counts (reads need no embedder), no embedding
      expect(await o.storage.stats()).toMatchObject({ entities: [], relations: [], embedding: null });
      const s = await ready(o.storage);
      await apply(s, { insert: [await insert(entity('A', 't', ['x', 'y'])), await insert(entity('B', 't', ['z'], 'workspace'))], relations: [rel('A', 'A', 'self')] });
      const st = await s.stats();
      expect(st.entities.sort((a, b) => a.scope.localeCompare(b.scope))).toEqual([
        { scope: 'global', n: 1, o: 2 },
        { scope: 'workspace', n: 1, o: 1 },
      ]);
      expect(st.relations).toEqual([{ scope: 'global', n: 1 }]);
      expect(st.embedding).toMatchObject({ model: embedder.model, dimensions: embedder.dimensions, indexed: 2 });
      expect(await s.countEntities()).toBe(2);
      expect(await s.scopes()).toEqual(['global', 'workspace']);
    });
  });
}
