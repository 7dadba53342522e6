/**
 * One-way conversations (no protocol, one receiver, an act that expects no reply), part of the bus
 * contract: run against each configuration by its test file. A store may keep such a conversation
 * with its message until a step ends or continues it (ADR 0080); whatever it keeps, every read,
 * filter, count, gauge, wait, event and deadline sees the conversation as it sees any other, and a
 * second message into it continues the same conversation.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type {
  AclMessage,
  BusEvent,
  Conversation,
  ConversationId,
  InProcessHandler,
  MessagingBus,
} from '../../../src/messaging/index.js';
import { CaxtonError } from '../../../src/shared/errors.js';
import { waitUntil } from '../../helpers/wait.js';
import type { BusFactory, ContractBus, ContractOptions, ContractSetup } from './bus-contract.js';

const WAIT_MS = 20_000;
const terminal = (c: Conversation) => c.state !== 'initiated' && c.state !== 'in_progress';

/** A handler held until the case lets it go (or the bus stops the delivery). */
function gate(): { handler: InProcessHandler; open: () => void; entered: () => boolean } {
  let open!: () => void;
  let entered = false;
  const wait = new Promise<void>((r) => (open = r));
  const handler: InProcessHandler = async (_m, _r, ctx) => {
    entered = true;
    await Promise.race([
      wait,
      new Promise<never>((_, reject) =>
        ctx.signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true }),
      ),
    ]);
    return undefined;
  };
  return { handler, open, entered: () => entered };
}

