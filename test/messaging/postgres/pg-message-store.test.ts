/**
 * The cluster's message state in the machine's PostgreSQL (ADR 0043, first step), with two pools
 * standing for two nodes: steps of one conversation never interleave (no lost update, a Contract
 * Net awarded exactly once however its answers race), expired conversations are split between
 * sweeping nodes and each handled once, a conversation a step holds is left to the next sweep,
 * and a dead letter replayed from two nodes at once is replayed once.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgMessageStore, type ConversationStep } from '../../../src/messaging/postgres/index.js';
import type { AclMessage, Conversation, ConversationId } from '../../../src/messaging/index.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';

const run = hasSystem('postgresql');
const schema = `caxton_cluster_${process.pid}_${Date.now()}`;
const pools: pg.Pool[] = [];
let a: PgMessageStore;
let b: PgMessageStore;
let seq = 0;

const iso = (t = Date.now()) => new Date(t).toISOString();

function conversation(id: string, extra: Partial<Conversation> = {}): Conversation {
  return {
    id: id as ConversationId,
    protocol: null,
    state: 'in_progress',
    initiator: 'client',
    participants: ['client'],
    capability: null,
    turns: 0,
    max_turns: 10_000,
    created_at: iso(),
    updated_at: iso(),
    expires_at: iso(Date.now() + 60_000),
    reason: null,
    ...extra,
  };
}

function message(
  conversationId: string,
  performative: AclMessage['performative'],
  sender: string,
  receivers: string[],
  extra: Partial<AclMessage> = {},
): AclMessage {
  return {
    id: `m-${process.pid}-${++seq}`,
    performative,
    sender,
    receivers,
    content: `${performative} from ${sender}`,
    conversation_id: conversationId,
    timestamp: iso(),
    ...extra,
  } as AclMessage;
}

/** A new conversation holding a request from `client` with a delivery to `worker` and one to `other` (stored through node A). */
async function requestToTwo(prefix: string): Promise<{ id: string; m: AclMessage; worker: number; other: number }> {
  const id = `${prefix}-${seq++}`;
  const m = message(id, 'request', 'client', ['worker']);
  const [worker, other] = await a.inConversation(id, async (s) => {
    await s.saveConversation(conversation(id));
    await s.insertMessage(m, ['worker', 'other']);
    return [await s.insertDelivery(m.id, 'worker', iso()), await s.insertDelivery(m.id, 'other', iso())];
  });
  return { id, m, worker: worker!, other: other! };
}

beforeAll(async () => {
  if (!run) return;
  for (let i = 0; i < 2; i++) pools.push(new pg.Pool({ connectionString: TEST_PG_URL, max: 6 }));
  // Both nodes open the schema at once: the migration runs once.
  const opened = await Promise.all(pools.map((pool) => PgMessageStore.open({ pool, schema })));
  a = opened[0]!;
  b = opened[1]!;
});

afterAll(async () => {
  if (!run) return;
  await pools[0]!.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  for (const p of pools) await p.end();
});

