/**
 * The cluster's message bus (ADR 0043) with two nodes in one process: each its own registry, NATS
 * connection, PostgreSQL pool and ClusterBus, over one real `nats-server -js` started here and the
 * machine's PostgreSQL (a schema of its own). Requests submitted on either node complete once
 * each; a Contract Net whose proposals are handled on both nodes is awarded exactly once; a node
 * that stops answering loses its delivery to the other after ack_wait, and its late answer is
 * dropped; a dead letter replays from the other node; a message id sent on both nodes at once is
 * stored once; a subscription made on one node hears an inform sent on the other; a waiter on one
 * node wakes when the conversation ends on the other; a call whose bidder never answers is
 * decided at its deadline by the sweep; a node is sent the other nodes' events only while a
 * listener of its own wants them.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../../src/agents/index.js';
import { clusterConfigSchema } from '../../../src/config/index.js';
import { ClusterBus } from '../../../src/messaging/cluster/index.js';
import { PgMessageReads, PgMessageStore } from '../../../src/messaging/postgres/index.js';
import type {
  AgentAnswer,
  AclMessage,
  Conversation,
  InProcessHandler,
  MessagingConfig,
} from '../../../src/messaging/index.js';
import { CaxtonError } from '../../../src/shared/errors.js';
import { hearsOnlyLocal, relayedFrom } from '../../../src/shared/relayed.js';
import { registerSecrets } from '../../../src/shared/secrets.js';
import { agentDef, deploy, messagingConfig } from '../helpers.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';
import { startPgProxy, startTcpProxy } from '../../helpers/tcp-proxy.js';
import { removeTempDirs } from '../../helpers/tmp.js';
import { waitUntil } from '../../helpers/wait.js';

const run = hasSystem('nats-server') && hasSystem('postgresql');
const ACK_WAIT_MS = 1_500;

let nats: NatsServer;
let schema = '';
let tests = 0;
const open: { bus: ClusterBus; nc: NatsConnection; pool: pg.Pool }[] = [];

interface Node {
  name: string;
  bus: ClusterBus;
  registry: AgentRegistry;
}

/** One node: its own registry (with `agents` deployed), connection, pool and bus on the shared schema and stream. */
async function node(
  name: string,
  agents: [string, string[]][],
  over: Partial<MessagingConfig> = {},
  links: {
    pgUrl?: string;
    natsUrl?: string;
    publishTimeoutS?: number;
    republish?: { everyMs: number; afterMs: number; staleMs?: number };
    maxHeld?: number;
    ackWaitMs?: number;
    /** Bus events on a connection of their own (as the server opens it): its statistics count them alone. */
    events?: NatsConnection;
    remoteEventsLingerMs?: number;
  } = {},
): Promise<Node> {
  const nc = await connect({ servers: links.natsUrl ?? nats.url });
  // Through a relay that a test cuts, a connection attempt fails fast; otherwise the wait for one of
  // the 4 connections (40 waits and the steps at once, beside the whole suite) may take seconds.
  const pool = new pg.Pool({
    connectionString: links.pgUrl ?? TEST_PG_URL,
    max: 4,
    connectionTimeoutMillis: links.pgUrl ? 2000 : 30_000,
  });
  // An idle connection cut by the relay: replaced on next use, as the server's pool does.
  pool.on('error', () => {});
  const store = await PgMessageStore.open({ pool, schema });
  const registry = new AgentRegistry();
  for (const [agent, caps] of agents) deploy(registry, agentDef(agent, caps));
  const cluster = clusterConfigSchema.parse({
    node: name,
    delivery: {
      stream: `S${schema}`,
      consumer: `c${schema}`,
      subject: `d${schema}`,
      ack_wait: (links.ackWaitMs ?? ACK_WAIT_MS) / 1000,
      ...(links.publishTimeoutS && { publish_timeout: links.publishTimeoutS }),
      ...(links.maxHeld && { max_held: links.maxHeld }),
    },
  });
  const bus = new ClusterBus({
    store,
    reads: new PgMessageReads({ store }),
    nc,
    registry,
    config: messagingConfig({ retry_base: 50, ...over }),
    cluster,
    sweepMs: 200,
    ...(links.republish && { republish: links.republish }),
    ...(links.events && { events: links.events }),
    ...(links.remoteEventsLingerMs !== undefined && { remoteEventsLingerMs: links.remoteEventsLingerMs }),
  });
  open.push({ bus, nc, pool });
  return { name, bus, registry };
}

