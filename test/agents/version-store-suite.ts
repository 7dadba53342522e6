/**
 * The behaviour every AgentVersionsPort shares, run against the single node's SQLite store
 * (test/agents/version-store.test.ts, `AgentVersionStore.port()`) and the cluster's PostgreSQL one
 * (test/agents/pg-agent-versions.test.ts): numbering per agent (case-insensitive) from 1,
 * summaries and details, newest-first pages with a total, `keep` pruning the oldest while the
 * numbering goes on, `alongside` writes that commit with the version or, when they throw,
 * record nothing, and `keepRemoved` bounding the histories of removed agents.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  definitionHash,
  parseAgent,
  type AgentDefinition,
  type AgentVersionDetail,
  type AgentVersionsPort,
  type NewVersion,
  type StoredVersionRow,
} from '../../src/agents/index.js';
import { tomlAgent } from '../helpers/http.js';

export function definition(name: string, extra = ''): AgentDefinition {
  const r = parseAgent(tomlAgent(name, extra), { file: 'x.toml' });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.definition;
}

export function newVersion(name: string, extra = '', more: Partial<NewVersion> = {}): NewVersion {
  return {
    definition: definition(name, extra),
    format: 'toml',
    source: tomlAgent(name, extra),
    how: 'api',
    origin: 'api',
    ...more,
  };
}

/** A version's detail as a store keeps its row (what `seed` takes). */
function storedRow(d: AgentVersionDetail): StoredVersionRow {
  const { agent, definition: def, ...rest } = d;
  return { ...rest, name: agent, definition: JSON.stringify(def) };
}

