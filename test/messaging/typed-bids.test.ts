/**
 * Typed bids: model-driven bidders answer a cfp through the `propose` act offered to their model
 * as a tool, forced with tool_choice, against the strict OpenAI and Anthropic stand-ins (which
 * refuse a request the real API would refuse). Their text says other numbers than their calls:
 * the selection reads the typed price, never the prose. The conversation API carries the bids,
 * the rule, the ranking and why the winner won.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConversationId } from '../../src/messaging/index.js';
import {
  anthropicProvider,
  openaiProvider,
  removeTempDirs,
  setTestKeys,
  startCaxton,
  type Caxton,
} from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from '../execution/helpers/llm-stub.js';

/** What each bidder's model calls `propose` with, and the prose it writes beside the call. */
const BIDS: Record<string, { args: Record<string, unknown>; text: string }> = {
  'oai-a': { args: { price: 12, currency: 'EUR' }, text: 'For 3 boxes I can do it, price: 2 per box.' },
  'oai-b': { args: { price: 9 }, text: 'Sure, I would say 40 at most, delivered in 1 day.' },
  'ant-a': { args: { price: 12, currency: 'EUR' }, text: 'For 3 boxes I can do it, price: 2 per box.' },
  'ant-b': { args: { price: 9 }, text: 'Sure, I would say 40 at most, delivered in 1 day.' },
  'days-a': { args: { price: 9, delivery_days: 5 }, text: 'price: 1, 1 day' },
  'days-b': { args: { price: 9, delivery_days: 2 }, text: 'price: 1, 9 days' },
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const msgs = (hit: StubHit): { role: string; content: unknown }[] => hit.body.messages;
function agentOf(hit: StubHit): string {
  const sys = hit.api === 'anthropic' ? String(hit.body.system) : String(msgs(hit)[0]!.content);
  return /You are ([\w-]+)\./.exec(sys)![1]!;
}
function lastUser(hit: StubHit): string {
  const u = [...msgs(hit)].reverse().find((m) => m.role === 'user')!;
  return typeof u.content === 'string' ? u.content : JSON.stringify(u.content);
}
const toolNames = (hit: StubHit): string[] =>
  ((hit.body.tools ?? []) as { name?: string; function?: { name: string } }[]).map((t) => t.function?.name ?? t.name!);

function script(hit: StubHit): Reply {
  const agent = agentOf(hit);
  const prompt = lastUser(hit);
  // A model that ignores tool_choice and writes its bid in prose.
  if (agent === 'prose-a' && prompt.includes('"cfp" message')) return { content: 'PROPOSE: price: 5 EUR' };
  if (prompt.includes('"cfp" message') && toolNames(hit).includes('propose')) {
    const bid = BIDS[agent]!;
    return {
      content: bid.text,
      tool_calls: [{ id: `toolu_${agent.replace('-', '')}`, name: 'propose', arguments: bid.args }],
    };
  }
  if (prompt.includes('"accept-proposal" message')) return { content: `${agent} delivered` };
  return { content: `unexpected prompt for ${agent}` };
}

let stub: LlmStub;
let cx: Caxton;

beforeAll(async () => {
  setTestKeys();
  stub = await startLlmStub((hit) => script(hit));
  cx = await startCaxton({
    config: {
      llm: { default_provider: 'oai', providers: { oai: openaiProvider(stub.url), ant: anthropicProvider(stub.url) } },
      messaging: { max_attempts: 1 },
    },
    agents: [
      { name: 'oai-a', capabilities: ['ship-openai'] },
      { name: 'oai-b', capabilities: ['ship-openai'] },
      { name: 'ant-a', capabilities: ['ship-anthropic'], llm: { provider: 'ant' } },
      { name: 'ant-b', capabilities: ['ship-anthropic'], llm: { provider: 'ant' } },
      { name: 'prose-a', capabilities: ['ship-prose'] },
      ...['days-a', 'days-b'].map((name) => ({
        name,
        capabilities: ['ship-fast'],
        messaging: {
          bid_fields: {
            delivery_days: { type: 'integer', required: true, minimum: 0, description: 'days to deliver' },
          },
        },
      })),
    ],
  });
});

afterAll(async () => {
  await cx?.close();
  await stub?.close();
  removeTempDirs();
});

async function run(body: Record<string, unknown>): Promise<{ id: ConversationId; doc: Record<string, Json> }> {
  const r = await cx.server.bus.submit({
    performative: 'cfp',
    content: 'Ship 3 boxes to Lyon',
    reply_by: '20s',
    ...body,
  });
  const done = await cx.server.bus.wait(r.conversation_id, 20_000);
  expect(done.state, done.reason ?? '').toBe('completed');
  const res = await fetch(`${cx.url}/api/v1/conversations/${r.conversation_id}`);
  expect(res.status).toBe(200);
  return { id: r.conversation_id, doc: (await res.json()) as Record<string, Json> };
}

const cfpHits = (id: string) =>
  stub.hits.filter((h) => lastUser(h).includes(id) && lastUser(h).includes('"cfp" message'));

describe.each([
  ['OpenAI', 'ship-openai', 'oai'],
  ['Anthropic', 'ship-anthropic', 'ant'],
])('typed bids against the strict %s stand-in', (_name, capability, prefix) => {
  it('the 9 wins: the selection reads the typed price of the propose call, not the numbers in the text', async () => {
    const { id, doc } = await run({ capability });
    const messages = doc.messages as { performative: string; sender: string; receivers: string[]; content: unknown }[];
    const proposals = messages.filter((m) => m.performative === 'propose');
    expect(Object.fromEntries(proposals.map((p) => [p.sender, p.content]))).toEqual({
      [`${prefix}-a`]: { price: 12, currency: 'EUR' },
      [`${prefix}-b`]: { price: 9 },
    });
    const accept = messages.find((m) => m.performative === 'accept-proposal')!;
    expect(accept.receivers).toEqual([`${prefix}-b`]);
    expect(messages.find((m) => m.performative === 'reject-proposal')!.receivers).toEqual([`${prefix}-a`]);
    // No request was refused by the stand-in.
    expect(cfpHits(id).every((h) => h.refused === undefined)).toBe(true);

    // The API carries the ranking and why.
    const bids = doc.bids;
    expect(bids.rule).toBe('lowest price');
    expect(bids.winner.sender).toBe(`${prefix}-b`);
    const ranking = bids.rounds[0].bids.map((b: Json) => [b.rank, b.sender, b.values.price.value, b.source, b.outcome]);
    expect(ranking).toEqual([
      [1, `${prefix}-b`, 9, 'typed', 'accepted'],
      [2, `${prefix}-a`, 12, 'typed', 'rejected'],
    ]);
    expect(bids.rounds[0].bids[1].fields).toEqual({ price: 12, currency: 'EUR' });
    expect(bids.why).toBe(`${prefix}-b won: lowest price: 9 against 12 (${prefix}-a)`);
  });

  it('the stand-in sees the acts as tools with their schemas and the forced tool_choice in valid form', async () => {
    const { id } = await run({ capability });
    const hits = cfpHits(id);
    expect(hits).toHaveLength(2);
    for (const h of hits) {
      expect(h.refused).toBeUndefined();
      expect(toolNames(h).sort()).toEqual(['propose', 'refuse']);
      if (h.api === 'openai') {
        expect(h.body.tool_choice).toBe('required');
        const propose = h.body.tools.find((t: Json) => t.function.name === 'propose').function;
        expect(propose.parameters.required).toEqual(['price']);
        expect(propose.parameters.properties.price.type).toBe('number');
      } else {
        expect(h.api).toBe('anthropic');
        expect(h.body.tool_choice).toEqual({ type: 'any' });
        const propose = h.body.tools.find((t: Json) => t.name === 'propose');
        expect(propose.input_schema.required).toEqual(['price']);
        expect(Object.keys(propose.input_schema.properties)).toEqual(['price', 'currency', 'terms', 'valid_until']);
      }
      // The prompt names the tools instead of the text markers.
      expect(lastUser(h)).toContain('call the "propose" tool');
    }
  });
});

describe('bid fields of the agent file', () => {
  it('extend the propose schema, and a rule ranks on them: lowest price, then fewest delivery_days', async () => {
    const { id, doc } = await run({ capability: 'ship-fast', 'X-select': 'lowest price, then fewest delivery_days' });
    for (const h of cfpHits(id)) {
      const propose = h.body.tools.find((t: Json) => t.function.name === 'propose').function;
      expect(propose.parameters.properties.delivery_days).toEqual({
        type: 'integer',
        description: 'days to deliver',
        minimum: 0,
      });
      expect(propose.parameters.required).toEqual(['price', 'delivery_days']);
    }
    const accept = doc.messages.find((m: Json) => m.performative === 'accept-proposal');
    expect(accept.receivers).toEqual(['days-b']);
    expect(doc.bids.rule).toBe('lowest price, then lowest delivery_days');
    expect(doc.bids.why).toBe('days-b won: tied with days-a on price 9; lowest delivery_days: 2 against 5 (days-a)');
  });

  it('a wrong bid field is refused at deploy, the error naming the field', async () => {
    const res = await fetch(`${cx.url}/api/v1/agents`, {
      method: 'POST',
      headers: { 'content-type': 'application/toml' },
      body: [
        'name = "bad-bidder"',
        'system_prompt = "You are bad-bidder."',
        '[messaging.bid_fields.delivery_days]',
        'type = "days"',
      ].join('\n'),
    });
    expect(res.status).toBe(422);
    const text = await res.text();
    expect(text).toContain('messaging.bid_fields.delivery_days.type');
    expect(text).toContain('expected \\"number\\", \\"integer\\", \\"string\\" or \\"boolean\\"');
  });
});

describe('a model that answers in prose though an act is forced', () => {
  it('makes no bid: its delivery fails with tool_choice_not_honoured, never a price read from its text', async () => {
    const r = await cx.server.bus.submit({
      performative: 'cfp',
      capability: 'ship-prose',
      content: 'x',
      reply_by: '20s',
    });
    const done = await cx.server.bus.wait(r.conversation_id, 30_000);
    expect(done.state).toBe('failed');
    const { messages } = await cx.server.bus.reads.getConversation(r.conversation_id);
    expect(messages.filter((m) => m.message.performative === 'propose')).toEqual([]);
    // Not retryable: the bus answers the caller with a failure that says why.
    const failure = messages.find((m) => m.message.performative === 'failure' && m.message.sender === 'prose-a');
    expect(JSON.stringify(failure?.message.content)).toContain(
      'was forced to call a tool (tool_choice \\"required\\"), but it answered in text',
    );
    expect(done.reason).toContain('no proposals');
  });
});

describe('a selection rule that is not one', () => {
  it('is refused when the cfp is sent, naming the parameter and what a rule looks like', async () => {
    const res = await fetch(`${cx.url}/api/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        performative: 'cfp',
        capability: 'ship-openai',
        content: 'x',
        'X-select': 'cheapest price',
      }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('invalid_message');
    expect(body.error.message).toContain('params.X-select');
    expect(body.error.message).toContain('"cheapest price" is not a selection rule');
  });
});
