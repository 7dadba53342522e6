import type {
  HistoryMessage,
  InvokeRequest,
  SuspendedExecution,
  SuspendedExecutionStore,
} from '../../execution/index.js';
import type { ToolCall } from '../../llm/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { assistantText, textOf, type ChatMessageParam } from './chat-params.js';

/**
 * OpenAI chat messages → the invoke request's message fields (instructions or context, history,
 * request, continuation, transcript). One function for every OpenAI-shaped API: chat completions
 * call it with their `messages`; the Responses API with its input items translated to chat messages.
 *
 * A tool loop's follow-up (tool results after the last user message) resumes the suspended
 * execution its calls belong to when the store still holds it, the caller is the principal that
 * started it and the model is the same agent: the model then sees exactly what it saw before,
 * the server-side tool results the client never saw included (ADR 0029). Otherwise the
 * conversation is rebuilt from the messages sent (stateless fallback).
 *
 * Answered tool calls in the conversation may name tools this request does not offer: a handoff
 * (the OpenAI Agents SDK's transfer_to_B, answered, then B's request without that tool) or a tool
 * dropped between turns is history the model reads, as OpenAI's API accepts it. Only the
 * request's own `tools` are offered to the model; an unanswered call is refused whatever it names.
 */

/** `{{context}}` in the agent's user template: the agent asked for the caller's system messages there. */
const CONTEXT_RE = /\{\{\s*context\s*\}\}/;

export interface ChatToInvokeOptions {
  /** The agent (model) asked for: a suspended execution of another agent is not resumed. */
  agent: string;
  /** The agent's user_prompt_template (decides where system messages go). */
  userTemplate: string;
  /** The request's client tools: a suspended execution is resumed only by a request offering the tools of its pending calls (continues). */
  toolNames: ReadonlySet<string>;
  /** The caller (Principal.id); only the principal that started an execution resumes it. */
  principal?: string | undefined;
  /** Absent: every follow-up is rebuilt from its messages. */
  store?: SuspendedExecutionStore | undefined;
  /**
   * Continue this stored execution (the Responses API's `previous_response_id`; the caller has
   * checked its agent and principal): `messages` are then only what came after it — tool results
   * for its pending calls, new user turns — and are all appended to its transcript as they are
   * (system messages are refused: the transcript keeps the prompts it started with).
   */
  resume?: SuspendedExecution | undefined;
}

export interface ChatInvoke {
  invoke: Pick<InvokeRequest, 'request' | 'context' | 'instructions' | 'history' | 'continuation' | 'transcript'>;
  /** The suspended execution this request resumes: delete it from the store once the resumed execution succeeded. */
  resumed?: SuspendedExecution;
}

function invalid(param: string, message: string, details: Record<string, unknown> = {}): CaxtonError {
  return new CaxtonError('invalid_request', `${param}: ${message}`, { param, ...details });
}

/** The tool calls of assistant message `i`, their arguments parsed (a JSON object, as the model produced it). */
function callsOf(m: ChatMessageParam, i: number): ToolCall[] {
  return (m.tool_calls ?? []).map((c, j) => {
    const at = `messages[${i}].tool_calls[${j}]`;
    let args: unknown;
    try {
      args = c.function.arguments.trim() === '' ? {} : JSON.parse(c.function.arguments);
    } catch (e) {
      throw invalid(
        `${at}.function.arguments`,
        `not JSON (${(e as Error).message}); send the arguments string the model produced`,
      );
    }
    if (args === null || typeof args !== 'object' || Array.isArray(args))
      throw invalid(`${at}.function.arguments`, 'not a JSON object');
    return { id: c.id, name: c.function.name, arguments: args as Record<string, unknown> };
  });
}

function missingError(param: string, missing: ToolCall[]): CaxtonError {
  const list = missing.map((c) => `${c.id} (${c.name})`).join(', ');
  return invalid(
    param,
    `no tool message answers the tool call${missing.length > 1 ? 's' : ''} ${list}; send one {role: "tool", tool_call_id, content} per call`,
    {
      missing_tool_call_ids: missing.map((c) => c.id),
    },
  );
}

