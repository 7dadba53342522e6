/**
 * The single-node tool package store (SQLite, src/tools/servers/package-store.ts) through the shared
 * suite of the port, and the migration that added `revision` to a database written before it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { migrate, openDatabase } from '../../../src/storage/index.js';
import { TOOL_PACKAGE_MIGRATIONS, ToolPackageStore } from '../../../src/tools/servers/index.js';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp.js';
import { packageStoreSuite } from './package-store-suite.js';

afterAll(removeTempDirs);

packageStoreSuite('SQLite', () => Promise.resolve(new ToolPackageStore(openDatabase(makeTempDir()))));

describe('ToolPackageStore (SQLite)', () => {
  it('a row stored before revisions existed reads as revision 1, and its next write as 2', async () => {
    const db = openDatabase(makeTempDir());
    // What tools-002 alone created, with one row in it.
    migrate(db, TOOL_PACKAGE_MIGRATIONS.slice(0, 1));
    db.prepare(
      `INSERT INTO tool_packages VALUES ('old', 'name = "old"', x'0102', 'd', '2026-01-01T00:00:00.000Z')`,
    ).run();
    const store = new ToolPackageStore(db);
    expect(await store.versions()).toEqual([{ name: 'old', digest: 'd', revision: 1 }]);
    expect(
      (
        await store.put({
          name: 'old',
          manifest: 'name = "old"',
          wasm: new Uint8Array([3]),
          digest: 'e',
          deployed_at: '2026-01-02T00:00:00.000Z',
        })
      ).revision,
    ).toBe(2);
  });
});
