import type { SendScope } from '../../auth/index.js';
import {
  childTraceparent,
  endWithError,
  giveAttributes,
  SpanKind,
  spanName,
  SpanStatusCode,
  startSpanIn,
  traceLogFields,
  type Span,
  withSpan,
} from '../../observability/trace-context.js';
import { CaxtonError, describeError, isCaxtonError, type ErrorCode } from '../../shared/errors.js';
import type { MessagingConfig } from '../messaging-config.js';
import { isTerminal } from '../conversation.js';
import type { Delivery } from '../dispatcher.js';
import type { AclMessage, MessageId } from '../message.js';
import { executes, expectsReply } from '../performatives.js';
import {
  afterReply,
  auctionNotice,
  auctionStart,
  callsForProposals,
  endless,
  openCall,
  replyActs,
} from '../protocols/index.js';
import type { RouteDecision } from '../router.js';
import {
  checkCredential,
  checkReceiverLimits,
  duplicateResult,
  replyTo,
  routeForPrincipal,
  sendScopeOf,
  undeployedReceiver,
} from '../bus-rules.js';
import { newConversation } from '../conversation-rules.js';
import { retryDelay, RETRYABLE, UNDELIVERABLE } from '../delivery-retries.js';
import { REPLAYED, SIGNATURE_INVALID } from '../signature.js';
import type { DeliveryRow, StoredMessage } from '../rows.js';
import { PLATFORM, type SendHints, type SubmitResult } from '../submission.js';
import type { Answer, DeliveryQueue, EngineStep, StepStore } from './ports.js';
import { drive, iso, subscribersOf, type StepBody, type StepWork } from './step-work.js';
import { stepEffects } from './engine-effects.js';
import { deadLetterStep, forward, replay, sweep } from './engine-upkeep.js';
import { setState, StepWriter } from './engine-writes.js';

import type {
  AgentAnswer,
  DeliveryOutcome,
  EngineOptions,
  HandlerContext,
  InProcessHandler,
  MessageHandler,
} from './engine-types.js';

export type {
  AgentAnswer,
  DeliveryOutcome,
  EngineLog,
  EngineOptions,
  HandlerContext,
  InProcessHandler,
  InProcessReceiver,
  MessageHandler,
} from './engine-types.js';

/** Whether `m`, sent to `receivers` in a conversation of its own, makes a one-way conversation: no protocol, one receiver, no reply expected. */
function oneWay(m: AclMessage, receivers: readonly string[]): boolean {
  return m.protocol === undefined && receivers.length === 1 && !expectsReply(m.performative);
}

/** What the sender of an accepted message is told. */
function accepted(
  m: AclMessage,
  receivers: string[],
  decision: RouteDecision,
  failure?: SubmitResult['failure'],
): SubmitResult {
  const r: SubmitResult = {
    id: m.id,
    conversation_id: m.conversation_id,
    performative: m.performative,
    routed_to: receivers,
    routing: decision.ok ? decision.mode : 'none',
    duplicate: false,
  };
  // Set after: a spread in the literal would make every answer's object the slow way.
  if (failure) r.failure = failure;
  return r;
}

/** The step options of an accept opening its conversation (shared: the store only reads them). */
const FRESH = Object.freeze({ fresh: true });

/** What an untraced reply adds to its message: nothing (shared: `replyTo` only spreads it). */
const NO_EXTRA: Partial<AclMessage> = Object.freeze({});

/** An accept step found its client-chosen id stored already: the sender is told it is a duplicate. */
class Repeated {
  constructor(readonly stored: StoredMessage) {}
}
type AcceptOut = SubmitResult | CaxtonError | Repeated;

/** What `deliver` returns when the delivery finished within the call. */
const SETTLED = Promise.resolve();

