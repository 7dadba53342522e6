/**
 * The read side of the cluster's message state (src/messaging/postgres/pg-reads.ts) on the machine's
 * PostgreSQL: one fixture of conversations, messages and delivery rows, written through
 * PgMessageStore's steps, read back by every method and filter with the expected rows spelled
 * out (each filter narrows: ignoring one changes the answer), and the same fixture written to
 * SQLite's MessageStore to show both stores answer every filter alike.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conversationVisible, messageVisible } from '../../../src/auth/index.js';
import { PgMessageReads, PgMessageStore } from '../../../src/messaging/postgres/index.js';
import {
  type AclMessage,
  type Conversation,
  type ConversationId,
  type DeadLetterFilter,
  type MessageFilter,
  type MessageId,
} from '../../../src/messaging/index.js';
import { MESSAGING_MIGRATIONS } from '../../../src/messaging/sqlite/index.js';
import { deliveryView } from '../../../src/messaging/rows.js';
import { MessageStore } from '../../../src/messaging/sqlite/index.js';
import { migrate, openDatabase, type Db } from '../../../src/storage/index.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';

const run = hasSystem('postgresql');
const schema = `caxton_pgreads_${process.pid}_${Date.now()}`;
const T0 = Date.parse('2025-03-01T12:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

let pool: pg.Pool;
let store: PgMessageStore;
let reads: PgMessageReads;
let dir: string;
let db: Db;
let lite: MessageStore;

function conversation(n: number, state: Conversation['state'], participants: string[]): Conversation {
  return {
    id: `conv-${n}` as ConversationId,
    protocol: null,
    state,
    initiator: participants[0]!,
    participants,
    capability: null,
    turns: 0,
    max_turns: 100,
    created_at: at(n),
    updated_at: at(n),
    expires_at: state === 'in_progress' || state === 'initiated' ? at(3600) : null,
    reason: state === 'failed' ? 'gave up' : null,
  };
}

/** How a delivery row ends: acknowledged, dead with an error, retrying with an error, or untouched. */
type End = { receiver: string } & ({ end: 'done' | 'pending' } | { end: 'dead' | 'retry'; error: string });

interface Sent {
  message: AclMessage;
  routedTo: string[];
  deliveries: End[];
}

function sent(
  n: number,
  conv: number,
  performative: AclMessage['performative'],
  sender: string,
  routedTo: string[],
  deliveries: End[] = [],
): Sent {
  const message = {
    id: `m${n}` as MessageId,
    performative,
    sender,
    receivers: routedTo,
    content: `${performative} ${n}`,
    conversation_id: `conv-${conv}` as ConversationId,
    params: {},
    timestamp: at(100 + n),
    chain: [],
  } as AclMessage;
  return { message, routedTo, deliveries };
}

// Conversations in creation order (SQLite lists them newest first by rowid, PostgreSQL by created_at).
const CONVERSATIONS = [
  conversation(1, 'completed', ['client', 'Worker-A']),
  conversation(2, 'in_progress', ['buyer', 'seller', 'worker-a']),
  conversation(3, 'failed', ['Émile', 'Worker-A']),
  conversation(4, 'in_progress', ['client', 'Worker-A', 'helper']),
];

