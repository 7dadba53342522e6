import type { Conversation } from '../conversation.js';
import type { AclMessage } from '../message.js';
import type { StepEffects } from '../protocols/index.js';
import { routeForPrincipal } from '../bus-rules.js';
import type { EngineStep } from './ports.js';
import { iso, type StepWork } from './step-work.js';
import { setState, type StepWriter } from './engine-writes.js';

/** What a protocol step may do (protocols/steps.ts), and the writes it left in flight for the step to await. */
export type Effects = StepEffects & {
  subscribe(original: AclMessage, provider: string): Promise<void>;
  pending: Promise<void>[];
};

/** What a protocol step may do, written in the step it runs in. */
export function stepEffects(w: StepWriter, s: EngineStep, conv: Conversation, work: StepWork): Effects {
  const pending: Promise<void>[] = [];
  // One after another: a step's writes share one connection, where a database wants one query at a time.
  let last: Promise<void> | undefined;
  return {
    pending,
    setState: (to, reason) => setState(conv, to, reason, work),
    send: (made) => {
      const m = w.o.tracer ? w.traceRoute(made) : made;
      // The platform's own sends (a Contract Net's award) act for the conversation's principal too.
      const decision = routeForPrincipal(w.o.router, m, w.o.principals);
      const receivers = decision.ok ? decision.receivers.map((r) => r.agent) : [];
      last = (last ?? Promise.resolve()).then(() => w.storeMessage(s, conv, m, receivers, iso(), work));
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
