/**
 * The bus contract's retry and dead-letter cases: retries with backoff, dead letters, replay and
 * reroute.
 */
import { describe, expect } from 'vitest';
import { type BusEvent, type InProcessHandler } from '../../../src/messaging/index.js';
import { describeError, httpStatusFor } from '../../../src/shared/errors.js';
import { waitUntil } from '../../helpers/wait.js';
import { agentDef, deploy } from '../helpers.js';
import { WAIT_MS, errorOf, held, overloaded, type Harness } from './contract-kit.js';

export function retryCases(h: Harness): void {
  const { start, hold, kept, conversation, acts } = h;
  describe('retry and dead letters', () => {
    kept('retry')(
      'a retryable failure is retried: the handler sees attempts 0, 1, 2 and the third answers',
      async () => {
        const attempts: number[] = [];
        const t = await start({
          agents: [['worker', ['work']]],
          config: { retry_base: 20, max_attempts: 5 },
          handlers: {
            worker: (_m, _r, ctx) => {
              attempts.push(ctx.delivery.attempts);
              if (attempts.length < 3) throw overloaded();
              return { content: 'third time lucky' };
            },
          },
        });
        const r = await t.bus.submit({
          performative: 'request',
          sender: 'client',
          receiver: 'worker',
          content: 'flaky',
        });
        const { conversation: c, messages } = await conversation(t.bus, r.conversation_id);
        expect(c.state).toBe('completed');
        expect(attempts).toEqual([0, 1, 2]);
        expect(acts(messages)).toEqual(['request:client', 'agree:worker', 'inform:worker']);
        expect((await t.bus.reads.getMessage(r.id))?.deliveries.map((d) => [d.state, d.attempts])).toEqual([
          ['done', 3],
        ]);
        expect((await t.bus.reads.deadLetters()).total).toBe(0);
      },
    );

    kept('backoff')(
      'a retry waits its backoff: the row says when, and a later message to the agent runs first',
      async () => {
        const order: string[] = [];
        const retryBase = 2_000;
        const t = await start({
          agents: [['worker', ['work']]],
          config: { retry_base: retryBase, max_attempts: 3 },
          handlers: {
            worker: (m, _r, ctx) => {
              order.push(`${String(m.content)}#${ctx.delivery.attempts}`);
              if (m.content === 'A' && ctx.delivery.attempts === 0) throw overloaded();
              return { content: 'ok' };
            },
          },
        });
        const before = Date.now();
        const a = await t.bus.submit({ performative: 'request', sender: 'client', receiver: 'worker', content: 'A' });
        const { value: row } = await waitUntil(
          async () => (await t.bus.reads.getMessage(a.id))?.deliveries.find((d) => d.attempts === 1),
          { what: 'the failed attempt' },
        );
        expect(row).toMatchObject({ state: 'pending', attempts: 1, last_error: describeError(overloaded()) });
        // Jittered within ±20 % of retry_base after the failure, which came after `before`.
        expect(row.next_at).toBeGreaterThanOrEqual(before + retryBase * 0.8);
        const b = await t.bus.submit({ performative: 'request', sender: 'client', receiver: 'worker', content: 'B' });
        await conversation(t.bus, b.conversation_id);
        await conversation(t.bus, a.conversation_id);
        expect(order).toEqual(['A#0', 'B#0', 'A#1']);
      },
    );

    kept('stats-retrying')('stats: a delivery waiting for its retry counts as retrying, not queued', async () => {
      const t = await start({
        agents: [['worker', ['work']]],
        config: { retry_base: 10_000, max_attempts: 3 },
        handlers: { worker: () => Promise.reject(overloaded()) },
      });
      const r = await t.bus.submit({
        performative: 'request',
        sender: 'client',
        receiver: 'worker',
        content: 'later',
      });
      await waitUntil(async () => (await t.bus.reads.getMessage(r.id))?.deliveries[0]?.attempts === 1, {
        what: 'the failed attempt',
      });
      expect(t.bus.stats()).toMatchObject({ queued: 0, running: 0, retrying: 1, dead_letters: 0 });
    });

    kept('dead-letter')(
      'max attempts: the delivery is a dead letter with the reason, the conversation failed with a failure reply',
      async () => {
        const attempts: number[] = [];
        const t = await start({
          agents: [['worker', ['work']]],
          config: { retry_base: 20, max_attempts: 3 },
          handlers: {
            worker: (_m, _r, ctx) => {
              attempts.push(ctx.delivery.attempts);
              throw overloaded();
            },
          },
        });
        const events: BusEvent[] = [];
        t.bus.on('event', (e) => events.push(e));
        const r = await t.bus.submit({
          performative: 'request',
          sender: 'client',
          receiver: 'worker',
          content: 'doomed',
        });
        const why = `delivery to "worker" failed 3 times; last error: ${describeError(overloaded())}`;
        const { conversation: c, messages } = await conversation(t.bus, r.conversation_id);
        expect(c).toMatchObject({ state: 'failed', reason: why });
        expect(attempts).toEqual([0, 1, 2]);
        const dead = await t.bus.reads.deadLetters();
        expect(dead.total).toBe(1);
        expect(dead.items[0]).toMatchObject({
          message_id: r.id,
          receiver: 'worker',
          state: 'dead',
          attempts: 3,
          last_error: why,
        });
        expect(acts(messages)).toEqual(['request:client', 'failure:caxton']);
        expect(messages[1]!.message.content).toEqual({
          reason: 'undeliverable',
          message: why,
          dead_letter: dead.items[0]!.id,
        });
        expect(await t.bus.reads.deadLetter(dead.items[0]!.id)).toMatchObject({
          id: dead.items[0]!.id,
          message: { id: r.id },
        });
        // Each attempt's error with its time, oldest first; the last is the dead-lettering's.
        const tried = dead.items[0]!.attempt_errors;
        expect(tried.map((a) => a.error)).toEqual([describeError(overloaded()), describeError(overloaded()), why]);
        const times = tried.map((a) => Date.parse(a.at));
        expect(times.every((at) => Number.isFinite(at))).toBe(true);
        expect([...times].sort((a, b) => a - b)).toEqual(times);
        expect((await t.bus.reads.getMessage(r.id))?.deliveries[0]?.attempt_errors).toEqual(tried);
        const mine = events.filter((e) => e.conversation_id === r.conversation_id);
        expect(
          mine.flatMap((e) => (e.type === 'message' ? [`${e.message.performative}:${e.message.sender}`] : [])),
        ).toEqual(['request:client', 'failure:caxton']);
        expect(mine.filter((e) => e.type === 'state').at(-1)).toMatchObject({
          conversation: { state: 'failed', reason: why },
        });

        // Purged: the dead letter goes, and its conversation with it (nothing of it is pending or dead).
        const target = { id: dead.items[0]!.id, conversation_id: r.conversation_id };
        expect(await t.bus.discard([target], { purge: true })).toEqual({ discarded: [target.id], conversations: 1 });
        expect((await t.bus.reads.deadLetters()).total).toBe(0);
        expect((await errorOf(t.bus.reads.getConversation(r.conversation_id))).code).toBe('conversation_not_found');
        expect(await t.bus.discard([target])).toEqual({ discarded: [], conversations: 0 });
      },
    );

    kept('replay')(
      'replay of a dead letter delivers it again and completes its conversation; a second replay finds no dead letter',
      async () => {
        let healthy = false;
        const t = await start({
          agents: [['worker', ['work']]],
          config: { retry_base: 20, max_attempts: 2 },
          handlers: {
            worker: () => {
              if (!healthy) throw overloaded();
              return { content: 'back again' };
            },
          },
        });
        const r = await t.bus.submit({
          performative: 'request',
          sender: 'client',
          receiver: 'worker',
          content: 'later',
        });
        expect((await t.bus.wait(r.conversation_id, WAIT_MS)).state).toBe('failed');
        const [dead] = (await t.bus.reads.deadLetters()).items;
        healthy = true;
        expect(await t.bus.replay(dead!.id)).toEqual({ id: dead!.id, message_id: r.id, receiver: 'worker' });
        const { conversation: c, messages } = await conversation(t.bus, r.conversation_id);
        expect(c).toMatchObject({ state: 'completed' });
        expect(acts(messages)).toEqual(['request:client', 'failure:caxton', 'agree:worker', 'inform:worker']);
        expect(messages[3]!.message.content).toBe('back again');
        expect((await t.bus.reads.deadLetters()).total).toBe(0);
        expect((await t.bus.reads.getMessage(r.id))?.deliveries.map((d) => [d.state, d.attempts])).toEqual([
          ['done', 1],
        ]);
        const again = await errorOf(t.bus.replay(dead!.id));
        expect([again.code, httpStatusFor(again.code), again.message]).toEqual([
          'not_found',
          404,
          `no dead letter with id ${dead!.id}`,
        ]);
      },
    );

    /** A bus whose p1 is held on a first message while a second waits behind it (one delivery at a time). */
    const heldBehind = async (second: { capability: string } | { receiver: string }) => {
      const g = hold();
      let running = false;
      const answer: InProcessHandler = (m, receiver) => ({ content: `${receiver.agent}: ${String(m.content)}` });
      const t = await start({
        agents: [['p1', ['work']]],
        config: { agent_concurrency: 1 },
        handlers: {
          p1: async (m, receiver, ctx) => {
            if (m.content === 'hold') {
              running = true;
              await held(g, ctx.signal);
            }
            return answer(m, receiver, ctx);
          },
          p2: answer,
        },
      });
      const first = await t.bus.submit({
        performative: 'request',
        sender: 'client',
        receiver: 'p1',
        content: 'hold',
      });
      await waitUntil(() => running, { what: 'p1 running the first message' });
      const r = await t.bus.submit({ performative: 'request', sender: 'client', content: 'job', ...second });
      expect(r.routed_to).toEqual(['p1']);
      return { t, first, r, release: g.open };
    };

    kept('reroute')(
      'a provider removed before its delivery: the message goes to another provider of the capability',
      async () => {
        const { t, first, r, release } = await heldBehind({ capability: 'work' });
        deploy(t.registry, agentDef('p2', ['work']));
        t.registry.remove('p1');
        t.bus.unregisterHandler('p1');
        release();
        const { conversation: c, messages } = await conversation(t.bus, r.conversation_id);
        expect(c.state).toBe('completed');
        expect(acts(messages)).toEqual(['request:client', 'agree:p2', 'inform:p2']);
        expect(messages[2]!.message.content).toBe('p2: job');
        expect((await t.bus.reads.getMessage(r.id))?.deliveries.map((d) => [d.receiver, d.state])).toEqual([
          ['p2', 'done'],
        ]);
        expect((await conversation(t.bus, first.conversation_id)).conversation.state).toBe('completed');
      },
    );

    kept('undeliverable')(
      'a receiver removed before its delivery with no other provider: a dead letter saying so',
      async () => {
        const { t, r, release } = await heldBehind({ receiver: 'p1' });
        t.registry.remove('p1');
        t.bus.unregisterHandler('p1');
        release();
        const why = 'agent "p1" is no longer deployed';
        const { conversation: c, messages } = await conversation(t.bus, r.conversation_id);
        expect(c).toMatchObject({ state: 'failed', reason: why });
        expect(acts(messages)).toEqual(['request:client', 'failure:caxton']);
        const dead = await t.bus.reads.deadLetters();
        expect(dead.items.map((d) => [d.message_id, d.receiver, d.state, d.last_error])).toEqual([
          [r.id, 'p1', 'dead', why],
        ]);
        expect(messages[1]!.message.content).toEqual({
          reason: 'undeliverable',
          message: why,
          dead_letter: dead.items[0]!.id,
        });
      },
    );
  });
}
