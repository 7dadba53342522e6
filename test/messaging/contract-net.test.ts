/**
 * Contract Net among three configuration agents on a real server: their LLM is the scripted
 * OpenAI-compatible stub, so the executor, the provider client and the tool loop all run for real.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConversationId } from '../../src/messaging/index.js';
import { openaiProvider, removeTempDirs, setTestKeys, startCaxton, type Caxton } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from '../execution/helpers/llm-stub.js';

const PRICES: Record<string, number> = { 'carrier-a': 30, 'carrier-b': 12, 'carrier-c': 21 };
/** Delivery days: the cheapest is the slowest, so a selection by `days` picks another carrier than by price. */
const DAYS: Record<string, number> = { 'carrier-a': 1, 'carrier-b': 5, 'carrier-c': 3 };

function lastUser(hit: StubHit): string {
  const msgs = hit.body.messages as { role: string; content: string }[];
  return [...msgs].reverse().find((m) => m.role === 'user')!.content;
}

function agentOf(hit: StubHit): string {
  const sys = (hit.body.messages as { role: string; content: string }[])[0]!.content;
  return /You are ([\w-]+)\./.exec(sys)![1]!;
}

/** A model's answer through one of the acts its step offers as tools (src/messaging/acts.ts). */
const act = (name: string, args: Record<string, unknown>): Reply => ({
  content: '',
  tool_calls: [{ id: `call_${name}`, name, arguments: args }],
});

/** Carriers bid their price on a cfp and report delivery when awarded; the planner books through send_message. */
function script(hit: StubHit): Reply {
  const agent = agentOf(hit);
  const prompt = lastUser(hit);
  const msgs = hit.body.messages as { role: string; content: string }[];
  if (agent === 'planner') {
    const toolResult = msgs.find((m) => m.role === 'tool');
    if (!toolResult)
      return {
        content: '',
        tool_calls: [
          {
            id: 'call_1',
            name: 'send_message',
            arguments: { capability: 'transport', performative: 'cfp', content: 'Ship 3 boxes to Lyon' },
          },
        ],
      };
    return { content: `Booked. ${toolResult.content}` };
  }
  if (prompt.includes('"cfp" message')) {
    // Markers in the task steer one test's bidders: [refuse NAME|all], [slow NAME] (answers after
    // the cfp's 1 s reply_by), [fast NAME] (the others answer 400 ms later).
    if (prompt.includes(`[refuse ${agent}]`) || prompt.includes('[refuse all]'))
      return act('refuse', { reason: `${agent} does not carry that` });
    const fast = /\[fast ([\w-]+)\]/.exec(prompt)?.[1];
    const delayMs = prompt.includes(`[slow ${agent}]`) ? 2_500 : fast !== undefined && fast !== agent ? 400 : 0;
    return { ...act('propose', { price: PRICES[agent], currency: 'EUR', days: DAYS[agent] }), delayMs };
  }
  if (prompt.includes('"accept-proposal" message'))
    return { content: `Delivered by ${agent} for ${PRICES[agent]} EUR` };
  return { content: `unexpected prompt for ${agent}` };
}

let stub: LlmStub;
let cx: Caxton;

beforeAll(async () => {
  setTestKeys();
  stub = await startLlmStub((hit) => script(hit));
  cx = await startCaxton({
    config: { llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } } },
    agents: [
      ...Object.keys(PRICES).map((name) => ({
        name,
        capabilities: ['transport'],
        messaging: { bid_fields: { days: { type: 'integer', required: true } } },
      })),
      { name: 'planner', capabilities: ['planning'], tools: ['send_message'] },
    ],
  });
});

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

async function conversation(id: ConversationId) {
  return cx.server.bus.reads.getConversation(id);
}

