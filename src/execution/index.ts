export { Executor, type InvokeOptions } from './executor.js';
export { runAgent, type ExecutionDeps } from './run-agent.js';
export { llmSetup, buildDeps, type LlmSetup } from './deps.js';
export { renderTemplate } from './prompt.js';
export type { AgentResponse, ExecutionEvent, ExecutionJob, InvokeRequest, ToolCallRecord, ExecutionFinish } from './types.js';
