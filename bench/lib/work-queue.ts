/**
 * The JetStream stream and consumer every baseline of the cluster benches uses: a work queue on
 * file storage with a two-minute duplicate window (a node's own stream's settings), and a durable
 * pull consumer with explicit acks and no limit on redelivery or pending acks. Returns the manager
 * it made, for a caller that deletes the stream afterwards.
 */
import { AckPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

export async function addWorkQueue(
  nc: NatsConnection,
  stream: string,
  subject: string,
  durable: string,
): Promise<JetStreamManager> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({
    name: stream,
    subjects: [`${subject}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: 120_000_000_000,
  });
  await jsm.consumers.add(stream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    ack_wait: 30_000_000_000,
    max_deliver: -1,
    max_ack_pending: -1,
  });
  return jsm;
}
