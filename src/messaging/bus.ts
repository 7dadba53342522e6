import { EventEmitter } from 'node:events';
import type { AgentRegistry } from '../agents/index.js';
import type { Metrics } from '../observability/metrics.js';
import { childTraceparent, endWithError, SpanKind, SpanStatusCode, startSpan, traceLogFields, withSpan, type Tracer } from '../observability/trace-context.js';
import { CaxtonError, describeError, isCaxtonError, type ErrorCode } from '../shared/errors.js';
import { backoffDelay } from '../shared/backoff.js';
import { diskFullError, isDiskFull, Pruner, type Db } from '../storage/index.js';
import type { MessagingConfig } from './config.js';
import { isTerminal, transition, type Conversation, type ConversationState } from './conversation.js';
import { Directory, type DirectoryEntry } from './directory.js';
import type { Delivery } from './dispatcher.js';
import type { BusStats, MessagingBus } from './bus-port.js';
import type { ActingPrincipals, SendScope } from '../auth/index.js';
import {
  checkReceiverLimits,
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
} from './bus-rules.js';
import { GroupCommit } from './group-commit.js';
import type { AclMessage, Content, ConversationId, MessageId } from './message.js';
import { ConversationEvents, type BusEvent } from './events.js';
import { executes, expectsReply, type Performative } from './performatives.js';
import { createProtocolEngine, type ProtocolEngine } from './protocols/index.js';
import type { DeliveryQueue, DeliveryQueueFactory } from './queue.js';
import { MessageReads } from './reads.js';
import { Router, type RouteDecision } from './router.js';
import { messagingRetentionRules } from './retention.js';
import { sqliteQueue } from './sqlite-queue.js';
import { MessageStore } from './store.js';
import { createStrategy } from './strategy.js';
import { PLATFORM, type SendHints, type SubmitOptions, type SubmitResult } from './submission.js';

/** What an agent answered: the reply act and its content (undefined: no reply). */
export type AgentAnswer = { performative?: Performative; content: Content } | undefined;

/** What a handler gets with the message: the bus's stop signal, the delivery, and the delivery span's trace context. */
export interface HandlerContext {
  signal: AbortSignal;
  delivery: Delivery;
  traceparent?: string;
}

/** Runs a message on one receiver. Configuration agents get the executor-backed handler. */
export type MessageHandler = (m: AclMessage, receiver: DirectoryEntry, ctx: HandlerContext) => Promise<AgentAnswer> | AgentAnswer;

/**
 * The receiver an in-process handler gets: its directory entry, or, for a name that is not a
 * deployed agent (a system agent, a benchmark sink), the same fields without a definition.
 */
export type InProcessReceiver = Omit<DirectoryEntry, 'definition'> & { readonly definition?: DirectoryEntry['definition'] };

/** Runs messages for an agent name inside the server (system agents, benchmarks): see `registerHandler`. */
export type InProcessHandler = (m: AclMessage, receiver: InProcessReceiver, ctx: HandlerContext) => Promise<AgentAnswer> | AgentAnswer;

/** What became of one delivery attempt (the `status` label of caxton_messages_processed_total). */
type DeliveryOutcome = 'delivered' | 'failed' | 'retried' | 'dead_letter' | 'rerouted' | 'stopped';

export interface BusOptions {
  db: Db;
  registry: AgentRegistry;
  config: MessagingConfig;
  /** Runs configuration agents; absent: only in-process handlers receive messages. */
  agentHandler?: MessageHandler;
  log?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void; info?(obj: object, msg: string): void };
  /** Spans: `message.route` on acceptance, `message.deliver` around each delivery. */
  tracer?: Tracer;
  /** caxton_messages_processed_total, caxton_message_processing_duration_seconds, and the queue gauges. */
  metrics?: Metrics;
  /** Builds the delivery queue (queue.ts); default: the SQLite one (sqlite-queue.ts). */
  queue?: DeliveryQueueFactory;
  /** Turns a message's `on_behalf_of` back into its principal, whose scope decides where it may go (src/auth/acting.ts). */
  principals?: ActingPrincipals;
}

