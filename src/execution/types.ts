import type { AgentDefinition } from '../agents/definition.js';
import type { ToolCall, Usage } from '../llm/types.js';

/** POST /api/v1/agents/{name}/invoke body. */
export interface InvokeRequest {
  request: string;
  context?: string | Record<string, unknown> | unknown[];
  parameters?: Record<string, unknown>;
  conversation_id?: string;
  /** When given, the agent must provide this capability. */
  capability?: string;
  /** Earlier turns (OpenAI-compatible endpoint): rendered before the request. */
  history?: { role: 'user' | 'assistant'; content: string }[];
}

export interface ToolCallRecord extends ToolCall {
  result: string;
  is_error: boolean;
  duration_ms: number;
}

export type ExecutionFinish = 'stop' | 'length' | 'content_filter' | 'max_turns';

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
  isolation: 'context' | 'worker' | 'process';
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
  isolation: 'context' | 'worker' | 'process';
}
