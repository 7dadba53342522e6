import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Server as TlsServer } from 'node:tls';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { FastifyInstance } from 'fastify';
import { AGENT_MIGRATIONS, AgentDirectoryWatcher, AgentRegistry, AgentService, AgentStore, AgentVersionStore, DEPLOY_CHECK_CODES } from '../agents/index.js';
import { Executor, llmSetup, modelCheck, providerCheck, SqliteSuspendedStore, toolCheck } from '../execution/index.js';
import { createApi, SqliteResponseStore, type ApiDeps, type Lifecycle } from '../api/index.js';
import { executorHandler, MESSAGING_MIGRATIONS, MessageBus, sendMessageTool } from '../messaging/index.js';
import type { ServerConfig } from '../config/index.js';
import { createLogger, exportFailureReporter, Metrics, setupTracing, startMemoryReducer, type Logger } from '../observability/index.js';
import { createAgentEvents, type AgentEvents } from '../observability/events.js';
import { LogBuffer } from '../observability/log-buffer.js';
import { StatusSampler } from '../observability/status.js';
import { observabilityRoutes } from '../api/routes/observability.js';
import { secretValues } from '../config/index.js';
import { VERSION } from '../shared/version.js';
import { registerSecrets } from '../shared/secrets.js';
import { migrate, openDatabase, storeStartError, type Db } from '../storage/index.js';
import { startMetricsServer } from './metrics-server.js';
import {
  ADMIN_KEY_FILE,
  agentLimitsLookup,
  ApiKeyStore,
  bootstrapAdminKey,
  createJwtAuthenticator,
  metricsGuard,
  principalFromSocket,
  principalLimits,
  PrincipalLimiter,
  readKeyFile,
  writeRunRecord,
  type Authenticators,
  type AuthPluginOptions,
  type Principal,
} from '../auth/index.js';
import type { TLSSocket } from 'node:tls';
import { isLoopbackHost } from './hosts.js';
import { CaxtonError } from '../shared/errors.js';
import { httpsOptions, readTlsMaterial, TlsReloader, warnIfExpiring } from './tls.js';
import { MCP_OAUTH_MIGRATIONS, McpClientManager, mcpPlugins, SqliteOAuthStore } from '../mcp/index.js';
import { ToolAuditStore } from '../tools/wasm/audit.js';
import { createMemory, type MemoryComponent } from '../memory/index.js';
import { instrumentExecutionMemory, instrumentMemoryTools } from './instrument-memory.js';
import { memoryRoutes } from '../api/routes/memory.js';
import { ToolServerManager } from '../tools/wasm/manager.js';
import { AuditWatch, ToolCatalogue } from '../tools/catalogue.js';
import { toolRoutes } from '../api/routes/tools.js';
import { AuditStore, auditRecorder } from '../audit/index.js';
import { auditRoutes } from '../api/routes/audit.js';

export interface StartOptions {
  config: ServerConfig;
  logger?: Logger;
  /** Extra span processors (tests pass an in-memory exporter). */
  spanProcessors?: SpanProcessor[];
  /** Set false to build everything without listening (tests using inject). */
  listen?: boolean;
  /** Extra route plugins passed to the API (registered under /api/v1). */
  plugins?: ApiDeps['plugins'];
  /**
   * The buffer `opts.logger` also writes to (GET /api/v1/logs, `caxton logs`). Without
   * `opts.logger` the server makes its own logger and buffer ([logging] buffer_lines).
   */
  logBuffer?: LogBuffer;
  /** At most one OTLP export failure line per this many ms (default 60 s; the count covers the rest). */
  exportFailureLogIntervalMs?: number;
}

export interface CaxtonServer {
  readonly app: FastifyInstance;
  readonly config: ServerConfig;
  readonly service: AgentService;
  readonly registry: AgentRegistry;
  readonly executor: Executor;
  readonly bus: MessageBus;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly db: Db;
  /** Mounted MCP servers (`[mcp_servers.NAME]`): their tools are host tools `NAME.tool`. */
  readonly mcp: McpClientManager;
  /** The audit log of tool calls (SQLite `tool_audit`): WASM and MCP tool calls are recorded here. */
  readonly toolAudit: ToolAuditStore;
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
  close(): Promise<void>;
}

