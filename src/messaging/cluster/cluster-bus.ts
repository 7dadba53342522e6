/**
 * The message bus of a cluster node: the delivery engine (src/messaging/engine) over PostgreSQL
 * (PgMessageStore: every step of a conversation one transaction under its lock) and a JetStream
 * work queue every node consumes (jetstream-queue.ts). Nothing about a conversation lives in the
 * process: whichever node runs a step reads the conversation's rows.
 *
 *  - **Accepted** means committed in PostgreSQL and acknowledged by JetStream (PubAck) for every
 *    receiver; **delivered** means the receiver's answer, the row's `done` and what the protocol
 *    decided were committed together, then the JetStream ack. A node that dies before the ack
 *    loses its deliveries to another node after `ack_wait` (at least once; never twice once
 *    acknowledged).
 *  - **Deadlines** are swept by every node with `SKIP LOCKED` (PgMessageStore.expired), each
 *    handled once.
 *  - **Events** (SSE, the event store, waiters) are emitted where they happen and published on
 *    core NATS, so every node's listeners hear every node's conversations; a node subscribes only
 *    while it has such listeners (ADR 0156).
 */
import type { EventEmitter } from 'node:events';
import DataLoader from 'dataloader';
import type { NatsConnection } from '@nats-io/transport-node';
import type { AgentRegistry } from '../../agents/index.js';
import type { ClusterConfig } from '../../config/index.js';
import {
  createStrategy,
  EngineBus,
  Directory,
  isTerminal,
  messageJson,
  Router,
  type AclMessage,
  type BusEvent,
  type BusReads,
  type BusStats,
  type Conversation,
  type ConversationId,
  type MessageHandler,
  type MessageId,
  type DiscardResult,
  type DiscardTarget,
  type MessageSigner,
  type MessagingBus,
  type MessagingConfig,
  type StepStore,
  type StoredMessage,
  type SubscriptionRow,
} from '../index.js';
import type { AuditSink } from '../../audit/index.js';
import type { ActingPrincipals } from '../../auth/index.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Tracer } from '../../observability/trace-context.js';
import { CaxtonError, describeError } from '../../shared/errors.js';
import { markRelayed, wantsRelayed } from '../../shared/relayed.js';
import { Ticks } from '../../shared/ticks.js';
import { CONFIRM_WAIT_MS, settledWithin, wantedByListeners, WhileWanted } from '../../shared/while-wanted.js';
import { JetStreamQueue } from './jetstream-queue.js';
import { guardReads, stateUnavailable } from '../../storage/pg/index.js';
import type { PgMessageStore } from '../postgres/index.js';

/** The read side over the same tables (pg-reads.ts), plus what the agent handler and gauges read. */
export type ClusterReads = BusReads & { lastMessagesOf(conversation: string, n: number): Promise<StoredMessage[]> };

export interface ClusterBusOptions {
  store: PgMessageStore;
  reads: ClusterReads;
  nc: NatsConnection;
  /**
   * Where bus events go to and come from the other nodes: a connection opened with `noEcho`, so
   * this node never receives (and decodes) its own. Without it, `nc`, and the node drops its own
   * by name.
   */
  events?: NatsConnection;
  registry: AgentRegistry;
  config: MessagingConfig;
  /** `[cluster]`: the node's name and `[cluster.delivery]`. */
  cluster: Pick<ClusterConfig, 'node' | 'delivery'> & Partial<Pick<ClusterConfig, 'replicas'>>;
  agentHandler?: MessageHandler;
  /** Turns a message's `on_behalf_of` back into its principal, whose scope decides where it may go (src/auth/acting.ts). */
  principals?: ActingPrincipals;
  log?: {
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
    info?(obj: object, msg: string): void;
    debug?(obj: object, msg: string): void;
  };
  /** Spans: `message.route` on acceptance, `message.deliver` around each delivery. */
  tracer?: Tracer;
  metrics?: Metrics;
  /** `[messaging] signing` (ADR 0059): signs what is stored, verifies what is delivered. */
  signer?: MessageSigner;
  /** Where a refused signature is recorded (the audit trail). */
  audit?: AuditSink;
  /**
   * The other nodes heard from lately (Membership.recent), asked whether they still hold a
   * delivery JetStream hands this node again (delivery-holders.ts); without it, none is asked.
   */
  peers?: () => readonly string[];
  /** How often this node sweeps expired conversations (default 1 s). */
  sweepMs?: number;
  /** How long the node stays subscribed to the other nodes' events after its last listener for them left (default 30 s). */
  remoteEventsLingerMs?: number;
  /** See JetStreamQueueOptions.republish. */
  republish?: { everyMs?: number; afterMs?: number; staleMs?: number };
}

