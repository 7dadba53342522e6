/**
 * Taking a one-way message's delivery without reading its row, on a cluster node with the
 * machine's PostgreSQL and a real `nats-server -js`: the first hand-out of a delivery that marks
 * its conversation kept carries what the take would read (the row's updated_at as inserted and the
 * conversation's JSON), so the node that takes it at JetStream's delivery count 1 reads nothing
 * and acknowledges it in one round trip; a delivery handed out again (a retry, a copy) reads its
 * row. Statements are counted on the pool's connections.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { hasSystem } from '../../helpers/system.js';
import { removeTempDirs } from '../../helpers/tmp.js';
import { waitUntil } from '../../helpers/wait.js';
import type { InProcessHandler } from '../../../src/messaging/index.js';
import { countingNode } from './message-stores.js';

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

const node = (sink: InProcessHandler) => countingNode(nats.url, `caxton_keptakes_${process.pid}_${++cases}`, sink);

/** The take's read of fetched deliveries' rows (PgMessageRows.deliveriesToTake). */
const TAKE_READ = /^SELECT id, message_id, receiver, state, attempts, next_at, updated_at, kept_until/;
/** A step's BEGIN reading a delivery row under its lock (a step that read before it ran). */
const LOCKED_READ = /FROM \S+\.deliveries d WHERE d\.id = ANY[\s\S]*FOR UPDATE/;

describe.runIf(run)('taking a one-way delivery from its first hand-out', () => {
  it('an inform is delivered and acknowledged with no read of its row: the accept, then one round trip that marks it done', async () => {
    const got: string[] = [];
    const n = await node((m) => void got.push(String(m.content)));
    try {
      const stats = n.store.groupStats;
      const { out, statements } = await n.counted(async () => {
        const r = await n.bus.submit({ performative: 'inform', sender: 'client', receiver: 'sink', content: 'one' });
        await waitUntil(
          async () => (await n.bus.reads.getMessage(r.id))?.deliveries.every((d) => d.state === 'done') === true,
          { what: 'the delivery done' },
        );
        return r;
      });
      expect(got).toEqual(['one']);
      expect(statements.filter((s) => TAKE_READ.test(s))).toEqual([]);
      expect(statements.filter((s) => LOCKED_READ.test(s))).toEqual([]);
      // The acknowledgement ran on what the hand-out carried (caxton_cluster_acks_unread_total).
      expect(n.store.groupStats).toMatchObject({ unread: stats.unread + 1, reread: stats.reread });
      const c = (await n.bus.reads.getConversation(out.conversation_id)).conversation;
      expect(c).toMatchObject({ state: 'completed', reason: 'delivered', turns: 1, participants: ['client', 'sink'] });
    } finally {
      await n.close();
    }
  });

  it('a delivery handed out again after a failed attempt reads its row, and is finished once', async () => {
    let calls = 0;
    const n = await node(() => {
      calls++;
      if (calls === 1) throw new Error('busy, try again');
      return undefined;
    });
    try {
      const { out, statements } = await n.counted(async () => {
        const r = await n.bus.submit({ performative: 'inform', sender: 'client', receiver: 'sink', content: 'twice' });
        await waitUntil(
          async () => (await n.bus.reads.getMessage(r.id))?.deliveries.every((d) => d.state === 'done') === true,
          { what: 'the retried delivery done', timeoutMs: 30_000 },
        );
        return r;
      });
      expect(calls).toBe(2);
      // The retry came back from JetStream at delivery count 2: its row was read before it ran.
      expect(statements.filter((s) => TAKE_READ.test(s))).toHaveLength(1);
      const [d] = (await n.bus.reads.getMessage(out.id))!.deliveries;
      expect(d).toMatchObject({ state: 'done', attempts: 2 });
    } finally {
      await n.close();
    }
  });

  it('many informs at once: each delivered once, none read at its take', async () => {
    const got = new Map<string, number>();
    const n = await node((m) => void got.set(String(m.content), (got.get(String(m.content)) ?? 0) + 1));
    try {
      const { statements } = await n.counted(async () => {
        const ids = await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            n.bus.submit({ performative: 'inform', sender: 'client', receiver: 'sink', content: `m${i}` }),
          ),
        );
        await waitUntil(
          async () => {
            for (const r of ids)
              if ((await n.bus.reads.getMessage(r.id))?.deliveries.every((d) => d.state === 'done') !== true)
                return false;
            return true;
          },
          { what: 'every delivery done' },
        );
      });
      expect([...got.values()]).toEqual(Array.from({ length: 40 }, () => 1));
      expect(statements.filter((s) => TAKE_READ.test(s))).toEqual([]);
    } finally {
      await n.close();
    }
  });
});