const MESSAGES = [
  sent(1, 1, 'request', 'client', ['Worker-A'], [{ receiver: 'Worker-A', end: 'done' }]),
  sent(2, 1, 'inform', 'Worker-A', ['client']),
  sent(
    3,
    2,
    'cfp',
    'buyer',
    ['seller', 'worker-a'],
    [
      { receiver: 'seller', end: 'dead', error: 'Seller Unreachable' },
      // Not dead: its error matches the filters below, yet it is never a dead letter.
      { receiver: 'worker-a', end: 'retry', error: 'quota at 100% (rate_limit)' },
    ],
  ),
  sent(4, 2, 'propose', 'seller', ['buyer'], [{ receiver: 'buyer', end: 'done' }]),
  sent(5, 2, 'propose', 'worker-a', ['buyer'], [{ receiver: 'buyer', end: 'pending' }]),
  sent(
    6,
    3,
    'request',
    'Émile',
    ['Worker-A'],
    [{ receiver: 'Worker-A', end: 'dead', error: 'quota at 100% (rate_limit)' }],
  ),
  sent(
    7,
    4,
    'request',
    'client',
    ['Worker-A', 'helper'],
    [
      { receiver: 'Worker-A', end: 'dead', error: 'provider said 100 percent; ratexlimit' },
      { receiver: 'helper', end: 'dead', error: 'timeout after 30s at C:\\tmp' },
    ],
  ),
  // Routed to Worker-A but never delivered to it: the receiver filter goes by delivery rows.
  sent(8, 4, 'inform', 'helper', ['client', 'Worker-A']),
  sent(9, 4, 'request', 'Client', ['helper'], [{ receiver: 'helper', end: 'done' }]),
];

/** Delivery ids by `message/receiver` (both stores number them alike: fresh tables, same order). */
const delivery = new Map<string, number>();

async function writeFixture(): Promise<void> {
  for (const c of CONVERSATIONS) {
    await store.inConversation(c.id, (s) => s.saveConversation(c));
    lite.saveConversation({ ...c });
  }
  for (const [i, m] of MESSAGES.entries()) {
    const now = at(200 + i);
    const ids = await store.inConversation(m.message.conversation_id, async (s) => {
      await s.insertMessage(m.message, m.routedTo);
      const out: number[] = [];
      for (const d of m.deliveries) out.push(await s.insertDelivery(m.message.id, d.receiver, now));
      return out;
    });
    lite.insertMessage(m.message, m.routedTo);
    for (const [j, d] of m.deliveries.entries()) {
      const id = ids[j]!;
      lite.insertDelivery(id, m.message.id, d.receiver, now);
      delivery.set(`${m.message.id}/${d.receiver}`, id);
      if (d.end === 'done') {
        await store.ack(id, [], now);
        lite.ack(id, now);
      } else if (d.end === 'dead') {
        await store.dead(id, 3, d.error, now);
        lite.dead(id, 3, d.error, now);
      } else if (d.end === 'retry') {
        await store.retry(id, 1, T0 + 5000, d.error, now);
        lite.retry(id, 1, T0 + 5000, d.error, now);
      }
    }
  }
}

const ids = (items: { message: AclMessage }[]) => items.map((s) => s.message.id);
const dl = (key: string) => delivery.get(key)!;

beforeAll(async () => {
  if (!run) return;
  pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 4 });
  store = await PgMessageStore.open({ pool, schema });
  reads = new PgMessageReads({ store });
  dir = mkdtempSync(join(tmpdir(), 'caxton-pgreads-'));
  db = openDatabase(dir);
  migrate(db, MESSAGING_MIGRATIONS);
  lite = new MessageStore(db);
  await writeFixture();
});