const WILDCARD = new Set(['0.0.0.0', '::']);

/** The composition root: storage, registry, file watcher, API and metrics, started in that order. */
export async function startServer(opts: StartOptions): Promise<CaxtonServer> {
  const { config } = opts;
  // The secret values the configuration refers to (API keys, tokens, passwords) are scrubbed,
  // in every encoding, from outside text where it enters and at every exit (ADR 0017).
  registerSecrets(secretValues(config));
  // Log lines also go to an in-memory ring (GET /api/v1/logs).
  const logBuffer = opts.logBuffer ?? (opts.logger ? undefined : new LogBuffer(config.logging.buffer_lines));
  const logger = opts.logger ?? createLogger(config.logging.level, undefined, { ...(logBuffer && { buffer: logBuffer }), secrets: secretValues(config) });
  const lifecycle: Lifecycle = { state: 'starting', startedAt: Date.now(), version: VERSION };
  // TLS files are checked before anything is opened: a missing file or a key that does not match
  // its certificate stops the start with an error naming the file (src/server/tls.ts).
  const apiTls = config.server.tls && { cfg: config.server.tls, material: readTlsMaterial(config.server.tls, 'server.tls') };
  const metricsTls = config.metrics.enabled && config.metrics.tls ? { cfg: config.metrics.tls, material: readTlsMaterial(config.metrics.tls, 'metrics.tls') } : undefined;
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

  const metrics = new Metrics();
  // After a burst the server goes quiet and V8 would keep the burst's garbage: one full collection
  // at the first idle moment gives it back (ADR 0031).
  const reducer = config.server.idle_gc
    ? startMemoryReducer({
        onCollect: (freed, ms) => {
          metrics.idleCollections.inc();
          metrics.idleCollectionFreed.inc(freed);
          logger.debug({ freed_bytes: freed, duration_ms: Math.round(ms) }, 'idle: full garbage collection after a burst');
        },
      })
    : undefined;
  // OTLP export failures (collector down, wrong URL, 4xx): a rate-limited warn line and caxton_otlp_export_failures_total (issue 15).
  const exportFailures = exportFailureReporter(logger, metrics, opts.exportFailureLogIntervalMs);
  const tracing = setupTracing({ version: VERSION, onExportFailure: (f) => exportFailures.record(f), ...(opts.spanProcessors && { processors: opts.spanProcessors }) });
  // A bad data file (damaged, truncated, another application's, not writable, disk full) stops
  // the start here with an error naming the file and what to do (src/storage/database.ts).
  const db = openDatabase(config.data_dir, 'caxton.db', { log: logger });
  try {
    migrate(db, AGENT_MIGRATIONS);
    migrate(db, MESSAGING_MIGRATIONS);
  } catch (e) {
    reducer?.close();
    db.close();
    throw storeStartError(e, join(resolve(config.data_dir), 'caxton.db'));
  }

  // --- Authentication (src/auth): API keys in caxton.db; at first start an admin key for the local CLI. ---
  const keys = new ApiKeyStore(db);
  const adminKeyFile = config.auth.enabled && config.auth.bootstrap_admin_key ? bootstrapAdminKey(keys, config.data_dir) : undefined;
  if (adminKeyFile) logger.info({ file: adminKeyFile }, 'created the first API key (role admin) for the local CLI; it is readable only by this user');
  const jwt = config.auth.jwt ? createJwtAuthenticator(config.auth.jwt, { ...(config.source.file && { baseDir: dirname(config.source.file) }) }) : undefined;
  const clientCerts = config.auth.client_certs;
  const authenticators: Authenticators = { keys, ...(jwt && { jwt }), ...(clientCerts.length > 0 && { certificate: (socket: TLSSocket) => principalFromSocket(socket, clientCerts) }) };
  // Limits per principal and per agent (ADR 0024): requests in the auth hook, executions and tokens in the executor.
  const limiter = new PrincipalLimiter(config.metrics.enabled ? { metrics } : {});
  const limitsOf = (p: Principal) => principalLimits(config.auth.limits, p.keyId !== undefined ? keys.limitsOf(p.keyId) : undefined);
  const allowedHosts = [...config.security.allowed_hosts, ...(isLoopbackHost(config.server.host) || WILDCARD.has(config.server.host) ? [] : [config.server.host.toLowerCase()])];
  const auth: AuthPluginOptions & { usage: (id: string) => unknown } = {
    enabled: config.auth.enabled,
    authenticators,
    allowedHosts,
    allowedOrigins: config.security.cors_origins,
    limiter,
    limitsOf,
    usage: (id: string) => limiter.usage(id, id.startsWith('key:') ? principalLimits(config.auth.limits, keyLimitsByName(keys, id.slice(4))) : config.auth.limits.default),
  };
  if (config.auth.enabled && !isLoopbackHost(config.server.host) && config.security.allowed_hosts.length === 0) {
    logger.info('[security] allowed_hosts is empty: requests naming this server by IP address or a loopback name are accepted; list the DNS names clients use');
  }
  // --- end authentication ---

  const registry = new AgentRegistry();
  // Deploy-time warnings for model aliases the configured providers cannot serve (issue 12).
  const service = new AgentService(
    registry,
    new AgentStore(db, { onSkipped: (row, reason) => logger.warn({ table: 'agents', row, reason }, `skipped the stored agent "${row}": ${reason}; redeploy it`) }),
    // Providers too (issue 15); the tool check joins once tool servers and MCP servers are up (below).
    {
      checkModel: modelCheck(llmSetup(config)),
      checks: [
        (
          (check) => (def) =>
            check(def.llm)
        )(providerCheck(llmSetup(config))),
      ],
      // Every deploy, file change and rollback kept as a version (issue 18).
      versions: new AgentVersionStore(db, { keep: config.agents.keep_versions }),
    },
  );
  const persisted = service.loadPersisted();
  // --- Agent event store (src/observability/events.ts): lifecycle events from the registry,
  // message.sent from the bus, message.received around the agent handler, execution.finished from the executor. ---
  const events = config.events.enabled
    ? createAgentEvents({ db, registry, migrate, retentionMs: config.events.retention, maxRows: config.events.max_rows, onError: (e) => logger.error({ err: e }, 'agent events could not be written') })
    : undefined;
  const sampler = new StatusSampler(metrics);
  sampler.start();
  // --- end agent event store ---
  registry.on('change', (e) => metrics.agentEvents.inc({ event: e.type }));

  const watcher = new AgentDirectoryWatcher(config.agents_dir, service, {
    onApplied: (s) => {
      if (s.state === 'invalid') {
        metrics.agentEvents.inc({ event: 'invalid_file' });
        events?.invalidFile(s.path, s.agent, s.errors ?? []);
        logger.warn({ file: s.path, agent: s.agent, errors: s.errors }, s.agent ? 'agent file is invalid; the last good version keeps running' : 'agent file is invalid; not loaded');
      } else if (s.state === 'loaded') {
        logger.info({ file: s.path, agent: s.agent }, 'agent file loaded');
        // A model the providers cannot serve as written is worth a line at warn level (issue 12).
        // So is a provider or tool it names that the server cannot resolve (issue 15).
        for (const w of s.errors ?? []) if (DEPLOY_CHECK_CODES.has(w.code)) logger.warn({ file: s.path, agent: s.agent, field: w.field, code: w.code }, w.message);
      }
    },
    onRemoved: (p) => logger.info({ file: p }, 'agent file removed'),
    onError: (e, c) => logger.error({ err: e, file: c.path }, c.what),
  });
  const statuses = watcher.loadAll();
  await watcher.start();
  // Agents per origin, kept from registry events (O(1) per change, so bulk deploys stay linear).
  const initial = registry.list().agents;
  const perOrigin = { file: initial.filter((a) => a.origin.kind === 'file').length, api: 0 };
  perOrigin.api = initial.length - perOrigin.file;
  const setGauge = () => {
    metrics.agentsDeployed.set({ origin: 'file' }, perOrigin.file);
    metrics.agentsDeployed.set({ origin: 'api' }, perOrigin.api);
  };
  registry.on('change', (e) => {
    if (e.type !== 'deployed') perOrigin[(e.type === 'updated' ? e.previous : e.agent).origin.kind]--;
    if (e.type !== 'removed') perOrigin[e.agent.origin.kind]++;
    setGauge();
  });
  setGauge();

  // Telemetry reaches the executor and the bus only when it is on: with [metrics] enabled = false
  // and no tracing configured, their hot paths skip it entirely.
  const telemetry = { ...(tracing.enabled && { tracer: tracing.tracer }), ...(config.metrics.enabled && { metrics }) };
  const executor = new Executor(config, registry, { ...telemetry, limiter, agentLimits: agentLimitsLookup(config.auth.limits), ...(events && { onExecuted: events.onExecuted }) });
  const warming = executor.warm().catch((e: unknown) => logger.error({ err: e }, 'isolation pool failed to start'));
  const bus = new MessageBus({ db, registry, config: config.messaging, log: logger, ...telemetry });
  const agentHandler = executorHandler(executor, bus.store);
  bus.setAgentHandler(events ? events.receiving(agentHandler) : agentHandler);
  events?.observeBus(bus);
  executor.hostTools.register(sendMessageTool(bus));
  // --- Memory (src/memory): the knowledge graph in caxton.db or PostgreSQL; its nine tools (create_entities...)
  // as host tools; {{memory_context}} and auto_store through the executor. The embedder loads on first use. ---
  const memory = createMemory({ config: config.memory, dataDir: config.data_dir, db, registry, log: logger });
  if (memory) {
    for (const t of instrumentMemoryTools(memory.tools, telemetry)) executor.hostTools.register(t);
    executor.memory = instrumentExecutionMemory(memory.execution, telemetry);
    metrics.sources.memoryEntities = () => memory.store.countEntities();
  }
  const memoryPlugins = memory ? [async (a: FastifyInstance) => memoryRoutes(a, { store: memory.store })] : []; // /api/v1/memory/...
  // --- end memory ---
  // --- MCP (src/mcp): mounted MCP servers as host tools `NAME.tool` (waits for each one's first
  // connection attempt), GET /api/v1/mcp/servers, and Caxton served over MCP at POST /mcp. ---
  const toolAudit = new ToolAuditStore(db, {
    onError: (e) => logger.error({ err: e }, 'tool audit records could not be written'),
    retentionMs: config.tool_audit.retention,
    maxRows: config.tool_audit.max_rows,
  });
  // The catalogue (below) watches this sink for the outcome of MCP calls made through the API.
  const toolAuditWatch = new AuditWatch(toolAudit);
  // OAuth state of mounted servers ([mcp_servers.NAME.oauth]): table mcp_oauth of caxton.db.
  migrate(db, MCP_OAUTH_MIGRATIONS);
  const mcp = new McpClientManager({
    servers: config.mcp_servers,
    tools: executor.hostTools,
    audit: toolAuditWatch,
    logger,
    oauthStore: new SqliteOAuthStore(db),
    ...(config.source.file && { baseDir: dirname(config.source.file) }),
  });
  await mcp.start();
  // Served over MCP too: conversations (the bus) and memory entities as resources, under the REST routes' permissions.
  const mcpRoutes = mcpPlugins({
    executor,
    agents: registry,
    config: config.mcp,
    logger,
    clients: mcp,
    conversations: bus,
    ...(memory && { memory: memory.store }),
    ...(config.metrics.enabled && { metrics }),
  });
  // --- end MCP ---
  // --- WebAssembly tool servers (src/tools/wasm/manager.ts): built-in packages (tools/builtin/) and
  // API-deployed ones (SQLite) as host tools `SERVER.tool`, under the operator's [tools.NAME]
  // grants, every call audited in toolAudit; REST under /api/v1/tools. ---
  const { limits: toolCaps, ...toolGrants } = config.tools;
  const tools = new ToolServerManager({
    db,
    tools: executor.hostTools,
    grants: toolGrants,
    caps: toolCaps,
    audit: toolAudit,
    logger,
    baseDir: config.source.file ? dirname(config.source.file) : process.cwd(),
  });
  tools.start();
  // --- deploy-time tool check (issue 15): from here on deploys and file changes warn about tools no
  // built-in, host tool, tool server or mounted MCP server offers; the agents loaded before now
  // (stored, agents_dir at start) are checked once, to the log. ---
  {
    const check = toolCheck({ builtins: executor.deps.tools, host: executor.hostTools, mcpServers: () => Object.keys(config.mcp_servers) });
    service.addCheck((def) => check(def.tools));
    for (const a of registry.list().agents) {
      for (const w of check(a.definition.tools)) {
        logger.warn({ agent: a.definition.name, ...(a.origin.kind === 'file' && { file: a.origin.path }), field: w.field, code: w.code }, w.message);
      }
    }
  }
  // --- end deploy-time tool check ---
  // --- tool catalogue (src/tools/catalogue.ts, issue 15): every source (tool servers, MCP servers,
  // built-in and host tools) for /api/v1/tools, the CLI and the status overview. ---
  const catalogue = new ToolCatalogue({
    servers: tools,
    builtin: executor.deps.tools,
    host: executor.hostTools,
    mcp,
    audit: toolAuditWatch,
    ...(config.metrics.enabled && { metrics }),
  });
  const toolPlugin = (app: FastifyInstance) => toolRoutes(app, { tools, catalogue, audit: toolAudit, bodyLimit: config.server.max_body_size });
  // --- end tool catalogue ---
  // --- end tool servers ---
  // --- audit trail (src/audit, ADR 0023): every state-changing request recorded by a root
  // onResponse hook (auditRecorder, by the AUDIT_ROUTES table) in SQLite `audit_log` and, with
  // [audit] jsonl, a JSON-lines file (relative to caxton.toml); GET /api/v1/audit reads it. ---
  const baseDir = config.source.file ? dirname(config.source.file) : process.cwd();
  let audit: AuditStore | undefined;
  try {
    audit = config.audit.enabled
      ? new AuditStore(db, {
          onError: (e) => logger.error({ err: e }, 'audit records could not be written'),
          retentionMs: config.audit.retention,
          maxRows: config.audit.max_rows,
          ...(config.audit.jsonl !== undefined && { jsonl: resolve(baseDir, config.audit.jsonl) }),
        })
      : undefined;
  } catch (e) {
    // [audit] jsonl could not be opened: stop cleanly, the error names the file.
    await bus.close();
    await mcp.close();
    tools.close();
    toolAudit.close();
    await executor.close();
    await watcher.close();
    await memory?.close();
    sampler.stop();
    events?.close();
    reducer?.close();
    db.close();
    await tracing.shutdown();
    throw e;
  }
  const auditPlugins = [...(audit ? [auditRecorder(audit)] : []), (a: FastifyInstance) => auditRoutes(a, { ...(audit && { store: audit }) })];
  // --- end audit trail ---
  const observabilityPlugin = (a: FastifyInstance) =>
    observabilityRoutes(a, { ...(events && { events: events.store }), ...(logBuffer && { logs: logBuffer }), sampler, service, config, lifecycle, bus, tools, catalogue, ...(memory && { memory }) });
  // Executions stopped for client tool calls (OpenAI `tools`), until the client's results resume them (ADR 0029).
  const suspended = new SqliteSuspendedStore(db, { ttlMs: config.execution.suspended_ttl, onError: (e) => logger.error({ err: e }, 'suspended executions could not be pruned') });
  // Stored responses of POST /v1/responses (`store`), what previous_response_id continues.
  const responses = new SqliteResponseStore(db, { ttlMs: config.execution.responses_ttl, onError: (e) => logger.error({ err: e }, 'stored responses could not be pruned') });
  const recovered = bus.start();
  if (recovered.redelivering > 0) logger.info(recovered, 'redelivering messages accepted before the last stop');
  const app = await createApi({
    config,
    service,
    logger,
    metrics,
    tracer: tracing.tracer,
    lifecycle,
    executor,
    suspended,
    responses,
    bus,
    auth,
    plugins: [...mcpRoutes, toolPlugin, observabilityPlugin, ...memoryPlugins, ...auditPlugins, ...(opts.plugins ?? [])],
    ...(apiTls && { https: httpsOptions(apiTls.cfg, apiTls.material) }),
  });
  let url = '';
  let removeRunRecord = () => {};
  let metricsServer: Server | HttpsServer | undefined;
  let metricsUrl: string | undefined;
  const tls: { api?: TlsReloader; metrics?: TlsReloader } = {};
  try {
    if (opts.listen !== false) {
      await app.listen({ host: config.server.host, port: config.server.port });
      const addr = app.server.address() as AddressInfo;
      url = `${apiTls ? 'https' : 'http'}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
      if (apiTls) {
        tls.api = new TlsReloader(app.server as unknown as TlsServer, apiTls.cfg, 'server.tls', apiTls.material, logger);
        await tls.api.start();
      }
      // The local CLI finds this server's admin key through the run record (src/auth/local.ts).
      const keyFile = join(resolve(config.data_dir), ADMIN_KEY_FILE);
      if (config.auth.enabled && isLoopbackHost(config.server.host) && readKeyFile(keyFile)) removeRunRecord = writeRunRecord(addr.port, url, keyFile);
      if (config.metrics.enabled) {
        // Off loopback the metrics port needs a key with observe:read too; on loopback only the Host check applies.
        const guard = metricsGuard({
          requireAuth: config.auth.enabled && !isLoopbackHost(config.metrics.host),
          authenticators,
          allowedHosts: [...allowedHosts, ...(isLoopbackHost(config.metrics.host) || WILDCARD.has(config.metrics.host) ? [] : [config.metrics.host.toLowerCase()])],
        });
        const m = await startMetricsServer(metrics.registry, config.metrics.host, config.metrics.port, metricsTls && httpsOptions(metricsTls.cfg, metricsTls.material), guard);
        metricsServer = m.server;
        metricsUrl = m.url;
        if (metricsTls) {
          tls.metrics = new TlsReloader(m.server as TlsServer, metricsTls.cfg, 'metrics.tls', metricsTls.material, logger);
          await tls.metrics.start();
        }
      }
    } else await app.ready();
    await warming;
  } catch (e) {
    await tls.api?.close();
    await tls.metrics?.close();
    if (metricsServer) await new Promise<void>((r) => metricsServer!.close(() => r()));
    await bus.close();
    await app.close();
    await mcp.close();
    tools.close();
    toolAudit.close();
    await audit?.close();
    await executor.close();
    suspended.close();
    responses.close();
    await watcher.close();
    await service.close();
    await memory?.close();
    sampler.stop();
    events?.close();
    reducer?.close();
    db.close();
    await tracing.shutdown();
    throw e;
  }
  lifecycle.state = 'ready';
  logger.info(
    {
      url,
      metrics: metricsUrl,
      agents: registry.size,
      from_api: persisted,
      files: statuses.length,
      invalid_files: statuses.filter((s) => s.state === 'invalid').length,
      agents_dir: config.agents_dir,
      data_dir: config.data_dir,
    },
    'caxton ready',
  );

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      lifecycle.state = 'stopping';
      await watcher.close();
      await tls.api?.close();
      await tls.metrics?.close();
      // A keep-alive client whose request was in flight would hold close() open until the shutdown
      // timeout: close such connections as soon as they fall idle.
      const idle = setInterval(() => app.server.closeIdleConnections(), 100);
      idle.unref();
      await app.close(); // waits for in-flight requests
      clearInterval(idle);
      // The agent parser's worker thread (large agent bodies, ADR 0020), once no request can use it.
      await service.close();
      // Deliveries still running are abandoned, not lost: they stay pending and run again after a restart.
      await bus.close();
      await mcp.close();
      tools.close();
      toolAudit.close();
      await audit?.close(); // after app.close(): the last responses' rows are in
      await executor.close();
      suspended.close();
      responses.close();
      await memory?.close();
      sampler.stop();
      events?.close();
      if (metricsServer) await new Promise<void>((r) => metricsServer!.close(() => r()));
      removeRunRecord();
      jwt?.close();
      keys.flush();
      reducer?.close();
      db.close();
      // A final export that fails is reported (exportFailures), not thrown out of close().
      await tracing.shutdown().catch(() => {});
      exportFailures.flush(); // the failures since the last line, the shutdown's own flush included
      logger.info('caxton stopped');
    })());

  return { app, config, service, registry, executor, bus, metrics, logger, db, mcp, toolAudit, audit, memory, tools, events, logs: logBuffer, sampler, url, metricsUrl, tls, close };
}

function keyLimitsByName(keys: ApiKeyStore, name: string) {
  const k = keys.get(name);
  return k ? keys.limitsOf(k.id) : undefined;
}
