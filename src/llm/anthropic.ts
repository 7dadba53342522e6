/**
 * Anthropic Messages API client (`POST {base_url}/v1/messages`, `x-api-key`,
 * `anthropic-version: 2023-06-01`). No SDK: the shared HTTP layer (provider-http.ts over transport.ts).
 *
 * Wire mapping:
 * - System messages → the top-level `system` string (several are joined by a blank line).
 * - ToolSpec → `{name, description, input_schema}`; `tool_choice` → `{type: auto|none|any|tool}`
 *   (see toolChoice).
 * - Assistant tool calls → `tool_use` content blocks after the text; tool results → `tool_result`
 *   blocks (with `is_error: true` when set) in a user message. Consecutive user-side messages
 *   (tool results, user text) are merged into one user message, as the API expects.
 * - `max_tokens` is required by the API: 4096 when the request does not say.
 * - Tool names go out as names the API accepts and come back as Caxton's (wire-names.ts).
 * - Usage: input_tokens (plus cache creation/read tokens when reported) and output_tokens.
 */
import { asString, count, isRecord, makeUsage, parseToolArguments } from './decode.js';
import { joinUrl, malformed, postJson, postSse, quoteOutside, readApiKey, type HttpTarget } from './provider-http.js';
import { WireNames } from './wire-names.js';
import {
  LlmError,
  type ChatMessage,
  type ChatRequest,
  type ChatResponse,
  type FinishReason,
  type LlmProvider,
  type ProviderConfig,
  type ResponseFormat,
  type StreamEvent,
  type ToolCall,
} from './types.js';

export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';

/**
 * The base the Messages path (`/v1/messages`) is joined to. Anthropic's own documentation gives the
 * host alone, while OpenAI-type providers (and many proxies) are configured with a `/v1` ending:
 * both spellings are accepted, so a trailing `/v1` is dropped rather than calling `/v1/v1/messages`.
 */
export function anthropicBaseUrl(baseUrl: string | undefined): string {
  if (baseUrl === undefined) return ANTHROPIC_DEFAULT_BASE_URL;
  return baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
}
export const ANTHROPIC_VERSION = '2023-06-01';
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;
export const ANTHROPIC_MAX_TEMPERATURE = 1;

type Block = Record<string, unknown>;
interface WireMessage {
  role: 'user' | 'assistant';
  content: string | Block[];
}

export class AnthropicProvider implements LlmProvider {
  readonly type = 'anthropic' as const;
  readonly defaultModel: string | undefined;
  private readonly baseUrl: string;

  constructor(
    readonly name: string,
    private readonly config: ProviderConfig,
  ) {
    this.defaultModel = config.model;
    this.baseUrl = anthropicBaseUrl(config.base_url);
  }

  async chat(req: ChatRequest): Promise<ChatResponse> {
    const { target, post, names } = this.prepare(req, false);
    return parseResponse(target, await postJson(target, post), names);
  }

  async *stream(req: ChatRequest): AsyncGenerator<StreamEvent> {
    const { target, post, names } = this.prepare(req, true);
    const events = await postSse(target, post);
    let model = target.model;
    let content = '';
    let input = 0;
    let output = 0;
    let stopReason: string | undefined;
    let stopped = false;
    const blocks = new Map<number, { type: string; id: string; name: string; json: string }>();
    const calls: ToolCall[] = [];

    for await (const ev of events) {
      const data = parseEvent(target, ev.data);
      const type = asString(data.type) ?? ev.event;
      const index = typeof data.index === 'number' ? data.index : 0;
      if (type === 'message_start' && isRecord(data.message)) {
        model = asString(data.message.model) ?? model;
        if (isRecord(data.message.usage))
          [input, output] = [inputTokens(data.message.usage), count(data.message.usage.output_tokens)];
      } else if (type === 'content_block_start' && isRecord(data.content_block)) {
        const b = data.content_block;
        blocks.set(index, {
          type: asString(b.type) ?? '',
          id: asString(b.id) ?? '',
          name: asString(b.name) ?? '',
          json: '',
        });
        const text = asString(b.text);
        if (text) {
          content += text;
          yield { type: 'text_delta', text };
        }
      } else if (type === 'content_block_delta' && isRecord(data.delta)) {
        const text = asString(data.delta.text);
        if (data.delta.type === 'text_delta' && text) {
          content += text;
          yield { type: 'text_delta', text };
        } else if (data.delta.type === 'input_json_delta') {
          const block = blocks.get(index);
          if (block) block.json += asString(data.delta.partial_json) ?? '';
        }
      } else if (type === 'content_block_stop') {
        const block = blocks.get(index);
        if (block?.type === 'tool_use') {
          const name = names.fromWire(block.name);
          const call: ToolCall = { id: block.id, name, arguments: parseToolArguments(target, name, block.json) };
          calls.push(call);
          yield { type: 'tool_call', call };
        }
        blocks.delete(index);
      } else if (type === 'message_delta') {
        if (isRecord(data.delta)) stopReason = asString(data.delta.stop_reason) ?? stopReason;
        if (isRecord(data.usage)) {
          output = count(data.usage.output_tokens) || output;
          input = inputTokens(data.usage) || input;
        }
      } else if (type === 'message_stop') {
        stopped = true;
        break;
      } else if (type === 'error') {
        throw errorEvent(target, data.error);
      }
    }
    if (!stopped) throw malformed(target, 'the stream ended before message_stop');
    yield {
      type: 'done',
      response: {
        provider: this.name,
        model,
        content,
        tool_calls: calls,
        usage: makeUsage(input, output),
        finish_reason: mapStop(stopReason),
      },
    };
  }

