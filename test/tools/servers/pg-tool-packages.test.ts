/**
 * The cluster's tool package store (src/tools/servers/pg-package-store.ts) on the machine's PostgreSQL:
 * the port's shared suite (test/tools/servers/package-store-suite.ts, also run on SQLite), each
 * test on a schema of its own, dropped afterwards; then what only this store promises: revisions
 * from one sequence (never reused, not even by a name removed and deployed again), a write on one
 * pool read at once on another (two nodes), nodes opening the schema together, and the messages'
 * tables and this one in one schema and one migrations table.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PgMessageStore } from '../../../src/messaging/postgres/index.js';
import { PgToolPackageStore } from '../../../src/tools/servers/index.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';
import { startPgProxy } from '../../helpers/tcp-proxy.js';
import { removeTempDirs } from '../../helpers/tmp.js';
import { packageStoreSuite, pkg } from './package-store-suite.js';

const run = hasSystem('postgresql');
const base = `caxton_pgtools_${process.pid}_${Date.now()}`;
let n = 0;
let pools: pg.Pool[] = [];
const schemas: string[] = [];

const newSchema = () => {
  const s = `${base}_${++n}`;
  schemas.push(s);
  return s;
};

beforeAll(() => {
  if (run)
    pools = [
      new pg.Pool({ connectionString: TEST_PG_URL, max: 4 }),
      new pg.Pool({ connectionString: TEST_PG_URL, max: 4 }),
    ];
});

afterEach(async () => {
  for (const s of schemas.splice(0)) await pools[0]!.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
});

afterAll(async () => {
  for (const p of pools) await p.end();
  removeTempDirs();
});

describe.skipIf(!run)('PgToolPackageStore', () => {
  packageStoreSuite('PostgreSQL', () => PgToolPackageStore.open({ pool: pools[0]!, schema: newSchema() }));

  it('takes revisions from one sequence: a name removed and deployed again never gets an old revision back', async () => {
    const store = await PgToolPackageStore.open({ pool: pools[0]!, schema: newSchema() });
    const a1 = await store.put(pkg('alpha', new Uint8Array([1])));
    const b1 = await store.put(pkg('beta', new Uint8Array([2])));
    expect(b1.revision).toBeGreaterThan(a1.revision);
    await store.remove('alpha');
    const a2 = await store.put(pkg('alpha', new Uint8Array([1])));
    expect(a2.revision).toBeGreaterThan(b1.revision);
  });

  it('a package written through one pool is read through another (two nodes), and a removal too', async () => {
    const schema = newSchema();
    const [a, b] = await Promise.all(pools.map((pool) => PgToolPackageStore.open({ pool, schema })));
    const put = await a!.put(pkg('shared', new Uint8Array([5, 6, 7])));
    expect(await b!.versions()).toEqual([{ name: 'shared', digest: put.digest, revision: put.revision }]);
    expect([...(await b!.get('shared'))!.wasm]).toEqual([5, 6, 7]);
    expect(await b!.remove('shared')).toBe(true);
    expect(await a!.get('shared')).toBeUndefined();
  });

  it('shares the schema and its migrations table with the message store; opening again changes nothing', async () => {
    const schema = newSchema();
    await Promise.all([
      PgToolPackageStore.open({ pool: pools[0]!, schema }),
      PgMessageStore.open({ pool: pools[1]!, schema }),
      PgToolPackageStore.open({ pool: pools[1]!, schema }),
    ]);
    const store = await PgToolPackageStore.open({ pool: pools[0]!, schema });
    await store.put(pkg('kept', new Uint8Array([1])));
    await PgToolPackageStore.open({ pool: pools[1]!, schema });
    expect((await store.versions()).map((v) => v.name)).toEqual(['kept']);
    const applied = (
      await pools[0]!.query<{ id: string }>(`SELECT id FROM "${schema}".migrations ORDER BY id`)
    ).rows.map((r) => r.id);
    expect(applied).toContain('cluster-tools-001');
    expect(applied).toContain('cluster-messaging-001');
    expect(applied.filter((id) => id === 'cluster-tools-001')).toHaveLength(1);
    const col = await pools[0]!.query<{ data_type: string }>(
      `SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'tool_packages' AND column_name = 'wasm'`,
      [schema],
    );
    expect(col.rows[0]?.data_type).toBe('bytea');
  });

  it('PostgreSQL out of reach: every method rejects with not_ready naming it (a deploy answers 503), and works again once it is back', async () => {
    const schema = newSchema();
    const { proxy, url: proxied } = await startPgProxy();
    const pool = new pg.Pool({ connectionString: proxied, max: 2, connectionTimeoutMillis: 1000 });
    pool.on('error', () => {});
    try {
      const store = await PgToolPackageStore.open({ pool, schema });
      await store.put(pkg('before', new Uint8Array([1])));
      proxy.cut();
      const refused = { code: 'not_ready', details: { dependency: 'cluster-postgresql' } };
      await expect(store.put(pkg('during', new Uint8Array([2])))).rejects.toMatchObject(refused);
      await expect(store.versions()).rejects.toMatchObject(refused);
      await expect(store.remove('before')).rejects.toMatchObject(refused);
      proxy.restore();
      await expect(store.put(pkg('after', new Uint8Array([3])))).resolves.toMatchObject({ name: 'after' });
      expect((await store.versions()).map((v) => v.name)).toEqual(['after', 'before']);
    } finally {
      await pool.end();
      await proxy.close();
    }
  });

  it('refuses a schema name that is not a lower-case identifier, naming the field', async () => {
    await expect(PgToolPackageStore.open({ pool: pools[0]!, schema: 'Bad-Name' })).rejects.toMatchObject({
      code: 'invalid_config',
      details: { field: 'schema' },
    });
  });
});
