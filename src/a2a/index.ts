/**
 * Agent2Agent (docs/a2a.md): Caxton's agents served as A2A agents (cards, JSON-RPC tasks that are
 * durable runs), under the same principals, scopes, limits and audit as every other route.
 */
export { a2aPlugins, agentCall, exposed, type A2aRouteDeps, type AgentCall } from './routes.js';
export { agentCardOf, cardJson, securitySchemesOf, A2A_BASE, agentPath, type CardSettings } from './card.js';
export { AgentA2aHandler, toA2aError, type A2aCaller, type A2aHandlerDeps } from './handler.js';
export { taskOf, TASK_STATE_OF } from './tasks.js';
export { RemoteA2aAgents, remoteDefinition, A2A_PROVIDER, REMOTE_RETRY_MS, type RemoteA2aOptions } from './remote.js';
export {
  PushNotifier,
  pushSignature,
  TOKEN_HEADER,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  type PushOptions,
} from './push.js';
export { PushConfigStore, PUSH_MIGRATIONS, type PushConfig, type PushConfigs } from './push-store.js';
export { PgPushConfigStore } from './pg-push-store.js';