  private prepare(
    req: ChatRequest,
    stream: boolean,
  ): { target: HttpTarget; post: Parameters<typeof postJson>[1]; names: WireNames } {
    const model = req.model || this.defaultModel || '';
    if (model === '')
      throw new LlmError({
        provider: this.name,
        model: '(none)',
        kind: 'bad_request',
        message: 'no model given and the provider has no default model',
      });
    // The Messages API refuses a temperature above 1 (OpenAI's scale goes to 2): said here, in
    // Caxton's words and without a round trip, instead of as the provider's 400.
    if (req.temperature !== undefined && req.temperature > ANTHROPIC_MAX_TEMPERATURE) {
      throw new LlmError({
        provider: this.name,
        model,
        kind: 'bad_request',
        message: `temperature ${req.temperature} is above ${ANTHROPIC_MAX_TEMPERATURE}, the most the Messages API accepts: set the agent's llm.temperature (or the request's temperature) to at most ${ANTHROPIC_MAX_TEMPERATURE} for an Anthropic-type provider`,
      });
    }
    const key = readApiKey(this.name, model, this.config);
    const target: HttpTarget = { provider: this.name, model, baseUrl: this.baseUrl, config: this.config };
    const headers: Record<string, string> = {
      ...(key !== undefined && { 'x-api-key': key }),
      'anthropic-version': ANTHROPIC_VERSION,
      ...(req.traceparent !== undefined && { traceparent: req.traceparent }),
      ...this.config.headers,
    };
    const names = WireNames.forRequest(req);
    return {
      target,
      names,
      post: {
        url: joinUrl(this.baseUrl, '/v1/messages'),
        headers,
        body: buildBody(req, model, stream, names),
        signal: req.signal,
        deadline: req.deadline,
      },
    };
  }
}

export function buildBody(
  req: ChatRequest,
  model: string,
  stream: boolean,
  names = WireNames.forRequest(req),
): Record<string, unknown> {
  const { system, messages } = toWireMessages(req.messages, names);
  const body: Record<string, unknown> = { model, max_tokens: req.max_tokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS };
  // The Messages API has no response_format: the model is told in the system prompt, and the
  // caller validates the reply all the same.
  const format = req.response_format !== undefined ? formatInstruction(req.response_format) : undefined;
  const fullSystem = [system, format].filter((x) => x !== undefined).join('\n\n');
  if (fullSystem !== '') body.system = fullSystem;
  body.messages = messages;
  if (req.tools && req.tools.length > 0) {
    body.tools = req.tools.map((t) => ({
      name: names.toWire(t.name),
      description: t.description,
      input_schema: t.input_schema,
    }));
    const choice = toolChoice(req, names);
    if (choice !== undefined) body.tool_choice = choice;
  } else {
    // The Messages API refuses tool_use/tool_result blocks in a request that defines no tools (a
    // handoff's history reaching an agent without tools): the tools they name are declared, and
    // tool_choice none keeps the model from calling them.
    const called = new Set(
      req.messages.flatMap((m) =>
        m.role === 'assistant' ? (m.tool_calls ?? []).map((c) => c.name) : m.role === 'tool' ? [m.name] : [],
      ),
    );
    if (called.size > 0) {
      body.tools = [...called].map((name) => ({
        name: names.toWire(name),
        description: 'Called earlier in this conversation; not available now.',
        input_schema: { type: 'object' },
      }));
      body.tool_choice = { type: 'none' };
    }
  }
  if (req.temperature !== undefined) body.temperature = req.temperature;
  if (req.top_p !== undefined) body.top_p = req.top_p;
  if (req.stop && req.stop.length > 0) body.stop_sequences = req.stop;
  if (stream) body.stream = true;
  return body;
}

/**
 * `tool_choice` in the Messages API's terms: auto, none, any (OpenAI's "required"), or tool with
 * a name; `parallel_tool_calls: false` becomes `disable_parallel_tool_use` (not allowed with none).
 */
function toolChoice(req: ChatRequest, names: WireNames): Record<string, unknown> | undefined {
  const c = req.tool_choice;
  const serial = req.parallel_tool_calls === false;
  if (c === undefined) return serial ? { type: 'auto', disable_parallel_tool_use: true } : undefined;
  if (c === 'none') return { type: 'none' };
  const base =
    c === 'auto' ? { type: 'auto' } : c === 'required' ? { type: 'any' } : { type: 'tool', name: names.toWire(c.name) };
  return serial ? { ...base, disable_parallel_tool_use: true } : base;
}

