import type { InvokeRequest, SuspendedExecution, SuspendedExecutionStore } from '../../execution/index.js';
import type { ResponseFormat, ToolChoice } from '../../llm/index.js';
import { CaxtonError } from '../../shared/errors.js';
import type { TranscriptMessage } from './response-store.js';
import { chatMessagesToInvoke } from './chat-messages.js';
import { clientTools, type ChatCompletionBody, type ChatMessageParam } from './chat-params.js';
import type { ResponsesBody } from './responses-params.js';

/**
 * A Responses request as the InvokeRequest the execution runs, through the same functions as chat
 * completions: its messages (instructions, the previous response's conversation, the input items
 * as chat messages) through chatMessagesToInvoke — which also resumes a suspended execution whose
 * pending calls the input's function outputs answer — and its tools through clientTools. Their
 * errors name chat completions' fields (`messages[3].tool_call_id`); they are renamed here to the
 * field of the Responses request they came from (`input[2].call_id`).
 */

/** `text.format` as the execution's ResponseFormat (chat completions' shape). */
export function formatOf(body: ResponsesBody): ResponseFormat | undefined {
  const f = body.text?.format;
  if (f === undefined || f.type === 'text') return undefined;
  if (f.type === 'json_object') return f;
  return {
    type: 'json_schema',
    json_schema: {
      name: f.name,
      schema: f.schema,
      ...(f.description !== undefined && { description: f.description }),
      ...(f.strict !== undefined && { strict: f.strict }),
    },
  };
}

/**
 * Where a chat message came from: `instructions`, `previous_response_id` (the stored
 * conversation), or input items — for an assistant message, its text item's index first, then
 * one per tool call (itemsToMessages' `sources`).
 */
export type MessageSource = 'instructions' | 'previous_response_id' | number[];

/** A chat-completions param (`messages[i]…`, `tools[i].function.x`) as the Responses request's own. */
export function responsesParam(param: string, sources: MessageSource[]): string {
  if (param === 'messages') return 'input';
  const tool = /^tools\[(\d+)\]\.function\.(.+)$/.exec(param);
  if (tool) return `tools[${tool[1]}].${tool[2]}`;
  if (param === 'tool_choice.function.name') return 'tool_choice.name';
  const m = /^messages\[(\d+)\](.*)$/.exec(param);
  if (!m) return param;
  const src = sources[Number(m[1])];
  if (src === undefined) return 'input';
  if (typeof src === 'string') return src;
  const rest = m[2]!;
  const call = /^\.tool_calls\[(\d+)\]\.function\.(name|arguments)$/.exec(rest);
  if (call) return `input[${src[Number(call[1]) + 1] ?? src[0]}].${call[2]}`;
  if (rest === '.tool_call_id' || rest === '.name') return `input[${src[0]}].call_id`;
  if (rest === '.tool_calls') return `input[${src[1] ?? src[0]}]`;
  return `input[${src[0]}]${rest}`;
}

/** The error with its param (and the param's mention in its message) in the Responses request's terms. */
export function withResponsesParam(e: unknown, sources: MessageSource[] = []): unknown {
  if (!(e instanceof CaxtonError)) return e;
  const d = e.details as { param?: unknown; field?: unknown } | undefined;
  const given = typeof d?.param === 'string' ? d.param : typeof d?.field === 'string' ? d.field : undefined;
  if (given === undefined) return e;
  const param = responsesParam(given, sources);
  if (param === given) return e;
  const { field: _field, ...rest } = d!;
  return new CaxtonError(e.code, e.message.replace(given, param), { ...rest, param });
}

export interface ResponsesInvoke {
  invoke: InvokeRequest;
  resumed?: SuspendedExecution;
}

export async function responsesToInvoke(
  messages: TranscriptMessage[],
  sources: MessageSource[],
  body: ResponsesBody,
  opts: {
    userTemplate: string;
    principal: string | null;
    store?: SuspendedExecutionStore | undefined;
    resume?: SuspendedExecution | undefined;
  },
): Promise<ResponsesInvoke> {
  try {
    // The flat Responses tools in chat completions' shape, so that they are bounded and checked alike.
    const chatTools = (body.tools ?? []).map((t) => ({
      type: 'function' as const,
      function: { ...t, type: undefined },
    }));
    const tools = clientTools({ tools: chatTools } as unknown as ChatCompletionBody);
    const { invoke, resumed } = await chatMessagesToInvoke(messages as ChatMessageParam[], {
      agent: body.model,
      userTemplate: opts.userTemplate,
      toolNames: new Set(tools.map((t) => t.name)),
      principal: opts.principal ?? undefined,
      store: opts.store,
      resume: opts.resume,
    });
    const sampling = {
      ...(typeof body.temperature === 'number' && { temperature: body.temperature }),
      ...(typeof body.top_p === 'number' && { top_p: body.top_p }),
      ...(typeof body.max_output_tokens === 'number' && { max_tokens: body.max_output_tokens }),
    };
    const format = formatOf(body);
    const c = body.tool_choice;
    const choice: ToolChoice | undefined =
      c === undefined || c === null ? undefined : typeof c === 'string' ? c : { name: c.name ?? '' };
    return {
      invoke: {
        ...invoke,
        ...(Object.keys(sampling).length > 0 && { sampling }),
        ...(format !== undefined && { response_format: format }),
        ...(tools.length > 0 && { client_tools: tools }),
        ...(tools.length > 0 && choice !== undefined && { tool_choice: choice }),
        ...(tools.length > 0 &&
          typeof body.parallel_tool_calls === 'boolean' && { parallel_tool_calls: body.parallel_tool_calls }),
      },
      ...(resumed && { resumed }),
    };
  } catch (e) {
    throw withResponsesParam(e, sources);
  }
}
