import { z } from 'zod';
import { CaxtonError } from '../../shared/errors.js';
import { describeIssue, innermostIssue, valueAtPath } from '../../shared/zod-issues.js';
import { IGNORED_PARAMETERS } from './chat-params.js';
import { onUse } from '../lazy-schemas.js';

/**
 * What POST /v1/responses does with each request parameter (docs/openai.md, "Responses", lists the
 * same): honoured, accepted because ignoring it changes nothing the caller can observe, or refused
 * with 400 unsupported_parameter / unsupported_value naming it. Input items are checked one by
 * one against the schemas below, so an error names the item and its field (`input[2].call_id`).
 */

/**
 * A content part of a message item; which types are usable is checked per item (below). A text
 * part may carry `refusal: null`, as clients echo an earlier output back.
 */
const contentPart = onUse(() =>
  z.object({ type: z.string(), text: z.string().optional(), refusal: z.string().nullable().optional() }).loose(),
);

// Strict: a field Caxton does not know inside `text` is refused, not dropped.
const formatSchema = onUse(() =>
  z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('text') }),
    z.strictObject({ type: z.literal('json_object') }),
    z.strictObject({
      type: z.literal('json_schema'),
      name: z.string().min(1).max(64),
      description: z.string().optional(),
      schema: z.record(z.string(), z.unknown()),
      strict: z.boolean().nullable().optional(),
    }),
  ]),
);

export const responsesBody = onUse(() =>
  z
    .object({
      model: z.string().min(1).describe('the agent name'),
      // Items are objects here and checked one by one (ITEM_SCHEMAS), so that errors name them.
      input: z.union([z.string(), z.array(z.record(z.string(), z.unknown()))]),
      instructions: z.string().nullable().optional(),
      previous_response_id: z.string().min(1).max(200).nullable().optional(),
      store: z.boolean().nullable().optional(),
      stream: z.boolean().nullable().optional(),
      stream_options: z.object({ include_obfuscation: z.boolean().optional() }).nullable().optional(),
      tools: z
        .array(z.object({ type: z.string() }).loose())
        .max(128)
        .optional(),
      tool_choice: z
        .union([
          z.enum(['none', 'auto', 'required']),
          z.object({ type: z.string(), name: z.string().optional() }).loose(),
        ])
        .nullable()
        .optional(),
      parallel_tool_calls: z.boolean().nullable().optional(),
      text: z
        .strictObject({ format: formatSchema().optional(), verbosity: z.string().nullable().optional() })
        .nullable()
        .optional(),
      temperature: z.number().min(0).max(2).nullable().optional(),
      top_p: z.number().min(0).max(1).nullable().optional(),
      max_output_tokens: z.number().int().min(1).nullable().optional(),
      metadata: z.record(z.string().max(64), z.string().max(512)).nullable().optional(),
      user: z.string().optional(),
      truncation: z.enum(['auto', 'disabled']).nullable().optional(),
      include: z.array(z.string()).nullable().optional(),
    })
    .loose(),
);

export type ResponsesBody = z.infer<ReturnType<typeof responsesBody>>;

/** A function tool in the Responses API's flat shape. */
export const functionToolSchema = onUse(() =>
  z.object({
    type: z.literal('function'),
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a function name is 1 to 64 letters, digits, _ or -'),
    description: z
      .string()
      .max(16 * 1024)
      .nullable()
      .optional(),
    // Bounded in size and depth by clientTools (chat-params.ts), as for chat completions.
    parameters: z.record(z.string(), z.unknown()).nullable().optional(),
    strict: z.boolean().nullable().optional(),
  }),
);

export type FunctionTool = z.infer<ReturnType<typeof functionToolSchema>>;

const itemStatus = onUse(() => z.enum(['in_progress', 'completed', 'incomplete']).nullable().optional());

/**
 * The input items Caxton reads, by type. `id` and `status` are what clients send back from an
 * earlier response's output (the Agents SDK does); they are accepted and not needed. A message
 * item may omit `type` ("easy input message").
 */