/** Bus events as they travel between nodes: those of one turn of the sending node's event loop, in order. */
interface EventWire {
  node: string;
  events: BusEvent[];
}

const utf8 = new TextDecoder();

/** How long this node stays subscribed to the other nodes' events after its last listener left. */
const REMOTE_EVENTS_LINGER_MS = 30_000;

/** The keys eventJson writes of a message event: a field added to it fails to compile until it is written too. */
const _messageEventKeys: Record<keyof Extract<BusEvent, { type: 'message' }>, true> = {
  type: true,
  conversation_id: true,
  message: true,
  routed_to: true,
};

/** `JSON.stringify(e)`, with a message event's message as the text made for it once (messageJson). */
function eventJson(e: BusEvent): string {
  if (e.type !== 'message') return JSON.stringify(e);
  return `{"type":"message","conversation_id":${JSON.stringify(e.conversation_id)},"message":${messageJson(e.message)},"routed_to":${JSON.stringify(e.routed_to)}}`;
}

const isUniqueViolation = (e: unknown) => (e as { code?: string }).code === '23505';

export class ClusterBus extends EngineBus implements MessagingBus {
  readonly directory: Directory;
  readonly router: Router;
  readonly reads: BusReads;
  readonly #o: ClusterBusOptions;
  readonly #cfg: MessagingConfig;
  readonly #store: PgMessageStore;
  readonly #queue: JetStreamQueue;
  readonly #log: NonNullable<ClusterBusOptions['log']>;
  /** The subscription to the other nodes' events: held while a listener here would use them (WhileWanted). */
  readonly #remote: WhileWanted;
  /** Resolves once NATS has confirmed the subscription open now (at once while there is none). */
  #heard: Promise<void> = Promise.resolve();
  /** Callers waiting for a conversation to end; told its final state, or nothing (read it again) when the bus closes. */
  readonly #waiters = new Map<ConversationId, Set<(c?: Conversation) => void>>();
  /** The shared state's gauges, read every 2 s (a retry or dead letter made here counts at once). */
  #counts = { open: 0, dead: 0, retrying: 0 };
  /** The sweep, gauge and retention ticks; closing waits for the one running. */
  readonly #ticks = new Ticks();
  #state: 'new' | 'running' | 'closed' = 'new';
  readonly #eventSubject: string;
  /** Events waiting for this turn's publish to the other nodes. */
  #outbox: BusEvent[] = [];

