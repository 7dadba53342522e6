/**
 * Round trips of a conversation step (src/messaging/postgres/pg-message-store.ts; ADR 0043 "Round trips") on
 * the machine's PostgreSQL, counted on the pool's connections: accepting a message to one receiver
 * takes two (BEGIN with the locks; the message, its delivery row with a reserved id and the
 * conversation with the COMMIT), acknowledging a delivery two (BEGIN with the locks, the rows and
 * the pending count; the writes with the COMMIT), and the first step of a conversation whose id was
 * made for it one (BEGIN, the writes and the COMMIT: nothing to lock or read). And what the shortcuts must not change: the
 * outstanding count a step sees equals a fresh count in every order of writes, reserved ids are
 * unique across two nodes, and a step that fails leaves no row.
 */
import { describe, expect, it } from 'vitest';
import type { ConversationStep } from '../../../src/messaging/postgres/index.js';
import type { AclMessage, Conversation, ConversationId, MessageId } from '../../../src/messaging/index.js';
import { aclMessage } from '../helpers.js';
import { hasSystem } from '../../helpers/system.js';
import { freshConversation, twoStores } from '../cluster/message-stores.js';
import { waitUntil } from '../../helpers/wait.js';

const run = hasSystem('postgresql');
/** Statements sent per node (a multi-statement simple query is one). */
const sent = [0, 0];
const { schema, pools, stores } = twoStores(run, 'caxton_pgrt', { max: 3, onQuery: (i) => sent[i]!++ });

let n = 0;
const now = () => new Date().toISOString();
function message(conversation: string, receiver = 'worker'): AclMessage {
  return {
    ...aclMessage({ sender: 'caller', receivers: [receiver], timestamp: now() }),
    id: `m-${process.pid}-${++n}` as MessageId,
    conversation_id: conversation as ConversationId,
  };
}
const conversationOf = (s: ConversationStep, id: string): Conversation => s.conversation ?? freshConversation(id);

/** Accepts a message into `conv` (as the bus does): the message, one delivery per receiver, the conversation. */
const accept = (i: number, conv: string, receivers = ['worker']) =>
  stores[i]!.inConversation(conv, async (s) => {
    const c = conversationOf(s, conv);
    const m = message(conv, receivers[0]);
    await s.insertMessage(m, receivers);
    const ids: number[] = [];
    for (const r of receivers) ids.push(await s.insertDelivery(m.id, r, now()));
    await s.saveConversation({ ...c, turns: c.turns + 1, updated_at: now() });
    return ids;
  });

const pendingOf = async (conv: string) =>
  Number(
    (
      await pools[0]!.query(
        `SELECT count(*) AS n FROM "${schema}".deliveries d JOIN "${schema}".messages m ON m.id = d.message_id WHERE m.conversation_id = $1 AND d.state = 'pending'`,
        [conv],
      )
    ).rows[0].n,
  );

/** Statements `fn` sent on pool `i`, once its reserved ids are in (the reservation is a query of its own, off the step). */
async function counted<T>(i: number, fn: () => Promise<T>): Promise<{ value: T; statements: number }> {
  const before = sent[i]!;
  const value = await fn();
  return { value, statements: sent[i]! - before };
}