export function runOneWayContract(name: string, factory: BusFactory, opts: ContractOptions = {}): void {
  const open: ContractBus[] = [];
  const gates: (() => void)[] = [];
  const start = async (setup: ContractSetup) => {
    const t = await factory(setup);
    open.push(t);
    return t;
  };
  const held = () => {
    const g = gate();
    gates.push(g.open);
    return g;
  };
  const ended = async (bus: MessagingBus, id: ConversationId) => {
    const c = await bus.wait(id, WAIT_MS);
    expect(terminal(c), `conversation ${id} still ${c.state} after ${WAIT_MS} ms`).toBe(true);
    // A cluster wakes a waiter on the state event, which may come before its commit is readable.
    return (
      await waitUntil(async () => {
        const now = (await bus.reads.getConversation(id)).conversation;
        return terminal(now) && now;
      })
    ).value;
  };
  const acts = (messages: { message: AclMessage }[]) =>
    messages.map((s) => `${s.message.performative}:${s.message.sender}`);
  const states = (events: BusEvent[], id: ConversationId) =>
    events.flatMap((e) => (e.type === 'state' && e.conversation_id === id ? [e.conversation.state] : []));

  describe.runIf(opts.runs ?? true)(`one-way conversations: ${name}`, () => {
    afterEach(async () => {
      for (const g of gates.splice(0)) g();
      for (const t of open.splice(0).reverse()) await t.close();
    });

    it('in flight it is read, listed, filtered, scoped, counted and waited on as initiated; delivered, it is completed', async () => {
      const g = held();
      const t = await start({ agents: [['sink', ['notes']]], handlers: { sink: g.handler } });
      const events: BusEvent[] = [];
      t.bus.on('event', (e) => events.push(e));
      const r = await t.bus.submit({ performative: 'inform', sender: 'client', capability: 'notes', content: 'hi' });
      expect(r).toMatchObject({ routed_to: ['sink'], routing: 'all', duplicate: false });
      await waitUntil(() => g.entered(), { what: 'the delivery in the handler' });

      const { conversation: c, messages } = await t.bus.reads.getConversation(r.conversation_id);
      expect(c).toMatchObject({
        id: r.conversation_id,
        protocol: null,
        state: 'initiated',
        initiator: 'client',
        participants: ['client', 'sink'],
        capability: 'notes',
        turns: 1,
        reason: null,
      });
      expect(Date.parse(c.expires_at!)).toBeGreaterThan(Date.now());
      expect(c.created_at).toBe(c.updated_at);
      expect(acts(messages)).toEqual(['inform:client']);

      const list = async (q: Parameters<MessagingBus['reads']['listConversations']>[0]) => {
        const page = await t.bus.reads.listConversations(q);
        return [page.total, page.items.map((x) => x.id)];
      };
      const one = [1, [r.conversation_id]];
      const none = [0, []];
      expect(await list({})).toEqual(one);
      expect((await t.bus.reads.listConversations({})).items[0]).toEqual(c);
      expect(await list({ state: 'initiated' })).toEqual(one);
      expect(await list({ state: 'completed' })).toEqual(none);
      expect(await list({ participant: 'sink' })).toEqual(one);
      expect(await list({ participant: 'nobody' })).toEqual(none);
      expect(await list({ agents: ['*'] })).toEqual(one);
      expect(await list({ agents: ['other-*'] })).toEqual(none);
      expect(await list({ limit: 1, offset: 1 })).toEqual([1, []]);
      await waitUntil(() => t.bus.stats().open_conversations === 1, { what: 'the open-conversations gauge at 1' });
      expect((await t.bus.wait(r.conversation_id, 50)).state).toBe('initiated');

      g.open();
      const done = await ended(t.bus, r.conversation_id);
      expect(done).toMatchObject({
        ...c,
        state: 'completed',
        reason: 'delivered',
        expires_at: null,
        updated_at: expect.any(String) as string,
      });
      expect(await list({ state: 'completed' })).toEqual(one);
      expect(await list({ state: 'initiated' })).toEqual(none);
      expect(await list({})).toEqual(one);
      await waitUntil(() => t.bus.stats().open_conversations === 0, { what: 'the open-conversations gauge at 0' });
      await waitUntil(() => states(events, r.conversation_id).length === 2);
      expect(states(events, r.conversation_id)).toEqual(['in_progress', 'completed']);
      const closed = await t.bus
        .submit({
          performative: 'inform',
          sender: 'client',
          receiver: 'sink',
          conversation_id: r.conversation_id,
          content: 'late',
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(closed).toBeInstanceOf(CaxtonError);
      expect((closed as CaxtonError).code).toBe('conversation_closed');
    });

    it('a second message into it while the first is in flight continues the same conversation', async () => {
      const g = held();
      const t = await start({
        agents: [
          ['sink', ['notes']],
          ['other', []],
        ],
        handlers: { sink: g.handler, other: () => undefined },
      });
      const r = await t.bus.submit({ performative: 'inform', sender: 'client', receiver: 'sink', content: 'one' });
      await waitUntil(() => g.entered(), { what: 'the delivery in the handler' });
      const first = (await t.bus.reads.getConversation(r.conversation_id)).conversation;
      const r2 = await t.bus.submit({
        performative: 'inform',
        sender: 'client',
        receiver: 'other',
        conversation_id: r.conversation_id,
        content: 'two',
      });
      expect(r2.conversation_id).toBe(r.conversation_id);
      const { value: c } = await waitUntil(async () => {
        const now = (await t.bus.reads.getConversation(r.conversation_id)).conversation;
        return now.state === 'in_progress' && now;
      });
      expect(c).toMatchObject({
        state: 'in_progress',
        initiator: 'client',
        participants: ['client', 'sink', 'other'],
        turns: 2,
        created_at: first.created_at,
        max_turns: first.max_turns,
      });
      const page = await t.bus.reads.listConversations({});
      expect([page.total, page.items.map((x) => [x.id, x.turns])]).toEqual([1, [[r.conversation_id, 2]]]);
      expect((await t.bus.reads.listConversations({ participant: 'other' })).total).toBe(1);
      await waitUntil(() => t.bus.stats().open_conversations === 1, { what: 'one open conversation, not two' });
      expect((await t.bus.reads.listConversations({ state: 'initiated' })).total).toBe(0);
      g.open();
      const done = await ended(t.bus, r.conversation_id);
      expect(done).toMatchObject({ state: 'completed', reason: 'delivered', turns: 2 });
      const { messages } = await t.bus.reads.getConversation(r.conversation_id);
      expect(acts(messages)).toEqual(['inform:client', 'inform:client']);
    });

    it('dead-lettered, it is failed with the reason; replayed, it is completed', async () => {
      let ok = false;
      const t = await start({
        agents: [['sink', ['notes']]],
        config: { retry_base: 20, max_attempts: 2 },
        handlers: {
          sink: () => {
            if (!ok) throw new CaxtonError('llm_error', 'model overloaded');
            return undefined;
          },
        },
      });
      const r = await t.bus.submit({ performative: 'inform', sender: 'client', receiver: 'sink', content: 'x' });
      const failed = await ended(t.bus, r.conversation_id);
      expect(failed).toMatchObject({ state: 'failed', turns: 2, participants: ['client', 'sink', 'caxton'] });
      expect(failed.reason).toMatch(/^delivery to "sink" failed 2 times/);
      expect((await t.bus.reads.listConversations({ state: 'failed' })).total).toBe(1);
      expect((await t.bus.reads.listConversations({ state: 'initiated' })).total).toBe(0);
      const { messages } = await t.bus.reads.getConversation(r.conversation_id);
      expect(acts(messages)).toEqual(['inform:client', 'failure:caxton']);
      const dead = await t.bus.reads.deadLetters();
      expect(dead.total).toBe(1);
      ok = true;
      await t.bus.replay(dead.items[0]!.id);
      const { value: replayed } = await waitUntil(async () => {
        const now = (await t.bus.reads.getConversation(r.conversation_id)).conversation;
        return now.state === 'completed' && now;
      });
      expect(replayed.reason).toBe('delivered');
      expect((await t.bus.reads.listConversations({})).total).toBe(1);
    });

    it('in flight across a restart, it is read as initiated by the next bus, which delivers and completes it', async () => {
      const g = held();
      const t = await start({ agents: [['sink', ['notes']]], handlers: { sink: g.handler } });
      const r = await t.bus.submit({ performative: 'inform', sender: 'client', receiver: 'sink', content: 'x' });
      await waitUntil(() => g.entered(), { what: 'the delivery in the handler' });
      const before = (await t.bus.reads.getConversation(r.conversation_id)).conversation;
      open.splice(open.indexOf(t), 1);
      let after = 0;
      const next = await t.restart({ sink: () => void after++ });
      open.push(next);
      const c = await ended(next.bus, r.conversation_id);
      expect(c).toMatchObject({
        ...before,
        state: 'completed',
        reason: 'delivered',
        expires_at: null,
        updated_at: expect.any(String) as string,
      });
      expect(after).toBe(1);
      const page = await next.bus.reads.listConversations({});
      expect([page.total, page.items.map((x) => x.id)]).toEqual([1, [r.conversation_id]]);
    });

    it('undelivered within the conversation ttl, it expires', async () => {
      const g = held();
      const t = await start({
        agents: [['sink', ['notes']]],
        config: { conversation_ttl: 1000 },
        handlers: { sink: g.handler },
      });
      const events: BusEvent[] = [];
      t.bus.on('event', (e) => events.push(e));
      const r = await t.bus.submit({ performative: 'inform', sender: 'client', receiver: 'sink', content: 'x' });
      const c = await ended(t.bus, r.conversation_id);
      expect(c).toMatchObject({ state: 'expired', reason: 'no activity within the conversation ttl', turns: 1 });
      expect((await t.bus.reads.listConversations({ state: 'expired' })).total).toBe(1);
      expect((await t.bus.reads.listConversations({})).total).toBe(1);
      expect(states(events, r.conversation_id)).toEqual(['expired']);
      await waitUntil(() => t.bus.stats().open_conversations === 0, { what: 'the open-conversations gauge at 0' });
    });
  });
}