const done = (c: Conversation) => c.state !== 'initiated' && c.state !== 'in_progress';

beforeAll(async () => {
  if (run) nats = await startNatsServer();
});

afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.bus.close();
    await o.nc.close();
    await o.pool.end();
  }
  if (run && schema) {
    const pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 1 });
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  }
});

afterAll(async () => {
  await nats?.stop();
  removeTempDirs();
});

/** A fresh schema and stream per test: nothing of one test reaches another. */
function fresh(): void {
  schema = `cbus_${process.pid}_${++tests}`;
}

describe.runIf(run)('ClusterBus: two nodes on PostgreSQL and JetStream', () => {
  it('requests submitted on either node complete, each executed once, on whichever node took it', async () => {
    fresh();
    const ran = new Map<string, string[]>();
    const worker =
      (nodeName: string): InProcessHandler =>
      (m) => {
        ran.set(m.id, [...(ran.get(m.id) ?? []), nodeName]);
        return { performative: 'inform', content: `done by ${nodeName}` };
      };
    // An in-process handler keeps no run row: a delivery its node holds past the ack wait (a
    // stall beside the whole suite) is handed to the other node. What this checks is the split of
    // deliveries that are acknowledged in time; redelivery has tests of its own below.
    const links = { ackWaitMs: 15_000 };
    const a = await node('a', [['worker', ['work']]], {}, links);
    const b = await node('b', [['worker', ['work']]], {}, links);
    a.bus.registerHandler('worker', worker('a'));
    b.bus.registerHandler('worker', worker('b'));
    await Promise.all([a.bus.start(), b.bus.start()]);
    const sent = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? a : b).bus.submit({
          performative: 'request',
          protocol: 'fipa-request',
          sender: 'client',
          capability: 'work',
          content: `job ${i}`,
        }),
      ),
    );
    const convs = await Promise.all(sent.map((s, i) => (i % 3 ? a : b).bus.wait(s.conversation_id, 20_000)));
    expect(convs.map((c) => c.state)).toEqual(convs.map(() => 'completed'));
    expect(ran.size).toBe(40);
    expect([...ran.values()].every((nodes) => nodes.length === 1)).toBe(true);
    const { messages } = await a.bus.reads.getConversation(sent[0]!.conversation_id);
    expect(messages.map((s) => s.message.performative)).toEqual(['request', 'agree', 'inform']);
    const m = await b.bus.reads.getMessage(sent[0]!.id);
    expect(m?.deliveries.map((d) => d.state)).toEqual(['done']);
  });

  it("a node is sent the other nodes' events only while a listener here wants them, and hears them then", async () => {
    fresh();
    const events = await connect({ servers: nats.url, noEcho: true });
    const a = await node('a', [['sink', ['sink']]]);
    const b = await node('b', [], {}, { events, remoteEventsLingerMs: 300 });
    a.bus.registerHandler('sink', () => undefined);
    await Promise.all([a.bus.start(), b.bus.start()]);
    const inform = async (content: string) => {
      const s = await a.bus.submit({ performative: 'inform', sender: 'client', receivers: ['sink'], content });
      expect((await a.bus.wait(s.conversation_id, 20_000)).state).toBe('completed');
      return s;
    };
    // A listener that skips relayed events (the shared event store's recorder) holds no subscription.
    b.bus.on(
      'event',
      hearsOnlyLocal(() => {}),
    );
    for (let i = 0; i < 5; i++) await inform(`unheard ${i}`);
    await new Promise((r) => setTimeout(r, 200));
    expect(events.stats().inMsgs).toBe(0);

    const heard: { conversation: string; from: string | undefined }[] = [];
    const follower = (e: { conversation_id: string }) =>
      heard.push({ conversation: e.conversation_id, from: relayedFrom(e) });
    b.bus.on('event', follower);
    await b.bus.listening();
    const s = await inform('heard');
    await waitUntil(() => heard.some((h) => h.conversation === s.conversation_id), { timeoutMs: 10_000 });
    expect(heard.filter((h) => h.conversation === s.conversation_id).every((h) => h.from === 'a')).toBe(true);

    b.bus.off('event', follower);
    await new Promise((r) => setTimeout(r, 600)); // past the linger: unsubscribed
    const after = events.stats().inMsgs;
    for (let i = 0; i < 3; i++) await inform(`unheard again ${i}`);
    await new Promise((r) => setTimeout(r, 200));
    expect(events.stats().inMsgs).toBe(after);
    await events.close();
  });

  it("an agent's history of the one-way conversation its message opened is that message as stored, as a read of the table gives it", async () => {
    fresh();
    const secret = `sk-history-${process.pid}-0123456789abcdef`;
    registerSecrets([secret]);
    const seen: { held: AclMessage[]; read: AclMessage[] }[] = [];
    const a = await node('a', [['sink', ['sink']]]);
    a.bus.registerHandler('sink', async (m) => {
      seen.push({
        held: await a.bus.history(m.conversation_id, 5),
        read: (await (a.bus.reads as PgMessageReads).lastMessagesOf(m.conversation_id, 5)).map((x) => x.message),
      });
      return undefined;
    });
    await a.bus.start();
    const sent = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        a.bus.submit({ performative: 'inform', sender: 'client', receivers: ['sink'], content: `note ${i} ${secret}` }),
      ),
    );
    for (const x of sent) expect((await a.bus.wait(x.conversation_id, 20_000)).state).toBe('completed');
    expect(seen).toHaveLength(5);
    for (const x of seen) {
      expect(x.held).toEqual(x.read);
      expect(x.held).toHaveLength(1);
      expect(JSON.stringify(x.held)).not.toContain(secret);
    }
  });

  it('a Contract Net whose proposals are handled on both nodes is awarded exactly once, to the best bid', async () => {
    fresh();
    const prices: Record<string, number> = { p1: 30, p2: 10, p3: 20 };
    const bidder =
      (nodeName: string): InProcessHandler =>
      (m, receiver): AgentAnswer => {
        if (m.performative === 'cfp') return { performative: 'propose', content: `price: ${prices[receiver.agent]}` };
        if (m.performative === 'accept-proposal')
          return { performative: 'inform', content: `${receiver.agent} delivered on ${nodeName}` };
        return undefined;
      };
    const agents: [string, string[]][] = Object.keys(prices).map((p) => [p, ['quote']]);
    const a = await node('a', agents);
    const b = await node('b', agents);
    for (const p of Object.keys(prices)) {
      a.bus.registerHandler(p, bidder('a'));
      b.bus.registerHandler(p, bidder('b'));
    }
    await Promise.all([a.bus.start(), b.bus.start()]);
    const calls = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (i % 2 ? a : b).bus.submit({
          performative: 'cfp',
          protocol: 'fipa-contract-net',
          sender: 'buyer',
          capability: 'quote',
          content: `task ${i}`,
        }),
      ),
    );
    for (const c of calls) {
      expect(c.routed_to).toHaveLength(3);
      const conv = await a.bus.wait(c.conversation_id, 20_000);
      expect(conv.state).toBe('completed');
      const { messages } = await b.bus.reads.getConversation(c.conversation_id);
      const acts = messages.map((s) => s.message);
      const accepts = acts.filter((x) => x.performative === 'accept-proposal');
      expect(accepts).toHaveLength(1);
      expect(accepts[0]!.receivers).toEqual(['p2']);
      expect(
        acts
          .filter((x) => x.performative === 'reject-proposal')
          .map((x) => x.receivers[0])
          .sort(),
      ).toEqual(['p1', 'p3']);
      expect(acts.filter((x) => x.performative === 'propose')).toHaveLength(3);
    }
  });

  it('a node cut off from NATS mid-delivery loses it to the other after ack_wait; its late answer is dropped', async () => {
    fresh();
    let release: (a: AgentAnswer) => void = () => {};
    const stuck = new Promise<AgentAnswer>((r) => (release = r));
    const ran: string[] = [];
    const a = await node('a', [['worker', ['work']]]);
    a.bus.registerHandler('worker', () => {
      ran.push('a');
      return stuck;
    });
    await a.bus.start();
    const sent = await a.bus.submit({
      performative: 'request',
      sender: 'client',
      receivers: ['worker'],
      content: 'once',
    });
    await waitUntil(() => ran.length === 1);
    // A's link to NATS goes (as when it dies): no more progress heartbeats, so JetStream gives the delivery to B after ack_wait.
    await open[0]!.nc.close();
    const b = await node('b', [['worker', ['work']]]);
    b.bus.registerHandler('worker', () => {
      ran.push('b');
      return { performative: 'inform', content: 'answered by b' };
    });
    await b.bus.start();
    const conv = await b.bus.wait(sent.conversation_id, 15_000);
    expect(conv.state).toBe('completed');
    expect(ran).toEqual(['a', 'b']);
    // A answers at last: the row says done, so nothing more is stored.
    release({ performative: 'inform', content: 'late answer from a' });
    await new Promise((r) => setTimeout(r, 300));
    const { messages } = await a.bus.reads.getConversation(sent.conversation_id);
    expect(messages.map((s) => [s.message.performative, s.message.content])).toEqual([
      ['request', 'once'],
      ['agree', ''],
      ['inform', 'answered by b'],
    ]);
    const m = await a.bus.reads.getMessage(sent.id);
    expect(m?.deliveries).toHaveLength(1);
    expect(m?.deliveries[0]!.state).toBe('done');
  }, 30_000);

  it('deliveries committed together travel in one stream message; a node that dies holding them loses none, and each runs once more only', async () => {
    fresh();
    const onA: string[] = [];
    const a = await node('a', [['worker', ['work']]]);
    a.bus.registerHandler('worker', (m) => {
      onA.push(String(m.content));
      return new Promise<AgentAnswer>(() => {});
    });
    await a.bus.start();
    const sent = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        a.bus.submit({ performative: 'request', sender: 'client', receivers: ['worker'], content: `g${i}` }),
      ),
    );
    await waitUntil(() => onA.length >= 1, { what: 'node a running a delivery' });
    const jsm = await jetstreamManager(open[0]!.nc);
    const stream = await jsm.streams.info(`S${schema}`);
    expect(stream.state.last_seq).toBeLessThan(sent.length);
    // A's link to NATS goes (as when it dies): the group is handed out again after ack_wait.
    await open[0]!.nc.close();
    const onB: string[] = [];
    const b = await node('b', [['worker', ['work']]]);
    b.bus.registerHandler('worker', (m) => {
      onB.push(String(m.content));
      return { performative: 'inform', content: 'answered by b' };
    });
    await b.bus.start();
    for (const x of sent) expect((await b.bus.wait(x.conversation_id, 15_000)).state).toBe('completed');
    expect(onB.sort()).toEqual(sent.map((_, i) => `g${i}`).sort());
    for (const x of sent) {
      const m = await b.bus.reads.getMessage(x.id);
      expect(m?.deliveries.map((d) => d.state)).toEqual(['done']);
    }
  }, 30_000);

  it('a dead letter made on one node replays from the other and completes its conversation', async () => {
    fresh();
    let broken = true;
    const handler: InProcessHandler = () => {
      if (broken) throw new CaxtonError('invalid_config', 'the agent is misconfigured');
      return { performative: 'inform', content: 'fixed' };
    };
    const a = await node('a', [['worker', ['work']]]);
    const b = await node('b', [['worker', ['work']]]);
    a.bus.registerHandler('worker', handler);
    b.bus.registerHandler('worker', handler);
    await Promise.all([a.bus.start(), b.bus.start()]);
    const sent = await a.bus.submit({ performative: 'request', sender: 'client', receivers: ['worker'], content: 'x' });
    expect((await b.bus.wait(sent.conversation_id, 10_000)).state).toBe('failed');
    const dead = await b.bus.reads.deadLetters({});
    expect(dead.total).toBe(1);
    broken = false;
    await b.bus.replay(dead.items[0]!.id);
    // Replayed already: no longer a dead letter on any node.
    await expect(a.bus.replay(dead.items[0]!.id)).rejects.toMatchObject({ code: 'not_found' });
    const { value: conv } = await waitUntil(async () => {
      const c = (await a.bus.reads.getConversation(sent.conversation_id)).conversation;
      return c.state === 'completed' ? c : undefined;
    });
    expect(conv.state).toBe('completed');
    expect((await a.bus.reads.deadLetters({})).total).toBe(0);
  });

  it('a message id sent on both nodes at once is stored and delivered once', async () => {
    fresh();
    let runs = 0;
    const a = await node('a', [['worker', ['work']]]);
    const b = await node('b', [['worker', ['work']]]);
    for (const n of [a, b])
      n.bus.registerHandler('worker', () => {
        runs++;
        return undefined;
      });
    await Promise.all([a.bus.start(), b.bus.start()]);
    const body = {
      id: 'client-chosen-id-1',
      performative: 'inform',
      sender: 'client',
      receivers: ['worker'],
      content: 'once only',
    };
    const [x, y] = await Promise.all([a.bus.submit(body), b.bus.submit(body)]);
    expect([x.duplicate, y.duplicate].sort()).toEqual([false, true]);
    expect((await a.bus.wait(x.conversation_id, 10_000)).state).toBe('completed');
    const again = await b.bus.submit(body);
    expect(again.duplicate).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(runs).toBe(1);
  });

  it('a subscription made through one node hears an inform sent through the other, until cancelled', async () => {
    fresh();
    const provider: InProcessHandler = (m) =>
      m.performative === 'subscribe' ? { performative: 'agree', content: 'subscribed' } : undefined;
    const a = await node('a', [['newsroom', ['news']]]);
    const b = await node('b', [['newsroom', ['news']]]);
    a.bus.registerHandler('newsroom', provider);
    b.bus.registerHandler('newsroom', provider);
    await Promise.all([a.bus.start(), b.bus.start()]);
    const sub = await a.bus.submit({
      performative: 'subscribe',
      protocol: 'fipa-subscribe',
      sender: 'reader',
      capability: 'news',
      content: 'headlines',
    });
    await waitUntil(async () =>
      (await a.bus.reads.getConversation(sub.conversation_id)).messages.some((s) => s.message.performative === 'agree'),
    );
    await b.bus.submit({ performative: 'inform', sender: 'reporter', capability: 'news', content: 'rain tomorrow' });
    const { value: note } = await waitUntil(async () =>
      (await b.bus.reads.getConversation(sub.conversation_id)).messages
        .map((s) => s.message)
        .find((m: AclMessage) => m.performative === 'inform' && m.content === 'rain tomorrow'),
    );
    expect(note.params['X-notification-of']).toBeDefined();
    expect((await a.bus.reads.getConversation(sub.conversation_id)).conversation.expires_at).toBeNull();
    await b.bus.submit({
      performative: 'cancel',
      protocol: 'fipa-subscribe',
      sender: 'reader',
      receivers: ['newsroom'],
      conversation_id: sub.conversation_id,
      content: 'stop',
    });
    expect((await a.bus.wait(sub.conversation_id, 10_000)).state).toBe('completed');
    await b.bus.submit({ performative: 'inform', sender: 'reporter', capability: 'news', content: 'sun after' });
    await new Promise((r) => setTimeout(r, 300));
    const after = (await a.bus.reads.getConversation(sub.conversation_id)).messages.map((s) => s.message.content);
    expect(after).not.toContain('sun after');
  });

  it('a call whose bidder never answers is decided at its deadline by a sweeping node', async () => {
    fresh();
    const a = await node('a', [
      ['fast', ['quote']],
      ['silent', ['quote']],
    ]);
    a.bus.registerHandler('fast', (m) =>
      m.performative === 'cfp'
        ? { performative: 'propose', content: 'price: 5' }
        : { performative: 'inform', content: 'done' },
    );
    a.bus.registerHandler('silent', () => new Promise<AgentAnswer>(() => {}));
    const b = await node('b', [
      ['fast', ['quote']],
      ['silent', ['quote']],
    ]);
    b.bus.registerHandler('fast', (m) =>
      m.performative === 'cfp'
        ? { performative: 'propose', content: 'price: 5' }
        : { performative: 'inform', content: 'done' },
    );
    b.bus.registerHandler('silent', () => new Promise<AgentAnswer>(() => {}));
    await Promise.all([a.bus.start(), b.bus.start()]);
    const replyBy = new Date(Date.now() + 1500).toISOString();
    const call = await a.bus.submit({
      performative: 'cfp',
      protocol: 'fipa-contract-net',
      sender: 'buyer',
      capability: 'quote',
      content: 'task',
      reply_by: replyBy,
    });
    const conv = await b.bus.wait(call.conversation_id, 15_000);
    expect(done(conv)).toBe(true);
    expect(conv.state).toBe('completed');
    const { messages } = await a.bus.reads.getConversation(call.conversation_id);
    const accepts = messages.filter((s) => s.message.performative === 'accept-proposal');
    expect(accepts.map((s) => s.message.receivers)).toEqual([['fast']]);
  }, 30_000);

  it('max_queue counts the deliveries waiting in the stream: a node refuses past it while they wait, and accepts once another node delivered them', async () => {
    fresh();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const limits = { max_queue: 3, agent_concurrency: 1 };
    // Node a holds one delivery at a time and its worker waits: what it is sent next waits in the stream.
    const a = await node('a', [['worker', ['work']]], limits, { maxHeld: 1 });
    a.bus.registerHandler('worker', async (_m, _r, ctx) => {
      await Promise.race([gate, new Promise((r) => ctx.signal.addEventListener('abort', r, { once: true }))]);
      return { performative: 'inform', content: 'done by a' };
    });
    await a.bus.start();
    const send = (id: string) =>
      a.bus.submit({ id, performative: 'request', sender: 'client', receiver: 'worker', content: id });
    const first = await Promise.all(['q1', 'q2', 'q3'].map(send));
    await waitUntil(() => a.bus.stats().running === 1, { what: 'node a running its one delivery' });
    const refused = await send('q4').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CaxtonError);
    expect([(refused as CaxtonError).code, (refused as CaxtonError).details]).toEqual([
      'queue_full',
      { retry_after: 1, queued: 3 },
    ]);
    // Node b takes the two waiting deliveries from the stream and answers them; node a's own
    // figures cannot see that, the stream's consumer can.
    const b = await node('b', [['worker', ['work']]], limits);
    b.bus.registerHandler('worker', () => ({ performative: 'inform', content: 'done by b' }));
    await b.bus.start();
    const waited = await Promise.all(first.map((x) => b.bus.wait(x.conversation_id, 1_500)));
    expect(waited.filter((c) => c.state === 'completed')).toHaveLength(2);
    const accepted = await send('q4');
    expect(accepted.duplicate).toBe(false);
    release();
    for (const x of [...first, accepted]) expect((await b.bus.wait(x.conversation_id, 15_000)).state).toBe('completed');
  }, 30_000);

  it('a node without the receiver (a file agent of another node) hands its deliveries back to one that has it', async () => {
    fresh();
    const ran: string[] = [];
    const a = await node('a', [['other', ['misc']]]);
    const b = await node('b', [['local-only', ['misc']]]);
    b.bus.registerHandler('local-only', (m) => {
      ran.push(m.id);
      return undefined;
    });
    await Promise.all([a.bus.start(), b.bus.start()]);
    const sent = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        b.bus.submit({ performative: 'inform', sender: 'client', receivers: ['local-only'], content: `n${i}` }),
      ),
    );
    for (const x of sent) expect((await a.bus.wait(x.conversation_id, 15_000)).state).toBe('completed');
    expect(ran.sort()).toEqual(sent.map((x) => x.id).sort());
    expect((await a.bus.reads.deadLetters({})).total).toBe(0);
  }, 30_000);

  it('with its PostgreSQL link cut a node answers 503 naming the shared state, and works again once it is back', async () => {
    fresh();
    const { proxy, url } = await startPgProxy();
    try {
      const a = await node('a', [['worker', ['work']]], {}, { pgUrl: url });
      a.bus.registerHandler('worker', () => undefined);
      await a.bus.start();
      expect(
        (await a.bus.submit({ performative: 'inform', sender: 'client', receivers: ['worker'], content: 'before' }))
          .duplicate,
      ).toBe(false);
      proxy.cut();
      const t0 = Date.now();
      const err = await a.bus
        .submit({ performative: 'inform', sender: 'client', receivers: ['worker'], content: 'during' })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'not_ready', details: { dependency: 'cluster-postgresql' } });
      expect(String((err as Error).message)).toMatch(/PostgreSQL is unreachable/);
      expect(Date.now() - t0).toBeLessThan(10_000);
      await expect(a.bus.reads.listConversations({})).rejects.toMatchObject({ code: 'not_ready' });
      proxy.restore();
      const after = await waitUntil(async () =>
        a.bus
          .submit({ performative: 'inform', sender: 'client', receivers: ['worker'], content: 'after' })
          .catch(() => undefined),
      );
      expect((await a.bus.wait(after.value.conversation_id, 10_000)).state).toBe('completed');
    } finally {
      await proxy.close();
    }
  }, 30_000);

  it('a message stored by a node that lost NATS before the PubAck is published by another node, and delivered once', async () => {
    fresh();
    const ran: string[] = [];
    const b = await node('b', [['worker', ['work']]], {}, { republish: { everyMs: 200, afterMs: 1500 } });
    b.bus.registerHandler('worker', (m) => void ran.push(`b:${String(m.content)}`));
    await b.bus.start();
    const url = new URL(nats.url);
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
    try {
      const a = await node(
        'a',
        [['worker', ['work']]],
        {},
        { natsUrl: `nats://127.0.0.1:${proxy.port}`, publishTimeoutS: 0.5 },
      );
      a.bus.registerHandler('worker', (m) => void ran.push(`a:${String(m.content)}`));
      await a.bus.start();
      const ok = await a.bus.submit({
        performative: 'inform',
        sender: 'client',
        receivers: ['worker'],
        content: 'first',
      });
      await b.bus.wait(ok.conversation_id, 10_000);
      proxy.cut();
      // Stored, then the publish times out: the caller is told, and nobody sends it again.
      const err = await a.bus
        .submit({ id: 'orphan-1', performative: 'inform', sender: 'client', receivers: ['worker'], content: 'orphan' })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'not_ready' });
      expect(String((err as Error).message)).toMatch(/stored but NATS JetStream did not acknowledge/);
      const stored = await b.bus.reads.getMessage('orphan-1');
      expect(stored?.deliveries.map((d) => d.state)).toEqual(['pending']);
      // Node A is gone for good; B's republish sweep finds the unconfirmed row and publishes it.
      await a.bus.close();
      const conv = await b.bus.wait(stored!.message.conversation_id, 15_000);
      expect(conv.state).toBe('completed');
      await new Promise((r) => setTimeout(r, 1000)); // two more sweeps: nothing is published twice
      expect(ran.filter((x) => x.endsWith(':orphan'))).toEqual(['b:orphan']);
      expect((await b.bus.reads.getMessage('orphan-1'))?.deliveries.map((d) => [d.state, d.attempts])).toEqual([
        ['done', 1],
      ]);
    } finally {
      await proxy.close();
    }
  }, 30_000);

  it("a message too large for NATS's max_payload is refused with 413 before anything is stored", async () => {
    fresh();
    const a = await node('a', [['worker', ['work']]], { max_message_size: 4 * 1024 * 1024 });
    await a.bus.start();
    const err = await a.bus
      .submit({
        id: 'too-big-1',
        performative: 'inform',
        sender: 'client',
        receivers: ['worker'],
        content: 'x'.repeat(1024 * 1024),
      })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'payload_too_large' });
    expect(String((err as Error).message)).toMatch(/max_payload/);
    expect(await a.bus.reads.getMessage('too-big-1')).toBeUndefined();
  });

  it('retention deletes finished conversations and old dead letters from the shared tables, never an open conversation', async () => {
    fresh();
    const a = await node(
      'a',
      [
        ['worker', ['work']],
        ['broken', ['work']],
      ],
      { retention: 50, dead_letter_retention: 50 },
    );
    a.bus.registerHandler('worker', () => undefined);
    a.bus.registerHandler('broken', () => {
      throw new CaxtonError('invalid_config', 'misconfigured');
    });
    await a.bus.start();
    const done1 = await a.bus.submit({
      performative: 'inform',
      sender: 'client',
      receivers: ['worker'],
      content: 'done',
    });
    const dead = await a.bus.submit({
      performative: 'inform',
      sender: 'client',
      receivers: ['broken'],
      content: 'dead',
    });
    expect((await a.bus.wait(done1.conversation_id, 10_000)).state).toBe('completed');
    expect((await a.bus.wait(dead.conversation_id, 10_000)).state).toBe('failed');
    const still = await a.bus.submit({
      performative: 'query-ref',
      sender: 'client',
      receivers: ['worker'],
      content: 'open?',
    });
    await new Promise((r) => setTimeout(r, 120));
    const deleted = await a.bus.applyRetention();
    expect(deleted.dead_letters).toBe(1);
    expect(deleted.conversations).toBe(2);
    await expect(a.bus.reads.getConversation(done1.conversation_id)).rejects.toMatchObject({
      code: 'conversation_not_found',
    });
    await expect(a.bus.reads.getConversation(dead.conversation_id)).rejects.toMatchObject({
      code: 'conversation_not_found',
    });
    expect((await a.bus.reads.deadLetters({})).total).toBe(0);
    const kept = await a.bus.reads.getConversation(still.conversation_id);
    expect(['initiated', 'in_progress']).toContain(kept.conversation.state);
  });

  it("a message past the conversation's turn limit is refused and the conversation is failed, on whichever node it arrives", async () => {
    fresh();
    const a = await node('a', [['worker', ['work']]]);
    const b = await node('b', [['worker', ['work']]]);
    for (const n of [a, b]) n.bus.registerHandler('worker', () => undefined);
    await Promise.all([a.bus.start(), b.bus.start()]);
    const first = await a.bus.submit({
      performative: 'query-ref',
      sender: 'client',
      receivers: ['worker'],
      content: 'turn 1',
    });
    const { conversation } = await a.bus.reads.getConversation(first.conversation_id);
    const more = (n: number) => ({
      performative: 'query-ref',
      sender: 'client',
      receivers: ['worker'],
      conversation_id: first.conversation_id,
      content: `turn ${n}`,
    });
    for (let n = 2; n <= conversation.max_turns; n++) await (n % 2 ? a : b).bus.submit(more(n));
    await expect(b.bus.submit(more(conversation.max_turns + 1))).rejects.toMatchObject({
      code: 'conversation_closed',
      details: { state: 'failed' },
    });
    const after = await a.bus.reads.getConversation(first.conversation_id);
    expect(after.conversation.state).toBe('failed');
    expect(after.messages).toHaveLength(conversation.max_turns);
  }, 30_000);

  it('a delivery whose run outlasts the reconciliation age is kept by the node running it, never run again elsewhere', async () => {
    fresh();
    // The sweep's age (3 s) is half of each run (6 s): only the holder's writes (every 500 ms) keep
    // it from the sweep. Beside the whole suite on two cores a write has come over a second late.
    const republish = { everyMs: 200, afterMs: 3_000, staleMs: 3_000 };
    const ran = new Map<string, string[]>();
    const worker =
      (nodeName: string): InProcessHandler =>
      async (m) => {
        ran.set(m.id, [...(ran.get(m.id) ?? []), nodeName]);
        await new Promise((r) => setTimeout(r, 6_000));
        return { performative: 'inform', content: `done by ${nodeName}` };
      };
    const a = await node('a', [['worker', ['work']]], { agent_concurrency: 10 }, { republish });
    const b = await node('b', [['worker', ['work']]], { agent_concurrency: 10 }, { republish });
    a.bus.registerHandler('worker', worker('a'));
    b.bus.registerHandler('worker', worker('b'));
    await Promise.all([a.bus.start(), b.bus.start()]);
    const sent = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        (i % 2 ? a : b).bus.submit({
          performative: 'request',
          protocol: 'fipa-request',
          sender: 'client',
          capability: 'work',
          content: `long job ${i}`,
        }),
      ),
    );
    const convs = await Promise.all(sent.map((x) => a.bus.wait(x.conversation_id, 30_000)));
    expect(convs.map((c) => c.state)).toEqual(convs.map(() => 'completed'));
    expect(sent.map((x) => ran.get(x.id)?.length)).toEqual(sent.map(() => 1));
  }, 60_000);

  it('deliveries JetStream acknowledged but then lost (deleted from the stream before anyone took them) are still delivered, by the reconciliation sweep', async () => {
    fresh();
    // Node a accepts the messages; its worker never answers, so nothing is done when it stops.
    const a = await node('a', [['worker', ['work']]]);
    a.bus.registerHandler(
      'worker',
      (_m, _e, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(undefined))),
    );
    await a.bus.start();
    const sent = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        a.bus.submit({
          performative: 'request',
          protocol: 'fipa-request',
          sender: 'client',
          capability: 'work',
          content: `job ${i}`,
        }),
      ),
    );
    await a.bus.close();
    // Every stored copy goes, newest first, as a NATS host that lost its unsynced writes would.
    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(`S${schema}`);
    for (let seq = info.state.last_seq; seq >= info.state.first_seq && seq > 0; seq--)
      await jsm.streams.deleteMessage(`S${schema}`, seq).catch(() => false);
    expect((await jsm.streams.info(`S${schema}`)).state.messages).toBe(0);
    await nc.close();
    const ran: string[] = [];
    const b = await node(
      'b',
      [['worker', ['work']]],
      {},
      { republish: { everyMs: 200, afterMs: 60_000, staleMs: 1_000 } },
    );
    b.bus.registerHandler('worker', (m) => {
      ran.push(m.id);
      return { performative: 'inform', content: 'done late' };
    });
    await b.bus.start();
    const convs = await Promise.all(sent.map((x) => b.bus.wait(x.conversation_id, 30_000)));
    expect(convs.map((c) => c.state)).toEqual(convs.map(() => 'completed'));
    expect(ran.sort()).toEqual(sent.map((x) => x.id).sort());
  }, 60_000);
});
