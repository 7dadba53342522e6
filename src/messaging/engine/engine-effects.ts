import type { Conversation, ConversationState } from '../conversation.js';
import type { AclMessage } from '../message.js';
import type { StepEffects } from '../protocols/index.js';
import { routeForPrincipal } from '../bus-rules.js';
import type { EngineStep } from './ports.js';
import { iso, type StepWork } from './step-work.js';
import { setState, type StepWriter } from './engine-writes.js';

/** What a protocol step may do (protocols/steps.ts), and the writes it left in flight for the step to await. */
export type Effects = StepEffects & {
  subscribe(original: AclMessage, provider: string): Promise<void>;
  readonly pending: readonly Promise<void>[];
};

const NO_WRITES: readonly Promise<void>[] = Object.freeze([]);

/**
 * What a protocol step may do, written in the step it runs in. One object with its methods on the
 * prototype: every acknowledgement makes one, and most only move the state, if anything.
 */
class StepFx implements Effects {
  pending: readonly Promise<void>[] = NO_WRITES;
  // One after another: a step's writes share one connection, where a database wants one query at a time.
  #last: Promise<void> | undefined;

  constructor(
    private readonly w: StepWriter,
    private readonly s: EngineStep,
    private readonly conv: Conversation,
    private readonly work: StepWork,
  ) {}

  setState(to: ConversationState, reason: string | null): void {
    setState(this.conv, to, reason, this.work);
  }

  send(made: AclMessage): void {
    const w = this.w;
    const m = w.o.tracer ? w.traceRoute(made) : made;
    // The platform's own sends (a Contract Net's award) act for the conversation's principal too.
    const decision = routeForPrincipal(w.o.router, m, w.o.principals);
    const receivers = decision.ok ? decision.receivers.map((r) => r.agent) : [];
    const last = (this.#last ?? Promise.resolve()).then(() =>
      w.storeMessage(this.s, this.conv, m, receivers, iso(), this.work),
    );
    this.#last = last;
    if (this.pending === NO_WRITES) this.pending = [last];
    else (this.pending as Promise<void>[]).push(last);
  }

  async subscribe(sub: AclMessage, provider: string): Promise<void> {
    await this.s.insertSubscription({
      id: sub.id,
      conversation_id: this.conv.id,
      subscriber: sub.sender,
      capability: sub.capability ?? null,
      agent: sub.capability === undefined ? provider : null,
      content: typeof sub.content === 'string' ? sub.content : JSON.stringify(sub.content),
      created_at: iso(),
    });
  }
}

/** What a protocol step may do, written in the step it runs in. */
export function stepEffects(w: StepWriter, s: EngineStep, conv: Conversation, work: StepWork): Effects {
  return new StepFx(w, s, conv, work);
}