const ITEM_SCHEMAS = onUse(() => ({
  message: z.strictObject({
    type: z.literal('message').optional(),
    id: z.string().optional(),
    status: itemStatus(),
    role: z.enum(['user', 'assistant', 'system', 'developer']),
    content: z.union([z.string(), z.array(contentPart())]),
    phase: z.enum(['commentary', 'final_answer']).nullable().optional(),
  }),
  function_call: z.strictObject({
    type: z.literal('function_call'),
    id: z.string().optional(),
    status: itemStatus(),
    call_id: z.string().min(1).max(200),
    name: z.string().min(1).max(64),
    arguments: z.string(),
  }),
  function_call_output: z.strictObject({
    type: z.literal('function_call_output'),
    id: z.string().nullable().optional(),
    status: itemStatus(),
    call_id: z.string().min(1).max(200),
    output: z.union([z.string(), z.array(contentPart())]),
  }),
}));

export type MessageItem = z.infer<ReturnType<typeof ITEM_SCHEMAS>['message']>;
export type FunctionCallItem = z.infer<ReturnType<typeof ITEM_SCHEMAS>['function_call']>;
export type FunctionCallOutputItem = z.infer<ReturnType<typeof ITEM_SCHEMAS>['function_call_output']>;
export type InputItem = (MessageItem & { type?: 'message' }) | FunctionCallItem | FunctionCallOutputItem;

/** Honoured, or checked (below) to hold a value that asks for nothing Caxton cannot do. */
const HANDLED = new Set([
  'model',
  'input',
  'instructions',
  'previous_response_id',
  'store',
  'stream',
  'stream_options',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
  'text',
  'temperature',
  'top_p',
  'max_output_tokens',
  'metadata',
  'user',
  'truncation',
  'include',
  'background',
  'top_logprobs',
]);

/** Accepted and ignored, as on /v1/chat/completions (`metadata` and `user` are echoed in the response too). */
const IGNORED = new Set<string>([...IGNORED_PARAMETERS, 'prompt_cache_retention', 'prompt_cache_options']);

/** Refused whatever their value, with the reason given to the caller. */
const REFUSED: Record<string, string> = {
  conversation: 'the Conversations API is not supported; chain responses with previous_response_id',
  prompt: 'stored prompt templates are not supported; the agent has its own prompts',
  reasoning: "the agent's model settings are fixed by its definition",
  context_management: 'context management (compaction) is not supported',
  moderation: 'moderation is not supported',
  max_tool_calls: 'a limit on built-in tool calls does not apply: the agent has its own max_turns',
};

function unsupported(param: string, message: string): CaxtonError {
  return new CaxtonError(
    'unsupported_parameter',
    `${param} is not supported by Caxton's Responses endpoint: ${message}`,
    { param },
  );
}

function unsupportedValue(param: string, message: string): CaxtonError {
  return new CaxtonError('unsupported_value', `${param}: ${message}`, { param });
}

const absent = (v: unknown): boolean => v === undefined || v === null;