const iso = (t = Date.now()) => new Date(t).toISOString();

/**
 * The message bus: validates, routes, persists and delivers ACL messages and keeps conversations;
 * the interaction protocols (request, query, Contract Net, subscribe) run in the protocol engine
 * (protocols/), which the bus calls when a message is accepted, a reply is made, a delivery is
 * acknowledged and a conversation ends. Deliveries go through a DeliveryQueue (queue.ts; SQLite by
 * default). Accepting a message means it is committed; each receiver gets it at least once,
 * acknowledged atomically with the reply it produced.
 */
export class MessageBus extends EventEmitter<{ event: [BusEvent] }> implements MessagingBus {
  readonly directory: Directory;
  readonly router: Router;
  readonly store: MessageStore;
  readonly #cfg: MessagingConfig;
  readonly #commit: GroupCommit;
  readonly #queue: DeliveryQueue;
  readonly #protocols: ProtocolEngine;
  readonly #handlers = new Map<string, InProcessHandler>();
  #agentHandler: MessageHandler | undefined;
  readonly #principals: ActingPrincipals | undefined;
  readonly #log: NonNullable<BusOptions['log']>;
  readonly #tracer: Tracer | undefined;
  readonly #metrics: Metrics | undefined;
  /** Open conversations (terminal ones are read from the store). */
  readonly #open = new Map<ConversationId, Conversation>();
  readonly #dirty = new Set<Conversation>();
  /** Unacknowledged deliveries per conversation. */
  readonly #outstanding = new Map<ConversationId, number>();
  readonly #inflight = new Map<string, Promise<SubmitResult>>();
  readonly #ackRetries = new Set<NodeJS.Timeout>();
  /** Events of the writes in flight (emitted once they commit) and the callers waiting for a conversation to end. */
  readonly #events = new ConversationEvents(this);
  /** The read side: conversations, messages and dead letters, after the writes in flight. */
  readonly reads: MessageReads;
  #sweep: NodeJS.Timeout | undefined;
  /** Retention of finished conversations and dead letters (src/messaging/retention.ts), off the hot path. */
  readonly #pruner: Pruner;
  /** Messages accepted since the pruner was last asked to run. */
  #sincePrune = 0;
  readonly #pruneEvery: number;
  #state: 'new' | 'running' | 'closed' = 'new';

