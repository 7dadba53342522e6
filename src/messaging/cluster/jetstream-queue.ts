/**
 * The delivery engine's queue in a cluster: a JetStream work queue every node consumes. The
 * engine's steps store the delivery rows in PostgreSQL; this hands them out and takes them in.
 *
 *  - **accepted means PubAck**: `publish` resolves once JetStream acknowledged every delivery,
 *    each under a message id (`Nats-Msg-Id`: the row id and its hand-out tag), so a publish
 *    repeated within the stream's duplicate window is stored once. A publish that fails answers
 *    503: the rows stay, and sending the same message id again publishes them again (`again`).
 *  - **first hand-outs travel in groups** (delivery-groups.ts, ADR 0158): what the steps of one
 *    turn committed goes out as one stream message per agent, each delivery in it taken, settled
 *    and retried on its own; the message is acknowledged when the last of them is settled.
 *  - **any node may deliver**: one durable pull consumer on the stream, shared by every node; a
 *    fetched delivery runs through the node's per-agent lanes (Dispatcher), and JetStream is told
 *    it is still being worked on (`working()`), so its ack wait covers a dead node only.
 *  - **acknowledged after the step commits**: the engine's `done` follows the commit of the
 *    delivery's row and its replies. A node that dies before it leaves the message unacked, and
 *    JetStream redelivers it after the ack wait; the row check drops a copy whose row is done.
 *  - **retries** are `nak(delay)`, **dead letters** `term()` after the row is marked dead; a replay
 *    or a reroute publishes the row again under a fresh tag.
 *  - **handed out again** (a redelivery, a copy published again), a delivery runs here only once
 *    no other node says it still holds it (delivery-holders.ts): JetStream cannot tell a dead
 *    holder from one too busy to say it is working.
 */
import DataLoader from 'dataloader';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Consumer, JsMsg } from '@nats-io/jetstream';
import type { ClusterConfig } from '../../config/index.js';
import {
  Dispatcher,
  type AclMessage,
  type BusReads,
  type Delivery,
  type DeliveryQueue,
  messageJson,
  type Outgoing,
  type StoredMessage,
} from '../index.js';
import { CaxtonError, describeError } from '../../shared/errors.js';
import { scrubSecrets } from '../../shared/secrets.js';
import { Ticks } from '../../shared/ticks.js';
import { openDeliveryStream } from './delivery-stream.js';
import type { PgMessageStore, TakeRow } from '../postgres/index.js';
import { DeliveryHolders, type HolderAnswers } from './delivery-holders.js';
import { groupHandOuts, type HandOut, isGroupWire, PublishGroups } from './delivery-groups.js';
import { mayTake, subjectToken, type Wire, WIRE_OVERHEAD, wireOf } from './delivery-wire.js';
import { PubAcks } from './pub-acks.js';
import { Linger } from '../index.js';
import { natsDurability } from './nats-durability.js';
import { pullLapsed, Pulls } from './pulls.js';

/** How long stopping waits for the PubAck marks still due to be written. */
const STOP_MARKS_MS = 2000;
/** How long the consumer's count of waiting deliveries is reused (see exactBacklog). */
const COUNT_REUSE_MS = 100;
/** Times a delivery to an agent this node lacks goes back to the stream before it is run here anyway. */
const HAND_BACKS = 10;

export interface JetStreamQueueOptions {
  nc: NatsConnection;
  /** `[cluster.delivery]` and the stream's replicas. */
  cluster: Pick<ClusterConfig, 'delivery'> & Partial<Pick<ClusterConfig, 'replicas'>>;
  store: PgMessageStore;
  reads: BusReads;
  /** Deliveries `agent` may run at once. */
  concurrency(agent: string): number;
  /** Runs one delivery and finishes it; never rejects. */
  deliver(d: Delivery, signal: AbortSignal): Promise<void>;
  /** Whether this node can run deliveries to `receiver`. */
  serves(receiver: string): boolean;
  /** A delivery was dead-lettered here (the node's gauge counts it before its next refresh). */
  onDead?(): void;
  /** A delivery went back to the stream to wait for its retry (counted likewise). */
  onRetry?(): void;
  log: {
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
    info?(obj: object, msg: string): void;
    debug?(obj: object, msg: string): void;
  };
  /**
   * How often this node publishes again the deliveries whose publish was never confirmed (default
   * 5 s), and how old such a delivery must be first (default twice `publish_timeout`, at least 5 s);
   * `staleMs`: how long a pending delivery may stay untouched before it is published again whatever
   * its mark (default `ack_wait` × `reconcile_after`).
   */
  republish?: { everyMs?: number; afterMs?: number; staleMs?: number };
  /**
   * This node's name and the other nodes to ask, before running a delivery handed out before,
   * whether one of them still holds it (delivery-holders.ts). Without it, such a delivery runs at once.
   */
  holders?: { node: string; peers(): readonly string[] };
}

