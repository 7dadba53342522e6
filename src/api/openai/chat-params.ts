import { z } from 'zod';
import type { InvokeRequest } from '../../execution/index.js';
import type { ToolChoice, ToolSpec } from '../../llm/index.js';
import { MAX_INPUT_DEPTH, valueDepth } from '../../shared/depth.js';
import { CaxtonError } from '../../shared/errors.js';
import { MAX_SCHEMA_CHARS } from './structured-output.js';

/**
 * What /v1/chat/completions does with each request parameter (docs/openai.md lists the same):
 * honoured, accepted and ignored because ignoring it changes nothing the caller can observe, or
 * refused with 400 unsupported_parameter / unsupported_value naming it. Never a silent drop.
 */

// Each schema is built on its first use (a request, or the OpenAPI document), so a start registers
// the route without constructing them.
// `refusal: null` beside a text part's text is what the OpenAI Agents SDK echoes back in history.
const textPart = z.lazy(() =>
  z.object({ type: z.string(), text: z.string().optional(), refusal: z.string().nullable().optional() }).loose(),
);
const contentSchema = z.lazy(() => z.union([z.string(), z.array(textPart), z.null()]));

const responseFormatSchema = z.lazy(() =>
  z.discriminatedUnion('type', [
    z.object({ type: z.literal('text') }),
    z.object({ type: z.literal('json_object') }),
    z.object({
      type: z.literal('json_schema'),
      json_schema: z.object({
        name: z.string().min(1).max(64),
        description: z.string().optional(),
        schema: z.record(z.string(), z.unknown()).optional(),
        strict: z.boolean().nullable().optional(),
      }),
    }),
  ]),
);

/** At most this many client-defined tools per request (OpenAI's own limit is 128). */
export const MAX_CLIENT_TOOLS = 128;

/** A tool call as the client echoes it back in an assistant message. */
const messageToolCallSchema = z.lazy(() =>
  z
    .object({
      id: z.string().min(1).max(256),
      type: z.literal('function'),
      function: z.object({ name: z.string().min(1).max(64), arguments: z.string().max(1024 * 1024) }).loose(),
    })
    .loose(),
);

export const chatMessageSchema = z.lazy(() =>
  z
    .object({
      role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
      content: contentSchema.optional(),
      name: z.string().max(256).optional(),
      tool_calls: z.array(messageToolCallSchema).max(MAX_CLIENT_TOOLS).nullable().optional(),
      tool_call_id: z.string().min(1).max(256).optional(),
      refusal: z.string().nullable().optional(),
      audio: z.object({ id: z.string().optional(), transcript: z.string().optional() }).loose().nullable().optional(),
    })
    .loose(),
);

/** One chat message of the request, as validated (OpenAI's ChatCompletionMessageParam, text only). */
export type ChatMessageParam = z.infer<typeof chatMessageSchema>;

const functionToolSchema = z.lazy(() =>
  z.object({
    type: z.literal('function'),
    function: z
      .object({
        name: z
          .string()
          .regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'a tool name is 1 to 64 letters, digits, underscores or dashes' }),
        description: z
          .string()
          .max(16 * 1024)
          .optional(),
        parameters: z.record(z.string(), z.unknown()).optional(),
        strict: z.boolean().nullable().optional(),
      })
      .loose(),
  }),
);

const toolChoiceSchema = z.lazy(() =>
  z.union([
    z.enum(['auto', 'none', 'required']),
    z.object({ type: z.literal('function'), function: z.object({ name: z.string().min(1).max(64) }) }),
  ]),
);

export const chatCompletionBody = z.lazy(() =>
  z
    .object({
      model: z.string().min(1).describe('the agent name'),
      messages: z.array(chatMessageSchema).min(1),
      tools: z.array(functionToolSchema).max(MAX_CLIENT_TOOLS).nullable().optional(),
      tool_choice: toolChoiceSchema.nullable().optional(),
      parallel_tool_calls: z.boolean().nullable().optional(),
      stream: z.boolean().nullable().optional(),
      stream_options: z.object({ include_usage: z.boolean().optional() }).loose().nullable().optional(),
      temperature: z.number().min(0).max(2).nullable().optional(),
      top_p: z.number().min(0).max(1).nullable().optional(),
      max_tokens: z.number().int().min(1).nullable().optional(),
      max_completion_tokens: z.number().int().min(1).nullable().optional(),
      stop: z
        .union([z.string(), z.array(z.string()).max(4)])
        .nullable()
        .optional(),
      response_format: responseFormatSchema.optional(),
      user: z.string().optional(),
    })
    .loose(),
);

