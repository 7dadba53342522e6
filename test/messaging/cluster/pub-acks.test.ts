/**
 * The deliveries' publisher (src/messaging/cluster/pub-acks.ts) on a real `nats-server -js`: a
 * publish resolves once the stream stored the message, the stream's dedupe window drops a second
 * publish of the same `Nats-Msg-Id` (and its PubAck does not move how far the stream was written),
 * a stream's refusal fails the publish with its reason, a subject no stream takes fails at once
 * (503), and a publish no one answers fails at its timeout.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PubAcks } from '../../../src/messaging/cluster/pub-acks.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { hasSystem } from '../../helpers/system.js';
import { removeTempDirs } from '../../helpers/tmp.js';

const run = hasSystem('nats-server');
let nats: NatsServer;
let nc: NatsConnection;

beforeAll(async () => {
  if (!run) return;
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url, noAsyncTraces: true });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({
    name: 'PUBACKS',
    subjects: ['pa.>'],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.Memory,
  });
});

afterAll(async () => {
  await nc?.close().catch(() => {});
  await nats?.stop();
  removeTempDirs();
});

describe.runIf(run)('PubAcks', () => {
  it('resolves once stored; the same Nats-Msg-Id is stored once', async () => {
    const acks = new PubAcks(nc);
    await Promise.all(Array.from({ length: 50 }, (_, i) => acks.publish('pa.one', `m${i}`, `id-${i}`, 5000)));
    await acks.publish('pa.one', 'again', 'id-0', 5000);
    const jsm = await jetstreamManager(nc);
    const state = (await jsm.streams.info('PUBACKS')).state;
    expect(state.messages).toBe(50);
    // How far the stream was written, as the backlog counts it: the duplicate's PubAck names its
    // first copy's sequence and moves nothing.
    expect([acks.lastSeq, acks.stored]).toEqual([state.last_seq, 50]);
  });

  it('fails with the reason when the stream refuses the message (its error answer)', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: 'PUBACKS_FULL',
      subjects: ['full.>'],
      storage: StorageType.Memory,
      max_msgs: 1,
      discard: DiscardPolicy.New,
    });
    const acks = new PubAcks(nc);
    await acks.publish('full.x', 'first', 'f-1', 5000);
    await expect(acks.publish('full.x', 'second', 'f-2', 5000)).rejects.toThrow(
      /JetStream refused the message: maximum messages exceeded/,
    );
    expect((await jsm.streams.info('PUBACKS_FULL')).state.messages).toBe(1);
  });

  it('fails at once when no stream takes the subject, and at its timeout when no one answers', async () => {
    const acks = new PubAcks(nc);
    await expect(acks.publish('nostream.x', 'm', 'x-1', 5000)).rejects.toThrow(/503|no JetStream/);
    // A core subscriber that never answers: the publish has a responder, but no PubAck comes.
    const silent = nc.subscribe('silent.x');
    await nc.flush();
    await expect(acks.publish('silent.x', 'm', 'x-2', 200)).rejects.toThrow(/no PubAck within 200 ms/);
    silent.unsubscribe();
  });
});
