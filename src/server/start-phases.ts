/**
 * The server's start, phase by phase, each phase a list of components (src/server/components)
 * added to the stack in order: the stack closes them in reverse (ADR 0034). `startServer`
 * (server.ts) runs the phases one after the other; each takes what the earlier ones started.
 */
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Readiness } from '../api/index.js';
import { underApi, type Lifecycle, type RoutePlugin } from '../api/index.js';
import type { AuditEntry, AuditStore } from '../audit/index.js';
import type { ServerConfig } from '../config/index.js';
import type { Logger, Metrics } from '../observability/index.js';
import type { LogBuffer } from '../observability/log-buffer.js';
import { SqliteTeamStore, TeamBoard } from '../tools/todo/index.js';
import type { ComponentStack } from './components/index.js';
import {
  clusterComponents,
  openAudit,
  openStorage,
  openToolAudit,
  startA2a,
  startAgents,
  startAuth,
  startDelivery,
  startExecution,
  openExecutionRecords,
  openRunJournal,
  openStatsHistory,
  startHttp,
  startMcp,
  startMemory,
  startMessaging,
  startMetricsEndpoint,
  startObservability,
  startTools,
  startToolkit,
  serveConsole,
  statusRoutes,
  watchAgentFiles,
  unlistedToolsFor,
  type A2aComponent,
  type AgentFilesComponent,
  type AgentsComponent,
  type AuditComponent,
  type AuthComponent,
  type CheckedTls,
  type ClusterComponent,
  type ClusterStateComponent,
  type ExecutionComponent,
  type ExecutionRecordsComponent,
  type HttpComponent,
  type McpComponent,
  type MemoryComponent,
  type MessagingComponent,
  type MetricsEndpointComponent,
  type ObservabilityComponent,
  type StorageComponent,
  type ToolAuditComponent,
  type ToolsComponent,
} from './components/index.js';
import type { ProviderReach } from './provider-reach.js';
import { startupMark } from './startup-marks.js';

/** What is settled before any component starts: the logger, readiness, the lifecycle, TLS files. */
export interface Preflight {
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly logBuffer: LogBuffer | undefined;
  readonly readiness: Readiness;
  readonly reach: ProviderReach;
  /** The default provider's first check, awaited before the server says it is ready. */
  readonly reached: Promise<void>;
  readonly lifecycle: Lifecycle;
  /** [server.tls] and [metrics.tls] with their files, read before anything opened. */
  readonly apiTls: CheckedTls | undefined;
  readonly metricsTls: CheckedTls | undefined;
  readonly metrics: Metrics;
  readonly stack: ComponentStack;
  readonly spanProcessors?: SpanProcessor[];
  readonly exportFailureLogIntervalMs?: number;
  readonly plugins?: RoutePlugin[];
  readonly consoleDir?: string;
  readonly builtinToolsDir?: string | false;
  readonly listen: boolean;
}

export interface Foundation {
  readonly observability: ObservabilityComponent;
  readonly db: StorageComponent['db'];
  readonly lock: StorageComponent['lock'];
  readonly fence: StorageComponent['fence'];
  readonly clusterState: ClusterStateComponent | undefined;
  readonly auth: AuthComponent;
  readonly agents: AgentsComponent;
  readonly files: AgentFilesComponent;
  readonly cluster: ClusterComponent | undefined;
}

/** Telemetry, storage, a cluster node's shared state, authentication, the agents and their files, the cluster. */
export async function startFoundation(pre: Preflight): Promise<Foundation> {
  const { config, logger, metrics, stack, lifecycle } = pre;
  const observability = stack.add(
    await startObservability({
      config,
      logger,
      metrics,
      ...(pre.spanProcessors && { spanProcessors: pre.spanProcessors }),
      ...(pre.exportFailureLogIntervalMs !== undefined && {
        exportFailureLogIntervalMs: pre.exportFailureLogIntervalMs,
      }),
    }),
  );
  const { db, lock, fence } = stack.add(openStorage({ dataDir: config.data_dir, logger }));
  startupMark('storage open');
  // A cluster node's shared state in PostgreSQL: before the stores that live there (the event store, the tool audit), closed after them.
  // Loaded only here: a single node never loads NATS or pg.
  const clustering = config.cluster ? await clusterComponents() : undefined;
  const clusterState =
    config.cluster && clustering
      ? stack.add(
          await clustering.openClusterState({
            cluster: config.cluster,
            logger,
            keepVersions: config.agents.keep_versions,
            keepRemovedAgents: config.agents.keep_removed_agents,
          }),
        )
      : undefined;
  const auth = stack.add(startAuth({ config, db, logger, metrics }));
  const agents = stack.add(startAgents({ config, db, logger, metrics, lifecycle, clusterState }));
  const { registry, service, events } = agents;
  // What a Claude Code agent that lists no tools is given: shown with it, logged at its load, run with.
  service.unlistedTools = unlistedToolsFor(config);
  // A cluster node's view of the shared agent versions (each API agent's newest, its rollouts' two), before any traffic.
  await service.versionsReady;
  const files = stack.add(
    await watchAgentFiles({ agentsDir: config.agents_dir, registry, service, events, logger, metrics }),
  );
  startupMark('agents loaded');
  // A cluster node: NATS, the shared state in PostgreSQL, and API agents propagated to every node (docs/cluster.md).
  const cluster =
    config.cluster && clustering && clusterState
      ? stack.add(
          await clustering.startCluster({
            cluster: config.cluster,
            state: clusterState,
            registry,
            sourceOf: (name) => agents.store.source(name),
            keys: auth.keys,
            lifecycle,
            logger,
            events: events?.store,
          }),
        )
      : undefined;
  return { observability, db, lock, fence, clusterState, auth, agents, files, cluster };
}