  constructor(opts: ClusterBusOptions) {
    super();
    this.#o = opts;
    this.#cfg = opts.config;
    this.busConfig = opts.config;
    this.#store = opts.store;
    this.reads = guardReads(opts.reads);
    this.#log = opts.log ?? { warn: () => {}, error: () => {} };
    this.#eventSubject = `${opts.cluster.delivery.subject}_events`;
    this.#remote = new WhileWanted(() => this.#subscribeRemote(), opts.remoteEventsLingerMs ?? REMOTE_EVENTS_LINGER_MS);
    // Listeners that skip relayed events (the shared event store's recorder) do not hold the subscription.
    wantedByListeners(this.#remote, this as EventEmitter, 'event', wantsRelayed);
    this.directory = new Directory(opts.registry);
    this.#queue = new JetStreamQueue({
      nc: opts.nc,
      cluster: opts.cluster,
      store: opts.store,
      reads: opts.reads,
      concurrency: (agent) => this.directory.get(agent)?.max_concurrency ?? this.#cfg.agent_concurrency,
      deliver: (d, signal) => this.engine.deliver(d, signal),
      serves: (receiver) => this.engine.serves(receiver),
      onDead: () => this.#counts.dead++,
      onRetry: () => this.#counts.retrying++,
      log: this.#log,
      ...(opts.republish && { republish: opts.republish }),
      ...(opts.peers && { holders: { node: opts.cluster.node, peers: opts.peers } }),
    });
    this.router = new Router(this.directory, createStrategy(this.#cfg.routing), this.#queue, this.#cfg.max_hops);
    const store = opts.store;
    // What the engine reads per accepted message outside a step (a client-chosen id's duplicate
    // check, an inform's subscribers): the reads of one turn go as one query.
    const messages = new DataLoader<string, StoredMessage | undefined>(
      async (ids) => {
        const found = await store.getMessages(ids);
        return ids.map((id) => found.get(id));
      },
      { cache: false, maxBatchSize: 500 },
    );
    const subscriptions = new DataLoader<{ capability: string | undefined; agent: string }, SubscriptionRow[]>(
      (keys) => store.subscriptionsForMany(keys),
      { cache: false, maxBatchSize: 500 },
    );
    const steps: StepStore = {
      defersOneWay: store.defersOneWay,
      checksIdsOnInsert: store.checksIdsOnInsert,
      inConversation: (id, step, o) => store.inConversation(id, step, o),
      expired: (now, limit, step) => store.expired(now, limit, step),
      retry: (id, attempts, nextAt, error, now) => store.retry(id, attempts, nextAt, error, now),
      getMessage: (id) => messages.load(id),
      getConversation: (id) => store.getConversation(id),
      subscriptionsFor: (capability, agent) => subscriptions.load({ capability, agent }),
      callerError: stateUnavailable,
      isDuplicateId: isUniqueViolation,
    };
    const running = () => this.#state === 'running';
    const parts = { store: steps, queue: this.#queue, directory: this.directory, router: this.router };
    this.buildEngine({ ...parts, log: this.#log, emit: (events) => this.#emitAll(events), running }, opts);
    if (opts.metrics) {
      opts.metrics.sources.queueDepth = () => this.#queue.size;
      opts.metrics.sources.deadLetters = () => this.#counts.dead;
      opts.metrics.sources.activeConversations = () => this.#counts.open;
      opts.metrics.sources.clusterSteps = () => this.#store.groupStats;
      opts.metrics.sources.redeliveryAnswers = () => this.#queue.holderAnswers;
    }
  }

  // ---------------------------------------------------------------- lifecycle

  /** Creates the stream and the shared consumer if missing, then starts fetching and sweeping. */
  async start(): Promise<{ redelivering: number; open_conversations: number }> {
    if (this.#state !== 'new') return { redelivering: 0, open_conversations: this.#counts.open };
    await this.#queue.start();
    this.#state = 'running';
    this.#remote.start();
    await this.#refreshCounts();
    this.#ticks.every(this.#o.sweepMs ?? 1000, () => this.engine.sweep());
    this.#ticks.every(2000, () => this.#refreshCounts());
    this.#ticks.every(
      60_000,
      () => this.applyRetention(),
      (e) => this.#log.warn({ err: describeError(e) }, 'message retention failed; it runs again in a minute'),
    );
    // What a previous run left is in the stream (unacknowledged: redelivered after ack_wait), not here.
    return { redelivering: 0, open_conversations: this.#counts.open };
  }

  async close(graceMs = 0): Promise<void> {
    if (this.#state === 'closed') return;
    const wasRunning = this.#state === 'running';
    this.#state = 'closed';
    await this.#ticks.stop();
    await this.#queue.stop(graceMs);
    if (wasRunning) this.#remote.close();
    this.directory.close();
    for (const set of this.#waiters.values()) for (const w of set) w();
    this.#waiters.clear();
  }

  stats(): BusStats {
    return {
      queued: this.#queue.size,
      running: this.#queue.running,
      retrying: this.#counts.retrying,
      open_conversations: this.#counts.open,
      dead_letters: this.#counts.dead,
      max_queue: this.#cfg.max_queue,
    };
  }

  async history(conversation: ConversationId, n: number): Promise<AclMessage[]> {
    const known = n > 0 ? this.#queue.openingHistory(conversation) : undefined;
    if (known) return known;
    return (await this.#o.reads.lastMessagesOf(conversation, n)).map((s) => s.message);
  }

  /**
   * Applies `[messaging]` retention to the shared tables now (batches until nothing more is due);
   * every node runs it each minute, one at a time (the others skip while one holds the lock).
   */
  async applyRetention(): Promise<Record<string, number>> {
    const out = { dead_letters: 0, conversations: 0 };
    for (let i = 0; i < 1000; i++) {
      const r = await this.#store.prune(this.#cfg, 500);
      out.dead_letters += r.dead_letters;
      out.conversations += r.conversations;
      // A node closing stops between batches; the next retention run takes up the rest.
      if (!r.more || this.#state === 'closed') break;
    }
    if (out.dead_letters + out.conversations > 0)
      this.#log.info?.({ deleted: out }, 'message retention applied to the shared state');
    return out;
  }

  /** Every write is committed before the call that made it resolves: nothing to wait for. */
  settled(): Promise<void> {
    return Promise.resolve();
  }

  async #refreshCounts(): Promise<void> {
    try {
      this.#counts = await this.#store.counts();
    } catch {
      // PostgreSQL away: the gauges keep their last figures; readiness reports it.
    }
  }

  // ---------------------------------------------------------------- events and waiting

  #emitAll(events: readonly BusEvent[]): void {
    for (const e of events) this.#emitLocal(e);
    if (this.#state !== 'running' || events.length === 0) return;
    // One NATS message for the events of every step that committed in this turn.
    if (this.#outbox.length === 0) setImmediate(() => this.#publishEvents());
    this.#outbox.push(...events);
  }

  #publishEvents(): void {
    const events = this.#outbox;
    this.#outbox = [];
    if (this.#state !== 'running') return;
    const node = this.#o.cluster.node;
    const nc = this.#eventsNc;
    const max = nc.info?.max_payload ?? Infinity;
    const send = (batch: BusEvent[]) => {
      const wire = `{"node":${JSON.stringify(node)},"events":[${batch.map(eventJson).join(',')}]}`;
      if (batch.length > 1 && Buffer.byteLength(wire) > max) {
        const half = batch.length >> 1;
        send(batch.slice(0, half));
        send(batch.slice(half));
        return;
      }
      try {
        nc.publish(this.#eventSubject, wire);
      } catch {
        // Too large for NATS or the connection is closed: the other nodes read it from PostgreSQL.
      }
    };
    send(events);
  }

  /** Resolves once what another node publishes from now on reaches this node's listeners. */
  override listening(): Promise<void> {
    return this.#heard;
  }

  /** Subscribes to the other nodes' events; answers how to unsubscribe. */
  #subscribeRemote(): () => void {
    const nc = this.#eventsNc;
    try {
      const sub = nc.subscribe(this.#eventSubject, {
        callback: (err, msg) => {
          if (!err) this.#remoteEvent(msg.data);
        },
      });
      // A round trip after the SUB: the server has it, so what is published after this reaches us.
      // Bounded: with NATS away a follower goes on without it (core NATS is at most once anyway).
      const heard = settledWithin(nc.flush(), CONFIRM_WAIT_MS);
      this.#heard = heard;
      return () => {
        if (this.#heard === heard) this.#heard = Promise.resolve();
        sub.unsubscribe();
      };
    } catch (e) {
      // The connection is closed: the listeners hear this node's events, and waits read PostgreSQL.
      this.#log.warn(
        { err: describeError(e) },
        "the other nodes' events cannot be followed; waits read PostgreSQL every second",
      );
      return () => {};
    }
  }

  get #eventsNc(): NatsConnection {
    return this.#o.events ?? this.#o.nc;
  }

  #emitLocal(e: BusEvent): void {
    this.emit('event', e);
    if (e.type === 'state' && isTerminal(e.conversation.state)) {
      const set = this.#waiters.get(e.conversation_id);
      if (set) for (const w of set) w(e.conversation);
    }
  }

  #remoteEvent(data: Uint8Array): void {
    try {
      const w = JSON.parse(utf8.decode(data)) as EventWire;
      // Marked: the event store in PostgreSQL has it from the node where it happened (src/shared/relayed.ts).
      if (w.node !== this.#o.cluster.node) for (const e of w.events) this.#emitLocal(markRelayed(e, w.node));
    } catch {
      // Not ours: ignored.
    }
  }

  /** Resolves with the conversation once it ends (heard from any node, or read every second), or as it is at the timeout. */
  async wait(id: ConversationId, timeoutMs: number, signal?: AbortSignal): Promise<Conversation> {
    const now = await this.#store.getConversation(id).catch((e: unknown) => Promise.reject(stateUnavailable(e)));
    if (!now) throw new CaxtonError('conversation_not_found', `no conversation ${id}`);
    if (isTerminal(now.state) || timeoutMs <= 0 || signal?.aborted) return now;
    return new Promise<Conversation>((resolve, reject) => {
      const set = this.#waiters.get(id) ?? new Set();
      this.#waiters.set(id, set);
      // Heard from any node: the end may come from another node's step.
      this.#remote.want();
      let poll: NodeJS.Timeout | undefined;
      let finished = false;
      const finish = (c: Conversation | undefined) => {
        if (finished) return;
        finished = true;
        this.#remote.unwant();
        clearTimeout(timer);
        clearTimeout(poll);
        set.delete(waiter);
        if (set.size === 0) this.#waiters.delete(id);
        signal?.removeEventListener('abort', onAbort);
        if (c) resolve(c);
        else this.#store.getConversation(id).then((x) => resolve(x ?? now), reject);
      };
      const waiter = (c?: Conversation) => finish(c);
      const onAbort = () => finish(undefined);
      set.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      // A missed event (core NATS is at most once) costs at most a second.
      const check = () => {
        poll = setTimeout(() => {
          this.#store.getConversation(id).then(
            (c) => (c && isTerminal(c.state) ? finish(c) : check()),
            () => check(),
          );
        }, 1000);
        poll.unref();
      };
      check();
    });
  }

  /** Puts a dead letter back with fresh attempts, reopening its conversation when it failed because of it. */
  async replay(id: number): Promise<{ id: number; message_id: MessageId; receiver: string }> {
    try {
      const d = await this.reads.deadLetter(id);
      const out = await this.engine.replay(d, id);
      this.#counts.dead = Math.max(0, this.#counts.dead - 1);
      return out;
    } catch (e) {
      throw stateUnavailable(e);
    }
  }

  async discard(letters: readonly DiscardTarget[], opts: { purge?: boolean } = {}): Promise<DiscardResult> {
    try {
      const discarded = await this.#store.discardDead(letters.map((d) => d.id));
      this.#counts.dead = Math.max(0, this.#counts.dead - discarded.length);
      if (!opts.purge) return { discarded, conversations: 0 };
      const gone = new Set(discarded);
      const of = letters.filter((d) => gone.has(d.id)).map((d) => d.conversation_id);
      return { discarded, conversations: await this.#store.dropSettledConversations(of) };
    } catch (e) {
      throw stateUnavailable(e);
    }
  }
}
