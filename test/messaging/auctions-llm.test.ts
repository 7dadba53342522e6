/**
 * Auctions among configuration agents on a real server: each bidder's LLM is the scripted
 * OpenAI-compatible stub, which reads the asking price from the prompt the platform renders and
 * bids or drops out by the agent's limit. The auction is started over REST, as a client would.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AclMessage, ConversationId } from '../../src/messaging/index.js';
import { openaiProvider, removeTempDirs, setTestKeys, startCaxton, type Caxton } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from '../execution/helpers/llm-stub.js';

/** What each collector would pay at most for the lot. */
const LIMITS: Record<string, number> = { 'collector-a': 150, 'collector-b': 120, 'collector-c': 80 };

function lastUser(hit: StubHit): string {
  const msgs = hit.body.messages as { role: string; content: string }[];
  return [...msgs].reverse().find((m) => m.role === 'user')!.content;
}

function agentOf(hit: StubHit): string {
  const sys = (hit.body.messages as { role: string; content: string }[])[0]!.content;
  return /You are ([\w-]+)\./.exec(sys)![1]!;
}

const act = (name: string, args: Record<string, unknown>): Reply => ({
  content: '',
  tool_calls: [{ id: `call_${name}`, name, arguments: args }],
});

/** Bids the asking price while it is within the agent's limit; pays when it wins. */
function script(hit: StubHit): Reply {
  const agent = agentOf(hit);
  const prompt = lastUser(hit);
  if (prompt.includes('"cfp" message')) {
    const asking = Number(/Asking price: (\d+(?:\.\d+)?)/.exec(prompt)?.[1]);
    // Bids and drop-outs go through the acts offered to the model as tools (src/messaging/acts.ts).
    if (!Number.isFinite(asking)) return act('refuse', { reason: 'no asking price in the call' });
    return asking <= LIMITS[agent]!
      ? act('propose', { price: asking })
      : act('refuse', { reason: `${asking} is above my limit` });
  }
  if (prompt.includes('"accept-proposal" message')) return { content: `${agent} pays and collects the lot` };
  return { content: `unexpected prompt for ${agent}` };
}

let stub: LlmStub;
let cx: Caxton;

beforeAll(async () => {
  setTestKeys();
  stub = await startLlmStub((hit) => script(hit));
  cx = await startCaxton({
    config: { llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url) } } },
    agents: Object.keys(LIMITS).map((name) => ({ name, capabilities: ['collecting'] })),
  });
});

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

async function start(body: Record<string, unknown>): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${cx.url}/api/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const messagesOf = async (id: ConversationId) =>
  (await cx.server.bus.reads.getConversation(id)).messages.map((s) => s.message);
const of = (ms: AclMessage[], p: string) => ms.filter((m) => m.performative === p);

describe('auctions with LLM bidders', () => {
  it('English: the LLM bidders raise the price by 20 until one is left; it wins and pays', async () => {
    const r = await start({
      performative: 'cfp',
      protocol: 'fipa-english-auction',
      capability: 'collecting',
      content: 'Lot 7: a first edition',
      params: { 'X-start-price': '60', 'X-increment': '20' },
      reply_by: '20s',
    });
    expect(r.status).toBe(202);
    const id = r.json.conversation_id as ConversationId;
    const done = await cx.server.bus.wait(id, 60_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    expect(done.reason).toBe('awarded to collector-a');
    const ms = await messagesOf(id);
    // 60, 80 (all three), 100, 120 (a and b), 140 (a alone).
    expect(of(ms, 'cfp').map((m) => Number(m.params['X-price'] ?? m.params['X-start-price']))).toEqual([
      60, 80, 100, 120, 140,
    ]);
    expect(of(ms, 'accept-proposal').map((m) => [m.receivers[0], (m.content as { price: number }).price])).toEqual([
      ['collector-a', 140],
    ]);
    // The auction's start and end notices are recorded, not put to the bidders' models.
    expect(of(ms, 'inform').map((m) => m.params['X-auction'] ?? m.content)).toEqual([
      'start',
      'end',
      'collector-a pays and collects the lot',
    ]);
    // Every bid came from a model call that saw the asking price.
    const asked = stub.hits.filter((h) => lastUser(h).includes(id) && lastUser(h).includes('Asking price:'));
    expect(asked.length).toBe(of(ms, 'propose').length + of(ms, 'refuse').length);
  });

  it('Dutch: the first LLM bidder to accept the falling price wins', async () => {
    const r = await start({
      performative: 'cfp',
      protocol: 'fipa-dutch-auction',
      capability: 'collecting',
      content: 'Lot 9: a clock',
      params: { 'X-start-price': '200', 'X-decrement': '25', 'X-reserve': '50' },
      reply_by: '20s',
    });
    expect(r.status).toBe(202);
    const id = r.json.conversation_id as ConversationId;
    const done = await cx.server.bus.wait(id, 60_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    const ms = await messagesOf(id);
    expect(of(ms, 'cfp').map((m) => Number(m.params['X-price'] ?? m.params['X-start-price']))).toEqual([200, 175, 150]);
    expect(of(ms, 'accept-proposal').map((m) => [m.receivers[0], (m.content as { price: number }).price])).toEqual([
      ['collector-a', 150],
    ]);
  });

  it('a start without its terms is refused with 400, naming the parameter', async () => {
    const r = await start({
      performative: 'cfp',
      protocol: 'fipa-english-auction',
      capability: 'collecting',
      content: 'Lot 1',
    });
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.json)).toContain('params.X-start-price');
  });
});
