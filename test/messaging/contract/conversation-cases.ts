/**
 * The bus contract's conversation, tracing and scope cases: turn limits, closed conversations,
 * Contract Net, spans per delivery attempt and the acting principal's scope.
 */
import {
  InMemorySpanExporter,
  BasicTracerProvider,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { describe, expect } from 'vitest';
import { ApiKeyStore, PrincipalDirectory, type Principal } from '../../../src/auth/index.js';
import { type AclMessage, type AgentAnswer, type InProcessHandler } from '../../../src/messaging/index.js';
import { MESSAGING_MIGRATIONS } from '../../../src/messaging/sqlite/index.js';
import { httpStatusFor } from '../../../src/shared/errors.js';
import { migrate, openDatabase } from '../../../src/storage/index.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { waitUntil } from '../../helpers/wait.js';
import { TRACEPARENT, errorOf, held, overloaded, type Harness } from './contract-kit.js';

export function conversationCases(h: Harness): void {
  const { open, start, hold, kept, conversation } = h;
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
}
