/**
 * The bus contract's delivery cases: requests, one-way informs, capability routing, failure replies,
 * queries, subscriptions, duplicates, back-pressure and restarts.
 */
import { describe, expect } from 'vitest';
import { type BusEvent, type InProcessHandler } from '../../../src/messaging/index.js';
import { CaxtonError, describeError, httpStatusFor } from '../../../src/shared/errors.js';
import { waitUntil } from '../../helpers/wait.js';
import { WAIT_MS, errorOf, held, terminal, type Harness } from './contract-kit.js';

export function deliveryCases(h: Harness): void {
  const { start, restart, hold, kept, conversation, acts } = h;
  describe('delivery', () => {
    kept('request')(
      'request: answered with agree then inform, the conversation completed, every step an event',
      async () => {
        const seen: string[] = [];
        const t = await start({
          agents: [['worker', ['work']]],
          handlers: { worker: (m) => (seen.push(String(m.content)), { content: `done: ${String(m.content)}` }) },
        });
        const events: BusEvent[] = [];
        t.bus.on('event', (e) => events.push(e));
        const r = await t.bus.submit({
          performative: 'request',
          sender: 'client',
          receiver: 'worker',
          content: 'job 1',
        });
        expect(r).toMatchObject({
          performative: 'request',
          routed_to: ['worker'],
          routing: 'named',
          duplicate: false,
        });
        const { conversation: c, messages } = await conversation(t.bus, r.conversation_id);
        expect(c).toMatchObject({ state: 'completed', initiator: 'client', turns: 3 });
        expect(acts(messages)).toEqual(['request:client', 'agree:worker', 'inform:worker']);
        expect(messages[2]!.message).toMatchObject({
          content: 'done: job 1',
          in_reply_to: r.id,
          conversation_id: r.conversation_id,
          receivers: ['client'],
        });
        expect(seen).toEqual(['job 1']);
        const stored = await t.bus.reads.getMessage(r.id);
        expect(stored?.deliveries.map((d) => [d.receiver, d.state, d.attempts])).toEqual([['worker', 'done', 1]]);
        await waitUntil(() => events.some((e) => e.type === 'state' && e.conversation.state === 'completed'), {
          what: 'the completed state event',
        });
        const mine = events.filter((e) => e.conversation_id === r.conversation_id);
        expect(
          mine.flatMap((e) => (e.type === 'message' ? [`${e.message.performative}→${e.routed_to.join(',')}`] : [])),
        ).toEqual(['request→worker', 'agree→', 'inform→']);
        expect(mine.filter((e) => e.type === 'state').at(-1)).toMatchObject({ conversation: { state: 'completed' } });
      },
    );

    kept('inform')('inform: delivered one way, no reply, the conversation completed', async () => {
      const seen: string[] = [];
      const t = await start({
        agents: [['listener', ['news']]],
        handlers: { listener: (m) => (seen.push(`${m.performative}:${String(m.content)}`), undefined) },
      });
      const r = await t.bus.submit({
        performative: 'inform',
        sender: 'client',
        receiver: 'listener',
        content: 'rates are up',
      });
      expect(r).toMatchObject({ routed_to: ['listener'], routing: 'named' });
      const { conversation: c, messages } = await conversation(t.bus, r.conversation_id);
      expect(c.state).toBe('completed');
      expect(acts(messages)).toEqual(['inform:client']);
      expect(seen).toEqual(['inform:rates are up']);
      expect((await t.bus.reads.getMessage(r.id))?.deliveries.map((d) => [d.receiver, d.state])).toEqual([
        ['listener', 'done'],
      ]);
    });

    kept('capability')(
      'capability routing: each request goes to one provider, round-robin, which answers it',
      async () => {
        const answer: InProcessHandler = (m, receiver) => ({ content: `${receiver.agent} did ${String(m.content)}` });
        const t = await start({
          agents: [
            ['p1', ['work']],
            ['p2', ['work']],
            ['other', ['else']],
          ],
          handlers: { p1: answer, p2: answer, other: answer },
        });
        const sent = [];
        for (let i = 0; i < 4; i++)
          sent.push(
            await t.bus.submit({
              performative: 'request',
              sender: 'client',
              capability: 'work',
              content: `job ${i}`,
            }),
          );
        expect(sent.map((s) => [s.routing, s.routed_to.length])).toEqual(sent.map(() => ['one', 1]));
        expect(new Set(sent.map((s) => s.routed_to[0]))).toEqual(new Set(['p1', 'p2']));
        for (const [i, s] of sent.entries()) {
          const { messages } = await conversation(t.bus, s.conversation_id);
          expect(messages.at(-1)!.message).toMatchObject({
            performative: 'inform',
            sender: s.routed_to[0],
            content: `${s.routed_to[0]} did job ${i}`,
          });
        }
      },
    );

    kept('unroutable')(
      'a capability nobody provides: a failure reply from the platform, the conversation failed, nothing delivered',
      async () => {
        const t = await start({ agents: [['worker', ['work']]], handlers: { worker: () => ({ content: 'never' }) } });
        const r = await t.bus.submit({
          performative: 'request',
          sender: 'client',
          capability: 'nobody-does-this',
          content: 'hi',
        });
        expect(r).toMatchObject({ routed_to: [], routing: 'none', failure: { reason: 'unknown_capability' } });
        const { conversation: c, messages } = await conversation(t.bus, r.conversation_id);
        expect(c).toMatchObject({ state: 'failed', reason: r.failure!.message });
        expect(r.failure!.message).toMatch(/no agent provides capability "nobody-does-this"/);
        expect(acts(messages)).toEqual(['request:client', 'failure:caxton']);
        expect(messages[1]!.message).toMatchObject({
          id: r.failure!.reply_id,
          content: { reason: 'unknown_capability', message: r.failure!.message },
        });
        expect((await t.bus.reads.getMessage(r.id))?.deliveries).toEqual([]);
      },
    );

    kept('query')('query-ref: answered with inform alone, the conversation completed', async () => {
      const t = await start({ agents: [['oracle', ['answers']]], handlers: { oracle: () => ({ content: '42' }) } });
      const r = await t.bus.submit({
        performative: 'query-ref',
        sender: 'client',
        receiver: 'oracle',
        content: 'the answer?',
      });
      const { conversation: c, messages } = await conversation(t.bus, r.conversation_id);
      expect(c.state).toBe('completed');
      expect(acts(messages)).toEqual(['query-ref:client', 'inform:oracle']);
      expect(messages[1]!.message).toMatchObject({ content: '42', in_reply_to: r.id });
    });

    kept('failure-reply')(
      'an agent that fails for good (not retried): a failure reply with its error, the conversation failed, no dead letter',
      async () => {
        let calls = 0;
        const e = new CaxtonError('timeout', 'the agent ran out of time');
        const t = await start({
          agents: [['worker', ['work']]],
          handlers: {
            worker: () => {
              calls++;
              throw e;
            },
          },
        });
        const r = await t.bus.submit({
          performative: 'request',
          sender: 'client',
          receiver: 'worker',
          content: 'slow',
        });
        const { conversation: c, messages } = await conversation(t.bus, r.conversation_id);
        expect(acts(messages)).toEqual(['request:client', 'agree:worker', 'failure:worker']);
        expect(messages[2]!.message.content).toBe(describeError(e));
        expect(c.state).toBe('failed');
        expect(calls).toBe(1);
        expect((await t.bus.reads.getMessage(r.id))?.deliveries.map((d) => [d.state, d.attempts])).toEqual([
          ['done', 1],
        ]);
        expect((await t.bus.reads.deadLetters()).total).toBe(0);
      },
    );

    kept('expiry')('no reply by reply_by: the conversation expires', async () => {
      const g = hold();
      const t = await start({
        agents: [['worker', ['work']]],
        handlers: { worker: async (_m, _r, ctx) => (await held(g, ctx.signal), { content: 'too late' }) },
      });
      const r = await t.bus.submit({
        performative: 'request',
        sender: 'client',
        receiver: 'worker',
        content: 'hurry',
        reply_by: '1s',
      });
      expect(terminal(await t.bus.wait(r.conversation_id, WAIT_MS))).toBe(true);
      // ClusterBus wakes waiters on an expiry before the sweep's write commits, so its reads may lag
      // the wait for a moment: polled, this case checks the outcome, not that race.
      const { value: c } = await waitUntil(async () => {
        const now = (await t.bus.reads.getConversation(r.conversation_id)).conversation;
        return terminal(now) && now;
      });
      const { messages } = await t.bus.reads.getConversation(r.conversation_id);
      // The reason names the deadline missed, not the conversation's ttl.
      const request = messages[0]!.message;
      expect(c).toMatchObject({
        state: 'expired',
        reason: `no reply to the request by its reply_by deadline ${request.reply_by!}`,
      });
      expect(acts(messages)).toEqual(['request:client']);
    });

    kept('subscribe')(
      'subscribe: agreed, a later inform to the capability is forwarded to the subscriber, cancel ends it',
      async () => {
        const notes: string[] = [];
        const t = await start({
          agents: [
            ['reporter', ['news']],
            ['watcher', ['watching']],
          ],
          handlers: {
            reporter: (m) =>
              m.performative === 'subscribe' ? { performative: 'agree', content: 'subscribed' } : undefined,
            watcher: (m) => (
              notes.push(`${m.performative}:${String(m.content)}:${m.params['X-notification-of'] ?? ''}`),
              undefined
            ),
          },
        });
        const sub = await t.bus.submit({
          performative: 'subscribe',
          protocol: 'fipa-subscribe',
          sender: 'watcher',
          capability: 'news',
          content: 'rates',
        });
        await waitUntil(
          async () =>
            (await t.bus.reads.getConversation(sub.conversation_id)).messages.some(
              (s) => s.message.performative === 'agree',
            ),
          { what: 'the agree' },
        );
        const news = await t.bus.submit({
          performative: 'inform',
          sender: 'client',
          capability: 'news',
          content: 'rates are up',
        });
        await waitUntil(() => notes.length > 0, { what: 'the notification' });
        await t.bus.submit({
          performative: 'cancel',
          protocol: 'fipa-subscribe',
          sender: 'watcher',
          receiver: 'reporter',
          content: '',
          conversation_id: sub.conversation_id,
        });
        const { conversation: c, messages } = await conversation(t.bus, sub.conversation_id);
        expect(c).toMatchObject({ state: 'completed', reason: 'cancelled by the subscriber' });
        expect(acts(messages)).toEqual(['subscribe:watcher', 'agree:reporter', 'inform:client', 'cancel:watcher']);
        const later = await t.bus.submit({
          performative: 'inform',
          sender: 'client',
          capability: 'news',
          content: 'rates are down',
        });
        await conversation(t.bus, later.conversation_id);
        expect(notes).toEqual([`inform:rates are up:${news.id}`]);
      },
    );

    kept('history')('history: the last n messages of a conversation, oldest first', async () => {
      const t = await start({ agents: [['worker', ['work']]], handlers: { worker: () => ({ content: 'answer' }) } });
      const r = await t.bus.submit({
        performative: 'request',
        sender: 'client',
        receiver: 'worker',
        content: 'question',
      });
      await conversation(t.bus, r.conversation_id);
      expect((await t.bus.history(r.conversation_id, 2)).map((m) => [m.performative, m.content])).toEqual([
        ['agree', ''],
        ['inform', 'answer'],
      ]);
      expect((await t.bus.history(r.conversation_id, 10)).map((m) => m.performative)).toEqual([
        'request',
        'agree',
        'inform',
      ]);
    });

    /** A bus whose worker holds every message, with room for two undelivered ones; two sent and held. */
    const full = async () => {
      const g = hold();
      const t = await start({
        agents: [['worker', ['work']]],
        config: { max_queue: 2 },
        handlers: { worker: async (_m, _r, ctx) => (await held(g, ctx.signal), { content: 'ok' }) },
      });
      for (const n of [1, 2])
        await t.bus.submit({ performative: 'request', sender: 'client', receiver: 'worker', content: `held ${n}` });
      await waitUntil(() => t.bus.stats().queued === 2, { what: 'two deliveries in hand' });
      return {
        t,
        e: await errorOf(
          t.bus.submit({
            id: 'one-too-many',
            performative: 'request',
            sender: 'client',
            receiver: 'worker',
            content: 'third',
          }),
        ),
      };
    };

    kept('queue-full')(
      'back-pressure: past max_queue undelivered messages a send is refused (429, retry after 1 s), nothing stored',
      async () => {
        const { t, e } = await full();
        expect([e.code, httpStatusFor(e.code), e.details]).toEqual(['queue_full', 429, { retry_after: 1, queued: 2 }]);
        expect(await t.bus.reads.getMessage('one-too-many')).toBeUndefined();
      },
    );

    kept('queue-full-message')(
      'back-pressure: the refusal says the queue is full and names [messaging] max_queue',
      async () => {
        const { e } = await full();
        expect(e.message).toBe(
          'the message queue is full (2 undelivered messages, [messaging] max_queue = 2); retry later',
        );
      },
    );

    kept('queue-full-waiting')(
      'back-pressure counts the deliveries waiting for a worker, not only those in hand, and frees room as they are delivered',
      async () => {
        const g = hold();
        const t = await start({
          agents: [['worker', ['work']]],
          config: { max_queue: 3, agent_concurrency: 1 },
          inHandAtMost: 1,
          handlers: { worker: async (_m, _r, ctx) => (await held(g, ctx.signal), { content: 'ok' }) },
        });
        const send = (id: string) =>
          t.bus.submit({ id, performative: 'request', sender: 'client', receiver: 'worker', content: id });
        for (const n of [1, 2, 3]) await send(`waiting-${n}`);
        await waitUntil(() => t.bus.stats().running === 1, { what: 'the first delivery running' });
        const e = await errorOf(send('one-too-many'));
        expect([e.code, e.details]).toEqual(['queue_full', { retry_after: 1, queued: 3 }]);
        expect(await t.bus.reads.getMessage('one-too-many')).toBeUndefined();
        g.open();
        for (const n of [1, 2, 3]) {
          const c = await conversation(t.bus, (await t.bus.reads.getMessage(`waiting-${n}`))!.message.conversation_id);
          expect(c?.conversation.state).toBe('completed');
        }
        expect((await send('room-again')).duplicate).toBe(false);
      },
    );

    kept('duplicate')('a message id sent three times (two at once) is stored and delivered once', async () => {
      const seen: string[] = [];
      const t = await start({
        agents: [['worker', ['work']]],
        handlers: { worker: (m) => (seen.push(m.id), { content: 'ok' }) },
      });
      const body = {
        id: 'client-msg-1',
        performative: 'request',
        sender: 'client',
        receiver: 'worker',
        content: 'once',
      };
      const [a, b] = await Promise.all([t.bus.submit(body), t.bus.submit(body)]);
      const c = await t.bus.submit(body);
      expect([a, b].filter((x) => x.duplicate)).toHaveLength(1);
      expect(c.duplicate).toBe(true);
      expect(new Set([a, b, c].map((x) => `${x.id} ${x.conversation_id} ${x.routed_to.join(',')}`)).size).toBe(1);
      const { messages } = await conversation(t.bus, a.conversation_id);
      expect(acts(messages)).toEqual(['request:client', 'agree:worker', 'inform:worker']);
      expect(seen).toEqual(['client-msg-1']);
      expect((await t.bus.reads.getMessage('client-msg-1'))?.deliveries).toHaveLength(1);
    });

    kept('restart')(
      'restart: what was accepted and not acknowledged is delivered by the next bus on the same store',
      async () => {
        const ran: string[] = [];
        const g = hold();
        const t = await start({
          agents: [['worker', ['work']]],
          handlers: {
            worker: async (_m, _r, ctx) => {
              ran.push('before');
              await held(g, ctx.signal);
              return { content: 'never' };
            },
          },
        });
        const r = await t.bus.submit({
          performative: 'request',
          sender: 'client',
          receiver: 'worker',
          content: 'survive',
        });
        await waitUntil(() => ran.length === 1, { what: 'the first delivery' });
        const next = await restart(t, { worker: () => (ran.push('after'), { content: 'after restart' }) });
        const { conversation: c, messages } = await conversation(next.bus, r.conversation_id);
        expect(c.state).toBe('completed');
        expect(acts(messages)).toEqual(['request:client', 'agree:worker', 'inform:worker']);
        expect(messages[2]!.message.content).toBe('after restart');
        expect(ran).toEqual(['before', 'after']);
        expect((await next.bus.reads.getMessage(r.id))?.deliveries.map((d) => [d.receiver, d.state])).toEqual([
          ['worker', 'done'],
        ]);
      },
    );
  });
}
