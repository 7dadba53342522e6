/**
 * Each protocol's full message sequence, checked act by act against its table in
 * docs/messaging.md ("Protocol sequences"), with a late, a dropped-out and a tied bidder in each
 * (part of the bus contract, run against every configuration). Bidders are in-process handlers; a
 * bidder that must answer after another holds its delivery until the conversation shows what it
 * waits for, so the order is fixed by the handlers, not by timing. Answers of one round that no
 * handler orders come in any order: runs of bidders' answers (and of the initiator's same act)
 * are compared sorted.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type {
  AclMessage,
  AgentAnswer,
  Conversation,
  ConversationId,
  InProcessHandler,
  MessagingBus,
} from '../../../src/messaging/index.js';
import { harness, type BusFactory, type ContractOptions } from './contract-kit.js';

const asking = (m: AclMessage) => Number(m.params['X-price'] ?? m.params['X-start-price']);

/** One act of the sequence as the tables write it: `act sender>receivers`, a call's price, a notice's or reject's kind. */
function token({ message: m, routed_to }: { message: AclMessage; routed_to: string[] }): string {
  // A message to a capability names no receivers: it went to those it was routed to.
  const to = [...(m.receivers.length > 0 ? m.receivers : routed_to)].sort().join(',');
  let tag = '';
  if (m.performative === 'cfp' && m.protocol !== 'fipa-contract-net' && m.protocol !== 'fipa-iterated-contract-net')
    tag = ` @${asking(m)}`;
  else if (m.performative === 'inform' && m.params['X-auction'] !== undefined) tag = ` (${m.params['X-auction']})`;
  else if (m.performative === 'reject-proposal') tag = ` (${m.params['X-reject-reason'] ?? '?'})`;
  return `${m.performative} ${m.sender}>${to}${tag}`;
}

