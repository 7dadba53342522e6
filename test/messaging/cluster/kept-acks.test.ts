/**
 * The acknowledgement of a one-way conversation kept with its message (ADR 0080), on the machine's
 * PostgreSQL with two nodes' stores on one schema: a node that took the delivery while it marked
 * its conversation kept reads only the delivery row under the conversation's lock, and what it
 * decides from the mark must hold whatever the other node does meanwhile (sends a second message
 * into the conversation, acknowledges a republished copy of the same delivery): every delivery
 * finished once, exactly one conversation row, and the reads never show the conversation twice.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { ConversationStep, PgMessageStore } from '../../../src/messaging/postgres/index.js';
import type { AclMessage, Conversation, ConversationId, MessageId } from '../../../src/messaging/index.js';
import { aclMessage } from '../helpers.js';
import { hasSystem } from '../../helpers/system.js';
import { twoStores } from './message-stores.js';

const run = hasSystem('postgresql');
/** Every query each node sent, as text. */
const sent: string[][] = [[], []];
const { schema, pools, stores } = twoStores(run, 'caxton_kept', {
  max: 4,
  onQuery: (i, q) => void sent[i]!.push(typeof q === 'string' ? q : String((q as { text?: string }).text ?? '')),
});

let n = 0;
const now = () => new Date().toISOString();
function message(conversation: string, receiver: string, performative: AclMessage['performative']): AclMessage {
  return {
    ...aclMessage({ performative, sender: 'caller', receivers: [receiver], timestamp: now() }),
    id: `m-kept-${process.pid}-${++n}` as MessageId,
    conversation_id: conversation as ConversationId,
  };
}

/** A one-way conversation as the accept step opens it (initiated, with a deadline: its delivery marks it kept). */
function opening(id: string): Conversation {
  const t = now();
  return {
    id: id as ConversationId,
    protocol: null,
    state: 'initiated',
    initiator: 'caller',
    participants: ['caller', 'sink'],
    capability: null,
    turns: 1,
    max_turns: 100,
    created_at: t,
    updated_at: t,
    expires_at: new Date(Date.now() + 600_000).toISOString(),
    reason: null,
  };
}

/** Accepts a one-way inform opening `conv` on `store` (kept with its message); returns its delivery. */
function openKept(store: PgMessageStore, conv: string): Promise<number> {
  return store.inConversation(
    conv,
    async (s) => {
      const m = message(conv, 'sink', 'inform');
      await s.insertMessage(m, ['sink'], opening(conv));
      return s.insertDelivery(m.id, 'sink', now());
    },
    { fresh: true },
  );
}

/** A second message into `conv`, as the engine's accept: refused when the conversation ended, else the row written with both turns. */
function second(store: PgMessageStore, conv: string): Promise<number | 'closed'> {
  return store.inConversation(conv, async (s) => {
    const c = s.conversation!;
    if (c.state === 'completed' || c.state === 'failed') return 'closed';
    const m = message(conv, 'other', 'inform');
    await s.insertMessage(m, ['other']);
    const d = await s.insertDelivery(m.id, 'other', now());
    await s.saveConversation({ ...c, state: 'in_progress', turns: c.turns + 1, updated_at: now() });
    return d;
  });
}

/** The acknowledgement as the engine steps it: the row done and the conversation completed when nothing is left. */
async function ackStep(s: ConversationStep, d: number, hold?: Promise<void>) {
  const row = await s.delivery(d);
  await hold;
  if (!row || row.state !== 'pending') return { acked: false };
  await s.setDelivery(d, { state: 'done', attempts: row.attempts + 1 }, now());
  const c = s.conversation!;
  const left = await s.outstanding();
  await s.saveConversation({
    ...c,
    state: left === 0 ? 'completed' : 'in_progress',
    updated_at: now(),
    ...(left === 0 && { expires_at: null }),
  });
  return { acked: true, turns: c.turns, left };
}
const ack = (store: PgMessageStore, conv: string, d: number, hold?: Promise<void>) =>
  store.inConversation(conv, (s) => ackStep(s, d, hold), { delivery: d });

/**
 * The acknowledgement as the engine steps a one-way conversation's: when nothing else is left the
 * conversation is completed by its delivery (reason `delivered`, no deadline), which reads derive
 * from the done delivery without a row (ADR 0138).
 */
