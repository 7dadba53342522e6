/**
 * Retention by age and count for finished conversations (with their messages and
 * deliveries), dead letters and the tool audit, over real SQLite files. Nothing undelivered,
 * dead-lettered (within its own retention) or open is ever deleted, and the file shrinks.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { MessageHandler } from '../../src/messaging/index.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { openDatabase } from '../../src/storage/index.js';
import { ToolAuditStore } from '../../src/audit/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import { agentDef, deploy, openBus, type TestBus } from './helpers.js';

const open: TestBus[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close();
  removeTempDirs();
});

function start(opts: Parameters<typeof openBus>[0]): TestBus {
  const t = openBus(opts);
  open.push(t);
  t.bus.start();
  return t;
}

const count = (t: TestBus, sql: string) => t.db.prepare(sql).pluck().get() as number;

describe('messaging retention', () => {
  it('keeps at most max_conversations finished conversations, never an open one or an undelivered message', async () => {
    let hold = true;
    const handler: MessageHandler = async (m) => {
      if (m.content === 'hold') while (hold) await new Promise((r) => setTimeout(r, 10));
      return { content: 'ok' };
    };
    const t = start({ handler, config: { max_conversations: 50, max_messages: 1_000_000 } });
    deploy(t.registry, agentDef('worker', ['work']));
    const held = await t.bus.submit({
      performative: 'request',
      protocol: 'fipa-request',
      receiver: 'worker',
      content: 'hold',
    });
    const ids: string[] = [];
    for (let i = 0; i < 200; i++)
      ids.push(
        (
          await t.bus.submit({
            performative: 'request',
            protocol: 'fipa-request',
            receiver: 'worker',
            content: `job ${i}`,
          })
        ).conversation_id,
      );
    await waitUntil(async () => (await t.bus.reads.getConversation(ids.at(-1)!)).conversation.state === 'completed', {
      timeoutMs: 10_000,
    });
    await t.bus.settled();
    await t.bus.applyRetention();
    expect(count(t, "SELECT count(*) FROM conversations WHERE state = 'completed'")).toBe(50);
    // The newest are kept, with all their messages (request, agree, inform) and deliveries.
    const kept = await t.bus.reads.getConversation(ids.at(-1)!);
    expect(kept.messages.map((s) => s.message.performative)).toEqual(['request', 'agree', 'inform']);
    await expect(t.bus.reads.getConversation(ids[0]!)).rejects.toMatchObject({ code: 'conversation_not_found' });
    expect(count(t, 'SELECT count(*) FROM messages')).toBe(50 * 3 + 1);
    expect(count(t, 'SELECT count(*) FROM deliveries')).toBe(51);
    // The held one (oldest of all, still being delivered) is there, with its pending delivery.
    expect((await t.bus.reads.getConversation(held.conversation_id)).conversation.state).not.toBe('completed');
    expect(count(t, "SELECT count(*) FROM deliveries WHERE state = 'pending'")).toBe(1);
    hold = false;
    await waitUntil(
      async () => (await t.bus.reads.getConversation(held.conversation_id)).conversation.state === 'completed',
      { timeoutMs: 5000 },
    );
  });

  it('keeps at most max_messages messages, deleting the oldest finished conversations', async () => {
    const t = start({ handler: () => ({ content: 'ok' }), config: { max_conversations: 1_000_000, max_messages: 90 } });
    deploy(t.registry, agentDef('worker', ['work']));
    let last = '';
    for (let i = 0; i < 100; i++)
      last = (
        await t.bus.submit({
          performative: 'request',
          protocol: 'fipa-request',
          receiver: 'worker',
          content: `job ${i}`,
        })
      ).conversation_id;
    await waitUntil(async () => (await t.bus.reads.getConversation(last)).conversation.state === 'completed', {
      timeoutMs: 10_000,
    });
    await t.bus.settled();
    await t.bus.applyRetention();
    const messages = count(t, 'SELECT count(*) FROM messages');
    expect(messages).toBeLessThanOrEqual(90);
    expect(messages).toBeGreaterThan(90 - 3 * 62); // at most one batch of conversations past the limit
    expect(
      count(
        t,
        'SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = m.conversation_id)',
      ),
    ).toBe(0);
  });

  it('deletes finished conversations idle longer than the retention, and dead letters past theirs (then their conversation)', async () => {
    const t = start({
      handler: (m) => {
        if (m.content === 'fail') throw new CaxtonError('invalid_request', 'cannot do that');
        return { content: 'ok' };
      },
      config: { retention: 60_000, dead_letter_retention: 120_000, max_attempts: 1 },
    });
    deploy(t.registry, agentDef('worker', ['work']));
    const done = await t.bus.submit({
      performative: 'request',
      protocol: 'fipa-request',
      receiver: 'worker',
      content: 'ok',
    });
    const dead = await t.bus.submit({
      performative: 'request',
      protocol: 'fipa-request',
      receiver: 'worker',
      content: 'fail',
    });
    await waitUntil(
      async () =>
        (await t.bus.reads.deadLetters()).total === 1 &&
        (await t.bus.reads.getConversation(done.conversation_id)).conversation.state === 'completed',
      { timeoutMs: 5000 },
    );
    await t.bus.settled();
    await t.bus.applyRetention();
    expect(count(t, 'SELECT count(*) FROM conversations')).toBe(2); // nothing is old yet
    // Ninety seconds later (as the store sees it): past the retention, not past the dead letters'.
    const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
    t.db.prepare('UPDATE conversations SET updated_at = ?').run(ago(90_000));
    t.db.prepare('UPDATE deliveries SET updated_at = ?').run(ago(90_000));
    await t.bus.applyRetention();
    await expect(t.bus.reads.getConversation(done.conversation_id)).rejects.toMatchObject({
      code: 'conversation_not_found',
    });
    expect((await t.bus.reads.getConversation(dead.conversation_id)).conversation.state).toBe('failed');
    expect((await t.bus.reads.deadLetters()).total).toBe(1);
    // Past the dead letters' retention too: the dead letter goes, and with it its finished conversation.
    t.db.prepare('UPDATE deliveries SET updated_at = ?').run(ago(130_000));
    await t.bus.applyRetention();
    expect((await t.bus.reads.deadLetters()).total).toBe(0);
    expect(count(t, 'SELECT count(*) FROM conversations')).toBe(0);
    expect(count(t, 'SELECT count(*) FROM messages')).toBe(0);
  });

  it('keeps at most max_dead_letters dead letters, the newest', async () => {
    const t = start({
      handler: () => {
        throw new CaxtonError('invalid_request', 'no');
      },
      config: { max_dead_letters: 5, max_attempts: 1 },
    });
    deploy(t.registry, agentDef('worker', ['work']));
    for (let i = 0; i < 12; i++)
      await t.bus.submit({ performative: 'request', protocol: 'fipa-request', receiver: 'worker', content: `j${i}` });
    await waitUntil(async () => (await t.bus.reads.deadLetters()).total === 12, { timeoutMs: 5000 });
    await t.bus.settled();
    await t.bus.applyRetention();
    const page = await t.bus.reads.deadLetters({ limit: 50 });
    expect(page.total).toBe(5);
    expect(page.items.map((d) => d.message.content)).toEqual(['j7', 'j8', 'j9', 'j10', 'j11']);
  });

  it('gives the freed pages back: the file shrinks after pruning (auto_vacuum = INCREMENTAL)', async () => {
    const t = start({ handler: () => ({ content: 'ok' }), config: { max_conversations: 1_000_000 } });
    expect(t.db.pragma('auto_vacuum', { simple: true })).toBe(2);
    deploy(t.registry, agentDef('worker', ['work']));
    let last = '';
    const big = 'x'.repeat(20_000);
    for (let i = 0; i < 300; i++)
      last = (await t.bus.submit({ performative: 'inform', receiver: 'worker', content: big })).conversation_id;
    await waitUntil(async () => (await t.bus.reads.getConversation(last)).conversation.state === 'completed', {
      timeoutMs: 10_000,
    });
    await t.bus.settled();
    t.db.pragma('wal_checkpoint(TRUNCATE)');
    const file = join(t.dir, 'caxton.db');
    const full = statSync(file).size;
    expect(full).toBeGreaterThan(300 * 20_000);
    t.db.prepare('UPDATE conversations SET updated_at = ?').run('2000-01-01T00:00:00.000Z');
    await t.bus.applyRetention();
    t.db.pragma('wal_checkpoint(TRUNCATE)');
    expect(count(t, 'SELECT count(*) FROM messages')).toBe(0);
    expect(statSync(file).size).toBeLessThan(full / 10);
  });
});

describe('tool audit retention', () => {
  it('deletes records past the retention and the oldest beyond max_rows, in batches', async () => {
    const db = openDatabase(makeTempDir('caxton-audit-'));
    const store = new ToolAuditStore(db, { retentionMs: 60_000, maxRows: 1_000 });
    const rec = (time: number, i: number) => ({
      time,
      agent: 'a',
      server: 's',
      tool: 's.t',
      args_digest: String(i),
      outcome: 'ok' as const,
      duration_us: 1,
      fuel_used: 1,
      memory_bytes: 1,
      input_bytes: 1,
      output_bytes: 1,
    });
    for (let i = 0; i < 700; i++) store.record(rec(Date.now() - 3_600_000, i));
    for (let i = 0; i < 2_500; i++) store.record(rec(Date.now(), 1000 + i));
    // Recording pokes the pruner every max_rows / 10 records (it may have run already); prune() runs it to the end.
    await store.prune();
    expect(db.prepare('SELECT count(*) FROM tool_audit').pluck().get()).toBe(1_000);
    const left = store.query({ limit: 1000 });
    expect(left).toHaveLength(1000);
    expect(left[0]!.args_digest).toBe('3499');
    expect(left.at(-1)!.args_digest).toBe('2500');
    store.close();
    db.close();
  });
});
