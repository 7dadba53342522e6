import type { CheckedScript } from './scripted.js';
import { CaxtonError } from '../shared/errors.js';
import { scrubSecrets } from '../shared/secrets.js';

/**
 * The provider-neutral chat model Caxton speaks. Each provider client (OpenAI-compatible,
 * Anthropic Messages, scripted) translates to and from its wire format.
 */

export type ProviderType = 'openai' | 'anthropic' | 'scripted';
export const PROVIDER_TYPES: readonly ProviderType[] = ['openai', 'anthropic', 'scripted'];

/**
 * OpenTelemetry's GenAI value for a provider type (`gen_ai.system`, `gen_ai.provider.name`): the
 * API spoken, as the conventions ask of a client that may be talking to a compatible server, and a
 * custom value for the scripted provider, which speaks to no one. The configured provider name
 * travels as `caxton.provider`.
 */
export function genAiSystem(type: ProviderType): string {
  return type === 'scripted' ? 'caxton.scripted' : type;
}

/** `gen_ai.system` of a model call whose provider type may be unknown (only its name is). */
export function genAiSystemOf(type: ProviderType | undefined): string {
  return type === undefined ? '_OTHER' : genAiSystem(type);
}

/** JSON Schema for a tool's input, as both OpenAI and Anthropic accept it. */
export type JsonSchema = Record<string, unknown>;

export interface ToolSpec {
  name: string;
  description: string;
  input_schema: JsonSchema;
  /** OpenAI's strict function calling (a client-defined tool may ask for it); other providers ignore it. */
  strict?: boolean;
}

/**
 * Which tools the model may or must call: `auto` (its choice), `none` (no tool), `required` (at
 * least one), or the named tool. OpenAI-type providers get it as `tool_choice`, Anthropic as
 * `{type: auto|none|any|tool}`; the scripted provider ignores it.
 */
export type ToolChoice = 'auto' | 'none' | 'required' | { name: string };

export interface ToolCall {
  /** Provider-assigned id that the tool result must echo. */
  id: string;
  name: string;
  /** Parsed arguments (an object for well-behaved models). */
  arguments: Record<string, unknown>;
}

export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string; tool_calls?: ToolCall[] }
  | { role: 'tool'; tool_call_id: string; name: string; content: string; is_error?: boolean };

/**
 * A reply format (OpenAI's `response_format`): `json_object` asks for any JSON object,
 * `json_schema` for one matching `schema`. Providers with native support get it as such
 * (OpenAI); the others are told in the system prompt (Anthropic). Nothing here checks the
 * reply: the caller does (src/api/openai/structured-output.ts).
 */
export type ResponseFormat =
  | { type: 'json_object' }
  | {
      type: 'json_schema';
      json_schema: { name: string; description?: string; schema?: JsonSchema; strict?: boolean | null };
    };

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  tools?: readonly ToolSpec[];
  /** Absent: the provider's default (auto when tools are given). */
  tool_choice?: ToolChoice;
  /** Whether the model may call several tools in one turn (OpenAI-type providers only). */
  parallel_tool_calls?: boolean;
  temperature?: number;
  max_tokens?: number;
  top_p?: number;
  stop?: string[];
  response_format?: ResponseFormat;
  /** Aborts the call (client disconnected, deadline passed). */
  signal?: AbortSignal;
  /**
   * When the caller gives up (ms since the epoch, `Date.now()` clock). A retry whose wait
   * (backoff or Retry-After) would end past it fails at once instead of sleeping.
   */
  deadline?: number;
  /** W3C trace context of the call (the `llm.chat` span), sent as the `traceparent` header. */
  traceparent?: string;
}

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
}

export type FinishReason = 'stop' | 'tool_calls' | 'length' | 'content_filter';

export interface ChatResponse {
  provider: string;
  model: string;
  content: string;
  tool_calls: ToolCall[];
  usage: Usage;
  finish_reason: FinishReason;
}

export type StreamEvent =
  | { type: 'text_delta'; text: string }
  | { type: 'tool_call'; call: ToolCall }
  | { type: 'done'; response: ChatResponse };

export interface LlmProvider {
  /** The `[llm.providers.NAME]` name. */
  readonly name: string;
  readonly type: ProviderType;
  readonly defaultModel: string | undefined;
  chat(req: ChatRequest): Promise<ChatResponse>;
  /** Streams deltas; always ends with one `done` event carrying the full response. */
  stream(req: ChatRequest): AsyncIterable<StreamEvent>;
}

/** `[llm.providers.NAME]` in caxton.toml. */
export interface ProviderConfig {
  type: ProviderType;
  base_url?: string;
  /** Name of the environment variable holding the API key (never the key itself). */
  api_key_env?: string;
  model?: string;
  /** Per-call timeout in milliseconds. */
  timeout_ms: number;
  /** Retries after the first attempt on 429, 5xx, timeouts and connection errors. */
  max_retries: number;
  /** First backoff delay in milliseconds; doubled each retry, with jitter; Retry-After wins when given. */
  retry_base_ms: number;
  /** Extra HTTP headers sent with every call. */
  headers?: Record<string, string>;
  /** For `scripted`: the reply file. */
  script?: string;
  /**
   * For `scripted`: the reply file's content, already read and checked by the server, which a
   * worker thread or child process then uses instead of reading the file (so it loads no TOML
   * parser or schema library).
   */
  script_checked?: CheckedScript;
  /** For `scripted`: why the server could not read or check the reply file; every call fails with it. */
  script_error?: string;
  /** For `scripted`: artificial latency per call in milliseconds (default 0). */
  latency_ms?: number;
}

export type LlmErrorKind =
  | 'missing_key'
  | 'unauthorized'
  | 'forbidden'
  | 'rate_limited'
  | 'server_error'
  | 'timeout'
  | 'connection'
  | 'malformed_response'
  | 'unknown_model'
  | 'bad_request'
  | 'cancelled'
  | 'script';

/** Every provider failure: names the provider, the model and the cause. */
export class LlmError extends CaxtonError {
  readonly provider: string;
  readonly model: string;
  readonly kind: LlmErrorKind;
  readonly httpStatus: number | undefined;
  /** Whether another attempt may succeed (429, 5xx, timeout, connection). */
  readonly retryable: boolean;
  /** The cause alone, without the provider/model prefix `message` carries. */
  readonly reason: string;

  constructor(
    init: {
      provider: string;
      model: string;
      kind: LlmErrorKind;
      message: string;
      httpStatus?: number;
      retryable?: boolean;
      /** Extra fields merged into `details` (e.g. the earlier attempts of a fallback chain). */
      details?: Record<string, unknown>;
    },
    options?: { cause?: unknown },
  ) {
    super(
      init.kind === 'cancelled' ? 'cancelled' : init.kind === 'timeout' ? 'timeout' : 'llm_error',
      `LLM provider "${init.provider}" (model "${init.model}"): ${init.message}`,
      { provider: init.provider, model: init.model, kind: init.kind, http_status: init.httpStatus, ...init.details },
      options,
    );
    this.reason = scrubSecrets(init.message);
    this.name = 'LlmError';
    this.provider = init.provider;
    this.model = init.model;
    this.kind = init.kind;
    this.httpStatus = init.httpStatus;
    this.retryable = init.retryable ?? false;
  }
}
