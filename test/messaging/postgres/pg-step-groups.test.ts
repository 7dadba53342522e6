/**
 * Group commit of conversation steps (src/messaging/postgres/pg-message-store.ts with step-groups.ts; ADR
 * 0046) on the machine's PostgreSQL: steps of many conversations waiting at once share one
 * transaction, and a group behaves as its steps run one by one. A step refused by the protocol
 * fails alone; a statement that fails, or a step failing after its writes were sent, voids the
 * group and every step runs again alone; two nodes' overlapping groups never deadlock and lose no
 * update.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { ConversationStep } from '../../../src/messaging/postgres/index.js';
import { inTransaction, RolledBack } from '../../../src/storage/pg/index.js';
import type { AclMessage, ConversationId, MessageId } from '../../../src/messaging/index.js';
import { aclMessage } from '../helpers.js';
import { hasSystem } from '../../helpers/system.js';
import { freshConversation, twoStores } from '../cluster/message-stores.js';

const run = hasSystem('postgresql');
/** Transactions begun per node (a group's BEGIN is one). */
const begun = [0, 0];
// One group at a time per node: every step that arrives while one runs waits for the next group.
const { schema, pools, stores } = twoStores(run, 'caxton_pgsg', {
  max: 4,
  onQuery: (i, q) => {
    if (typeof q === 'string' && q.startsWith('BEGIN')) begun[i]!++;
  },
  groups: [{ concurrent: 1 }, { concurrent: 1, maxSteps: 16 }],
});

let n = 0;
const now = () => new Date().toISOString();
function message(conversation: string, id = `m-${process.pid}-${++n}`): AclMessage {
  return {
    ...aclMessage({ sender: 'caller', receivers: ['worker'], timestamp: now() }),
    id: id as MessageId,
    conversation_id: conversation as ConversationId,
  };
}
/** One turn of `conv`: a message, its delivery, the conversation's turn count up by one. */
async function turn(s: ConversationStep, conv: string, id?: string): Promise<number> {
  const c = s.conversation ?? freshConversation(conv, 1000);
  const m = message(conv, id);
  await s.insertMessage(m, ['worker']);
  const d = await s.insertDelivery(m.id, 'worker', now());
  await s.saveConversation({ ...c, turns: c.turns + 1, updated_at: now() });
  return d;
}

const q = async <T extends pg.QueryResultRow>(sql: string, values: unknown[] = []) =>
  (await pools[0]!.query<T>(sql, values)).rows;
