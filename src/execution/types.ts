import type { AgentDefinition, IsolationMode } from '../agents/definition.js';
import type { ChatMessage, ResponseFormat, ToolCall, ToolChoice, ToolSpec, Usage } from '../llm/types.js';
import type { ApprovalRule } from './runs/approval.js';
import type { RunReplay } from './runs/run-model.js';

/** An earlier turn of the caller's conversation: text turns, and (OpenAI-compatible endpoint) the assistant's tool calls and their results. */
export type HistoryMessage = Exclude<ChatMessage, { role: 'system' }>;

/** POST /api/v1/agents/{name}/invoke body. */
export interface InvokeRequest {
  request: string;
  context?: string | Record<string, unknown> | unknown[];
  parameters?: Record<string, unknown>;
  conversation_id?: string;
  /** When given, the agent must provide this capability. */
  capability?: string;
  /** Earlier turns (OpenAI-compatible endpoint): rendered before the request. */
  history?: HistoryMessage[];
  /**
   * Turns after the request's user message (OpenAI-compatible endpoint, a tool loop's follow-up):
   * the assistant's client tool calls and the client's tool results, appended after the rendered
   * request — or after `transcript` when resuming. The model is called next.
   */
  continuation?: HistoryMessage[];
  /**
   * Resumes a suspended execution (a tool loop's follow-up whose stored execution was found):
   * the exact messages the model saw when the execution stopped for client tool calls — system
   * prompts, rendered request, server-side tool calls and results the client never saw. Used
   * instead of rendering prompts and history; `continuation` (the client's tool results) follows.
   */
  transcript?: ChatMessage[];
  /**
   * Tools the caller defines (OpenAI `tools`): offered to the model with the agent's own, never
   * run by Caxton. A turn calling one ends the execution with finish_reason 'tool_calls' and the
   * calls in `AgentResponse.pending_tool_calls`. Names never collide with the agent's tools (Executor.check).
   */
  client_tools?: ToolSpec[];
  /**
   * The acts a protocol step allows its answer to be (src/messaging/acts.ts: `propose`, `refuse`,
   * `inform`...), as tools: offered to the model like client tools and never run, so a call of one
   * ends the execution with it in `pending_tool_calls`. The model must call one of them — tool_choice
   * "required" (Anthropic: `any`) unless the request sets its own — where the provider follows
   * tool_choice; the scripted provider is offered them and may answer in text.
   */
  acts?: ToolSpec[];
  /** OpenAI `tool_choice`: applies to the first model call of this request only (later turns are 'auto'), so a server-side tool loop can end. */
  tool_choice?: ToolChoice;
  /** OpenAI `parallel_tool_calls`, passed to OpenAI-type providers. */
  parallel_tool_calls?: boolean;
  /**
   * The caller's own system/developer messages (OpenAI-compatible endpoint): sent as one system
   * message after the agent's system prompt, so they steer without replacing the agent's role.
   */
  instructions?: string[];
  /** Sampling settings the caller chose (OpenAI-compatible endpoint): they win over the agent's, except max_tokens, which may only lower the agent's. */
  sampling?: { temperature?: number; top_p?: number; max_tokens?: number; stop?: string[] };
  /** The reply format asked of the model (OpenAI-compatible endpoint); the caller validates the reply against it. */
  response_format?: ResponseFormat;
  /** The agents whose executions led to this request, oldest first; copied into every ToolContext. */
  chain?: string[];
  /** W3C trace context to continue; copied into every ToolContext. */
  traceparent?: string;
  /** The id of the authenticated caller (Principal.id, from `req.principal`); copied into every ToolContext for the tool audit. */
  principal?: string;
  /** The message this execution answers (a delivery to an agent), for the execution's record. */
  message_id?: string;
  /** That message itself, for a WebAssembly agent's module (src/execution/wasm-agent.ts); models get the rendered prompt. */
  message?: InvokeMessage;
}

/** What a WebAssembly agent's module is given about the FIPA-ACL message it answers. */
export interface InvokeMessage {
  id: string;
  performative: string;
  sender: string;
  content: unknown;
  conversation_id: string;
  protocol?: string;
  params: Record<string, string>;
  ontology?: string;
  language?: string;
  reply_by?: string;
  in_reply_to?: string;
}

