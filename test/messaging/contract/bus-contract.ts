/**
 * The contract every `MessagingBus` keeps, written once and run against each configuration (as
 * Hono runs one router suite against each of its routers): single-node.test.ts (SQLite) and
 * cluster.test.ts (PostgreSQL + JetStream). Each case builds a started bus through the
 * configuration's factory, drives it with in-process handlers, and checks what anyone can observe:
 * the conversation's state and reason, the stored messages and deliveries, dead letters, events,
 * errors and spans. A case a configuration does not keep yet is named in its `differs` with what
 * differs; it runs as `it.fails`, so it turns red the day the difference is gone and the entry can go.
 */
import {
  InMemorySpanExporter,
  BasicTracerProvider,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import type { Tracer } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentRegistry } from '../../../src/agents/index.js';
import { ApiKeyStore, PrincipalDirectory, type ActingPrincipals, type Principal } from '../../../src/auth/index.js';
import {
  MESSAGING_MIGRATIONS,
  type AclMessage,
  type AgentAnswer,
  type BusEvent,
  type Conversation,
  type ConversationId,
  type InProcessHandler,
  type MessagingBus,
  type MessagingConfig,
} from '../../../src/messaging/index.js';
import { CaxtonError, describeError, httpStatusFor } from '../../../src/shared/errors.js';
import { migrate, openDatabase } from '../../../src/storage/index.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { waitUntil } from '../../helpers/wait.js';
import { agentDef, deploy } from '../helpers.js';
import { runRoundContract } from './round-protocols.js';

/** What a case asks of a configuration: agents deployed, handlers registered, and the options it varies. */
export interface ContractSetup {
  /** Agents deployed before the bus starts: [name, capabilities]. */
  agents: [string, string[]][];
  /** In-process handlers registered before the bus starts, by agent name. */
  handlers: Record<string, InProcessHandler>;
  config?: Partial<MessagingConfig>;
  /** Spans go here when given. */
  tracer?: Tracer;
  /** Resolves `on_behalf_of` to the principal whose scope applies. */
  principals?: ActingPrincipals;
}

/** A started bus built by a configuration's factory. */
export interface ContractBus {
  bus: MessagingBus;
  registry: AgentRegistry;
  /** Closes this bus and starts a new one over the same store, with `handlers` registered instead. */
  restart(handlers: Record<string, InProcessHandler>): Promise<ContractBus>;
  /** Closes the bus and what the factory opened for it. */
  close(): Promise<void>;
}

export type BusFactory = (setup: ContractSetup) => Promise<ContractBus>;

/** The cases of the contract, by name (the keys of a configuration's `differs`). */
export type ContractCase =
  | 'request'
  | 'inform'
  | 'capability'
  | 'retry'
  | 'backoff'
  | 'dead-letter'
  | 'replay'
  | 'reroute'
  | 'undeliverable'
  | 'turn-limit'
  | 'closed'
  | 'duplicate'
  | 'restart'
  | 'trace'
  | 'trace-retry'
  | 'contract-net'
  | 'contract-net-sync'
  | 'scope'
  | 'unroutable'
  | 'query'
  | 'failure-reply'
  | 'expiry'
  | 'subscribe'
  | 'history'
  | 'stats-retrying'
  | 'queue-full'
  | 'queue-full-message';

export interface ContractOptions {
  /** Whether the configuration can run here (its system parts are installed). */
  runs?: boolean;
  /** Cases this configuration does not keep yet, each with what differs: run as `it.fails`. */
  differs?: Partial<Record<ContractCase, string>>;
}

/** The deadline of one wait for a conversation to end: generous, a cluster test on two busy cores is slow. */
const WAIT_MS = 20_000;
const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

const terminal = (c: Conversation) => c.state !== 'initiated' && c.state !== 'in_progress';

async function errorOf(p: Promise<unknown>): Promise<CaxtonError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CaxtonError);
  return e as CaxtonError;
}

/** A handler's error the bus retries (an overloaded model). */
const overloaded = () => new CaxtonError('llm_error', 'model overloaded');

/** A promise and its resolver: holds a handler until the case lets it go. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

/** Waits for `g` or the bus stopping the delivery (so close never waits on a held handler). */
const held = (g: { wait: Promise<void> }, signal: AbortSignal) =>
  Promise.race([
    g.wait,
    new Promise<never>((_, reject) =>
      signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true }),
    ),
  ]);

