/**
 * The delivery queue on NATS JetStream (ADR 0038): the second implementation of
 * messaging's `DeliveryQueue` (src/messaging/queue.ts), plugged in through `BusOptions.queue`.
 *
 * JetStream carries the deliveries; the message store keeps the record of each one (its state,
 * attempts, last error, the dead letters), as with the SQLite queue:
 *  - **accepted means PubAck**: `enqueue` publishes one JetStream message per receiver and resolves
 *    only once JetStream acknowledged every one, then stores the rows. Each carries a message id
 *    (`Nats-Msg-Id`: message id and receiver), so a publish repeated within the stream's duplicate
 *    window is stored once.
 *  - **any consumer may deliver**: one durable pull consumer on the stream, shared by every process
 *    that opens the queue; a fetched delivery runs through the same per-agent lanes (Dispatcher) as
 *    the SQLite queue's, and JetStream is told the delivery is still being worked on while it waits
 *    or runs (`working()`), so its ack wait covers a dead process only.
 *  - **acknowledged after the reply is stored**: the JetStream ack follows the commit of the
 *    delivery's row and its replies. A process that dies before it leaves the message unacked, and
 *    JetStream redelivers it after the ack wait; one that dies after the commit but before the ack
 *    leaves a duplicate the row check drops (a delivery whose row is no longer pending is acked
 *    and not run again).
 *  - **retries** are `nak(delay)` (JetStream redelivers after the backoff), **dead letters** are
 *    `term()` after the row is marked dead; a replay or a reroute publishes the delivery again.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type Consumer, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import { agentKey } from '../agents/index.js';
import { pullLapsed, Pulls } from './pulls.js';
import {
  Dispatcher,
  SqliteDeliveryQueue,
  type AclMessage,
  type Delivery,
  type DeliveryQueue,
  type DeliveryQueueDeps,
  type DeliveryQueueFactory,
  type DeadLetterFilter,
  type DeliveryRow,
  type MessageId,
  type Page,
  type PendingDelivery,
} from '../messaging/index.js';
import type { ClusterConfig } from '../config/index.js';
import { CaxtonError, describeError } from '../shared/errors.js';

export interface JetStreamQueueOptions {
  nc: NatsConnection;
  /** The stream holding the deliveries (created or updated by `openJetStreamQueue`). */
  stream: string;
  /** Deliveries are published on `<subject>.<agent>`. */
  subject: string;
  /** The durable consumer every node shares. */
  consumer: string;
  /** How long JetStream waits for an ack before it redelivers to another consumer (a dead process). */
  ackWaitMs: number;
  /** Longest a publish may wait for its PubAck before the submission fails with 503. */
  publishTimeoutMs: number;
  /** Deliveries this process holds at once (fetched, waiting or running). */
  maxHeld: number;
  /**
   * A fetched delivery whose row is not stored yet is tried again shortly, up to this age; after it,
   * it is dropped: its writer died (or its disk filled) between the PubAck and the commit, and the
   * submitter got an error, not a 202.
   */
  orphanMs?: number;
  log?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

/** What travels on the stream: the message, its receiver, and the row's id once it has one. */
interface Wire {
  id?: number;
  receiver: string;
  message: AclMessage;
}

/** Agent names may hold `.`, a NATS subject separator: it travels as `~`, which names never hold. */
export const subjectToken = (agent: string): string => agentKey(agent).replace(/\./g, '~');

/**
 * Creates (or updates) the work-queue stream of deliveries and the durable consumer every node
 * shares; returns the JetStream client and that consumer. Used by both JetStream consumers: the
 * single-node bus's queue below and the cluster's bus (cluster-bus.ts).
 */
