/**
 * The message bus of a cluster node (ADR 0043): the second implementation of
 * `MessagingBus`, beside the single-node `MessageBus`. Nothing about a conversation lives in the
 * process: its rows are in PostgreSQL (PgMessageStore) and every step that changes it runs in one
 * transaction under its lock; its deliveries travel on a JetStream work queue every node consumes.
 *
 *  - **Accepted** means committed in PostgreSQL (the message, its delivery rows, the conversation)
 *    and acknowledged by JetStream (PubAck) for every receiver. A publish that fails answers 503:
 *    the rows stay, and sending the same message id again publishes the pending deliveries again
 *    (JetStream's duplicate window and the row state keep that to one delivery).
 *  - **Delivered** means the receiver's answer, the delivery row's `done` and what the protocol
 *    decided were committed together; the JetStream ack follows. A node that dies before the ack
 *    loses its deliveries to another node after `ack_wait`, which runs them again unless their row
 *    says done (at least once; never twice once acknowledged).
 *  - **Protocols** are functions of the stored conversation (protocol-steps.ts); deadlines are
 *    swept by every node with `SKIP LOCKED` (PgMessageStore.expired), each handled once.
 *  - **Events** (SSE, the event store, waiters) are emitted where they happen and published on
 *    core NATS, so every node's listeners hear every node's conversations.
 */
import { EventEmitter } from 'node:events';
import DataLoader from 'dataloader';
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { agentKey, type AgentRegistry } from '../agents/index.js';
import type { ClusterConfig } from '../config/index.js';
import {
  checkReceiverLimits,
  createStrategy,
  duplicateResult,
  newConversation,
  parseBody,
  replyTo,
  retryDelay,
  RETRYABLE,
  routeForPrincipal,
  sendScopeOf,
  submitBody,
  touchConversation,
  UNDELIVERABLE,
  undeployedReceiver,
  Directory,
  Dispatcher,
  executes,
  expectsReply,
  isTerminal,
  newMessageId,
  PLATFORM,
  Router,
  type AclMessage,
  type BusEvent,
  type BusReads,
  type BusStats,
  type Content,
  type Conversation,
  type ConversationId,
  type ConversationState,
  type Delivery,
  type DeliveryRow,
  type HandlerContext,
  type InProcessHandler,
  type MessageHandler,
  type MessageId,
  type MessagingBus,
  type MessagingConfig,
  type Performative,
  type RouteDecision,
  type SendHints,
  type SubmitOptions,
  type StoredMessage,
  type SubmitResult,
  type AgentAnswer,
} from '../messaging/index.js';
import type { ActingPrincipals } from '../auth/index.js';
import type { Metrics } from '../observability/metrics.js';
import { CaxtonError, describeError, isCaxtonError, type ErrorCode } from '../shared/errors.js';
import { markRelayed } from '../shared/relayed.js';
import { mayTake, openDeliveryStream, subjectToken } from './jetstream-queue.js';
import { pullLapsed, Pulls } from './pulls.js';
import { guardReads, stateUnavailable } from '../storage/pg/index.js';
import type { ConversationStep, PgMessageStore } from './pg-message-store.js';
import { afterReply, atDeadline, endless, openCall, replyActs, type StepEffects } from './protocol-steps.js';

/** The read side over the same tables (pg-reads.ts), plus what the agent handler and gauges read. */
export type ClusterReads = BusReads & { lastMessagesOf(conversation: string, n: number): Promise<StoredMessage[]> };

export interface ClusterBusOptions {
  store: PgMessageStore;
  reads: ClusterReads;
  nc: NatsConnection;
  registry: AgentRegistry;
  config: MessagingConfig;
  /** `[cluster]`: the node's name and `[cluster.delivery]`. */
  cluster: Pick<ClusterConfig, 'node' | 'delivery'> & Partial<Pick<ClusterConfig, 'replicas'>>;
  agentHandler?: MessageHandler;
  /** Turns a message's `on_behalf_of` back into its principal, whose scope decides where it may go (src/auth/acting.ts). */
  principals?: ActingPrincipals;
  log?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void; info?(obj: object, msg: string): void; debug?(obj: object, msg: string): void };
  metrics?: Metrics;
  /** How often this node sweeps expired conversations (default 1 s). */
  sweepMs?: number;
  /**
   * How often this node publishes again the deliveries whose publish was never confirmed (default
   * 5 s), and how old such a delivery must be first (default twice `publish_timeout`, at least 5 s).
   */
  republish?: { everyMs?: number; afterMs?: number; staleMs?: number };
}

/** One delivery on the wire: its row id, receiver and message (the row is the truth; this saves a read). */
interface Wire {
  id: number;
  receiver: string;
  message: AclMessage;
}

/** A bus event as it travels between nodes. */
interface EventWire {
  node: string;
  event: BusEvent;
}

const iso = (t = Date.now()) => new Date(t).toISOString();
/** The delivery's envelope around the message (row id, receiver, JSON keys), with room to spare. */
const WIRE_OVERHEAD = 512;
/** Times a delivery to an agent this node lacks goes back to the stream before it is dead-lettered. */
const HAND_BACKS = 10;
const isUniqueViolation = (e: unknown) => (e as { code?: string }).code === '23505';