export interface Work {
  readonly telemetry: Parameters<typeof startExecution>[0]['telemetry'];
  readonly memory: MemoryComponent | undefined;
  readonly threads: ExecutionRecordsComponent['threads'];
  readonly execution: ExecutionComponent;
  readonly executor: ExecutionComponent['executor'];
  /** The audit trail, set once it opens (after the bus, which records through it). */
  readonly late: { audit?: AuditStore | undefined };
  readonly teams: TeamBoard;
  readonly bus: MessagingComponent['bus'];
  readonly toolAudit: ToolAuditComponent;
}

/** Memory, the execution records and runs, the executor, the message bus and the tool-call audit. */
export async function startWork(pre: Preflight, base: Foundation): Promise<Work> {
  const { config, logger, metrics, stack, reach } = pre;
  const { db, fence, clusterState, auth, agents, cluster } = base;
  const { registry, service, events } = agents;
  // Telemetry reaches the executor and the bus only when it is on: with [metrics] enabled = false
  // and no tracing configured, their hot paths skip it entirely.
  const { tracing } = base.observability;
  const telemetry = {
    ...(tracing.enabled && { tracer: tracing.tracer }),
    ...(config.metrics.enabled && { metrics }),
  };
  const memory = await startMemory({ config, db, registry, logger, telemetry });
  if (memory) stack.add(memory);
  const { records, threads } = stack.add(
    await openExecutionRecords({
      config,
      db,
      registry,
      logger,
      metrics,
      spans: tracing.local,
      clusterState,
    }),
  );
  stack.add(await openStatsHistory({ db, records, clusterState }));
  const runs = await openRunJournal({ config, db, logger, clusterState });
  const execution = stack.add(
    startExecution({
      runs,
      config,
      db,
      registry,
      service,
      logger,
      telemetry,
      limiter: auth.limiter,
      principals: auth.principals,
      events,
      records,
      threads,
      memory: memory?.execution,
      shadowResults: agents.shadowResults,
      similarity: memory && ((a: string, b: string) => memory.graph.store.similarity(a, b)),
      onRunFinished: (status) => reach.onRunFinished(status),
    }),
  );
  const { executor } = execution;
  executor.unlisted.tools = service.unlistedTools;
  // Host tools run in the server whatever the isolation mode: from here on every component's are registered on the executor.
  stack.useHostTools(executor.hostTools);
  // The audit trail opens after the bus; a signature refused before then goes unrecorded (deliveries start later still).
  const late: { audit?: AuditStore | undefined } = {};
  // Claude Code's agent teams: one board, shared by the team tools and send_message (which starts
  // teammates), over the node's SQLite or, on a cluster node, the cluster's PostgreSQL.
  const teams = new TeamBoard(clusterState?.teams ?? new SqliteTeamStore(db));
  const { bus } = stack.add(
    startMessaging({
      audit: { record: (e: AuditEntry) => late.audit?.record(e) },
      config,
      db,
      fence,
      registry,
      executor,
      events,
      logger,
      telemetry,
      cluster,
      principals: auth.principals,
      teams,
    }),
  );
  const toolAudit = stack.add(openToolAudit({ config, db, logger, metrics, clusterState, tools: executor.hostTools }));
  return { telemetry, memory, threads, execution, executor, late, teams, bus, toolAudit };
}

export interface Surfaces {
  readonly a2a: A2aComponent;
  readonly mcp: McpComponent;
  readonly tools: ToolsComponent;
  readonly audit: AuditComponent;
}

/**
 * What agents and clients reach: the toolkit, MCP, A2A, the tool servers, the audit trail, the
 * status routes and the console; then deliveries begin.
 */