export async function openDeliveryStream(
  nc: NatsConnection,
  opts: { stream: string; subject: string; consumer: string; ackWaitMs: number; replicas?: number },
): Promise<{ js: JetStreamClient; consumer: Consumer }> {
  const jsm = await jetstreamManager(nc);
  const stream = {
    name: opts.stream,
    subjects: [`${opts.subject}.>`],
    // Work queue: a message leaves the stream once acknowledged (or terminated).
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: 120_000_000_000, // 2 min in ns: a repeated publish (a retried submission, a recovery) is stored once
  };
  try {
    await jsm.streams.info(opts.stream);
    // update merges into the stream's config: what an operator set (limits, replicas) stays unless configured here.
    await jsm.streams.update(opts.stream, { ...stream, ...(opts.replicas !== undefined && { num_replicas: opts.replicas }) });
  } catch (e) {
    if (!/stream not found/i.test(describeError(e))) throw e;
    await jsm.streams.add({ ...stream, num_replicas: opts.replicas ?? 1 }).catch(async (added: unknown) => {
      // Nodes starting at once: another one's add may win the race, and JetStream may refuse this
      // one ("subjects overlap with an existing stream", seen in CI) rather than return that
      // stream. The stream is there then, and is the one this node would have made.
      if (
        !(await jsm.streams.info(opts.stream).then(
          () => true,
          () => false,
        ))
      )
        throw added;
    });
  }
  const consumer = {
    durable_name: opts.consumer,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: opts.ackWaitMs * 1_000_000,
    // The bus decides when a delivery is dead (max_attempts); JetStream redelivers until told.
    max_deliver: -1,
    max_ack_pending: -1,
  };
  try {
    await jsm.consumers.info(opts.stream, opts.consumer);
    await jsm.consumers.update(opts.stream, opts.consumer, { ack_wait: consumer.ack_wait });
  } catch (e) {
    if (!/consumer not found/i.test(describeError(e))) throw e;
    await jsm.consumers.add(opts.stream, consumer).catch(async (added: unknown) => {
      // The same race for the shared consumer: another node's add made it.
      if (
        !(await jsm.consumers.info(opts.stream, opts.consumer).then(
          () => true,
          () => false,
        ))
      )
        throw added;
    });
  }
  const js = jetstream(nc);
  return { js, consumer: await js.consumers.get(opts.stream, opts.consumer) };
}

/** Creates (or updates) the stream and the shared consumer; returns the queue factory for the bus. */
export async function openJetStreamQueue(opts: JetStreamQueueOptions): Promise<DeliveryQueueFactory> {
  const { js, consumer } = await openDeliveryStream(opts.nc, opts);
  return (deps) => new JetStreamDeliveryQueue(deps, opts, js, consumer);
}

export class JetStreamDeliveryQueue implements DeliveryQueue {
  /** The record of each delivery: the rows and their writes are the SQLite queue's. */
  readonly #record: SqliteDeliveryQueue;
  readonly #deps: DeliveryQueueDeps;
  readonly #opts: JetStreamQueueOptions;
  readonly #js: JetStreamClient;
  readonly #pulls: Pulls;
  readonly #dispatcher: Dispatcher;
  /** The JetStream message of each delivery this process holds, by row id. */
  readonly #held = new Map<number, JsMsg>();
  #heartbeat: NodeJS.Timeout | undefined;
  #loop: Promise<void> | undefined;
  #stopped = false;
  #room: (() => void) | undefined;