async function oneWayAckStep(s: ConversationStep, d: number) {
  const row = await s.delivery(d);
  if (!row || row.state !== 'pending') return { acked: false };
  await s.setDelivery(d, { state: 'done', attempts: row.attempts + 1 }, now());
  const c = s.conversation!;
  const left = await s.outstanding();
  await s.saveConversation(
    left === 0
      ? { ...c, state: 'completed', reason: 'delivered', expires_at: null, updated_at: now() }
      : { ...c, state: 'in_progress', updated_at: now() },
  );
  return { acked: true, turns: c.turns, left };
}
const oneWayAck = (store: PgMessageStore, conv: string, d: number) =>
  store.inConversation(conv, (s) => oneWayAckStep(s, d), { delivery: d });

const q = async <T extends pg.QueryResultRow>(sql: string, values: unknown[] = []) =>
  (await pools[0]!.query<T>(sql, values)).rows;
/** The conversation rows of `conv`, and what every read sees of it (the view: rows and kept conversations). */
async function seen(conv: string) {
  const rows = await q<{ state: string; turns: number }>(
    `SELECT state, turns FROM "${schema}".conversations WHERE id = $1`,
    [conv],
  );
  const read = await q<{ state: string }>(`SELECT state FROM "${schema}".conversations_read WHERE id = $1`, [conv]);
  return { rows: rows.map((r) => [r.state, r.turns]), read: read.map((r) => r.state) };
}
const states = async (ids: number[]) =>
  (
    await q<{ id: string; state: string }>(
      `SELECT id, state FROM "${schema}".deliveries WHERE id = ANY($1::bigint[]) ORDER BY id`,
      [ids],
    )
  ).map((r) => r.state);