export function versionStoreSuite(
  label: string,
  open: (opts: { keep?: number; keepRemoved?: number }) => Promise<AgentVersionsPort>,
): void {
  describe(`AgentVersionsPort: ${label}`, () => {
    let store: AgentVersionsPort;
    beforeEach(async () => {
      store = await open({});
    });

    it('an agent without versions: latest and get undefined, an empty page', async () => {
      expect(await store.latest('nobody')).toBeUndefined();
      expect(await store.get('nobody', 1)).toBeUndefined();
      expect(await store.list('nobody')).toEqual({ items: [], total: 0 });
    });

    it('numbers versions 1, 2, 3 per agent, names regardless of case, and keeps what each was', async () => {
      const a1 = await store.append(newVersion('Writer', 'version = "1.0.0"\n', { deployed_by: 'alice' }));
      const b1 = await store.append(newVersion('other'));
      const a2 = await store.append(newVersion('Writer', 'version = "1.1.0"\n', { how: 'rollback', restored_from: 1 }));
      expect([a1.version, b1.version, a2.version]).toEqual([1, 1, 2]);
      expect(a1).toMatchObject({
        agent: 'Writer',
        semver: '1.0.0',
        how: 'api',
        origin: 'api',
        path: null,
        deployed_by: 'alice',
        restored_from: null,
        format: 'toml',
      });
      expect(a1.hash).toBe(definitionHash(definition('Writer', 'version = "1.0.0"\n')));
      expect(a2).toMatchObject({ version: 2, semver: '1.1.0', how: 'rollback', restored_from: 1, deployed_by: null });
      expect(Date.parse(a2.deployed_at)).toBeGreaterThan(0);
      expect(await store.latest('writer')).toEqual(a2);
      const d1 = (await store.get('WRITER', 1))!;
      expect(d1).toMatchObject({ ...a1, source: tomlAgent('Writer', 'version = "1.0.0"\n') });
      expect(d1.definition).toEqual(definition('Writer', 'version = "1.0.0"\n'));
      expect(await store.get('writer', 3)).toBeUndefined();
    });

    it('lists newest first, a page at a time, with the total', async () => {
      for (let i = 1; i <= 5; i++) await store.append(newVersion('paged', `version = "1.0.${i}"\n`));
      const first = await store.list('paged', { limit: 2 });
      expect(first.total).toBe(5);
      expect(first.items.map((v) => v.version)).toEqual([5, 4]);
      expect((await store.list('paged', { limit: 2, offset: 4 })).items.map((v) => v.version)).toEqual([1]);
      expect((await store.list('PAGED')).items.map((v) => v.semver)).toEqual([
        '1.0.5',
        '1.0.4',
        '1.0.3',
        '1.0.2',
        '1.0.1',
      ]);
    });

    it('keeps `keep` versions per agent, the oldest go first, and the numbering goes on', async () => {
      const small = await open({ keep: 2 });
      for (let i = 1; i <= 4; i++) await small.append(newVersion('kept', `version = "1.0.${i}"\n`));
      expect(await small.list('kept')).toMatchObject({ total: 2, items: [{ version: 4 }, { version: 3 }] });
      expect(await small.get('kept', 2)).toBeUndefined();
      expect((await small.append(newVersion('kept'))).version).toBe(5);
    });

    it('keeps the histories of the `keepRemoved` most recently removed agents only; a redeploy takes a name out of them', async () => {
      const small = await open({ keep: 2, keepRemoved: 2 });
      for (const name of ['gone-a', 'gone-b', 'back', 'gone-c']) {
        for (let i = 1; i <= 3; i++) await small.append(newVersion(name, `version = "1.0.${i}"\n`));
      }
      await small.removed('Gone-A');
      await small.removed('back');
      expect((await small.append(newVersion('back', 'version = "2.0.0"\n'))).version).toBe(4);
      await small.removed('gone-b');
      expect((await small.list('gone-a')).total).toBe(2);
      await small.removed('gone-c');
      // gone-a was removed longest ago: its history is gone, and the name starts again at 1.
      expect(await small.list('gone-a')).toEqual({ items: [], total: 0 });
      expect(await small.get('gone-a', 3)).toBeUndefined();
      expect((await small.list('gone-b')).total).toBe(2);
      expect((await small.list('gone-c')).total).toBe(2);
      expect((await small.list('back')).total).toBe(2);
      expect((await small.append(newVersion('gone-a'))).version).toBe(1);
    });

    it('runs `alongside` with the version; when it throws, no version is recorded and the numbering is unchanged', async () => {
      let ran = 0;
      const v1 = await store.append(newVersion('side'), () => void ran++);
      expect([v1.version, ran]).toEqual([1, 1]);
      await expect(
        store.append(newVersion('side', 'version = "2.0.0"\n'), () => {
          throw new Error('the local save failed');
        }),
      ).rejects.toThrow('the local save failed');
      expect(await store.list('side')).toMatchObject({ total: 1, items: [{ version: 1 }] });
      expect((await store.append(newVersion('side', 'version = "2.0.0"\n'))).version).toBe(2);
    });

    it("seeds an agent it has no versions of with another store's, numbers and authors unchanged; never over versions it has", async () => {
      const earlier = await open({});
      await earlier.append(newVersion('Joiner', 'version = "1.0.0"\n', { deployed_by: 'alice' }));
      await earlier.append(newVersion('Joiner', 'version = "2.0.0"\n', { deployed_by: 'bob' }));
      await earlier.append(newVersion('Joiner', 'version = "1.0.0"\n', { how: 'rollback', restored_from: 1 }));
      const rows = await Promise.all([1, 2, 3].map(async (n) => storedRow((await earlier.get('joiner', n))!)));

      expect(await store.seed('joiner', [])).toBe(false);
      expect(await store.seed('JOINER', rows)).toBe(true);
      expect(await store.list('joiner')).toEqual(await earlier.list('joiner'));
      expect(await store.get('joiner', 2)).toEqual(await earlier.get('joiner', 2));
      expect((await store.append(newVersion('Joiner', 'version = "3.0.0"\n'))).version).toBe(4);
      // Versions here already: nothing is written.
      expect(await store.seed('joiner', rows)).toBe(false);
      expect((await store.list('joiner')).total).toBe(4);

      // Only the newest `keep`; the numbering goes on after them.
      const small = await open({ keep: 2 });
      expect(await small.seed('joiner', rows)).toBe(true);
      expect((await small.list('joiner')).items.map((v) => v.version)).toEqual([3, 2]);
      expect((await small.append(newVersion('Joiner'))).version).toBe(4);
    });

    it('concurrent appends of one agent take distinct, consecutive numbers', async () => {
      const out = await Promise.all(
        Array.from({ length: 6 }, (_, i) => store.append(newVersion('busy', `version = "1.0.${i}"\n`))),
      );
      expect(out.map((v) => v.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
    });
  });
}