export async function startSurfaces(pre: Preflight, base: Foundation, work: Work): Promise<Surfaces> {
  const { config, logger, metrics, stack, lifecycle } = pre;
  const { db, agents, cluster } = base;
  const { registry, service, events } = agents;
  const { executor, toolAudit, bus, memory, telemetry } = work;
  // Claude Code's toolkit (workspace.*, web.*, todo.write, team.*), under the operator's [workspace] and [web] grants.
  stack.add(startToolkit({ config, audit: toolAudit.watch, logger, teams: work.teams }));
  const mcp = stack.add(
    await startMcp({
      config,
      db,
      executor,
      registry,
      bus,
      memory: memory?.graph.store,
      audit: toolAudit.watch,
      logger,
      metrics,
    }),
  );
  const a2a = stack.add(
    await startA2a({ config, executor, threads: work.threads, registry, logger, db, clusterState: base.clusterState }),
  );
  const tools = stack.add(
    await startTools({
      config,
      db,
      executor,
      registry,
      service,
      mcp: mcp.clients,
      audit: toolAudit.store,
      auditWatch: toolAudit.watch,
      logger,
      metrics,
      cluster,
      tracer: telemetry.tracer,
      ...(pre.builtinToolsDir !== undefined && { builtinDir: pre.builtinToolsDir }),
    }),
  );
  startupMark('tools announced');
  const audit = stack.add(openAudit({ config, db, logger, metrics }));
  work.late.audit = audit.store;
  const view = await cluster?.join(() => {
    const s = bus.stats();
    // The tool packages' propagation lag rides along, as the directory's does (GET /api/v1/cluster).
    const toolLag = tools.sync?.lag().p99_ms;
    return {
      queued: s.queued,
      running: s.running,
      open_conversations: s.open_conversations,
      dead_letters: s.dead_letters,
      ...(toolLag != null && { tool_lag_p99_ms: toolLag }),
    };
  });
  stack.add(
    statusRoutes({
      config,
      lifecycle,
      service,
      sampler: base.observability.sampler,
      events,
      logs: pre.logBuffer,
      bus,
      tools: tools.servers,
      catalogue: tools.catalogue,
      memory: memory?.graph,
      view,
    }),
  );
  stack.add(serveConsole({ ...(pre.consoleDir !== undefined && { dir: pre.consoleDir }) }));
  stack.add(await startDelivery({ bus, logger }));
  startupMark('components started');
  return { a2a, mcp, tools, audit };
}

export interface Listeners {
  readonly metricsEndpoint: MetricsEndpointComponent | undefined;
  readonly http: HttpComponent;
}

/** The metrics endpoint and the API's listener, with every route the components contributed. */
export async function startListeners(pre: Preflight, base: Foundation, surfaces: Surfaces): Promise<Listeners> {
  const { config, logger, metrics, stack, listen } = pre;
  const { auth } = base;
  // A2A's gRPC binding, before the API listens, so that the first card served names it.
  if (listen && surfaces.a2a.startGrpc)
    stack.add(await surfaces.a2a.startGrpc({ auth: auth.plugin, audit: surfaces.audit, tls: pre.apiTls }));
  const metricsEndpoint =
    listen && config.metrics.enabled
      ? stack.add(
          await startMetricsEndpoint({
            config,
            metrics,
            authenticators: auth.authenticators,
            allowedHosts: auth.allowedHosts,
            tls: pre.metricsTls,
            logger,
          }),
        )
      : undefined;
  const http = stack.add(
    await startHttp({
      config,
      logger,
      metrics,
      tracer: base.observability.tracing.tracer,
      lifecycle: pre.lifecycle,
      auth: auth.plugin,
      routes: [...stack.routes, ...underApi(pre.plugins ?? [])],
      tls: pre.apiTls,
      listen,
    }),
  );
  startupMark('listening');
  // The CLI finds the server of a data directory by this address (`caxton serve --port N` included).
  if (listen) base.lock.setUrl(http.url);
  return { metricsEndpoint, http };
}

/**
 * Waits for what must be ready before traffic counts (the executor, the provider check), marks
 * the server ready, starts the background work (tool servers' loading, resumed runs) and logs it.
 */
export async function becomeReady(
  pre: Preflight,
  base: Foundation,
  work: Work,
  surfaces: Surfaces,
  listeners: Listeners,
): Promise<void> {
  const { config, logger, lifecycle } = pre;
  const { http, metricsEndpoint } = listeners;
  const { executor } = work;
  await work.execution.ready;
  await pre.reached;
  lifecycle.state = 'ready';
  // The tool servers load now, each when no request is in flight (ADR 0055); their tools were
  // registered at start and a call loads its own server at once.
  void surfaces.tools.servers.loadInBackground(http.quiet);
  void http.quiet().then(() => base.observability.startIdleGc());
  // Runs an earlier process left unfinished go on from their last step (src/execution/runs);
  // those started by a message resume when the bus delivers it again.
  if (executor.runs)
    executor.runs.resumeUnfinished().then(
      (n) => n > 0 && logger.info({ runs: n }, 'resuming runs left unfinished by the last process'),
      (e: unknown) => logger.error({ err: e }, 'unfinished runs could not be read'),
    );
  logger.info(
    {
      url: http.url,
      metrics: metricsEndpoint?.url,
      agents: base.agents.registry.size,
      from_api: base.agents.persisted,
      files: base.files.statuses.length,
      invalid_files: base.files.statuses.filter((s) => s.state === 'invalid').length,
      agents_dir: config.agents_dir,
      data_dir: config.data_dir,
    },
    'caxton ready',
  );
  for (const p of lifecycle.problems!())
    logger.warn({ field: p.name, fix: p.fix }, `degraded: ${p.problem}; fix: ${p.fix}`);
}
