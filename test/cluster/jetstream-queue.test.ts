/**
 * The delivery queue on JetStream (issue 17, item 3), driven through the real message bus over a
 * real SQLite file and a real `nats-server -js` started by the test: accepted means PubAck (NATS
 * down: a clear 503 at once, nothing stored), acknowledged after the reply is stored (the stream
 * is empty afterwards), a process that dies mid-delivery is taken over by another after the ack
 * wait, a duplicate of an acknowledged delivery never runs again, retries back off through the
 * stream, and a dead letter replays.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clusterConfigSchema, jetstreamQueueOptions, openJetStreamQueue, subjectToken, type JetStreamQueueOptions } from '../../src/cluster/index.js';
import type { DeliveryQueueFactory, MessageHandler, MessagingConfig } from '../../src/messaging/index.js';
import { CaxtonError, isCaxtonError } from '../../src/shared/errors.js';
import { agentDef, deploy, openBus, type TestBus } from '../messaging/helpers.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

const run = hasSystem('nats-server');
const ACK_WAIT_MS = 1_000;

let nats: NatsServer;
const connections: NatsConnection[] = [];
const buses: TestBus[] = [];
let streams = 0;

beforeAll(async () => {
  if (run) nats = await startNatsServer();
});

afterEach(async () => {
  for (const t of buses.splice(0)) await t.close().catch(() => {});
});

afterAll(async () => {
  for (const nc of connections) await nc.close().catch(() => {});
  await nats?.stop();
  removeTempDirs();
});

async function natsConnection(): Promise<NatsConnection> {
  const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  connections.push(nc);
  return nc;
}

/** A fresh stream per test (names do not collide), and the options every queue on it shares. */
function streamOptions(nc: NatsConnection, over: Partial<JetStreamQueueOptions> = {}): JetStreamQueueOptions {
  const n = ++streams;
  const cluster = clusterConfigSchema.parse({
    node: 'test',
    nats: { urls: [nats.url] },
    delivery: { stream: `TEST_DELIVERIES_${n}`, subject: `test${n}.deliver`, ack_wait: ACK_WAIT_MS / 1000, publish_timeout: '1s' },
  });
  return { ...jetstreamQueueOptions(cluster, nc), ...over };
}

function start(queue: DeliveryQueueFactory, handler: MessageHandler, dir?: string, config: Partial<MessagingConfig> = {}): TestBus {
  const t = openBus({ queue, handler, config: { retry_base: 100, retry_max: 200, ...config }, ...(dir !== undefined && { dir }) });
  buses.push(t);
  deploy(t.registry, agentDef('desk.one', ['desk']));
  t.bus.start();
  return t;
}

async function streamState(nc: NatsConnection, stream: string): Promise<{ messages: number; last_seq: number }> {
  const jsm = await jetstreamManager(nc);
  const s = (await jsm.streams.info(stream)).state;
  return { messages: s.messages, last_seq: s.last_seq };
}

