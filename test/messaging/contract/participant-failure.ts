/**
 * A participant's failure is that participant's (part of the bus contract, run against every
 * configuration): in each protocol with several participants, one bidder whose deliveries are
 * dead-lettered is recorded failed in the conversation, and the protocol completes with the others.
 * The dead bidder's handler throws an error the bus retries (an overloaded model) on every attempt.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type {
  AclMessage,
  AgentAnswer,
  ConversationId,
  InProcessHandler,
  MessagingBus,
} from '../../../src/messaging/index.js';
import { harness, overloaded, type BusFactory, type ContractOptions } from './contract-kit.js';

const asking = (m: AclMessage) => Number(m.params['X-price'] ?? m.params['X-start-price']);

/** A bidder that bids while the asking price is within its limit. */
function bidder(limit: number): InProcessHandler {
  return (m): AgentAnswer => {
    if (m.performative === 'cfp') {
      const price = asking(m);
      return price <= limit
        ? { performative: 'propose', content: `price: ${price}` }
        : { performative: 'refuse', content: `not at ${price}` };
    }
    if (m.performative === 'accept-proposal') return { performative: 'inform', content: 'paid' };
    return undefined;
  };
}

/** A contractor quoting `price` for any call. */
const quoting =
  (price: number): InProcessHandler =>
  (m) =>
    m.performative === 'cfp'
      ? { performative: 'propose', content: { price } }
      : m.performative === 'accept-proposal'
        ? { performative: 'inform', content: 'done' }
        : undefined;

/** A participant whose every delivery fails with an error the bus retries, until it is dead-lettered. */
const dead: InProcessHandler = () => {
  throw overloaded();
};

/** Two attempts, quick retries: a dead participant is dead-lettered at once. */
const QUICK = { retry_base: 20, max_attempts: 2, cfp_deadline: 20_000 };

