/**
 * The cluster's agent version store (src/agents/pg-agent-versions.ts) on the machine's
 * PostgreSQL: the port's shared suite (test/agents/version-store-suite.ts, also run on SQLite),
 * each test on a schema of its own, dropped afterwards; then what only this store promises: one
 * numbering per agent for two pools (two nodes) appending at once, and each reading the other's;
 * and PostgreSQL out of reach: a deploy, rollback, removal or read of the deployed text through the
 * service answers 503 naming it and changes nothing on the node (nor in the cluster's agents); a
 * rollout whose mark cannot be written (PostgreSQL lost after its version committed) does not run.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AGENT_MIGRATIONS,
  AgentRegistry,
  AgentService,
  AgentStore,
  AgentVersionStore,
  PgAgentDirectory,
  PgAgentVersionStore,
  RolloutStore,
} from '../../src/agents/index.js';
import { PgRolloutMarks } from '../../src/cluster/index.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { tomlAgent } from '../helpers/http.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import { startPgProxy } from '../helpers/tcp-proxy.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { newVersion, versionStoreSuite } from './version-store-suite.js';

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

describe.skipIf(!run)('PgAgentVersionStore', () => {
  versionStoreSuite('PostgreSQL', ({ keep, keepRemoved }) =>
    PgAgentVersionStore.open({
      pool: pools[0]!,
      schema: newSchema(),
      ...(keep !== undefined && { keep }),
      ...(keepRemoved !== undefined && { keepRemoved }),
    }),
  );

  it('two nodes appending the same agent at once get one numbering, and read each other’s versions', async () => {
    const schema = newSchema();
    const [a, b] = await Promise.all(pools.map((pool) => PgAgentVersionStore.open({ pool, schema })));
    const out = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (i % 2 === 0 ? a! : b!).append(newVersion('shared', `version = "1.0.${i}"\n`)),
      ),
    );
    expect(out.map((v) => v.version).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await a!.list('shared', { limit: 100 })).toEqual(await b!.list('shared', { limit: 100 }));
    const fromB = (await b!.get('shared', out[0]!.version))!;
    expect(fromB.semver).toBe('1.0.0');
    expect((await a!.latest('SHARED'))!.version).toBe(8);
  });

  it('keeps its tables beside the other shared tables in one migrations table', async () => {
    const schema = newSchema();
    await PgAgentVersionStore.open({ pool: pools[0]!, schema });
    await PgAgentVersionStore.open({ pool: pools[1]!, schema });
    const ids = (await pools[0]!.query<{ id: string }>(`SELECT id FROM "${schema}".migrations`)).rows.map((r) => r.id);
    expect(ids.sort()).toEqual(['cluster-agent-versions-001', 'cluster-agent-versions-002-removals']);
  });

  it('PostgreSQL out of reach: an update and a rollback answer not_ready naming it and change nothing here; once it is back they work', async () => {
    const schema = newSchema();
    const { proxy, url: proxied } = await startPgProxy();
    const pool = new pg.Pool({ connectionString: proxied, max: 2, connectionTimeoutMillis: 1000 });
    pool.on('error', () => {});
    const db = openDatabase(makeTempDir('caxton-pgversions-'));
    migrate(db, AGENT_MIGRATIONS);
    const store = new AgentStore(db);
    const registry = new AgentRegistry();
    const directory = await PgAgentDirectory.open({ pool, schema, node: 'node-a' });
    const service = new AgentService(registry, store, {
      versions: new AgentVersionStore(db),
      cluster: { versions: await PgAgentVersionStore.open({ pool, schema, directory }), agents: directory },
    });
    try {
      await service.deploy({ body: tomlAgent('Keeper') }, 'create');
      await service.deploy({ body: tomlAgent('Keeper', 'version = "2.0.0"\n') }, 'update', 'keeper');
      proxy.cut();
      const refused = { code: 'not_ready', details: { dependency: 'cluster-postgresql' } };
      await expect(
        service.deploy({ body: tomlAgent('Keeper', 'version = "3.0.0"\n') }, 'update', 'keeper'),
      ).rejects.toMatchObject(refused);
      await expect(service.rollback('keeper')).rejects.toMatchObject(refused);
      await expect(service.remove('keeper')).rejects.toMatchObject(refused);
      await expect(service.source('keeper')).rejects.toMatchObject(refused);
      expect(registry.get('keeper')).toMatchObject({ revision: 2, definition: { version: '2.0.0' } });
      expect(store.source('keeper')).toBe(tomlAgent('Keeper', 'version = "2.0.0"\n'));
      proxy.restore();
      // The cluster's row is the deploy's, unchanged by what was refused.
      expect(await service.source('keeper')).toBe(tomlAgent('Keeper', 'version = "2.0.0"\n'));
      const back = await service.rollback('keeper');
      expect(back.version).toMatchObject({ version: 3, restored_from: 1 });
      expect(store.source('keeper')).toBe(tomlAgent('Keeper'));
      expect(await service.source('keeper')).toBe(tomlAgent('Keeper'));
      await service.remove('keeper');
      expect(registry.get('keeper')).toBeUndefined();
      expect((await directory.heads()).map((h) => [h.key, h.deleted, h.node])).toEqual([['keeper', true, 'node-a']]);
      // Its shared history joins the removed agents' ([agents] keep_removed_agents).
      expect((await pool.query(`SELECT key FROM "${schema}".agent_version_removals`)).rows).toEqual([
        { key: 'keeper' },
      ]);
    } finally {
      await service.close();
      db.close();
      await pool.end();
      await proxy.close();
    }
  });

  it('a rollout whose mark PostgreSQL cannot record does not run: 503 naming it, rolled back here, the live version unchanged; once back, it runs and is marked', async () => {
    const schema = newSchema();
    const { proxy, url: proxied } = await startPgProxy();
    // The versions reach PostgreSQL directly; the marks through a link the test cuts.
    const marksPool = new pg.Pool({ connectionString: proxied, max: 1, connectionTimeoutMillis: 1000 });
    marksPool.on('error', () => {});
    const db = openDatabase(makeTempDir('caxton-pgversions-'));
    migrate(db, AGENT_MIGRATIONS);
    const registry = new AgentRegistry();
    const rollouts = new RolloutStore(db);
    const directory = await PgAgentDirectory.open({ pool: pools[0]!, schema, node: 'node-a' });
    const marks = await PgRolloutMarks.open({ pool: marksPool, schema, node: 'node-a' });
    const other = await PgRolloutMarks.open({ pool: pools[1]!, schema, node: 'node-b' });
    const events: string[] = [];
    let cutAtStart = false;
    const service = new AgentService(registry, new AgentStore(db), {
      versions: new AgentVersionStore(db),
      rollouts,
      cluster: {
        versions: await PgAgentVersionStore.open({ pool: pools[0]!, schema, directory }),
        agents: directory,
        rolloutMarks: marks,
      },
      // The link goes down once the rollout's version has committed, before its mark is written.
      onRollout: (type) => {
        events.push(type);
        if (type === 'rollout.started' && cutAtStart) proxy.cut();
      },
    });
    try {
      await service.deploy({ body: tomlAgent('Pilot') }, 'create');
      cutAtStart = true;
      await expect(
        service.deploy({ body: tomlAgent('Pilot', 'version = "2.0.0"\n'), strategy: 'blue-green' }, 'update', 'pilot'),
      ).rejects.toMatchObject({
        code: 'not_ready',
        details: { dependency: 'cluster-postgresql' },
      });
      expect(rollouts.running('pilot')).toBeUndefined();
      expect(events).toEqual(['rollout.started', 'rollout.rolled_back']);
      expect(rollouts.latest('pilot')).toMatchObject({
        state: 'rolled_back',
        reason: expect.stringContaining('could not record which node runs the rollout'),
      });
      expect(registry.get('pilot')?.definition.version).toBe('1.0.0');
      expect(await other.elsewhere('pilot', true)).toBeUndefined();
      cutAtStart = false;
      proxy.restore();
      const started = await service.deploy(
        { body: tomlAgent('Pilot', 'version = "3.0.0"\n'), strategy: 'blue-green' },
        'update',
        'pilot',
      );
      expect(started.rollout).toMatchObject({ state: 'running', candidate_version: 3 });
      expect(await other.elsewhere('pilot', true)).toMatchObject({ node: 'node-a', candidate_version: 3 });
    } finally {
      await service.close();
      db.close();
      await marksPool.end();
      await proxy.close();
    }
  });
});
