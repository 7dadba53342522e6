/**
 * The API's routes, grouped by the component that serves them. Each group is an `ApiRoutes`
 * (a plugin and its mount point); the server's components contribute them and `createApi`
 * registers them all the same way, in the order given (ADR 0034).
 */
import type { FastifyInstance } from 'fastify';
import type { AgentService } from '../agents/index.js';
import type { AnonymousRefusals, AuditStore } from '../audit/index.js';
import type { ApiKeyStore, SigningKeyStore, SsoClient } from '../auth/index.js';
import type { ServerConfig } from '../config/index.js';
import type { ChatThreads, Executor, SuspendedExecutionStore } from '../execution/index.js';
import type { MemoryBackend } from '../memory/index.js';
import type { MessageSigner, MessagingBus, Selection } from '../messaging/index.js';
import type { ToolServerManager } from '../tools/servers/index.js';
import type { ToolAuditReads } from '../audit/index.js';
import type { ToolCatalogue } from '../tools/index.js';
import type { StatsHistory } from '../observability/index.js';
import { auditRecorder } from '../audit/index.js';
import type { ResponseStore } from './openai/index.js';
import { agentRoutes } from './routes/agents-routes.js';
import { auditRoutes } from './routes/audit-routes.js';
import { clusterRoutes, type ClusterView } from './routes/cluster-routes.js';
import { ssoRoutes } from './routes/sso-routes.js';
import { consoleRoutes } from './routes/console-routes.js';
import { executionRecordRoutes, type ExecutionRouteDeps } from './routes/executions-routes.js';
import { invokeRoutes } from './routes/invoke-routes.js';
import { runRoutes } from './routes/runs-routes.js';
import { keyRoutes } from './routes/keys-routes.js';
import { memoryRoutes } from './routes/memory-routes.js';
import { messagingRoutes } from './routes/messaging-routes.js';
import type { BatchLimits } from './routes/message-batch-routes.js';
import { observabilityRoutes, type ObservabilityRouteDeps } from './routes/observability-routes.js';
import { openAiRoutes, responsesRoutes } from './openai/index.js';
import { signingKeyRoutes } from './routes/signing-keys-routes.js';
import { statsHistoryRoutes } from './routes/stats-history-routes.js';
import { systemRoutes, type Lifecycle } from './routes/system-routes.js';
import { threadRoutes } from './routes/threads-routes.js';
import { toolRoutes } from './routes/tools-routes.js';

export type RoutePlugin = (app: FastifyInstance) => Promise<void>;

/** A route plugin and its mount point: `/api/v1` unless `root` (health, readiness, the OpenAI-compatible /v1). */
export interface ApiRoutes {
  readonly plugin: RoutePlugin;
  readonly root?: boolean;
}

/** Plugins mounted under /api/v1 as they are (MCP, the caller's extra routes). */
export const underApi = (plugins: readonly RoutePlugin[]): ApiRoutes[] => plugins.map((plugin) => ({ plugin }));

/** /health, /ready, status, config; agents and capabilities. */
export function agentApi(opts: { service: AgentService; config: ServerConfig; lifecycle: Lifecycle }): ApiRoutes[] {
  return [
    { root: true, plugin: (a) => systemRoutes(a, opts) },
    { plugin: (a) => agentRoutes(a, { service: opts.service }) },
  ];
}

/** API keys (`caxton key ...`), and the console's single sign-on. */
export function keyApi(opts: {
  keys: ApiKeyStore;
  usage?: (principalId: string) => unknown;
  sso?: SsoClient;
}): ApiRoutes[] {
  return [{ plugin: (a) => keyRoutes(a, opts) }, { plugin: (a) => ssoRoutes(a, { client: opts.sso }) }];
}

/** Message signing keys (`caxton key signing`, `caxton key rotate --signing`). */
export function signingKeyApi(opts: { keys: SigningKeyStore }): ApiRoutes[] {
  return [{ plugin: (a) => signingKeyRoutes(a, opts) }];
}

/** Execution records and traces (GET /executions, /executions/{id}, /traces/{id}), and the chat threads read from them. */
export function executionRecordApi(deps: ExecutionRouteDeps & { threads: ChatThreads }): ApiRoutes[] {
  return [{ plugin: (a) => executionRecordRoutes(a, deps) }, { plugin: (a) => threadRoutes(a, deps) }];
}

/** The Overview charts' retained history (GET /stats/history). */
export function statsHistoryApi(deps: { history: StatsHistory }): ApiRoutes[] {
  return [{ plugin: (a) => statsHistoryRoutes(a, deps) }];
}

/** Invoke, and the OpenAI-compatible chat completions and responses. */
export function executionApi(opts: {
  executor: Executor;
  service: AgentService;
  bodyLimit: number;
  threads: ChatThreads;
  suspended?: SuspendedExecutionStore;
  responses?: ResponseStore;
}): ApiRoutes[] {
  const { executor, bodyLimit, suspended } = opts;
  const registry = opts.service.registry;
  return [
    { plugin: (a) => invokeRoutes(a, { executor, bodyLimit, threads: opts.threads }) },
    { plugin: (a) => runRoutes(a, { executor }) },
    { root: true, plugin: (a) => openAiRoutes(a, { executor, registry, bodyLimit, ...(suspended && { suspended }) }) },
    {
      root: true,
      plugin: (a) =>
        responsesRoutes(a, {
          executor,
          registry,
          bodyLimit,
          ...(suspended && { suspended }),
          ...(opts.responses && { store: opts.responses }),
        }),
    },
  ];
}

/** Messages, conversations, dead letters, directory. */
export function messagingApi(opts: {
  bus: MessagingBus;
  batch: BatchLimits;
  bodyLimit: number;
  signer?: MessageSigner;
  selection?: Selection;
}): ApiRoutes[] {
  return [{ plugin: (a) => messagingRoutes(a, opts) }];
}

/** /api/v1/memory/... */
export function memoryApi(opts: { store: MemoryBackend }): ApiRoutes[] {
  return [{ plugin: (a) => memoryRoutes(a, opts) }];
}

/** /api/v1/tools... */
export function toolApi(opts: {
  tools: ToolServerManager;
  catalogue: ToolCatalogue;
  audit: ToolAuditReads;
  bodyLimit: number;
}): ApiRoutes[] {
  return [{ plugin: (a) => toolRoutes(a, opts) }];
}

/** The audit trail: the recorder (a root onResponse hook) when there is a store, and GET /api/v1/audit. */
export function auditApi(opts: { store?: AuditStore; anonymous?: AnonymousRefusals }): ApiRoutes[] {
  return [
    ...(opts.store
      ? [{ plugin: auditRecorder(opts.store, { ...(opts.anonymous && { anonymous: opts.anonymous }) }) }]
      : []),
    { plugin: (a) => auditRoutes(a, { ...(opts.store && { store: opts.store }) }) },
  ];
}

/** Events, logs, status overview. */
/** GET /api/v1/cluster (a node without `[cluster]` lists itself). */
export function clusterApi(opts: { view: ClusterView }): ApiRoutes[] {
  return [{ plugin: (a) => clusterRoutes(a, opts) }];
}

export function observabilityApi(deps: ObservabilityRouteDeps): ApiRoutes[] {
  return [{ plugin: (a) => observabilityRoutes(a, deps) }];
}

/** The web console's files at /ui (public: they hold no data; docs/console.md). */
export function consoleApi(opts: { dir?: string }): ApiRoutes[] {
  return [{ root: true, plugin: (a) => consoleRoutes(a, opts) }];
}