/** What a step decided to deliver once it commits. */
interface Outgoing {
  id: number;
  receiver: string;
  message: AclMessage;
  /** The Nats-Msg-Id suffix (a replay's or a reroute's, stored on the row too; none for a first publish). */
  tag?: string;
}

/** Collects a step's effects: messages to store and deliver, events to emit after the commit. */
class StepWork {
  readonly outgoing: Outgoing[] = [];
  readonly events: BusEvent[] = [];
  /** Informs to forward to subscribers (other conversations: after this step commits, each in its own). */
  readonly notify: AclMessage[] = [];
}

export class ClusterBus extends EventEmitter<{ event: [BusEvent] }> implements MessagingBus {
  readonly directory: Directory;
  readonly router: Router;
  readonly reads: BusReads;
  readonly #o: ClusterBusOptions;
  readonly #cfg: MessagingConfig;
  readonly #store: PgMessageStore;
  readonly #dispatcher: Dispatcher;
  readonly #handlers = new Map<string, InProcessHandler>();
  #agentHandler: MessageHandler | undefined;
  readonly #log: NonNullable<ClusterBusOptions['log']>;
  #js: JetStreamClient | undefined;
  #events: Subscription | undefined;
  /** The JetStream message of each delivery this node holds, by row id. */
  readonly #held = new Map<number, JsMsg>();
  /** Fetched deliveries whose rows are being read (they count against max_held). */
  #taking = 0;
  /** Callers waiting for a conversation to end; told its final state, or nothing (read it again) when the bus closes. */
  readonly #waiters = new Map<ConversationId, Set<(c?: Conversation) => void>>();
  #counts = { open: 0, dead: 0 };
  #timers: NodeJS.Timeout[] = [];
  #loop: Promise<void> | undefined;
  /** The pulls of the delivery loop (their open fetches are stopped by close). */
  #pulls: Pulls | undefined;
  #room: (() => void) | undefined;
  #state: 'new' | 'running' | 'closed' = 'new';
  readonly #eventSubject: string;
  /** PubAcks not yet recorded on their rows (see #confirm). */
  #confirmed: { id: number; tag: string }[] = [];
  #confirming: Promise<void> | undefined;
  #republishing = false;
  /**
   * The rows of fetched deliveries, read together: the deliveries one fetch brings arrive in the
   * same turn of the event loop, and their rows take one query instead of one each.
   */
  readonly #rows: DataLoader<number, DeliveryRow | undefined>;

