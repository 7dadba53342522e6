/**
 * The SQLite step store under the delivery engine, over a real SQLite file: a step answers its
 * reads and writes at once (no promise, so the engine never suspends for them), its writes land
 * with its commit, and a step that touches several delivery rows keeps each one apart. A step
 * returning a value runs within the call (`inConversationNow`); `drive` runs a step body that way.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { drive, type StepBody } from '../../src/messaging/engine/step-work.js';
import { GroupCommit } from '../../src/storage/group-commit.js';
import { type Conversation, type ConversationId, type MessageId } from '../../src/messaging/index.js';
import { MESSAGING_MIGRATIONS, SqliteSteps } from '../../src/messaging/sqlite/index.js';
import type { DeliveryRow } from '../../src/messaging/rows.js';
import { MessageStore } from '../../src/messaging/sqlite/index.js';
import { migrate, openDatabase, type Db } from '../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { aclMessage } from './helpers.js';

let db: Db;
let store: MessageStore;
let steps: SqliteSteps;

beforeEach(() => {
  db = openDatabase(makeTempDir('caxton-steps-'));
  migrate(db, MESSAGING_MIGRATIONS);
  store = new MessageStore(db);
  const commit = new GroupCommit(
    db,
    () => steps.saveDirty(),
    () => steps.committed(),
  );
  steps = new SqliteSteps(store, commit);
  steps.load(() => {});
});

afterEach(() => {
  db.close();
  removeTempDirs();
});

const NOW = '2026-01-01T00:00:00.000Z';

function conversation(id: string): Conversation {
  return {
    id: id as ConversationId,
    protocol: null,
    state: 'initiated',
    initiator: 'user',
    participants: ['user', 'a', 'b'],
    capability: null,
    turns: 1,
    max_turns: 100,
    created_at: NOW,
    updated_at: NOW,
    expires_at: null,
    reason: null,
  };
}

describe('SqliteSteps', () => {
  it('answers a step’s reads and writes at once, and writes them with its commit', async () => {
    const m = aclMessage({ receivers: ['a'] });
    const answers: unknown[] = [];
    const id = await steps.inConversation(m.conversation_id, (s) => {
      answers.push(s.insertMessage(m, ['a']));
      const d = s.insertDelivery(m.id, 'a', NOW);
      answers.push(d, s.outstanding(), s.saveConversation(conversation(m.conversation_id)));
      // Nothing is on disk before the step's commit.
      expect(store.getDelivery(d as number)).toBeUndefined();
      return Promise.resolve(d as number);
    });
    expect(answers.some((a) => a instanceof Promise)).toBe(false);
    expect(answers[1]).toBe(id);
    expect(answers[2]).toBe(1);
    expect(store.getDelivery(id)).toMatchObject({ state: 'pending', receiver: 'a', message_id: m.id });
    expect(store.getMessage(m.id)?.routed_to).toEqual(['a']);
    expect(store.getConversation(m.conversation_id)?.state).toBe('initiated');
    // The next step reads the pending row from memory, as the commit left it.
    await steps.inConversation(m.conversation_id, (s) => {
      expect(s.delivery(id)).toMatchObject({ id, state: 'pending', receiver: 'a' });
      return Promise.resolve();
    });
  });

  it('keeps each delivery row a step touches apart: one acknowledged, one retried, one dead', async () => {
    const m = aclMessage({ receivers: ['a', 'b', 'c'] });
    const ids = await steps.inConversation(m.conversation_id, (s) => {
      void s.insertMessage(m, ['a', 'b', 'c']);
      const out = ['a', 'b', 'c'].map((r) => s.insertDelivery(m.id, r, NOW) as number);
      void s.saveConversation(conversation(m.conversation_id));
      return Promise.resolve(out);
    });
    const [a, b, c] = ids as [number, number, number];
    await steps.inConversation(m.conversation_id, (s) => {
      void s.setDelivery(b, { state: 'pending', attempts: 1, next_at: 5, last_error: 'busy' }, NOW);
      void s.setDelivery(a, { state: 'done', attempts: 1 }, NOW);
      void s.setDelivery(c, { state: 'dead', attempts: 3, last_error: 'gone' }, NOW);
      // Read back within the step: each row as it was first read, never another's.
      expect(s.delivery(a)).toMatchObject({ id: a, receiver: 'a', state: 'pending' });
      expect(s.delivery(b)).toMatchObject({ id: b, receiver: 'b' });
      expect(s.outstanding()).toBe(1);
      return Promise.resolve();
    });
    expect(store.getDelivery(a)).toMatchObject({ state: 'done', attempts: 1 });
    expect(store.getDelivery(b)).toMatchObject({ state: 'pending', attempts: 1, next_at: 5, last_error: 'busy' });
    expect(store.getDelivery(c)).toMatchObject({ state: 'dead', attempts: 3, last_error: 'gone' });
    // The next step reads the retried row as the last step left it, from memory.
    await steps.inConversation(m.conversation_id, (s) => {
      expect(s.delivery(b)).toMatchObject({ state: 'pending', attempts: 1, next_at: 5 });
      expect(s.delivery(a)).toMatchObject({ state: 'done' });
      return Promise.resolve();
    });
  });

  it('lists a step’s messages until its commit, and a failed step’s never', async () => {
    const conv = 'conv_list' as ConversationId;
    const first = aclMessage({ conversation_id: conv } as never);
    const m1 = { ...first, id: 'msg_a' as MessageId, conversation_id: conv };
    const m2 = { ...first, id: 'msg_b' as MessageId, conversation_id: conv };
    await steps.inConversation(conv, async (s) => {
      void s.insertMessage(m1, []);
      void s.insertMessage(m2, []);
      void s.saveConversation(conversation(conv));
      expect((await s.messages()).map((x) => x.message.id)).toEqual(['msg_a', 'msg_b']);
    });
    await expect(
      steps.inConversation(conv, (s) => {
        void s.insertMessage({ ...m1, id: 'msg_c' as MessageId }, []);
        return Promise.reject(new Error('refused'));
      }),
    ).rejects.toThrow('refused');
    await steps.inConversation(conv, async (s) => {
      expect((await s.messages()).map((x) => x.message.id)).toEqual(['msg_a', 'msg_b']);
    });
  });

  it('runs a step that returns a value within the call, and the next step of its conversation after it', async () => {
    const m = aclMessage({ receivers: ['a'] });
    const order: string[] = [];
    const first = steps.inConversationNow(m.conversation_id, (s) => {
      order.push('first');
      void s.insertMessage(m, ['a']);
      void s.saveConversation(conversation(m.conversation_id));
      return s.insertDelivery(m.id, 'a', NOW) as number;
    });
    // Ran already; its commit has not landed yet.
    expect(order).toEqual(['first']);
    expect(store.getMessage(m.id)).toBeUndefined();
    let inner = 0;
    const holding = steps.inConversationNow(m.conversation_id, async () => {
      order.push('holding');
      await new Promise((r) => setTimeout(r, 10));
      inner++;
      return 'held';
    });
    // The conversation is held by a step that returned a promise: the next one waits its turn.
    const after = steps.inConversationNow(m.conversation_id, (s) => {
      order.push('after');
      expect(inner).toBe(1);
      return (s.delivery(1) as DeliveryRow | undefined)?.state;
    });
    expect(order).toEqual(['first', 'holding']);
    const id = await first;
    expect(store.getDelivery(id)).toMatchObject({ state: 'pending', receiver: 'a' });
    await expect(holding).resolves.toBe('held');
    await expect(after).resolves.toBe('pending');
    expect(order).toEqual(['first', 'holding', 'after']);
  });

  it('undoes a step that throws within the call: nothing of it is written or kept', async () => {
    const conv = 'conv_throw' as ConversationId;
    const m = { ...aclMessage({ conversation_id: conv } as never), conversation_id: conv };
    await expect(
      steps.inConversationNow(conv, (s) => {
        void s.insertMessage(m, []);
        void s.insertDelivery(m.id, 'a', NOW);
        void s.saveConversation(conversation(conv));
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    expect(steps.outstanding(conv)).toBe(0);
    expect(steps.conversation(conv)).toBeUndefined();
    // The conversation is free again, and the store holds nothing of the failed step.
    await steps.inConversationNow(conv, (s) => {
      expect(s.conversation).toBeUndefined();
      return undefined;
    });
    expect(store.getMessage(m.id)).toBeUndefined();
  });

  it('keeps a one-way conversation with its message: its row is written once, by the step that ends it', async () => {
    const m = aclMessage({ receivers: ['a'] });
    const opened = { ...conversation(m.conversation_id), participants: ['user', 'a'] };
    await steps.inConversationNow(m.conversation_id, (s) => {
      void s.insertMessage(m, ['a'], opened);
      void s.insertDelivery(m.id, 'a', NOW);
      return undefined;
    });
    expect(store.getMessage(m.id)?.routed_to).toEqual(['a']);
    expect(store.getConversation(m.conversation_id)).toBeUndefined();
    // Open in memory, dated by its message.
    expect(steps.conversation(m.conversation_id)).toMatchObject({ state: 'initiated', created_at: m.timestamp });
    expect(steps.open.size).toBe(1);
    await steps.inConversationNow(m.conversation_id, (s) => {
      const c = s.conversation!;
      c.state = 'completed';
      void s.saveConversation(c);
      return undefined;
    });
    expect(store.getConversation(m.conversation_id)).toMatchObject({ state: 'completed', created_at: m.timestamp });
    expect(steps.open.size).toBe(0);
  });

  it('writes the rows of kept conversations for a read of the table, and keeps none of a failed step', async () => {
    const kept = aclMessage({ receivers: ['a'] });
    await steps.inConversationNow(kept.conversation_id, (s) => {
      void s.insertMessage(kept, ['a'], conversation(kept.conversation_id));
      return undefined;
    });
    const failed = { ...aclMessage({ receivers: ['a'] }), conversation_id: 'conv_failed' as ConversationId };
    await expect(
      steps.inConversationNow(failed.conversation_id, (s) => {
        void s.insertMessage(failed, ['a'], conversation(failed.conversation_id));
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    expect(steps.conversation(failed.conversation_id)).toBeUndefined();
    await steps.writeKept();
    expect(store.getConversation(kept.conversation_id)?.state).toBe('initiated');
    expect(store.getConversation(failed.conversation_id)).toBeUndefined();
    expect(store.listConversations({ limit: 10, offset: 0 }).total).toBe(1);
  });
});

describe('drive', () => {
  it('runs a body whose answers are values as one call, and continues after a promise', async () => {
    function* body(answers: unknown[]): StepBody<unknown[]> {
      const got: unknown[] = [];
      for (const a of answers) got.push(yield a);
      return got;
    }
    expect(drive(body([1, 'two', undefined]))).toEqual([1, 'two', undefined]);
    const later = drive(body([1, Promise.resolve(2), 3]));
    expect(later).toBeInstanceOf(Promise);
    await expect(later).resolves.toEqual([1, 2, 3]);
  });

  it('throws a rejected answer where the body yielded it', async () => {
    function* body(): StepBody<string> {
      try {
        yield Promise.reject(new Error('store away'));
        return 'not reached';
      } catch (e) {
        const next = yield Promise.resolve('after');
        return `${(e as Error).message}, then ${String(next)}`;
      }
    }
    await expect(drive(body())).resolves.toBe('store away, then after');
    function* uncaught(): StepBody<void> {
      yield Promise.reject(new Error('refused'));
    }
    await expect(drive(uncaught())).rejects.toThrow('refused');
  });
});
