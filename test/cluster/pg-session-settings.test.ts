/**
 * A cluster node's PostgreSQL sessions run without JIT: its statements are short and planned each
 * time, and JIT compiled them whenever stale statistics inflated their estimated cost (ADR 0075).
 * Real PostgreSQL, the node's own pool as `openClusterState` opens it.
 */
import pg from 'pg';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { clusterConfigSchema } from '../../src/cluster/index.js';
import { openClusterState } from '../../src/server/components/cluster-component.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';

const run = hasSystem('postgresql');
const schema = `caxton_jit_${process.pid}_${Date.now()}`;

describe.skipIf(!run)('cluster state sessions', () => {
  afterAll(async () => {
    const c = new pg.Client({ connectionString: TEST_PG_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  });

  it('every connection of the node pool has jit off', async () => {
    const cluster = clusterConfigSchema.parse({
      node: 'node-a',
      nats: { urls: ['nats://127.0.0.1:4222'] },
      state: { url: TEST_PG_URL, schema, pool_size: 3 },
    });
    const state = await openClusterState({ cluster, logger: pino({ level: 'silent' }) });
    try {
      // Three connections held at once: each one the pool opened, not only the first.
      const held = await Promise.all([0, 1, 2].map(() => state.pool.connect()));
      try {
        const settings = await Promise.all(held.map((c) => c.query<{ jit: string }>('SHOW jit')));
        expect(settings.map((r) => r.rows[0]!.jit)).toEqual(['off', 'off', 'off']);
      } finally {
        for (const c of held) c.release();
      }
    } finally {
      await state.close?.();
    }
  });
});