  constructor(opts: ClusterBusOptions) {
    super();
    this.setMaxListeners(0);
    this.#o = opts;
    this.#cfg = opts.config;
    this.#store = opts.store;
    this.reads = guardReads(opts.reads);
    this.#agentHandler = opts.agentHandler;
    this.#log = opts.log ?? { warn: () => {}, error: () => {} };
    this.#eventSubject = `${opts.cluster.delivery.subject}_events`;
    this.#rows = new DataLoader(
      async (ids) => {
        const rows = await this.#store.getDeliveries(ids);
        return ids.map((id) => rows.get(id));
      },
      { cache: false, maxBatchSize: 256 },
    );
    this.directory = new Directory(opts.registry);
    this.#dispatcher = new Dispatcher({
      concurrency: (agent) => this.directory.get(agent)?.max_concurrency ?? this.#cfg.agent_concurrency,
      deliver: async (d, signal) => {
        try {
          await this.#deliver(d, signal);
        } catch (e) {
          // PostgreSQL or NATS went away mid-delivery: the delivery goes back to the stream (its row is still pending).
          this.#log.error({ delivery: d.id, err: describeError(e) }, 'a delivery could not be finished; it is delivered again');
          this.#release(d.id)?.nak(1000);
        } finally {
          this.#wake();
        }
      },
    });
    this.router = new Router(this.directory, createStrategy(this.#cfg.routing), this.#dispatcher, this.#cfg.max_hops);
    if (opts.metrics) {
      opts.metrics.sources.queueDepth = () => this.#dispatcher.size;
      opts.metrics.sources.deadLetters = () => this.#counts.dead;
      opts.metrics.sources.activeConversations = () => this.#counts.open;
      opts.metrics.sources.clusterSteps = () => this.#store.groupStats;
    }
  }

  // ---------------------------------------------------------------- lifecycle

  /** Creates the stream and the shared consumer if missing, then starts fetching and sweeping. */
  async start(): Promise<{ redelivering: number; open_conversations: number }> {
    if (this.#state !== 'new') return { redelivering: 0, open_conversations: this.#counts.open };
    const d = this.#o.cluster.delivery;
    const opened = await openDeliveryStream(this.#o.nc, { stream: d.stream, subject: d.subject, consumer: d.consumer, ackWaitMs: d.ack_wait, replicas: this.#o.cluster.replicas });
    this.#js = opened.js;
    this.#pulls = new Pulls(opened.consumer, {
      onOverdue: (asked, got) => this.#log.debug?.({ asked, got }, 'a JetStream pull outlived its expiry without an answer; pulling again without waiting for it'),
      onReleased: () => this.#wake(),
    });
    this.#events = this.#o.nc.subscribe(this.#eventSubject, {
      callback: (err, msg) => {
        if (!err) this.#remoteEvent(msg.data);
      },
    });
    this.#state = 'running';
    await this.#refreshCounts();
    const every = Math.max(200, Math.floor(d.ack_wait / 3));
    this.#timers = [
      setInterval(() => void this.#sweep(), this.#o.sweepMs ?? 1000),
      setInterval(() => void this.#republish(), this.#o.republish?.everyMs ?? 5000),
      setInterval(() => {
        for (const m of this.#held.values()) m.working();
      }, every),
      setInterval(() => void this.#refreshCounts(), 2000),
      setInterval(() => {
        this.applyRetention().catch((e: unknown) => this.#log.warn({ err: describeError(e) }, 'message retention failed; it runs again in a minute'));
      }, 60_000),
    ];
    for (const t of this.#timers) t.unref();
    this.#loop = this.#fetchLoop();
    // What a previous run left is in the stream (unacknowledged: redelivered after ack_wait), not here.
    return { redelivering: 0, open_conversations: this.#counts.open };
  }

  async close(graceMs = 0): Promise<void> {
    if (this.#state === 'closed') return;
    const wasRunning = this.#state === 'running';
    this.#state = 'closed';
    for (const t of this.#timers) clearInterval(t);
    this.#wake();
    await this.#dispatcher.stop(graceMs);
    // A fetch on a dead link would end only when the client notices (tens of seconds): stopped here.
    this.#pulls?.stop();
    await this.#loop;
    // What this node held and did not finish goes back to the stream now, for another node.
    for (const m of this.#held.values()) m.nak();
    this.#held.clear();
    await this.#confirming;
    if (wasRunning) this.#events?.unsubscribe();
    this.directory.close();
    for (const set of this.#waiters.values()) for (const w of set) w();
    this.#waiters.clear();
  }

  setAgentHandler(handler: MessageHandler): void {
    this.#agentHandler = handler;
  }

  registerHandler(agent: string, handler: InProcessHandler): void {
    this.#handlers.set(agent.toLowerCase(), handler);
  }

  unregisterHandler(agent: string): void {
    this.#handlers.delete(agent.toLowerCase());
  }

  stats(): BusStats {
    return {
      queued: this.#dispatcher.size,
      running: this.#dispatcher.running,
      retrying: 0,
      open_conversations: this.#counts.open,
      dead_letters: this.#counts.dead,
      max_queue: this.#cfg.max_queue,
    };
  }

  async history(conversation: ConversationId, n: number): Promise<AclMessage[]> {
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
      if (!r.more) break;
    }
    if (out.dead_letters + out.conversations > 0) this.#log.info?.({ deleted: out }, 'message retention applied to the shared state');
    return out;
  }

  /** Every write is committed before the call that made it resolves: nothing to wait for. */
  settled(): Promise<void> {
    return Promise.resolve();
  }

  // ---------------------------------------------------------------- submission

  parse(body: unknown, opts: { bodySize?: number; sender?: string } = {}): AclMessage {
    return parseBody(this.#cfg, body, opts);
  }

  submit(body: unknown, opts: SubmitOptions = {}): Promise<SubmitResult> {
    return submitBody(this.#cfg, body, opts, (m, hints) => this.send(m, hints));
  }

  send(m: AclMessage, hints: SendHints = {}): Promise<SubmitResult> {
    return this.#send(m, hints).catch((e: unknown) => Promise.reject(stateUnavailable(e)));
  }

  async #send(m: AclMessage, hints: SendHints): Promise<SubmitResult> {
    if (this.#state !== 'running') throw new CaxtonError('not_ready', 'the message bus is not running');
    const scope = sendScopeOf(m, hints, this.#o.principals);
    if (!hints.newId) {
      const stored = await this.#store.getMessage(m.id);
      if (stored) return this.#duplicate(stored);
    }
    if (this.#dispatcher.size >= this.#cfg.max_queue) {
      throw new CaxtonError('queue_full', `this node holds ${this.#dispatcher.size} undelivered messages ([messaging] max_queue = ${this.#cfg.max_queue}); retry later`, {
        retry_after: 1,
        queued: this.#dispatcher.size,
      });
    }
    // The delivery must fit NATS's max_payload, or it would be stored and never published.
    const wire = Buffer.byteLength(JSON.stringify(m)) + WIRE_OVERHEAD;
    const maxPayload = this.#o.nc.info?.max_payload;
    if (maxPayload !== undefined && wire > maxPayload) {
      throw new CaxtonError(
        'payload_too_large',
        `the message is ${wire} bytes on the wire; NATS accepts at most ${maxPayload} (its max_payload): send a smaller message, or raise max_payload on the NATS servers`,
        { size: wire, limit: maxPayload, field: 'content' },
      );
    }
    const decision = this.router.route(m, scope);
    checkReceiverLimits(m, decision);
    let out: SubmitResult | CaxtonError;
    let work: StepWork;
    try {
      ({ out, work } = await this.#inStep(m.conversation_id, (s, w) => this.#acceptStep(s, m, decision, hints.newConversation === true, w)));
    } catch (e) {
      // Two nodes took the same client-chosen id at once: the other one stored it first.
      if (isUniqueViolation(e)) {
        const stored = await this.#store.getMessage(m.id);
        if (stored) return this.#duplicate(stored);
      }
      throw e;
    }
    this.#emitAll(work.events);
    // The turn limit was reached: the conversation's end is committed, the message refused.
    if (out instanceof CaxtonError) throw out;
    await this.#publishAll(work.outgoing);
    void this.#forward(work.notify);
    return out;
  }

  /**
   * One step of a conversation with its effects collected in a fresh StepWork: a step may run twice
   * (its group failed as a whole, pg-message-store.ts), and only the run that committed counts.
   */
  async #inStep<T>(id: string, fn: (s: ConversationStep, work: StepWork) => Promise<T>, opts?: { delivery?: number }): Promise<{ out: T; work: StepWork }> {
    return this.#store.inConversation(
      id,
      async (s) => {
        const work = new StepWork();
        return { out: await fn(s, work), work };
      },
      opts,
    );
  }

  async #acceptStep(s: ConversationStep, m: AclMessage, decision: RouteDecision, fresh: boolean, work: StepWork): Promise<SubmitResult | CaxtonError> {
    const now = iso();
    let conv = fresh ? undefined : s.conversation;
    if (conv && isTerminal(conv.state)) {
      throw new CaxtonError('conversation_closed', `conversation ${conv.id} is ${conv.state}${conv.reason ? ` (${conv.reason})` : ''}; start a new conversation by leaving out conversation_id`, {
        conversation_id: conv.id,
        state: conv.state,
      });
    }
    if (conv && conv.turns + 1 > conv.max_turns) {
      const reason = `turn limit reached: at most ${conv.max_turns} messages per conversation`;
      this.#setState(conv, 'failed', reason, work);
      await s.saveConversation(conv);
      return new CaxtonError('conversation_closed', `conversation ${conv.id} ${reason}; it is now failed`, { conversation_id: conv.id, state: 'failed' });
    }
    conv ??= this.#newConversation(m, now, decision);
    const receivers = decision.ok ? decision.receivers.map((r) => r.agent) : [];
    let failure: SubmitResult['failure'];
    await this.#storeMessage(s, conv, m, receivers, now, work);
    if (!decision.ok) {
      const reply = this.#reply(m, PLATFORM, 'failure', { reason: decision.reason, message: decision.message });
      await this.#storeMessage(s, conv, reply, [], now, work);
      this.#setState(conv, 'failed', decision.message, work);
      failure = { reason: decision.reason, message: decision.message, reply_id: reply.id };
    } else if (m.performative === 'cfp' && conv.protocol === 'fipa-contract-net') {
      // The call closes at its deadline (the sweep decides it then) unless every bidder answers first.
      const call = openCall([{ message: m, routed_to: receivers }], this.#cfg);
      if (call) conv.expires_at = iso(Math.min(call.deadline, Date.parse(conv.expires_at ?? iso(call.deadline))));
    }
    if (m.performative === 'cancel' && conv.protocol === 'fipa-subscribe') {
      await s.deleteSubscription(conv.id);
      this.#setState(conv, 'completed', 'cancelled by the subscriber', work);
    }
    if (m.performative === 'inform' && m.in_reply_to === undefined) work.notify.push(m);
    await s.saveConversation(conv);
    return {
      id: m.id,
      conversation_id: m.conversation_id,
      performative: m.performative,
      routed_to: receivers,
      routing: decision.ok ? decision.mode : 'none',
      duplicate: false,
      ...(failure && { failure }),
    };
  }

  /** Stores `m` in `conv` with a pending delivery per receiver (published once the step commits). */
  async #storeMessage(s: ConversationStep, conv: Conversation, m: AclMessage, receivers: readonly string[], now: string, work: StepWork): Promise<void> {
    this.#touch(conv, m, receivers, now);
    await s.insertMessage(m, receivers);
    for (const r of receivers) work.outgoing.push({ id: await s.insertDelivery(m.id, r, now), receiver: r, message: m });
    work.events.push({ type: 'message', conversation_id: m.conversation_id, message: m, routed_to: [...receivers] });
  }

  /** The message was accepted before: its pending deliveries are published again (a submission whose publish failed). */
  async #duplicate(stored: StoredMessage): Promise<SubmitResult> {
    const m = stored.message;
    const rows = (await this.reads.getMessage(m.id))?.deliveries ?? [];
    await this.#publishAll(rows.filter((r) => r.state === 'pending').map((r) => ({ id: r.id, receiver: r.receiver, message: m })));
    return duplicateResult(stored, true);
  }

  #newConversation(m: AclMessage, now: string, decision: RouteDecision): Conversation {
    return newConversation(m, now, decision, this.#cfg, endless(m.protocol));
  }

  #touch(conv: Conversation, m: AclMessage, receivers: readonly string[], now: string): void {
    touchConversation(conv, m, receivers, now, this.#cfg.conversation_ttl, endless(conv.protocol));
  }

  #setState(conv: Conversation, to: ConversationState, reason: string | null, work: StepWork): void {
    if (isTerminal(conv.state) || conv.state === to || to === 'initiated') return;
    conv.state = to;
    conv.updated_at = iso();
    if (reason !== null) conv.reason = reason;
    if (isTerminal(to)) conv.expires_at = null;
    work.events.push({ type: 'state', conversation_id: conv.id, conversation: { ...conv, participants: [...conv.participants] } });
  }

  #effects(s: ConversationStep, conv: Conversation, work: StepWork): StepEffects & { subscribe(original: AclMessage, provider: string): Promise<void>; pending: Promise<void>[] } {
    const pending: Promise<void>[] = [];
    // One after another: they share the step's connection, where pg wants one query at a time.
    let last: Promise<void> = Promise.resolve();
    return {
      pending,
      setState: (to, reason) => this.#setState(conv, to, reason, work),
      send: (m) => {
        // The platform's own sends (a Contract Net's award) act for the conversation's principal too.
        const decision = routeForPrincipal(this.router, m, this.#o.principals);
        const receivers = decision.ok ? decision.receivers.map((r) => r.agent) : [];
        last = last.then(() => this.#storeMessage(s, conv, m, receivers, iso(), work));
        pending.push(last);
      },
      subscribe: async (sub, provider) => {
        await s.insertSubscription({
          id: sub.id,
          conversation_id: conv.id,
          subscriber: sub.sender,
          capability: sub.capability ?? null,
          agent: sub.capability === undefined ? provider : null,
          content: typeof sub.content === 'string' ? sub.content : JSON.stringify(sub.content),
          created_at: iso(),
        });
      },
    };
  }

  #reply(to: AclMessage, sender: string, performative: Performative, content: Content): AclMessage {
    return replyTo(to, sender, performative, content);
  }

  // ---------------------------------------------------------------- JetStream

  async #publishAll(out: readonly Outgoing[]): Promise<void> {
    if (out.length === 0) return;
    const d = this.#o.cluster.delivery;
    try {
      await Promise.all(
        out.map(async (o) => {
          await this.#js!.publish(`${d.subject}.${subjectToken(o.receiver)}`, JSON.stringify({ id: o.id, receiver: o.receiver, message: o.message } satisfies Wire), {
            msgID: `d${o.id}${o.tag ?? ''}`,
            timeout: d.publish_timeout,
          });
          this.#confirm(o);
        }),
      );
    } catch (e) {
      throw new CaxtonError(
        'not_ready',
        `the message was stored but NATS JetStream did not acknowledge its delivery within ${d.publish_timeout} ms (${describeError(e)}); send it again with the same id once NATS is reachable (it is delivered once)`,
        { retry_after: 5 },
      );
    }
  }

  /**
   * Records a PubAck on the row, batched: one UPDATE for what was confirmed meanwhile. A record
   * lost (this node dies first, PostgreSQL is away) costs one publish again by the republish
   * sweep, under the same Nats-Msg-Id: JetStream drops it within its duplicate window.
   */
  #confirm(o: Outgoing): void {
    this.#confirmed.push({ id: o.id, tag: o.tag ?? '' });
    this.#confirming ??= new Promise<void>((r) => setImmediate(r)).then(() => this.#flushConfirmed());
  }

  async #flushConfirmed(): Promise<void> {
    while (this.#confirmed.length > 0) {
      const batch = this.#confirmed.splice(0, 1000);
      try {
        await this.#store.markPublished(batch);
      } catch (e) {
        this.#log.warn({ deliveries: batch.length, err: describeError(e) }, 'could not record that deliveries were published; the republish sweep sends them again (JetStream drops the copies)');
      }
    }
    this.#confirming = undefined;
  }

  /**
   * Publishes again what was stored but never confirmed published: the caller got a 503 and did not
   * send again, or the node died between the commit and the PubAck. Every node sweeps; the same
   * Nats-Msg-Id makes the copies one within JetStream's duplicate window (2 min).
   */
  async #republish(): Promise<void> {
    if (this.#state !== 'running' || this.#republishing) return;
    this.#republishing = true;
    const d = this.#o.cluster.delivery;
    const after = this.#o.republish?.afterMs ?? Math.max(5000, 2 * d.publish_timeout);
    try {
      const rows = await this.#store.unpublished(Date.now() - after, 500);
      if (rows.length > 0) {
        await this.#publishAll(rows.map((r) => ({ id: r.id, receiver: r.receiver, message: r.message, ...(r.tag !== '' && { tag: r.tag }) })));
        this.#log.warn({ deliveries: rows.length }, 'published again deliveries whose first publish was not confirmed');
      }
      // A fresh Nats-Msg-Id: within the duplicate window JetStream would drop a copy under the old
      // one even when the stored message itself was lost.
      const stale = await this.#store.stale(Date.now() - (this.#o.republish?.staleMs ?? d.ack_wait * d.reconcile_after), 500);
      if (stale.length > 0) {
        const at = Date.now().toString(36);
        await this.#publishAll(stale.map((r) => ({ id: r.id, receiver: r.receiver, message: r.message, tag: `${r.tag}r${at}` })));
        this.#log.warn({ deliveries: stale.length }, 'published again pending deliveries untouched for ack_wait × reconcile_after (the stream may have lost them)');
      }
    } catch (e) {
      this.#log.warn({ err: describeError(e) }, 'could not publish unconfirmed deliveries again; trying again later');
    } finally {
      this.#republishing = false;
    }
  }

  /** After a step committed: its new deliveries go out; a failure is logged (the rows stay pending; see docs/cluster.md). */
  #publishAfter(out: readonly Outgoing[]): Promise<void> {
    return this.#publishAll(out).catch((e: unknown) =>
      this.#log.error({ deliveries: out.map((o) => o.id), err: describeError(e) }, 'could not publish deliveries a conversation step made; they stay pending in PostgreSQL'),
    );
  }

  #wake(): void {
    const r = this.#room;
    this.#room = undefined;
    r?.();
  }

  async #fetchLoop(): Promise<void> {
    const max = this.#o.cluster.delivery.max_held;
    const pulls = this.#pulls!;
    while (this.#state === 'running') {
      const room = max - this.#held.size - this.#taking - pulls.owed;
      if (room <= 0) {
        await new Promise<void>((r) => (this.#room = r));
        continue;
      }
      try {
        // Each fetched delivery's row is read at once, not one after another: a burst keeps the
        // node's lanes full instead of holding a few deliveries while the stream backs up.
        await pulls.pull(room, (m) => {
          this.#taking++;
          void this.#take(m)
            .catch((e: unknown) => {
              this.#log.warn({ seq: m.seq, err: describeError(e) }, 'could not take a delivery; it is delivered again later');
              m.nak(1000);
            })
            .finally(() => {
              this.#taking--;
              this.#wake();
            });
        });
      } catch (e) {
        if (this.#state !== 'running') break;
        // A pull the server stopped answering (two idle heartbeats missed, ~1 s): pull again at once,
        // not after the pause below (it held every delivery of a node ~1.5 s in bench/cluster-nodes.ts).
        if (pullLapsed(e)) continue;
        this.#log.warn({ err: describeError(e) }, 'fetching deliveries from JetStream failed; trying again');
        await new Promise((r) => setTimeout(r, 500).unref());
      }
    }
  }

  async #take(m: JsMsg): Promise<void> {
    if (this.#state !== 'running') return m.nak();
    let w: Wire;
    try {
      w = m.json<Wire>();
    } catch (e) {
      this.#log.error({ seq: m.seq, err: describeError(e) }, 'dropped a delivery that is not JSON');
      return m.term('not JSON');
    }
    let row;
    try {
      row = await this.#rows.load(w.id);
    } catch (e) {
      // PostgreSQL is away: the delivery goes back to the stream, for this or another node later.
      this.#log.warn({ delivery: w.id, err: describeError(e) }, 'could not read a delivery row; it is delivered again later');
      return m.nak(1000);
    }
    if (!row) {
      this.#log.warn({ delivery: w.id, message_id: w.message.id }, 'dropped a delivery whose row does not exist (its schema was reset?)');
      return m.term('no stored delivery');
    }
    if (!mayTake(row, m, w.receiver, this.#held)) return;
    // A file agent may exist on some nodes only (each watches its own agents_dir): a node without
    // the receiver hands the delivery back for one that has it. Past HAND_BACKS redeliveries no node
    // took it: delivered here, where it is rerouted or dead-lettered as on one node.
    if (!this.directory.get(row.receiver) && !this.#handlers.has(row.receiver.toLowerCase()) && m.info.deliveryCount <= HAND_BACKS) return m.nak(200);
    this.#held.set(row.id, m);
    this.#dispatcher.enqueue({ id: row.id, message: w.message, receiver: row.receiver, attempts: row.attempts });
  }

  #release(id: number): JsMsg | undefined {
    const m = this.#held.get(id);
    this.#held.delete(id);
    this.#wake();
    return m;
  }

  // ---------------------------------------------------------------- delivery

  async #deliver(d: Delivery, signal: AbortSignal): Promise<void> {
    const t0 = performance.now();
    const outcome = await this.#attempt(d, signal);
    if (this.#o.metrics && outcome !== 'stopped') this.#o.metrics.message(d.message.performative, outcome, (performance.now() - t0) / 1000);
  }

  async #attempt(d: Delivery, signal: AbortSignal): Promise<'delivered' | 'failed' | 'retried' | 'dead_letter' | 'rerouted' | 'stopped'> {
    const m = d.message;
    const entry = this.directory.get(d.receiver);
    const inProcess = this.#handlers.get(d.receiver.toLowerCase());
    if (!entry && !inProcess) return this.#reroute(d);
    const ctx: HandlerContext = { signal, delivery: d };
    let answer: AgentAnswer;
    try {
      let r: Promise<AgentAnswer> | AgentAnswer = undefined;
      if (inProcess) r = inProcess(m, entry ?? undeployedReceiver(d.receiver), ctx);
      else if (entry && this.#agentHandler && executes(m.performative)) r = this.#agentHandler(m, entry, ctx);
      answer = r instanceof Promise ? await r : r;
    } catch (e) {
      if (signal.aborted) return 'stopped';
      return this.#failed(d, e);
    }
    if (signal.aborted && this.#state === 'closed') return 'stopped';
    await this.#acknowledge(d, answer);
    return 'delivered';
  }

  /** The answer, the row's `done` and what the protocol decided, in one step of the conversation; then the JetStream ack. */
  async #acknowledge(d: Delivery, answer: AgentAnswer): Promise<void> {
    const m = d.message;
    const { out: done, work } = await this.#inStep(
      m.conversation_id,
      async (s, work) => {
        const row = await s.delivery(d.id);
        // Another node finished it first (this one ran it after JetStream's redelivery): its answer stands.
        if (!row || row.state !== 'pending') return false;
        const now = iso();
        const conv = s.conversation;
        const replies: AclMessage[] = [];
        if (answer && expectsReply(m.performative)) {
          const acts = replyActs(m, answer.performative ?? 'inform');
          acts.forEach((act, i) => replies.push(this.#reply(m, d.receiver, act, i === acts.length - 1 ? answer.content : '')));
        }
        await s.setDelivery(d.id, { state: 'done', attempts: row.attempts + 1 }, now);
        if (conv) {
          for (const r of replies) await this.#storeMessage(s, conv, r, [], now, work);
          if (conv.state === 'initiated') this.#setState(conv, 'in_progress', null, work);
          const fx = this.#effects(s, conv, work);
          await afterReply(conv, m, replies, await s.outstanding(), () => s.messages(), this.#cfg, fx);
          await Promise.all(fx.pending);
          await s.saveConversation(conv);
        } else {
          for (const r of replies) await s.insertMessage(r, []);
        }
        return true;
      },
      { delivery: d.id },
    );
    this.#emitAll(work.events);
    await this.#publishAfter(work.outgoing);
    this.#release(d.id)?.ack();
    if (!done) this.#log.info?.({ delivery: d.id, message_id: m.id }, 'a delivery was already acknowledged by another node; this answer is dropped');
  }

  async #failed(d: Delivery, e: unknown): Promise<'failed' | 'retried' | 'dead_letter'> {
    const code: ErrorCode = isCaxtonError(e) ? e.code : 'internal';
    const reason = describeError(e);
    const jittered = retryDelay(this.#cfg, d, e);
    if (jittered !== undefined) {
      if (!(await this.#store.retry(d.id, d.attempts, Date.now() + jittered, reason, iso()))) {
        // Finished meanwhile by another copy of it (JetStream redelivered it while this one ran): its answer stands.
        this.#log.info?.({ message_id: d.message.id, receiver: d.receiver, err: reason }, 'a delivery failed here after it was finished elsewhere; nothing to retry');
        this.#release(d.id)?.ack();
        return 'failed';
      }
      this.#log.warn({ message_id: d.message.id, receiver: d.receiver, attempt: d.attempts, retry_in_ms: jittered, err: reason }, 'message delivery failed; will retry');
      // The stream holds it until then: any node may run the retry.
      this.#release(d.id)?.nak(jittered);
      return 'retried';
    }
    if (RETRYABLE.has(code) || UNDELIVERABLE.has(code)) {
      const why = RETRYABLE.has(code) ? `delivery to "${d.receiver}" failed ${d.attempts} time${d.attempts === 1 ? '' : 's'}; last error: ${reason}` : `delivery to "${d.receiver}" failed: ${reason}`;
      await this.#deadLetter(d, why);
      return 'dead_letter';
    }
    await this.#acknowledge(d, expectsReply(d.message.performative) ? { performative: 'failure', content: reason } : undefined);
    return 'failed';
  }

  async #deadLetter(d: Delivery, why: string): Promise<void> {
    const m = d.message;
    const { work } = await this.#inStep(
      m.conversation_id,
      async (s, work) => {
        const row = await s.delivery(d.id);
        if (!row || row.state !== 'pending') return;
        const now = iso();
        await s.setDelivery(d.id, { state: 'dead', attempts: d.attempts, last_error: why }, now);
        const reply = this.#reply(m, PLATFORM, 'failure', { reason: 'undeliverable', message: why, dead_letter: d.id });
        const conv = s.conversation;
        if (conv) {
          await this.#storeMessage(s, conv, reply, [], now, work);
          this.#setState(conv, 'failed', why, work);
          await s.saveConversation(conv);
        } else await s.insertMessage(reply, []);
      },
      { delivery: d.id },
    );
    this.#log.error({ message_id: m.id, receiver: d.receiver, dead_letter: d.id, reason: why }, 'message moved to the dead-letter queue');
    this.#emitAll(work.events);
    this.#counts.dead++;
    this.#release(d.id)?.term('dead letter');
  }

  /** The receiver is no longer deployed anywhere: another provider of the capability, or a dead letter. */
  async #reroute(d: Delivery): Promise<'rerouted' | 'dead_letter'> {
    const m = d.message;
    if (m.capability !== undefined) {
      const decision = routeForPrincipal(this.router, m, this.#o.principals);
      if (decision.ok && decision.mode === 'one') {
        const next = decision.receivers[0]!.agent;
        const tag = `:to:${agentKey(next)}`;
        const moved = await this.#store.inConversation(m.conversation_id, async (s) => {
          // Finished or dead-lettered meanwhile by another copy of it: left as it is.
          if ((await s.delivery(d.id))?.state !== 'pending') return false;
          await s.setDelivery(d.id, { state: 'pending', attempts: d.attempts, receiver: next, publish_tag: tag }, iso());
          return true;
        });
        if (moved) await this.#publishAll([{ id: d.id, receiver: next, message: m, tag }]);
        this.#release(d.id)?.ack();
        return 'rerouted';
      }
    }
    await this.#deadLetter(d, `agent "${d.receiver}" is no longer deployed`);
    return 'dead_letter';
  }

  // ---------------------------------------------------------------- subscriptions, deadlines

  /** Forwards accepted informs to their subscribers, each notification a step of the subscription's conversation. */
  async #forward(informs: readonly AclMessage[]): Promise<void> {
    for (const m of informs) {
      try {
        for (const sub of await this.#store.subscriptionsFor(m.capability, m.sender)) {
          if (sub.subscriber === m.sender) continue;
          const isAgent = this.directory.get(sub.subscriber) !== undefined;
          const note: AclMessage = {
            id: newMessageId(),
            performative: 'inform',
            sender: m.sender,
            receivers: isAgent ? [sub.subscriber] : [],
            content: m.content,
            conversation_id: sub.conversation_id as ConversationId,
            protocol: 'fipa-subscribe',
            in_reply_to: sub.id as MessageId,
            ...(m.ontology !== undefined && { ontology: m.ontology }),
            ...(m.language !== undefined && { language: m.language }),
            params: { 'X-notification-of': m.id },
            timestamp: iso(),
            chain: m.chain,
            ...(m.on_behalf_of !== undefined && { on_behalf_of: m.on_behalf_of }),
          };
          const { work } = await this.#inStep(sub.conversation_id, async (s, work) => {
            const conv = s.conversation;
            if (!conv || isTerminal(conv.state)) return;
            const receivers = isAgent ? [sub.subscriber] : [];
            await this.#storeMessage(s, conv, note, receivers, iso(), work);
            await s.saveConversation(conv);
          });
          this.#emitAll(work.events);
          await this.#publishAfter(work.outgoing);
        }
      } catch (e) {
        this.#log.warn({ message_id: m.id, err: describeError(e) }, 'could not notify the subscribers of an inform');
      }
    }
  }

  async #sweep(): Promise<void> {
    if (this.#state !== 'running') return;
    try {
      await this.#store.expired(iso(), 100, async (s) => {
        const conv = s.conversation;
        const work = new StepWork();
        const fx = this.#effects(s, conv, work);
        await atDeadline(conv, await s.outstanding(), () => s.messages(), this.#cfg, fx);
        await Promise.all(fx.pending);
        if (!isTerminal(conv.state) && conv.expires_at !== null && Date.parse(conv.expires_at) <= Date.now()) conv.expires_at = iso(Date.now() + this.#cfg.conversation_ttl);
        await s.saveConversation(conv);
        // Emitted and published after the commit: queued behind this transaction's end.
        setImmediate(() => {
          this.#emitAll(work.events);
          void this.#publishAfter(work.outgoing);
        });
      });
    } catch (e) {
      this.#log.warn({ err: describeError(e) }, 'the conversation deadline sweep failed; it runs again in a second');
    }
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
    for (const e of events) {
      this.#emitLocal(e);
      if (this.#state === 'running') {
        try {
          this.#o.nc.publish(this.#eventSubject, JSON.stringify({ node: this.#o.cluster.node, event: e } satisfies EventWire));
        } catch {
          // Too large for NATS or the connection is closed: the other nodes read it from PostgreSQL.
        }
      }
    }
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
      const w = JSON.parse(new TextDecoder().decode(data)) as EventWire;
      // Marked: the event store in PostgreSQL has it from the node where it happened (src/shared/relayed.ts).
      if (w.node !== this.#o.cluster.node) this.#emitLocal(markRelayed(w.event, w.node));
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
      let poll: NodeJS.Timeout | undefined;
      const finish = (c: Conversation | undefined) => {
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
  replay(id: number): Promise<{ id: number; message_id: MessageId; receiver: string }> {
    return this.#replay(id).catch((e: unknown) => Promise.reject(stateUnavailable(e)));
  }

  async #replay(id: number): Promise<{ id: number; message_id: MessageId; receiver: string }> {
    const d = await this.reads.deadLetter(id);
    const tag = `:replay:${Date.now()}`;
    const { out: ok, work } = await this.#inStep(
      d.message.conversation_id,
      async (s, work) => {
        const row = await s.delivery(id);
        if (!row || row.state !== 'dead') return false;
        const now = iso();
        await s.setDelivery(id, { state: 'pending', attempts: 0, next_at: 0, publish_tag: tag }, now);
        const conv = s.conversation;
        if (conv && (conv.state === 'failed' || conv.state === 'expired')) {
          conv.state = 'in_progress';
          conv.reason = null;
          conv.updated_at = now;
          conv.expires_at = iso(Date.now() + this.#cfg.conversation_ttl);
          work.events.push({ type: 'state', conversation_id: conv.id, conversation: { ...conv } });
          await s.saveConversation(conv);
        }
        return true;
      },
      { delivery: id },
    );
    if (!ok) throw new CaxtonError('conflict', `dead letter ${id} was replayed already`);
    this.#emitAll(work.events);
    this.#counts.dead = Math.max(0, this.#counts.dead - 1);
    await this.#publishAll([{ id, receiver: d.receiver, message: d.message, tag }]);
    return { id, message_id: d.message_id, receiver: d.receiver };
  }
}