/**
 * The delivery engine behind both buses: accept → route → store → deliver → acknowledge, with
 * retry and backoff, dead letter, reroute, replay, deadlines and subscriptions, written once.
 * Every change of a conversation is one step of it (`StepStore.inConversation`): the engine's
 * decisions (and the protocols', protocols/steps.ts) are made inside the step from what the
 * conversation's rows say, and what the step delivers and emits leaves only once it committed.
 * The stores and queues are adapters: SQLite with group commit and the in-process dispatcher on
 * one node (sqlite/sqlite-steps.ts), PostgreSQL with JetStream in a cluster (../cluster/).
 *
 * "Accepted" means committed and handed to the queue; a delivery is acknowledged in the same step
 * as the replies it produced and what the protocol decided, so each receiver gets a message at
 * least once and its answer counts once.
 */
export class DeliveryEngine {
  readonly #o: EngineOptions;
  readonly #cfg: MessagingConfig;
  readonly #store: StepStore;
  readonly #queue: DeliveryQueue;
  /** The writes every step shares, and what the engine's other steps (engine-upkeep.ts) write through. */
  readonly #w: StepWriter;
  readonly #handlers = new Map<string, InProcessHandler>();
  #agentHandler: MessageHandler | undefined;
  /** Sends of a client-chosen id in flight: a second one waits for the first. */
  readonly #inflight = new Map<string, Promise<SubmitResult>>();
  /** Work in flight that a reader waits for (`idle`): outcomes being written, notifications to subscribers. */
  #background = 0;
  /** Who waits for `#background` to reach 0. */
  #idle: (() => void)[] = [];
  readonly #untrack = (): void => {
    if (--this.#background === 0 && this.#idle.length > 0) for (const r of this.#idle.splice(0)) r();
  };