/** The pending client calls of a stored execution, by id (from its last assistant messages). */
function pendingCalls(s: SuspendedExecution): Map<string, ToolCall> {
  const pending = new Set(s.pending_call_ids);
  const out = new Map<string, ToolCall>();
  for (const m of s.transcript)
    if (m.role === 'assistant') for (const c of m.tool_calls ?? []) if (pending.has(c.id)) out.set(c.id, c);
  return out;
}

/**
 * Whether a follow-up offering `toolNames` continues stored execution `s`: only when it still
 * offers the tools of the calls it answers. One that does not has moved on — the Agents SDK's
 * handoff answers transfer_to_B in B's request, under B's instructions and tools — and is rebuilt
 * from its own messages, which a resumed execution would set aside for the prompts it started with.
 */
export function continues(s: SuspendedExecution, toolNames: ReadonlySet<string>): boolean {
  return [...pendingCalls(s).values()].every((c) => toolNames.has(c.name));
}

type KnownCalls = Map<string, { call: ToolCall; at: number; answered: boolean }>;

/** Checks each tool message against the calls it may answer (the request's, a stored execution's) and converts it in place. */
function convertToolMessages(
  messages: ChatMessageParam[],
  converted: (HistoryMessage | undefined)[],
  calls: KnownCalls,
  storedCalls: Map<string, ToolCall>,
): void {
  messages.forEach((m, i) => {
    if (m.role !== 'tool') return;
    const id = m.tool_call_id!;
    const known = calls.get(id);
    const call = known?.call ?? storedCalls.get(id);
    if (!call)
      throw invalid(
        `messages[${i}].tool_call_id`,
        `"${id}" answers no tool call: it is in no earlier assistant message's tool_calls and belongs to no open call`,
      );
    if (known && known.at > i)
      throw invalid(
        `messages[${i}].tool_call_id`,
        `"${id}" is answered before the assistant message that calls it (messages[${known.at}])`,
      );
    if (m.name !== undefined && m.name !== call.name)
      throw invalid(`messages[${i}].name`, `"${m.name}" is not the tool that call ${id} named ("${call.name}")`);
    if (known) known.answered = true;
    converted[i] = { role: 'tool', tool_call_id: id, name: call.name, content: textOf(m.content) };
  });
}

/** The conversion of assistant and user messages (tool messages are converted once every call is known). */
function convertTurns(messages: ChatMessageParam[], calls: KnownCalls): (HistoryMessage | undefined)[] {
  return messages.map((m, i) => {
    if (m.role === 'user') return { role: 'user', content: textOf(m.content) };
    if (m.role === 'assistant') {
      const tc = callsOf(m, i);
      for (const c of tc) calls.set(c.id, { call: c, at: i, answered: false });
      return { role: 'assistant', content: assistantText(m), ...(tc.length > 0 && { tool_calls: tc }) };
    }
    return undefined;
  });
}

/** `opts.resume`: every message is new since the stored transcript, and appended to it. */
function continueExecution(messages: ChatMessageParam[], stored: SuspendedExecution): ChatInvoke {
  messages.forEach((m, i) => {
    if (m.role === 'system' || m.role === 'developer')
      throw invalid(
        `messages[${i}].role`,
        'system and developer messages cannot be added to a continued execution: it keeps the instructions it started with',
      );
  });
  const calls: KnownCalls = new Map();
  const converted = convertTurns(messages, calls);
  const storedCalls = pendingCalls(stored);
  convertToolMessages(messages, converted, calls, storedCalls);
  const answered = new Set(messages.flatMap((m) => (m.role === 'tool' ? [m.tool_call_id!] : [])));
  const missing = [...storedCalls.values(), ...[...calls.values()].map((c) => c.call)].filter(
    (c) => !answered.has(c.id),
  );
  if (missing.length > 0) throw missingError('messages', missing);
  const users = [
    ...stored.transcript.filter((m) => m.role === 'user').map((m) => m.content),
    ...messages.filter((m) => m.role === 'user').map((m) => textOf(m.content)),
  ];
  const continuation = converted.filter((m): m is HistoryMessage => m !== undefined);
  // `request` names the latest user turn (for checks and memory); the model sees the transcript and continuation.
  return { invoke: { request: users.at(-1) ?? '', transcript: stored.transcript, continuation }, resumed: stored };
}

