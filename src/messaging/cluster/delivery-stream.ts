/**
 * The delivery stream and the durable consumer every node shares (jetstream-queue.ts hands out
 * and takes in what they carry), made or updated at a node's start.
 */
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type Consumer,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { describeError } from '../../shared/errors.js';
import { untilPlaced, type PlacementOptions } from './jetstream-placement.js';

/**
 * Creates (or updates) the work-queue stream of deliveries and the durable consumer every node
 * shares; returns the JetStream client and that consumer.
 */
export async function openDeliveryStream(
  nc: NatsConnection,
  opts: {
    stream: string;
    subject: string;
    consumer: string;
    ackWaitMs: number;
    replicas?: number;
    /** While a NATS cluster forms (see jetstream-placement.ts): how long to retry, and where to say so. */
    placement?: Pick<PlacementOptions, 'waitMs' | 'log'>;
  },
): Promise<{ js: JetStreamClient; consumer: Consumer }> {
  // Made inside the retries: it asks for the account's JetStream info, which no server answers
  // until the cluster has elected its meta leader.
  let jsm: JetStreamManager | undefined;
  const stream = {
    name: opts.stream,
    subjects: [`${opts.subject}.>`],
    // Work queue: a message leaves the stream once acknowledged (or terminated).
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: 120_000_000_000, // 2 min in ns: a repeated publish (a retried submission, a recovery) is stored once
  };
  const placed = (what: string) => ({ ...opts.placement, what, replicas: opts.replicas });
  await untilPlaced(
    async () => {
      const m = (jsm ??= await jetstreamManager(nc));
      try {
        await m.streams.info(opts.stream);
        // update merges into the stream's config: what an operator set (limits, replicas) stays unless configured here.
        await m.streams.update(opts.stream, {
          ...stream,
          ...(opts.replicas !== undefined && { num_replicas: opts.replicas }),
        });
      } catch (e) {
        if (!/stream not found/i.test(describeError(e))) throw e;
        await m.streams.add({ ...stream, num_replicas: opts.replicas ?? 1 }).catch(async (added: unknown) => {
          // Nodes starting at once: another one's add may win the race, and JetStream may refuse this
          // one ("subjects overlap with an existing stream", seen in CI) rather than return that
          // stream. The stream is there then, and is the one this node would have made.
          if (
            !(await m.streams.info(opts.stream).then(
              () => true,
              () => false,
            ))
          )
            throw added;
        });
      }
    },
    placed(`the delivery stream "${opts.stream}"`),
  );
  const consumer = {
    durable_name: opts.consumer,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: opts.ackWaitMs * 1_000_000,
    // The bus decides when a delivery is dead (max_attempts); JetStream redelivers until told.
    max_deliver: -1,
    max_ack_pending: -1,
  };
  await untilPlaced(
    async () => {
      const m = (jsm ??= await jetstreamManager(nc));
      try {
        await m.consumers.info(opts.stream, opts.consumer);
        await m.consumers.update(opts.stream, opts.consumer, { ack_wait: consumer.ack_wait });
      } catch (e) {
        if (!/consumer not found/i.test(describeError(e))) throw e;
        await m.consumers.add(opts.stream, consumer).catch(async (added: unknown) => {
          // The same race for the shared consumer: another node's add made it.
          if (
            !(await m.consumers.info(opts.stream, opts.consumer).then(
              () => true,
              () => false,
            ))
          )
            throw added;
        });
      }
    },
    placed(`the delivery consumer "${opts.consumer}"`),
  );
  const js = jetstream(nc);
  return { js, consumer: await js.consumers.get(opts.stream, opts.consumer) };
}