  constructor(deps: DeliveryQueueDeps, opts: JetStreamQueueOptions, js: JetStreamClient, consumer: Consumer) {
    this.#deps = deps;
    this.#opts = opts;
    this.#js = js;
    this.#pulls = new Pulls(consumer, { onReleased: () => this.#wakeLoop() });
    this.#record = new SqliteDeliveryQueue(deps);
    this.#dispatcher = new Dispatcher({
      concurrency: deps.concurrency,
      deliver: async (d, signal) => {
        try {
          await deps.deliver(d, signal);
        } finally {
          // A delivery the bus neither acked, retried nor dead-lettered (the process is stopping) stays unacked: redelivered.
          this.#wakeLoop();
        }
      },
    });
  }

  get size(): number {
    return this.#dispatcher.size;
  }

  get running(): number {
    return this.#dispatcher.running;
  }

  get delayed(): number {
    return 0; // a retry waits in the stream (nak with a delay), not here
  }

  load(agent: string): number {
    return this.#dispatcher.load(agent);
  }

  async enqueue(message: AclMessage, receivers: readonly string[], alongside: readonly AclMessage[], now: string): Promise<Delivery[]> {
    this.#start();
    await Promise.all(receivers.map((receiver) => this.#publish({ receiver, message }, `${message.id}:${agentKey(receiver)}`)));
    return this.#record.enqueue(message, receivers, alongside, now);
  }

  /** Fresh deliveries were published by `enqueue`; a delay is a retry: JetStream redelivers after it. */
  dispatch(d: Delivery, delayMs?: number): void {
    if (delayMs === undefined) return;
    const m = this.#held.get(d.id);
    if (!m) return;
    this.#held.delete(d.id);
    m.nak(delayMs);
  }

  async ack(d: Delivery, replies: readonly AclMessage[], now: string): Promise<void> {
    await this.#record.ack(d, replies, now);
    this.#release(d.id)?.ack();
  }

  retry(d: Delivery, nextAt: number, error: string, now: string): Promise<void> {
    return this.#record.retry(d, nextAt, error, now);
  }

  async deadLetter(d: Delivery, error: string, replies: readonly AclMessage[], now: string): Promise<void> {
    await this.#record.deadLetter(d, error, replies, now);
    this.#release(d.id)?.term('dead letter');
  }

  async reroute(d: Delivery, receiver: string, now: string): Promise<void> {
    await this.#record.reroute(d, receiver, now);
    await this.#publish({ id: d.id, receiver, message: d.message }, `${d.id}:reroute:${agentKey(receiver)}`);
    this.#release(d.id)?.ack();
  }

  async replay(id: number, now: string, alongside: () => void): Promise<boolean> {
    const ok = await this.#record.replay(id, now, alongside);
    if (!ok) return false;
    const row = this.#record.get(id)!;
    const message = this.#deps.store.getMessage(row.message_id)!.message;
    await this.#publish({ id, receiver: row.receiver, message }, `${id}:replay:${row.updated_at}`);
    return true;
  }

  /**
   * The pending rows, for the bus to count as outstanding. They are published again (JetStream
   * keeps one copy within its duplicate window; the row check drops a later copy), which covers a
   * process that stored a row but died before its delivery reached the stream.
   */
  recover(onSkipped: (messageId: MessageId, reason: string) => void): { pending: PendingDelivery[]; found: number } {
    const out = this.#record.recover(onSkipped);
    this.#start();
    for (const { delivery: d } of out.pending) {
      this.#publish({ id: d.id, receiver: d.receiver, message: d.message }, `${d.message.id}:${agentKey(d.receiver)}`).catch((e: unknown) =>
        this.#opts.log?.warn({ delivery: d.id, err: describeError(e) }, 'could not publish a pending delivery again at start; JetStream still holds it if it was published before'),
      );
    }
    return out;
  }

  get(id: number): DeliveryRow | undefined {
    return this.#record.get(id);
  }

  ofMessage(messageId: string): DeliveryRow[] {
    return this.#record.ofMessage(messageId);
  }

  deadLetters(limit: number, offset: number, filter?: DeadLetterFilter): Page<DeliveryRow> {
    return this.#record.deadLetters(limit, offset, filter);
  }

  deadCount(): number {
    return this.#record.deadCount();
  }

  async stop(graceMs: number): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#heartbeat);
    this.#wakeLoop();
    await this.#dispatcher.stop(graceMs);
    await this.#loop;
    // What this process held and did not finish goes back to the stream now, for another node.
    for (const m of this.#held.values()) m.nak();
    this.#held.clear();
  }

  // ---------------------------------------------------------------- JetStream side

  async #publish(w: Wire, msgID: string): Promise<void> {
    try {
      await this.#js.publish(`${this.#opts.subject}.${subjectToken(w.receiver)}`, JSON.stringify(w), { msgID, timeout: this.#opts.publishTimeoutMs });
    } catch (e) {
      throw new CaxtonError(
        'not_ready',
        `the message was not accepted: NATS JetStream did not acknowledge it within ${this.#opts.publishTimeoutMs} ms (${describeError(e)}). Nothing was stored; send it again with the same id once the cluster is reachable`,
        { retry_after: 5 },
      );
    }
  }

  #release(id: number): JsMsg | undefined {
    const m = this.#held.get(id);
    this.#held.delete(id);
    this.#wakeLoop();
    return m;
  }

  #start(): void {
    if (this.#loop || this.#stopped) return;
    const every = Math.max(200, Math.floor(this.#opts.ackWaitMs / 3));
    this.#heartbeat = setInterval(() => {
      for (const m of this.#held.values()) m.working();
    }, every);
    this.#heartbeat.unref();
    this.#loop = this.#fetchLoop();
  }

  #wakeLoop(): void {
    const r = this.#room;
    this.#room = undefined;
    r?.();
  }

  async #fetchLoop(): Promise<void> {
    while (!this.#stopped) {
      const room = this.#opts.maxHeld - this.#held.size - this.#pulls.owed;
      if (room <= 0) {
        await new Promise<void>((r) => (this.#room = r));
        continue;
      }
      try {
        await this.#pulls.pull(room, (m) => this.#take(m));
      } catch (e) {
        if (this.#stopped) break;
        // A pull the server stopped answering (two idle heartbeats missed, ~1 s): pull again at once.
        if (pullLapsed(e)) continue;
        // NATS is away (the connection reconnects on its own): try again shortly.
        this.#opts.log?.warn({ err: describeError(e) }, 'fetching deliveries from JetStream failed; trying again');
        await new Promise((r) => setTimeout(r, 500).unref());
      }
    }
  }

  #take(m: JsMsg): void {
    if (this.#stopped) return m.nak();
    let w: Wire;
    try {
      w = m.json<Wire>();
    } catch (e) {
      this.#opts.log?.error({ seq: m.seq, err: describeError(e) }, 'dropped a delivery that is not JSON');
      return m.term('not JSON');
    }
    const row = w.id !== undefined ? this.#record.get(w.id) : this.#record.ofMessage(w.message.id).find((r) => agentKey(r.receiver) === agentKey(w.receiver));
    if (!row) {
      const age = Date.now() - Math.floor(m.info.timestampNanos / 1_000_000);
      if (age < (this.#opts.orphanMs ?? 30_000)) return m.nak(100); // its row is still being written
      this.#opts.log?.warn({ message_id: w.message.id, receiver: w.receiver }, 'dropped a delivery whose row was never stored (its submission failed after JetStream accepted it)');
      return m.term('no stored delivery');
    }
    if (!mayTake(row, m, w.receiver, this.#held)) return;
    this.#held.set(row.id, m);
    this.#dispatcher.enqueue({ id: row.id, message: w.message, receiver: row.receiver, attempts: row.attempts });
  }
}

/**
 * Whether a fetched delivery is to be run here, given its row; when not, it is settled: acked as a
 * duplicate (its row is done, dead or rerouted since: the ack after the commit was lost, or a
 * recovery's copy; or this node holds it already under another stream copy), its handle refreshed
 * (JetStream's redelivery of one this node holds), or naked until its retry time.
 */
export function mayTake(row: DeliveryRow, m: JsMsg, receiver: string, held: ReadonlyMap<number, JsMsg> & { set(id: number, m: JsMsg): unknown }): boolean {
  if (row.state !== 'pending' || agentKey(row.receiver) !== agentKey(receiver)) {
    m.ack();
    return false;
  }
  const mine = held.get(row.id);
  if (mine) {
    if (mine.seq === m.seq) held.set(row.id, m);
    else m.ack();
    return false;
  }
  const wait = row.next_at - Date.now();
  if (wait > 50) {
    m.nak(wait); // a retry published again early (a recovery): not before its time
    return false;
  }
  return true;
}

/** The queue options `[cluster.delivery]` gives, on the node's connection. */
export function jetstreamQueueOptions(cluster: ClusterConfig, nc: NatsConnection, log?: JetStreamQueueOptions['log']): JetStreamQueueOptions {
  const d = cluster.delivery;
  return { nc, stream: d.stream, subject: d.subject, consumer: d.consumer, ackWaitMs: d.ack_wait, publishTimeoutMs: d.publish_timeout, maxHeld: d.max_held, ...(log && { log }) };
}
