import { afterEach, describe, expect, it } from 'vitest';
import { CaxtonError } from '../../src/shared/errors.js';
import type { AclMessage, AgentAnswer, ConversationId, MessageHandler } from '../../src/messaging/index.js';
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

/** A handler recording what each agent received and answering "done by NAME". */
function recorder(answer: (m: AclMessage, agent: string) => AgentAnswer = (_m, a) => ({ content: `done by ${a}` })): {
  handler: MessageHandler;
  seen: { agent: string; m: AclMessage }[];
} {
  const seen: { agent: string; m: AclMessage }[] = [];
  return {
    seen,
    handler: (m, r) => {
      seen.push({ agent: r.agent, m });
      return answer(m, r.agent);
    },
  };
}

async function errorOf(p: Promise<unknown>): Promise<CaxtonError> {
  try {
    await p;
  } catch (e) {
    return e as CaxtonError;
  }
  throw new Error('expected a rejection');
}

describe('routing', () => {
  it('sends a request to one provider, round-robin, and completes the FIPA-Request conversation', async () => {
    const rec = recorder();
    const t = start({ handler: rec.handler });
    for (const n of ['a1', 'a2', 'a3']) deploy(t.registry, agentDef(n, ['analysis']));
    const results = [];
    for (let i = 0; i < 6; i++)
      results.push(await t.bus.submit({ performative: 'request', capability: 'analysis', content: `job ${i}` }));
    expect(results.map((r) => r.routed_to[0])).toEqual(['a1', 'a2', 'a3', 'a1', 'a2', 'a3']);
    expect(results.every((r) => r.routing === 'one' && !r.duplicate)).toBe(true);
    const conv = await t.bus.wait(results[0]!.conversation_id, 5000);
    expect(conv.state).toBe('completed');
    const { messages } = await t.bus.reads.getConversation(conv.id);
    expect(messages.map((s) => `${s.message.performative}:${s.message.sender}`)).toEqual([
      'request:user',
      'agree:a1',
      'inform:a1',
    ]);
    expect(messages[2]!.message.content).toBe('done by a1');
    expect(messages[2]!.message.in_reply_to).toBe(results[0]!.id);
  });

  it('broadcasts inform to every provider and completes once all acknowledged', async () => {
    const rec = recorder(() => undefined);
    const t = start({ handler: rec.handler });
    for (const n of ['b1', 'b2', 'b3']) deploy(t.registry, agentDef(n, ['news']));
    const r = await t.bus.submit({ performative: 'inform', capability: 'news', content: 'rates are up' });
    expect(r.routing).toBe('all');
    expect(r.routed_to).toEqual(['b1', 'b2', 'b3']);
    const conv = await t.bus.wait(r.conversation_id, 5000);
    expect(conv.state).toBe('completed');
    expect(rec.seen.map((s) => s.agent).sort()).toEqual(['b1', 'b2', 'b3']);
  });

  it('least-loaded picks the provider with the least work in hand', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const seen: string[] = [];
    const t = start({
      config: { routing: 'least-loaded' },
      handler: async (_m, r) => {
        seen.push(r.agent);
        if (r.agent === 'slow') await gate;
        return { content: 'ok' };
      },
    });
    deploy(t.registry, agentDef('fast', ['work']));
    deploy(t.registry, agentDef('slow', ['work']));
    // Keep "slow" busy with messages addressed to it by name.
    for (let i = 0; i < 3; i++) await t.bus.submit({ performative: 'request', receiver: 'slow', content: 'busy' });
    const picks = [];
    for (let i = 0; i < 4; i++)
      picks.push((await t.bus.submit({ performative: 'request', capability: 'work', content: 'x' })).routed_to[0]);
    expect(picks).toEqual(['fast', 'fast', 'fast', 'fast']);
    release();
  });

  it('answers an unknown capability with a failure reply and a failed conversation', async () => {
    const t = start({ handler: recorder().handler });
    const r = await t.bus.submit({ performative: 'request', capability: 'nobody-does-this', content: 'hi' });
    expect(r.routed_to).toEqual([]);
    expect(r.routing).toBe('none');
    expect(r.failure?.reason).toBe('unknown_capability');
    const { conversation, messages } = await t.bus.reads.getConversation(r.conversation_id);
    expect(conversation.state).toBe('failed');
    expect(conversation.reason).toMatch(/no agent provides capability "nobody-does-this"/);
    expect(messages.map((s) => s.message.performative)).toEqual(['request', 'failure']);
    expect(messages[1]!.message.sender).toBe('caxton');
  });

  it('passes over providers that do not accept the protocol, ontology or language', async () => {
    const rec = recorder();
    const t = start({ handler: rec.handler });
    deploy(t.registry, agentDef('fin', ['quotes'], '[messaging]\nontologies = ["finance"]\n'));
    deploy(t.registry, agentDef('weather', ['quotes'], '[messaging]\nontologies = ["weather"]\n'));
    const r = await t.bus.submit({
      performative: 'query-ref',
      capability: 'quotes',
      ontology: 'weather',
      content: 'today?',
    });
    expect(r.routed_to).toEqual(['weather']);
    const none = await t.bus.submit({
      performative: 'query-ref',
      capability: 'quotes',
      ontology: 'sports',
      content: 'score?',
    });
    expect(none.failure?.reason).toBe('no_acceptable_provider');
  });

  it('stops a message loop: an agent in the chain never receives the message again', async () => {
    const t = start({ handler: recorder().handler });
    deploy(t.registry, agentDef('ping', ['ping']));
    deploy(t.registry, agentDef('pong', ['pong']));
    const m = t.bus.parse({ performative: 'request', capability: 'ping', content: 'again', sender: 'pong' });
    const r = await t.bus.send({ ...m, chain: ['ping', 'pong'] });
    expect(r.failure?.reason).toBe('loop_detected');
    expect(r.failure?.message).toContain('ping → pong → ping');
    const hops = await t.bus.send({
      ...t.bus.parse({ performative: 'request', capability: 'pong', content: 'x' }),
      chain: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'],
    });
    expect(hops.failure?.message).toMatch(/limit is 8/);
  });
});

