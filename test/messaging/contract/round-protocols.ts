/**
 * The protocols that run in rounds (English and Dutch auctions, the iterated Contract Net), part
 * of the bus contract: run by runBusContract against every configuration. Bidders are in-process
 * handlers with a limit each, so every round's outcome is known in advance.
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
import { CaxtonError } from '../../../src/shared/errors.js';
import type { BusFactory, ContractBus, ContractOptions } from './contract-kit.js';

const WAIT_MS = 30_000;
const terminal = (c: Conversation) => c.state !== 'initiated' && c.state !== 'in_progress';

/** The asking price of an auction round: the platform's rounds carry X-price, the first one X-start-price. */
const asking = (m: AclMessage) => Number(m.params['X-price'] ?? m.params['X-start-price']);

/** A bidder that bids while the asking price is within its limit (rising to it: English; falling to it: Dutch). */
function bidder(limit: number): InProcessHandler {
  return (m): AgentAnswer => {
    if (m.performative === 'cfp') {
      const price = asking(m);
      const ok = price <= limit;
      return ok
        ? { performative: 'propose', content: `price: ${price}` }
        : { performative: 'refuse', content: `not at ${price}` };
    }
    if (m.performative === 'accept-proposal') return { performative: 'inform', content: 'paid' };
    return undefined;
  };
}