const messagesOf = async (conv: string) =>
  (await q<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".messages WHERE conversation_id = $1`, [conv]))[0]!
    .n;
const turnsOf = async (conv: string) =>
  (await q<{ turns: number }>(`SELECT turns FROM "${schema}".conversations WHERE id = $1`, [conv]))[0]?.turns;

describe.runIf(run)('conversation steps in groups', () => {
  it('60 steps of 60 conversations arriving at once commit in a few transactions, each as if alone', async () => {
    await stores[0]!.inConversation('g-warm', (s) => turn(s, 'g-warm'));
    const before = begun[0]!;
    const ids = await Promise.all(
      Array.from({ length: 60 }, (_, i) => stores[0]!.inConversation(`g-many-${i}`, (s) => turn(s, `g-many-${i}`))),
    );
    const transactions = begun[0]! - before;
    expect(new Set(ids).size).toBe(60);
    // The first alone (the queue was idle), the other 59 in the next group (at most 64 a group).
    expect(transactions).toBeLessThanOrEqual(3);
    for (let i = 0; i < 60; i += 7) {
      expect(await turnsOf(`g-many-${i}`)).toBe(1);
      expect(await messagesOf(`g-many-${i}`)).toBe(1);
    }
  });

  it('a step its protocol refuses fails alone: its writes are dropped, the group around it commits', async () => {
    const convs = Array.from({ length: 10 }, (_, i) => `g-refuse-${i}`);
    const runs = new Map<string, number>();
    const out = await Promise.allSettled(
      convs.map((c, i) =>
        stores[0]!.inConversation(c, async (s) => {
          runs.set(c, (runs.get(c) ?? 0) + 1);
          await turn(s, c);
          if (i === 4) throw new Error('the protocol refused it');
        }),
      ),
    );
    expect(out.map((r) => r.status)).toEqual(convs.map((_, i) => (i === 4 ? 'rejected' : 'fulfilled')));
    expect((out[4] as PromiseRejectedResult).reason).toMatchObject({ message: 'the protocol refused it' });
    expect(await messagesOf('g-refuse-4')).toBe(0);
    expect(await turnsOf('g-refuse-4')).toBeUndefined();
    for (const c of convs.filter((_, i) => i !== 4)) expect(await turnsOf(c)).toBe(1);
    // Nothing ran twice: the group was not voided.
    expect([...runs.values()].every((r) => r === 1)).toBe(true);
  });

  it('a message id stored before voids the group: its step fails, every other step commits once, run again as one group', async () => {
    const taken = `m-taken-${process.pid}`;
    await stores[0]!.inConversation('g-first', (s) => turn(s, 'g-first', taken));
    // Occupy the one slot so that the next steps form one group.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held = stores[0]!.inConversation('g-gate', async () => gate);
    const convs = Array.from({ length: 8 }, (_, i) => `g-dup-${i}`);
    const runs = new Map<string, number>();
    const pending = convs.map((c, i) =>
      stores[0]!.inConversation(c, async (s) => {
        runs.set(c, (runs.get(c) ?? 0) + 1);
        return turn(s, c, i === 3 ? taken : undefined);
      }),
    );
    // Settled as they come: the gate's step may share the group (when it found the one slot not yet
    // free) and, run alone again after the group failed, commit after the failing step was rejected.
    const settling = Promise.allSettled(pending);
    const voided = stores[0]!.groupStats.voided;
    release();
    await held;
    const out = await settling;
    expect(stores[0]!.groupStats.voided).toBe(voided + 1);
    expect(out.map((r) => r.status)).toEqual(convs.map((_, i) => (i === 3 ? 'rejected' : 'fulfilled')));
    expect((out[3] as PromiseRejectedResult).reason).toMatchObject({ code: '23505' });
    for (const [i, c] of convs.entries()) {
      expect(await messagesOf(c)).toBe(i === 3 ? 0 : 1);
      expect(await turnsOf(c)).toBe(i === 3 ? undefined : 1);
      // Once in the group that failed and, but for the step of the stored id, once in the group run again.
      expect(runs.get(c)).toBe(i === 3 ? 1 : 2);
    }
    // The delivery ids the committed runs returned are the rows stored.
    const stored = (
      await q<{ id: string }>(
        `SELECT id FROM "${schema}".deliveries WHERE message_id IN (SELECT id FROM "${schema}".messages WHERE conversation_id LIKE 'g-dup-%')`,
      )
    ).map((r) => Number(r.id));
    expect(stored.sort()).toEqual(out.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])).sort());
  });

  it("one step's conversation id PostgreSQL cannot store (a NUL) fails that step alone with a clear error; the group's others commit", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held = stores[0]!.inConversation('g-gate-nul', async () => gate);
    const convs = ['g-nul-0', 'g-nul-\u0000-1', 'g-nul-2'];
    const settling = Promise.allSettled(convs.map((c) => stores[0]!.inConversation(c, (s) => turn(s, c))));
    release();
    await held;
    const out = await settling;
    expect(out.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((out[1] as PromiseRejectedResult).reason).toMatchObject({
      code: 'invalid_request',
      message: expect.stringContaining('NUL'),
    });
    expect([await turnsOf('g-nul-0'), await turnsOf('g-nul-2')]).toEqual([1, 1]);
  });

  it('a step failing after it read (its writes went with the read) voids the group too, and nothing of it is stored', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held = stores[0]!.inConversation('g-gate-2', async () => gate);
    const convs = Array.from({ length: 6 }, (_, i) => `g-late-${i}`);
    const pending = convs.map((c, i) =>
      stores[0]!.inConversation(c, async (s) => {
        await turn(s, c);
        // messages() is read now, after the step's writes: they are in the transaction.
        const seen = await s.messages();
        if (i === 2) throw new Error(`refused after reading ${seen.length}`);
        return seen.length;
      }),
    );
    const settling = Promise.allSettled(pending);
    release();
    await held;
    const out = await settling;
    expect(out.map((r) => (r.status === 'fulfilled' ? r.value : 'refused'))).toEqual([1, 1, 'refused', 1, 1, 1]);
    expect(await messagesOf('g-late-2')).toBe(0);
    for (const c of convs.filter((_, i) => i !== 2)) expect(await messagesOf(c)).toBe(1);
  });

  it("two nodes' groups over the same 12 conversations in opposite orders: no deadlock, no lost turn", async () => {
    const convs = Array.from({ length: 12 }, (_, i) => `g-both-${i}`);
    const steps: Promise<number>[] = [];
    let runs = 0;
    const voidedBefore = stores.map((x) => x.groupStats.voided);
    const step = (s: ConversationStep, c: string) => {
      runs++;
      return turn(s, c);
    };
    for (let r = 0; r < 25; r++) {
      for (const c of convs) steps.push(stores[0]!.inConversation(c, (s) => step(s, c)));
      for (const c of [...convs].reverse()) steps.push(stores[1]!.inConversation(c, (s) => step(s, c)));
    }
    await Promise.all(steps);
    // A deadlock would have voided a group (PostgreSQL aborts one side) and run its steps again.
    expect(runs).toBe(600);
    expect(stores.map((x) => x.groupStats.voided - voidedBefore[stores.indexOf(x)]!)).toEqual([0, 0]);
    for (const c of convs) {
      expect(await turnsOf(c)).toBe(50);
      expect(await messagesOf(c)).toBe(50);
    }
  });

  it('a transaction whose failed statement was caught is never reported committed: PostgreSQL answers its COMMIT with ROLLBACK, which is an error', async () => {
    const out = await inTransaction(pools[0]!, 'BEGIN', async (_c, _started, batch) => {
      batch.later(
        `INSERT INTO "${schema}".subscriptions (id, conversation_id, subscriber, content, created_at) VALUES ($1, 'g-rb', 'x', '', $2)`,
        ['sub-rolled-back', now()],
      );
      await batch.now('SELECT 1 / 0', []).catch(() => undefined);
      return 'committed?';
    }).catch((e: unknown) => e);
    expect(out).toBeInstanceOf(RolledBack);
    expect(await q(`SELECT id FROM "${schema}".subscriptions WHERE id = 'sub-rolled-back'`)).toEqual([]);
  });

  it('delivery steps in one group see their own locked row and their own conversation’s pending count', async () => {
    const convs = Array.from({ length: 8 }, (_, i) => `g-ack-${i}`);
    // Conversation i has i + 1 pending deliveries.
    const ids = await Promise.all(
      convs.map((c, i) =>
        stores[1]!.inConversation(c, async (s) => Promise.all(Array.from({ length: i + 1 }, () => turn(s, c)))),
      ),
    );
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held = stores[1]!.inConversation('g-gate-3', async () => gate);
    const seen = convs.map((c, i) =>
      stores[1]!.inConversation(
        c,
        async (s) => {
          const d = ids[i]![0]!;
          const row = await s.delivery(d);
          await s.setDelivery(d, { state: 'done', attempts: row!.attempts + 1 }, now());
          return { row: row?.id, left: await s.outstanding() };
        },
        { delivery: ids[i]![0]! },
      ),
    );
    release();
    await held;
    expect(await Promise.all(seen)).toEqual(convs.map((_, i) => ({ row: ids[i]![0], left: i })));
  });
});
