/**
 * What a cluster node stores for a one-way conversation (ADR 0080), read straight from the
 * machine's PostgreSQL beside a real `nats-server -js`: while its delivery is pending the
 * conversation is kept with its message and has no row; the acknowledgement writes the row once,
 * completed; a second message into it writes the row under the conversation's lock. What readers
 * see of it is the bus contract's (test/messaging/contract/one-way.ts).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../../src/agents/index.js';
import { clusterConfigSchema } from '../../../src/config/index.js';
import { ClusterBus } from '../../../src/messaging/cluster/index.js';
import { PgMessageReads, PgMessageStore } from '../../../src/messaging/postgres/index.js';
import type { InProcessHandler } from '../../../src/messaging/index.js';
import { agentDef, deploy, messagingConfig } from '../helpers.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';
import { removeTempDirs } from '../../helpers/tmp.js';
import { waitUntil } from '../../helpers/wait.js';

const run = hasSystem('nats-server') && hasSystem('postgresql');
let nats: NatsServer;
let cases = 0;

beforeAll(async () => {
  if (run) nats = await startNatsServer();
});
afterAll(async () => {
  await nats?.stop();
  removeTempDirs();
});

/** A node on a schema of its own with `handlers`; `rows` reads the schema's tables directly. */
async function node(handlers: Record<string, InProcessHandler>) {
  const schema = `caxton_oneway_${process.pid}_${++cases}`;
  const pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 4 });
  pool.on('error', () => {});
  const nc: NatsConnection = await connect({ servers: nats.url });
  const store = await PgMessageStore.open({ pool, schema });
  const registry = new AgentRegistry();
  for (const name of Object.keys(handlers)) deploy(registry, agentDef(name, ['notes']));
  const config = messagingConfig();
  const bus = new ClusterBus({
    store,
    reads: new PgMessageReads({ store }),
    nc,
    registry,
    config,
    cluster: clusterConfigSchema.parse({
      node: 'n1',
      delivery: { stream: `S${schema}`, consumer: `c${schema}`, subject: `d${schema}` },
    }),
    sweepMs: 200,
  });
  for (const [agent, h] of Object.entries(handlers)) bus.registerHandler(agent, h);
  await bus.start();
  return {
    bus,
    /** `[messaging] retention` (ms) from now on. */
    setRetention: (ms: number) => void (config.retention = ms),
    /** The conversation rows of `id`: [state, turns]. */
    rows: async (id: string) =>
      (
        await pool.query<{ state: string; turns: number }>(
          `SELECT state, turns FROM "${schema}".conversations WHERE id = $1`,
          [id],
        )
      ).rows.map((r) => [r.state, r.turns]),
    /** Pending deliveries marking their conversation kept (what the gauge and the deadline sweep count). */
    marking: async () =>
      Number(
        (
          await pool.query<{ n: string }>(
            `SELECT count(*) AS n FROM "${schema}".deliveries WHERE state = 'pending' AND kept_until IS NOT NULL`,
          )
        ).rows[0]!.n,
      ),
    /** Deliveries in `state` that still carry a publish mark (what the republish sweep's index holds). */
    publishMarked: async (state: string) =>
      Number(
        (
          await pool.query<{ n: string }>(
            `SELECT count(*) AS n FROM "${schema}".deliveries WHERE state = $1 AND unpublished_since IS NOT NULL`,
            [state],
          )
        ).rows[0]!.n,
      ),
    /** Whether the message keeps its conversation. */
    keeps: async (messageId: string) =>
      (await pool.query(`SELECT 1 FROM "${schema}".messages WHERE id = $1 AND conversation IS NOT NULL`, [messageId]))
        .rowCount === 1,
    async close() {
      await bus.close();
      await nc.close();
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    },
  };
}