/** One model call of an execution, for its record (src/execution/records). */
export interface ModelTurn {
  turn: number;
  provider: string;
  model: string;
  input_tokens: number;
  output_tokens: number;
  /** Wall time of the call, ms. */
  latency_ms: number;
  finish_reason: string;
  /** Tool calls the model asked for in this turn. */
  tool_calls: number;
}

export interface ToolCallRecord extends ToolCall {
  result: string;
  is_error: boolean;
  duration_ms: number;
}

/** 'tool_calls': the model called client-defined tools; they are in `AgentResponse.pending_tool_calls`. */
export type ExecutionFinish = 'stop' | 'length' | 'content_filter' | 'max_turns' | 'tool_calls';

export interface AgentResponse {
  id: string;
  execution_id: string;
  agent: string;
  conversation_id?: string;
  content: string;
  tool_calls: ToolCallRecord[];
  usage: Usage;
  execution_time_ms: number;
  finish_reason: ExecutionFinish;
  provider: string;
  model: string;
  turns: number;
  isolation: IsolationMode;
  /**
   * Set when the model (or a WebAssembly agent's module) called tools and every call was refused,
   * none run (not in the agent's tools, not granted by caxton.toml, denied by a permission rule;
   * decided by RefusalTally): the answer was made without any tool working.
   */
  all_tool_calls_refused?: true;
  /**
   * finish_reason 'tool_calls': the client-defined tool calls the caller must answer (ids are
   * Caxton's, unique: `call_` + 32 hex digits). The server-side calls of the same turn have run
   * (they are in `tool_calls`).
   */
  pending_tool_calls?: ToolCall[];
  /**
   * finish_reason 'tool_calls': every message the model saw, up to and including the results of
   * the turn's server-side calls — what a follow-up resumes from (InvokeRequest.transcript). The
   * OpenAI routes store it (src/execution/suspended.ts) and never return it to the client.
   */
  transcript?: ChatMessage[];
  /**
   * Each model call, for the execution's record: the executor takes it off the response before
   * any caller sees it.
   */
  model_turns?: ModelTurn[];
}

/** Streamed while an execution runs (SSE, OpenAI chunks). */
export type ExecutionEvent =
  | { type: 'token'; text: string }
  | { type: 'tool_call'; call: ToolCall; turn: number }
  | { type: 'tool_result'; id: string; name: string; content: string; is_error: boolean; duration_ms: number };

/** Everything one execution needs, serializable so it can cross into a worker or process. */
export interface ExecutionJob {
  execution_id: string;
  definition: AgentDefinition;
  request: InvokeRequest;
  /** Absolute deadline, ms since epoch. */
  deadline: number;
  stream: boolean;
  isolation: IsolationMode;
  /**
   * The host tools (Executor.hostTools) this agent may call, as specs: they run in the server
   * process, reached from a worker/process through the isolation's host calls. Absent: none.
   */
  host_tools?: readonly ToolSpec[];
  /** Memories found for this request (src/memory), rendered into `{{memory_context}}`. Absent: none. */
  memory_context?: string;
  /** A resumed durable run: the model replies and tool results it recorded (src/execution/runs). */
  replay?: RunReplay;
  /** The run's steps are recorded (runAgent's `record`; in a worker or process, through a host call). */
  durable?: boolean;
  /** Tool calls that wait for a person's approval before they run (src/execution/runs/approval.ts). Absent: none. */
  approvals?: ApprovalRule[];
}

/**
 * The executor's link to memory (src/memory), set by the server when memory is configured. Both
 * calls must not throw: memory trouble never fails an execution.
 */
export interface ExecutionMemory {
  /** The text for `{{memory_context}}` of an agent with `[memory] enabled` ('' when nothing relevant). */
  recall(def: AgentDefinition, req: InvokeRequest): Promise<string>;
  /** After a successful execution of an agent with `[memory] enabled` and `auto_store`: stores it (in the background). */
  remember(def: AgentDefinition, req: InvokeRequest, res: AgentResponse): void;
  /** Resolves once every store `remember` has started so far has finished (shutdown waits on it, so an accepted interaction is not lost). Never rejects. */
  settled(): Promise<void>;
}
