/**
 * The MemoryStorage contract (src/memory/storage.ts), on each storage alone, without the graph:
 * what the graph relies on — a change set applied in one transaction, rows by name and by a
 * prefilter pattern, updates keeping or replacing vectors, relations once and by endpoint in
 * order, re-embedded vectors saved, search candidates, counts. Part of storageSuite (storage.case.ts).
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { MemoryBackendKind } from '../../src/memory/backend.js';
import type { Applied, Changes, EmbedTexts, EntityInsert, MemoryStorage } from '../../src/memory/storage.js';
import { entityText } from '../../src/memory/text.js';
import type { EntityWrite, StoredRelation } from '../../src/memory/types.js';
import { HashEmbedder } from './helpers.js';
import type { OpenedStorage } from './storages.js';

const T0 = '2026-01-01T00:00:00.000Z';
const byKey = (a: StoredRelation, b: StoredRelation) =>
  JSON.stringify([a.from, a.to, a.relationType]).localeCompare(JSON.stringify([b.from, b.to, b.relationType]));

/** Defines the contract tests of the storage `name`; `openStorage` gives one over fresh data. */
export function contractSuite<Id>(name: MemoryBackendKind, openStorage: () => Promise<OpenedStorage<Id>>): void {
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
    const embed: EmbedTexts = async (texts) =>
      new Map(await Promise.all(texts.map(async (t) => [t, await vec(t)] as const)));
    /** Applies `changes` through write(), with a decision that reads nothing; returns the counts. */
    const apply = (s: MemoryStorage<Id>, changes: Changes<Id>): Promise<Applied> =>
      s.write(async () => ({ texts: [], changes: () => changes, result: (a) => a }), embed);
    const entity = (name: string, entityType: string, observations: string[], scope = 'global'): EntityWrite => ({
      scope,
      name,
      entityType,
      observations,
      metadata: {},
    });
    const insert = async (e: EntityWrite): Promise<EntityInsert> => ({
      entity: e,
      created_at: T0,
      updated_at: T0,
      vector: await vec(entityText(e)),
    });
    const rel = (from: string, to: string, relationType: string): StoredRelation => ({
      scope: 'global',
      from,
      to,
      relationType,
    });
    const idOf = async (s: MemoryStorage<Id>, n: string): Promise<Id> =>
      (await s.read((r) => r.entitiesByName('global', [n]))).get(n)!.id;

    it('applies a change set in ONE transaction: one that fails part-way changes nothing', async () => {
      const s = await ready();
      const a = entity('A', 'person', ['first']);
      await expect(
        apply(s, { insert: [await insert(a), await insert(entity('B', 'person', [])), await insert(a)] }),
      ).rejects.toThrow();
      expect(await s.read((r) => r.entities(['global']))).toEqual([]);
      expect(await s.countEntities()).toBe(0);
      // a decision that fails writes nothing either
      await expect(s.write(async () => Promise.reject(new Error('decided not to')), embed)).rejects.toThrow(
        'decided not to',
      );
      expect(await s.scopes()).toEqual([]);
    });

    it('reads rows back by name, one by one, in id order, and with a pattern that folds ASCII case only', async () => {
      const s = await ready();
      await apply(s, {
        insert: [
          await insert(entity('Alice', 'person', ['Works at ACME'])),
          await insert(entity('bob', 'person', ['likes tea'])),
          await insert(entity('Carol', 'company', [])),
        ],
      });
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
      const next: EntityWrite = {
        ...a,
        entityType: 'keeper',
        observations: ['walrus keeper'],
        metadata: { shift: 'night' },
      };
      await apply(s, { update: [{ id, entity: next, updated_at: '2026-02-01T00:00:00.000Z', vector: null }] });
      expect(await s.read((r) => r.entity('global', 'A'))).toMatchObject({
        entityType: 'keeper',
        observations: ['walrus keeper'],
        metadata: { shift: 'night' },
        updated_at: '2026-02-01T00:00:00.000Z',
      });
      expect(
        await s.read((r) =>
          r.keywordCandidates({ terms: ['walrus'], every: false }, ['walrus'], 10, ['global'], undefined),
        ),
      ).toEqual([id]);
      expect(
        await s.read((r) =>
          r.keywordCandidates({ terms: ['zebra'], every: false }, ['zebra'], 10, ['global'], undefined),
        ),
      ).toEqual([]);
      // the vector is still the old text's, until an update gives a new one
      const old = await vec(entityText(a));
      expect((await s.read((r) => r.scored([id], old, new Map())))[0]!.similarity).toBeCloseTo(1, 4);
      await apply(s, {
        update: [{ id, entity: next, updated_at: '2026-02-01T00:00:00.000Z', vector: await vec(entityText(next)) }],
      });
      expect((await s.read((r) => r.scored([id], old, new Map())))[0]!.similarity).toBeLessThan(0.999);
      const fresh = await vec(entityText(next));
      expect((await s.read((r) => r.scored([id], fresh, new Map())))[0]!.similarity).toBeCloseTo(1, 4);
    });

    it('stores each relation once, finds them by endpoint in order, and deletes them with their entities', async () => {
      const s = await ready();
      await apply(s, { insert: await Promise.all(['A', 'B', 'C'].map((n) => insert(entity(n, 'node', [])))) });
      const rels = [rel('A', 'C', 'knows'), rel('A', 'B', 'likes'), rel('A', 'B', 'knows'), rel('C', 'A', 'knows')];
      expect((await apply(s, { relations: rels })).relationsCreated).toBe(4);
      expect((await apply(s, { relations: [rel('A', 'B', 'knows'), rel('B', 'A', 'knows')] })).relationsCreated).toBe(
        1,
      );
      expect(
        await s.read((r) => r.existingRelations('global', [rel('A', 'B', 'knows'), rel('B', 'C', 'knows')])),
      ).toEqual([rel('A', 'B', 'knows')]);
      expect(await s.read((r) => r.relationsAt('global', 'A', 'out'))).toEqual([
        rel('A', 'B', 'knows'),
        rel('A', 'B', 'likes'),
        rel('A', 'C', 'knows'),
      ]);
      expect(await s.read((r) => r.relationsAt('global', 'A', 'in'))).toEqual([
        rel('B', 'A', 'knows'),
        rel('C', 'A', 'knows'),
      ]);
      expect((await s.read((r) => r.relationsTouching('global', ['C']))).sort(byKey)).toEqual([
        rel('A', 'C', 'knows'),
        rel('C', 'A', 'knows'),
      ]);
      expect((await s.read((r) => r.relations(['global']))).sort(byKey)).toEqual(
        [...rels, rel('B', 'A', 'knows')].sort(byKey),
      );
      expect(await s.read((r) => r.relations(['workspace']))).toEqual([]);
      expect(
        (
          await apply(s, {
            deleteRelations: {
              scope: 'global',
              relations: [rel('A', 'B', 'likes'), rel('A', 'B', 'likes'), rel('B', 'C', 'x')],
            },
          })
        ).relationsDeleted,
      ).toBe(1);
      const del = await apply(s, { deleteEntities: { scope: 'global', names: ['C', 'nobody'] } });
      expect(del.entitiesDeleted).toBe(1);
      expect((await s.read((r) => r.relations(['global']))).sort(byKey)).toEqual([
        rel('A', 'B', 'knows'),
        rel('B', 'A', 'knows'),
      ]);
      expect((await apply(s, { clear: ['global'] })).cleared).toBe(2);
      expect(await s.scopes()).toEqual([]);
    });

    it('re-embeds the vectors of another model at open and saves them: the next open has nothing to re-embed', async () => {
      const o = await openStorage();
      opened.push(o);
      const a = entity('A', 'fruit', ['apples are red']);
      await apply(await ready(o.storage), {
        insert: [await insert(a), await insert(entity('B', 'fruit', ['bananas are yellow']))],
      });
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
      const es = [
        entity('Zed', 'animal', ['zebra stripes savanna']),
        entity('Pen', 'bird', ['penguin ice swimming']),
        entity('Cam', 'animal', ['camel desert hump savanna']),
      ];
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
      expect(await s.read((r) => r.keywordCandidates(any, ['zebra', 'savanna'], 10, ['global'], undefined))).toEqual([
        zed,
        cam,
      ]);
      expect(await s.read((r) => r.keywordCandidates(any, ['zebra', 'savanna'], 1, ['global'], undefined))).toEqual([
        zed,
      ]);
      expect(
        await s.read((r) =>
          r.keywordCandidates({ terms: ['zebra', 'savanna'], every: true }, [], 10, ['global'], undefined),
        ),
      ).toEqual([zed]);
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
      await apply(s, {
        insert: [await insert(entity('A', 't', ['x', 'y'])), await insert(entity('B', 't', ['z'], 'workspace'))],
        relations: [rel('A', 'A', 'self')],
      });
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
