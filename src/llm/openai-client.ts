/**
 * OpenAI-compatible Chat Completions client (`POST {base_url}/chat/completions`): OpenAI itself,
 * Ollama, llama.cpp, vLLM, LM Studio and other servers speaking the same API. No SDK: the shared
 * HTTP layer (provider-http.ts over transport.ts).
 *
 * Wire mapping:
 * - ToolSpec → `tools: [{type: 'function', function: {name, description, parameters, strict?}}]`;
 *   `tool_choice` ('auto' | 'none' | 'required' | `{type: 'function', function: {name}}`) and
 *   `parallel_tool_calls` are sent only with tools (the API refuses them alone).
 * - Assistant tool calls → `tool_calls: [{id, type: 'function', function: {name, arguments: JSON}}]`
 *   (content null when empty); tool results → `{role: 'tool', tool_call_id, content}`, the content
 *   prefixed with "Error: " when `is_error` (the API has no error flag).
 * - Tool names go out as names the API accepts and come back as Caxton's (wire-names.ts).
 * - `max_tokens` is sent as `max_completion_tokens` to api.openai.com (its newer models reject the
 *   old name) and as `max_tokens` to every other server.
 * - Streaming uses `stream: true` with `stream_options.include_usage`; tool-call fragments are
 *   joined by index and each call is emitted once the choice reports its finish_reason.
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
  type StreamEvent,
  type ToolCall,
  type Usage,
} from './types.js';

export const OPENAI_DEFAULT_BASE_URL = 'https://api.openai.com/v1';
export const OPENAI_MAX_STOP = 4;

export class OpenAiProvider implements LlmProvider {
  readonly type = 'openai' as const;
  readonly defaultModel: string | undefined;
  private readonly baseUrl: string;

  constructor(
    readonly name: string,
    private readonly config: ProviderConfig,
  ) {
    this.defaultModel = config.model;
    this.baseUrl = config.base_url ?? OPENAI_DEFAULT_BASE_URL;
  }

  async chat(req: ChatRequest): Promise<ChatResponse> {
    const { target, post, names } = this.prepare(req, false);
    const body = await postJson(target, post);
    return parseResponse(target, body, names);
  }

  async *stream(req: ChatRequest): AsyncGenerator<StreamEvent> {
    const { target, post, names } = this.prepare(req, true);
    const events = await postSse(target, post);
    let model = target.model;
    let content = '';
    let finish: string | undefined;
    let usage: Usage = makeUsage(0, 0);
    let sawDone = false;
    const partial = new Map<number, { id: string; name: string; args: string }>();
    const calls: ToolCall[] = [];
    const complete = (): ToolCall[] => {
      const out: ToolCall[] = [];
      for (const [index, p] of [...partial].sort((a, b) => a[0] - b[0])) {
        const name = names.fromWire(p.name);
        out.push({ id: p.id || `call_${index}`, name, arguments: parseToolArguments(target, name, p.args) });
      }
      partial.clear();
      calls.push(...out);
      return out;
    };

    for await (const ev of events) {
      if (ev.data.trim() === '[DONE]') {
        sawDone = true;
        break;
      }
      const chunk = parseChunk(target, ev.data);
      model = asString(chunk.model) ?? model;
      if (isRecord(chunk.usage)) usage = toUsage(chunk.usage);
      const choice = Array.isArray(chunk.choices)
        ? chunk.choices.find((c) => isRecord(c) && (c.index === undefined || c.index === 0))
        : undefined;
      if (!isRecord(choice)) continue;
      const delta = isRecord(choice.delta) ? choice.delta : {};
      const text = asString(delta.content);
      if (text) {
        content += text;
        yield { type: 'text_delta', text };
      }
      if (Array.isArray(delta.tool_calls)) {
        delta.tool_calls.forEach((tc: unknown, pos: number) => {
          if (!isRecord(tc)) return;
          const index = typeof tc.index === 'number' ? tc.index : pos;
          const p = partial.get(index) ?? { id: '', name: '', args: '' };
          const fn = isRecord(tc.function) ? tc.function : {};
          p.id ||= asString(tc.id) ?? '';
          p.name ||= asString(fn.name) ?? '';
          p.args += asString(fn.arguments) ?? '';
          partial.set(index, p);
        });
      }
      const reason = asString(choice.finish_reason);
      if (reason) {
        finish = reason;
        for (const call of complete()) yield { type: 'tool_call', call };
      }
    }
    if (!sawDone && finish === undefined)
      throw malformed(target, 'the stream ended before the response was complete (no finish_reason, no [DONE])');
    for (const call of complete()) yield { type: 'tool_call', call };
    yield {
      type: 'done',
      response: {
        provider: this.name,
        model,
        content,
        tool_calls: calls,
        usage,
        finish_reason: mapFinish(finish, calls.length > 0),
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
    // Chat Completions refuses more than four stop sequences: said here, in Caxton's words.
    if (req.stop !== undefined && req.stop.length > OPENAI_MAX_STOP) {
      throw new LlmError({
        provider: this.name,
        model,
        kind: 'bad_request',
        message: `${req.stop.length} stop sequences are more than the ${OPENAI_MAX_STOP} Chat Completions accepts: keep at most ${OPENAI_MAX_STOP} in the agent's llm.stop`,
      });
    }
    const key = readApiKey(this.name, model, this.config);
    const target: HttpTarget = { provider: this.name, model, baseUrl: this.baseUrl, config: this.config };
    const headers: Record<string, string> = {
      ...(key !== undefined && { authorization: `Bearer ${key}` }),
      ...(req.traceparent !== undefined && { traceparent: req.traceparent }),
      ...this.config.headers,
    };
    const names = WireNames.forRequest(req);
    return {
      target,
      names,
      post: {
        url: joinUrl(this.baseUrl, '/chat/completions'),
        headers,
        body: buildBody(req, model, stream, usesMaxCompletionTokens(this.baseUrl), names),
        signal: req.signal,
        deadline: req.deadline,
      },
    };
  }
}

function usesMaxCompletionTokens(baseUrl: string): boolean {
  try {
    return new URL(baseUrl).hostname === 'api.openai.com';
  } catch {
    return false;
  }
}

export function buildBody(
  req: ChatRequest,
  model: string,
  stream: boolean,
  maxCompletionTokens = false,
  names = WireNames.forRequest(req),
): Record<string, unknown> {
  const body: Record<string, unknown> = { model, messages: req.messages.map((m) => toWireMessage(m, names)) };
  if (req.tools && req.tools.length > 0) {
    body.tools = req.tools.map((t) => ({
      type: 'function',
      function: {
        name: names.toWire(t.name),
        description: t.description,
        parameters: t.input_schema,
        ...(t.strict !== undefined && { strict: t.strict }),
      },
    }));
    if (req.tool_choice !== undefined)
      body.tool_choice =
        typeof req.tool_choice === 'string'
          ? req.tool_choice
          : { type: 'function', function: { name: names.toWire(req.tool_choice.name) } };
    if (req.parallel_tool_calls !== undefined) body.parallel_tool_calls = req.parallel_tool_calls;
  }
  if (req.temperature !== undefined) body.temperature = req.temperature;
  if (req.top_p !== undefined) body.top_p = req.top_p;
  if (req.max_tokens !== undefined) body[maxCompletionTokens ? 'max_completion_tokens' : 'max_tokens'] = req.max_tokens;
  if (req.stop && req.stop.length > 0) body.stop = req.stop;
  if (req.response_format !== undefined) body.response_format = req.response_format;
  if (stream) {
    body.stream = true;
    body.stream_options = { include_usage: true };
  }
  return body;
}

function toWireMessage(m: ChatMessage, names: WireNames): Record<string, unknown> {
  switch (m.role) {
    case 'system':
    case 'user':
      return { role: m.role, content: m.content };
    case 'assistant': {
      const calls = m.tool_calls ?? [];
      if (calls.length === 0) return { role: 'assistant', content: m.content };
      return {
        role: 'assistant',
        content: m.content === '' ? null : m.content,
        tool_calls: calls.map((c) => ({
          id: c.id,
          type: 'function',
          function: { name: names.toWire(c.name), arguments: JSON.stringify(c.arguments) },
        })),
      };
    }
    case 'tool':
      return { role: 'tool', tool_call_id: m.tool_call_id, content: m.is_error ? `Error: ${m.content}` : m.content };
  }
}

function parseResponse(t: HttpTarget, body: unknown, names: WireNames): ChatResponse {
  if (!isRecord(body)) throw malformed(t, 'the response body is not a JSON object');
  if (body.error !== undefined && body.choices === undefined) throw streamError(t, body.error);
  const choice = Array.isArray(body.choices) ? body.choices[0] : undefined;
  if (!isRecord(choice) || !isRecord(choice.message)) throw malformed(t, 'the response has no choices[0].message');
  const message = choice.message;
  const content = textOf(message.content);
  const rawCalls = message.tool_calls ?? [];
  if (!Array.isArray(rawCalls)) throw malformed(t, 'choices[0].message.tool_calls is not an array');
  const calls = rawCalls.map((tc: unknown, i: number): ToolCall => {
    const fn = isRecord(tc) && isRecord(tc.function) ? tc.function : undefined;
    const wire = asString(fn?.name);
    if (!isRecord(tc) || fn === undefined || !wire) throw malformed(t, `tool call ${i} has no function name`);
    const name = names.fromWire(wire);
    const args = fn.arguments;
    return {
      id: asString(tc.id) || `call_${i}`,
      name,
      arguments: isRecord(args) ? args : parseToolArguments(t, name, asString(args) ?? ''),
    };
  });
  return {
    provider: t.provider,
    model: asString(body.model) ?? t.model,
    content,
    tool_calls: calls,
    usage: isRecord(body.usage) ? toUsage(body.usage) : makeUsage(0, 0),
    finish_reason: mapFinish(asString(choice.finish_reason), calls.length > 0),
  };
}

/** String content, or the text parts of an array content. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content.map((p) => (isRecord(p) && typeof p.text === 'string' ? p.text : '')).join('');
  return '';
}

function parseChunk(t: HttpTarget, data: string): Record<string, unknown> {
  let chunk: unknown;
  try {
    chunk = JSON.parse(data);
  } catch {
    throw malformed(t, `a stream event is not JSON: ${quoteOutside(data, 200)}`);
  }
  if (!isRecord(chunk)) throw malformed(t, 'a stream event is not a JSON object');
  if (chunk.error !== undefined) throw streamError(t, chunk.error);
  return chunk;
}

function streamError(t: HttpTarget, error: unknown): LlmError {
  const message = isRecord(error) ? (asString(error.message) ?? JSON.stringify(error)) : String(error);
  return new LlmError({
    provider: t.provider,
    model: t.model,
    kind: 'server_error',
    message: `the server reported an error: ${quoteOutside(message, 300)}`,
  });
}

function toUsage(u: Record<string, unknown>): Usage {
  return makeUsage(count(u.prompt_tokens), count(u.completion_tokens));
}

function mapFinish(reason: string | undefined, hasCalls: boolean): FinishReason {
  if (reason === 'length') return 'length';
  if (reason === 'content_filter') return 'content_filter';
  // Some compatible servers say "stop" even when the reply is tool calls.
  if (hasCalls || reason === 'tool_calls' || reason === 'function_call') return 'tool_calls';
  return 'stop';
}
