import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { FastifyInstance } from 'fastify';
import type { AgentRegistry, AgentService } from '../agents/index.js';
import { Readiness, type Lifecycle, type RoutePlugin } from '../api/index.js';
import type { AuditStore } from '../audit/index.js';
import { clusterStateConfig, secretValues, type ServerConfig } from '../config/index.js';
import type { Executor } from '../execution/index.js';
import type { McpClientManager } from '../mcp/index.js';
import type { MemoryComponent } from '../memory/index.js';
import type { MessagingBus } from '../messaging/index.js';
import { createLogger, Metrics, type Logger } from '../observability/index.js';
import type { AgentEvents } from '../observability/agent-event-recorder.js';
import { LogBuffer } from '../observability/log-buffer.js';
import type { StatusSampler } from '../observability/status.js';
import { CaxtonError } from '../shared/errors.js';
import { registerSecrets } from '../shared/secrets.js';
import { VERSION } from '../shared/version.js';
import type { Db } from '../storage/index.js';
import type { ToolServerManager } from '../tools/servers/index.js';
import type { ToolAuditLog } from '../audit/index.js';
import { ComponentStack } from './components/index.js';
import type { ConfigProblem } from '../api/readiness.js';
import { configProblems } from './config-problems.js';
import { ProviderReach } from './provider-reach.js';
import { isLoopbackHost } from './hosts.js';
import {
  becomeReady,
  startFoundation,
  startListeners,
  startSurfaces,
  startWork,
  type Foundation,
  type Listeners,
  type Preflight,
  type Surfaces,
  type Work,
} from './start-phases.js';
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
 * order, phase by phase (start-phases.ts): each one's routes, host tools and metrics join the
 * whole as it starts. close() closes them in reverse; a failure during start closes what had
 * started and rethrows (ADR 0034).
 */
export async function startServer(opts: StartOptions): Promise<CaxtonServer> {
  const pre = preflight(opts);
  const { stack } = pre;
  try {
    const base = await startFoundation(pre);
    const work = await startWork(pre, base);
    const surfaces = await startSurfaces(pre, base, work);
    const listeners = await startListeners(pre, base, surfaces);
    await becomeReady(pre, base, work, surfaces, listeners);
    return serverHandle(pre, base, work, surfaces, listeners);
  } catch (e) {
    await stack.close();
    throw e;
  }
}

/**
 * Everything settled before a component starts: secrets registered, the logger, readiness and the
 * lifecycle, the default provider's check begun, TLS files read, and the configurations that must
 * not start refused (an unauthenticated API reachable from another machine, a cluster node
 * without shared state).
 */
function preflight(opts: StartOptions): Preflight {
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
  const apiTls = config.server.tls
    ? { cfg: config.server.tls, material: readTlsMaterial(config.server.tls, 'server.tls') }
    : undefined;
  const metricsTls =
    config.metrics.enabled && config.metrics.tls
      ? { cfg: config.metrics.tls, material: readTlsMaterial(config.metrics.tls, 'metrics.tls') }
      : undefined;
  if (apiTls) warnIfExpiring(logger, 'server.tls', apiTls.material);
  if (metricsTls) warnIfExpiring(logger, 'metrics.tls', metricsTls.material);
  refuseUnsafeStart(config);
  const metrics = new Metrics();
  const stack = new ComponentStack({
    metrics,
    readiness,
    onCloseError: (component, err) => logger.error({ err, component }, `closing ${component} failed`),
  });
  return {
    config,
    logger,
    logBuffer,
    readiness,
    reach,
    reached,
    lifecycle,
    apiTls,
    metricsTls,
    metrics,
    stack,
    listen: opts.listen !== false,
    ...(opts.spanProcessors && { spanProcessors: opts.spanProcessors }),
    ...(opts.exportFailureLogIntervalMs !== undefined && {
      exportFailureLogIntervalMs: opts.exportFailureLogIntervalMs,
    }),
    ...(opts.plugins && { plugins: opts.plugins }),
    ...(opts.consoleDir !== undefined && { consoleDir: opts.consoleDir }),
    ...(opts.builtinToolsDir !== undefined && { builtinToolsDir: opts.builtinToolsDir }),
  };
}

/** The configurations refused before anything is opened. */
function refuseUnsafeStart(config: ServerConfig): void {
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
}

/** The started server as its caller sees it; close() stops every component in reverse start order, once. */
function serverHandle(
  pre: Preflight,
  base: Foundation,
  work: Work,
  surfaces: Surfaces,
  listeners: Listeners,
): CaxtonServer {
  const { config, logger, lifecycle, stack } = pre;
  const { http, metricsEndpoint } = listeners;
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
    service: base.agents.service,
    registry: base.agents.registry,
    executor: work.executor,
    bus: work.bus,
    metrics: pre.metrics,
    logger,
    db: base.db,
    mcp: surfaces.mcp.clients,
    toolAudit: work.toolAudit.store,
    audit: surfaces.audit.store,
    memory: work.memory?.graph,
    tools: surfaces.tools.servers,
    events: base.agents.events,
    logs: pre.logBuffer,
    sampler: base.observability.sampler,
    url: http.url,
    metricsUrl: metricsEndpoint?.url,
    problems: lifecycle.problems!,
    tls: { ...(http.tls && { api: http.tls }), ...(metricsEndpoint?.tls && { metrics: metricsEndpoint.tls }) },
    close,
  };
}