export class JetStreamQueue implements DeliveryQueue {
  readonly #o: JetStreamQueueOptions;
  readonly #dispatcher: Dispatcher;
  /** Where deliveries are published, each awaiting its PubAck. */
  readonly #acks: PubAcks;
  /** The hand-out of each delivery this node holds, by row id. */
  readonly #held = new Map<number, HandOut>();
  /** Deliveries handed out before, taken here while the other nodes are asked whether they hold them. */
  readonly #asking = new Map<number, HandOut>();
  /** Fetched deliveries being taken (their rows read), by row id. */
  readonly #taken = new Map<number, HandOut>();
  /** First hand-outs gathered into one stream message per subject (absent: `group_max` = 1). */
  readonly #groups: PublishGroups | undefined;
  /** Deliveries per fetched group message lately, which sizes a fetch to the room left. */
  #perMessage = 1;
  #holders: DeliveryHolders | undefined;
  /**
   * The held deliveries whose row marked their one-way conversation kept when taken (ADR 0080):
   * the message opened the conversation and is its only one, so the conversation so far is that
   * message (see `openingHistory`). By conversation, and the conversation of each by row id.
   */
  readonly #openings = new Map<string, AclMessage>();
  readonly #openingOf = new Map<number, string>();
  /** Fetched deliveries whose rows are being read (they count against max_held). */
  #taking = 0;
  #loop: Promise<void> | undefined;
  /** The pulls of the delivery loop (their open fetches are stopped by `stop`). */
  #pulls: Pulls | undefined;
  #room: (() => void) | undefined;
  #running = false;
  /** The republish, hold-extension, still-held and confirmation ticks; stopping waits for the ones running. */
  #ticks: Ticks | undefined;
  /** PubAcks not yet recorded on their rows, by row id: the tag and when it came (see #confirm). */
  readonly #confirmed = new Map<number, { tag: string; at: number }>();
  #confirming: Promise<void> | undefined;
  #republishing = false;
  /** When this node last claimed stale deliveries (see #republish). */
  #staleAt = 0;
  /**
   * The rows of fetched deliveries, read together: the deliveries one fetch brings arrive in the
   * same turn of the event loop, and their rows take one query instead of one each.
   */
  readonly #rows: DataLoader<number, TakeRow | undefined>;
  /** Whether a read of fetched rows waits briefly for more deliveries (linger.ts). */
  readonly #readLinger: Linger;
  /** The shared consumer, asked for its count of waiting deliveries when the backlog looks full. */
  #consumer: Consumer | undefined;
  /**
   * How far the stream was written and how far the shared consumer handed it out, as far as this
   * node saw (its PubAcks, the first hand-outs it fetched, the consumer's answers): the deliveries
   * between wait for a node. Other nodes' publishes show in this node's next PubAck, their fetches
   * only in the consumer's answer, so the difference may be high, never for long low. Each is the
   * latest seen, not the highest: a stream made again starts its sequence again.
   */
  #written = 0;
  #handedOut = 0;
  /** The PubAcks counted when the consumer last answered: a later one may raise `#written`. */
  #storedAtCount = 0;
  /** The consumer's answer being waited for, and when the last one came. */
  #counting: Promise<void> | undefined;
  #countedAt = 0;

