export { createApi, type ApiDeps } from './app.js';
export { envelope, type ErrorEnvelope } from './envelope.js';
export type { Lifecycle } from './routes/system-routes.js';
export { Readiness, type ReadinessCheck, type DependencyState } from './readiness.js';
export { toolRoutes, TOOL_DEPLOY_BODY_LIMIT } from './routes/tools-routes.js';
export { SqliteResponseStore, RESPONSE_MIGRATIONS } from './openai/index.js';
export type { ClusterView } from './routes/cluster-routes.js';
export {
  agentApi,
  auditApi,
  clusterApi,
  consoleApi,
  executionApi,
  executionRecordApi,
  statsHistoryApi,
  keyApi,
  signingKeyApi,
  memoryApi,
  messagingApi,
  observabilityApi,
  toolApi,
  underApi,
  type ApiRoutes,
  type RoutePlugin,
} from './route-sets.js';
export { CONSOLE_BASE, CONSOLE_CSP, DEFAULT_CONSOLE_DIR } from './routes/console-routes.js';