describe('Contract Net', () => {
  it('awards the lowest price: one accept-proposal, two reject-proposals, the winner informs, completed', async () => {
    const r = await cx.server.bus.submit({
      performative: 'cfp',
      capability: 'transport',
      content: 'Ship 3 boxes to Paris',
      reply_by: '20s',
    });
    expect(r.routing).toBe('all');
    expect(r.routed_to).toEqual(['carrier-a', 'carrier-b', 'carrier-c']);
    const done = await cx.server.bus.wait(r.conversation_id, 20_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    expect(done.protocol).toBe('fipa-contract-net');
    const { messages } = await conversation(r.conversation_id);
    const of = (p: string) => messages.map((s) => s.message).filter((m) => m.performative === p);
    expect(of('cfp')).toHaveLength(1);
    expect(
      of('propose')
        .map((m) => m.sender)
        .sort(),
    ).toEqual(['carrier-a', 'carrier-b', 'carrier-c']);
    expect(of('accept-proposal')).toHaveLength(1);
    expect(of('accept-proposal')[0]!.receivers).toEqual(['carrier-b']);
    expect(of('reject-proposal')).toHaveLength(2);
    expect(
      of('reject-proposal')
        .map((m) => m.receivers[0])
        .sort(),
    ).toEqual(['carrier-a', 'carrier-c']);
    expect(of('inform')).toHaveLength(1);
    expect(of('inform')[0]!.sender).toBe('carrier-b');
    expect(of('inform')[0]!.content).toBe('Delivered by carrier-b for 12 EUR');
    // The accept-proposal answers carrier-b's proposal, and the reject-proposals were never run through the model.
    const proposalOfB = of('propose').find((m) => m.sender === 'carrier-b')!;
    expect(of('accept-proposal')[0]!.in_reply_to).toBe(proposalOfB.id);
    const awarded = stub.hits.filter(
      (h) => lastUser(h).includes(r.conversation_id) && lastUser(h).includes('"reject-proposal"'),
    );
    expect(awarded).toHaveLength(0);
  });

  it('the X-select parameter changes the rule: highest price wins', async () => {
    const r = await cx.server.bus.submit({
      performative: 'cfp',
      capability: 'transport',
      content: 'Premium shipping',
      'X-select': 'highest',
    });
    const done = await cx.server.bus.wait(r.conversation_id, 20_000);
    expect(done.state).toBe('completed');
    const { messages } = await conversation(r.conversation_id);
    expect(messages.find((s) => s.message.performative === 'accept-proposal')!.message.receivers).toEqual([
      'carrier-a',
    ]);
  });

  const performatives = async (id: ConversationId) => (await conversation(id)).messages.map((s) => s.message);

  it('a refusing bidder is left out: the best of the others wins, and the refuser gets neither accept nor reject', async () => {
    const r = await cx.server.bus.submit({
      performative: 'cfp',
      capability: 'transport',
      content: 'Ship glass [refuse carrier-b]',
      reply_by: '20s',
    });
    const done = await cx.server.bus.wait(r.conversation_id, 20_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    const msgs = await performatives(r.conversation_id);
    expect(msgs.filter((m) => m.performative === 'refuse').map((m) => m.sender)).toEqual(['carrier-b']);
    expect(msgs.filter((m) => m.performative === 'accept-proposal').map((m) => m.receivers)).toEqual([['carrier-c']]);
    expect(msgs.filter((m) => m.performative === 'reject-proposal').map((m) => m.receivers)).toEqual([['carrier-a']]);
    expect(msgs.filter((m) => m.performative === 'inform').map((m) => m.sender)).toEqual(['carrier-c']);
  });

  it('a bidder that misses reply_by is not waited for: the contract goes to the best proposal in time', async () => {
    const r = await cx.server.bus.submit({
      performative: 'cfp',
      capability: 'transport',
      content: 'Ship today [slow carrier-b]',
      reply_by: '1s',
    });
    const done = await cx.server.bus.wait(r.conversation_id, 20_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    const msgs = await performatives(r.conversation_id);
    // carrier-b is the cheapest, but its proposal came after the deadline.
    const accepts = msgs.filter((m) => m.performative === 'accept-proposal');
    expect(accepts.map((m) => m.receivers)).toEqual([['carrier-c']]);
    expect(msgs.filter((m) => m.performative === 'reject-proposal').map((m) => m.receivers)).toEqual([['carrier-a']]);
    expect(
      msgs.some(
        (m) =>
          m.receivers.includes('carrier-b') &&
          (m.performative === 'accept-proposal' || m.performative === 'reject-proposal'),
      ),
    ).toBe(false);
  });

  it('no proposals: every bidder refuses, the conversation fails and says why', async () => {
    const r = await cx.server.bus.submit({
      performative: 'cfp',
      capability: 'transport',
      content: 'Ship a piano to the moon [refuse all]',
      reply_by: '20s',
    });
    const done = await cx.server.bus.wait(r.conversation_id, 20_000);
    expect(done.state).toBe('failed');
    expect(done.reason).toBe('no proposals (3 refused, 0 did not answer by the deadline)');
    const msgs = await performatives(r.conversation_id);
    expect(msgs.filter((m) => m.performative === 'refuse')).toHaveLength(3);
    expect(msgs.some((m) => m.performative === 'accept-proposal' || m.performative === 'reject-proposal')).toBe(false);
  });

  it('X-select: first awards the first proposal received, whatever its price', async () => {
    const r = await cx.server.bus.submit({
      performative: 'cfp',
      capability: 'transport',
      content: 'Ship now [fast carrier-c]',
      reply_by: '20s',
      'X-select': 'first',
    });
    const done = await cx.server.bus.wait(r.conversation_id, 20_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    const msgs = await performatives(r.conversation_id);
    expect(msgs.find((m) => m.performative === 'propose')!.sender).toBe('carrier-c');
    // carrier-c is neither the cheapest nor the dearest: only the rule "first" picks it.
    expect(msgs.filter((m) => m.performative === 'accept-proposal').map((m) => m.receivers)).toEqual([['carrier-c']]);
    expect(msgs.find((m) => m.performative === 'accept-proposal')!.params['X-select']).toBe('first');
  });

  it('X-select-field: the lowest value of the named field wins, not the lowest price', async () => {
    const r = await cx.server.bus.submit({
      performative: 'cfp',
      capability: 'transport',
      content: 'Ship fast',
      reply_by: '20s',
      'X-select': 'lowest',
      'X-select-field': 'days',
    });
    const done = await cx.server.bus.wait(r.conversation_id, 20_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    const msgs = await performatives(r.conversation_id);
    const accept = msgs.find((m) => m.performative === 'accept-proposal')!;
    expect(accept.receivers).toEqual(['carrier-a']);
    expect(accept.params).toMatchObject({ 'X-select': 'lowest', 'X-select-field': 'days' });
    expect(
      msgs
        .filter((m) => m.performative === 'reject-proposal')
        .map((m) => m.receivers[0])
        .sort(),
    ).toEqual(['carrier-b', 'carrier-c']);
  });

  it('an agent runs a Contract Net itself through send_message and answers with the outcome', async () => {
    const res = await cx.invoke('planner', { request: 'Get 3 boxes shipped to Lyon' });
    expect(res.status, res.text).toBe(200);
    expect(res.json.tool_calls[0].name).toBe('send_message');
    expect(res.json.tool_calls[0].is_error).toBe(false);
    expect(res.json.content).toContain('is completed');
    expect(res.json.content).toContain('[inform] from carrier-b: Delivered by carrier-b for 12 EUR');
    const list = await cx.server.bus.reads.listConversations({ participant: 'planner' });
    const cnp = list.items.find((c) => c.protocol === 'fipa-contract-net')!;
    expect(cnp.initiator).toBe('planner');
    expect(cnp.state).toBe('completed');
  });
});