/** Throws 400 for the first parameter the request uses that Caxton would otherwise ignore. */
export function assertResponsesSupported(body: ResponsesBody): void {
  for (const key of Object.keys(body)) {
    if (HANDLED.has(key) || IGNORED.has(key)) continue;
    if (Object.hasOwn(REFUSED, key)) throw unsupported(key, REFUSED[key]!);
    throw unsupported(key, 'unknown parameter; see docs/openai.md for the parameters Caxton honours and ignores');
  }
  const b = body as Record<string, unknown>;
  if (b.background === true && (body.stream === true || b.stream === true))
    throw unsupportedValue(
      'background',
      'a background response is not streamed here: omit stream and poll GET /v1/responses/{id} until its status is final',
    );
  if (b.background === true && body.store === false)
    throw unsupportedValue('store', 'a background response is stored to be retrieved: send store: true or omit it');
  if (!absent(b.top_logprobs) && b.top_logprobs !== 0)
    throw unsupported('top_logprobs', 'log probabilities are not returned');
  if (body.truncation === 'auto')
    throw unsupportedValue(
      'truncation',
      'Caxton does not drop input items to fit the context window; send "disabled" or omit it',
    );
  (body.include ?? []).forEach((v, i) => {
    throw unsupportedValue(
      `include[${i}]`,
      `"${v.slice(0, 100)}" is not available: Caxton's responses carry no logprobs, reasoning or built-in tool outputs`,
    );
  });
  if (!absent(body.text?.verbosity))
    throw unsupported('text.verbosity', "the agent's model settings are fixed by its definition");
  for (const [i, tool] of (body.tools ?? []).entries()) {
    if (tool.type !== 'function')
      throw unsupportedValue(
        `tools[${i}].type`,
        `tools of type "${tool.type.slice(0, 100)}" are not supported; only "function" tools are (the agent's own tools run inside Caxton)`,
      );
    const parsed = functionToolSchema().safeParse(tool);
    if (!parsed.success) throw issueError(`tools[${i}]`, parsed.error, tool);
  }
  const choice = body.tool_choice;
  if (!absent(choice) && choice !== 'auto' && choice !== 'none') {
    if ((body.tools ?? []).length === 0)
      throw unsupportedValue('tool_choice', 'without client function tools only "auto" and "none" are accepted');
    if (typeof choice === 'object' && choice !== null && choice.type !== 'function')
      throw unsupportedValue(
        'tool_choice.type',
        `tool_choice of type "${choice.type.slice(0, 100)}" is not supported; use "auto", "none", "required" or a function`,
      );
  }
}

/**
 * A 400 naming the field of the first issue, under `at` (`value` is what was checked there). For a
 * content that is neither a string nor a list of parts, the field inside a part that failed.
 */
function issueError(at: string, error: z.ZodError, value: unknown): CaxtonError {
  const issue = innermostIssue(error.issues[0]!);
  const param = [at, ...issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))]
    .join('')
    .replace(/\.\[/g, '[');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    return unsupported(`${param}.${key}`, 'unknown field of this input item');
  }
  // In this API's spelling of the field (`input[1].content[0].refusal`), not the dotted one.
  const text = describeIssue({ ...issue, path: [param] } as z.core.$ZodIssue, valueAtPath(value, issue.path));
  return new CaxtonError('invalid_request', text.message, { param });
}

/** The input as items: a string is one user message. Each item is checked against its type's schema. */
export function inputItems(input: ResponsesBody['input']): InputItem[] {
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  return input.map((raw, i) => {
    const type = raw.type ?? (typeof raw.role === 'string' ? 'message' : undefined);
    if (typeof type !== 'string')
      throw new CaxtonError('invalid_request', `input[${i}] has neither a type nor a role`, {
        param: `input[${i}].type`,
      });
    if (!Object.hasOwn(ITEM_SCHEMAS(), type)) {
      throw unsupportedValue(
        `input[${i}].type`,
        `input items of type "${type.slice(0, 100)}" are not supported; "message", "function_call" and "function_call_output" are`,
      );
    }
    const parsed = ITEM_SCHEMAS()[type as keyof ReturnType<typeof ITEM_SCHEMAS>].safeParse(raw);
    if (!parsed.success) throw issueError(`input[${i}]`, parsed.error, raw);
    const item = parsed.data as InputItem;
    const parts = 'content' in item ? item.content : item.type === 'function_call_output' ? item.output : undefined;
    if (Array.isArray(parts)) {
      const field = 'content' in item ? 'content' : 'output';
      parts.forEach((p, j) => {
        // A refusal is what the model said in an earlier output: read back as its text.
        const refusal = p.type === 'refusal' && 'role' in item && item.role === 'assistant';
        if (!TEXT_PARTS.has(p.type) && !refusal)
          throw unsupportedValue(
            `input[${i}].${field}[${j}].type`,
            `content parts of type "${p.type.slice(0, 100)}" are not supported; only text parts are (and "refusal" parts in assistant messages)`,
          );
      });
    }
    return item;
  });
}

const TEXT_PARTS = new Set(['input_text', 'output_text', 'text']);

/** The text of a message's (or a tool output's) content. */
export function textOf(
  content: string | { type: string; text?: string | undefined; refusal?: string | null | undefined }[],
): string {
  return typeof content === 'string' ? content : content.map((p) => p.text ?? p.refusal ?? '').join('');
}
