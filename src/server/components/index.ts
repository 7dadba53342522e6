/**
 * The server's components (ADR 0034): one factory each, returning what it contributes (routes,
 * host tools, metrics) and how it closes. src/server/server.ts starts them in order on a
 * ComponentStack, which closes them in reverse, also when a later one fails to start.
 */
export { ComponentStack, type Component } from './component.js';
export { startObservability, type ObservabilityComponent } from './observability-component.js';
export { openStorage, type StorageComponent } from './storage-component.js';
export { startAuth, type AuthComponent } from './auth-component.js';
export { startAgents, type AgentsComponent } from './agents-component.js';
export { watchAgentFiles, type AgentFilesComponent } from './agent-files-component.js';
export { startMemory, type MemoryComponent } from './memory-component.js';
export { openRunJournal, startExecution, type ExecutionComponent } from './execution-component.js';
export { openExecutionRecords, type ExecutionRecordsComponent } from './executions-component.js';
export { openStatsHistory } from './stats-history-component.js';
export type { ClusterComponent, ClusterStateComponent } from './cluster-component.js';
/** The cluster's components (NATS, PostgreSQL), loaded only by a node with `[cluster]`. */
export const clusterComponents = () => import('./cluster-component.js');
export { startMessaging, type MessagingComponent } from './messaging-component.js';
export { openToolAudit, type ToolAuditComponent } from './tool-audit-component.js';
export { startMcp, type McpComponent } from './mcp-component.js';
export { startA2a, type A2aComponent } from './a2a-component.js';
export { startTools, type ToolsComponent } from './tools-component.js';
export { startToolkit, TOOLKIT_GROUPS, unlistedToolsFor } from './toolkit-component.js';
export { openAudit, type AuditComponent } from './audit-component.js';
export { statusRoutes } from './status-component.js';
export { serveConsole } from './console-component.js';
export { startDelivery } from './delivery-component.js';
export { startMetricsEndpoint, type MetricsEndpointComponent } from './metrics-endpoint-component.js';
export { startHttp, type CheckedTls, type HttpComponent } from './http-component.js';
