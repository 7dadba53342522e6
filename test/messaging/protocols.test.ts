/**
 * The interaction protocols (src/messaging/protocols/steps.ts), driven through the real bus over a
 * real SQLite file: what they find again after a restart (Contract Net calls, subscriptions) and
 * what they decide alone (endless subscriptions, the request's agree).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type AclMessage, type ConversationId, type MessageHandler } from '../../src/messaging/index.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import { agentDef, deploy, openBus, type TestBus } from './helpers.js';

const open: TestBus[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close();
  removeTempDirs();
});

function start(opts: Parameters<typeof openBus>[0] = {}): TestBus {
  const t = openBus(opts);
  open.push(t);
  t.bus.start();
  return t;
}

/** Closes a bus as a stopping server does, keeping its data dir for the next one. */
async function stop(t: TestBus): Promise<void> {
  open.splice(open.indexOf(t), 1);
  await t.close();
}

async function messagesOf(t: TestBus, id: ConversationId): Promise<AclMessage[]> {
  return (await t.bus.reads.getConversation(id)).messages.map((s) => s.message);
}

describe('Contract Net across a restart', () => {
  it('rebuilds an open call from the stored proposals and awards it once the missing bidder answers', async () => {
    const first = start({
      handler: (m, r) =>
        r.agent === 'bid-a' ? { performative: 'propose', content: 'price: 20' } : new Promise(() => {}),
    });
    deploy(first.registry, agentDef('bid-a', ['haul']));
    deploy(first.registry, agentDef('bid-b', ['haul']));
    const cfp = await first.bus.submit({
      performative: 'cfp',
      capability: 'haul',
      content: 'move 3 crates',
      reply_by: '60s',
      sender: 'shipper',
    });
    expect(cfp.routed_to).toEqual(['bid-a', 'bid-b']);
    await waitUntil(
      async () => (await messagesOf(first, cfp.conversation_id)).some((m) => m.performative === 'propose'),
      { what: "bid-a's proposal" },
    );
    await stop(first);

    const seen: string[] = [];
    // Asynchronous, as an agent is: its answer comes after start() has rebuilt the call. (A handler
    // answering synchronously inside start() would answer before the call is tracked again.)
    const handler: MessageHandler = async (m, r) => {
      await Promise.resolve();
      seen.push(`${r.agent}:${m.performative}`);
      if (m.performative === 'cfp') return { performative: 'propose', content: 'price: 5' };
      if (m.performative === 'accept-proposal') return { content: `delivered by ${r.agent}` };
      return undefined;
    };
    const second = openBus({ dir: first.dir, registry: first.registry, handler });
    open.push(second);
    // Only bid-b's cfp was never acknowledged; bid-a's proposal comes back from the store.
    expect(second.bus.start().redelivering).toBe(1);
    const done = await second.bus.wait(cfp.conversation_id, 10_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    expect(done.reason).toBe('awarded to bid-b');
    expect(seen).toEqual(['bid-b:cfp', 'bid-b:accept-proposal']);
    const decisions = (await messagesOf(second, cfp.conversation_id))
      .filter((m) => m.performative.endsWith('-proposal'))
      .map((m) => `${m.performative}>${m.receivers.join()}`);
    expect(decisions.sort()).toEqual(['accept-proposal>bid-b', 'reject-proposal>bid-a']);
  });
});

describe('Subscribe', () => {
  it('keeps forwarding to an outside subscriber after a restart (the subscription is reloaded)', async () => {
    const agree: MessageHandler = (m) =>
      m.performative === 'subscribe' ? { performative: 'agree', content: 'ok' } : undefined;
    const first = start({ handler: agree });
    deploy(first.registry, agentDef('ticker', ['quotes']));
    const sub = await first.bus.submit({
      performative: 'subscribe',
      capability: 'quotes',
      content: 'all quotes',
      sender: 'dashboard',
    });
    await waitUntil(
      async () => (await first.bus.reads.getConversation(sub.conversation_id)).conversation.state === 'in_progress',
      { what: 'the agree' },
    );
    await first.bus.settled();
    await stop(first);

    const second = openBus({ dir: first.dir, registry: first.registry, handler: agree });
    open.push(second);
    second.bus.start();
    const inform = await second.bus.submit({
      performative: 'inform',
      capability: 'quotes',
      content: 'ACME 41',
      sender: 'exchange',
    });
    await second.bus.settled();
    const note = (await messagesOf(second, sub.conversation_id)).find((m) => m.performative === 'inform');
    expect(note).toMatchObject({
      sender: 'exchange',
      content: 'ACME 41',
      receivers: [],
      protocol: 'fipa-subscribe',
      in_reply_to: sub.id,
      params: { 'X-notification-of': inform.id },
    });
  });

  it('never expires, while a conversation of another protocol with the same ttl does', async () => {
    const handler: MessageHandler = (m) =>
      m.performative === 'subscribe' ? { performative: 'agree', content: 'ok' } : new Promise(() => {});
    const t = start({ config: { conversation_ttl: 300 }, handler });
    deploy(t.registry, agentDef('ticker', ['quotes']));
    const sub = await t.bus.submit({
      performative: 'subscribe',
      capability: 'quotes',
      content: 'all quotes',
      sender: 'dashboard',
    });
    await waitUntil(
      async () => (await t.bus.reads.getConversation(sub.conversation_id)).conversation.state === 'in_progress',
      { what: 'the agree' },
    );
    const req = await t.bus.submit({
      performative: 'request',
      capability: 'quotes',
      content: 'a quote, please',
      sender: 'dashboard',
    });
    const ended = await t.bus.wait(req.conversation_id, 5000);
    expect(ended.state).toBe('expired');
    expect((await t.bus.reads.getConversation(sub.conversation_id)).conversation.state).toBe('in_progress');
  });
});

describe('FIPA-Request reply acts', () => {
  it("puts the platform's agree before an inform or failure, never before a refuse", async () => {
    const t = start({
      handler: (m) => ({
        performative: m.content === 'no' ? 'refuse' : 'failure',
        content: `answer to ${m.content as string}`,
      }),
    });
    deploy(t.registry, agentDef('clerk', ['clerk']));
    const failed = await t.bus.submit({ performative: 'request', capability: 'clerk', content: 'try' });
    const refused = await t.bus.submit({ performative: 'request', capability: 'clerk', content: 'no' });
    const a = await t.bus.wait(failed.conversation_id, 5000);
    const b = await t.bus.wait(refused.conversation_id, 5000);
    expect([a.state, a.reason]).toEqual(['failed', 'clerk answered failure']);
    expect([b.state, b.reason]).toEqual(['failed', 'clerk answered refuse']);
    expect(
      (await messagesOf(t, failed.conversation_id)).map((m) => `${m.performative}:${m.content as string}`),
    ).toEqual(['request:try', 'agree:', 'failure:answer to try']);
    expect(
      (await messagesOf(t, refused.conversation_id)).map((m) => `${m.performative}:${m.content as string}`),
    ).toEqual(['request:no', 'refuse:answer to no']);
  });
});
