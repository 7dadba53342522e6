export { Executor, type ExecutorOptions, type InvokeOptions } from './executor.js';
export { runAgent, toolContext, type ExecutionDeps } from './run-agent.js';
export { executionTools, hostToolProxy, HOST_TOOL_METHOD, type HostToolCall } from './host-tools.js';
export { llmSetup, buildDeps, modelCheck, type LlmSetup } from './deps.js';
export { renderTemplate } from './prompt.js';
export type { AgentResponse, ExecutionEvent, ExecutionJob, ExecutionMemory, HistoryMessage, InvokeRequest, ToolCallRecord, ExecutionFinish } from './types.js';
export { providerCheck, toolCheck, type AgentCheckWarning } from './agent-checks.js';
export { DEFAULT_SUSPENDED_TTL_MS, type SuspendedExecution, type SuspendedExecutionStore } from './suspended.js';
export { SqliteSuspendedStore, SUSPENDED_MIGRATIONS } from './suspended-sqlite.js';