/** The system-prompt paragraph that stands in for `response_format`. */
export function formatInstruction(f: ResponseFormat): string {
  const base = 'Reply with one JSON object and nothing else: no prose before or after it, no Markdown code fence.';
  if (f.type === 'json_object' || f.json_schema.schema === undefined) return base;
  return `${base} The object must match this JSON Schema (named "${f.json_schema.name}"):\n${JSON.stringify(f.json_schema.schema)}`;
}

export function toWireMessages(
  messages: ChatMessage[],
  names = WireNames.forRequest({ messages }),
): { system: string | undefined; messages: WireMessage[] } {
  const system: string[] = [];
  const out: WireMessage[] = [];
  const pushUser = (block: Block): void => {
    const last = out[out.length - 1];
    if (last?.role === 'user') {
      if (typeof last.content === 'string') last.content = [{ type: 'text', text: last.content }];
      last.content.push(block);
    } else if (block.type === 'text') {
      out.push({ role: 'user', content: block.text as string });
    } else {
      out.push({ role: 'user', content: [block] });
    }
  };
  for (const m of messages) {
    if (m.role === 'system') system.push(m.content);
    else if (m.role === 'user') pushUser({ type: 'text', text: m.content });
    else if (m.role === 'tool')
      pushUser({
        type: 'tool_result',
        tool_use_id: m.tool_call_id,
        content: m.content,
        ...(m.is_error && { is_error: true }),
      });
    else {
      const calls = m.tool_calls ?? [];
      if (calls.length === 0) {
        // The API rejects empty assistant turns.
        if (m.content !== '') out.push({ role: 'assistant', content: m.content });
        continue;
      }
      const blocks: Block[] = m.content === '' ? [] : [{ type: 'text', text: m.content }];
      for (const c of calls)
        blocks.push({ type: 'tool_use', id: c.id, name: names.toWire(c.name), input: c.arguments });
      out.push({ role: 'assistant', content: blocks });
    }
  }
  return { system: system.length > 0 ? system.join('\n\n') : undefined, messages: out };
}

function parseResponse(t: HttpTarget, body: unknown, names: WireNames): ChatResponse {
  if (!isRecord(body)) throw malformed(t, 'the response body is not a JSON object');
  if (body.type === 'error') throw errorEvent(t, body.error);
  if (!Array.isArray(body.content)) throw malformed(t, 'the response has no content array');
  let content = '';
  const calls: ToolCall[] = [];
  for (const b of body.content as unknown[]) {
    if (!isRecord(b)) continue;
    if (b.type === 'text') content += asString(b.text) ?? '';
    else if (b.type === 'tool_use') {
      const wire = asString(b.name);
      const id = asString(b.id);
      if (!wire || !id) throw malformed(t, 'a tool_use block has no id or name');
      const name = names.fromWire(wire);
      const args = b.input === undefined ? {} : b.input;
      if (!isRecord(args)) throw malformed(t, `the input of tool call "${name}" is not a JSON object`);
      calls.push({ id, name, arguments: args });
    }
  }
  const usage = isRecord(body.usage) ? body.usage : {};
  return {
    provider: t.provider,
    model: asString(body.model) ?? t.model,
    content,
    tool_calls: calls,
    usage: makeUsage(inputTokens(usage), count(usage.output_tokens)),
    finish_reason: mapStop(asString(body.stop_reason)),
  };
}

function parseEvent(t: HttpTarget, data: string): Record<string, unknown> {
  try {
    const v = JSON.parse(data) as unknown;
    if (isRecord(v)) return v;
  } catch {
    // fall through
  }
  throw malformed(t, `a stream event is not a JSON object: ${quoteOutside(data, 200)}`);
}

function inputTokens(u: Record<string, unknown>): number {
  return count(u.input_tokens) + count(u.cache_creation_input_tokens) + count(u.cache_read_input_tokens);
}

/** An `error` event (or error body with a 200): overloaded / rate limit / anything else. */
function errorEvent(t: HttpTarget, error: unknown): LlmError {
  const type = isRecord(error) ? asString(error.type) : undefined;
  const message = (isRecord(error) ? asString(error.message) : undefined) ?? JSON.stringify(error) ?? 'unknown error';
  const kind =
    type === 'rate_limit_error'
      ? 'rate_limited'
      : type === 'overloaded_error' || type === 'api_error'
        ? 'server_error'
        : type === 'not_found_error'
          ? 'unknown_model'
          : 'server_error';
  return new LlmError({
    provider: t.provider,
    model: t.model,
    kind,
    message: `the server reported ${type ?? 'an error'}: ${quoteOutside(message, 300)}`,
  });
}

function mapStop(reason: string | undefined): FinishReason {
  switch (reason) {
    case 'tool_use':
      return 'tool_calls';
    case 'max_tokens':
      return 'length';
    case 'refusal':
      return 'content_filter';
    default:
      // end_turn, stop_sequence, pause_turn, or absent.
      return 'stop';
  }
}