afterAll(async () => {
  if (!run) return;
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!run)('PgMessageReads (MessageReads over PostgreSQL)', () => {
  it('the filter indexes are migration cluster-messaging-003, applied once however often the store opens', async () => {
    await PgMessageStore.open({ pool, schema });
    const applied = (await pool.query<{ id: string }>(`SELECT id FROM "${schema}".migrations ORDER BY id`)).rows.map(
      (r) => r.id,
    );
    expect(applied.filter((id) => id === 'cluster-messaging-003')).toHaveLength(1);
    expect(applied.filter((id) => id.startsWith('cluster-messaging-'))).toEqual([
      'cluster-messaging-001',
      'cluster-messaging-002',
      'cluster-messaging-003',
      'cluster-messaging-004',
      'cluster-messaging-005',
      'cluster-messaging-006-attempts',
      'cluster-messaging-007-one-way',
      'cluster-messaging-008-open-index',
      'cluster-messaging-009-no-state-index',
      'cluster-messaging-010-held',
      'cluster-messaging-011-ended-kept',
    ]);
  });

  describe('getConversation', () => {
    it('returns the conversation as saved and its messages oldest first, paged', async () => {
      const got = await reads.getConversation('conv-4');
      expect(got.conversation).toEqual(CONVERSATIONS[3]);
      expect(ids(got.messages)).toEqual(['m7', 'm8', 'm9']);
      expect(got.messages[1]).toEqual({ message: MESSAGES[7]!.message, routed_to: ['client', 'Worker-A'] });
      expect(ids((await reads.getConversation('conv-4', { limit: 1, offset: 1 })).messages)).toEqual(['m8']);
      expect(ids((await reads.getConversation('conv-4', { offset: 2 })).messages)).toEqual(['m9']);
    });

    it('an unknown id is conversation_not_found, with the message MessageReads gives', async () => {
      await expect(reads.getConversation('conv-none')).rejects.toMatchObject({
        code: 'conversation_not_found',
        message: 'no conversation with id "conv-none"',
        details: { id: 'conv-none' },
      });
    });
  });

  describe('listConversations', () => {
    const list = async (q: Parameters<PgMessageReads['listConversations']>[0]) => {
      const page = await reads.listConversations(q);
      return { ids: page.items.map((c) => c.id), total: page.total };
    };

    it('lists newest first, with the total of every match whatever the page', async () => {
      expect(await list({})).toEqual({ ids: ['conv-4', 'conv-3', 'conv-2', 'conv-1'], total: 4 });
      expect(await list({ limit: 2, offset: 1 })).toEqual({ ids: ['conv-3', 'conv-2'], total: 4 });
      expect(await list({ offset: 9 })).toEqual({ ids: [], total: 4 });
      expect((await reads.listConversations({ limit: 1 })).items[0]).toEqual(CONVERSATIONS[3]);
    });

    it('narrows by state', async () => {
      expect(await list({ state: 'in_progress' })).toEqual({ ids: ['conv-4', 'conv-2'], total: 2 });
      expect(await list({ state: 'expired' })).toEqual({ ids: [], total: 0 });
    });

    it('narrows by participant: a whole element of the list, case and all (SQLite json_each value = ?)', async () => {
      expect(await list({ participant: 'Worker-A' })).toEqual({ ids: ['conv-4', 'conv-3', 'conv-1'], total: 3 });
      expect(await list({ participant: 'worker-a' })).toEqual({ ids: ['conv-2'], total: 1 });
      expect(await list({ participant: 'Émile' })).toEqual({ ids: ['conv-3'], total: 1 });
      expect(await list({ participant: 'Worker' })).toEqual({ ids: [], total: 0 });
      expect(await list({ participant: 'Worker-A', state: 'in_progress' })).toEqual({ ids: ['conv-4'], total: 1 });
      expect(await list({ participant: 'Worker-A', limit: 1, offset: 1 })).toEqual({ ids: ['conv-3'], total: 3 });
      // An empty name is no filter, as in SQLite.
      expect((await list({ participant: '' })).total).toBe(4);
    });
  });

  describe('getMessage', () => {
    it('returns the message, its routing and its delivery rows in id order; undefined for an unknown id', async () => {
      expect(await reads.getMessage('m7')).toEqual({
        message: MESSAGES[6]!.message,
        routed_to: ['Worker-A', 'helper'],
        deliveries: [
          {
            id: dl('m7/Worker-A'),
            message_id: 'm7',
            receiver: 'Worker-A',
            state: 'dead',
            attempts: 3,
            next_at: 0,
            last_error: 'provider said 100 percent; ratexlimit',
            updated_at: at(206),
            attempt_errors: [{ at: at(206), error: 'provider said 100 percent; ratexlimit' }],
          },
          {
            id: dl('m7/helper'),
            message_id: 'm7',
            receiver: 'helper',
            state: 'dead',
            attempts: 3,
            next_at: 0,
            last_error: 'timeout after 30s at C:\\tmp',
            updated_at: at(206),
            attempt_errors: [{ at: at(206), error: 'timeout after 30s at C:\\tmp' }],
          },
        ],
      });
      expect((await reads.getMessage('m3'))!.deliveries.map((d) => [d.receiver, d.state, d.next_at])).toEqual([
        ['seller', 'dead', 0],
        ['worker-a', 'pending', T0 + 5000],
      ]);
      expect((await reads.getMessage('m2'))!.deliveries).toEqual([]);
      expect(await reads.getMessage('m-none')).toBeUndefined();
    });
  });

  describe('listMessages', () => {
    const list = async (q: Parameters<PgMessageReads['listMessages']>[0]) => {
      const page = await reads.listMessages(q);
      return { ids: ids(page.items), total: page.total };
    };

    it('lists newest first, with the total of every match whatever the page', async () => {
      expect(await list({})).toEqual({ ids: ['m9', 'm8', 'm7', 'm6', 'm5', 'm4', 'm3', 'm2', 'm1'], total: 9 });
      expect(await list({ limit: 2, offset: 1 })).toEqual({ ids: ['m8', 'm7'], total: 9 });
      expect((await reads.listMessages({ limit: 1, offset: 8 })).items).toEqual([
        { message: MESSAGES[0]!.message, routed_to: ['Worker-A'] },
      ]);
    });

    it('narrows by conversation and by performative (exact)', async () => {
      expect(await list({ conversation_id: 'conv-2' })).toEqual({ ids: ['m5', 'm4', 'm3'], total: 3 });
      expect(await list({ performative: 'propose' })).toEqual({ ids: ['m5', 'm4'], total: 2 });
      expect(await list({ performative: 'PROPOSE' })).toEqual({ ids: [], total: 0 });
    });

    it('narrows by sender in any ASCII case, as SQLite NOCASE (which leaves other letters as they are)', async () => {
      expect(await list({ sender: 'CLIENT' })).toEqual({ ids: ['m9', 'm7', 'm1'], total: 3 });
      expect(await list({ sender: 'ÉMILE' })).toEqual({ ids: ['m6'], total: 1 });
      expect(await list({ sender: 'émile' })).toEqual({ ids: [], total: 0 });
      expect(await list({ sender: 'client%' })).toEqual({ ids: [], total: 0 });
    });

    it('narrows by receiver: a delivery row to it in any ASCII case, not merely the routing', async () => {
      // m8 is routed to Worker-A without a delivery row; m3 went to "worker-a".
      expect(await list({ receiver: 'WORKER-A' })).toEqual({ ids: ['m7', 'm6', 'm3', 'm1'], total: 4 });
      expect(await list({ receiver: 'client' })).toEqual({ ids: [], total: 0 });
      expect(await list({ receiver: 'buyer', limit: 1 })).toEqual({ ids: ['m5'], total: 2 });
    });

    it('every filter given narrows together', async () => {
      expect(await list({ receiver: 'worker-a', conversation_id: 'conv-4' })).toEqual({ ids: ['m7'], total: 1 });
      expect(await list({ performative: 'request', receiver: 'helper' })).toEqual({ ids: ['m9', 'm7'], total: 2 });
      expect(await list({ performative: 'request', sender: 'client', conversation_id: 'conv-1' })).toEqual({
        ids: ['m1'],
        total: 1,
      });
      expect(await list({ performative: 'inform', sender: 'client' })).toEqual({ ids: [], total: 0 });
    });
  });

  describe('deadLetters', () => {
    const list = async (q: Parameters<PgMessageReads['deadLetters']>[0]) => {
      const page = await reads.deadLetters(q);
      return { ids: page.items.map((d) => d.id), total: page.total };
    };

    it('lists the dead delivery rows in id order with their messages, and the total whatever the page', async () => {
      const all = [dl('m3/seller'), dl('m6/Worker-A'), dl('m7/Worker-A'), dl('m7/helper')];
      expect(await list({})).toEqual({ ids: all, total: 4 });
      expect(await list({ limit: 2, offset: 1 })).toEqual({ ids: all.slice(1, 3), total: 4 });
      const first = (await reads.deadLetters({ limit: 1 })).items[0]!;
      expect(first).toMatchObject({
        id: dl('m3/seller'),
        receiver: 'seller',
        state: 'dead',
        attempts: 3,
        last_error: 'Seller Unreachable',
      });
      expect(first.message).toEqual(MESSAGES[2]!.message);
      expect(await reads.deadCount()).toBe(4);
    });

    it('narrows by text anywhere in the receiver, in any ASCII case', async () => {
      expect(await list({ receiver: 'ORKER' })).toEqual({ ids: [dl('m6/Worker-A'), dl('m7/Worker-A')], total: 2 });
      expect(await list({ receiver: 'elper' })).toEqual({ ids: [dl('m7/helper')], total: 1 });
      expect(await list({ receiver: 'nobody' })).toEqual({ ids: [], total: 0 });
    });

    it('narrows by text anywhere in the last error, taken literally: % and _ are not wildcards, nor is \\ an escape', async () => {
      // As wildcards, "100%" would also match "100 percent" and "rate_limit" "ratexlimit".
      expect(await list({ error: '100%' })).toEqual({ ids: [dl('m6/Worker-A')], total: 1 });
      expect(await list({ error: 'rate_limit' })).toEqual({ ids: [dl('m6/Worker-A')], total: 1 });
      expect(await list({ error: '%' })).toEqual({ ids: [dl('m6/Worker-A')], total: 1 });
      expect(await list({ error: '_' })).toEqual({ ids: [dl('m6/Worker-A')], total: 1 });
      expect(await list({ error: 'ratexlimit' })).toEqual({ ids: [dl('m7/Worker-A')], total: 1 });
      expect(await list({ error: 'C:\\tmp' })).toEqual({ ids: [dl('m7/helper')], total: 1 });
      expect(await list({ error: 'unreachable' })).toEqual({ ids: [dl('m3/seller')], total: 1 });
    });

    it('both filters narrow together', async () => {
      expect(await list({ receiver: 'worker', error: 'percent' })).toEqual({ ids: [dl('m7/Worker-A')], total: 1 });
      expect(await list({ receiver: 'seller', error: 'percent' })).toEqual({ ids: [], total: 0 });
    });
  });

  describe('deadLetter', () => {
    it('returns a dead letter with its message', async () => {
      const d = await reads.deadLetter(dl('m6/Worker-A'));
      expect(d).toMatchObject({
        id: dl('m6/Worker-A'),
        message_id: 'm6',
        receiver: 'Worker-A',
        state: 'dead',
        last_error: 'quota at 100% (rate_limit)',
        next_at: 0,
      });
      expect(d.message).toEqual(MESSAGES[5]!.message);
    });

    it('a row that is not dead, an unknown id, or no id at all is not_found, with the message MessageReads gives', async () => {
      for (const id of [dl('m3/worker-a'), dl('m1/Worker-A'), 99_999, Number.NaN, 1.5]) {
        await expect(reads.deadLetter(id)).rejects.toMatchObject({
          code: 'not_found',
          message: `no dead letter with id ${id}`,
          details: { id },
        });
      }
    });
  });

  it('lastMessagesOf gives the last n messages of a conversation, oldest first', async () => {
    expect(ids(await reads.lastMessagesOf('conv-4', 2))).toEqual(['m8', 'm9']);
    expect(ids(await reads.lastMessagesOf('conv-4', 10))).toEqual(['m7', 'm8', 'm9']);
    expect((await reads.lastMessagesOf('conv-2', 1))[0]).toEqual({
      message: MESSAGES[4]!.message,
      routed_to: ['buyer'],
    });
    expect(await reads.lastMessagesOf('conv-4', 0)).toEqual([]);
    expect(await reads.lastMessagesOf('conv-none', 5)).toEqual([]);
  });

  it('answers every filter as the SQLite store does over the same rows', async () => {
    const senders = ['client', 'CLIENT', 'Worker-A', 'worker-a', 'ÉMILE', 'émile', 'nobody'];
    const receivers = ['WORKER-A', 'helper', 'buyer', 'seller', 'client', 'Worker'];
    const messageFilters: MessageFilter[] = [
      {},
      ...['conv-1', 'conv-2', 'conv-4', 'conv-none'].map((conversation_id) => ({ conversation_id })),
      ...['request', 'inform', 'propose', 'cfp', 'agree'].map((performative) => ({ performative })),
      ...senders.map((sender) => ({ sender })),
      ...receivers.map((receiver) => ({ receiver })),
      ...senders.flatMap((sender) => receivers.map((receiver) => ({ sender, receiver, performative: 'request' }))),
    ];
    for (const f of messageFilters) {
      for (const [limit, offset] of [
        [50, 0],
        [2, 1],
      ] as const) {
        const want = lite.listMessages(f, limit, offset);
        expect(await reads.listMessages({ ...f, limit, offset }), JSON.stringify(f)).toEqual(want);
      }
    }
    const words = [
      'worker',
      'ORKER',
      'a',
      '-',
      '%',
      '_',
      '100%',
      'rate_limit',
      '\\',
      'C:\\t',
      'UNREACH',
      'percent',
      'x',
      '',
    ];
    const deadFilters: DeadLetterFilter[] = [
      {},
      ...words.map((receiver) => ({ receiver })),
      ...words.map((error) => ({ error })),
      ...words.map((w) => ({ receiver: 'worker', error: w })),
    ];
    for (const f of deadFilters) {
      const rows = lite.deadLetters(50, 0, f);
      const want = { ...rows, items: rows.items.map(deliveryView) };
      const got = await reads.deadLetters({ ...f, limit: 50 });
      expect({ total: got.total, items: got.items.map(({ message: _, ...row }) => row) }, JSON.stringify(f)).toEqual(
        want,
      );
      expect(got.items.map((d) => d.message)).toEqual(want.items.map((d) => lite.getMessage(d.message_id)!.message));
    }
    for (const state of [undefined, 'in_progress', 'completed', 'failed'] as const) {
      for (const participant of [undefined, '', 'Worker-A', 'worker-a', 'client', 'Émile', 'émile', 'Worker']) {
        const q = { ...(state && { state }), ...(participant !== undefined && { participant }) };
        expect(await reads.listConversations({ ...q, limit: 50, offset: 0 }), JSON.stringify(q)).toEqual(
          lite.listConversations({ ...q, limit: 50, offset: 0 }),
        );
      }
    }
    for (const c of CONVERSATIONS) {
      expect((await reads.getConversation(c.id, { limit: 2, offset: 1 })).messages).toEqual(
        lite.messagesOf(c.id, 2, 1),
      );
      expect((await reads.lastMessagesOf(c.id, 2)).map((s) => s.message)).toEqual(lite.lastMessagesOf(c.id, 2));
    }
    for (const { message } of MESSAGES)
      expect((await reads.getMessage(message.id))!.deliveries).toEqual(lite.deliveriesOf(message.id).map(deliveryView));
    expect(await reads.deadCount()).toBe(lite.deadCount());
  });

  it('an agents scope narrows messages, dead letters and conversations as the read rule does, in both stores and on every page', async () => {
    const scopes: (readonly string[])[] = [
      [],
      ['*'],
      ['Worker-*'],
      ['worker-*', 'client', 'buyer', 'seller'],
      ['client', 'Worker-A', 'helper', 'Client'],
      ['C*', 'h?lper', 'Émile', 'Worker-A'],
      ['*-A', 'client', 'helper', 'Émile', 'buyer', 'seller', 'worker-a'],
      ['%', '_lient', 'Worker-A'],
    ];
    for (const agents of scopes) {
      const reader = { scope: { agents } };
      const tag = JSON.stringify(agents);
      const messages = lite.listMessages({}, 1000, 0).items.filter((m) => messageVisible(reader, m));
      for (const [limit, offset] of [
        [50, 0],
        [2, 1],
      ] as const) {
        const want = { items: messages.slice(offset, offset + limit), total: messages.length };
        expect(lite.listMessages({ agents }, limit, offset), tag).toEqual(want);
        expect(await reads.listMessages({ agents, limit, offset }), tag).toEqual(want);
      }
      const conversations = lite
        .listConversations({ limit: 1000, offset: 0 })
        .items.filter((c) => conversationVisible(reader, c));
      expect(lite.listConversations({ agents, limit: 1, offset: 1 }), tag).toEqual({
        items: conversations.slice(1, 2),
        total: conversations.length,
      });
      expect(await reads.listConversations({ agents, limit: 50, offset: 0 }), tag).toEqual({
        items: conversations,
        total: conversations.length,
      });
      const dead = lite
        .deadLetters(1000, 0)
        .items.filter((d) => messageVisible(reader, lite.getMessage(d.message_id)!));
      expect(lite.deadLetters(50, 0, { agents }), tag).toEqual({ items: dead, total: dead.length });
      const got = await reads.deadLetters({ agents, limit: 50 });
      expect({ total: got.total, items: got.items.map(({ message: _, ...row }) => row) }, tag).toEqual({
        items: dead.map(deliveryView),
        total: dead.length,
      });
    }
    // Content holding NUL (JSON \u0000, which PostgreSQL will not read as JSON) and its escaped spelling.
    const nul = sent(10, 5, 'inform', 'helper', ['Worker-A']);
    const odd = { ...nul.message, content: 'a\u0000b \\u0000 \\\u0000' } as AclMessage;
    await store.inConversation(odd.conversation_id, (s) => s.insertMessage(odd, ['Worker-A']));
    lite.insertMessage(odd, ['Worker-A']);
    for (const agents of [['helper', 'Worker-A'], ['helper']]) {
      const want = lite.listMessages({ agents, conversation_id: 'conv-5' }, 50, 0);
      expect(want.total).toBe(agents.length === 2 ? 1 : 0);
      expect(await reads.listMessages({ agents, conversation_id: 'conv-5' }), JSON.stringify(agents)).toEqual(want);
    }
  });

  it('each filter is an index lookup on the indexes of cluster-messaging-003', async () => {
    // The queries as PgMessageReads sends them, explained with sequential scans off: a filter whose
    // expression differs from its index's (the ASCII fold) would fall back to a full index scan.
    const sent: { text: string; args: unknown[] }[] = [];
    const spy = {
      query: (text: string, args?: unknown[]) => (sent.push({ text, args: args ?? [] }), pool.query(text, args)),
      connect: async () => {
        const c = await pool.connect();
        return Object.assign(Object.create(c) as pg.PoolClient, {
          query: (text: string, args?: unknown[]) => (sent.push({ text, args: args ?? [] }), c.query(text, args)),
          release: (e?: Error) => c.release(e),
        });
      },
    };
    const spied = new PgMessageReads({
      store: { pool: spy, quotedSchema: store.quotedSchema } as unknown as PgMessageStore,
    });
    const plan = async (read: () => Promise<unknown>): Promise<string> => {
      sent.length = 0;
      await read();
      const count = sent.find((q) => q.text.startsWith('SELECT count(*)'))!;
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        await c.query('SET LOCAL enable_seqscan = off');
        const rows = (await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${count.text}`, count.args)).rows;
        return rows.map((r) => r['QUERY PLAN']).join('\n');
      } finally {
        await c.query('ROLLBACK');
        c.release();
      }
    };
    expect(await plan(() => spied.listMessages({ sender: 'CLIENT' }))).toContain('messages_sender_folded');
    expect(await plan(() => spied.listMessages({ performative: 'propose' }))).toContain('messages_performative');
    expect(await plan(() => spied.listMessages({ receiver: 'Worker-A' }))).toContain('deliveries_receiver_folded');
    expect(await plan(() => spied.listConversations({ participant: 'Worker-A' }))).toContain(
      'conversations_participants',
    );
  });
});
