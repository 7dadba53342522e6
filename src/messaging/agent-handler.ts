import type { Executor } from '../execution/index.js';
import type { AgentAnswer, MessageHandler } from './bus.js';
import type { AclMessage } from './message.js';

import { parseAnswer, renderMessagePrompt } from './prompt.js';

/**
 * Runs a configuration agent on a message: the message (and the conversation so far, up to the
 * agent's `conversation.history_limit`) becomes the prompt, and the agent's answer becomes the
 * reply act. Execution errors propagate so the bus can retry, dead-letter or answer `failure`.
 */
export function executorHandler(executor: Executor, history: (conversation: AclMessage['conversation_id'], n: number) => Promise<AclMessage[]> | AclMessage[]): MessageHandler {
  return async (m, receiver, { signal, traceparent }): Promise<AgentAnswer> => {
    const limit = receiver.definition.conversation.history_limit;
    const earlier = limit > 0 ? await history(m.conversation_id, limit + 1) : [];
    const res = await executor.invoke(
      receiver.agent,
      {
        request: renderMessagePrompt(m, receiver.agent, earlier),
        conversation_id: m.conversation_id,
        ...(m.capability !== undefined && { capability: m.capability }),
        chain: [...m.chain],
        // The delivery's span when tracing records, else the message's own context passed through.
        ...((traceparent ?? m.trace_context?.traceparent) !== undefined && { traceparent: traceparent ?? m.trace_context!.traceparent }),
      },
      { signal },
    );
    return parseAnswer(res.content, m.performative);
  };
}
