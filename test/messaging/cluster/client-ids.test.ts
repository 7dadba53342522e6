/**
 * A client-chosen message id on a cluster node, with the machine's PostgreSQL and a real
 * `nats-server -js`: its first send reads no id before its step (the messages INSERT's key finds a
 * repeat), and a repeat is answered as a duplicate, also once its conversation has ended or
 * reached its turn limit (the step that would refuse it reads the id then). Statements are
 * counted on the pool's connections.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InProcessHandler } from '../../../src/messaging/index.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { hasSystem } from '../../helpers/system.js';
import { removeTempDirs } from '../../helpers/tmp.js';
import { waitUntil } from '../../helpers/wait.js';
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

/** A read of a message by its id (the engine's duplicate check, or the step's). */
const READS_ID = /\.messages WHERE id = /;

/** A node on a schema of its own serving `sink` (`extra`: more of its definition). */
const node = (sink: InProcessHandler, extra = '') =>
  countingNode(nats.url, `caxton_clientids_${process.pid}_${++cases}`, sink, extra);

/** The statements that name the message or its conversation (its accept's locks, reads and writes, and any read of its id). */
const naming = (statements: string[], ...ids: string[]) =>
  statements.filter((s) => ids.some((id) => s.includes(`'${id}'`) || s.includes(id)));

describe.runIf(run)('client-chosen message ids on a cluster', () => {
  it('the first send reads no id; a repeat is a duplicate, after its one-way conversation completed too', async () => {
    let delivered = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // The second message's delivery waits until its send was counted: no step of it in the count.
    const n = await node((m) => (m.content === 'made' ? gate.then(() => void delivered++) : void delivered++));
    try {
      const body = {
        id: 'client-id-1',
        conversation_id: 'client-conv-1',
        performative: 'inform',
        sender: 'client',
        receiver: 'sink',
        content: 'once',
      };
      const first = await n.counted(() => n.bus.submit(body));
      expect(first.out).toMatchObject({ id: 'client-id-1', duplicate: false, routed_to: ['sink'] });
      expect(first.statements.filter((s) => READS_ID.test(s))).toEqual([]);
      await waitUntil(() => delivered === 1, { what: 'the delivery' });
      // The same accept as a send whose id the server made: not one statement more.
      const made = await n.counted(() =>
        n.bus.submit({ ...body, id: undefined, conversation_id: 'client-conv-2', content: 'made' }),
      );
      expect(made.out.duplicate).toBe(false);
      const mine = naming(first.statements, 'client-id-1', 'client-conv-1');
      expect(mine.some((s) => /^INSERT INTO \S+\.messages /.test(s))).toBe(true);
      expect(mine.length).toBe(naming(made.statements, made.out.id, 'client-conv-2').length);
      release();
      await waitUntil(() => delivered === 2, { what: 'the second delivery' });
      const { value: ended } = await waitUntil(async () => {
        const c = (await n.bus.reads.getConversation('client-conv-1')).conversation;
        return c.state === 'completed' ? c : undefined;
      });
      // Its conversation is completed: the repeat is still a duplicate, not a refusal.
      const again = await n.counted(() => n.bus.submit(body));
      expect(again.out).toMatchObject({ id: 'client-id-1', duplicate: true, conversation_id: 'client-conv-1' });
      expect(again.statements.filter((s) => READS_ID.test(s)).length).toBeGreaterThan(0);
      // Sent into another conversation, new to the store: the INSERT's key finds it.
      const elsewhere = await n.bus.submit({ ...body, conversation_id: undefined });
      expect(elsewhere).toMatchObject({ id: 'client-id-1', duplicate: true, conversation_id: 'client-conv-1' });
      // A new id into the ended conversation is refused as before.
      await expect(n.bus.submit({ ...body, id: 'client-id-2' })).rejects.toMatchObject({ code: 'conversation_closed' });
      expect((await n.bus.reads.getConversation('client-conv-1')).conversation).toEqual(ended);
      expect(delivered).toBe(2);
      expect((await n.bus.reads.getMessage('client-id-1'))?.deliveries).toHaveLength(1);
    } finally {
      release();
      await n.close();
    }
  });

  it('a repeat into a conversation at its turn limit is a duplicate and leaves the conversation as it was', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const n = await node(() => held.then(() => undefined), '[conversation]\nmax_turns = 2\n');
    try {
      const base = { conversation_id: 'turns-conv', performative: 'inform', sender: 'client', receiver: 'sink' };
      expect((await n.bus.submit({ ...base, id: 'turn-1', content: 'one' })).duplicate).toBe(false);
      expect((await n.bus.submit({ ...base, id: 'turn-2', content: 'two' })).duplicate).toBe(false);
      const before = (await n.bus.reads.getConversation('turns-conv')).conversation;
      expect(before).toMatchObject({ turns: 2, max_turns: 2 });
      expect(before.state).not.toBe('failed');
      const again = await n.bus.submit({ ...base, id: 'turn-2', content: 'two' });
      expect(again).toMatchObject({ id: 'turn-2', duplicate: true, conversation_id: 'turns-conv' });
      expect((await n.bus.reads.getConversation('turns-conv')).conversation).toEqual(before);
      // A new message past the limit ends the conversation, as before.
      await expect(n.bus.submit({ ...base, id: 'turn-3', content: 'three' })).rejects.toMatchObject({
        code: 'conversation_closed',
      });
      expect((await n.bus.reads.getConversation('turns-conv')).conversation.state).toBe('failed');
      expect((await n.bus.submit({ ...base, id: 'turn-2', content: 'two' })).duplicate).toBe(true);
    } finally {
      release();
      await n.close();
    }
  });

  it('a repeated id among a group of new ones fails alone: the others commit as a group again, not each alone', async () => {
    let delivered = 0;
    const n = await node(() => void delivered++);
    try {
      const body = (i: number) => ({
        id: `batch-${i}`,
        performative: 'inform',
        sender: 'client',
        receiver: 'sink',
        content: `m${i}`,
      });
      expect((await n.bus.submit(body(7))).duplicate).toBe(false);
      await waitUntil(() => delivered === 1, { what: 'the first delivery' });
      const before = n.store.groupStats;
      // Submitted in one turn: their accept steps start as one group (step-groups.ts).
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => n.bus.submit(body(i))));
      expect(answers.filter((a) => a.duplicate).map((a) => a.id)).toEqual(['batch-7']);
      const after = n.store.groupStats;
      expect(after.voided - before.voided).toBeGreaterThanOrEqual(1);
      // The failed group, then its 19 new messages together (each alone would be 20 more).
      expect(after.transactions - before.transactions).toBeLessThan(10);
      await waitUntil(() => delivered === 20, { what: 'every new message delivered' });
      for (const a of answers) expect((await n.bus.reads.getMessage(a.id))?.deliveries).toHaveLength(1);
    } finally {
      await n.close();
    }
  });
});
