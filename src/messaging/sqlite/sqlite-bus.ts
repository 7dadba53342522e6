import type { AgentRegistry } from '../../agents/index.js';
import type { AuditSink } from '../../audit/index.js';
import type { ActingPrincipals } from '../../auth/index.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Tracer } from '../../observability/trace-context.js';
import { CaxtonError, describeError } from '../../shared/errors.js';
import { Ticks } from '../../shared/ticks.js';
import { GroupCommit, Pruner, type Db } from '../../storage/index.js';
import {
  ConversationEvents,
  createStrategy,
  Directory,
  EngineBus,
  newConversation,
  Router,
  touchConversation,
  type AclMessage,
  type BusStats,
  type Conversation,
  type ConversationId,
  type DiscardResult,
  type DiscardTarget,
  type MessageHandler,
  type MessageId,
  type MessageSigner,
  type MessagingBus,
  type MessagingConfig,
  type RouteDecision,
} from '../index.js';
import { DispatchQueue } from './dispatch-queue.js';
import { MessageReads } from './sqlite-reads.js';
import { messagingRetentionRules } from './sqlite-retention.js';
import { SqliteSteps } from './sqlite-steps.js';
import { MessageStore } from './sqlite-message-store.js';

export type { AgentAnswer, HandlerContext, InProcessHandler, InProcessReceiver, MessageHandler } from '../index.js';

export interface BusOptions {
  db: Db;
  registry: AgentRegistry;
  config: MessagingConfig;
  /** Runs configuration agents; absent: only in-process handlers receive messages. */
  agentHandler?: MessageHandler;
  log?: {
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
    info?(obj: object, msg: string): void;
  };
  /** Spans: `message.route` on acceptance, `message.deliver` around each delivery. */
  tracer?: Tracer;
  /** caxton_messages_processed_total, caxton_message_processing_duration_seconds, and the queue gauges. */
  metrics?: Metrics;
  /** Turns a message's `on_behalf_of` back into its principal, whose scope decides where it may go (src/auth/acting.ts). */
  principals?: ActingPrincipals;
  /** `[messaging] signing` (ADR 0059): signs what is stored, verifies what is delivered. */
  signer?: MessageSigner;
  /** Where a refused signature and a participant failed alone are recorded (the audit trail). */
  audit?: AuditSink;
}

/**
 * The message bus of one node: the delivery engine (src/messaging/engine/engine.ts) over the data dir's SQLite
 * (sqlite-steps.ts, group commit) and the in-process dispatcher (dispatch-queue.ts). Accepting a
 * message means it is committed; each receiver gets it at least once, acknowledged atomically with
 * the reply it produced.
 */
export class MessageBus extends EngineBus implements MessagingBus {
  readonly directory: Directory;
  readonly router: Router;
  readonly store: MessageStore;
  /** The read side: conversations, messages and dead letters, after the writes in flight. */
  readonly reads: MessageReads;
  readonly #cfg: MessagingConfig;
  readonly #commit: GroupCommit;
  readonly #steps: SqliteSteps;
  readonly #queue: DispatchQueue;
  readonly #log: NonNullable<BusOptions['log']>;
  /** Listeners and the callers waiting for a conversation to end. */
  readonly #events = new ConversationEvents(this);
  /** The deadline sweep; closing waits for the one running. */
  readonly #ticks = new Ticks();
  /** Retention of finished conversations and dead letters (src/messaging/sqlite/sqlite-retention.ts), off the hot path. */
  readonly #pruner: Pruner;
  /** Messages stored and conversations ended since the pruner was last asked to run. */
  #sincePrune = 0;
  readonly #pruneEvery: number;
  #state: 'new' | 'running' | 'closed' = 'new';