describe.runIf(run)('one-way conversations in PostgreSQL', () => {
  it('no row while the delivery is pending, nor once it is done: the reads derive it, completed, from its delivery', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let entered = false;
    const n = await node({
      sink: async () => {
        entered = true;
        await held;
        return undefined;
      },
    });
    try {
      const r = await n.bus.submit({ performative: 'inform', sender: 'client', receiver: 'sink', content: 'x' });
      await waitUntil(() => entered, { what: 'the delivery in the handler' });
      expect(await n.rows(r.conversation_id)).toEqual([]);
      expect(await n.keeps(r.id)).toBe(true);
      expect(await n.marking()).toBe(1);
      expect((await n.bus.reads.getConversation(r.conversation_id)).conversation.state).toBe('initiated');
      release();
      const opened = (await n.bus.reads.getConversation(r.conversation_id)).conversation;
      await waitUntil(
        async () => (await n.bus.reads.getConversation(r.conversation_id)).conversation.state === 'completed',
        { what: 'the conversation completed' },
      );
      expect(await n.rows(r.conversation_id)).toEqual([]);
      const done = (await n.bus.reads.getConversation(r.conversation_id)).conversation;
      const delivery = (await n.bus.reads.getMessage(r.id))!.deliveries[0]!;
      expect(done).toEqual({
        ...opened,
        state: 'completed',
        reason: 'delivered',
        expires_at: null,
        updated_at: delivery.updated_at,
      });
      expect((await n.bus.reads.listConversations({})).total).toBe(1);
      expect((await n.bus.reads.listConversations({ state: 'completed' })).items).toEqual([done]);
      expect((await n.bus.reads.listConversations({ state: 'initiated' })).total).toBe(0);
      expect(await n.marking()).toBe(0);
      // Ended, the conversation takes no more messages, as when it had its row.
      await expect(
        n.bus.submit({
          performative: 'inform',
          sender: 'client',
          receiver: 'sink',
          content: 'late',
          conversation_id: r.conversation_id,
        }),
      ).rejects.toThrow(/completed/);
      // Retention takes it with its message and delivery like any finished conversation.
      expect(await n.bus.applyRetention()).toMatchObject({ conversations: 0 });
      n.setRetention(0);
      expect(await n.bus.applyRetention()).toMatchObject({ conversations: 1 });
      expect(await n.bus.reads.getMessage(r.id)).toBeUndefined();
      expect((await n.bus.reads.listConversations({})).total).toBe(0);
      // Finished, the delivery is never published again: its publish mark went with the done-marking.
      expect(await n.publishMarked('done')).toBe(0);
    } finally {
      release();
      await n.close();
    }
  });

  it('a request, or a one-way act with a protocol, writes its row when accepted, as before', async () => {
    const n = await node({ sink: () => ({ content: 'ok' }) });
    try {
      const r = await n.bus.submit({ performative: 'request', sender: 'client', receiver: 'sink', content: 'x' });
      expect((await n.rows(r.conversation_id)).length).toBe(1);
      expect(await n.keeps(r.id)).toBe(false);
    } finally {
      await n.close();
    }
  });

  it('a second message into the conversation while the first is pending writes the row with both turns', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let entered = false;
    const n = await node({
      sink: async () => {
        entered = true;
        await held;
        return undefined;
      },
      other: () => undefined,
    });
    try {
      const r = await n.bus.submit({ performative: 'inform', sender: 'client', receiver: 'sink', content: 'one' });
      await waitUntil(() => entered, { what: 'the delivery in the handler' });
      const r2 = await n.bus.submit({
        performative: 'inform',
        sender: 'client',
        receiver: 'other',
        conversation_id: r.conversation_id,
        content: 'two',
      });
      expect(await n.keeps(r2.id)).toBe(false);
      await waitUntil(async () => (await n.rows(r.conversation_id))[0]?.[0] === 'in_progress', {
        what: 'the row in progress',
      });
      expect(await n.rows(r.conversation_id)).toEqual([['in_progress', 2]]);
      // The row written, the first message's pending delivery no longer marks the conversation kept.
      expect(await n.marking()).toBe(0);
      release();
      await waitUntil(async () => (await n.rows(r.conversation_id))[0]?.[0] === 'completed', {
        what: 'the row completed',
      });
      expect(await n.rows(r.conversation_id)).toEqual([['completed', 2]]);
      expect((await n.bus.reads.listConversations({})).total).toBe(1);
    } finally {
      release();
      await n.close();
    }
  });
});