export function runRoundContract(name: string, factory: BusFactory, opts: ContractOptions = {}): void {
  const open: ContractBus[] = [];
  const start = async (...args: Parameters<BusFactory>) => {
    const t = await factory(...args);
    open.push(t);
    return t;
  };
  const ended = async (bus: MessagingBus, id: ConversationId) => {
    const c = await bus.wait(id, WAIT_MS);
    expect(terminal(c), `conversation ${id} still ${c.state} after ${WAIT_MS} ms`).toBe(true);
    return bus.reads.getConversation(id);
  };
  const of = (messages: { message: AclMessage }[], p: string) =>
    messages.filter((s) => s.message.performative === p).map((s) => s.message);

  describe.runIf(opts.runs ?? true)(`round protocols: ${name}`, () => {
    afterEach(async () => {
      for (const t of open.splice(0).reverse()) await t.close();
    });

    it('English auction: the price rises while two bid, the last bidder standing wins at its price, the others are rejected', async () => {
      const t = await start({
        agents: [
          ['b1', ['art']],
          ['b2', ['art']],
          ['b3', ['art']],
        ],
        handlers: { b1: bidder(15), b2: bidder(12), b3: bidder(8) },
        config: { cfp_deadline: 10_000 },
      });
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-english-auction',
        sender: 'seller',
        capability: 'art',
        content: 'a painting',
        params: { 'X-start-price': '5', 'X-increment': '2' },
      });
      const { conversation: c, messages } = await ended(t.bus, r.conversation_id);
      expect(c).toMatchObject({ state: 'completed', reason: 'awarded to b1', protocol: 'fipa-english-auction' });
      // Rounds at 5, 7 (all three bid), 9, 11 (b1 and b2), 13 (b1 alone): b1 wins at 13.
      const rounds = of(messages, 'cfp');
      expect(rounds.map(asking)).toEqual([5, 7, 9, 11, 13]);
      expect(rounds.slice(1).map((m) => [...m.receivers].sort())).toEqual([
        ['b1', 'b2', 'b3'],
        ['b1', 'b2', 'b3'],
        ['b1', 'b2'],
        ['b1', 'b2'],
      ]);
      expect(rounds.slice(1).every((m) => m.sender === 'seller')).toBe(true);
      const accept = of(messages, 'accept-proposal');
      expect(accept.map((m) => [m.sender, m.receivers, (m.content as { price: number }).price])).toEqual([
        ['seller', ['b1'], 13],
      ]);
      // Every other bidder is told it lost: b2 and b3 dropped out on the way.
      expect(of(messages, 'reject-proposal').map((m) => [m.receivers[0], m.params['X-reject-reason']])).toEqual([
        ['b2', 'dropped out'],
        ['b3', 'dropped out'],
      ]);
      // The auction's start and end notices go to every bidder; the winner's inform ends it.
      expect(of(messages, 'inform').map((m) => [m.sender, m.params['X-auction'] ?? null])).toEqual([
        ['seller', 'start'],
        ['seller', 'end'],
        ['b1', null],
      ]);
    });

    it('English auction: a winning bid below the reserve is rejected and the auction fails, naming the reserve', async () => {
      const t = await start({
        agents: [
          ['b1', ['art']],
          ['b2', ['art']],
        ],
        handlers: { b1: bidder(9), b2: bidder(6) },
      });
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-english-auction',
        sender: 'seller',
        capability: 'art',
        content: 'a vase',
        params: { 'X-start-price': '5', 'X-increment': '2', 'X-reserve': '20' },
      });
      const { conversation: c, messages } = await ended(t.bus, r.conversation_id);
      expect(c.state).toBe('failed');
      expect(c.reason).toBe('the highest bid at 7 (b1) is below the reserve price 20');
      expect(of(messages, 'accept-proposal')).toEqual([]);
      expect(of(messages, 'reject-proposal').map((m) => [m.receivers[0], m.params['X-reject-reason']])).toEqual([
        ['b1', 'below reserve'],
        ['b2', 'no sale'],
      ]);
      const end = of(messages, 'inform').find((m) => m.params['X-auction'] === 'end')!;
      expect(end.content).toMatchObject({ auction: 'ended', result: 'not sold' });
    });

    it('English auction: a bidder that never answers is passed over at the round deadline', async () => {
      const t = await start({
        agents: [
          ['b1', ['art']],
          ['silent', ['art']],
        ],
        handlers: { b1: bidder(10), silent: () => new Promise<AgentAnswer>(() => undefined) },
        config: { cfp_deadline: 1_500 },
      });
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-english-auction',
        sender: 'seller',
        capability: 'art',
        content: 'a chair',
        params: { 'X-start-price': '4' },
      });
      const { conversation: c, messages } = await ended(t.bus, r.conversation_id);
      expect(c).toMatchObject({ state: 'completed', reason: 'awarded to b1' });
      expect(of(messages, 'cfp')).toHaveLength(1);
      expect((of(messages, 'accept-proposal')[0]!.content as { price: number }).price).toBe(4);
    });

    it('Contract Net decided at its deadline: a bidder that never answers does not hold back the award', async () => {
      const t = await start({
        agents: [
          ['b1', ['art']],
          ['silent', ['art']],
        ],
        handlers: {
          b1: (m) =>
            m.performative === 'cfp'
              ? { performative: 'propose', content: 'price: 5' }
              : { performative: 'inform', content: 'made' },
          silent: () => new Promise<AgentAnswer>(() => undefined),
        },
        config: { cfp_deadline: 1_500 },
      });
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-contract-net',
        sender: 'buyer',
        capability: 'art',
        content: 'a chair',
      });
      const { conversation: c, messages } = await ended(t.bus, r.conversation_id);
      expect(c).toMatchObject({ state: 'completed', reason: 'awarded to b1' });
      expect(of(messages, 'accept-proposal').map((m) => m.receivers)).toEqual([['b1']]);
      expect(of(messages, 'inform').map((m) => m.sender)).toEqual(['b1']);
    });

    it('Dutch auction: the price falls until the first bid, which wins at that price', async () => {
      const t = await start({
        agents: [
          ['b1', ['bulbs']],
          ['b2', ['bulbs']],
        ],
        handlers: { b1: bidder(72), b2: bidder(65) },
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
      expect(c).toMatchObject({ state: 'completed', reason: 'awarded to b1' });
      expect(of(messages, 'cfp').map(asking)).toEqual([100, 90, 80, 70]);
      expect(of(messages, 'accept-proposal').map((m) => [m.receivers, (m.content as { price: number }).price])).toEqual(
        [[['b1'], 70]],
      );
    });

    it('Dutch auction: no bid down to the reserve fails the auction', async () => {
      const t = await start({
        agents: [['b1', ['bulbs']]],
        handlers: { b1: bidder(40) },
      });
      const r = await t.bus.submit({
        performative: 'cfp',
        protocol: 'fipa-dutch-auction',
        sender: 'grower',
        capability: 'bulbs',
        content: 'bulbs',
        params: { 'X-start-price': '80', 'X-decrement': '10', 'X-reserve': '50' },
      });
      const { conversation: c, messages } = await ended(t.bus, r.conversation_id);
      expect(c).toMatchObject({ state: 'failed', reason: 'no bid down to the reserve price 50' });
      expect(of(messages, 'cfp').map(asking)).toEqual([80, 70, 60, 50]);
    });

    it('iterated Contract Net: the call repeats with the best offer until one meets the target, then the best is awarded', async () => {
      const quotes: Record<string, number[]> = { p1: [30, 24, 18], p2: [20, 14, 8] };
      const calls: Record<string, number> = { p1: 0, p2: 0 };
      const seen: unknown[] = [];
      const quoter: InProcessHandler = (m, receiver): AgentAnswer => {
        const me = receiver.agent;
        if (m.performative === 'cfp') {
          seen.push(m.content);
          return { performative: 'propose', content: `price: ${quotes[me]![calls[me]!++]}` };
        }
        if (m.performative === 'accept-proposal') return { performative: 'inform', content: 'done' };
        return undefined;
      };
      const t = await start({
        agents: [
          ['p1', ['haul']],
          ['p2', ['haul']],
        ],
        handlers: { p1: quoter, p2: quoter },
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
      expect(of(messages, 'cfp')).toHaveLength(3);
      expect(of(messages, 'cfp')[1]!.content).toEqual({ item: 'move 3 crates', round: 2, best_offer: 20 });
      expect(of(messages, 'accept-proposal').map((m) => [m.receivers, (m.content as { price: number }).price])).toEqual(
        [[['p2'], 8]],
      );
      // Each iteration rejects the proposals it does not keep; the award answers the rest, once each.
      expect(of(messages, 'reject-proposal').map((m) => [m.receivers[0], m.params['X-reject-reason']])).toEqual([
        ['p1', 'another round'],
        ['p1', 'another round'],
        ['p2', 'superseded'],
        ['p2', 'superseded'],
        ['p1', 'outbid'],
      ]);
    });

    it('a round protocol refuses a first message without its terms, naming the parameter', async () => {
      const t = await start({ agents: [['b1', ['art']]], handlers: { b1: bidder(1) } });
      const missing = await t.bus
        .submit({ performative: 'cfp', protocol: 'fipa-dutch-auction', sender: 's', capability: 'art', content: 'x' })
        .catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(CaxtonError);
      expect((missing as CaxtonError).code).toBe('invalid_message');
      expect((missing as CaxtonError).message).toMatch(/params\.X-start-price.*is required for fipa-dutch-auction/);
      expect(((missing as CaxtonError).details as { issues?: unknown[] }).issues).toContainEqual({
        field: 'params.X-decrement',
        message: 'is required for fipa-dutch-auction',
      });
      const notCfp = await t.bus
        .submit({
          performative: 'request',
          protocol: 'fipa-english-auction',
          sender: 's',
          capability: 'art',
          content: 'x',
        })
        .catch((e: unknown) => e);
      expect((notCfp as CaxtonError).message).toMatch(/starts with a "cfp", not "request"/);
      const bad = await t.bus
        .submit({
          performative: 'cfp',
          protocol: 'fipa-english-auction',
          sender: 's',
          capability: 'art',
          content: 'x',
          params: { 'X-start-price': 'ten' },
        })
        .catch((e: unknown) => e);
      expect((bad as CaxtonError).message).toMatch(/params\.X-start-price.*expected a number of at least 0, got "ten"/);
    });
  });
}