describe.skipIf(!run)('PgMessageStore (two nodes on one PostgreSQL)', () => {
  it('refuses a schema name that is not a plain identifier, naming the field', async () => {
    await expect(PgMessageStore.open({ pool: pools[0]!, schema: 'Bad-Name"; DROP' })).rejects.toMatchObject({
      code: 'invalid_config',
      details: { field: 'schema' },
    });
  });

  it('steps of one conversation from two nodes never interleave: 100 concurrent steps, 100 turns, 100 messages', async () => {
    const id = `c-turns-${seq++}`;
    await a.inConversation(id, (s) => s.saveConversation(conversation(id)));
    const step = (store: PgMessageStore, n: number) =>
      store.inConversation(id, async (s) => {
        const c = s.conversation!;
        c.turns++;
        c.updated_at = iso();
        await s.insertMessage(message(id, 'inform', `agent-${n}`, ['client']), ['client']);
        await s.saveConversation(c);
      });
    await Promise.all(Array.from({ length: 100 }, (_, n) => step(n % 2 === 0 ? a : b, n)));
    expect((await b.getConversation(id))!.turns).toBe(100);
    expect(await b.inConversation(id, async (s) => (await s.messages()).length)).toBe(100);
  });

  it("a conversation id with quotes and backslashes takes its step and reads its own row (the lock's literal is escaped)", async () => {
    for (const id of [`c-q'uote-${seq++}`, `c-back\\slash\\'-${seq++}`, `c-'); DROP TABLE x; --${seq++}`]) {
      await a.inConversation(id, (s) => s.saveConversation(conversation(id)));
      const seen = await b.inConversation(id, async (s) => s.conversation?.id);
      expect(seen).toBe(id);
    }
  });

  it('a Contract Net whose proposals commit on two nodes at once is awarded exactly once', async () => {
    const bidders = ['bid-1', 'bid-2', 'bid-3', 'bid-4', 'bid-5', 'bid-6'];
    for (let round = 0; round < 5; round++) {
      const id = `c-cnet-${round}-${seq++}`;
      const cfp = message(id, 'cfp', 'buyer', bidders, { protocol: 'fipa-contract-net' });
      await a.inConversation(id, async (s) => {
        await s.saveConversation(conversation(id, { protocol: 'fipa-contract-net', initiator: 'buyer' }));
        await s.insertMessage(cfp, bidders);
      });
      // Each proposal is one step: store it, and award when it was the last expected answer.
      const propose = (store: PgMessageStore, bidder: string, price: number) =>
        store.inConversation(id, async (s: ConversationStep) => {
          await s.insertMessage(
            message(id, 'propose', bidder, ['buyer'], { in_reply_to: cfp.id, content: { price } }),
            ['buyer'],
          );
          const all = (await s.messages()).map((x) => x.message);
          const answers = all.filter((x) => x.in_reply_to === cfp.id);
          if (answers.length < bidders.length || all.some((x) => x.performative === 'accept-proposal')) return;
          const best = answers.reduce((w, x) =>
            (x.content as { price: number }).price < (w.content as { price: number }).price ? x : w,
          );
          await s.insertMessage(message(id, 'accept-proposal', 'buyer', [best.sender], { in_reply_to: best.id }), [
            best.sender,
          ]);
          for (const x of answers.filter((p) => p !== best))
            await s.insertMessage(message(id, 'reject-proposal', 'buyer', [x.sender], { in_reply_to: x.id }), [
              x.sender,
            ]);
        });
      await Promise.all(bidders.map((bidder, i) => propose(i % 2 === 0 ? a : b, bidder, 10 + ((i * 7 + round) % 6))));
      const msgs = await a.inConversation(id, async (s) => (await s.messages()).map((x) => x.message));
      expect(msgs.filter((x) => x.performative === 'accept-proposal')).toHaveLength(1);
      expect(msgs.filter((x) => x.performative === 'reject-proposal')).toHaveLength(bidders.length - 1);
    }
  });

  it('two nodes sweeping expired conversations at once handle each exactly once', async () => {
    const prefix = `c-exp-${seq++}-`;
    const past = iso(Date.now() - 1000);
    for (let i = 0; i < 20; i++)
      await a.inConversation(`${prefix}${i}`, (s) =>
        s.saveConversation(conversation(`${prefix}${i}`, { expires_at: past })),
      );
    const expire = async (s: ConversationStep & { conversation: Conversation }) => {
      const c = s.conversation;
      await s.insertMessage(message(c.id, 'failure', 'caxton', [c.initiator]), [c.initiator]);
      await s.saveConversation({
        ...c,
        state: 'expired',
        reason: 'no activity within the conversation ttl',
        turns: c.turns + 1,
      });
    };
    const now = iso();
    const [na, nb] = await Promise.all([a.expired(now, 1000, expire), b.expired(now, 1000, expire)]);
    const mine = async (i: number) =>
      b.inConversation(`${prefix}${i}`, async (s) => ({
        state: s.conversation!.state,
        failures: (await s.messages()).length,
      }));
    const states = await Promise.all(Array.from({ length: 20 }, (_, i) => mine(i)));
    // Other tests' conversations in this schema are not expired, so these counts are ours alone.
    expect(na + nb).toBe(20);
    expect(states.every((s) => s.state === 'expired' && s.failures === 1)).toBe(true);
  });

  it('a conversation a step holds is skipped by the sweep, and expired by the next one', async () => {
    const id = `c-held-${seq++}`;
    await a.inConversation(id, (s) => s.saveConversation(conversation(id, { expires_at: iso(Date.now() - 1000) })));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const held = a.inConversation(id, async () => {
      entered();
      await gate;
    });
    await inside;
    const seen: string[] = [];
    await b.expired(iso(), 1000, async (s) => {
      seen.push(s.conversation.id);
      await s.saveConversation({ ...s.conversation, state: 'expired' });
    });
    expect(seen).not.toContain(id);
    release();
    await held;
    await b.expired(iso(), 1000, async (s) => {
      seen.push(s.conversation.id);
      await s.saveConversation({ ...s.conversation, state: 'expired' });
    });
    expect(seen).toContain(id);
    expect((await a.getConversation(id))!.state).toBe('expired');
  });

  it('a delivery acknowledged with its replies stores both; a dead letter replayed from two nodes at once is replayed once', async () => {
    const { id, m, worker: ok, other: dead } = await requestToTwo('c-dl');
    const reply = message(id, 'inform', 'worker', ['client'], { in_reply_to: m.id });
    await b.ack(ok, [reply], iso());
    expect((await a.getDelivery(ok))!.state).toBe('done');
    expect((await a.getMessage(reply.id))!.message.in_reply_to).toBe(m.id);
    await a.dead(dead, 3, 'provider failed', iso());
    expect((await b.deadLetters(100, 0)).items.map((d) => d.id)).toContain(dead);
    const replayed = await Promise.all([a.replay(dead, iso()), b.replay(dead, iso())]);
    expect(replayed.filter(Boolean)).toHaveLength(1);
    expect((await b.deliveriesOf(m.id)).map((d) => [d.receiver, d.state])).toEqual([
      ['worker', 'done'],
      ['other', 'pending'],
    ]);
  });

  it('a failed attempt of a delivery another copy finished meanwhile is not retried or dead-lettered: the row stays done', async () => {
    const { id, m, worker: done, other: pending } = await requestToTwo('c-late');
    // One copy answered on node B...
    await b.ack(done, [message(id, 'inform', 'worker', ['client'], { in_reply_to: m.id })], iso());
    // ...then another copy's attempt failed on node A: before, its retry wrote 'pending' over 'done' and the delivery ran (and was answered) again.
    expect(await a.retry(done, 1, Date.now() + 1000, 'provider failed', iso())).toBe(false);
    expect(await a.dead(done, 3, 'provider failed', iso())).toBe(false);
    expect((await a.getDelivery(done))!.state).toBe('done');
    // A pending one is retried as before.
    expect(await a.retry(pending, 1, Date.now() + 1000, 'provider failed', iso())).toBe(true);
    expect(await b.getDelivery(pending)).toMatchObject({
      state: 'pending',
      attempts: 1,
      last_error: 'provider failed',
    });
  });

  it('retention keeps the newest max_conversations: none deleted at or under it, the oldest finished ones over it, never an open one', async () => {
    const own = `${schema}_cap`;
    const store = await PgMessageStore.open({ pool: pools[0]!, schema: own });
    try {
      const t0 = Date.now() - 60_000;
      // Six finished conversations, one a second apart, and an open one, the oldest of all.
      const ids = Array.from({ length: 6 }, (_, i) => `cap-${i}`);
      await store.inConversation('cap-open', (s) =>
        s.saveConversation(conversation('cap-open', { created_at: iso(t0 - 1000), updated_at: iso(t0 - 1000) })),
      );
      for (const [i, id] of ids.entries())
        await store.inConversation(id, (s) =>
          s.saveConversation(
            conversation(id, { state: 'completed', created_at: iso(t0 + i * 1000), updated_at: iso(t0 + i * 1000) }),
          ),
        );
      const limits = { retention: 3_600_000, dead_letter_retention: 3_600_000, max_dead_letters: 1000 };
      expect(await store.prune({ ...limits, max_conversations: 7 }, 500)).toMatchObject({ conversations: 0 });
      expect(await store.prune({ ...limits, max_conversations: 4 }, 500)).toMatchObject({ conversations: 2 });
      const left = (
        await pools[0]!.query<{ id: string }>(`SELECT id FROM "${own}".conversations ORDER BY id`)
      ).rows.map((r) => r.id);
      expect(left).toEqual(['cap-2', 'cap-3', 'cap-4', 'cap-5', 'cap-open']);
    } finally {
      await pools[0]!.query(`DROP SCHEMA IF EXISTS "${own}" CASCADE`);
    }
  });
});
