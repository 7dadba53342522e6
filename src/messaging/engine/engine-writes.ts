import {
  childTraceContext,
  giveAttributes,
  SpanKind,
  spanName,
  startSpanIn,
  type Attributes,
} from '../../observability/trace-context.js';
import { describeError } from '../../shared/errors.js';
import type { MessagingConfig } from '../messaging-config.js';
import { isTerminal, type Conversation, type ConversationState } from '../conversation.js';
import { withTraceContext, type AclMessage } from '../message.js';
import { endless } from '../protocols/index.js';
import { touchConversation } from '../conversation-rules.js';
import type { Answer, DeliveryQueue, EngineStep, Outgoing, StepStore } from './ports.js';
import { iso, StepWork } from './step-work.js';
import type { EngineOptions } from './engine-types.js';

/**
 * What every step of the engine writes alike, whoever runs it (accept, acknowledgement, dead
 * letter, subscription notice, deadline sweep, replay): the step itself with its effects collected
 * afresh, a message stored with its deliveries (signed under `[messaging] signing`), a
 * conversation's state, a `message.route` span, and the hand-out after the commit. The engine owns
 * one; its collaborators (engine-upkeep.ts, engine-effects.ts) write through the same one.
 */
export class StepWriter {
  readonly o: EngineOptions;
  readonly cfg: MessagingConfig;
  readonly store: StepStore;
  readonly queue: DeliveryQueue;

  constructor(opts: EngineOptions) {
    this.o = opts;
    this.cfg = opts.config;
    this.store = opts.store;
    this.queue = opts.queue;
  }

  /**
   * One step of a conversation with its effects collected afresh: only the run that committed
   * counts. On a store answering at once, `fn` runs as a plain call when it returns a value.
   */
  inStep<T>(
    id: string,
    fn: (s: EngineStep, work: StepWork) => Answer<T>,
    opts?: { delivery?: number; fresh?: boolean },
  ): Promise<{ out: T; work: StepWork }> {
    if (this.store.inConversationNow) {
      return this.store.inConversationNow(
        id,
        (s) => {
          const work = new StepWork();
          const out = fn(s, work);
          return out instanceof Promise ? out.then((o) => ({ out: o, work })) : { out, work };
        },
        opts,
      );
    }
    return this.store.inConversation(
      id,
      async (s) => {
        const work = new StepWork();
        const out = fn(s, work);
        return { out: out instanceof Promise ? await out : out, work };
      },
      opts,
    );
  }

  /**
   * Stores `m` in `conv` with a pending delivery per receiver (handed out once the step commits).
   * `opens`: `m` opens a one-way `conv` the store keeps with it (StepStore.defersOneWay), so the
   * step saves no conversation row. Returns a promise only when the store answered with one.
   */
  storeMessage(
    s: EngineStep,
    conv: Conversation,
    m: AclMessage,
    receivers: readonly string[],
    now: string,
    work: StepWork,
    opens = false,
  ): Answer<void> {
    m = this.signed(m);
    touchConversation(conv, m, receivers, now, this.cfg.conversation_ttl, endless(conv.protocol));
    const inserted = opens ? s.insertMessage(m, receivers, conv) : s.insertMessage(m, receivers);
    if (inserted instanceof Promise) return storeDeliveries(inserted, s, m, receivers, now, work);
    for (let i = 0; i < receivers.length; i++) {
      const id = s.insertDelivery(m.id, receivers[i]!, now);
      if (id instanceof Promise) return storeDeliveries(id, s, m, receivers, now, work, i);
      work.hand({ id, receiver: receivers[i]!, message: m });
    }
    work.event({ type: 'message', conversation_id: m.conversation_id, message: m, routed_to: [...receivers] });
  }

  /** With `[messaging] signing`: `m` signed by its sender's key (an agent's own, else the node's). */
  signed(m: AclMessage): AclMessage {
    return this.o.signer ? this.o.signer.sign(m, this.o.directory.get(m.sender) !== undefined) : m;
  }

  /**
   * A `message.route` span continuing the message's trace context (or the active span: the HTTP
   * request that submitted it); the message then carries the span's context, so its deliveries,
   * the executions they start and the replies they produce belong to the same trace.
   */
  traceRoute(m: AclMessage): AclMessage {
    const incoming = m.trace_context?.traceparent;
    const span = startSpanIn(
      this.o.tracer!,
      spanName('message.route', m.performative),
      m.trace_context,
      SpanKind.PRODUCER,
    );
    const recording = span.isRecording();
    if (recording) {
      const attributes: Attributes = { 'caxton.performative': m.performative, 'caxton.sender': m.sender };
      if (m.capability !== undefined) attributes['caxton.capability'] = m.capability;
      if (m.protocol !== undefined) attributes['caxton.protocol'] = m.protocol;
      giveAttributes(span, attributes);
    }
    const tc = childTraceContext(span, incoming, m.trace_context?.tracestate);
    span.end();
    if (tc === undefined || (!recording && tc.traceparent === incoming)) return m;
    return withTraceContext(m, tc);
  }

  /** After a step committed: its new deliveries go out; a failure is logged (the rows stay pending). */
  publishAfter(out: readonly Outgoing[]): Promise<void> | undefined {
    return this.queue
      .publish(out)
      ?.catch((e: unknown) =>
        this.o.log.error(
          { deliveries: out.map((o) => o.id), err: describeError(e) },
          'could not hand out deliveries a conversation step made; they stay pending',
        ),
      );
  }
}

/** The rest of `storeMessage` on a store answering later: `first` is the write in flight (the message, or receiver `from`'s delivery). */
async function storeDeliveries(
  first: Promise<unknown>,
  s: EngineStep,
  m: AclMessage,
  receivers: readonly string[],
  now: string,
  work: StepWork,
  from = -1,
): Promise<void> {
  const firstId = await first;
  for (let i = Math.max(from, 0); i < receivers.length; i++) {
    const id = i === from ? (firstId as number) : await s.insertDelivery(m.id, receivers[i]!, now);
    work.hand({ id, receiver: receivers[i]!, message: m });
  }
  work.event({ type: 'message', conversation_id: m.conversation_id, message: m, routed_to: [...receivers] });
}

/** Moves `conv` to `to` (never out of a terminal state, never back to `initiated`), with its `state` event. */
export function setState(conv: Conversation, to: ConversationState, reason: string | null, work: StepWork): void {
  if (isTerminal(conv.state) || conv.state === to || to === 'initiated') return;
  conv.state = to;
  conv.updated_at = iso();
  if (reason !== null) conv.reason = reason;
  if (isTerminal(to)) conv.expires_at = null;
  work.event({
    type: 'state',
    conversation_id: conv.id,
    conversation: { ...conv, participants: [...conv.participants] },
  });
}