  constructor(opts: BusOptions) {
    super();
    this.#cfg = opts.config;
    this.busConfig = opts.config;
    this.#log = opts.log ?? { warn: () => {}, error: () => {} };
    this.store = new MessageStore(opts.db);
    this.directory = new Directory(opts.registry);
    this.#pruner = new Pruner(opts.db, {
      onError: (e, rule) =>
        this.#log.error({ rule, err: describeError(e) }, 'message retention failed; it is tried again at the next run'),
      onPruned: (deleted, pages) => this.#log.info?.({ deleted, vacuumed_pages: pages }, 'message retention applied'),
    });
    for (const r of messagingRetentionRules(opts.db, this.#cfg)) this.#pruner.add(r);
    // A flood reaches the count limits long before the next timed run: prune every tenth of the smaller limit.
    this.#pruneEvery = Math.max(100, Math.floor(Math.min(this.#cfg.max_messages, this.#cfg.max_conversations) / 10));
    this.#commit = new GroupCommit(
      opts.db,
      () => this.#steps.saveDirty(),
      () => this.#steps.committed(),
    );
    this.#steps = new SqliteSteps(this.store, this.#commit, () => this.#countForRetention());
    this.#queue = new DispatchQueue({
      concurrency: (agent) => this.directory.get(agent)?.max_concurrency ?? this.#cfg.agent_concurrency,
      deliver: (d, signal) => this.engine.deliver(d, signal),
      retry: { base: this.#cfg.retry_base, max: this.#cfg.retry_max },
      events: this.#events,
      log: this.#log,
    });
    if (opts.metrics) {
      opts.metrics.sources.queueDepth = () => this.#queue.size + this.#queue.running + this.#queue.delayed;
      opts.metrics.sources.deadLetters = () => (this.#state === 'closed' ? 0 : this.store.deadCount());
      opts.metrics.sources.activeConversations = () => this.#steps.open.size;
    }
    this.reads = new MessageReads({
      settled: () => this.settled(),
      conversation: (id) => this.#steps.conversation(id),
      conversationRows: () => this.#steps.writeKept(),
      store: this.store,
    });
    this.router = new Router(this.directory, createStrategy(this.#cfg.routing), this.#queue, this.#cfg.max_hops);
    const running = () => this.#state === 'running';
    const parts = { store: this.#steps, queue: this.#queue, directory: this.directory, router: this.router };
    this.buildEngine({ ...parts, log: this.#log, emit: (events) => this.#events.emit(events), running }, opts);
  }

  /** Loads what a previous run left: open conversations, subscriptions, undelivered messages. */
  start(): { redelivering: number; open_conversations: number } {
    if (this.#state !== 'new') return { redelivering: 0, open_conversations: this.#steps.open.size };
    this.#state = 'running';
    // One damaged row (JSON that no longer parses) is skipped with a warning naming it; the start goes on.
    const skipped = (table: string) => (row: string | number, reason: string) =>
      this.#log.warn({ table, row, reason }, `skipped ${table} row ${row} at start: ${reason}`);
    this.#steps.load(skipped('conversations'));
    const found = this.#recover(skipped('messages'));
    this.#ticks.every(1000, () => this.engine.sweep());
    this.#pruner.start();
    this.#pruner.poke();
    return { redelivering: found, open_conversations: this.#steps.open.size };
  }

  /** Hands out again the deliveries a previous run left pending, oldest first; one whose message cannot be read is skipped. */
  #recover(onSkipped: (messageId: string, reason: string) => void): number {
    const rows = this.store.openDeliveries();
    const cache = new Map<string, AclMessage>();
    for (const r of rows) {
      let m = cache.get(r.message_id);
      if (!m) {
        try {
          m = this.store.getMessage(r.message_id)?.message;
          if (m === null || typeof m !== 'object' || typeof m.conversation_id !== 'string')
            throw new Error('not an ACL message');
        } catch (e) {
          onSkipped(r.message_id, `its stored body is damaged (${describeError(e)}); delivery ${r.id} is not retried`);
          continue;
        }
        cache.set(r.message_id, m);
      }
      if (this.#steps.conversation(m.conversation_id) === undefined) this.#steps.keep(this.#kept(m, r.receiver));
      this.#steps.pending(m.conversation_id);
      const wait = r.next_at - Date.now();
      this.#queue.dispatch(
        { id: r.id, message: m, receiver: r.receiver, attempts: r.attempts },
        wait > 0 ? wait : undefined,
      );
    }
    return rows.length;
  }

  /**
   * A one-way conversation a previous run kept with its message (it has no row, and its one
   * delivery is pending), as its accept made it: the message counted, its deadline from the message's time.
   */
  #kept(m: AclMessage, receiver: string): Conversation {
    const entry = this.directory.get(receiver);
    const decision: RouteDecision = { ok: true, mode: 'named', receivers: entry ? [entry] : [] };
    const c = newConversation(m, m.timestamp, decision, this.#cfg, false);
    touchConversation(c, m, [receiver], m.timestamp, this.#cfg.conversation_ttl, false);
    const at = Date.parse(m.timestamp);
    if (!Number.isNaN(at)) c.expires_at = new Date(at + this.#cfg.conversation_ttl).toISOString();
    return c;
  }

  /** Stops delivering; running deliveries are abandoned (still pending, so redelivered after a restart). */
  async close(graceMs = 0): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    await this.#ticks.stop();
    this.#pruner.close();
    await this.#queue.stop(graceMs);
    this.#commit.close();
    this.directory.close();
    this.#events.close();
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
      open_conversations: this.#steps.open.size,
      dead_letters: this.store.deadCount(),
      max_queue: this.#cfg.max_queue,
    };
  }

  /** A message stored or a conversation ended: retention runs every `#pruneEvery` of these. */
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

  /** Resolves with the conversation once it ends, or with its current state when `timeoutMs` passes. */
  async wait(id: ConversationId, timeoutMs: number, signal?: AbortSignal): Promise<Conversation> {
    await this.#commit.settled();
    const now = this.#steps.conversation(id);
    if (!now) throw new CaxtonError('conversation_not_found', `no conversation ${id}`);
    return this.#events.wait(now, timeoutMs, () => this.#steps.conversation(id), signal);
  }

  /**
   * Puts a dead letter back on the queue with fresh attempts. Its conversation is reopened when it
   * failed because of this delivery, so the reply can complete it.
   */
  async replay(id: number): Promise<{ id: number; message_id: MessageId; receiver: string }> {
    const d = await this.reads.deadLetter(id);
    return this.engine.replay(d, id);
  }

  async discard(letters: readonly DiscardTarget[], opts: { purge?: boolean } = {}): Promise<DiscardResult> {
    return this.#commit.run(() => {
      const discarded = this.store.discardDead(letters.map((d) => d.id));
      if (!opts.purge) return { discarded, conversations: 0 };
      const gone = new Set(discarded);
      const of = letters.filter((d) => gone.has(d.id)).map((d) => d.conversation_id);
      return { discarded, conversations: this.store.dropSettledConversations(of) };
    });
  }

  /** Waits until everything accepted so far is on disk, notifications to subscribers included (tests, shutdown). */
  async settled(): Promise<void> {
    await this.engine.idle();
    await this.#commit.settled();
  }
}
