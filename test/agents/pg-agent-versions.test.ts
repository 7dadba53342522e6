/**
 * The cluster's agent version store (src/agents/versions/pg-versions.ts) on the machine's
 * PostgreSQL: the port's shared suite (test/agents/version-store-suite.ts, also run on SQLite),
 * each test on a schema of its own, dropped afterwards; then what only this store promises: one
 * numbering per agent for two pools (two nodes) appending at once, and each reading the other's;
 * and PostgreSQL out of reach: a deploy, rollback, removal or read of the deployed text through the
 * service answers 503 naming it and changes nothing on the node (nor in the cluster's agents);
 * rollouts as the cluster's rows (src/agents/rollouts/pg-rollout-state.ts): two services on one schema start,
 * see, refuse and promote the same rollout, and a start that PostgreSQL does not take records
 * neither the rollout nor its version.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  AGENT_MIGRATIONS,
  AgentRegistry,
  AgentService,
  AgentStore,
  AgentVersionStore,
  PgAgentDirectory,
  PgAgentVersionStore,
  PgRolloutState,
  RolloutStore,
} from '../../src/agents/index.js';
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

  it('rollouts are the cluster’s rows: started through one node, seen, promoted and refused through another, one end recorded', async () => {
    const schema = newSchema();
    const node = async (pool: pg.Pool, name: string) => {
      const db = openDatabase(makeTempDir('caxton-pgrollouts-'));
      migrate(db, AGENT_MIGRATIONS);
      const registry = new AgentRegistry();
      const directory = await PgAgentDirectory.open({ pool, schema, node: name });
      const state = await PgRolloutState.open({ pool, schema });
      const events: string[] = [];
      const service = new AgentService(registry, new AgentStore(db), {
        versions: new AgentVersionStore(db),
        rollouts: new RolloutStore(db),
        cluster: {
          versions: await PgAgentVersionStore.open({ pool, schema, directory }),
          agents: directory,
          rollouts: state,
        },
        onRollout: (type) => events.push(type),
      });
      return { db, registry, state, service, events };
    };
    const a = await node(pools[0]!, 'node-a');
    const b = await node(pools[1]!, 'node-b');
    try {
      await a.service.deploy({ body: tomlAgent('Pilot') }, 'create');
      // Node B has the agent as the directory brings it.
      b.registry.upsert(a.registry.get('pilot')!);
      const started = await a.service.deploy(
        { body: tomlAgent('Pilot', 'version = "2.0.0"\n'), strategy: 'blue-green' },
        'update',
        'pilot',
      );
      expect(started.rollout).toMatchObject({ state: 'running', stable_version: 1, candidate_version: 2 });
      // Node B reads the same row: its status shows it, and a second rollout through B is refused.
      expect(await b.service.rollout.rolloutStatus('pilot')).toMatchObject({
        running: true,
        rollout: { id: started.rollout!.id, candidate_version: 2 },
      });
      await expect(
        b.service.deploy({ body: tomlAgent('Pilot', 'version = "3.0.0"\n'), strategy: 'canary' }, 'update', 'pilot'),
      ).rejects.toMatchObject({ code: 'rollout_in_progress' });
      // Promoted through B (no forwarding); A's promotion of the same rollout finds it ended.
      const promoted = await b.service.promote('pilot', 'bob');
      expect(promoted.rollout).toMatchObject({ state: 'promoted', ended_by: 'bob' });
      await expect(a.service.promote('pilot', 'alice')).rejects.toMatchObject({ code: 'no_rollout' });
      expect(await a.service.rollout.rolloutStatus('pilot')).toMatchObject({
        running: false,
        rollout: { state: 'promoted', ended_by: 'bob' },
      });
      const rows = await pools[0]!.query(`SELECT state FROM "${schema}".rollouts`);
      expect(rows.rows).toEqual([{ state: 'promoted' }]);
      expect(b.events).toEqual(['rollout.promoted']);
      expect(a.events).toEqual(['rollout.started']);
    } finally {
      for (const x of [a, b]) {
        await x.service.close();
        x.db.close();
      }
    }
  });

  it('a read of the shared rollouts made while this node’s start or end is uncommitted does not undo it', async () => {
    const schema = newSchema();
    const pool = pools[0]!;
    const state = await PgRolloutState.open({ pool, schema });
    const inTx = async <T>(write: (c: pg.PoolClient) => Promise<T>): Promise<T> => {
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        const out = await write(c);
        // The every-second read lands between the write and its COMMIT: it cannot see the write yet.
        await state.refresh();
        await state.reload('pilot');
        await c.query('COMMIT');
        return out;
      } finally {
        c.release();
      }
    };
    try {
      const started = await inTx((c) => state.start({ name: 'pilot', strategy: 'canary', stable: 1, candidate: 2 }, c));
      expect(state.running('pilot')?.id).toBe(started.id);
      await state.refresh();
      expect(state.running('pilot')?.id).toBe(started.id);
      await inTx((c) => state.end(started, 'rolled_back', 'bob', null, c));
      expect(state.running('pilot')).toBeUndefined();
      await state.refresh();
      expect(state.running('pilot')).toBeUndefined();
      // A read made with nothing of this node's pending is kept: another node's start shows.
      const other = await PgRolloutState.open({ pool: pools[1]!, schema });
      const elsewhere = await other.start({ name: 'pilot', strategy: 'canary', stable: 2, candidate: 3 });
      await other.close();
      await state.refresh();
      expect(state.running('pilot')?.id).toBe(elsewhere.id);
    } finally {
      await state.close();
    }
  });

  it('a write in a transaction whose client never comes back to this pool holds its reads a minute at most', async () => {
    const schema = newSchema();
    const state = await PgRolloutState.open({ pool: pools[0]!, schema });
    try {
      // A client of the other pool: its release is never seen here.
      const c = await pools[1]!.connect();
      const started = await state.start({ name: 'pilot', strategy: 'canary', stable: 1, candidate: 2 }, c);
      c.release();
      await pools[0]!.query(`UPDATE "${schema}".rollouts SET state = 'rolled_back' WHERE id = $1`, [started.id]);
      await state.refresh();
      expect(state.running('pilot')?.id).toBe(started.id);
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 61_000 });
      await state.refresh();
      expect(state.running('pilot')).toBeUndefined();
    } finally {
      vi.useRealTimers();
      await state.close();
    }
  });

  it('a rollout is written in its version’s transaction: PostgreSQL lost answers 503 and records neither', async () => {
    const schema = newSchema();
    const { proxy, url: proxied } = await startPgProxy();
    const pool = new pg.Pool({ connectionString: proxied, max: 2, connectionTimeoutMillis: 1000 });
    pool.on('error', () => {});
    const db = openDatabase(makeTempDir('caxton-pgrollouts-'));
    migrate(db, AGENT_MIGRATIONS);
    const directory = await PgAgentDirectory.open({ pool, schema, node: 'node-a' });
    const service = new AgentService(new AgentRegistry(), new AgentStore(db), {
      versions: new AgentVersionStore(db),
      rollouts: new RolloutStore(db),
      cluster: {
        versions: await PgAgentVersionStore.open({ pool, schema, directory }),
        agents: directory,
        rollouts: await PgRolloutState.open({ pool, schema }),
      },
    });
    try {
      await service.deploy({ body: tomlAgent('Pilot') }, 'create');
      proxy.cut();
      await expect(
        service.deploy({ body: tomlAgent('Pilot', 'version = "2.0.0"\n'), strategy: 'blue-green' }, 'update', 'pilot'),
      ).rejects.toMatchObject({ code: 'not_ready', details: { dependency: 'cluster-postgresql' } });
      proxy.restore();
      expect((await pools[0]!.query(`SELECT count(*)::int AS n FROM "${schema}".rollouts`)).rows[0]).toEqual({ n: 0 });
      expect((await pools[0]!.query(`SELECT max(version) AS v FROM "${schema}".agent_versions`)).rows[0]).toEqual({
        v: 1,
      });
      expect(service.rollouts?.running('pilot')).toBeUndefined();
    } finally {
      await service.close();
      db.close();
      await pool.end();
      await proxy.close();
    }
  });
});
