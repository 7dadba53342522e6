import { z } from 'zod';
import type { InvokeRequest } from '../../execution/index.js';
import { CaxtonError } from '../../shared/errors.js';

/**
 * What /v1/chat/completions does with each request parameter (docs/openai.md lists the same):
 * honoured, accepted and ignored because ignoring it changes nothing the caller can observe, or
 * refused with 400 unsupported_parameter / unsupported_value naming it. Never a silent drop.
 */

const textPart = z.object({ type: z.string(), text: z.string().optional() }).loose();
const contentSchema = z.union([z.string(), z.array(textPart), z.null()]);

const responseFormatSchema = z.discriminatedUnion('type', [
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
]);

export const chatCompletionBody = z
  .object({
    model: z.string().min(1).describe('the agent name'),
    messages: z.array(z.object({ role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']), content: contentSchema.optional() }).loose()).min(1),
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
  .loose();

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
export const IGNORED_PARAMETERS = ['user', 'metadata', 'store', 'service_tier', 'seed', 'prompt_cache_key', 'safety_identifier'] as const;

/** Refused whatever their value, with the reason given to the caller. */
const REFUSED: Record<string, string> = {
  functions: 'function calling by clients is not supported yet; the agent uses its own tools',
  function_call: 'function calling by clients is not supported yet; the agent uses its own tools',
  audio: 'audio output is not supported',
  prediction: 'predicted outputs are not supported',
  web_search_options: 'web search is not supported; give the agent a tool instead',
  reasoning_effort: "the agent's model settings are fixed by its definition",
  verbosity: "the agent's model settings are fixed by its definition",
};

const MESSAGE_KEYS = new Set(['role', 'content', 'name', 'refusal', 'tool_calls', 'function_call', 'tool_call_id']);

function unsupported(param: string, message: string): CaxtonError {
  return new CaxtonError('unsupported_parameter', `${param} is not supported by Caxton's OpenAI-compatible endpoint: ${message}`, { param });
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
  if (!absent(body.logprobs) && body.logprobs !== false) throw unsupported('logprobs', 'log probabilities are not returned');
  if (!absent(body.top_logprobs)) throw unsupported('top_logprobs', 'log probabilities are not returned');
  for (const k of ['frequency_penalty', 'presence_penalty'] as const) {
    if (!absent(body[k]) && body[k] !== 0) throw unsupported(k, 'penalties are not passed to the model; omit it or send 0');
  }
  if (!absent(body.logit_bias) && Object.keys(body.logit_bias as object).length > 0) throw unsupported('logit_bias', 'logit bias is not passed to the model');
  if (!absent(body.modalities) && !(Array.isArray(body.modalities) && body.modalities.every((m) => m === 'text'))) {
    throw unsupportedValue('modalities', 'only text output is supported (modalities = ["text"])');
  }
  if (Array.isArray(body.tools) ? body.tools.length > 0 : !absent(body.tools)) {
    throw unsupported('tools', "client-defined tools are not supported yet; the agent's own tools run inside Caxton");
  }
  if (!absent(body.tool_choice) && body.tool_choice !== 'none' && body.tool_choice !== 'auto') {
    throw unsupportedValue('tool_choice', 'client-defined tools are not supported yet, so only "auto" and "none" are accepted');
  }
  const messages = body.messages as Record<string, unknown>[];
  messages.forEach((m, i) => {
    const at = `messages[${i}]`;
    if (m.role === 'tool') throw unsupported(`${at}.role`, 'tool messages answer client-defined tools, which are not supported yet');
    for (const key of Object.keys(m)) if (!MESSAGE_KEYS.has(key)) throw unsupported(`${at}.${key}`, 'unknown message field');
    if (Array.isArray(m.tool_calls) ? m.tool_calls.length > 0 : !absent(m.tool_calls)) throw unsupported(`${at}.tool_calls`, 'client-defined tools are not supported yet');
    if (!absent(m.function_call)) throw unsupported(`${at}.function_call`, 'function calling by clients is not supported yet');
    if (!absent(m.tool_call_id)) throw unsupported(`${at}.tool_call_id`, 'tool messages are not supported yet');
    if (Array.isArray(m.content)) {
      (m.content as { type: string }[]).forEach((p, j) => {
        if (p.type !== 'text') throw unsupportedValue(`${at}.content[${j}].type`, `content parts of type "${p.type}" are not supported; only "text" parts are`);
      });
    }
  });
}

function textOf(c: z.infer<typeof contentSchema> | undefined): string {
  if (c === undefined || c === null) return '';
  if (typeof c === 'string') return c;
  return c.map((p) => p.text ?? '').join('');
}

/** `{{context}}` in the agent's user template: the agent asked for the caller's system messages there. */
const CONTEXT_RE = /\{\{\s*context\s*\}\}/;

/**
 * The invoke request for a (supported) chat completion. Client system/developer messages become
 * a system message after the agent's own, unless the agent's user template names `{{context}}`:
 * then they fill it, as before. Earlier user/assistant turns become history.
 */
export function toInvoke(body: ChatCompletionBody, userTemplate: string): InvokeRequest {
  const system = body.messages.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => textOf(m.content));
  const turns = body.messages.filter((m) => m.role === 'user' || m.role === 'assistant');
  const lastUser = turns.map((m) => m.role).lastIndexOf('user');
  if (lastUser < 0) throw new CaxtonError('invalid_request', 'messages must contain a user message', { field: 'messages' });
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  const stop = typeof body.stop === 'string' ? [body.stop] : body.stop;
  const sampling = {
    ...(!absent(body.temperature) && { temperature: body.temperature! }),
    ...(!absent(body.top_p) && { top_p: body.top_p! }),
    ...(!absent(maxTokens) && { max_tokens: maxTokens! }),
    ...(!absent(stop) && stop!.length > 0 && { stop: stop! }),
  };
  const format = body.response_format;
  return {
    request: textOf(turns[lastUser]!.content),
    ...(system.length > 0 && (CONTEXT_RE.test(userTemplate) ? { context: system.join('\n\n') } : { instructions: system })),
    history: turns.slice(0, lastUser).map((m) => ({ role: m.role as 'user' | 'assistant', content: textOf(m.content) })),
    ...(Object.keys(sampling).length > 0 && { sampling }),
    ...(format !== undefined && format.type !== 'text' && { response_format: format }),
  };
}
