export {
  Executor,
  SHADOW_TOOL_REFUSAL,
  type ExecutorOptions,
  type InvokeOptions,
  type ExecutionRecord,
  type RemoteAgentRunner,
} from './executor.js';
export { ShadowRunner, type ShadowRunnerOptions } from './shadow.js';
export {
  ChatThreads,
  ALL_PRINCIPALS,
  executionReaderOf,
  traceReadBy,
  threadReaderOf,
  type ThreadListOptions,
  type ThreadTurn,
  type ThreadView,
} from './thread-access.js';
export { runAgent, toolContext, type ExecutionDeps } from './run-agent.js';
export { executionTools, hostToolProxy, HOST_TOOL_METHOD, type HostToolCall } from './host-tools.js';
export { llmSetup, buildDeps, modelCheck, type LlmSetup } from './deps.js';
export { renderTemplate } from './prompt-template.js';
export type {
  AgentResponse,
  ExecutionEvent,
  ExecutionJob,
  ExecutionMemory,
  HistoryMessage,
  InvokeRequest,
  InvokeMessage,
  ToolCallRecord,
  ExecutionFinish,
} from './types.js';
export {
  providerCheck,
  toolCheck,
  unresolvedTools,
  ungrantedTools,
  type AgentCheckWarning,
  type ToolCatalogueNames,
} from './provider-tool-checks.js';
export { DEFAULT_SUSPENDED_TTL_MS, type SuspendedExecution, type SuspendedExecutionStore } from './suspended.js';
export { SqliteSuspendedStore, SUSPENDED_MIGRATIONS } from './sqlite-suspended.js';
export {
  entryOf,
  SqliteExecutionStore,
  PgExecutionStore,
  EXECUTIONS_MIGRATIONS,
  type ExecutionLog,
  type ExecutionPage,
  type ExecutionQuery,
  type ExecutionSummary,
  type ExecutionView,
  type ThreadPage,
  type ThreadSummary,
} from './records/index.js';
export type { ModelTurn } from './types.js';
export { WasmAgents, wasmModuleResolver, WASM_PROVIDER } from './wasm-agent.js';
export * from './runs/index.js';
