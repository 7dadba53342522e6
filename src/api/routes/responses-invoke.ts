import type { HistoryMessage, InvokeRequest } from '../../execution/index.js';
import type { ResponseFormat, ToolCall, ToolChoice, ToolSpec } from '../../llm/index.js';
import { CaxtonError } from '../../shared/errors.js';
import type { TranscriptMessage } from '../response-store.js';
import { functionToolSchema, type ResponsesBody } from './responses-params.js';

/**
 * A Responses request as the InvokeRequest the execution runs — the same mapping as chat
 * completions (openai-params.ts): system/developer messages (and `instructions`) become the
 * client's instructions after the agent's system prompt (or `{{context}}` when the agent's
 * template names it), the last user message is the request, earlier turns the history, and what
 * follows it (function calls and their outputs: a tool loop's follow-up) the continuation.
 */

/** `{{context}}` in the agent's user template: the agent asked for the caller's system messages there. */
const CONTEXT_RE = /\{\{\s*context\s*\}\}/;

/** `text.format` as the execution's ResponseFormat (chat completions' shape). */
export function formatOf(body: ResponsesBody): ResponseFormat | undefined {
  const f = body.text?.format;
  if (f === undefined || f.type === 'text') return undefined;
  if (f.type === 'json_object') return f;
  return {
    type: 'json_schema',
    json_schema: { name: f.name, schema: f.schema, ...(f.description !== undefined && { description: f.description }), ...(f.strict !== undefined && { strict: f.strict }) },
  };
}

/** The request's function tools, tool_choice and parallel_tool_calls as the execution's client tools. */
export function clientToolsOf(body: ResponsesBody): Pick<InvokeRequest, 'client_tools' | 'tool_choice' | 'parallel_tool_calls'> {
  const tools: ToolSpec[] = (body.tools ?? []).map((t) => {
    const f = functionToolSchema.parse(t); // checked by assertResponsesSupported
    return {
      name: f.name,
      description: f.description ?? '',
      input_schema: f.parameters ?? { type: 'object', properties: {} },
      ...(f.strict !== undefined && f.strict !== null && { strict: f.strict }),
    };
  });
  const c = body.tool_choice;
  const choice: ToolChoice | undefined = c === undefined || c === null ? undefined : typeof c === 'string' ? c : { name: c.name ?? '' };
  return {
    ...(tools.length > 0 && { client_tools: tools }),
    ...(tools.length > 0 && choice !== undefined && { tool_choice: choice }),
    ...(tools.length > 0 && typeof body.parallel_tool_calls === 'boolean' && { parallel_tool_calls: body.parallel_tool_calls }),
  };
}

/** A function call's arguments as the object the execution carries; anything else is the caller's 400. */
function argumentsOf(call: { id: string; function: { name: string; arguments: string } }): Record<string, unknown> {
  let v: unknown;
  try {
    v = call.function.arguments.trim() === '' ? {} : JSON.parse(call.function.arguments);
  } catch {
    v = undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new CaxtonError('invalid_request', `the arguments of the function_call with call_id "${call.id.slice(0, 200)}" are not a JSON object`, { param: 'input' });
  }
  return v as Record<string, unknown>;
}

/**
 * Chat messages as the execution's history messages; a tool output names the call it answers,
 * found among the messages before it or in `calls` (the calls of a resumed execution).
 */
export function toHistory(messages: TranscriptMessage[], calls: ToolCall[] = []): HistoryMessage[] {
  const names = new Map<string, string>(calls.map((c) => [c.id, c.name]));
  return messages.map((m): HistoryMessage => {
    if (m.role === 'assistant') {
      const own: ToolCall[] = (m.tool_calls ?? []).map((c) => ({ id: c.id, name: c.function.name, arguments: argumentsOf(c) }));
      for (const c of own) names.set(c.id, c.name);
      return { role: 'assistant', content: m.content ?? '', ...(own.length > 0 && { tool_calls: own }) };
    }
    if (m.role === 'tool') {
      const name = names.get(m.tool_call_id);
      if (name === undefined) {
        throw new CaxtonError('invalid_request', `no function_call with call_id "${m.tool_call_id.slice(0, 200)}" comes before its function_call_output`, { param: 'input' });
      }
      return { role: 'tool', tool_call_id: m.tool_call_id, name, content: m.content };
    }
    return { role: 'user', content: m.content };
  });
}

export function toInvokeRequest(messages: TranscriptMessage[], body: ResponsesBody, userTemplate: string): InvokeRequest {
  const system = messages.flatMap((m) => (m.role === 'system' || m.role === 'developer' ? [m.content] : []));
  const turns = toHistory(messages.filter((m) => m.role !== 'system' && m.role !== 'developer'));
  const lastUser = turns.map((m) => m.role).lastIndexOf('user');
  if (lastUser < 0) throw new CaxtonError('invalid_request', 'input must contain a user message (here or in the previous response)', { param: 'input' });
  const sampling = {
    ...(typeof body.temperature === 'number' && { temperature: body.temperature }),
    ...(typeof body.top_p === 'number' && { top_p: body.top_p }),
    ...(typeof body.max_output_tokens === 'number' && { max_tokens: body.max_output_tokens }),
  };
  const format = formatOf(body);
  const continuation = turns.slice(lastUser + 1);
  return {
    request: turns[lastUser]!.content,
    ...(system.length > 0 && (CONTEXT_RE.test(userTemplate) ? { context: system.join('\n\n') } : { instructions: system })),
    history: turns.slice(0, lastUser),
    ...(continuation.length > 0 && { continuation }),
    ...(Object.keys(sampling).length > 0 && { sampling }),
    ...(format !== undefined && { response_format: format }),
    ...clientToolsOf(body),
  };
}