/** The sequence with each run of bidders' answers, and of the initiator's same act, sorted. */
function canonical(messages: readonly { message: AclMessage; routed_to: string[] }[], initiator: string): string[] {
  const out: string[] = [];
  let run: string[] = [];
  let side = '';
  for (const stored of messages) {
    const m = stored.message;
    const s = m.sender === initiator ? `i:${m.performative}` : 'b';
    if (s !== side) {
      out.push(...run.sort());
      run = [];
      side = s;
    }
    run.push(token(stored));
  }
  out.push(...run.sort());
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function fipaSequenceCases(name: string, factory: BusFactory, opts: ContractOptions = {}): void {
  const h = harness(factory, opts);
  let bus: MessagingBus;

  /** Holds a handler until the conversation shows `ready` (or the bus stops the delivery). */
  const until = async (
    id: ConversationId,
    signal: AbortSignal,
    ready: (messages: AclMessage[], c: Conversation) => boolean,
  ): Promise<void> => {
    for (;;) {
      if (signal.aborted) throw new Error('stopped');
      const { conversation, messages } = await bus.reads.getConversation(id);
      if (
        ready(
          messages.map((s) => s.message),
          conversation,
        )
      )
        return;
      await sleep(25);
    }
  };
  const answeredBy = (messages: AclMessage[], cfp: AclMessage, who: string) =>
    messages.some((x) => x.in_reply_to === (cfp.reply_with ?? cfp.id) && x.sender === who);
  const ended = (_: AclMessage[], c: Conversation) => c.state === 'completed' || c.state === 'failed';
  const rejected = (who: string) => (ms: AclMessage[]) =>
    ms.some((x) => x.performative === 'reject-proposal' && x.receivers.includes(who));
  const isFirstCall = (m: AclMessage) => m.params['X-round'] === undefined;

  /** A bidder with a limit, answering after `wait` shows in the conversation when it bids. */
  function bidder(
    limit: number,
    wait?: (m: AclMessage) => (ms: AclMessage[], c: Conversation) => boolean,
  ): InProcessHandler {
    return async (m, _r, ctx): Promise<AgentAnswer> => {
      if (m.performative === 'accept-proposal') return { performative: 'inform', content: 'paid' };
      if (m.performative !== 'cfp') return undefined;
      const price = asking(m);
      if (price > limit) return { performative: 'refuse', content: `not at ${price}` };
      if (wait) await until(m.conversation_id, ctx.signal, wait(m));
      return { performative: 'propose', content: `price: ${price}` };
    };
  }

  /** A bidder that answers the first call only once `ready` shows (late), and refuses any later call at once. */
  const late =
    (ready: (ms: AclMessage[], c: Conversation) => boolean, content = 'price: 5'): InProcessHandler =>
    async (m, _r, ctx): Promise<AgentAnswer> => {
      if (m.performative !== 'cfp') return undefined;
      if (!isFirstCall(m)) return { performative: 'refuse', content: 'no' };
      await until(m.conversation_id, ctx.signal, ready);
      return { performative: 'propose', content };
    };

  describe.runIf(opts.runs ?? true)(`FIPA sequences: ${name}`, () => {
    afterEach(() => h.cleanup());

    it('English auction (fipa00031): start and end notices, a tied, a dropped-out and a late bidder each answered', async () => {
      const t = await h.start({
        agents: ['b1', 'b2', 'b3', 'b4'].map((b) => [b, ['art']] as [string, string[]]),
        handlers: {
          b1: bidder(9),
          // Tied with b1: bids the same, always after b1 in the round.
          b2: bidder(9, (m) => (ms) => answeredBy(ms, m, 'b1')),
          // Drops out at 9.
          b3: bidder(7),
          // Answers the first call only after the auction ended.
          b4: late(ended),
        },
        config: { cfp_deadline: 20_000 },
      });
      bus = t.bus;
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-english-auction',
        sender: 'seller',
        capability: 'art',
        content: 'a painting',
        reply_by: '2s',
        params: { 'X-start-price': '5', 'X-increment': '2', 'X-max-rounds': '3' },
      });
      await h.conversation(t.bus, r.conversation_id);
      await until(r.conversation_id, new AbortController().signal, rejected('b4'));
      const { conversation: c, messages } = await t.bus.reads.getConversation(r.conversation_id);
      expect(c).toMatchObject({ state: 'completed', reason: 'awarded to b1' });
      expect(canonical(messages, 'seller')).toEqual([
        'inform seller>b1,b2,b3,b4 (start)',
        'cfp seller>b1,b2,b3,b4 @5',
        'propose b1>seller',
        'propose b2>seller',
        'propose b3>seller',
        // Round 1 closed at its reply_by (b4 had not answered).
        'cfp seller>b1,b2,b3 @7',
        'propose b1>seller',
        'propose b2>seller',
        'propose b3>seller',
        'cfp seller>b1,b2,b3 @9',
        'propose b1>seller',
        'propose b2>seller',
        'refuse b3>seller',
        'accept-proposal seller>b1',
        'reject-proposal seller>b2 (tied)',
        'reject-proposal seller>b3 (dropped out)',
        'inform seller>b1,b2,b3,b4 (end)',
        'inform b1>seller',
        'propose b4>seller',
        'reject-proposal seller>b4 (late)',
      ]);
      const end = messages.find((s) => s.message.params['X-auction'] === 'end')!.message;
      expect(end.content).toMatchObject({ auction: 'ended', result: 'sold', winner: 'b1', price: 9 });
    });

    it('Dutch auction (fipa00032): the first bid wins, a same-price twin is rejected as tied, a late bid as late', async () => {
      const t = await h.start({
        agents: ['d1', 'd2', 'd3', 'd4'].map((b) => [b, ['bulbs']] as [string, string[]]),
        handlers: {
          // Bids at 70, once d3 and d4 have answered that round (so the round's answers come in a fixed order).
          d1: bidder(70, (m) => (ms) => answeredBy(ms, m, 'd3') && answeredBy(ms, m, 'd4')),
          // Bids the same price, but only after the auction ended: a tie that came second.
          d2: bidder(70, () => ended),
          d3: bidder(60),
          // Answers the first call only once d2's tie was rejected.
          d4: late(rejected('d2'), 'price: 100'),
        },
        config: { cfp_deadline: 20_000 },
      });
      bus = t.bus;
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-dutch-auction',
        sender: 'grower',
        capability: 'bulbs',
        content: '1000 tulip bulbs',
        reply_by: '2s',
        params: { 'X-start-price': '100', 'X-decrement': '10', 'X-reserve': '50' },
      });
      await h.conversation(t.bus, r.conversation_id);
      await until(r.conversation_id, new AbortController().signal, rejected('d4'));
      const { conversation: c, messages } = await t.bus.reads.getConversation(r.conversation_id);
      expect(c).toMatchObject({ state: 'completed', reason: 'awarded to d1' });
      expect(canonical(messages, 'grower')).toEqual([
        'inform grower>d1,d2,d3,d4 (start)',
        'cfp grower>d1,d2,d3,d4 @100',
        'refuse d1>grower',
        'refuse d2>grower',
        'refuse d3>grower',
        'cfp grower>d1,d2,d3,d4 @90',
        'refuse d1>grower',
        'refuse d2>grower',
        'refuse d3>grower',
        'refuse d4>grower',
        'cfp grower>d1,d2,d3,d4 @80',
        'refuse d1>grower',
        'refuse d2>grower',
        'refuse d3>grower',
        'refuse d4>grower',
        'cfp grower>d1,d2,d3,d4 @70',
        'propose d1>grower',
        'refuse d3>grower',
        'refuse d4>grower',
        'accept-proposal grower>d1',
        'inform grower>d1,d2,d3,d4 (end)',
        'inform d1>grower',
        'propose d2>grower',
        'reject-proposal grower>d2 (tied)',
        'propose d4>grower',
        'reject-proposal grower>d4 (late)',
      ]);
    });

    it('iterated Contract Net (fipa00030): each iteration rejects the proposals not kept, every proposal is answered once', async () => {
      const quotes: Record<string, number[]> = { p1: [30, 24, 18], p2: [20, 14, 8] };
      const calls: Record<string, number> = { p1: 0, p2: 0 };
      const quoter: InProcessHandler = (m, receiver): AgentAnswer => {
        const me = receiver.agent;
        if (m.performative === 'cfp')
          return { performative: 'propose', content: `price: ${quotes[me]![calls[me]!++]}` };
        if (m.performative === 'accept-proposal') return { performative: 'inform', content: 'done' };
        return undefined;
      };
      const t = await h.start({
        agents: ['p1', 'p2', 'p3', 'p4'].map((b) => [b, ['haul']] as [string, string[]]),
        handlers: {
          p1: quoter,
          p2: quoter,
          // Ties p2's 20 in round 1, after it (the earlier proposal stands); drops out in round 2.
          p3: async (m, _r, ctx): Promise<AgentAnswer> => {
            if (m.performative !== 'cfp') return undefined;
            if (!isFirstCall(m)) return { performative: 'refuse', content: 'too low for me' };
            await until(m.conversation_id, ctx.signal, (ms) => answeredBy(ms, m, 'p2'));
            return { performative: 'propose', content: 'price: 20' };
          },
          p4: late(ended, 'price: 1'),
        },
        config: { cfp_deadline: 20_000 },
      });
      bus = t.bus;
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-iterated-contract-net',
        sender: 'buyer',
        capability: 'haul',
        content: 'move 3 crates',
        reply_by: '2s',
        params: { 'X-target': '10', 'X-max-rounds': '5', 'X-select': 'lowest' },
      });
      await h.conversation(t.bus, r.conversation_id);
      await until(r.conversation_id, new AbortController().signal, rejected('p4'));
      const { conversation: c, messages } = await t.bus.reads.getConversation(r.conversation_id);
      expect(c).toMatchObject({ state: 'completed', reason: 'awarded to p2' });
      expect(canonical(messages, 'buyer')).toEqual([
        'cfp buyer>p1,p2,p3,p4',
        'propose p1>buyer',
        'propose p2>buyer',
        'propose p3>buyer',
        'reject-proposal buyer>p1 (another round)',
        'reject-proposal buyer>p3 (another round)',
        'cfp buyer>p1,p2,p3',
        'propose p1>buyer',
        'propose p2>buyer',
        'refuse p3>buyer',
        'reject-proposal buyer>p1 (another round)',
        'cfp buyer>p1,p2',
        'propose p1>buyer',
        'propose p2>buyer',
        'accept-proposal buyer>p2',
        'reject-proposal buyer>p1 (outbid)',
        'reject-proposal buyer>p2 (superseded)',
        'reject-proposal buyer>p2 (superseded)',
        'inform p2>buyer',
        'propose p4>buyer',
        'reject-proposal buyer>p4 (late)',
      ]);
      // Every proposal is answered exactly once.
      const proposals = messages.map((s) => s.message).filter((m) => m.performative === 'propose');
      for (const p of proposals) {
        const answers = messages.filter(
          (s) =>
            s.message.in_reply_to === (p.reply_with ?? p.id) &&
            (s.message.performative === 'accept-proposal' || s.message.performative === 'reject-proposal'),
        );
        expect(answers, `answers to ${p.sender}'s ${JSON.stringify(p.content)}`).toHaveLength(1);
      }
    });

    it('Contract Net (fipa00029): the deadline decides, the tie and the loser are rejected, a late proposal too', async () => {
      const quote =
        (price: number, wait?: (m: AclMessage) => (ms: AclMessage[]) => boolean): InProcessHandler =>
        async (m, _r, ctx): Promise<AgentAnswer> => {
          if (m.performative === 'accept-proposal') return { performative: 'inform', content: 'shipped' };
          if (m.performative !== 'cfp') return undefined;
          if (wait) await until(m.conversation_id, ctx.signal, wait(m));
          return { performative: 'propose', content: { price } };
        };
      const t = await h.start({
        agents: ['c1', 'c2', 'c3', 'c4', 'c5'].map((b) => [b, ['ship']] as [string, string[]]),
        handlers: {
          c1: quote(12),
          c2: quote(9),
          c3: () => ({ performative: 'refuse', content: 'busy' }),
          c4: late(ended, '{"price": 1}'),
          // Ties c2, after it: the earlier proposal wins.
          c5: quote(9, (m) => (ms) => answeredBy(ms, m, 'c2')),
        },
        config: { cfp_deadline: 20_000 },
      });
      bus = t.bus;
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-contract-net',
        sender: 'buyer',
        capability: 'ship',
        content: 'ship 3 boxes',
        reply_by: '2s',
        params: { 'X-select': 'lowest', 'X-select-field': 'price' },
      });
      await h.conversation(t.bus, r.conversation_id);
      await until(r.conversation_id, new AbortController().signal, rejected('c4'));
      const { conversation: c, messages } = await t.bus.reads.getConversation(r.conversation_id);
      expect(c).toMatchObject({ state: 'completed', reason: 'awarded to c2' });
      expect(canonical(messages, 'buyer')).toEqual([
        'cfp buyer>c1,c2,c3,c4,c5',
        'propose c1>buyer',
        'propose c2>buyer',
        'propose c5>buyer',
        'refuse c3>buyer',
        'accept-proposal buyer>c2',
        'reject-proposal buyer>c1 (not selected)',
        'reject-proposal buyer>c5 (not selected)',
        'inform c2>buyer',
        'propose c4>buyer',
        'reject-proposal buyer>c4 (late)',
      ]);
    });
  });
}
