import { remoteA2aUrl } from '../agents/index.js';
import type { ActingPrincipals, LimitSet } from '../auth/index.js';
import type { Executor } from '../execution/index.js';
import type { AgentAnswer, MessageHandler } from './engine/engine.js';
import { contentText, type AclMessage } from './message.js';
import type { InvokeMessage } from '../execution/index.js';

import { actsFor, answerFromActs } from './acts.js';
import { parseAnswer, renderMessagePrompt } from './step-prompt.js';

/**
 * Runs a configuration agent on a message: the message (and the conversation so far, up to the
 * agent's `conversation.history_limit`) becomes the prompt, and the agent's answer becomes the
 * reply act. Execution errors propagate so the bus can retry, dead-letter or answer `failure`.
 *
 * The execution acts for the message's principal (`on_behalf_of`): it is charged to that
 * principal's limits exactly as an invoke is (a concurrency slot while it runs, its tokens after),
 * and what the agent sends carries the principal on. A refusal for concurrency is retried by the
 * bus without spending an attempt (bus-rules.ts retryDelay).
 */
export function executorHandler(
  executor: Executor,
  history: (conversation: AclMessage['conversation_id'], n: number) => Promise<AclMessage[]> | AclMessage[],
  principals?: ActingPrincipals,
): MessageHandler {
  return async (m, receiver, { signal, traceparent, delivery }): Promise<AgentAnswer> => {
    const acting = m.on_behalf_of;
    // Before anything runs: a key revoked since the message was sent stops its queued work here.
    const charged = acting !== undefined && principals !== undefined && !acting.startsWith('local:');
    const limit = charged ? { principalId: acting, limits: nested(m, principals.executionLimits(acting)) } : undefined;
    // A WebAssembly agent reads the message itself (wasmMessage), a remote A2A agent its content;
    // a model reads it rendered as a prompt.
    const wasm = receiver.definition.wasm !== undefined;
    const remote = remoteA2aUrl(receiver.definition) !== undefined;
    const raw = wasm || remote;
    const historyLimit = receiver.definition.conversation.history_limit;
    const earlier = historyLimit > 0 && !raw ? await history(m.conversation_id, historyLimit + 1) : [];
    const text = raw ? contentText(m.content) : '';
    // A step whose answer is a value (a cfp, a query-ref) is answered through typed acts (acts.ts).
    const acts = raw ? [] : actsFor(m, receiver.definition);
    const res = await executor.invoke(
      receiver.agent,
      {
        request: raw
          ? text === ''
            ? m.performative
            : text
          : renderMessagePrompt(m, receiver.agent, earlier, acts.length > 0),
        ...(acts.length > 0 && { acts }),
        ...(wasm && { message: wasmMessage(m) }),
        conversation_id: m.conversation_id,
        ...(m.capability !== undefined && { capability: m.capability }),
        chain: [...m.chain],
        ...(acting !== undefined && { principal: acting }),
        message_id: m.id,
        // The delivery's span when tracing records, else the message's own context passed through.
        ...((traceparent ?? m.trace_context?.traceparent) !== undefined && {
          traceparent: traceparent ?? m.trace_context!.traceparent,
        }),
      },
      { signal, ...(limit && { limit }), ...(delivery.firstTry === true && { firstDelivery: true }) },
    );
    if (remote) return remoteAnswer(res.content, m.performative);
    const typed = answerFromActs(receiver.agent, res.pending_tool_calls ?? [], acts, receiver.definition);
    // No act called: the provider does not follow tool_choice (the scripted one), so its text is read.
    return typed ?? parseAnswer(res.content, m.performative);
  };
}

/**
 * A remote A2A agent's answer: its runner says a failure or a question back (the task failed, or
 * needs input) as `{"a2a_reply": "failure" | "query-ref", "content": ...}`; any other answer is
 * read as a model's is (an inform to a request, a propose to a cfp).
 */
function remoteAnswer(content: string, incoming: AclMessage['performative']): AgentAnswer {
  if (content.startsWith('{"a2a_reply":')) {
    try {
      const o = JSON.parse(content) as { a2a_reply?: unknown; content?: unknown };
      if (o.a2a_reply === 'failure' || o.a2a_reply === 'query-ref')
        return { performative: o.a2a_reply, content: typeof o.content === 'string' ? o.content : '' };
    } catch {
      /* an answer that only looks like one */
    }
  }
  return parseAnswer(content, incoming);
}

/**
 * The limits of a delivery caused by an agent's send (its chain is not empty): it is part of the
 * execution that sent it, which holds the principal's concurrency slot, so it takes none of its
 * own — under `concurrent_executions = 1` an agent waiting for a reply would otherwise wait for
 * itself until its deadline. It still counts as running and its tokens are charged.
 */
function nested(m: AclMessage, limits: LimitSet | undefined): LimitSet | undefined {
  if (limits?.concurrent_executions === undefined || m.chain.length === 0) return limits;
  const { concurrent_executions: _, ...rest } = limits;
  return rest;
}

/** The message as a WebAssembly agent's module receives it: its acts and parameters, as plain data. */
function wasmMessage(m: AclMessage): InvokeMessage {
  return {
    id: m.id,
    performative: m.performative,
    sender: m.sender,
    content: m.content,
    conversation_id: m.conversation_id,
    ...(m.protocol !== undefined && { protocol: m.protocol }),
    params: { ...m.params },
    ...(m.ontology !== undefined && { ontology: m.ontology }),
    ...(m.language !== undefined && { language: m.language }),
    ...(m.reply_by !== undefined && { reply_by: m.reply_by }),
    ...(m.in_reply_to !== undefined && { in_reply_to: m.in_reply_to }),
  };
}
