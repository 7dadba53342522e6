/**
 * The behaviour every ToolPackageStorePort shares, run against the single-node SQLite store
 * (test/tools/servers/package-store.test.ts) and the cluster's PostgreSQL one
 * (test/tools/servers/pg-tool-packages.test.ts): put, replace, get, all, versions, remove, and module
 * bytes coming back byte for byte (a real tool module, and bytes no text encoding survives).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { moduleDigest, type ToolPackageInput, type ToolPackageStorePort } from '../../../src/tools/servers/index.js';
import { ensureToolsBuilt, EXAMPLE_DIR } from './helpers.js';

export function pkg(
  name: string,
  wasm: Uint8Array,
  manifest = `name = "${name}"\nversion = "1.0.0"\n`,
  deployedAt = '2026-01-02T03:04:05.000Z',
): ToolPackageInput {
  return { name, manifest, wasm, digest: moduleDigest(wasm), deployed_at: deployedAt };
}

/** Every byte value, NULs and invalid UTF-8 included. */
const ALL_BYTES = new Uint8Array(Array.from({ length: 512 }, (_, i) => i % 256));

export function packageStoreSuite(label: string, open: () => Promise<ToolPackageStorePort>): void {
  describe(`ToolPackageStorePort: ${label}`, () => {
    let store: ToolPackageStorePort;
    beforeEach(async () => {
      store = await open();
    });

    it('stores a real module and reads it back byte for byte, with its manifest, digest and time', async () => {
      ensureToolsBuilt();
      const wasm = new Uint8Array(readFileSync(join(EXAMPLE_DIR, 'build/text.wasm')));
      const manifest = readFileSync(join(EXAMPLE_DIR, 'caxton-tool.toml'), 'utf8');
      const put = await store.put(pkg('text', wasm, manifest));
      expect(put).toMatchObject({
        name: 'text',
        manifest,
        digest: moduleDigest(wasm),
        deployed_at: '2026-01-02T03:04:05.000Z',
      });
      expect(Number.isInteger(put.revision) && put.revision > 0).toBe(true);
      const got = (await store.get('text'))!;
      expect(got).toMatchObject({
        name: 'text',
        manifest,
        digest: moduleDigest(wasm),
        deployed_at: '2026-01-02T03:04:05.000Z',
        revision: put.revision,
      });
      expect(got.wasm).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(got.wasm).equals(Buffer.from(wasm))).toBe(true);
      expect(moduleDigest(got.wasm)).toBe(put.digest);
    });

    it('keeps every byte value of a module', async () => {
      await store.put(pkg('bytes', ALL_BYTES));
      expect([...(await store.get('bytes'))!.wasm]).toEqual([...ALL_BYTES]);
    });

    it('a name absent: get undefined, remove false, empty all and versions', async () => {
      expect(await store.get('nothing')).toBeUndefined();
      expect(await store.remove('nothing')).toBe(false);
      expect(await store.all()).toEqual([]);
      expect(await store.versions()).toEqual([]);
    });

    it('replacing a name keeps one row with the new content and a greater revision, even with the same module bytes', async () => {
      const first = await store.put(pkg('alpha', new Uint8Array([1, 2, 3])));
      const second = await store.put(
        pkg('alpha', new Uint8Array([1, 2, 3]), 'name = "alpha"\nversion = "2.0.0"\n', '2026-01-03T00:00:00.000Z'),
      );
      expect(second.revision).toBeGreaterThan(first.revision);
      expect(second.digest).toBe(first.digest);
      const third = await store.put(pkg('alpha', new Uint8Array([4, 5])));
      expect(third.revision).toBeGreaterThan(second.revision);
      const all = await store.all();
      expect(all).toHaveLength(1);
      expect(all[0]).toMatchObject({
        name: 'alpha',
        digest: moduleDigest(new Uint8Array([4, 5])),
        revision: third.revision,
      });
      expect([...all[0]!.wasm]).toEqual([4, 5]);
    });

    it('all and versions list every package by name; versions carry no bytes', async () => {
      const b = await store.put(pkg('beta', new Uint8Array([2])));
      const a = await store.put(pkg('alpha', new Uint8Array([1])));
      const c = await store.put(pkg('Zeta_upper', new Uint8Array([3])));
      expect((await store.all()).map((p) => [p.name, p.revision])).toEqual([
        ['Zeta_upper', c.revision],
        ['alpha', a.revision],
        ['beta', b.revision],
      ]);
      expect(await store.versions()).toEqual([
        { name: 'Zeta_upper', digest: c.digest, revision: c.revision },
        { name: 'alpha', digest: a.digest, revision: a.revision },
        { name: 'beta', digest: b.digest, revision: b.revision },
      ]);
    });

    it('remove deletes one name and leaves the others; a removed name can be deployed again', async () => {
      await store.put(pkg('alpha', new Uint8Array([1])));
      await store.put(pkg('beta', new Uint8Array([2])));
      expect(await store.remove('alpha')).toBe(true);
      expect(await store.remove('alpha')).toBe(false);
      expect((await store.versions()).map((v) => v.name)).toEqual(['beta']);
      expect(await store.get('alpha')).toBeUndefined();
      const again = await store.put(pkg('alpha', new Uint8Array([9])));
      expect((await store.get('alpha'))!.revision).toBe(again.revision);
      expect([...(await store.get('alpha'))!.wasm]).toEqual([9]);
    });

    it('accepts a module given as a view into a larger buffer (only the view is stored)', async () => {
      const big = new Uint8Array([0, 0, 7, 8, 9, 0]);
      const view = big.subarray(2, 5);
      await store.put(pkg('view', view));
      expect([...(await store.get('view'))!.wasm]).toEqual([7, 8, 9]);
    });
  });
}