/**
 * The invoke request's message fields for OpenAI chat messages (see the top of this file), and
 * the suspended execution resumed, if any. Throws 400 `invalid_request` with `param` for tool
 * input that does not add up (results answering no call, calls without results).
 */
export async function chatMessagesToInvoke(
  messages: ChatMessageParam[],
  opts: ChatToInvokeOptions,
): Promise<ChatInvoke> {
  const system = messages.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => textOf(m.content));
  if (opts.resume) return continueExecution(messages, opts.resume);
  const lastUser = messages.map((m) => m.role).lastIndexOf('user');
  if (lastUser < 0)
    throw new CaxtonError('invalid_request', 'messages must contain a user message', { field: 'messages' });

  // Every call the request's assistant messages carry, with whether it is answered; system
  // messages were taken above, tool messages are converted below, once the calls are known.
  const calls: KnownCalls = new Map();
  const converted = convertTurns(messages, calls);

  // The follow-up's tool results may answer calls of a suspended execution whose assistant message
  // the request does not repeat (the Responses API sends results alone): look those up.
  const tail = messages.slice(lastUser + 1);
  let stored: SuspendedExecution | undefined;
  if (opts.store) {
    for (const m of tail) {
      if (m.role !== 'tool') continue;
      const s = await opts.store.findByCallId(m.tool_call_id!);
      // Another principal's or another agent's execution is not theirs to resume; to them it does
      // not exist (its existence is not revealed): their request is rebuilt from its own messages.
      if (s && s.agent === opts.agent && s.principal === opts.principal && continues(s, opts.toolNames)) stored = s;
      break;
    }
  }
  const storedCalls = stored ? pendingCalls(stored) : new Map<string, ToolCall>();
  convertToolMessages(messages, converted, calls, storedCalls);

  const placement =
    system.length > 0
      ? CONTEXT_RE.test(opts.userTemplate)
        ? { context: system.join('\n\n') }
        : { instructions: system }
      : {};
  const request = textOf(messages[lastUser]!.content);

  if (stored) {
    // Resume: the stored transcript, then what the client sent after its copy of the suspending
    // assistant message (or the whole tail, when it sent the results alone).
    const answered = new Set(tail.flatMap((m) => (m.role === 'tool' ? [m.tool_call_id!] : [])));
    const missing = [...storedCalls.values()].filter((c) => !answered.has(c.id));
    if (missing.length > 0) throw missingError('messages', missing);
    const pending = new Set(stored.pending_call_ids);
    const cut = tail.findLastIndex(
      (m) => m.role === 'assistant' && (m.tool_calls ?? []).some((c) => pending.has(c.id)),
    );
    const continuation = converted.slice(lastUser + 1 + cut + 1).filter((m): m is HistoryMessage => m !== undefined);
    return { invoke: { request, ...placement, transcript: stored.transcript, continuation }, resumed: stored };
  }

  const unanswered = [...calls.values()].filter((c) => !c.answered);
  if (unanswered.length > 0) {
    const at = unanswered[0]!.at;
    throw missingError(
      `messages[${at}].tool_calls`,
      unanswered.filter((c) => c.at === at).map((c) => c.call),
    );
  }
  const turns = (from: number, to: number) =>
    converted.slice(from, to).filter((m): m is HistoryMessage => m !== undefined);
  // After the last user message only a tool loop's turns count; a lone assistant message there
  // (a prefill) is not sent on: without a tool loop the conversation's turns end at the user.
  const continuation = tail.some((m) => m.role === 'tool') ? turns(lastUser + 1, messages.length) : [];
  return {
    invoke: { request, ...placement, history: turns(0, lastUser), ...(continuation.length > 0 && { continuation }) },
  };
}
