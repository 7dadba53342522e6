import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { FastifyInstance } from 'fastify';
import type { AgentRegistry, AgentService } from '../agents/index.js';
import { Readiness, underApi, type Lifecycle, type RoutePlugin } from '../api/index.js';
import type { AuditEntry, AuditStore } from '../audit/index.js';
import { clusterStateConfig, secretValues, type ServerConfig } from '../config/index.js';
import type { Executor } from '../execution/index.js';
import type { McpClientManager } from '../mcp/index.js';
import type { MemoryComponent } from '../memory/index.js';
import type { MessagingBus } from '../messaging/index.js';
import { createLogger, Metrics, type Logger } from '../observability/index.js';
import type { AgentEvents } from '../observability/events.js';
import { LogBuffer } from '../observability/log-buffer.js';
import type { StatusSampler } from '../observability/status.js';
import { CaxtonError } from '../shared/errors.js';
import { registerSecrets } from '../shared/secrets.js';
import { VERSION } from '../shared/version.js';
import type { Db } from '../storage/index.js';
import type { ToolServerManager } from '../tools/servers/index.js';
import type { ToolAuditLog } from '../audit/index.js';
import { SqliteTeamStore, TeamBoard } from '../tools/todo/index.js';
import {
  clusterComponents,
  ComponentStack,
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
} from './components/index.js';
import type { ConfigProblem } from '../api/readiness.js';
import { configProblems } from './config-problems.js';
import { ProviderReach } from './provider-reach.js';
import { isLoopbackHost } from './hosts.js';
import { startupMark } from './startup-marks.js';
import { readTlsMaterial, warnIfExpiring, type TlsReloader } from './tls.js';

export interface StartOptions {
  config: ServerConfig;
  logger?: Logger;
  /** Extra span processors (tests pass an in-memory exporter). */
  spanProcessors?: SpanProcessor[];
  /** Set false to build everything without listening (tests using inject). */
  listen?: boolean;
  /** Extra route plugins passed to the API (registered under /api/v1). */
  plugins?: RoutePlugin[];
  /**
   * The buffer `opts.logger` also writes to (GET /api/v1/logs, `caxton logs`). Without
   * `opts.logger` the server makes its own logger and buffer ([logging] buffer_lines).
   */
  logBuffer?: LogBuffer;
  /** The web console's built files (default: dist/console of this package); a folder without index.html serves a 503 page. */
  consoleDir?: string;
  /** Where the built-in tool servers are read from (default: tools/builtin of this package); false: none. */
  builtinToolsDir?: string | false;
  /** At most one OTLP export failure line per this many ms (default 60 s; the count covers the rest). */
  exportFailureLogIntervalMs?: number;
}

export interface CaxtonServer {
  readonly app: FastifyInstance;
  readonly config: ServerConfig;
  readonly service: AgentService;
  readonly registry: AgentRegistry;
  readonly executor: Executor;
  readonly bus: MessagingBus;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly db: Db;
  /** Mounted MCP servers (`[mcp_servers.NAME]`): their tools are host tools `NAME.tool`. */
  readonly mcp: McpClientManager;
  /** The audit log of tool calls (SQLite `tool_audit`; in a cluster, the shared one in PostgreSQL): WASM and MCP tool calls are recorded here. */
  readonly toolAudit: ToolAuditLog;
  /** The audit trail (SQLite `audit_log`, src/audit): `audit.record(entry)` for non-HTTP events; undefined with `[audit] enabled = false`. */
  readonly audit: AuditStore | undefined;
  /** The knowledge graph (src/memory); undefined with `[memory] enabled = false`. */
  readonly memory: MemoryComponent | undefined;
  /** WebAssembly tool servers (built-in and deployed): their tools are host tools `SERVER.tool`. */
  readonly tools: ToolServerManager;
  /** The agent event store (GET /api/v1/events); undefined with `[events] enabled = false`. */
  readonly events: AgentEvents | undefined;
  /** Recent log lines (GET /api/v1/logs); undefined when the caller's logger has none. */
  readonly logs: LogBuffer | undefined;
  /** Counters sampled every second, for the rates of GET /api/v1/status/overview. */
  readonly sampler: StatusSampler;
  /** Base URL of the API, e.g. http://127.0.0.1:8080 (empty when not listening). */
  readonly url: string;
  readonly metricsUrl: string | undefined;
  /** The certificate reloaders of [server.tls] and [metrics.tls] (absent without TLS or when not listening). */
  readonly tls: { api?: TlsReloader; metrics?: TlsReloader };
  /** What in the configuration will make work fail although the server serves, with the fixes. */
  problems(): ConfigProblem[];
  close(): Promise<void>;
}