describe.runIf(run)('conversation steps: round trips and what they must keep', () => {
  it('accepting a message takes two round trips once ids are reserved; acknowledging its delivery two', async () => {
    // The first step reserves a block of ids (its own delivery row still asks the INSERT for one).
    await accept(0, 'rt-warm');
    await waitUntil(async () => (await counted(0, () => accept(0, `rt-probe-${n}`))).statements === 2, {
      what: 'reserved ids in use',
      timeoutMs: 3000,
    });
    const a = await counted(0, () => accept(0, 'rt-1'));
    expect(a.statements).toBe(2);
    const [did] = a.value;
    const ack = await counted(0, () =>
      stores[0]!.inConversation(
        'rt-1',
        async (s) => {
          const row = await s.delivery(did!);
          await s.setDelivery(did!, { state: 'done', attempts: row!.attempts + 1 }, now());
          const left = await s.outstanding();
          await s.saveConversation({
            ...s.conversation!,
            state: left === 0 ? 'completed' : 'in_progress',
            updated_at: now(),
          });
          return left;
        },
        { delivery: did! },
      ),
    );
    expect(ack).toEqual({ value: 0, statements: 2 });
    expect(await pendingOf('rt-1')).toBe(0);
  });

  it('a new conversation (its id made for this step) takes one round trip, alone or grouped, and is stored whole', async () => {
    await waitUntil(async () => (await counted(0, () => accept(0, `rt-probe-${n}`))).statements === 2, {
      what: 'reserved ids in use',
      timeoutMs: 3000,
    });
    const acceptFresh = (conv: string) =>
      stores[0]!.inConversation(
        conv,
        async (s) => {
          expect(s.conversation).toBeUndefined();
          const m = message(conv);
          await s.insertMessage(m, ['worker']);
          const id = await s.insertDelivery(m.id, 'worker', now());
          await s.saveConversation({ ...freshConversation(conv), turns: 1 });
          return id;
        },
        { fresh: true },
      );
    const alone = await counted(0, () => acceptFresh('rt-fresh-1'));
    expect(alone.statements).toBe(1);
    expect(await pendingOf('rt-fresh-1')).toBe(1);
    // Arriving together: the first runs alone, the rest form groups; each group one round trip.
    const convs = Array.from({ length: 40 }, (_, i) => `rt-fresh-g${i}`);
    const grouped = await counted(0, () => Promise.all(convs.map(acceptFresh)));
    expect(grouped.statements).toBeLessThan(convs.length / 4);
    for (const c of convs) expect(await pendingOf(c)).toBe(1);
    // The conversation's later steps find it, and lock it as any other.
    const later = await stores[1]!.inConversation('rt-fresh-1', async (s) => s.conversation?.turns);
    expect(later).toBe(1);
  });

  it('the outstanding count a delivery step sees equals a fresh count, whatever the step wrote before asking', async () => {
    const conv = 'rt-count';
    const ids = [...(await accept(0, conv, ['w1', 'w2', 'w3'])), ...(await accept(1, conv, ['w4']))];
    expect(await pendingOf(conv)).toBe(4);
    // Each case: what the step does to the locked row and others before asking, and the fresh count after it commits.
    const cases: { what: string; step: (s: ConversationStep, locked: number) => Promise<void> }[] = [
      { what: 'the locked row done', step: (s, d) => s.setDelivery(d, { state: 'done', attempts: 1 }, now()) },
      {
        what: 'a new delivery in this conversation',
        step: async (s) => void (await s.insertDelivery((await insertHere(s, conv)).id, 'w5', now())),
      },
      {
        what: 'another row of it dead (state unknown before: counted again)',
        step: (s) => s.setDelivery(ids[3]!, { state: 'dead', attempts: 3 }, now()),
      },
      {
        what: 'a delivery of a message of another conversation',
        step: async (s) => void (await s.insertDelivery((await insertHere(s, 'rt-other')).id, 'w6', now())),
      },
      {
        what: 'the locked row (done) back to pending',
        step: (s, d) => s.setDelivery(d, { state: 'pending', attempts: 0, publish_tag: 'r1' }, now()),
      },
    ];
    for (const c of cases) {
      const seen = await stores[1]!.inConversation(
        conv,
        async (s) => {
          await c.step(s, ids[0]!);
          return s.outstanding();
        },
        { delivery: ids[0]! },
      );
      expect(seen, c.what).toBe(await pendingOf(conv));
    }
  });

  it('ids reserved by two nodes at once are unique, and a failed step leaves no row', async () => {
    const all = (await Promise.all(Array.from({ length: 60 }, (_, i) => accept(i % 2, `rt-par-${i}`)))).flat();
    expect(new Set(all).size).toBe(60);
    const err = await stores[0]!
      .inConversation('rt-fail', async (s) => {
        const m = message('rt-fail');
        await s.insertMessage(m, ['worker']);
        await s.insertDelivery(m.id, 'worker', now());
        throw new Error('the protocol refused it');
      })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ message: 'the protocol refused it' });
    expect(
      (await pools[0]!.query(`SELECT count(*)::int AS n FROM "${schema}".messages WHERE conversation_id = 'rt-fail'`))
        .rows[0].n,
    ).toBe(0);
  });
});

async function insertHere(s: ConversationStep, conv: string): Promise<AclMessage> {
  const m = message(conv);
  await s.insertMessage(m, [m.receivers[0]!]);
  return m;
}