export function runBusContract(name: string, factory: BusFactory, opts: ContractOptions = {}): void {
  runRoundContract(name, factory, opts);
  const differs = opts.differs ?? {};
  const open: ContractBus[] = [];
  const gates: (() => void)[] = [];

  const start = async (setup: ContractSetup): Promise<ContractBus> => {
    const t = await factory(setup);
    open.push(t);
    return t;
  };
  const restart = async (t: ContractBus, handlers: Record<string, InProcessHandler>): Promise<ContractBus> => {
    open.splice(open.indexOf(t), 1);
    const next = await t.restart(handlers);
    open.push(next);
    return next;
  };
  const hold = () => {
    const g = gate();
    gates.push(g.open);
    return g;
  };
  /** `it`, or `it.fails` with the reason when this configuration differs in `c`. */
  const kept = (c: ContractCase) => (differs[c] === undefined ? it : it.fails);

  const conversation = async (bus: MessagingBus, id: ConversationId) => {
    const c = await bus.wait(id, WAIT_MS);
    expect(terminal(c), `conversation ${id} still ${c.state} after ${WAIT_MS} ms`).toBe(true);
    return bus.reads.getConversation(id);
  };
  const acts = (messages: { message: AclMessage }[]) =>
    messages.map((s) => `${s.message.performative}:${s.message.sender}`);

  describe.runIf(opts.runs ?? true)(`bus contract: ${name}`, () => {
    afterEach(async () => {
      for (const g of gates.splice(0)) g();
      for (const t of open.splice(0).reverse()) await t.close();
    });

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
        expect(c).toMatchObject({ state: 'expired', reason: 'no activity within the conversation ttl' });
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
          expect([e.code, httpStatusFor(e.code), e.details]).toEqual([
            'queue_full',
            429,
            { retry_after: 1, queued: 2 },
          ]);
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

    describe('conversations', () => {
      kept('turn-limit')(
        'the turn limit: the message past it is refused and the conversation failed; the next is refused as closed',
        async () => {
          const g = hold();
          const t = await start({
            agents: [['sink', ['news']]],
            config: { max_conversation_turns: 3 },
            handlers: { sink: async (_m, _r, ctx) => (await held(g, ctx.signal), undefined) },
          });
          const r = await t.bus.submit({
            performative: 'inform',
            sender: 'client',
            receiver: 'sink',
            content: 'turn 1',
          });
          const inConv = (content: string) =>
            t.bus.submit({
              performative: 'inform',
              sender: 'client',
              receiver: 'sink',
              content,
              conversation_id: r.conversation_id,
            });
          await inConv('turn 2');
          await inConv('turn 3');
          const limit = 'turn limit reached: at most 3 messages per conversation';
          const over = await errorOf(inConv('turn 4'));
          expect([over.code, over.message, over.details]).toEqual([
            'conversation_closed',
            `conversation ${r.conversation_id} ${limit}; it is now failed`,
            { conversation_id: r.conversation_id, state: 'failed' },
          ]);
          expect(httpStatusFor(over.code)).toBe(409);
          const { conversation: c, messages } = await t.bus.reads.getConversation(r.conversation_id);
          expect(c).toMatchObject({ state: 'failed', reason: limit, turns: 3 });
          expect(messages.map((s) => s.message.content)).toEqual(['turn 1', 'turn 2', 'turn 3']);
          const closed = await errorOf(inConv('turn 5'));
          expect([closed.code, closed.details]).toEqual([
            'conversation_closed',
            { conversation_id: r.conversation_id, state: 'failed' },
          ]);
          expect(closed.message).toBe(
            `conversation ${r.conversation_id} is failed (${limit}); start a new conversation by leaving out conversation_id`,
          );
        },
      );

      kept('closed')(
        'a message to a completed conversation is refused as closed (409), and nothing is stored',
        async () => {
          const t = await start({ agents: [['worker', ['work']]], handlers: { worker: () => ({ content: 'done' }) } });
          const r = await t.bus.submit({ performative: 'request', sender: 'client', receiver: 'worker', content: 'x' });
          await conversation(t.bus, r.conversation_id);
          const e = await errorOf(
            t.bus.submit({
              id: 'too-late',
              performative: 'inform',
              sender: 'client',
              receiver: 'worker',
              content: 'more',
              conversation_id: r.conversation_id,
            }),
          );
          expect([e.code, httpStatusFor(e.code), e.details]).toEqual([
            'conversation_closed',
            409,
            { conversation_id: r.conversation_id, state: 'completed' },
          ]);
          expect(e.message).toBe(
            `conversation ${r.conversation_id} is completed; start a new conversation by leaving out conversation_id`,
          );
          expect(await t.bus.reads.getMessage('too-late')).toBeUndefined();
          expect((await t.bus.reads.getConversation(r.conversation_id)).messages).toHaveLength(3);
        },
      );

      /** Bidders p1..p3 quoting 30, 10 and 20; `sync`: they answer without awaiting anything. */
      const contractNet = async (sync: boolean) => {
        const prices: Record<string, number> = { p1: 30, p2: 10, p3: 20 };
        const seen: string[] = [];
        const answer = (m: AclMessage, agent: string): AgentAnswer => {
          seen.push(`${agent}:${m.performative}`);
          if (m.performative === 'cfp') return { performative: 'propose', content: `price: ${prices[agent]}` };
          if (m.performative === 'accept-proposal') return { performative: 'inform', content: `${agent} delivered` };
          return undefined;
        };
        const bidder: InProcessHandler = sync
          ? (m, receiver) => answer(m, receiver.agent)
          : async (m, receiver) => (await Promise.resolve(), answer(m, receiver.agent));
        // A deadline that ends a call whose proposals went unheard before the case's wait gives up.
        const t = await start({
          agents: Object.keys(prices).map((p) => [p, ['quote']]),
          config: { cfp_deadline: 8_000 },
          handlers: { p1: bidder, p2: bidder, p3: bidder },
        });
        const r = await t.bus.submit({
          performative: 'cfp',
          protocol: 'fipa-contract-net',
          sender: 'buyer',
          capability: 'quote',
          content: 'ship 3 boxes',
        });
        expect([r.routing, [...r.routed_to].sort()]).toEqual(['all', ['p1', 'p2', 'p3']]);
        const { conversation: c, messages } = await conversation(t.bus, r.conversation_id);
        expect(c).toMatchObject({ state: 'completed', reason: 'awarded to p2' });
        const of = (p: string) => messages.filter((s) => s.message.performative === p).map((s) => s.message);
        expect(
          of('propose')
            .map((x) => x.sender)
            .sort(),
        ).toEqual(['p1', 'p2', 'p3']);
        expect(of('accept-proposal').map((x) => [x.sender, x.receivers])).toEqual([['buyer', ['p2']]]);
        expect(
          of('reject-proposal')
            .map((x) => x.receivers[0])
            .sort(),
        ).toEqual(['p1', 'p3']);
        expect(of('inform').map((x) => [x.sender, x.content])).toEqual([['p2', 'p2 delivered']]);
        expect(seen.filter((s) => s.endsWith(':accept-proposal'))).toEqual(['p2:accept-proposal']);
      };

      kept('contract-net')(
        'contract net: cfp to every provider, three proposals, the lowest price awarded, the others rejected, the winner informs',
        () => contractNet(false),
      );

      kept('contract-net-sync')(
        'contract net with bidders that answer synchronously: decided as soon as all proposed, as with async ones',
        () => contractNet(true),
      );
    });

    describe('tracing', () => {
      const traced = () => {
        const exporter = new InMemorySpanExporter();
        const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).getTracer(
          'bus-contract',
        );
        return { exporter, tracer };
      };
      const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
      const spanId = (s: ReadableSpan) => s.spanContext().spanId;

      kept('trace')(
        'a send is a message.route span under the caller, its delivery a message.deliver span under it, the reply in its trace',
        async () => {
          const { exporter, tracer } = traced();
          const handed: (string | undefined)[] = [];
          const t = await start({
            agents: [['worker', ['work']]],
            tracer,
            handlers: { worker: (_m, _r, ctx) => (handed.push(ctx.traceparent), { content: 'traced' }) },
          });
          const r = await t.bus.submit(
            { performative: 'request', sender: 'client', receiver: 'worker', content: 'x' },
            { traceparent: TRACEPARENT },
          );
          // Routing ends its span before the send resolves.
          expect(exporter.getFinishedSpans().map((s) => s.name)).toContain('message.route request');
          const { messages } = await conversation(t.bus, r.conversation_id);
          await waitUntil(() => exporter.getFinishedSpans().some((s) => s.name === 'message.deliver request'), {
            what: 'the delivery span',
          });
          const spans = exporter.getFinishedSpans();
          expect(spans.map((s) => s.name).sort()).toEqual(['message.deliver request', 'message.route request']);
          expect(new Set(spans.map((s) => s.spanContext().traceId))).toEqual(
            new Set(['0af7651916cd43dd8448eb211c80319c']),
          );
          const route = spans.find((s) => s.name === 'message.route request')!;
          const deliver = spans.find((s) => s.name === 'message.deliver request')!;
          expect(parentOf(route)).toBe('b7ad6b7169203331');
          expect(parentOf(deliver)).toBe(spanId(route));
          expect(deliver.attributes).toMatchObject({
            'caxton.receiver': 'worker',
            'caxton.attempt': 1,
            'caxton.outcome': 'delivered',
          });
          // The message carries the route span; the handler and the replies continue the delivery span.
          expect(messages[0]!.message.trace_context?.traceparent).toBe(
            `00-0af7651916cd43dd8448eb211c80319c-${spanId(route)}-01`,
          );
          expect(handed).toEqual([`00-0af7651916cd43dd8448eb211c80319c-${spanId(deliver)}-01`]);
          expect(messages.slice(1).map((s) => s.message.trace_context?.traceparent)).toEqual([handed[0], handed[0]]);
        },
      );

      kept('trace-retry')(
        'each delivery attempt is its own message.deliver span under the route span, with its outcome',
        async () => {
          const { exporter, tracer } = traced();
          let calls = 0;
          const t = await start({
            agents: [['worker', ['work']]],
            tracer,
            config: { retry_base: 20 },
            handlers: {
              worker: () => {
                if (++calls === 1) throw overloaded();
                return { content: 'ok' };
              },
            },
          });
          const r = await t.bus.submit(
            { performative: 'request', sender: 'client', receiver: 'worker', content: 'x' },
            { traceparent: TRACEPARENT },
          );
          expect(exporter.getFinishedSpans().map((s) => s.name)).toContain('message.route request');
          await conversation(t.bus, r.conversation_id);
          await waitUntil(
            () => exporter.getFinishedSpans().filter((s) => s.name === 'message.deliver request').length === 2,
            { what: 'two delivery spans' },
          );
          const spans = exporter.getFinishedSpans();
          const route = spans.find((s) => s.name === 'message.route request')!;
          const deliveries = spans.filter((s) => s.name === 'message.deliver request');
          expect(
            deliveries.map((s) => [parentOf(s), s.attributes['caxton.attempt'], s.attributes['caxton.outcome']]),
          ).toEqual([
            [spanId(route), 1, 'retried'],
            [spanId(route), 2, 'delivered'],
          ]);
        },
      );
    });

    describe('scope', () => {
      const principals = () => {
        const db = openDatabase(makeTempDir('caxton-contract-keys-'));
        migrate(db, MESSAGING_MIGRATIONS);
        const keys = new ApiKeyStore(db);
        keys.create({ name: 'scoped', role: 'invoker', scope: { agents: ['a-*'] } });
        const directory = new PrincipalDirectory({ keys });
        return { directory, scoped: directory.resolve('key:scoped')!, close: () => db.close() };
      };

      kept('scope')(
        'a principal out of scope is refused (403, agent_scope) by name and by capability; in scope it is routed',
        async () => {
          const p = principals();
          const answer: InProcessHandler = () => ({ content: 'ok' });
          try {
            const t = await start({
              agents: [
                ['a-one', ['shared']],
                ['b-secret', ['shared', 'secret']],
              ],
              principals: p.directory,
              handlers: { 'a-one': answer, 'b-secret': answer },
            });
            const refused = async (body: Record<string, unknown>, principal: Principal) => {
              const e = await errorOf(
                t.bus.submit({ performative: 'request', sender: 'client', content: 'x', ...body }, { principal }),
              );
              expect([e.code, httpStatusFor(e.code)]).toEqual(['forbidden', 403]);
              return e;
            };
            const direct = await refused({ id: 'by-name', receiver: 'b-secret' }, p.scoped);
            const byCapability = await refused({ id: 'by-capability', capability: 'secret' }, p.scoped);
            expect((direct.details as Record<string, unknown>).reason).toBe('agent_scope');
            expect((byCapability.details as Record<string, unknown>).reason).toBe('agent_scope');
            expect(await t.bus.reads.getMessage('by-name')).toBeUndefined();
            expect(await t.bus.reads.getMessage('by-capability')).toBeUndefined();
            for (let i = 0; i < 4; i++) {
              const ok = await t.bus.submit(
                { performative: 'request', sender: 'client', capability: 'shared', content: `n${i}` },
                { principal: p.scoped },
              );
              expect(ok.routed_to).toEqual(['a-one']);
              expect((await conversation(t.bus, ok.conversation_id)).conversation.state).toBe('completed');
            }
          } finally {
            for (const t of open.splice(0).reverse()) await t.close();
            p.close();
          }
        },
      );
    });
  });
}
