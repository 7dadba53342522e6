/**
 * The server's components (ADR 0034): one factory each, returning what it contributes (routes,
 * host tools, metrics) and how it closes. src/server/server.ts starts them in order on a
 * ComponentStack, which closes them in reverse, also when a later one fails to start.
 */
export { ComponentStack, type Component } from './component.js';
export { startObservability, type ObservabilityComponent } from './observability.js';
export { openStorage, type StorageComponent } from './storage.js';
export { startAuth, type AuthComponent } from './auth.js';
export { startAgents, type AgentsComponent } from './agents.js';
export { watchAgentFiles, type AgentFilesComponent } from './agent-files.js';
export { startMemory, type MemoryComponent } from './memory.js';
export { openRunJournal, startExecution, type ExecutionComponent } from './execution.js';
export { openExecutionRecords, type ExecutionRecordsComponent } from './executions.js';
export { openStatsHistory } from './stats-history.js';
export type { ClusterComponent, ClusterStateComponent } from './cluster.js';
/** The cluster's components (NATS, PostgreSQL), loaded only by a node with `[cluster]`. */
export const clusterComponents = () => import('./cluster.js');
export { startMessaging, type MessagingComponent } from './messaging.js';
export { openToolAudit, type ToolAuditComponent } from './tool-audit.js';
export { startMcp, type McpComponent } from './mcp.js';
export { startA2a, type A2aComponent } from './a2a.js';
export { startTools, type ToolsComponent } from './tools.js';
export { startToolkit, TOOLKIT_GROUPS, unlistedToolsFor } from './toolkit.js';
export { openAudit, type AuditComponent } from './audit.js';
export { statusRoutes } from './status.js';
export { serveConsole } from './console.js';
export { startDelivery } from './delivery.js';
export { startMetricsEndpoint, type MetricsEndpointComponent } from './metrics-endpoint.js';
export { startHttp, type CheckedTls, type HttpComponent } from './http.js';