describe.skipIf(!run)('the delivery queue on JetStream', () => {
  it('nodes starting at once each open the stream and its consumer: every one succeeds, on one stream', async () => {
    // JetStream sometimes refuses the losing add of a race with "subjects overlap with an existing
    // stream" (CI saw it once in two nodes' start; 30 rounds of 12 reproduce it about one run in five).
    for (let round = 0; round < 30; round++) {
      const ncs = await Promise.all(Array.from({ length: 12 }, () => natsConnection()));
      const opts = streamOptions(ncs[0]!);
      await Promise.all(ncs.map((nc) => openJetStreamQueue({ ...opts, nc })));
      expect(await streamState(ncs[0]!, opts.stream)).toEqual({ messages: 0, last_seq: 0 });
    }
  });

  it('delivers through the stream and acknowledges after the reply is stored: the stream is empty afterwards', async () => {
    const nc = await natsConnection();
    const opts = streamOptions(nc);
    const t = start(await openJetStreamQueue(opts), (m) => ({ content: `done: ${m.content as string}` }));
    const r = await t.bus.submit({ performative: 'request', capability: 'desk', content: 'file it', sender: 'user' });
    const done = await t.bus.wait(r.conversation_id, 10_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    const msgs = (await t.bus.reads.getConversation(r.conversation_id)).messages.map((s) => `${s.message.performative}:${s.message.content as string}`);
    expect(msgs).toEqual(['request:file it', 'agree:', 'inform:done: file it']);
    expect((await t.bus.reads.getMessage(r.id))!.deliveries.map((d) => [d.receiver, d.state])).toEqual([['desk.one', 'done']]);
    // It went through JetStream (one message published on the agent's subject) and left it once acknowledged.
    await waitUntil(async () => (await streamState(nc, opts.stream)).messages === 0, { what: 'the stream to be empty' });
    expect((await streamState(nc, opts.stream)).last_seq).toBe(1);
    expect(subjectToken('Desk.One')).toBe('desk~one');
    expect(opts).toMatchObject({ consumer: 'caxton_deliverer', ackWaitMs: 1_000, publishTimeoutMs: 1_000, maxHeld: 256 });
  });

  it('refuses a message with a clear 503 while NATS is down, stores nothing, and accepts again once it is back', async () => {
    const nc = await natsConnection();
    const opts = streamOptions(nc, { publishTimeoutMs: 500 });
    const t = start(await openJetStreamQueue(opts), () => ({ content: 'ok' }));
    await nats.stop();
    const began = Date.now();
    const e = await t.bus.submit({ id: 'msg_while_down', performative: 'request', capability: 'desk', content: 'now?' }).catch((x: unknown) => x);
    expect(isCaxtonError(e) && e.code).toBe('not_ready');
    expect((e as CaxtonError).message).toMatch(/^the message was not accepted: NATS JetStream did not acknowledge it within 500 ms/);
    expect(Date.now() - began).toBeLessThan(5_000); // an error, not a hang
    expect(await t.bus.reads.getMessage('msg_while_down')).toBeUndefined();
    await nats.restart();
    await waitUntil(() => !nc.isClosed() && nc.info !== undefined, { what: 'the reconnection' });
    const r = await waitUntil(() => t.bus.submit({ id: 'msg_while_down', performative: 'request', capability: 'desk', content: 'now?' }).catch(() => undefined), {
      timeoutMs: 10_000,
      what: 'a submission accepted after the restart',
    });
    expect((await t.bus.wait(r.value.conversation_id, 10_000)).state).toBe('completed');
  });

  it('a process that dies mid-delivery: another takes the delivery over after the ack wait and runs it once', async () => {
    const ncA = await natsConnection();
    const opts = streamOptions(ncA);
    const seen: string[] = [];
    const a = start(await openJetStreamQueue(opts), (m) => {
      seen.push(`a:${m.content as string}`);
      return new Promise(() => {}); // dies before it answers
    });
    const r = await a.bus.submit({ performative: 'request', capability: 'desk', content: 'slow', sender: 'user' });
    await waitUntil(() => seen.length === 1, { what: 'process A to start the delivery' });
    // A crash as JetStream sees it: the connection is gone, the delivery unacknowledged.
    await ncA.close();

    const ncB = await natsConnection();
    const b = start(
      await openJetStreamQueue({ ...opts, nc: ncB }),
      (m) => {
        seen.push(`b:${m.content as string}`);
        return { content: 'taken over' };
      },
      a.dir,
    );
    const done = await b.bus.wait(r.conversation_id, 10_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    expect(seen).toEqual(['a:slow', 'b:slow']);
    await waitUntil(async () => (await streamState(ncB, opts.stream)).messages === 0, { what: 'the stream to be empty' });
  });

  it('a duplicate of an acknowledged delivery is acknowledged without running the agent again', async () => {
    const nc = await natsConnection();
    const opts = streamOptions(nc);
    let runs = 0;
    const t = start(await openJetStreamQueue(opts), () => {
      runs++;
      return { content: 'once' };
    });
    const r = await t.bus.submit({ performative: 'request', capability: 'desk', content: 'x' });
    expect((await t.bus.wait(r.conversation_id, 10_000)).state).toBe('completed');
    const stored = (await t.bus.reads.getMessage(r.id))!;
    // A copy outside the duplicate window's id (as a lost ack or a recovery would leave).
    const js = jetstream(nc);
    await js.publish(`${opts.subject}.${subjectToken('desk.one')}`, JSON.stringify({ id: stored.deliveries[0]!.id, receiver: 'desk.one', message: stored.message }), { msgID: 'a-copy' });
    await waitUntil(async () => (await streamState(nc, opts.stream)).messages === 0 && (await streamState(nc, opts.stream)).last_seq === 2, { what: 'the copy to be consumed' });
    expect(runs).toBe(1);
  });

  it('retries with backoff through the stream, then dead-letters; a replay delivers it', async () => {
    const nc = await natsConnection();
    const opts = streamOptions(nc);
    let fail = true;
    let calls = 0;
    const t = start(
      await openJetStreamQueue(opts),
      () => {
        calls++;
        if (fail) throw new CaxtonError('llm_error', 'the model is away');
        return { content: 'back' };
      },
      undefined,
      { max_attempts: 3 },
    );
    const r = await t.bus.submit({ performative: 'request', capability: 'desk', content: 'try' });
    const failed = await t.bus.wait(r.conversation_id, 10_000);
    expect(failed.state).toBe('failed');
    expect(calls).toBe(3);
    const dead = await t.bus.reads.deadLetters();
    expect(dead.items.map((d) => [d.receiver, d.state, d.attempts])).toEqual([['desk.one', 'dead', 3]]);
    fail = false;
    await t.bus.replay(dead.items[0]!.id);
    const done = await t.bus.wait(r.conversation_id, 10_000);
    expect(done.state, done.reason ?? '').toBe('completed');
    expect(calls).toBe(4);
    await waitUntil(async () => (await streamState(nc, opts.stream)).messages === 0, { what: 'the stream to be empty' });
  });
});