  constructor(opts: EngineOptions) {
    this.#o = opts;
    this.#cfg = opts.config;
    this.#store = opts.store;
    this.#queue = opts.queue;
    this.#w = new StepWriter(opts);
    this.#agentHandler = opts.agentHandler;
    // An agent's messages verify only under its own key: the signer asks the directory who is an agent.
    opts.signer?.setAgents((name) => opts.directory.get(name) !== undefined);
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

  /** Resolves once the outcomes being written and the notifications to subscribers in flight are done. */
  idle(): Promise<void> {
    if (this.#background === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /** Counts `p` in `idle` until it settles (it never rejects: each caller catches its own). */
  #track(p: Promise<unknown>): void {
    this.#background++;
    p.then(this.#untrack, this.#untrack);
  }

  /** Whether this node can run deliveries to `receiver` (a deployed agent or an in-process handler). */
  serves(receiver: string): boolean {
    return this.#o.directory.get(receiver) !== undefined || this.#handlers.has(receiver.toLowerCase());
  }

  // ---------------------------------------------------------------- accept

  /**
   * Sends a typed message: dedup, back-pressure, routing, then one step of its conversation.
   * `hints` say which ids were just generated here (then they cannot be stored yet: no lookup).
   */
  send(m: AclMessage, hints: SendHints = {}): Promise<SubmitResult> {
    if (!this.#o.running()) return Promise.reject(new CaxtonError('not_ready', 'the message bus is not running'));
    if (hints.newId) return this.#send(m, hints);
    const pending = this.#inflight.get(m.id);
    if (pending) return pending.then((r) => ({ ...r, duplicate: true }));
    const p = this.#send(m, hints);
    this.#inflight.set(m.id, p);
    const clear = () => this.#inflight.delete(m.id);
    p.then(clear, clear);
    return p;
  }

  #send(m: AclMessage, hints: SendHints): Promise<SubmitResult> {
    let p: Promise<SubmitResult>;
    try {
      p = this.#accept(m, hints);
    } catch (e) {
      p = Promise.reject(e);
    }
    return p.catch(this.#callerError);
  }

  /** What a sender is told when its send failed (built once: every send is given it). */
  readonly #callerError = (e: unknown): never => {
    throw this.#store.callerError(e);
  };

  /** Accepts `m`: a plain call up to the step's commit on a store answering at once. May throw. */
  #accept(m: AclMessage, hints: SendHints): Promise<SubmitResult> {
    const scope: SendScope | undefined = sendScopeOf(m, hints, this.#o.principals);
    // A store that finds a repeated id by its INSERT is not asked first (#lostRace, #acceptStep).
    if (!hints.newId && this.#store.checksIdsOnInsert !== true) {
      const stored = this.#store.getMessage(m.id);
      if (stored instanceof Promise)
        return stored.then((found) => (found ? this.#duplicate(found) : this.#acceptNew(m, hints, scope)));
      if (stored) return this.#duplicate(stored);
    }
    return this.#acceptNew(m, hints, scope);
  }

  #acceptNew(m: AclMessage, hints: SendHints, scope: SendScope | undefined): Promise<SubmitResult> {
    const backlog = this.#queue.backlog;
    if (backlog >= this.#cfg.max_queue) {
      const exact = this.#queue.exactBacklog?.();
      if (!exact) throw this.#queueFull(backlog);
      return exact.then((n) => {
        if (n >= this.#cfg.max_queue) throw this.#queueFull(n);
        return this.#admitted(m, hints, scope);
      });
    }
    return this.#admitted(m, hints, scope);
  }

  #queueFull(backlog: number): CaxtonError {
    return new CaxtonError(
      'queue_full',
      `the message queue is full (${backlog} undelivered messages, [messaging] max_queue = ${this.#cfg.max_queue}); retry later`,
      { retry_after: 1, queued: backlog },
    );
  }

  /** Accepts `m` once the queue has room for it. */
  #admitted(m: AclMessage, hints: SendHints, scope: SendScope | undefined): Promise<SubmitResult> {
    if (this.#o.tracer) m = this.#w.traceRoute(m);
    // After tracing: the size checked is the text published (its trace context included), made once.
    this.#queue.admit?.(m);
    const decision = this.#o.router.route(m, scope);
    checkReceiverLimits(m, decision);
    const fresh = hints.newConversation === true;
    const step = this.#w.inStep(
      m.conversation_id,
      (s, w) => drive(this.#acceptStep(s, m, decision, fresh, w, hints)),
      fresh ? FRESH : undefined,
    );
    // An id made here for this send cannot have been taken by another sender.
    if (hints.newId) return step.then(this.#accepted);
    return step.then(this.#accepted, (e: unknown) => this.#lostRace(e, m));
  }

  /** Two senders took the same client-chosen id at once: the other one stored it first. */
  async #lostRace(e: unknown, m: AclMessage): Promise<SubmitResult> {
    if (this.#store.isDuplicateId(e)) {
      const stored = await this.#store.getMessage(m.id);
      if (stored) return this.#duplicate(stored);
    }
    throw e;
  }

  /** After an accept step committed: its events go out, its deliveries to the queue (built once). */
  readonly #accepted = ({ out, work }: { out: AcceptOut; work: StepWork }): Answer<SubmitResult> => {
    if (out instanceof Repeated) return this.#duplicate(out.stored);
    this.#o.emit(work.events);
    // The turn limit was reached: the conversation's end is committed, the message refused.
    if (out instanceof CaxtonError) throw out;
    const handed = this.#queue.publish(work.outgoing);
    if (handed) return handed.then(() => this.#notify(work, out));
    return this.#notify(work, out);
  };

  /** Accepted informs go to their subscribers (counted by `idle`); returns `out`. */
  #notify(work: StepWork, out: SubmitResult): SubmitResult {
    if (work.notify.length > 0) {
      const subscribers = subscribersOf(this.#store, work.notify);
      if (subscribers) this.#track(forward(this.#w, work.notify, subscribers));
    }
    return out;
  }

  *#acceptStep(
    s: EngineStep,
    m: AclMessage,
    decision: RouteDecision,
    fresh: boolean,
    work: StepWork,
    hints: SendHints,
  ): StepBody<AcceptOut> {
    const credentialEnded = hints.credentialEnded;
    // Checked as the step begins and again before it commits: a store answering later may see a revoke meanwhile.
    checkCredential(credentialEnded);
    const now = iso();
    let conv = fresh ? undefined : s.conversation;
    // A message the step would refuse may be a repeat of one accepted before its conversation
    // ended or reached its limit: a duplicate, as a read before the step would have found it.
    if (conv && !hints.newId && s.storedMessage && (isTerminal(conv.state) || conv.turns + 1 > conv.max_turns)) {
      const stored = (yield s.storedMessage(m.id)) as StoredMessage | undefined;
      if (stored) return new Repeated(stored);
    }
    if (conv && isTerminal(conv.state)) {
      throw new CaxtonError(
        'conversation_closed',
        `conversation ${conv.id} is ${conv.state}${conv.reason ? ` (${conv.reason})` : ''}; start a new conversation by leaving out conversation_id`,
        {
          conversation_id: conv.id,
          state: conv.state,
        },
      );
    }
    if (conv && conv.turns + 1 > conv.max_turns) {
      const reason = `turn limit reached: at most ${conv.max_turns} messages per conversation`;
      setState(conv, 'failed', reason, work);
      const saved = s.saveConversation(conv);
      if (saved) yield saved;
      return new CaxtonError('conversation_closed', `conversation ${conv.id} ${reason}; it is now failed`, {
        conversation_id: conv.id,
        state: 'failed',
      });
    }
    const receivers = decision.ok ? decision.receivers.map((r) => r.agent) : [];
    // A one-way message opening its conversation: the store keeps the conversation with it, and the
    // step that ends the conversation (its delivery done or dead, its deadline) writes its only row.
    const opens = conv === undefined && this.#store.defersOneWay === true && oneWay(m, receivers);
    // An auction's bidders are told it starts before its first call (FIPA's inform start-of-auction).
    const start = conv === undefined && m.in_reply_to === undefined ? auctionStart(m, receivers) : undefined;
    conv ??= newConversation(m, now, decision, this.#cfg, endless(m.protocol));
    if (start) {
      conv.max_turns = Math.max(conv.max_turns, 3);
      const told = this.#w.storeMessage(s, conv, start, receivers, now, work);
      if (told) yield told;
    }
    let failure: SubmitResult['failure'];
    const stored = this.#w.storeMessage(s, conv, m, receivers, now, work, opens);
    if (stored) yield stored;
    if (opens) {
      if (m.performative === 'inform' && m.in_reply_to === undefined) work.inform(m);
      checkCredential(credentialEnded);
      return accepted(m, receivers, decision);
    }
    if (!decision.ok) {
      const reply = replyTo(m, PLATFORM, 'failure', { reason: decision.reason, message: decision.message });
      const replied = this.#w.storeMessage(s, conv, reply, [], now, work);
      if (replied) yield replied;
      setState(conv, 'failed', decision.message, work);
      failure = { reason: decision.reason, message: decision.message, reply_id: reply.id };
    } else if (m.performative === 'cfp' && callsForProposals(conv.protocol)) {
      // The call closes at its deadline (the sweep decides it then) unless every bidder answers first.
      const call = openCall([{ message: m, routed_to: receivers }], this.#cfg);
      if (call) conv.expires_at = iso(Math.min(call.deadline, Date.parse(conv.expires_at ?? iso(call.deadline))));
    }
    if (m.performative === 'cancel' && conv.protocol === 'fipa-subscribe') {
      const deleted = s.deleteSubscription(conv.id);
      if (deleted) yield deleted;
      setState(conv, 'completed', 'cancelled by the subscriber', work);
    }
    if (m.performative === 'inform' && m.in_reply_to === undefined) work.inform(m);
    const saved = s.saveConversation(conv);
    if (saved) yield saved;
    checkCredential(credentialEnded);
    return accepted(m, receivers, decision, failure);
  }

  /** The message was accepted before: the queue gets its pending deliveries again where it may have lost them. */
  async #duplicate(stored: StoredMessage): Promise<SubmitResult> {
    await this.#queue.again(stored);
    return duplicateResult(stored, true);
  }

  // ---------------------------------------------------------------- deliver

  /** Runs one delivery and finishes it (acknowledged, retried, dead-lettered or rerouted); never rejects. */
  deliver(d: Delivery, signal: AbortSignal): Promise<void> {
    if (this.#o.tracer) return this.#deliverTraced(d, signal);
    const t0 = this.#o.metrics ? performance.now() : 0;
    let out: Answer<DeliveryOutcome>;
    try {
      out = this.#attempt(d, signal, undefined);
    } catch (e) {
      this.#lost(d, e, undefined);
      return SETTLED;
    }
    if (!(out instanceof Promise)) {
      this.#measure(d, out, t0);
      return SETTLED;
    }
    return out.then(this.#o.metrics ? (o) => this.#measure(d, o, t0) : undefined, (e: unknown) =>
      this.#lost(d, e, undefined),
    );
  }

  /**
   * `deliver` inside a `message.deliver` span: plain calls and one `then`, as the untraced path,
   * rather than an async frame per delivery (its allocation is what keeps other deliveries'
   * objects alive across young-generation collections under load).
   */
  #deliverTraced(d: Delivery, signal: AbortSignal): Promise<void> {
    const m = d.message;
    const t0 = performance.now();
    const span = startSpanIn(
      this.#o.tracer!,
      spanName('message.deliver', m.performative),
      m.trace_context,
      SpanKind.CONSUMER,
    );
    if (span.isRecording())
      giveAttributes(span, {
        'caxton.performative': m.performative,
        'caxton.receiver': d.receiver,
        'caxton.attempt': d.attempts + 1,
      });
    const tp = childTraceparent(span, m.trace_context?.traceparent);
    let out: Answer<DeliveryOutcome>;
    try {
      out = withSpan(span, () => this.#attempt(d, signal, tp));
    } catch (e) {
      this.#tracedLost(span, d, e, tp);
      return SETTLED;
    }
    if (!(out instanceof Promise)) {
      this.#tracedDone(span, d, out, t0);
      return SETTLED;
    }
    return out.then(
      (o) => this.#tracedDone(span, d, o, t0),
      (e: unknown) => this.#tracedLost(span, d, e, tp),
    );
  }

  #tracedDone(span: Span, d: Delivery, outcome: DeliveryOutcome, t0: number): void {
    this.#measure(d, outcome, t0);
    if (span.isRecording()) {
      span.setAttribute('caxton.outcome', outcome);
      if (outcome === 'dead_letter' || outcome === 'failed')
        span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
      span.end();
    }
  }

  #tracedLost(span: Span, d: Delivery, e: unknown, tp: string | undefined): void {
    endWithError(span, e);
    this.#lost(d, e, tp);
  }

  #measure(d: Delivery, outcome: DeliveryOutcome, t0: number): void {
    if (this.#o.metrics && outcome !== 'stopped')
      this.#o.metrics.message(d.message.performative, outcome, (performance.now() - t0) / 1000);
  }

  #lost(d: Delivery, e: unknown, traceparent: string | undefined): void {
    this.#o.log.error(
      {
        ...traceLogFields(traceparent ?? d.message.trace_context?.traceparent),
        delivery: d.id,
        message_id: d.message.id,
        err: describeError(e),
      },
      'a delivery could not be finished',
    );
  }

  /** One delivery attempt: runs the handler, then acknowledges, retries or dead-letters. */
  #attempt(d: Delivery, signal: AbortSignal, traceparent: string | undefined): Answer<DeliveryOutcome> {
    return this.#o.signer ? this.#attemptVerified(d, signal, traceparent) : this.#run(d, signal, traceparent);
  }

  async #attemptVerified(d: Delivery, signal: AbortSignal, traceparent: string | undefined): Promise<DeliveryOutcome> {
    const verified = await this.#verified(d);
    if (!verified) return 'dead_letter';
    const seen = this.#o.signer!.seen;
    if (seen && (await seen.delivered(verified.message.id, d.receiver))) return this.#replayed(verified);
    // The receiver's having had it is recorded when it answers, before the acknowledgement (#answered).
    return this.#run(verified, signal, traceparent);
  }