describe('delivery', () => {
  it('delivers a message id seen twice only once', async () => {
    const rec = recorder();
    const t = start({ handler: rec.handler });
    deploy(t.registry, agentDef('once', ['x']));
    const body = { id: 'client-msg-1', performative: 'request', capability: 'x', content: 'hello' };
    const [a, b] = await Promise.all([t.bus.submit(body), t.bus.submit(body)]);
    const c = await t.bus.submit(body);
    expect(a.duplicate).toBe(false);
    expect(b.duplicate).toBe(true);
    expect(c.duplicate).toBe(true);
    expect(c.conversation_id).toBe(a.conversation_id);
    await t.bus.wait(a.conversation_id, 5000);
    expect(rec.seen).toHaveLength(1);
  });

  it('retries with backoff, then dead-letters with a failure reply; replay delivers it', async () => {
    let fail = true;
    let calls = 0;
    const t = start({
      config: { max_attempts: 3, retry_base: 10, retry_max: 50 },
      handler: () => {
        calls++;
        if (fail) throw new CaxtonError('llm_error', 'provider down');
        return { content: 'recovered' };
      },
    });
    deploy(t.registry, agentDef('flaky', ['flaky']));
    const r = await t.bus.submit({ performative: 'request', capability: 'flaky', content: 'try' });
    const conv = await t.bus.wait(r.conversation_id, 5000);
    expect(conv.state).toBe('failed');
    expect(calls).toBe(3);
    const dl = await t.bus.reads.deadLetters();
    expect(dl.total).toBe(1);
    expect(dl.items[0]!.attempts).toBe(3);
    expect(dl.items[0]!.last_error).toMatch(/failed 3 times; last error: provider down/);
    expect(dl.items[0]!.message.id).toBe(r.id);
    fail = false;
    await t.bus.replay(dl.items[0]!.id);
    const after = await t.bus.wait(r.conversation_id, 5000);
    expect(after.state).toBe('completed');
    expect((await t.bus.reads.deadLetters()).total).toBe(0);
    const { messages } = await t.bus.reads.getConversation(r.conversation_id);
    expect(messages.at(-1)!.message.content).toBe('recovered');
    await expect(t.bus.replay(dl.items[0]!.id)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('wait() with an already-aborted signal returns the current state at once', async () => {
    const t = start({ handler: () => new Promise(() => undefined) });
    deploy(t.registry, agentDef('stuck', ['stuck']));
    const r = await t.bus.submit({ performative: 'request', capability: 'stuck', content: 'x' });
    const conv = await t.bus.wait(r.conversation_id, 60_000, AbortSignal.abort());
    expect(conv.state).not.toBe('completed');
  });

  it('an execution failure (deadline) is a failure reply, not a dead letter', async () => {
    const t = start({
      handler: () => {
        throw new CaxtonError('timeout', 'agent "slow" did not finish within 10 ms');
      },
    });
    deploy(t.registry, agentDef('slow', ['slow']));
    const r = await t.bus.submit({ performative: 'request', capability: 'slow', content: 'x' });
    const conv = await t.bus.wait(r.conversation_id, 5000);
    expect(conv.state).toBe('failed');
    const { messages } = await t.bus.reads.getConversation(r.conversation_id);
    expect(messages.map((s) => s.message.performative)).toEqual(['request', 'agree', 'failure']);
    expect((await t.bus.reads.deadLetters()).total).toBe(0);
  });

  it('limits concurrency per agent and answers 429 (queue_full) when the queue is full', async () => {
    let running = 0;
    let peak = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const t = start({
      config: { max_queue: 5, agent_concurrency: 2 },
      handler: async () => {
        running++;
        peak = Math.max(peak, running);
        await gate;
        running--;
        return { content: 'ok' };
      },
    });
    deploy(t.registry, agentDef('busy', ['busy']));
    for (let i = 0; i < 5; i++) await t.bus.submit({ performative: 'request', capability: 'busy', content: `${i}` });
    const e = await errorOf(t.bus.submit({ performative: 'request', capability: 'busy', content: 'one too many' }));
    expect(e.code).toBe('queue_full');
    expect((e.details as { retry_after: number }).retry_after).toBeGreaterThan(0);
    expect(peak).toBe(2);
    release();
    await waitUntil(() => t.bus.stats().queued === 0);
    expect(peak).toBe(2);
  });

  it('redelivers after a restart what was accepted but not acknowledged', async () => {
    const first = start({ handler: () => new Promise(() => {}) }); // never answers
    deploy(first.registry, agentDef('later', ['later']));
    const ids = [];
    for (let i = 0; i < 3; i++)
      ids.push((await first.bus.submit({ performative: 'request', capability: 'later', content: `m${i}` })).id);
    await first.bus.close();
    first.db.close();
    open.splice(open.indexOf(first), 1);

    const rec = recorder();
    const second = openBus({ dir: first.dir, registry: first.registry, handler: rec.handler });
    open.push(second);
    expect(second.bus.start().redelivering).toBe(3);
    await waitUntil(() => rec.seen.length === 3);
    expect(rec.seen.map((s) => s.m.id).sort()).toEqual([...ids].sort());
  });
});

describe('conversations', () => {
  it('emits events in order, each after its write committed: the terminal state comes last', async () => {
    const t = start({ handler: recorder().handler });
    deploy(t.registry, agentDef('solo', ['solo']));
    const events: string[] = [];
    t.bus.on('event', (e) =>
      events.push(e.type === 'message' ? `message:${e.message.performative}` : `state:${e.conversation.state}`),
    );
    const r = await t.bus.submit({ performative: 'request', capability: 'solo', content: 'go' });
    await t.bus.wait(r.conversation_id, 5000);
    expect(events).toEqual([
      'message:request',
      'state:in_progress',
      'message:agree',
      'message:inform',
      'state:completed',
    ]);
    // What the events announced is on disk.
    const row = t.db.prepare('SELECT state FROM conversations WHERE id = ?').pluck().get(r.conversation_id);
    expect(row).toBe('completed');
  });

  it('refuses messages to a closed conversation and enforces the turn limit', async () => {
    const t = start({ config: { max_conversation_turns: 4 }, handler: recorder().handler });
    deploy(t.registry, agentDef('talker', ['talk']));
    const r = await t.bus.submit({ performative: 'request', capability: 'talk', content: 'one' });
    await t.bus.wait(r.conversation_id, 5000);
    const e = await errorOf(
      t.bus.submit({
        performative: 'request',
        capability: 'talk',
        content: 'again',
        conversation_id: r.conversation_id,
      }),
    );
    expect(e.code).toBe('conversation_closed');

    const conv = 'conv-turns' as ConversationId;
    await t.bus.submit({
      performative: 'inform',
      receiver: 'talker',
      content: '1',
      conversation_id: conv,
      protocol: 'fipa-subscribe',
    });
    for (let i = 2; i <= 4; i++)
      await t.bus.submit({ performative: 'inform', receiver: 'talker', content: `${i}`, conversation_id: conv });
    const over = await errorOf(
      t.bus.submit({ performative: 'inform', receiver: 'talker', content: '5', conversation_id: conv }),
    );
    expect(over.code).toBe('conversation_closed');
    expect(over.message).toMatch(/at most 4 messages/);
    expect((await t.bus.reads.getConversation(conv)).conversation.state).toBe('failed');
  });

  it('expires a conversation whose reply_by passes without a reply', async () => {
    const t = start({ handler: () => new Promise(() => {}) });
    deploy(t.registry, agentDef('mute', ['mute']));
    const r = await t.bus.submit({
      performative: 'query-ref',
      capability: 'mute',
      content: 'anyone?',
      reply_by: '200ms',
    });
    const conv = await t.bus.wait(r.conversation_id, 5000);
    expect(conv.state).toBe('expired');
  });

  it('subscribe/notify: informs to the capability reach the subscriber until it cancels', async () => {
    const t = start({
      handler: (m, r) =>
        m.performative === 'subscribe' ? { performative: 'agree', content: `${r.agent} will notify` } : undefined,
    });
    deploy(t.registry, agentDef('feed', ['prices']));
    const sub = await t.bus.submit({
      performative: 'subscribe',
      capability: 'prices',
      content: 'all price changes',
      sender: 'watcher',
    });
    await waitUntil(
      async () => (await t.bus.reads.getConversation(sub.conversation_id)).conversation.state === 'in_progress',
    );
    await t.bus.submit({ performative: 'inform', capability: 'prices', content: 'EUR 1.10', sender: 'market' });
    await t.bus.submit({ performative: 'inform', capability: 'prices', content: 'EUR 1.11', sender: 'market' });
    await waitUntil(
      async () =>
        (await t.bus.reads.getConversation(sub.conversation_id)).messages.filter(
          (s) => s.message.performative === 'inform',
        ).length === 2,
    );
    await t.bus.submit({
      performative: 'cancel',
      receiver: 'feed',
      conversation_id: sub.conversation_id,
      sender: 'watcher',
      content: '',
    });
    const done = await t.bus.wait(sub.conversation_id, 5000);
    expect(done.state).toBe('completed');
    await t.bus.submit({ performative: 'inform', capability: 'prices', content: 'EUR 1.12', sender: 'market' });
    await t.bus.settled();
    const { messages } = await t.bus.reads.getConversation(sub.conversation_id);
    expect(messages.map((s) => `${s.message.performative}:${s.message.content as string}`)).toEqual([
      'subscribe:all price changes',
      'agree:feed will notify',
      'inform:EUR 1.10',
      'inform:EUR 1.11',
      'cancel:',
    ]);
  });
});
