/**
 * The messaging REST API on a real server (127.0.0.1, port 0) whose agents talk to the scripted
 * LLM stub: sending messages, following conversations (JSON, ?wait and server-sent events),
 * duplicates, unroutable messages, back-pressure (429 + Retry-After), dead letters and their
 * replay, and the directory facilitator. Bad input is in messaging-input.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectEnvelope,
  openaiProvider,
  startCaxton,
  type Caxton,
  type SseEvent,
} from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type RawHandler } from '../execution/helpers/llm-stub.js';
import {
  agentOf,
  conversationTotal,
  gate,
  get,
  MESSAGING_AGENTS,
  openEvents,
  request,
  send,
  startMessagingServer,
  type MessagingServer,
} from './helpers/messaging-server.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

let server: MessagingServer;
let stub: LlmStub;
let cx: Caxton;
let gates: Map<string, { handler: RawHandler; open(): void }>;

beforeAll(async () => {
  server = await startMessagingServer();
  ({ stub, cx, gates } = server);
});

afterAll(() => server?.close());

describe('POST /api/v1/messages and conversations', () => {
  it('a request to a capability is accepted (202), then the conversation shows request, agree, inform and is completed', async () => {
    const res = await send(cx.url, { performative: 'request', capability: 'answering', content: 'what is up?' });
    expect(res.status, res.text).toBe(202);
    expect(res.json).toMatchObject({
      performative: 'request',
      routed_to: ['helper'],
      routing: 'one',
      duplicate: false,
    });
    expect(res.json.id).toMatch(/^msg_/);
    expect(res.json.conversation_id).toMatch(/^conv_/);
    expect(res.headers.get('location')).toBe(`/api/v1/conversations/${res.json.conversation_id}`);

    // The outcome, via the bus's own wait (no polling of the API, no timing assumption).
    await cx.server.bus.wait(res.json.conversation_id, 10_000);
    const conv = await get(cx.url, `/api/v1/conversations/${res.json.conversation_id}`);
    expect(conv.status, conv.text).toBe(200);
    expect(conv.json.conversation).toMatchObject({
      id: res.json.conversation_id,
      state: 'completed',
      protocol: 'fipa-request',
      initiator: 'user',
      participants: ['user', 'helper'],
      capability: 'answering',
      turns: 3,
    });
    expect(conv.json.messages.map((m: Json) => `${m.performative}:${m.sender}`)).toEqual([
      'request:user',
      'agree:helper',
      'inform:helper',
    ]);
    expect(conv.json.messages[0]).toMatchObject({ id: res.json.id, content: 'what is up?', routed_to: ['helper'] });
    expect(conv.json.messages[2]).toMatchObject({
      content: 'answer from helper',
      in_reply_to: res.json.id,
      receivers: ['user'],
    });

    const msg = await get(cx.url, `/api/v1/messages/${res.json.id}`);
    expect(msg.status, msg.text).toBe(200);
    expect(msg.json).toMatchObject({
      id: res.json.id,
      routed_to: ['helper'],
      deliveries: [{ receiver: 'helper', state: 'done', attempts: 1 }],
    });

    const list = await get(cx.url, '/api/v1/conversations?participant=helper&state=completed');
    expect(list.status, list.text).toBe(200);
    expect(list.json.conversations.map((c: Json) => c.id)).toContain(res.json.conversation_id);
    expect(list.json).toMatchObject({ limit: 50, offset: 0 });
  });

  it('GET /messages lists messages newest first, narrowed by performative, sender, receiver and conversation; a bad filter names it', async () => {
    const res = await send(
      cx.url,
      { performative: 'request', capability: 'answering', content: 'list me' },
      '?wait=30',
    );
    expect(res.status, res.text).toBe(200);
    const conv = res.json.conversation_id;
    const all = await get(cx.url, `/api/v1/messages?conversation_id=${conv}`);
    expect(all.status, all.text).toBe(200);
    expect(all.json.messages.map((m: Json) => `${m.performative}:${m.sender}`)).toEqual([
      'inform:helper',
      'agree:helper',
      'request:user',
    ]);
    expect(all.json).toMatchObject({ total: 3, limit: 50, offset: 0 });
    const informs = await get(cx.url, `/api/v1/messages?conversation_id=${conv}&performative=inform`);
    expect(informs.json.messages.map((m: Json) => m.sender)).toEqual(['helper']);
    const fromUser = await get(cx.url, `/api/v1/messages?conversation_id=${conv}&sender=USER`);
    expect(fromUser.json.messages.map((m: Json) => m.id)).toEqual([res.json.id]);
    const toHelper = await get(cx.url, `/api/v1/messages?receiver=helper&limit=1000`);
    expect(toHelper.json.messages.map((m: Json) => m.id)).toContain(res.json.id);
    expect(toHelper.json.messages.every((m: Json) => m.routed_to.includes('helper'))).toBe(true);
    const page2 = await get(cx.url, `/api/v1/messages?conversation_id=${conv}&limit=1&offset=1`);
    expect(page2.json.messages.map((m: Json) => m.performative)).toEqual(['agree']);
    const bad = expectEnvelope(await get(cx.url, '/api/v1/messages?performative=shout'), 400, 'invalid_request');
    expect(JSON.stringify(bad)).toContain('performative');
  });

  it('?wait returns 200 with the outcome: the conversation and its messages', async () => {
    const res = await send(
      cx.url,
      { performative: 'query-ref', capability: 'answering', content: 'the capital of France' },
      '?wait=30',
    );
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({
      routed_to: ['helper'],
      duplicate: false,
      conversation: { state: 'completed', protocol: 'fipa-query' },
    });
    expect(res.json.messages.map((m: Json) => m.performative)).toEqual(['query-ref', 'inform']);
    expect(res.json.messages[1].content).toBe('answer from helper');
  });

  it('the same message id posted twice is stored and delivered once: the second answer is a duplicate (200)', async () => {
    const before = stub.hits.filter((h) => agentOf(h) === 'counter').length;
    const body = {
      id: 'client-chosen-id-1',
      performative: 'request',
      capability: 'counting',
      content: 'count me once',
    };
    const first = await send(cx.url, body);
    expect(first.status, first.text).toBe(202);
    expect(first.json.duplicate).toBe(false);
    const second = await send(cx.url, body);
    expect(second.status, second.text).toBe(200);
    expect(second.json).toMatchObject({
      id: 'client-chosen-id-1',
      conversation_id: first.json.conversation_id,
      duplicate: true,
      routed_to: ['counter'],
    });

    await cx.server.bus.wait(first.json.conversation_id, 10_000);
    const msg = await get(cx.url, '/api/v1/messages/client-chosen-id-1');
    expect(msg.json.deliveries).toHaveLength(1);
    expect(stub.hits.filter((h) => agentOf(h) === 'counter').length - before).toBe(1);
    const conv = await get(cx.url, `/api/v1/conversations/${first.json.conversation_id}`);
    expect(conv.json.messages.filter((m: Json) => m.performative === 'request')).toHaveLength(1);

    // A third post with ?wait answers with the (already finished) outcome.
    const third = await send(cx.url, body, '?wait=5');
    expect(third.status).toBe(200);
    expect(third.json).toMatchObject({ duplicate: true, conversation: { state: 'completed' } });
  });

  it('an unknown capability is recorded with a failure reply and the conversation fails', async () => {
    const res = await send(cx.url, {
      performative: 'request',
      capability: 'time-travel',
      content: 'yesterday, please',
    });
    expect(res.status, res.text).toBe(202);
    expect(res.json).toMatchObject({ routed_to: [], routing: 'none', failure: { reason: 'unknown_capability' } });
    expect(res.json.failure.message).toContain('time-travel');
    const conv = await get(cx.url, `/api/v1/conversations/${res.json.conversation_id}`);
    expect(conv.json.conversation).toMatchObject({ state: 'failed' });
    expect(conv.json.conversation.reason).toContain('no agent provides capability "time-travel"');
    expect(conv.json.messages.map((m: Json) => `${m.performative}:${m.sender}`)).toEqual([
      'request:user',
      'failure:caxton',
    ]);
    expect(conv.json.messages[1].id).toBe(res.json.failure.reply_id);
  });

  it('a message to a finished conversation is refused (409 conversation_closed)', async () => {
    const done = await send(cx.url, { performative: 'request', capability: 'answering', content: 'one' }, '?wait=30');
    expect(done.json.conversation.state).toBe('completed');
    const res = await send(cx.url, {
      performative: 'request',
      capability: 'answering',
      content: 'two',
      conversation_id: done.json.conversation_id,
    });
    const err = expectEnvelope(res, 409, 'conversation_closed');
    expect(err.message).toContain(done.json.conversation_id);
  });

  it('unknown message and conversation ids are 404', async () => {
    expectEnvelope(await get(cx.url, '/api/v1/messages/msg_nope'), 404, 'not_found');
    expectEnvelope(await get(cx.url, '/api/v1/conversations/conv_nope'), 404, 'conversation_not_found');
    expectEnvelope(await get(cx.url, '/api/v1/conversations/conv_nope/events'), 404, 'conversation_not_found');
  });
});

describe('GET /api/v1/conversations/{id}/events (server-sent events)', () => {
  it('replays the stored messages and state, streams the replies as they come, then ends', async () => {
    const g = gate('streamed answer');
    gates.set('gated', g);
    const before = stub.hits.length;
    const res = await send(cx.url, { performative: 'request', capability: 'gated', content: 'take your time' });
    expect(res.status, res.text).toBe(202);
    const stream = await openEvents(`${cx.url}/api/v1/conversations/${res.json.conversation_id}/events`);
    try {
      expect(stream.status).toBe(200);
      // The replay: the request and the current (open) state.
      await stream.next((es) => es.some((e) => e.event === 'state'));
      expect(stream.events.map((e) => e.event)).toEqual(['message', 'state']);
      expect(stream.events[0]!.json).toMatchObject({ id: res.json.id, performative: 'request', routed_to: ['gated'] });
      expect(['initiated', 'in_progress']).toContain(stream.events[1]!.json.state);

      // The agent answers only now: what follows is live.
      await stub.waitForHits(before + 1);
      g.open();
      await stream.ended;
      // Between the replay and the end, the stream may carry intermediate states (in_progress).
      const open = (e: SseEvent) => e.event === 'state' && !['completed', 'failed', 'expired'].includes(e.json.state);
      const live = stream.events.slice(2);
      expect(live.filter((e) => !open(e)).map((e) => e.event)).toEqual(['message', 'message', 'state', 'end']);
      expect(live.filter(open).every((e) => e.json.state === 'in_progress')).toBe(true);
      const messages = stream.events.filter((e) => e.event === 'message');
      expect(messages.map((e) => e.json.performative)).toEqual(['request', 'agree', 'inform']);
      expect(messages[2]!.json.content).toBe('streamed answer');
      expect(stream.events.at(-2)!.json).toMatchObject({ id: res.json.conversation_id, state: 'completed' });
      expect(stream.events.at(-1)!.json).toMatchObject({
        conversation_id: res.json.conversation_id,
        state: 'completed',
      });
    } finally {
      stream.close();
      gates.delete('gated');
    }
  });

  it('a finished conversation is replayed and the stream ends at once', async () => {
    const done = await send(cx.url, { performative: 'request', capability: 'answering', content: 'quick' }, '?wait=30');
    const stream = await openEvents(`${cx.url}/api/v1/conversations/${done.json.conversation_id}/events`);
    await stream.ended;
    expect(stream.events.map((e) => e.event)).toEqual(['message', 'message', 'message', 'state', 'end']);
  });

  it('stops listening when the client goes away', async () => {
    const g = gate('late');
    gates.set('gated', g);
    try {
      const res = await send(cx.url, { performative: 'request', capability: 'gated', content: 'wait' });
      const listeners = cx.server.bus.listenerCount('event');
      const stream = await openEvents(`${cx.url}/api/v1/conversations/${res.json.conversation_id}/events`);
      await stream.next((es) => es.some((e) => e.event === 'state'));
      expect(cx.server.bus.listenerCount('event')).toBe(listeners + 1);
      stream.close();
      await stream.ended;
      // The server notices the closed socket on its own schedule: wait for it, without a time limit assertion.
      await expect.poll(() => cx.server.bus.listenerCount('event'), { timeout: 10_000 }).toBe(listeners);
    } finally {
      g.open();
      gates.delete('gated');
    }
  });
});

describe('dead letters', () => {
  it('a delivery that keeps failing (LLM unreachable) becomes a dead letter; replayed after a fix, it completes the conversation', async () => {
    const res = await send(cx.url, { performative: 'request', capability: 'fragile', content: 'try me' }, '?wait=30');
    expect(res.status, res.text).toBe(200);
    expect(res.json.routed_to).toEqual(['fragile']);
    expect(res.json.conversation.state).toBe('failed');
    expect(res.json.conversation.reason).toContain('delivery to "fragile" failed 1 time;');
    const failure = res.json.messages.at(-1);
    expect(failure).toMatchObject({ performative: 'failure', sender: 'caxton', content: { reason: 'undeliverable' } });

    const list = await get(cx.url, '/api/v1/dead-letters');
    expect(list.status, list.text).toBe(200);
    const dead = list.json.dead_letters.find((d: Json) => d.message_id === res.json.id);
    expect(dead).toMatchObject({
      receiver: 'fragile',
      state: 'dead',
      attempts: 1,
      message: { id: res.json.id, content: 'try me' },
    });
    expect(dead.last_error).toContain('cannot reach');
    expect(list.json.total).toBeGreaterThanOrEqual(1);
    const one = await get(cx.url, `/api/v1/dead-letters/${dead.id}`);
    expect(one.status).toBe(200);
    expect(one.json).toMatchObject({ id: dead.id, receiver: 'fragile', message: { id: res.json.id } });
    expect((await get(cx.url, '/api/v1/messaging/stats')).json.dead_letters).toBe(list.json.total);
    // Filtered on the server: by text in the receiver or the last error (any case; literally: % and _ are not wildcards).
    const byReceiver = await get(cx.url, '/api/v1/dead-letters?receiver=FRAG');
    expect(byReceiver.json.dead_letters.map((d: Json) => d.id)).toContain(dead.id);
    expect(byReceiver.json.dead_letters.every((d: Json) => d.receiver === 'fragile')).toBe(true);
    expect(
      (await get(cx.url, '/api/v1/dead-letters?error=CANNOT%20REACH')).json.dead_letters.map((d: Json) => d.id),
    ).toContain(dead.id);
    expect((await get(cx.url, '/api/v1/dead-letters?error=%25')).json).toMatchObject({ dead_letters: [], total: 0 });
    expect((await get(cx.url, '/api/v1/dead-letters?receiver=nobody')).json).toMatchObject({
      dead_letters: [],
      total: 0,
    });

    // Fix the agent (point it at a working provider), then replay.
    await cx.update({ name: 'fragile', capabilities: ['fragile'], llm: { provider: 'stub' } });
    const replay = await request(cx.url, 'POST', `/api/v1/dead-letters/${dead.id}/replay`);
    expect(replay.status, replay.text).toBe(202);
    expect(replay.json).toEqual({
      id: dead.id,
      message_id: res.json.id,
      receiver: 'fragile',
      conversation_id: res.json.conversation_id,
    });

    const stream = await openEvents(`${cx.url}/api/v1/conversations/${res.json.conversation_id}/events`);
    await stream.ended;
    expect(stream.events.at(-1)).toMatchObject({ event: 'end', json: { state: 'completed' } });
    const conv = await get(cx.url, `/api/v1/conversations/${res.json.conversation_id}`);
    expect(conv.json.conversation.state).toBe('completed');
    expect(conv.json.messages.map((m: Json) => `${m.performative}:${m.sender}`)).toEqual([
      'request:user',
      'failure:caxton',
      'agree:fragile',
      'inform:fragile',
    ]);
    const msg = await get(cx.url, `/api/v1/messages/${res.json.id}`);
    expect(msg.json.deliveries).toMatchObject([{ receiver: 'fragile', state: 'done' }]);

    expectEnvelope(await get(cx.url, `/api/v1/dead-letters/${dead.id}`), 404, 'not_found');
    expectEnvelope(await request(cx.url, 'POST', `/api/v1/dead-letters/${dead.id}/replay`), 404, 'not_found');
  });
});

describe('directory facilitator', () => {
  it('GET /directory finds agents by capability, protocol, ontology and language', async () => {
    const all = await get(cx.url, '/api/v1/directory');
    expect(all.status, all.text).toBe(200);
    expect(all.json.entries.map((e: Json) => e.agent)).toEqual(
      expect.arrayContaining(MESSAGING_AGENTS.map((a) => a.name)),
    );
    const one = await get(cx.url, '/api/v1/directory?capability=answering');
    expect(one.json).toEqual({
      entries: [
        {
          agent: 'helper',
          description: 'execution test agent helper',
          capabilities: ['answering'],
          protocols: [],
          ontologies: [],
          languages: [],
          max_concurrency: null,
        },
      ],
      total: 1,
    });
    expect((await get(cx.url, '/api/v1/directory?capability=nothing-here')).json).toEqual({ entries: [], total: 0 });
    // Agents that name no protocols take part in every protocol.
    expect(
      (await get(cx.url, '/api/v1/directory?capability=answering&protocol=fipa-query&language=json')).json.total,
    ).toBe(1);
  });

  it('GET /directory/events streams a deploy, an update and a removal', async () => {
    const stream = await openEvents(`${cx.url}/api/v1/directory/events`);
    try {
      expect(stream.status).toBe(200);
      await cx.deploy({ name: 'newcomer', capabilities: ['novelty'] });
      await stream.next((es) => es.some((e) => e.event === 'registered'));
      const reg = stream.events.find((e) => e.event === 'registered')!;
      expect(reg.json).toEqual({
        type: 'registered',
        entry: {
          agent: 'newcomer',
          description: 'execution test agent newcomer',
          capabilities: ['novelty'],
          protocols: [],
          ontologies: [],
          languages: [],
          max_concurrency: null,
        },
      });
      expect(reg.json.entry.definition).toBeUndefined();
      await cx.update({ name: 'newcomer', capabilities: ['novelty', 'more'] });
      await stream.next((es) => es.some((e) => e.event === 'updated'));
      expect(stream.events.find((e) => e.event === 'updated')!.json).toMatchObject({
        entry: { capabilities: ['novelty', 'more'] },
        previous: { capabilities: ['novelty'] },
      });
      const del = await request(cx.url, 'DELETE', '/api/v1/agents/newcomer');
      expect(del.status).toBe(204);
      await stream.next((es) => es.some((e) => e.event === 'deregistered'));
      expect(stream.events.map((e) => e.event)).toEqual(['registered', 'updated', 'deregistered']);
    } finally {
      stream.close();
    }
  });
});

describe('stats and OpenAPI', () => {
  it('GET /messaging/stats reports the queue', async () => {
    const res = await get(cx.url, '/api/v1/messaging/stats');
    expect(res.status).toBe(200);
    expect(Object.keys(res.json).sort()).toEqual([
      'dead_letters',
      'max_queue',
      'open_conversations',
      'queued',
      'retrying',
      'running',
    ]);
    expect(res.json.max_queue).toBe(10_000);
  });

  it('every messaging endpoint is in /api/v1/openapi.json, with the message body schema', async () => {
    const doc = (await get(cx.url, '/api/v1/openapi.json')).json;
    for (const p of [
      '/api/v1/messages',
      '/api/v1/messages/{id}',
      '/api/v1/conversations',
      '/api/v1/conversations/{id}',
      '/api/v1/conversations/{id}/events',
      '/api/v1/dead-letters',
      '/api/v1/dead-letters/{id}',
      '/api/v1/dead-letters/{id}/replay',
      '/api/v1/directory',
      '/api/v1/directory/events',
      '/api/v1/messaging/stats',
    ]) {
      expect(doc.paths[p], p).toBeDefined();
    }
    const body = doc.paths['/api/v1/messages'].post.requestBody.content['application/json'].schema;
    expect(Object.keys(body.properties)).toEqual(
      expect.arrayContaining(['performative', 'capability', 'receiver', 'content', 'reply_by', 'params']),
    );
    expect(doc.paths['/api/v1/conversations'].get.parameters.map((p: Json) => p.name)).toEqual(
      expect.arrayContaining(['state', 'participant', 'limit', 'offset']),
    );
  });
});

describe('back-pressure', () => {
  it('a full queue answers 429 queue_full with Retry-After, and stores nothing', async () => {
    const g = gate('finally');
    const slowStub = await startLlmStub(() => g.handler);
    const small = await startCaxton({
      config: {
        llm: { default_provider: 'stub', providers: { stub: openaiProvider(slowStub.url) } },
        messaging: { max_queue: 1 },
      },
      agents: [{ name: 'slow', capabilities: ['slow'] }],
    });
    try {
      const first = await send(small.url, { performative: 'request', capability: 'slow', content: 'first' });
      expect(first.status, first.text).toBe(202);
      const before = await conversationTotal(small.url);
      const second = await send(small.url, { performative: 'request', capability: 'slow', content: 'second' });
      const err = expectEnvelope(second, 429, 'queue_full');
      expect(err.message).toContain('max_queue = 1');
      expect(err.details.retry_after).toBe(1);
      expect(second.headers.get('retry-after')).toBe('1');
      expect(await conversationTotal(small.url)).toBe(before);
      g.open();
      const conv = await small.server.bus.wait(first.json.conversation_id, 10_000);
      expect(conv.state).toBe('completed');
      // With room again, the next message is accepted.
      const third = await send(
        small.url,
        { performative: 'request', capability: 'slow', content: 'third' },
        '?wait=30',
      );
      expect(third.status, third.text).toBe(200);
      expect(third.json.conversation.state).toBe('completed');
    } finally {
      g.open();
      await small.close();
      await slowStub.close();
    }
  });
});

describe('shutdown', () => {
  it('ends open event streams and answers waiting requests when the server stops', async () => {
    const g = gate('never needed');
    const slowStub = await startLlmStub(() => g.handler);
    const s = await startCaxton({
      config: { llm: { default_provider: 'stub', providers: { stub: openaiProvider(slowStub.url) } } },
      agents: [{ name: 'sleeper', capabilities: ['sleeping'] }],
    });
    try {
      const sent = await send(s.url, { performative: 'request', capability: 'sleeping', content: 'no hurry' });
      expect(sent.status, sent.text).toBe(202);
      const conversation = await openEvents(`${s.url}/api/v1/conversations/${sent.json.conversation_id}/events`);
      const directory = await openEvents(`${s.url}/api/v1/directory/events`);
      await conversation.next((es) => es.some((e) => e.event === 'state'));
      await slowStub.waitForHits(1);
      const waiting = send(s.url, { performative: 'request', capability: 'sleeping', content: 'and me' }, '?wait=300');
      await slowStub.waitForHits(2);
      // Not s.close(): it force-closes connections after a second, which would hide a hang here.
      await s.server.close();
      await conversation.ended;
      await directory.ended;
      const res = await waiting;
      expect(res.status, res.text).toBe(200);
      expect(['initiated', 'in_progress']).toContain(res.json.conversation.state);
    } finally {
      g.open();
      await slowStub.close();
    }
  });
});
