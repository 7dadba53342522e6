/**
 * A single node joining a cluster (ADR 0047): `caxton serve` first without
 * `[cluster]`, with conversation pins kept in its SQLite (a rollout's conversations), then
 * restarted on the same data directory with `[cluster]`. At start the node moves those pins to the
 * cluster's PostgreSQL (in the background) and drops them from its SQLite, so their conversations
 * keep their versions on every node. (The move itself, batches and a pin the cluster already
 * holds: pg-pins.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { RolloutStore } from '../../src/agents/index.js';
import { openDatabase } from '../../src/storage/index.js';
import { startTestServer } from '../helpers/server.js';
import { waitUntil } from '../helpers/wait.js';
import { clusterFixture, clusterToml, servers } from './helpers/serve-nodes.js';

const cluster = clusterFixture('pins_carry');
const { run, schema } = cluster;

describe.runIf(run)('a single node joining a cluster', () => {
  const serve = servers();

  it("moves the conversation pins its SQLite kept to the cluster's PostgreSQL at start, and drops them locally", async () => {
    // The node on its own first: its caxton.db, then pins as a rollout on it would have made them.
    const alone = await startTestServer();
    await alone.close();
    const local = openDatabase(alone.dataDir);
    const rollouts = new RolloutStore(local);
    rollouts.pin('conv-a', 'Scribe', 2);
    rollouts.pin('conv-b', 'Scribe', 3);
    rollouts.pin('conv-c', 'Critic', 1);
    expect(rollouts.oldestPins(10)).toHaveLength(3);
    local.close();

    // The same data directory, now a node of a cluster.
    const node = await serve({ dir: alone.dir, toml: clusterToml('node-a', cluster.nats.url, schema) });
    const held = async () =>
      (
        await cluster.pool.query<{ conversation_id: string; key: string; version: number }>(
          `SELECT conversation_id, key, version FROM "${schema}".conversation_pins ORDER BY conversation_id`,
        )
      ).rows;
    await waitUntil(async () => (await held()).length === 3);
    expect(await held()).toEqual([
      { conversation_id: 'conv-a', key: 'scribe', version: 2 },
      { conversation_id: 'conv-b', key: 'scribe', version: 3 },
      { conversation_id: 'conv-c', key: 'critic', version: 1 },
    ]);
    const after = openDatabase(node.dataDir);
    try {
      expect(new RolloutStore(after).oldestPins(10)).toEqual([]);
    } finally {
      after.close();
    }
  });
});