export type ChatCompletionBody = z.infer<typeof chatCompletionBody>;

/** Honoured (see toInvoke), or checked to hold a value that asks for nothing (below). */
const HANDLED = new Set([
  'model',
  'messages',
  'stream',
  'stream_options',
  'temperature',
  'top_p',
  'max_tokens',
  'max_completion_tokens',
  'stop',
  'response_format',
  'n',
  'logprobs',
  'top_logprobs',
  'frequency_penalty',
  'presence_penalty',
  'logit_bias',
  'modalities',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
]);

/**
 * Accepted and ignored: they label, store or route the request at OpenAI and change nothing in
 * the reply (`seed` is a best-effort hint there too; Caxton's providers are not asked for it).
 */
export const IGNORED_PARAMETERS = [
  'user',
  'metadata',
  'store',
  'service_tier',
  'seed',
  'prompt_cache_key',
  'safety_identifier',
] as const;

/** Refused whatever their value, with the reason given to the caller. */
const REFUSED: Record<string, string> = {
  functions: 'the deprecated function-calling parameters are not supported; send tools instead',
  function_call: 'the deprecated function-calling parameters are not supported; send tool_choice instead',
  audio: 'audio output is not supported',
  prediction: 'predicted outputs are not supported',
  web_search_options: 'web search is not supported; give the agent a tool instead',
  reasoning_effort: "the agent's model settings are fixed by its definition",
  verbosity: "the agent's model settings are fixed by its definition",
};

const MESSAGE_KEYS = new Set(['role', 'content', 'name', 'refusal', 'tool_calls', 'function_call', 'tool_call_id']);

/**
 * Fields of an assistant message as OpenAI returns it, so that a client (the `openai` SDK's
 * create(), finalChatCompletion(), parse()) can send its message objects back as they are:
 * `annotations` (citations of OpenAI's web search) and `parsed` (the SDK's own parse of the
 * content) say nothing the content does not; `audio` is read as text (assistantText).
 */
const ASSISTANT_KEYS = new Set(['annotations', 'parsed', 'audio']);

function unsupported(param: string, message: string): CaxtonError {
  return new CaxtonError(
    'unsupported_parameter',
    `${param} is not supported by Caxton's OpenAI-compatible endpoint: ${message}`,
    { param },
  );
}

function invalid(param: string, message: string): CaxtonError {
  return new CaxtonError('invalid_request', `${param}: ${message}`, { param });
}

function unsupportedValue(param: string, message: string): CaxtonError {
  return new CaxtonError('unsupported_value', `${param}: ${message}`, { param });
}

const absent = (v: unknown): boolean => v === undefined || v === null;

/** Throws 400 for the first parameter the request uses that Caxton would otherwise ignore. */
export function assertSupported(body: Record<string, unknown>): void {
  for (const key of Object.keys(body)) {
    if (HANDLED.has(key) || (IGNORED_PARAMETERS as readonly string[]).includes(key)) continue;
    if (Object.hasOwn(REFUSED, key)) throw unsupported(key, REFUSED[key]!);
    throw unsupported(key, 'unknown parameter; see docs/openai.md for the parameters Caxton honours and ignores');
  }
  if (!absent(body.n) && body.n !== 1) throw unsupportedValue('n', 'only one choice per request is supported (n = 1)');
  if (!absent(body.logprobs) && body.logprobs !== false)
    throw unsupported('logprobs', 'log probabilities are not returned');
  if (!absent(body.top_logprobs)) throw unsupported('top_logprobs', 'log probabilities are not returned');
  for (const k of ['frequency_penalty', 'presence_penalty'] as const) {
    if (!absent(body[k]) && body[k] !== 0)
      throw unsupported(k, 'penalties are not passed to the model; omit it or send 0');
  }
  if (!absent(body.logit_bias) && Object.keys(body.logit_bias as object).length > 0)
    throw unsupported('logit_bias', 'logit bias is not passed to the model');
  if (!absent(body.modalities) && !(Array.isArray(body.modalities) && body.modalities.every((m) => m === 'text'))) {
    throw unsupportedValue('modalities', 'only text output is supported (modalities = ["text"])');
  }
  const messages = body.messages as Record<string, unknown>[];
  messages.forEach((m, i) => {
    const at = `messages[${i}]`;
    const assistant = m.role === 'assistant';
    for (const key of Object.keys(m))
      if (!MESSAGE_KEYS.has(key) && !(assistant && ASSISTANT_KEYS.has(key)))
        throw unsupported(`${at}.${key}`, 'unknown message field');
    if (!absent(m.function_call))
      throw unsupported(
        `${at}.function_call`,
        'the deprecated function-calling fields are not supported; use tool_calls',
      );
    const audio = m.audio as { transcript?: unknown } | null | undefined;
    if (
      !absent(audio) &&
      typeof audio!.transcript !== 'string' &&
      textOf(m.content as ChatMessageParam['content']) === ''
    ) {
      throw unsupported(
        `${at}.audio`,
        "an earlier audio reply reaches the model only as text: send its transcript as the message's content",
      );
    }
    if (m.role === 'tool' && absent(m.tool_call_id))
      throw invalid(`${at}.tool_call_id`, 'a tool message needs the tool_call_id of the call it answers');
    if (!absent(m.tool_calls) && m.role !== 'assistant')
      throw invalid(`${at}.tool_calls`, 'only assistant messages carry tool_calls');
    if (Array.isArray(m.content)) {
      (m.content as { type: string }[]).forEach((p, j) => {
        if (p.type !== 'text' && !(assistant && p.type === 'refusal'))
          throw unsupportedValue(
            `${at}.content[${j}].type`,
            `content parts of type "${p.type}" are not supported; only "text" parts are (and "refusal" parts in assistant messages)`,
          );
      });
    }
  });
}