export function participantFailureCases(name: string, factory: BusFactory, opts: ContractOptions = {}): void {
  const h = harness(factory, opts);
  const ended = async (bus: MessagingBus, id: ConversationId) => h.conversation(bus, id);
  const of = (messages: { message: AclMessage }[], p: string) =>
    messages.filter((s) => s.message.performative === p).map((s) => s.message);

  describe.runIf(opts.runs ?? true)(`a participant's failure is its own: ${name}`, () => {
    afterEach(() => h.cleanup());

    it('English auction: a dead bidder is recorded failed and the auction ends with the best live bid', async () => {
      const t = await h.start({
        agents: [
          ['b1', ['bidding']],
          ['b2', ['bidding']],
          ['b3', ['bidding']],
          ['b5', ['bidding']],
        ],
        handlers: { b1: bidder(15), b2: bidder(12), b3: bidder(8), b5: dead },
        config: QUICK,
      });
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-english-auction',
        sender: 'seller',
        capability: 'bidding',
        content: 'Lot 5',
        params: { 'X-start-price': '8', 'X-increment': '3' },
      });
      const { conversation: c, messages } = await ended(t.bus, r.conversation_id);
      // 8 (three bid), 11 (b1, b2), 14 (b1 alone): b1 wins at 14.
      expect(c).toMatchObject({ state: 'completed', reason: 'awarded to b1' });
      expect(c.failed_participants?.map((f) => f.agent)).toEqual(['b5']);
      expect(c.failed_participants![0]!.reason).toMatch(/^delivery to "b5" failed 2 times; last error: /);
      expect(c.failed_participants![0]!.dead_letter).toEqual(expect.any(Number));
      expect(of(messages, 'accept-proposal').map((m) => [m.receivers, (m.content as { price: number }).price])).toEqual(
        [[['b1'], 14]],
      );
      // Nothing more goes to the dead bidder once it failed: the later rounds and the end notice leave it out.
      expect(
        of(messages, 'cfp')
          .slice(1)
          .flatMap((m) => m.receivers),
      ).not.toContain('b5');
      const end = of(messages, 'inform').find((m) => m.params['X-auction'] === 'end')!;
      expect([...end.receivers].sort()).toEqual(['b1', 'b2', 'b3']);
      const dl = await t.bus.reads.deadLetters();
      expect(dl.items.every((d) => d.receiver === 'b5')).toBe(true);
    });

    it('Contract Net: a dead contractor is recorded failed and the best live proposal wins', async () => {
      const t = await h.start({
        agents: [
          ['c1', ['ship']],
          ['c2', ['ship']],
          ['c3', ['ship']],
          ['c5', ['ship']],
        ],
        handlers: { c1: quoting(12), c2: quoting(9), c3: quoting(15), c5: dead },
        config: QUICK,
      });
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-contract-net',
        sender: 'buyer',
        capability: 'ship',
        content: 'ship 3 boxes',
        params: { 'X-select': 'lowest', 'X-select-field': 'price' },
      });
      const { conversation: c, messages } = await ended(t.bus, r.conversation_id);
      expect(c).toMatchObject({ state: 'completed', reason: 'awarded to c2' });
      expect(c.failed_participants?.map((f) => f.agent)).toEqual(['c5']);
      expect(
        of(messages, 'reject-proposal')
          .flatMap((m) => m.receivers)
          .sort(),
      ).toEqual(['c1', 'c3']);
    });

    it('Contract Net: when every contractor is dead, the call fails by its own rule (no proposals)', async () => {
      const t = await h.start({
        agents: [
          ['c5', ['ship']],
          ['c6', ['ship']],
        ],
        handlers: { c5: dead, c6: dead },
        config: QUICK,
      });
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-contract-net',
        sender: 'buyer',
        capability: 'ship',
        content: 'ship 3 boxes',
      });
      const { conversation: c } = await ended(t.bus, r.conversation_id);
      expect(c).toMatchObject({
        state: 'failed',
        reason: 'no proposals (0 refused, 2 could not be reached, 0 did not answer by the deadline)',
      });
      expect(c.failed_participants?.map((f) => f.agent).sort()).toEqual(['c5', 'c6']);
    });

    it('Dutch auction: a dead bidder is left out of the later rounds and the first live bid wins', async () => {
      const t = await h.start({
        agents: [
          ['d1', ['bulbs']],
          ['d2', ['bulbs']],
          ['d5', ['bulbs']],
        ],
        handlers: { d1: bidder(72), d2: bidder(65), d5: dead },
        config: QUICK,
      });
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-dutch-auction',
        sender: 'grower',
        capability: 'bulbs',
        content: '1000 tulip bulbs',
        params: { 'X-start-price': '100', 'X-decrement': '10', 'X-reserve': '50' },
      });
      const { conversation: c, messages } = await ended(t.bus, r.conversation_id);
      expect(c).toMatchObject({ state: 'completed', reason: 'awarded to d1' });
      expect(c.failed_participants?.map((f) => f.agent)).toEqual(['d5']);
      expect(of(messages, 'cfp').map(asking)).toEqual([100, 90, 80, 70]);
      expect(
        of(messages, 'cfp')
          .slice(1)
          .flatMap((m) => m.receivers),
      ).not.toContain('d5');
    });

    it('iterated Contract Net: a dead contractor is recorded failed and the iterations go on with the others', async () => {
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
        agents: [
          ['p1', ['haul']],
          ['p2', ['haul']],
          ['p5', ['haul']],
        ],
        handlers: { p1: quoter, p2: quoter, p5: dead },
        config: QUICK,
      });
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-iterated-contract-net',
        sender: 'buyer',
        capability: 'haul',
        content: 'move 3 crates',
        params: { 'X-target': '10', 'X-max-rounds': '5', 'X-select': 'lowest' },
      });
      const { conversation: c, messages } = await ended(t.bus, r.conversation_id);
      expect(c).toMatchObject({ state: 'completed', reason: 'awarded to p2' });
      expect(c.failed_participants?.map((f) => f.agent)).toEqual(['p5']);
      expect(of(messages, 'cfp')).toHaveLength(3);
    });

    it('the winner unreachable: the award cannot be made good, and the conversation fails naming it', async () => {
      const t = await h.start({
        agents: [
          ['c1', ['ship']],
          ['c2', ['ship']],
        ],
        handlers: {
          c1: (m) => {
            if (m.performative === 'cfp') return { performative: 'propose', content: { price: 5 } };
            throw overloaded();
          },
          c2: quoting(9),
        },
        config: QUICK,
      });
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-contract-net',
        sender: 'buyer',
        capability: 'ship',
        content: 'x',
        params: { 'X-select': 'lowest', 'X-select-field': 'price' },
      });
      const { conversation: c } = await ended(t.bus, r.conversation_id);
      expect(c.state).toBe('failed');
      expect(c.reason).toMatch(/^delivery to "c1" failed 2 times; last error: /);
      expect(c.failed_participants).toBeUndefined();
    });
  });
}