  constructor(opts: BusOptions) {
    super();
    this.setMaxListeners(0);
    this.#cfg = opts.config;
    this.#log = opts.log ?? { warn: () => {}, error: () => {} };
    this.#tracer = opts.tracer;
    this.#metrics = opts.metrics;
    if (opts.metrics) {
      opts.metrics.sources.queueDepth = () => this.#queue.size + this.#queue.running + this.#queue.delayed;
      opts.metrics.sources.deadLetters = () => (this.#state === 'closed' ? 0 : this.#queue.deadCount());
      opts.metrics.sources.activeConversations = () => this.#open.size;
    }
    this.#agentHandler = opts.agentHandler;
    this.#principals = opts.principals;
    this.store = new MessageStore(opts.db);
    this.directory = new Directory(opts.registry);
    this.#pruner = new Pruner(opts.db, {
      onError: (e, rule) => this.#log.error({ rule, err: describeError(e) }, 'message retention failed; it is tried again at the next run'),
      onPruned: (deleted, pages) => this.#log.info?.({ deleted, vacuumed_pages: pages }, 'message retention applied'),
    });
    for (const r of messagingRetentionRules(opts.db, this.#cfg)) this.#pruner.add(r);
    // A flood reaches the count limits long before the next timed run: prune every tenth of the smaller limit.
    this.#pruneEvery = Math.max(100, Math.floor(Math.min(this.#cfg.max_messages, this.#cfg.max_conversations) / 10));
    this.#commit = new GroupCommit(
      opts.db,
      () => {
        for (const c of this.#dirty) this.store.saveConversation(c);
      },
      () => {
        this.#dirty.clear();
        this.#events.flush();
      },
    );
    this.#queue = (opts.queue ?? sqliteQueue)({
      store: this.store,
      commit: this.#commit,
      concurrency: (agent) => this.directory.get(agent)?.max_concurrency ?? this.#cfg.agent_concurrency,
      deliver: (d, signal) => this.#deliver(d, signal),
    });
    this.reads = new MessageReads({ settled: () => this.#commit.settled(), conversation: (id) => this.#conversation(id), store: this.store, queue: this.#queue });
    this.router = new Router(this.directory, createStrategy(this.#cfg.routing), this.#queue, this.#cfg.max_hops);
    this.#protocols = createProtocolEngine({
      config: this.#cfg,
      store: this.store,
      log: this.#log,
      open: (id) => this.#open.get(id),
      outstanding: (id) => this.#outstanding.get(id) ?? 0,
      isAgent: (name) => this.directory.get(name) !== undefined,
      send: (m, hints) => this.send(m, hints),
      setState: (conv, to, reason) => this.#setState(conv, to, reason),
      finish: (conv, to, reason) => this.#finish(conv, to, reason),
      record: (conv, m) => {
        this.#touch(conv, m, [], iso());
        this.#events.message(m, []);
        void this.#commit.run(() => this.store.insertMessage(m, []));
      },
      write: (write) => void this.#commit.run(write),
    });
  }

  /** Loads what a previous run left: open conversations, undelivered messages, Contract Nets, subscriptions. */
  start(): { redelivering: number; open_conversations: number } {
    if (this.#state !== 'new') return { redelivering: 0, open_conversations: this.#open.size };
    this.#state = 'running';
    // One damaged row (JSON that no longer parses) is skipped with a warning naming it; the start goes on.
    const skipped = (table: string) => (row: string | number, reason: string) => this.#log.warn({ table, row, reason }, `skipped ${table} row ${row} at start: ${reason}`);
    for (const c of this.store.openConversations(skipped('conversations'))) this.#open.set(c.id, c);
    this.#protocols.load();
    const { pending, found } = this.#queue.recover(skipped('messages'));
    for (const { delivery: d, next_at } of pending) {
      const m = d.message;
      this.#outstanding.set(m.conversation_id, (this.#outstanding.get(m.conversation_id) ?? 0) + 1);
      const wait = next_at - Date.now();
      if (wait > 0) this.#queue.dispatch(d, wait);
      else this.#queue.dispatch(d);
    }
    for (const c of this.#open.values()) this.#protocols.recover(c, (reason) => skipped('messages')(c.id, reason));
    this.#sweep = setInterval(() => this.#expire(), 1000);
    this.#sweep.unref();
    this.#pruner.start();
    this.#pruner.poke();
    return { redelivering: found, open_conversations: this.#open.size };
  }

  /** Stops delivering; running deliveries are abandoned (still pending, so redelivered after a restart). */
  async close(graceMs = 0): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearInterval(this.#sweep);
    this.#pruner.close();
    this.#protocols.close();
    await this.#queue.stop(graceMs);
    this.#commit.close();
    this.directory.close();
    this.#events.close();
    // Acknowledgements still waiting for room stay undone: their deliveries are pending in SQLite.
    for (const t of this.#ackRetries) clearTimeout(t);
    this.#ackRetries.clear();
  }

  /** Sets the handler that runs configuration agents (the executor-backed one in the server). */
  setAgentHandler(handler: MessageHandler): void {
    this.#agentHandler = handler;
  }

  /** Registers an in-process handler for an agent name (system agents, benchmarks). */
  registerHandler(agent: string, handler: InProcessHandler): void {
    this.#handlers.set(agent.toLowerCase(), handler);
  }

  unregisterHandler(agent: string): void {
    this.#handlers.delete(agent.toLowerCase());
  }

  /** The conversation's last `n` messages, oldest first. */
  history(conversation: ConversationId, n: number): AclMessage[] {
    return this.store.lastMessagesOf(conversation, n);
  }

  stats(): BusStats {
    return {
      queued: this.#queue.size,
      running: this.#queue.running,
      retrying: this.#queue.delayed,
      open_conversations: this.#open.size,
      dead_letters: this.#queue.deadCount(),
      max_queue: this.#cfg.max_queue,
    };
  }

  // ---------------------------------------------------------------- submission

  /** Validates an untrusted body into a message (throws 'invalid_message' or 'payload_too_large'). */
  parse(body: unknown, opts: { bodySize?: number; sender?: string } = {}): AclMessage {
    return parseBody(this.#cfg, body, opts);
  }

  /**
   * Validates an untrusted body (REST) and sends it. Nothing is stored when it is invalid.
   * `traceparent` (the submitting request's) is the message's trace context unless it has its own.
   */
  submit(body: unknown, opts: SubmitOptions = {}): Promise<SubmitResult> {
    return submitBody(this.#cfg, body, opts, (m, hints) => this.send(m, hints));
  }

  /**
   * Sends a typed message: dedup, back-pressure, conversation checks, routing, then one commit.
   * `hints` say which ids were just generated here (then they cannot be in the store: no lookup).
   */
  send(m: AclMessage, hints: SendHints = {}): Promise<SubmitResult> {
    if (this.#state !== 'running') return Promise.reject(new CaxtonError('not_ready', 'the message bus is not running'));
    let scope: SendScope | undefined;
    try {
      scope = sendScopeOf(m, hints, this.#principals);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!hints.newId) {
      const pending = this.#inflight.get(m.id);
      if (pending) return pending.then((r) => ({ ...r, duplicate: true }));
      const stored = this.store.getMessage(m.id);
      if (stored) return Promise.resolve(duplicateResult(stored, true));
    }
    const queued = this.#queue.size + this.#queue.delayed;
    if (queued >= this.#cfg.max_queue) {
      return Promise.reject(
        new CaxtonError('queue_full', `the message queue is full (${queued} undelivered messages, [messaging] max_queue = ${this.#cfg.max_queue}); retry later`, { retry_after: 1, queued }),
      );
    }
    let p: Promise<SubmitResult>;
    try {
      p = this.#accept(m, hints.newConversation === true, scope);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!hints.newId) {
      this.#inflight.set(m.id, p);
      const clear = () => this.#inflight.delete(m.id);
      p.then(clear, clear);
    }
    return p;
  }

  #accept(m: AclMessage, newConversation: boolean, scope: SendScope | undefined): Promise<SubmitResult> {
    const now = iso();
    let conv = newConversation ? undefined : this.#conversation(m.conversation_id);
    if (conv && isTerminal(conv.state)) {
      throw new CaxtonError('conversation_closed', `conversation ${conv.id} is ${conv.state}${conv.reason ? ` (${conv.reason})` : ''}; start a new conversation by leaving out conversation_id`, {
        conversation_id: conv.id,
        state: conv.state,
      });
    }
    if (conv && conv.turns + 1 > conv.max_turns) {
      const reason = `turn limit reached: at most ${conv.max_turns} messages per conversation`;
      this.#setState(conv, 'failed', reason);
      this.#commit.touch();
      throw new CaxtonError('conversation_closed', `conversation ${conv.id} ${reason}; it is now failed`, { conversation_id: conv.id, state: 'failed' });
    }
    if (this.#tracer) m = this.#traceRoute(m);
    const decision = this.router.route(m, scope);
    checkReceiverLimits(m, decision);
    const created = !conv;
    conv ??= this.#newConversation(m, now, decision);
    return this.#store(m, conv, decision, now, created);
  }

  /**
   * A `message.route` span continuing the message's trace context (or the active span: the HTTP
   * request that submitted it); the message then carries the span's context, so its deliveries,
   * the executions they start and the replies they produce belong to the same trace.
   */
  #traceRoute(m: AclMessage): AclMessage {
    const incoming = m.trace_context?.traceparent;
    const span = startSpan(
      this.#tracer!,
      `message.route ${m.performative}`,
      incoming,
      () => ({
        'caxton.performative': m.performative,
        'caxton.sender': m.sender,
        ...(m.capability !== undefined && { 'caxton.capability': m.capability }),
        ...(m.protocol !== undefined && { 'caxton.protocol': m.protocol }),
      }),
      SpanKind.PRODUCER,
    );
    const tp = childTraceparent(span, incoming);
    span.end();
    if (tp === undefined || tp === incoming) return m;
    return { ...m, trace_context: { traceparent: tp, ...(m.trace_context?.tracestate !== undefined && { tracestate: m.trace_context.tracestate }) } };
  }

  #newConversation(m: AclMessage, now: string, decision: RouteDecision): Conversation {
    return newConversation(m, now, decision, this.#cfg, this.#protocols.endless(m.protocol));
  }

  async #store(m: AclMessage, conv: Conversation, decision: RouteDecision, now: string, created: boolean): Promise<SubmitResult> {
    const receivers = decision.ok ? decision.receivers.map((r) => r.agent) : [];
    // What the conversation was, to put back if the write fails (a full disk): nothing of it was stored.
    const before = { ...conv, participants: [...conv.participants] };
    const events = this.#events.mark;
    this.#touch(conv, m, receivers, now);
    if (created) this.#open.set(conv.id, conv);
    let failure: SubmitResult['failure'];
    let reply: AclMessage | undefined;
    this.#events.message(m, receivers);
    if (!decision.ok) {
      reply = this.#reply(m, PLATFORM, 'failure', { reason: decision.reason, message: decision.message });
      this.#touch(conv, reply, [], now);
      this.#events.message(reply, []);
      this.#setState(conv, 'failed', decision.message);
      failure = { reason: decision.reason, message: decision.message, reply_id: reply.id };
    }
    let deliveries: Delivery[];
    try {
      deliveries = await this.#queue.enqueue(m, receivers, reply ? [reply] : [], now);
    } catch (e) {
      this.#undo(conv, before, created, events, m.id, reply?.id);
      throw isDiskFull(e) ? diskFullError() : e;
    }
    this.#countForRetention();
    if (deliveries.length > 0) this.#outstanding.set(conv.id, (this.#outstanding.get(conv.id) ?? 0) + deliveries.length);
    for (const d of deliveries) this.#queue.dispatch(d);
    this.#protocols.onAccepted(m, conv, receivers);
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

  /** A message's write failed: its conversation is as before and its events are never emitted. */
  #undo(conv: Conversation, before: Conversation, created: boolean, events: number, ...ids: (MessageId | undefined)[]): void {
    if (created) {
      this.#open.delete(conv.id);
      this.#dirty.delete(conv);
    } else {
      Object.assign(conv, before);
      if (!isTerminal(conv.state)) this.#open.set(conv.id, conv);
    }
    this.#events.drop(events, conv.id, new Set(ids));
  }

  /** A message accepted or a conversation finished: retention runs every `#pruneEvery` of these. */
  #countForRetention(): void {
    if (++this.#sincePrune < this.#pruneEvery) return;
    this.#sincePrune = 0;
    // After the commit in flight, so what just finished is on disk when the pruner looks.
    setImmediate(() => this.#pruner.poke());
  }

  /** Applies retention now (finished conversations, dead letters) and resolves with the rows deleted per rule. */
  applyRetention(): Promise<Record<string, number>> {
    return this.#pruner.run();
  }

  /** Counts a message in its conversation: turns, participants, activity, expiry. */
  #touch(conv: Conversation, m: AclMessage, receivers: readonly string[], now: string): void {
    // Endless conversations keep an expiry here: the sweep skips them by protocol (#expire).
    touchConversation(conv, m, receivers, now, this.#cfg.conversation_ttl, false);
    this.#dirty.add(conv);
  }

  #conversation(id: ConversationId): Conversation | undefined {
    return this.#open.get(id) ?? this.store.getConversation(id);
  }

  #setState(conv: Conversation, to: ConversationState, reason: string | null): void {
    if (!transition(conv, to, reason, iso())) return;
    this.#dirty.add(conv);
    this.#events.state(conv);
    if (isTerminal(to)) {
      this.#countForRetention();
      this.#open.delete(conv.id);
      this.#protocols.onEnded(conv);
    }
  }

  #reply(to: AclMessage, sender: string, performative: Performative, content: Content, extra: Partial<AclMessage> = {}): AclMessage {
    return replyTo(to, sender, performative, content, extra);
  }

  // ---------------------------------------------------------------- delivery

  async #deliver(d: Delivery, signal: AbortSignal): Promise<void> {
    if (!this.#tracer && !this.#metrics) {
      await this.#attempt(d, signal, undefined);
      return;
    }
    const m = d.message;
    const t0 = performance.now();
    const span =
      this.#tracer &&
      startSpan(
        this.#tracer,
        `message.deliver ${m.performative}`,
        m.trace_context?.traceparent,
        () => ({ 'caxton.performative': m.performative, 'caxton.receiver': d.receiver, 'caxton.attempt': d.attempts + 1 }),
        SpanKind.CONSUMER,
      );
    const tp = span ? childTraceparent(span, m.trace_context?.traceparent) : undefined;
    let outcome: DeliveryOutcome;
    try {
      outcome = await (span ? withSpan(span, () => this.#attempt(d, signal, tp)) : this.#attempt(d, signal, tp));
    } catch (e) {
      if (span) endWithError(span, e);
      throw e;
    }
    if (this.#metrics && outcome !== 'stopped') {
      this.#metrics.message(m.performative, outcome, (performance.now() - t0) / 1000);
    }
    if (span?.isRecording()) {
      span.setAttribute('caxton.outcome', outcome);
      if (outcome === 'dead_letter' || outcome === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
      span.end();
    }
  }

  /** One delivery attempt: runs the handler, then acknowledges, retries or dead-letters. */
  async #attempt(d: Delivery, signal: AbortSignal, traceparent: string | undefined): Promise<DeliveryOutcome> {
    const m = d.message;
    const entry = this.directory.get(d.receiver);
    const inProcess = this.#handlers.get(d.receiver.toLowerCase());
    if (!entry && !inProcess) return this.#reroute(d);
    const ctx: HandlerContext = { signal, delivery: d, ...(traceparent !== undefined && { traceparent }) };
    let answer: AgentAnswer;
    try {
      // Configuration agents run only for the acts that execute; an in-process handler gets every one.
      let r: Promise<AgentAnswer> | AgentAnswer = undefined;
      if (inProcess) r = inProcess(m, entry ?? undeployedReceiver(d.receiver), ctx);
      else if (entry && this.#agentHandler && executes(m.performative)) r = this.#agentHandler(m, entry, ctx);
      answer = r instanceof Promise ? await r : r;
    } catch (e) {
      if (signal.aborted) return 'stopped'; // the bus is stopping: stays pending, redelivered after restart
      return this.#failed(d, e, traceparent);
    }
    if (signal.aborted && this.#state === 'closed') return 'stopped';
    await this.#acknowledge(d, answer, traceparent);
    return 'delivered';
  }

  /** Acknowledges a delivery together with the reply it produced, in one transaction. */
  async #acknowledge(d: Delivery, answer: AgentAnswer, traceparent?: string): Promise<void> {
    const m = d.message;
    // Replies continue the delivery's span, so what they cause joins the same trace.
    const extra: Partial<AclMessage> = traceparent !== undefined ? { trace_context: { traceparent } } : {};
    const now = iso();
    const conv = this.#conversation(m.conversation_id);
    const replies: AclMessage[] = [];
    if (answer && expectsReply(m.performative)) {
      // The protocol may put acts before the answer (a request's `agree`): they carry no content.
      const acts = this.#protocols.replyActs(m, answer.performative ?? 'inform');
      acts.forEach((act, i) => replies.push(this.#reply(m, d.receiver, act, i === acts.length - 1 ? answer.content : '', extra)));
    }
    if (conv) for (const r of replies) this.#touch(conv, r, [], now);
    if (conv && conv.state === 'initiated') this.#setState(conv, 'in_progress', null);
    this.#settleOutstanding(m.conversation_id);
    for (const r of replies) this.#events.message(r, []);
    // State changes made here are saved in the same transaction as the acknowledgement.
    if (conv) {
      for (const r of replies) this.#protocols.onReply(r, m, conv);
      this.#protocols.onAcknowledged(m, conv);
    }
    const write = () => this.#queue.ack(d, replies, now);
    try {
      await write();
    } catch (e) {
      if (!isDiskFull(e)) throw e;
      this.#ackLater(d, write, 1);
    }
  }

  /**
   * The acknowledgement of `d` (its state and the replies it produced) met a full disk: nothing of
   * it was stored, so the delivery stays pending in SQLite, and after a restart it is delivered
   * again (at least once). Until then the write itself is tried again with backoff, rather than the
   * delivery: the agent has already answered, and running it again would cost another model call
   * and answer twice. Whoever waits on the conversation (POST /messages?wait) gets a 507 now.
   */
  #ackLater(d: Delivery, write: () => Promise<void>, attempt: number): void {
    const conv = d.message.conversation_id;
    const delay = backoffDelay(attempt - 1, { baseMs: this.#cfg.retry_base, maxMs: this.#cfg.retry_max });
    if (attempt === 1 || attempt % 10 === 0) {
      this.#log.error(
        { ...traceLogFields(d.message.trace_context?.traceparent), message_id: d.message.id, conversation_id: conv, receiver: d.receiver, delivery: d.id, attempt, retry_in_ms: delay },
        `could not acknowledge the delivery of message ${d.message.id} to "${d.receiver}": the disk holding the data dir is full. The delivery stays pending (it is delivered again after a restart); storing its acknowledgement and reply is retried every ${Math.round(delay / 1000)} s or so. Free some space on the server`,
      );
    }
    if (attempt === 1) {
      // Counted until it is stored (or given up), so a waiter arriving between retries sees it too.
      this.#events.markUnstored(conv);
    }
    const t = setTimeout(() => {
      this.#ackRetries.delete(t);
      if (this.#state === 'closed') return;
      write().then(
        () => {
          this.#events.settleUnstored(conv);
          this.#log.warn(
            { message_id: d.message.id, conversation_id: conv, receiver: d.receiver, delivery: d.id, attempts: attempt + 1 },
            `acknowledged the delivery of message ${d.message.id} to "${d.receiver}" now that the disk has room again`,
          );
        },
        (e: unknown) => {
          if (isDiskFull(e)) return this.#ackLater(d, write, attempt + 1);
          this.#events.settleUnstored(conv);
          this.#log.error({ message_id: d.message.id, delivery: d.id, err: describeError(e) }, 'could not acknowledge a delivery; it stays pending and is delivered again after a restart');
        },
      );
    }, delay);
    t.unref();
    this.#ackRetries.add(t);
  }

  #settleOutstanding(id: ConversationId): void {
    const n = (this.#outstanding.get(id) ?? 1) - 1;
    if (n <= 0) this.#outstanding.delete(id);
    else this.#outstanding.set(id, n);
  }

  async #failed(d: Delivery, e: unknown, traceparent?: string): Promise<DeliveryOutcome> {
    const code: ErrorCode = isCaxtonError(e) ? e.code : 'internal';
    const reason = describeError(e);
    const jittered = retryDelay(this.#cfg, d, e);
    const now = iso();
    if (jittered !== undefined) {
      this.#log.warn(
        { ...traceLogFields(traceparent ?? d.message.trace_context?.traceparent), message_id: d.message.id, receiver: d.receiver, attempt: d.attempts, retry_in_ms: jittered, err: reason },
        'message delivery failed; will retry',
      );
      await this.#queue.retry(d, Date.now() + jittered, reason, now);
      this.#queue.dispatch(d, jittered);
      return 'retried';
    }
    if (RETRYABLE.has(code) || UNDELIVERABLE.has(code)) {
      const why = RETRYABLE.has(code) ? `delivery to "${d.receiver}" failed ${d.attempts} time${d.attempts === 1 ? '' : 's'}; last error: ${reason}` : `delivery to "${d.receiver}" failed: ${reason}`;
      await this.#deadLetter(d, why);
      return 'dead_letter';
    }
    // The agent ran and failed (its deadline passed, a tool loop hit its limit...): a failure reply.
    await this.#acknowledge(d, expectsReply(d.message.performative) ? { performative: 'failure', content: reason } : undefined, traceparent);
    return 'failed';
  }

  async #deadLetter(d: Delivery, why: string): Promise<void> {
    const m = d.message;
    const now = iso();
    const conv = this.#conversation(m.conversation_id);
    const reply = this.#reply(m, PLATFORM, 'failure', { reason: 'undeliverable', message: why, dead_letter: d.id });
    this.#events.message(reply, []);
    if (conv) {
      this.#touch(conv, reply, [], now);
      this.#setState(conv, 'failed', why);
    }
    this.#settleOutstanding(m.conversation_id);
    this.#log.error({ ...traceLogFields(m.trace_context?.traceparent), message_id: m.id, receiver: d.receiver, dead_letter: d.id, reason: why }, 'message moved to the dead-letter queue');
    await this.#queue.deadLetter(d, why, [reply], now);
  }

  /** The receiver was removed before delivery: another provider of the capability, or a dead letter. */
  async #reroute(d: Delivery): Promise<DeliveryOutcome> {
    const m = d.message;
    if (m.capability !== undefined) {
      const decision = routeForPrincipal(this.router, m, this.#principals);
      if (decision.ok && decision.mode === 'one') {
        const next = decision.receivers[0]!.agent;
        await this.#queue.reroute(d, next, iso());
        d.receiver = next;
        this.#queue.dispatch(d, 0);
        return 'rerouted';
      }
    }
    await this.#deadLetter(d, `agent "${d.receiver}" is no longer deployed`);
    return 'dead_letter';
  }

  // ---------------------------------------------------------------- conversation ends

  /** Ends a conversation; saved with the writes in flight, or on its own at the next commit. */
  #finish(conv: Conversation, to: ConversationState, reason: string | null): void {
    this.#setState(conv, to, reason);
    this.#commit.touch();
  }

  #expire(): void {
    const now = Date.now();
    for (const c of this.#open.values()) {
      if (c.expires_at !== null && Date.parse(c.expires_at) <= now && !this.#protocols.endless(c.protocol)) {
        const reason = c.turns > 0 && (this.#outstanding.get(c.id) ?? 0) === 0 ? 'no reply by the reply_by deadline or within the conversation ttl' : 'no activity within the conversation ttl';
        this.#finish(c, 'expired', reason);
      }
    }
  }

  // ---------------------------------------------------------------- waiting and replay

  /** Resolves with the conversation once it ends, or with its current state when `timeoutMs` passes. */
  async wait(id: ConversationId, timeoutMs: number, signal?: AbortSignal): Promise<Conversation> {
    await this.#commit.settled();
    const now = this.#conversation(id);
    if (!now) throw new CaxtonError('conversation_not_found', `no conversation ${id}`);
    return this.#events.wait(now, timeoutMs, () => this.#conversation(id), signal);
  }

  /**
   * Puts a dead letter back on the queue with fresh attempts. Its conversation is reopened when it
   * failed because of this delivery, so the reply can complete it.
   */
  async replay(id: number): Promise<{ id: number; message_id: MessageId; receiver: string }> {
    const d = await this.reads.deadLetter(id);
    const now = iso();
    const ok = await this.#queue.replay(id, now, () => {
      // The one move back the state machine allows: a replayed dead letter reopens its conversation
      // (failed or expired), saved in the same transaction as the replay.
      const conv = this.#conversation(d.message.conversation_id);
      if (conv && (conv.state === 'failed' || conv.state === 'expired')) {
        conv.state = 'in_progress';
        conv.reason = null;
        conv.updated_at = now;
        conv.expires_at = iso(Date.now() + this.#cfg.conversation_ttl);
        this.#open.set(conv.id, conv);
        this.#dirty.add(conv);
        this.#events.state(conv);
      }
    });
    if (!ok) throw new CaxtonError('conflict', `dead letter ${id} was replayed already`);
    this.#outstanding.set(d.message.conversation_id, (this.#outstanding.get(d.message.conversation_id) ?? 0) + 1);
    this.#queue.dispatch({ id, message: d.message, receiver: d.receiver, attempts: 0 });
    return { id, message_id: d.message_id, receiver: d.receiver };
  }

  /** Waits until everything accepted so far is on disk (tests, shutdown). */
  settled(): Promise<void> {
    return this.#commit.settled();
  }
}