export function textOf(c: z.infer<typeof contentSchema> | undefined): string {
  if (c === undefined || c === null) return '';
  if (typeof c === 'string') return c;
  return c.map((p) => p.text ?? p.refusal ?? '').join('');
}

/**
 * What an assistant message said, as the model reads it back: its content; when that is empty,
 * its refusal (OpenAI returns a refusal beside a null content) or the transcript of its audio.
 */
export function assistantText(m: ChatMessageParam): string {
  const text = textOf(m.content);
  if (text !== '') return text;
  if (typeof m.refusal === 'string' && m.refusal !== '') return m.refusal;
  return m.audio?.transcript ?? '';
}

/**
 * The request's own tools as the model is offered them, bounded: unique names, and parameter
 * schemas no larger than a structured-output schema and no deeper than any input (they are
 * walked by the provider clients and by JSON.stringify).
 */
export function clientTools(body: ChatCompletionBody): ToolSpec[] {
  const seen = new Set<string>();
  return (body.tools ?? []).map((t, i) => {
    const at = `tools[${i}].function`;
    const f = t.function;
    if (seen.has(f.name)) throw invalid(`${at}.name`, `"${f.name}" is defined twice; tool names must be unique`);
    seen.add(f.name);
    const params = f.parameters ?? { type: 'object', properties: {} };
    if (valueDepth(params, MAX_INPUT_DEPTH) > MAX_INPUT_DEPTH)
      throw invalid(`${at}.parameters`, `nested more than ${MAX_INPUT_DEPTH} levels deep; flatten the schema`);
    if (JSON.stringify(params).length > MAX_SCHEMA_CHARS)
      throw invalid(`${at}.parameters`, `larger than ${MAX_SCHEMA_CHARS / 1024} KiB; shorten the schema`);
    return {
      name: f.name,
      description: f.description ?? '',
      input_schema: params,
      ...(typeof f.strict === 'boolean' && { strict: f.strict }),
    };
  });
}

/**
 * The invoke fields a chat completion sets besides its messages (those are chat-messages.ts's):
 * sampling, reply format, client tools, tool_choice, parallel_tool_calls.
 */
export function bodyToInvoke(body: ChatCompletionBody): Omit<InvokeRequest, 'request'> {
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  const stop = typeof body.stop === 'string' ? [body.stop] : body.stop;
  const sampling = {
    ...(!absent(body.temperature) && { temperature: body.temperature! }),
    ...(!absent(body.top_p) && { top_p: body.top_p! }),
    ...(!absent(maxTokens) && { max_tokens: maxTokens! }),
    ...(!absent(stop) && stop!.length > 0 && { stop: stop! }),
  };
  const format = body.response_format;
  const tools = clientTools(body);
  const choice: ToolChoice | undefined = absent(body.tool_choice)
    ? undefined
    : typeof body.tool_choice === 'string'
      ? body.tool_choice
      : { name: body.tool_choice!.function.name };
  return {
    ...(Object.keys(sampling).length > 0 && { sampling }),
    ...(format !== undefined && format.type !== 'text' && { response_format: format }),
    ...(tools.length > 0 && { client_tools: tools }),
    ...(choice !== undefined && { tool_choice: choice }),
    ...(!absent(body.parallel_tool_calls) && { parallel_tool_calls: body.parallel_tool_calls! }),
  };
}
