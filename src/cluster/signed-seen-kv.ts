/**
 * The seen-set of signed deliveries on a cluster (ADR 0114): a JetStream key-value bucket of its
 * own (`<[cluster] keys_bucket>_seen`), whose entries expire after the bucket's TTL, so every node
 * knows which receiver has had which signed message, whichever node delivered it. It is not in
 * PostgreSQL, where the message rows are: a writer of those rows cannot clear it.
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { describeError } from '../shared/errors.js';
import { createKv } from './nats.js';

export interface KvSignedSeenOptions {
  nc: NatsConnection;
  bucket: string;
  /** How long an entry is kept. */
  ttlMs: number;
  replicas?: number;
  log?: { warn(obj: object, msg: string): void };
}

/** A bucket key for any message id and receiver (bucket keys allow few characters). */
const keyOf = (id: string, receiver: string): string =>
  createHash('sha256').update(`${id}\n${receiver.toLowerCase()}`).digest('base64url').replaceAll('-', '=');

/** The messaging engine's `SignedSeen` (src/messaging/signed-seen.ts), shared by every node. */
export class KvSignedSeen {
  readonly #opts: KvSignedSeenOptions;
  #kv: Promise<KV> | undefined;

  constructor(opts: KvSignedSeenOptions) {
    this.#opts = opts;
  }

  /**
   * Throws when the bucket cannot be read: the delivery is then not run now and is delivered
   * again later, rather than run without the check.
   */
  async delivered(id: string, receiver: string): Promise<boolean> {
    const e = await (await this.#bucket()).get(keyOf(id, receiver));
    return e !== null && e.operation === 'PUT';
  }

  /** A failed write is logged, not thrown: the receiver has run, and its answer stands. */
  async mark(id: string, receiver: string): Promise<void> {
    try {
      await (await this.#bucket()).put(keyOf(id, receiver), '1');
    } catch (e) {
      this.#opts.log?.warn(
        { message_id: id, receiver, err: describeError(e) },
        `could not record in the cluster that ${receiver} has had signed message ${id}; a reset of its row would not be refused`,
      );
    }
  }

  /**
   * Takes the pair unless an entry holds it (JetStream's create is one atomic step on the
   * stream, whichever node asks). Throws when the bucket cannot be written: the submission is
   * then refused, never accepted unchecked.
   */
  async claim(id: string, receiver: string): Promise<boolean> {
    const kv = await this.#bucket();
    try {
      await kv.create(keyOf(id, receiver), '1');
      return true;
    } catch (e) {
      if ((await kv.get(keyOf(id, receiver)))?.operation === 'PUT') return false;
      throw e;
    }
  }

  async release(id: string, receiver: string): Promise<void> {
    try {
      await (await this.#bucket()).delete(keyOf(id, receiver));
    } catch (e) {
      this.#opts.log?.warn(
        { message_id: id, err: describeError(e) },
        `could not forget refused signed submission ${id}; sending it again is refused as a replay until the entry expires`,
      );
    }
  }

  #bucket(): Promise<KV> {
    // A bucket that could not be opened is tried again on the next delivery.
    this.#kv ??= createKv(
      this.#opts.nc,
      this.#opts.bucket,
      {
        history: 1,
        replicas: this.#opts.replicas ?? 1,
        ttl: this.#opts.ttlMs,
        // Opened on a delivery, which must not wait for a forming cluster: the next delivery tries again.
      },
      { waitMs: 0 },
    ).catch((e: unknown) => {
      this.#kv = undefined;
      throw e;
    });
    return this.#kv;
  }
}