  /**
   * A signed message its receiver has had already (its delivered row was set back to pending, or
   * copied): refused before the receiver runs, audited and dead-lettered with reason replayed.
   */
  async #replayed(d: Delivery): Promise<DeliveryOutcome> {
    this.#o.audit?.record({
      action: 'message.replay_refused',
      target: d.message.id,
      outcome: 'denied',
      details: { receiver: d.receiver, delivery: d.id },
    });
    await this.#finishing(d, async () => {
      await this.#deadLetter(d, `${REPLAYED}: ${d.receiver} has had this signed message already`, REPLAYED);
      return 'dead_letter';
    });
    return 'dead_letter';
  }

  /** The handler's run: a plain call up to the acknowledgement's commit when the handler answers at once. */
  #run(d: Delivery, signal: AbortSignal, traceparent: string | undefined): Answer<DeliveryOutcome> {
    const m = d.message;
    const entry = this.#o.directory.get(d.receiver);
    const inProcess = this.#handlers.get(d.receiver.toLowerCase());
    if (!entry && !inProcess) return this.#finishing(d, () => this.#reroute(d));
    const ctx: HandlerContext =
      traceparent !== undefined ? { signal, delivery: d, traceparent } : { signal, delivery: d };
    let r: Promise<AgentAnswer> | AgentAnswer = undefined;
    try {
      // Configuration agents run only for the acts that execute; an in-process handler gets every one.
      if (inProcess) r = inProcess(m, entry ?? undeployedReceiver(d.receiver), ctx);
      else if (entry && this.#agentHandler && executes(m.performative) && !auctionNotice(m))
        r = this.#agentHandler(m, entry, ctx);
    } catch (e) {
      return this.#handlerFailed(d, e, signal, traceparent);
    }
    if (r instanceof Promise)
      return r.then(
        (answer) => this.#answered(d, answer, signal, traceparent),
        (e: unknown) => this.#handlerFailed(d, e, signal, traceparent),
      );
    return this.#answered(d, r, signal, traceparent);
  }

  #answered(
    d: Delivery,
    answer: AgentAnswer,
    signal: AbortSignal,
    traceparent: string | undefined,
  ): Answer<DeliveryOutcome> {
    if (signal.aborted && !this.#o.running()) return 'stopped';
    // Under signing, the seen-set learns the receiver had the message before the acknowledgement
    // commits: a node dying between the two leaves the row pending, and its redelivery is refused
    // as a replay instead of running the receiver again (at most once, not at least once).
    const marked = this.#o.signer?.seen?.mark(d.message.id, d.receiver);
    if (marked) return marked.then(() => this.#delivered(d, answer, traceparent));
    return this.#delivered(d, answer, traceparent);
  }

  #handlerFailed(
    d: Delivery,
    e: unknown,
    signal: AbortSignal,
    traceparent: string | undefined,
  ): Answer<DeliveryOutcome> {
    if (signal.aborted) return 'stopped'; // the bus is stopping: stays pending, delivered again
    return this.#finishing(d, () => this.#failed(d, e, traceparent));
  }

  /** `#finishing` for an answered delivery, without a closure and an async frame per delivery until a write fails. */
  #delivered(d: Delivery, answer: AgentAnswer, traceparent: string | undefined): Promise<DeliveryOutcome> {
    // Counted by `idle` until the outcome is written and the queue told (as `#track`, without its promise).
    this.#background++;
    return this.#acknowledge(d, answer, traceparent).then(this.#acknowledged, (e: unknown): DeliveryOutcome => {
      this.#queue.unfinished(d, e, () => this.#acknowledge(d, answer, traceparent));
      this.#untrack();
      return 'stopped';
    });
  }

  /** `#delivered`'s outcome once the acknowledgement committed (built once). */
  readonly #acknowledged = (): DeliveryOutcome => {
    this.#untrack();
    return 'delivered';
  };

  /**
   * With `[messaging] signing`: the delivery carrying the message as stored, when its signature
   * verifies. Otherwise it is refused before the receiver sees it: audited and dead-lettered with
   * reason signature_invalid (undefined).
   */
  async #verified(d: Delivery): Promise<Delivery | undefined> {
    const stored = (await this.#store.getMessage(d.message.id))?.message ?? d.message;
    const check = await this.#o.signer!.verifyDelivery(stored);
    if (check.ok) return stored === d.message ? d : { ...d, message: stored };
    this.#o.audit?.record({
      action: 'message.signature_invalid',
      target: d.message.id,
      outcome: 'denied',
      details: { receiver: d.receiver, delivery: d.id, key: check.key ?? null, problem: check.problem },
    });
    await this.#finishing(d, async () => {
      await this.#deadLetter(d, `${SIGNATURE_INVALID}: ${check.problem}`, SIGNATURE_INVALID);
      return 'dead_letter';
    });
    return undefined;
  }

  /** Writes a delivery's outcome; a write the store failed goes to the queue, which tries it again or runs the delivery again. */
  #finishing(d: Delivery, finish: () => Promise<DeliveryOutcome>): Promise<DeliveryOutcome> {
    const p = finish().catch((e: unknown): DeliveryOutcome => {
      this.#queue.unfinished(d, e, async () => {
        await finish();
      });
      return 'stopped';
    });
    // Counted by `idle`: a reader waits until the outcome is written and the queue told.
    this.#track(p);
    return p;
  }

  /** The answer, the row's `done` and what the protocol decided, in one step of the conversation. */
  #acknowledge(d: Delivery, answer: AgentAnswer, traceparent?: string): Promise<void> {
    // Replies continue the delivery's span, so what they cause joins the same trace.
    const extra: Partial<AclMessage> = traceparent !== undefined ? { trace_context: { traceparent } } : NO_EXTRA;
    return this.#w
      .inStep(d.message.conversation_id, (s, work) => drive(this.#ackStep(s, d, answer, extra, work)), {
        delivery: d.id,
      })
      .then(({ out: done, work }) => {
        this.#o.emit(work.events);
        const handed = this.#w.publishAfter(work.outgoing);
        if (handed) return handed.then(() => this.#acked(d, done));
        this.#acked(d, done);
      });
  }

  #acked(d: Delivery, done: boolean): void {
    this.#queue.done(d, 'ack');
    if (!done)
      this.#o.log.info?.(
        { delivery: d.id, message_id: d.message.id },
        'a delivery was already acknowledged elsewhere; this answer is dropped',
      );
  }

  *#ackStep(
    s: EngineStep,
    d: Delivery,
    answer: AgentAnswer,
    extra: Partial<AclMessage>,
    work: StepWork,
  ): StepBody<boolean> {
    const m = d.message;
    const read = s.delivery(d.id);
    const row = (read instanceof Promise ? yield read : read) as DeliveryRow | undefined;
    // Another copy finished it first (a cluster's queue redelivered it while this one ran): its answer stands.
    if (!row || row.state !== 'pending') return false;
    const now = iso();
    const conv = s.conversation;
    const replies: AclMessage[] = [];
    if (answer && expectsReply(m.performative)) {
      // The protocol may put acts before the answer (a request's `agree`): they carry no content.
      const acts = replyActs(m, answer.performative ?? 'inform');
      acts.forEach((act, i) =>
        replies.push(replyTo(m, d.receiver, act, i === acts.length - 1 ? answer.content : '', extra)),
      );
    }
    const set = s.setDelivery(d.id, { state: 'done', attempts: row.attempts + 1 }, now);
    if (set) yield set;
    if (conv) {
      if (conv.state === 'initiated') setState(conv, 'in_progress', null, work);
      for (const r of replies) {
        const stored = this.#w.storeMessage(s, conv, r, [], now, work);
        if (stored) yield stored;
      }
      const counted = s.outstanding();
      const left = (counted instanceof Promise ? yield counted : counted) as number;
      const fx = stepEffects(this.#w, s, conv, work);
      const next = afterReply(conv, m, replies, left, () => s.messages(), this.#cfg, fx);
      if (next) yield next;
      if (fx.pending.length > 0) yield Promise.all(fx.pending);
      const saved = s.saveConversation(conv);
      if (saved) yield saved;
    } else {
      for (const r of replies) {
        const inserted = s.insertMessage(this.#w.signed(r), []);
        if (inserted) yield inserted;
      }
    }
    return true;
  }

  async #failed(d: Delivery, e: unknown, traceparent?: string): Promise<DeliveryOutcome> {
    const code: ErrorCode = isCaxtonError(e) ? e.code : 'internal';
    const reason = describeError(e);
    const jittered = retryDelay(this.#cfg, d, e);
    if (jittered !== undefined) {
      if (!(await this.#store.retry(d.id, d.attempts, Date.now() + jittered, reason, iso()))) {
        // Finished meanwhile by another copy of it: its answer stands.
        this.#o.log.info?.(
          { message_id: d.message.id, receiver: d.receiver, err: reason },
          'a delivery failed here after it was finished elsewhere; nothing to retry',
        );
        this.#queue.done(d, 'ack');
        return 'failed';
      }
      this.#o.log.warn(
        {
          ...traceLogFields(traceparent ?? d.message.trace_context?.traceparent),
          message_id: d.message.id,
          receiver: d.receiver,
          attempt: d.attempts,
          retry_in_ms: jittered,
          err: reason,
        },
        'message delivery failed; will retry',
      );
      this.#queue.retry(d, jittered);
      return 'retried';
    }
    if (RETRYABLE.has(code) || UNDELIVERABLE.has(code)) {
      const why = RETRYABLE.has(code)
        ? `delivery to "${d.receiver}" failed ${d.attempts} time${d.attempts === 1 ? '' : 's'}; last error: ${reason}`
        : `delivery to "${d.receiver}" failed: ${reason}`;
      await this.#deadLetter(d, why);
      return 'dead_letter';
    }
    // The agent ran and failed (its deadline passed, a tool loop hit its limit...): a failure reply.
    await this.#acknowledge(
      d,
      expectsReply(d.message.performative) ? { performative: 'failure', content: reason } : undefined,
      traceparent,
    );
    return 'failed';
  }

  async #deadLetter(d: Delivery, why: string, reason = 'undeliverable'): Promise<void> {
    const m = d.message;
    const { out: alone, work } = await this.#w.inStep(
      m.conversation_id,
      (s, work) => deadLetterStep(this.#w, s, work, d, why, reason),
      {
        delivery: d.id,
      },
    );
    if (alone)
      this.#o.audit?.record({
        action: 'conversation.participant_failed',
        target: m.conversation_id,
        outcome: 'error',
        details: { participant: d.receiver, message_id: m.id, dead_letter: d.id, reason: why },
      });
    this.#o.log.error(
      {
        ...traceLogFields(m.trace_context?.traceparent),
        message_id: m.id,
        receiver: d.receiver,
        dead_letter: d.id,
        reason: why,
      },
      'message moved to the dead-letter queue',
    );
    this.#o.emit(work.events);
    await this.#w.publishAfter(work.outgoing);
    this.#queue.done(d, 'dead');
  }

  /** The receiver was removed before delivery: another provider of the capability, or a dead letter. */
  async #reroute(d: Delivery): Promise<DeliveryOutcome> {
    const m = d.message;
    if (m.capability !== undefined) {
      const decision = routeForPrincipal(this.#o.router, m, this.#o.principals);
      if (decision.ok && decision.mode === 'one') {
        const next = decision.receivers[0]!.agent;
        const tag = `:to:${next.toLowerCase()}`;
        const { out: moved } = await this.#w.inStep(
          m.conversation_id,
          async (s) => {
            // Finished or dead-lettered meanwhile by another copy of it: left as it is.
            if ((await s.delivery(d.id))?.state !== 'pending') return false;
            await s.setDelivery(
              d.id,
              { state: 'pending', attempts: d.attempts, receiver: next, publish_tag: tag },
              iso(),
            );
            return true;
          },
          { delivery: d.id },
        );
        if (moved) await this.#queue.publish([{ id: d.id, receiver: next, message: m, attempts: d.attempts, tag }]);
        this.#queue.done(d, 'ack');
        return 'rerouted';
      }
    }
    await this.#deadLetter(d, `agent "${d.receiver}" is no longer deployed`);
    return 'dead_letter';
  }

  // ---------------------------------------------------------------- subscriptions, deadlines, replay (engine-upkeep.ts)

  /** Handles the conversations whose deadline passed: a Contract Net still collecting is decided, anything else expires. */
  sweep(): Promise<void> {
    return sweep(this.#w);
  }

  /**
   * Puts a dead letter back with fresh attempts. Its conversation is reopened when it failed
   * (or expired) because of it, so the reply can complete it.
   */
  replay(
    d: { message: AclMessage; message_id: MessageId; receiver: string },
    id: number,
  ): Promise<{ id: number; message_id: MessageId; receiver: string }> {
    return replay(this.#w, d, id);
  }
}