  constructor(opts: JetStreamQueueOptions) {
    this.#o = opts;
    this.#acks = new PubAcks(opts.nc);
    const d = opts.cluster.delivery;
    if (d.group_max > 1)
      this.#groups = new PublishGroups({
        send: (subject, payload, msgId) => this.#acks.publish(subject, payload, msgId, d.publish_timeout),
        maxCount: d.group_max,
        // A character of JSON is at most three bytes of UTF-8.
        maxChars: () => Math.floor((opts.nc.info?.max_payload ?? 1024 * 1024) / 3) - WIRE_OVERHEAD,
      });
    this.#readLinger = new Linger(opts.store.lingerMs);
    this.#rows = new DataLoader(
      async (ids) => {
        const rows = await opts.store.deliveriesToTake(ids);
        return ids.map((id) => rows.get(id));
      },
      {
        cache: false,
        maxBatchSize: 256,
        // With a linger set, a read under load waits briefly for more deliveries (linger.ts): they
        // come a few at a time, from each group the nodes commit, and each read costs a
        // transaction. Without one, DataLoader's own schedule.
        ...(this.#readLinger.boundMs > 0 && {
          batchScheduleFn: (read: () => void) => {
            const wait = this.#readLinger.waitFor(this.#readLinger.now());
            // DataLoader's own schedule when not waiting: after the turn's promise jobs.
            if (wait > 0) setTimeout(read, wait);
            else void Promise.resolve().then(() => process.nextTick(read));
          },
        }),
      },
    );
    this.#dispatcher = new Dispatcher({
      concurrency: opts.concurrency,
      deliver: async (d, signal) => {
        try {
          await opts.deliver(d, signal);
        } finally {
          this.#wake();
        }
      },
    });
  }

  get size(): number {
    return this.#dispatcher.size;
  }

  /** How this node's questions about deliveries handed out again ended (delivery-holders.ts); none before start. */
  get holderAnswers(): HolderAnswers | undefined {
    return this.#holders?.answers;
  }

  get running(): number {
    return this.#dispatcher.running;
  }

  /** What this node holds, and what waits in the stream for any node (see #written). */
  get backlog(): number {
    // A PubAck older than the consumer's answer adds nothing: the answer counted its message.
    const written =
      this.#acks.stored > this.#storedAtCount ? Math.max(this.#written, this.#acks.lastSeq) : this.#written;
    // A message waiting may carry a group: counted as the deliveries this node's messages carry lately.
    const perMessage = this.#groups?.perMessage ?? 1;
    return this.#dispatcher.size + Math.round(Math.max(0, written - this.#handedOut) * perMessage);
  }

  /**
   * The backlog with the stream's part from the consumer itself. Why: the quick figure cannot see
   * the deliveries other nodes took since this node last fetched, and a node whose lanes are full
   * stops fetching. One request at a time, its answer reused for COUNT_REUSE_MS: a node refusing
   * a burst asks a few times a second, not once a message.
   */
  async exactBacklog(): Promise<number> {
    if (this.#consumer && Date.now() - this.#countedAt >= COUNT_REUSE_MS) {
      this.#counting ??= this.#count(this.#consumer).finally(() => (this.#counting = undefined));
      await this.#counting;
    }
    return this.backlog;
  }

  async #count(consumer: Consumer): Promise<void> {
    try {
      const info = await consumer.info();
      this.#handedOut = info.delivered.stream_seq;
      this.#written = info.delivered.stream_seq + info.num_pending;
      this.#storedAtCount = this.#acks.stored;
    } catch (e) {
      // NATS away: the quick figure stands (a publish would fail now anyway).
      this.#o.log.debug?.({ err: describeError(e) }, 'could not read the delivery consumer; the backlog is estimated');
    } finally {
      // A failed answer is not asked for again at once either: a node refusing a burst while NATS
      // is away would otherwise send one request per submission.
      this.#countedAt = Date.now();
    }
  }

  load(agent: string): number {
    return this.#dispatcher.load(agent);
  }

  /** Creates the stream and the shared consumer if missing, then starts fetching. */
  async start(): Promise<void> {
    const d = this.#o.cluster.delivery;
    const opened = await openDeliveryStream(this.#o.nc, {
      stream: d.stream,
      subject: d.subject,
      consumer: d.consumer,
      ackWaitMs: d.ack_wait,
      replicas: this.#o.cluster.replicas,
      placement: { log: this.#o.log },
    });
    this.#consumer = opened.consumer;
    // What the server offers against a power loss of its host decides what the sweep is there for.
    const durability = natsDurability(this.#o.nc.info?.version, this.#staleMs());
    this.#o.log.info?.({ nats_version: durability.version, sync_always: durability.syncAlways }, durability.summary);
    this.#pulls = new Pulls(opened.consumer, {
      onOverdue: (asked, got) =>
        this.#o.log.debug?.(
          { asked, got },
          'a JetStream pull outlived its expiry without an answer; pulling again without waiting for it',
        ),
      onReleased: () => this.#wake(),
    });
    if (this.#o.holders)
      this.#holders = new DeliveryHolders({
        nc: this.#o.nc,
        subject: d.subject,
        node: this.#o.holders.node,
        peers: this.#o.holders.peers,
        holds: (id) => this.#holds(id),
        // Long enough for a node whose event loop was held for seconds; bounded, since a node stopped
        // for good while connected looks the same until then.
        timeoutMs: Math.min(d.ack_wait, 10_000),
        log: this.#o.log,
      });
    this.#running = true;
    const every = Math.max(200, Math.floor(d.ack_wait / 3));
    const ticks = (this.#ticks = new Ticks());
    ticks.every(this.#o.republish?.everyMs ?? 5000, () => this.#republish());
    ticks.every(every, () => {
      for (const m of this.#held.values()) m.working();
      for (const m of this.#asking.values()) m.working();
    });
    ticks.every(this.#heldEvery(), () => this.#stillHeld());
    ticks.every(Math.min(1000, this.#markAfter()), () => this.#flushConfirmed(this.#markAfter()));
    this.#loop = this.#fetchLoop();
  }

  /** Stops fetching; what this node held and did not finish goes back to the stream, for another node. */
  async stop(graceMs: number): Promise<void> {
    const started = this.#running;
    this.#running = false;
    await this.#ticks?.stop(STOP_MARKS_MS);
    this.#wake();
    await this.#dispatcher.stop(graceMs);
    // A fetch on a dead link would end only when the client notices (tens of seconds): stopped here.
    this.#pulls?.stop();
    this.#holders?.stop();
    await this.#loop;
    if (started) for (const m of this.#held.values()) m.nak();
    this.#held.clear();
    // The PubAcks not recorded yet, for the deliveries left pending: the reconciliation sweep takes
    // only rows marked published. Bounded: with PostgreSQL away they are the republish sweep's.
    await this.#confirming;
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#flushConfirmed(0),
      new Promise<void>((r) => (bound = setTimeout(r, STOP_MARKS_MS).unref())),
    ]).finally(() => clearTimeout(bound));
  }

  admit(m: AclMessage): void {
    // The delivery must fit NATS's max_payload, or it would be stored and never published.
    const wire = Buffer.byteLength(messageJson(m)) + WIRE_OVERHEAD;
    const maxPayload = this.#o.nc.info?.max_payload;
    if (maxPayload !== undefined && wire > maxPayload) {
      throw new CaxtonError(
        'payload_too_large',
        `the message is ${wire} bytes on the wire; NATS accepts at most ${maxPayload} (its max_payload): send a smaller message, or raise max_payload on the NATS servers`,
        { size: wire, limit: maxPayload, field: 'content' },
      );
    }
  }

  /**
   * Hands out deliveries a committed step stored. A first hand-out's row carries no publish mark
   * (ADR 0141): its PubAck needs no write, and only a publish that fails marks its rows for the
   * republish sweep. A tagged hand-out (a replay's, a reroute's) was stored marked, so its PubAck
   * is recorded (#confirm), so the republish sweep leaves it.
   */
  publish(out: readonly Outgoing[]): Promise<void> {
    return this.#publish(out, (o) => o.tag !== undefined, true);
  }

  /**
   * `first`: these are the hand-outs of the step that stored them (publish), whose untagged ones
   * may carry what their take would read (Wire.kept); never a copy published again.
   */
  async #publish(out: readonly Outgoing[], marked: (o: Outgoing) => boolean, first = false): Promise<void> {
    if (out.length === 0) return;
    const d = this.#o.cluster.delivery;
    try {
      await Promise.all(
        out.map(async (o) => {
          const subject = `${d.subject}.${subjectToken(o.receiver)}`;
          const firstOut = first && o.tag === undefined;
          if (firstOut && this.#groups) await this.#groups.add(subject, o.id, this.#firstWire(o));
          else
            await this.#acks.publish(
              subject,
              firstOut ? this.#firstWire(o) : wireOf(o),
              `d${o.id}${o.tag ?? ''}`,
              d.publish_timeout,
            );
          if (marked(o)) this.#confirm(o);
        }),
      );
    } catch (e) {
      // Published or not, each pending row unmarked is marked now: the republish sweep sends it
      // again (JetStream drops a copy it stored). Should this write fail too, the reconciliation
      // sweep publishes the row once it is stale.
      await this.#o.store
        .markUnpublished(
          out.map((o) => o.id),
          Date.now(),
        )
        .catch((e2: unknown) =>
          this.#o.log.warn(
            { deliveries: out.length, err: describeError(e2) },
            'could not mark deliveries whose publish failed; the reconciliation sweep publishes them once stale',
          ),
        );
      throw new CaxtonError(
        'not_ready',
        `the message was stored but NATS JetStream did not acknowledge its delivery within ${d.publish_timeout} ms (${describeError(e)}); send it again with the same id once NATS is reachable (it is delivered once)`,
        { retry_after: 5 },
      );
    }
  }

  /** A first hand-out's wire, with what its take would read when the store has it and it fits NATS's max_payload. */
  #firstWire(o: Outgoing): string {
    const kept = this.#o.store.keptHandOut(o.id);
    const wire = wireOf(o, kept);
    if (kept === undefined) return wire;
    const max = this.#o.nc.info?.max_payload ?? Infinity;
    return wire.length * 3 <= max || Buffer.byteLength(wire) <= max ? wire : wireOf(o);
  }

  /** A submission sent again: its pending deliveries are published again (its first publish may have failed). */
  async again(stored: StoredMessage): Promise<void> {
    const m = stored.message;
    const rows = (await this.#o.reads.getMessage(m.id))?.deliveries ?? [];
    await this.#publish(
      rows.filter((r) => r.state === 'pending').map((r) => ({ id: r.id, receiver: r.receiver, message: m })),
      () => true,
    );
  }

  done(d: Delivery, how: 'ack' | 'dead'): void {
    // Finished: the row is no longer pending, so its publish mark is never read (see #confirm).
    this.#confirmed.delete(d.id);
    const m = this.#release(d.id);
    if (how === 'dead') {
      m?.term('dead letter');
      this.#o.onDead?.();
    } else m?.ack();
  }

  /** The stream holds it until then: any node may run the retry. */
  retry(d: Delivery, delayMs: number): void {
    this.#o.onRetry?.();
    this.#release(d.id)?.nak(delayMs);
  }

  /** PostgreSQL or NATS went away mid-delivery: the delivery goes back to the stream (its row is still pending). */
  unfinished(d: Delivery, e: unknown): void {
    this.#o.log.error(
      { delivery: d.id, err: describeError(e) },
      'a delivery could not be finished; it is delivered again',
    );
    this.#release(d.id)?.nak(1000);
  }

  /**
   * Remembers a PubAck, to record on the row only if the delivery is still unfinished here after
   * #markAfter: the mark is read by the republish sweep, which takes pending rows only, so a
   * delivery finished by then (most are) needs no write for it. The marks still due go in one
   * UPDATE per period. A mark lost (this node dies first, PostgreSQL is away) costs one publish
   * again by the republish sweep, under the same Nats-Msg-Id: JetStream drops it within its
   * duplicate window.
   */
  #confirm(o: Outgoing): void {
    this.#confirmed.set(o.id, { tag: o.tag ?? '', at: Date.now() });
  }

  /**
   * How long a PubAck waits before it is recorded: half the age at which the republish sweep takes
   * a row as unconfirmed (checked every second at most, so recorded well before that). As late as
   * that, since a backlog's deliveries (a burst accepted faster than it is delivered) each cost an
   * UPDATE of their row when marked, and most are finished before.
   */
  #markAfter(): number {
    const after = this.#o.republish?.afterMs ?? Math.max(5000, 2 * this.#o.cluster.delivery.publish_timeout);
    return Math.max(10, Math.floor(after / 2));
  }

  /** Records the PubAcks older than `olderThanMs`, in one UPDATE per thousand. */
  async #flushConfirmed(olderThanMs: number): Promise<void> {
    if (this.#confirming) return this.#confirming;
    const cutoff = Date.now() - olderThanMs;
    const due: { id: number; tag: string }[] = [];
    for (const [id, c] of this.#confirmed)
      if (c.at <= cutoff) {
        due.push({ id, tag: c.tag });
        this.#confirmed.delete(id);
      }
    if (due.length === 0) return;
    this.#confirming = (async () => {
      for (let i = 0; i < due.length; i += 1000) {
        const batch = due.slice(i, i + 1000);
        try {
          await this.#o.store.markPublished(batch);
        } catch (e) {
          this.#o.log.warn(
            { deliveries: batch.length, err: describeError(e) },
            'could not record that deliveries were published; the republish sweep sends them again (JetStream drops the copies)',
          );
        }
      }
    })().finally(() => (this.#confirming = undefined));
    return this.#confirming;
  }

  /** How long a pending delivery may stay untouched before the reconciliation sweep publishes it again. */
  #staleMs(): number {
    const d = this.#o.cluster.delivery;
    return this.#o.republish?.staleMs ?? d.ack_wait * d.reconcile_after;
  }

  /**
   * How often this node says which deliveries it holds: a sixth of the sweep's age, so a missed
   * write or two (PostgreSQL slow, the event loop busy) still leaves a held row well inside it,
   * while a dead node's rows reach it within that age of its last write.
   */
  #heldEvery(): number {
    return Math.max(200, Math.floor(this.#staleMs() / 6));
  }

  #holding: Promise<void> | undefined;

  /** Records, in one UPDATE, that this node still holds its deliveries, so the reconciliation sweep leaves them alone. */
  #stillHeld(): Promise<void> {
    if (this.#holding || this.#held.size === 0) return this.#holding ?? Promise.resolve();
    this.#holding = this.#o.store
      .stillHeld([...this.#held.keys()], Date.now())
      .catch((e: unknown) =>
        this.#o.log.warn(
          { deliveries: this.#held.size, err: describeError(e) },
          'could not record that this node still holds its deliveries; the reconciliation sweep may publish them again',
        ),
      )
      .finally(() => (this.#holding = undefined));
    return this.#holding;
  }

  /**
   * Publishes again what was stored but never confirmed published: the caller got a 503 and did not
   * send again, or the node died between the commit and the PubAck. Every node sweeps; the same
   * Nats-Msg-Id makes the copies one within JetStream's duplicate window (2 min).
   */
  async #republish(): Promise<void> {
    if (!this.#running || this.#republishing) return;
    this.#republishing = true;
    const d = this.#o.cluster.delivery;
    const after = this.#o.republish?.afterMs ?? Math.max(5000, 2 * d.publish_timeout);
    try {
      const rows = await this.#o.store.unpublished(Date.now() - after, 500);
      if (rows.length > 0) {
        await this.#publish(
          rows.map((r) => ({
            id: r.id,
            receiver: r.receiver,
            message: r.message,
            ...(r.tag !== '' && { tag: r.tag }),
          })),
          () => true,
        );
        this.#o.log.warn(
          { deliveries: rows.length },
          'published again deliveries whose first publish was not confirmed',
        );
      }
      // A stream that lost what it had acknowledged (power loss before its fsync) never hands those
      // deliveries out: whatever their mark, one untouched too long is published again under a
      // fresh Nats-Msg-Id, since within the duplicate window JetStream would drop a copy under the
      // old one. The consumer's dedupe acks a copy whose row is already done. Claimed every tenth
      // of that age, not every sweep: a row becomes stale only at that age, so claiming more often
      // finds little more, and every node runs the claim.
      const staleMs = this.#staleMs();
      if (Date.now() - this.#staleAt < staleMs / 10) return;
      this.#staleAt = Date.now();
      const stale = await this.#o.store.stale(Date.now() - staleMs, 500);
      if (stale.length > 0) {
        const at = Date.now().toString(36);
        await this.publish(
          stale.map((r) => ({ id: r.id, receiver: r.receiver, message: r.message, tag: `${r.tag}r${at}` })),
        );
        this.#o.log.warn(
          { deliveries: stale.length },
          'published again pending deliveries untouched for ack_wait × reconcile_after (the stream may have lost them)',
        );
      }
    } catch (e) {
      this.#o.log.warn({ err: describeError(e) }, 'could not publish unconfirmed deliveries again; trying again later');
    } finally {
      this.#republishing = false;
    }
  }

  #wake(): void {
    const r = this.#room;
    this.#room = undefined;
    r?.();
  }

  async #fetchLoop(): Promise<void> {
    const max = this.#o.cluster.delivery.max_held;
    const pulls = this.#pulls!;
    while (this.#running) {
      const room = max - this.#held.size - this.#taking - pulls.owed;
      // A fetch costs a request, an inbox and its timers whatever it brings: while half the room is
      // still held (work waiting for the lanes), it waits for a quarter to be free, rather than
      // pulling again as each finished delivery frees its slot.
      const busy = this.#held.size + this.#taking >= max / 2;
      // A fetch asks for stream messages: as many as carry about the room's deliveries lately. A
      // node holding work waits for room for a whole group rather than take one and hand part of
      // it back (#split).
      const messages = Math.floor(room / this.#perMessage);
      const holding = this.#held.size + this.#taking > 0;
      if (room <= 0 || (busy && room < Math.floor(max / 4)) || (messages < 1 && holding)) {
        await new Promise<void>((r) => (this.#room = r));
        continue;
      }
      try {
        // Each fetched delivery's row is read at once, not one after another: a burst keeps the
        // node's lanes full instead of holding a few deliveries while the stream backs up.
        await pulls.pull(Math.max(1, messages), (m) => {
          // A first hand-out: the consumer hands the stream out in order (a redelivery is an older one).
          if (m.info.deliveryCount === 1) this.#handedOut = m.seq;
          this.#taking++;
          void this.#take(m)
            .catch((e: unknown) => {
              this.#o.log.warn(
                { seq: m.seq, err: describeError(e) },
                'could not take a delivery; it is delivered again later',
              );
              try {
                m.nak(1000);
              } catch {
                // The connection closed meanwhile (a node stopping): JetStream redelivers it after the ack wait.
              }
            })
            .finally(() => {
              this.#taking--;
              this.#wake();
            });
        });
      } catch (e) {
        if (!this.#running) break;
        // A pull the server stopped answering (two idle heartbeats missed, ~1 s): pull again at once.
        if (pullLapsed(e)) continue;
        this.#o.log.warn({ err: describeError(e) }, 'fetching deliveries from JetStream failed; trying again');
        await new Promise((r) => setTimeout(r, 500).unref());
      }
    }
  }

  async #take(m: JsMsg): Promise<void> {
    if (!this.#running) return m.nak();
    let w: Wire | { g: Wire[] };
    try {
      w = m.json<Wire | { g: Wire[] }>();
    } catch (e) {
      this.#o.log.error({ seq: m.seq, err: describeError(e) }, 'dropped a delivery that is not JSON');
      return m.term('not JSON');
    }
    // Singles do not move the estimate: most are what a node could not hold of a group (#split).
    if (!isGroupWire<Wire>(w)) return this.#takeOne(m, w);
    const wires = w.g;
    this.#perMessage += (Math.max(1, wires.length) - this.#perMessage) / 8;
    if (wires.length === 0) return m.ack();
    const outs = groupHandOuts(m, wires.length);
    // What does not fit the room this node has left goes back to the stream one delivery a message,
    // for any node: a group must not hold more deliveries on one node than max_held allows.
    const room = Math.max(1, this.#o.cluster.delivery.max_held - this.#held.size - (this.#taking - 1));
    for (let i = room; i < wires.length; i++) this.#split(m, wires[i]!, outs[i]!);
    await Promise.all(
      wires.slice(0, room).map((one, i) =>
        this.#takeOne(outs[i]!, one).catch((e: unknown) => {
          this.#o.log.warn(
            { seq: m.seq, delivery: one.id, err: describeError(e) },
            'could not take a delivery; it is delivered again later',
          );
          outs[i]!.nak(1000);
        }),
      ),
    );
  }

  /**
   * Publishes one delivery of group `m` as a message of its own, then settles it in the group.
   * Its id is the same for every split of this stream message (a group handed out again and split
   * again is stored once). What its take would not read travels only with a first hand-out.
   */
  #split(m: JsMsg, w: Wire, out: HandOut): void {
    const d = this.#o.cluster.delivery;
    const wire = m.info.deliveryCount === 1 ? JSON.stringify(w) : JSON.stringify({ ...w, kept: undefined });
    this.#acks.publish(`${d.subject}.${subjectToken(w.receiver)}`, wire, `d${w.id}x${m.seq}`, d.publish_timeout).then(
      () => out.ack(),
      (e: unknown) => {
        this.#o.log.warn(
          { delivery: w.id, err: describeError(e) },
          'could not hand a grouped delivery back to the stream; its group is delivered again later',
        );
        out.nak(1000);
      },
    );
  }

  async #takeOne(m: HandOut, w: Wire): Promise<void> {
    // Held from here for another node asking (#holds): its row may take a while to read.
    this.#taken.set(w.id, m);
    try {
      await this.#takeRow(m, w);
    } finally {
      if (this.#taken.get(w.id) === m) this.#taken.delete(w.id);
    }
  }

  /**
   * Whether this node holds the delivery of row `id`, for another node that was handed it again
   * (delivery-holders.ts): it runs or waits here, or is being taken and not asking the others
   * itself (two nodes asking each other about copies of one delivery would both give way). A held
   * one is also refreshed with JetStream.
   */
  #holds(id: number): boolean {
    const m = this.#held.get(id) ?? (this.#asking.has(id) ? undefined : this.#taken.get(id));
    m?.working();
    return m !== undefined;
  }

  async #takeRow(m: HandOut, w: Wire): Promise<void> {
    let row;
    try {
      row = w.kept !== undefined && m.info.deliveryCount === 1 ? this.#unread(w, w.kept) : undefined;
      if (row === undefined) {
        this.#readLinger.arrived();
        row = await this.#rows.load(w.id);
      }
    } catch (e) {
      // PostgreSQL is away: the delivery goes back to the stream, for this or another node later.
      this.#o.log.warn(
        { delivery: w.id, err: describeError(e) },
        'could not read a delivery row; it is delivered again later',
      );
      return m.nak(1000);
    }
    if (!row) {
      this.#o.log.warn(
        { delivery: w.id, message_id: w.message.id },
        'dropped a delivery whose row does not exist (its schema was reset?)',
      );
      return m.term('no stored delivery');
    }
    if (!mayTake(row, m, w.receiver, this.#held)) return;
    // A file agent may exist on some nodes only (each watches its own agents_dir): a node without
    // the receiver hands the delivery back for one that has it. Past HAND_BACKS redeliveries no node
    // took it: delivered here, where it is rerouted or dead-lettered as on one node.
    if (!this.#o.serves(row.receiver) && m.info.deliveryCount <= HAND_BACKS) return m.nak(200);
    // Handed out before: the node it went to may still be running it, too busy to have said so.
    if (this.#holders && (m.info.deliveryCount > 1 || !row.fresh)) {
      if (await this.#heldElsewhere(row.id, m)) return;
      if (!this.#running) return m.nak();
      if (!mayTake(row, m, w.receiver, this.#held)) return;
    }
    this.#held.set(row.id, m);
    if (row.kept && row.state === 'pending') {
      this.#openings.set(w.message.conversation_id, w.message);
      this.#openingOf.set(row.id, w.message.conversation_id);
    }
    this.#dispatcher.enqueue({
      id: row.id,
      message: w.message,
      receiver: row.receiver,
      attempts: row.attempts,
      ...(m.info.deliveryCount === 1 && row.attempts === 0 && row.fresh && { firstTry: true }),
    });
  }

  /**
   * Whether another node says it still holds the delivery of row `id` (delivery-holders.ts); if so,
   * `m` goes back to the stream for an ack wait, by when that node has finished it or is gone.
   */
  async #heldElsewhere(id: number, m: HandOut): Promise<boolean> {
    this.#asking.set(id, m);
    m.working();
    let holder: string | undefined;
    try {
      holder = await this.#holders!.holder(id);
    } finally {
      this.#asking.delete(id);
    }
    if (holder === undefined) return false;
    this.#o.log.info?.(
      { delivery: id, node: holder },
      'a delivery JetStream handed out again is still held by another node; it goes back to the stream',
    );
    m.nak(this.#o.cluster.delivery.ack_wait);
    return true;
  }

  /**
   * The row of a first hand-out that carried what its take would read, not read: as inserted
   * (pending, no attempt, marking its conversation kept, published once), which the store's
   * optimistic acknowledgement checks again with its done-marking. Why: the take's read was a round
   * trip per fetch, and at a low rate one per message, on every one-way message's path.
   */
  #unread(w: Wire, kept: NonNullable<Wire['kept']>): TakeRow {
    const row: TakeRow = {
      id: w.id,
      receiver: w.receiver,
      state: 'pending',
      attempts: 0,
      next_at: 0,
      kept: true,
      fresh: true,
      keptFirst: {
        opening: kept.opening,
        row: {
          id: w.id,
          message_id: w.message.id,
          receiver: w.receiver,
          state: 'pending',
          attempts: 0,
          next_at: '0',
          last_error: null,
          updated_at: kept.at,
          errors: null,
        },
      },
    };
    this.#o.store.tookUnread(row);
    return row;
  }

  /**
   * A conversation's messages so far, oldest first, when this node holds the delivery of the
   * message that opened it and the row said, when taken, that nothing else was written into it
   * (its one-way conversation kept with the message): that message as stored (scrubbed, as the
   * table has it), with no read. Undefined otherwise: the caller reads the table. Why: the agent's
   * history was one more transaction per delivered message, for a message the node already holds.
   */
  openingHistory(conversation: string): AclMessage[] | undefined {
    const m = this.#openings.get(conversation);
    return m && [JSON.parse(scrubSecrets(messageJson(m, false))) as AclMessage];
  }

  #release(id: number): HandOut | undefined {
    const m = this.#held.get(id);
    this.#held.delete(id);
    const conversation = this.#openingOf.get(id);
    if (conversation !== undefined) {
      this.#openingOf.delete(id);
      this.#openings.delete(conversation);
    }
    this.#wake();
    return m;
  }
}