/**
 * The composition root. Checks what can be checked before anything opens (TLS files, hosts
 * reachable without authentication), then starts the components (src/server/components) in
 * order: each one's routes, host tools and metrics join the whole as it starts. close() closes
 * them in reverse; a failure during start closes what had started and rethrows (ADR 0034).
 */
export async function startServer(opts: StartOptions): Promise<CaxtonServer> {
  const { config } = opts;
  // The secret values the configuration refers to (API keys, tokens, passwords) are scrubbed,
  // in every encoding, from outside text where it enters and at every exit (ADR 0017).
  registerSecrets(secretValues(config));
  // Log lines also go to an in-memory ring (GET /api/v1/logs).
  const logBuffer = opts.logBuffer ?? (opts.logger ? undefined : new LogBuffer(config.logging.buffer_lines));
  const logger =
    opts.logger ??
    createLogger(config.logging.level, undefined, {
      ...(logBuffer && { buffer: logBuffer }),
      secrets: secretValues(config),
    });
  const readiness = new Readiness({ log: logger });
  // The default provider is connected to while the server starts; its finding joins the problems.
  const reach = new ProviderReach(config, logger);
  const reached = reach.check();
  const lifecycle: Lifecycle = {
    state: 'starting',
    startedAt: Date.now(),
    version: VERSION,
    readiness,
    problems: () => [...configProblems(config), ...reach.problems()],
  };
  // TLS files are checked before anything is opened: a missing file or a key that does not match
  // its certificate stops the start with an error naming the file (src/server/tls.ts).
  const apiTls = config.server.tls && {
    cfg: config.server.tls,
    material: readTlsMaterial(config.server.tls, 'server.tls'),
  };
  const metricsTls =
    config.metrics.enabled && config.metrics.tls
      ? { cfg: config.metrics.tls, material: readTlsMaterial(config.metrics.tls, 'metrics.tls') }
      : undefined;
  if (apiTls) warnIfExpiring(logger, 'server.tls', apiTls.material);
  if (metricsTls) warnIfExpiring(logger, 'metrics.tls', metricsTls.material);
  // Nobody reaches an unauthenticated API from another machine (docs/security.md).
  if (!config.auth.enabled && !isLoopbackHost(config.server.host)) {
    throw new CaxtonError(
      'invalid_config',
      `refusing to start: [server] host = "${config.server.host}" reaches beyond this machine and [auth] enabled = false; bind to 127.0.0.1 or enable authentication`,
      { field: 'auth.enabled' },
    );
  }
  if (!config.auth.enabled && config.metrics.enabled && !isLoopbackHost(config.metrics.host)) {
    throw new CaxtonError(
      'invalid_config',
      `refusing to start: [metrics] host = "${config.metrics.host}" reaches beyond this machine and [auth] enabled = false; bind it to 127.0.0.1 or enable authentication`,
      { field: 'auth.enabled' },
    );
  }

  // Several nodes share their conversations and deliveries in PostgreSQL; a [cluster] node without
  // [cluster.state] would be an island on its own SQLite: refused before anything is opened.
  if (config.cluster) clusterStateConfig(config.cluster);

  const metrics = new Metrics();
  const stack = new ComponentStack({
    metrics,
    readiness,
    onCloseError: (component, err) => logger.error({ err, component }, `closing ${component} failed`),
  });
  try {
    const observability = stack.add(
      await startObservability({
        config,
        logger,
        metrics,
        ...(opts.spanProcessors && { spanProcessors: opts.spanProcessors }),
        ...(opts.exportFailureLogIntervalMs !== undefined && {
          exportFailureLogIntervalMs: opts.exportFailureLogIntervalMs,
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
    // Telemetry reaches the executor and the bus only when it is on: with [metrics] enabled = false
    // and no tracing configured, their hot paths skip it entirely.
    const { tracing } = observability;
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
    const toolAudit = stack.add(
      openToolAudit({ config, db, logger, metrics, clusterState, tools: executor.hostTools }),
    );
    // Claude Code's toolkit (workspace.*, web.*, todo.write, team.*), under the operator's [workspace] and [web] grants.
    stack.add(startToolkit({ config, audit: toolAudit.watch, logger, teams }));
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
    stack.add(await startA2a({ config, executor, threads, registry, logger, db, clusterState }));
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
        ...(opts.builtinToolsDir !== undefined && { builtinDir: opts.builtinToolsDir }),
      }),
    );
    startupMark('tools announced');
    const audit = stack.add(openAudit({ config, db, logger, metrics }));
    late.audit = audit.store;
    const { sampler } = observability;
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
        sampler,
        events,
        logs: logBuffer,
        bus,
        tools: tools.servers,
        catalogue: tools.catalogue,
        memory: memory?.graph,
        view,
      }),
    );
    stack.add(serveConsole({ ...(opts.consoleDir !== undefined && { dir: opts.consoleDir }) }));
    stack.add(await startDelivery({ bus, logger }));
    startupMark('components started');
    const listen = opts.listen !== false;
    const metricsEndpoint =
      listen && config.metrics.enabled
        ? stack.add(
            await startMetricsEndpoint({
              config,
              metrics,
              authenticators: auth.authenticators,
              allowedHosts: auth.allowedHosts,
              tls: metricsTls,
              logger,
            }),
          )
        : undefined;
    const http = stack.add(
      await startHttp({
        config,
        logger,
        metrics,
        tracer: tracing.tracer,
        lifecycle,
        auth: auth.plugin,
        routes: [...stack.routes, ...underApi(opts.plugins ?? [])],
        tls: apiTls || undefined,
        listen,
      }),
    );
    startupMark('listening');
    // The CLI finds the server of a data directory by this address (`caxton serve --port N` included).
    if (listen) lock.setUrl(http.url);
    await execution.ready;
    await reached;
    lifecycle.state = 'ready';
    // The tool servers load now, each when no request is in flight (ADR 0055); their tools were
    // registered at start and a call loads its own server at once.
    void tools.servers.loadInBackground(http.quiet);
    void http.quiet().then(() => observability.startIdleGc());
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
        agents: registry.size,
        from_api: agents.persisted,
        files: files.statuses.length,
        invalid_files: files.statuses.filter((s) => s.state === 'invalid').length,
        agents_dir: config.agents_dir,
        data_dir: config.data_dir,
      },
      'caxton ready',
    );
    for (const p of lifecycle.problems!())
      logger.warn({ field: p.name, fix: p.fix }, `degraded: ${p.problem}; fix: ${p.fix}`);

    let closing: Promise<void> | undefined;
    const close = () =>
      (closing ??= (async () => {
        lifecycle.state = 'stopping';
        await stack.close();
        logger.info('caxton stopped');
      })());

    return {
      app: http.app,
      config,
      service,
      registry,
      executor,
      bus,
      metrics,
      logger,
      db,
      mcp: mcp.clients,
      toolAudit: toolAudit.store,
      audit: audit.store,
      memory: memory?.graph,
      tools: tools.servers,
      events,
      logs: logBuffer,
      sampler,
      url: http.url,
      metricsUrl: metricsEndpoint?.url,
      problems: lifecycle.problems!,
      tls: { ...(http.tls && { api: http.tls }), ...(metricsEndpoint?.tls && { metrics: metricsEndpoint.tls }) },
      close,
    };
  } catch (e) {
    await stack.close();
    throw e;
  }
}
