/**
 * The cluster's agent version store (src/cluster/pg-agent-versions.ts) on the machine's
 * PostgreSQL: the port's shared suite (test/agents/version-store-suite.ts, also run on SQLite),
 * each test on a schema of its own, dropped afterwards; then what only this store promises: one
 * numbering per agent for two pools (two nodes) appending at once, and each reading the other's.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PgAgentVersionStore } from '../../src/cluster/index.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import { newVersion, versionStoreSuite } from '../agents/version-store-suite.js';

const run = hasSystem('postgresql');
const base = `caxton_pgversions_${process.pid}_${Date.now()}`;
let n = 0;
let pools: pg.Pool[] = [];
const schemas: string[] = [];

const newSchema = () => {
  const s = `${base}_${++n}`;
  schemas.push(s);
  return s;
};

beforeAll(() => {
  if (run) pools = [new pg.Pool({ connectionString: TEST_PG_URL, max: 4 }), new pg.Pool({ connectionString: TEST_PG_URL, max: 4 })];
});

afterEach(async () => {
  for (const s of schemas.splice(0)) await pools[0]!.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
});

afterAll(async () => {
  for (const p of pools) await p.end();
});

describe.skipIf(!run)('PgAgentVersionStore', () => {
  versionStoreSuite('PostgreSQL', ({ keep }) => PgAgentVersionStore.open({ pool: pools[0]!, schema: newSchema(), ...(keep !== undefined && { keep }) }));

  it('two nodes appending the same agent at once get one numbering, and read each other’s versions', async () => {
    const schema = newSchema();
    const [a, b] = await Promise.all(pools.map((pool) => PgAgentVersionStore.open({ pool, schema })));
    const out = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a! : b!).append(newVersion('shared', `version = "1.0.${i}"\n`))));
    expect(out.map((v) => v.version).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await a!.list('shared', { limit: 100 })).toEqual(await b!.list('shared', { limit: 100 }));
    const fromB = (await b!.get('shared', out[0]!.version))!;
    expect(fromB.semver).toBe('1.0.0');
    expect((await a!.latest('SHARED'))!.version).toBe(8);
  });

  it('keeps its table beside the other shared tables in one migrations table', async () => {
    const schema = newSchema();
    await PgAgentVersionStore.open({ pool: pools[0]!, schema });
    await PgAgentVersionStore.open({ pool: pools[1]!, schema });
    const ids = (await pools[0]!.query<{ id: string }>(`SELECT id FROM "${schema}".migrations`)).rows.map((r) => r.id);
    expect(ids).toEqual(['cluster-agent-versions-001']);
  });
});