/** The BEGINs node `i` sent since `from` that read the conversation rows or the pending count (what a lean step skips). */
const fullReads = (i: number, from: number) =>
  sent[i]!.slice(from).filter((t) => t.startsWith('BEGIN') && /\.conversations WHERE|sum\(/.test(t)).length;

describe.runIf(run)('acknowledging a one-way conversation kept with its message', () => {
  it('a delivery taken while kept is acknowledged from its row alone: the row written once, completed', async () => {
    const d = await openKept(stores[0]!, 'k-plain');
    expect((await stores[0]!.deliveriesToTake([d])).get(d)?.kept).toBe(true);
    const from = sent[0]!.length;
    expect(await ack(stores[0]!, 'k-plain', d)).toEqual({ acked: true, turns: 1, left: 0 });
    expect(fullReads(0, from)).toBe(0);
    expect(await seen('k-plain')).toEqual({ rows: [['completed', 1]], read: ['completed'] });
  });

  it('a second message accepted on the other node after the take: the acknowledgement sees its row and its pending delivery', async () => {
    const d = await openKept(stores[0]!, 'k-second');
    await stores[0]!.deliveriesToTake([d]);
    const d2 = await second(stores[1]!, 'k-second');
    expect(typeof d2).toBe('number');
    const from = sent[0]!.length;
    expect(await ack(stores[0]!, 'k-second', d)).toEqual({ acked: true, turns: 2, left: 1 });
    // The mark was gone under the lock: the skipped reads were made after all.
    expect(sent[0]!.slice(from).some((t) => /\.conversations WHERE id = ANY/.test(t))).toBe(true);
    expect(await seen('k-second')).toEqual({ rows: [['in_progress', 2]], read: ['in_progress'] });
    expect(await states([d, d2 as number])).toEqual(['done', 'pending']);
  });

  it('two nodes acknowledging the same delivery at once (a republished copy): it is finished once, one row', async () => {
    for (let i = 0; i < 10; i++) {
      const conv = `k-twice-${i}`;
      const d = await openKept(stores[i % 2]!, conv);
      await stores[0]!.deliveriesToTake([d]);
      await stores[1]!.deliveriesToTake([d]);
      // The first to lock holds the conversation until the other's BEGIN is sent and waits for it.
      const asked = sent[1 - (i % 2)]!.length;
      const waiting = (async () => {
        while (!sent[1 - (i % 2)]!.slice(asked).some((t) => t.startsWith('BEGIN')))
          await new Promise((r) => setTimeout(r, 2));
        await new Promise((r) => setTimeout(r, 20));
      })();
      const first = ack(stores[i % 2]!, conv, d, waiting);
      await new Promise((r) => setTimeout(r, 5));
      const other = ack(stores[1 - (i % 2)]!, conv, d);
      const out = await Promise.all([first, other]);
      expect(out.filter((o) => o.acked)).toHaveLength(1);
      expect(await seen(conv)).toEqual({ rows: [['completed', 1]], read: ['completed'] });
      expect(await states([d])).toEqual(['done']);
    }
  });

  it('an acknowledgement and a second message racing on two nodes: exactly one row, the second refused only after completion', async () => {
    const convs = Array.from({ length: 24 }, (_, i) => `k-race-${i}`);
    const ds = await Promise.all(convs.map((c) => openKept(stores[0]!, c)));
    await stores[0]!.deliveriesToTake(ds);
    // Staggered by a few milliseconds, so that some acknowledgements lock first and some second messages do.
    const after = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const acks = convs.map((c, i) => after(i % 4).then(() => ack(stores[0]!, c, ds[i]!)));
    const seconds = convs.map((c, i) => after((i + 2) % 4).then(() => second(stores[1]!, c)));
    const [acked, sent2] = await Promise.all([Promise.all(acks), Promise.all(seconds)]);
    for (const [i, c] of convs.entries()) {
      expect(acked[i]!.acked).toBe(true);

      const view = await seen(c);
      expect(view.rows).toHaveLength(1);
      expect(view.read).toHaveLength(1);
      if (sent2[i] === 'closed') {
        // The acknowledgement came first: it completed the conversation alone.
        expect(acked[i]).toEqual({ acked: true, turns: 1, left: 0 });
        expect(view.rows).toEqual([['completed', 1]]);
      } else {
        // The second message came first: the acknowledgement saw its turn and its pending delivery.
        expect(acked[i]).toEqual({ acked: true, turns: 2, left: 1 });
        expect(view.rows).toEqual([['in_progress', 2]]);
        expect(await states([ds[i]!, sent2[i] as number])).toEqual(['done', 'pending']);
      }
    }
  });

  it('a dead letter of a kept delivery writes the row failed, and a replay leaves no kept mark behind', async () => {
    const d = await openKept(stores[1]!, 'k-dead');
    await stores[1]!.deliveriesToTake([d]);
    const from = sent[1]!.length;
    await stores[1]!.inConversation(
      'k-dead',
      async (s) => {
        const row = await s.delivery(d);
        await s.setDelivery(d, { state: 'dead', attempts: row!.attempts, last_error: 'gone' }, now());
        await s.saveConversation({ ...s.conversation!, state: 'failed', reason: 'gone', updated_at: now() });
      },
      { delivery: d },
    );
    expect(fullReads(1, from)).toBe(0);
    expect(await seen('k-dead')).toEqual({ rows: [['failed', 1]], read: ['failed'] });
    expect(await stores[1]!.replay(d, now())).toBe(true);
    expect((await stores[0]!.deliveriesToTake([d])).get(d)?.kept).toBe(false);
    expect((await seen('k-dead')).read).toEqual(['failed']);
  });

  it('a first attempt taken while kept is acknowledged in one round trip: its lock, its conditional done-marking, the COMMIT', async () => {
    const d = await openKept(stores[0]!, 'k-opt');
    expect((await stores[0]!.deliveriesToTake([d])).get(d)?.keptFirst).not.toBeNull();
    const from = sent[0]!.length;
    const stats = stores[0]!.groupStats;
    expect(await oneWayAck(stores[0]!, 'k-opt', d)).toEqual({ acked: true, turns: 1, left: 0 });
    // What caxton_cluster_acks_unread_total and _reread_total count.
    expect(stores[0]!.groupStats).toMatchObject({ unread: stats.unread + 1, reread: stats.reread });
    // Without the block of delivery ids a store may reserve meanwhile (off every step's path).
    const trips = sent[0]!.slice(from).filter((t) => !t.includes('nextval('));
    expect(trips).toHaveLength(1);
    expect(trips[0]).toMatch(/^BEGIN; SELECT pg_advisory_xact_lock[\s\S]*UPDATE [\s\S]*RETURNING d\.id;\s*COMMIT$/);
    expect(await seen('k-opt')).toEqual({ rows: [], read: ['completed'] });
    expect(await states([d])).toEqual(['done']);
  });

  it('a row changed since the take (another node acknowledged a copy): the condition fails, the step runs again and finds it done', async () => {
    const d = await openKept(stores[0]!, 'k-opt-copy');
    await stores[0]!.deliveriesToTake([d]);
    await stores[1]!.deliveriesToTake([d]);
    expect(await oneWayAck(stores[1]!, 'k-opt-copy', d)).toEqual({ acked: true, turns: 1, left: 0 });
    const from = sent[0]!.length;
    const stats = stores[0]!.groupStats;
    expect(await oneWayAck(stores[0]!, 'k-opt-copy', d)).toEqual({ acked: false });
    expect(stores[0]!.groupStats).toMatchObject({ unread: stats.unread, reread: stats.reread + 1 });
    // The conditional UPDATE marked nothing; the step ran again and read the row under the lock.
    expect(sent[0]!.slice(from).filter((t) => /RETURNING d\.id/.test(t))).toHaveLength(1);
    expect(sent[0]!.slice(from).some((t) => /^BEGIN;[\s\S]*FOR UPDATE/.test(t))).toBe(true);
    expect(await seen('k-opt-copy')).toEqual({ rows: [], read: ['completed'] });
  });

  it('a retry after the take: the acknowledgement taken at the first attempt does not mark the row, the step runs again on its row', async () => {
    const d = await openKept(stores[0]!, 'k-opt-retry');
    await stores[0]!.deliveriesToTake([d]);
    expect(await stores[1]!.retry(d, 1, Date.now(), 'busy', now())).toBe(true);
    expect(await oneWayAck(stores[0]!, 'k-opt-retry', d)).toEqual({ acked: true, turns: 1, left: 0 });
    const [row] = await q<{ state: string; attempts: number }>(
      `SELECT state, attempts FROM "${schema}".deliveries WHERE id = $1`,
      [d],
    );
    // attempts + 1 of the row under the lock (1), not of the take (0).
    expect(row).toEqual({ state: 'done', attempts: 2 });
  });

  it('acknowledgements of first attempts racing second messages on the other node: the conversation is completed without a row, or continued with both turns', async () => {
    const convs = Array.from({ length: 24 }, (_, i) => `k-opt-race-${i}`);
    const ds = await Promise.all(convs.map((c) => openKept(stores[0]!, c)));
    await stores[0]!.deliveriesToTake(ds);
    const after = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const acks = convs.map((c, i) => after(i % 4).then(() => oneWayAck(stores[0]!, c, ds[i]!)));
    const seconds = convs.map((c, i) => after((i + 2) % 4).then(() => second(stores[1]!, c)));
    const [acked, sent2] = await Promise.all([Promise.all(acks), Promise.all(seconds)]);
    let completed = 0;
    for (const [i, c] of convs.entries()) {
      const view = await seen(c);
      expect(view.read).toHaveLength(1);
      if (sent2[i] === 'closed') {
        completed++;
        expect(acked[i]).toEqual({ acked: true, turns: 1, left: 0 });
        expect(view).toEqual({ rows: [], read: ['completed'] });
      } else {
        expect(acked[i]).toEqual({ acked: true, turns: 2, left: 1 });
        expect(view).toEqual({ rows: [['in_progress', 2]], read: ['in_progress'] });
        expect(await states([ds[i]!, sent2[i] as number])).toEqual(['done', 'pending']);
      }
    }
    console.log(`optimistic acknowledgements first: ${completed} of ${convs.length}`);
  });

  it('a delivery is fresh (no run of its message can exist yet) until published again: claimed stale or replayed', async () => {
    const d = await openKept(stores[0]!, 'k-fresh');
    expect((await stores[0]!.deliveriesToTake([d])).get(d)?.fresh).toBe(true);
    // The reconciliation claim takes rows untouched before the given time: this one, now.
    const claimed = await stores[1]!.stale(Date.now() + 1000, 500);
    expect(claimed.map((r) => r.id)).toContain(d);
    expect((await stores[0]!.deliveriesToTake([d])).get(d)?.fresh).toBe(false);
    const e = await openKept(stores[0]!, 'k-fresh-tag');
    await pools[0]!.query(`UPDATE "${schema}".deliveries SET publish_tag = 'p1' WHERE id = $1`, [e]);
    expect((await stores[0]!.deliveriesToTake([e])).get(e)?.fresh).toBe(false);
  });
});
