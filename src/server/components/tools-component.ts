import { dirname } from 'node:path';
import type { AgentRegistry, AgentService } from '../../agents/index.js';
import { toolApi } from '../../api/index.js';
import type { ServerConfig } from '../../config/index.js';
import { toolCheck, ungrantedTools, type Executor } from '../../execution/index.js';
import type { ToolSync } from '../../cluster/index.js';
import type { McpClientManager } from '../../mcp/index.js';
import type { Logger, Metrics, Tracer } from '../../observability/index.js';
import type { Db } from '../../storage/index.js';
import { ToolCatalogue, type AuditWatch } from '../../tools/index.js';
import type { ToolAuditLog } from '../../audit/index.js';
import { ToolServerManager } from '../../tools/servers/manager.js';
import { ToolPackageStore } from '../../tools/servers/sqlite-package-store.js';
import type { ClusterComponent } from './cluster-component.js';
import type { Component } from './component.js';
import { TOOLKIT_GROUPS } from './toolkit-component.js';

export interface ToolsComponent extends Component {
  /** WebAssembly tool servers (built-in and deployed): their tools are host tools `SERVER.tool`. */
  readonly servers: ToolServerManager;
  /** Every tool source (tool servers, MCP servers, built-in and host tools). */
  readonly catalogue: ToolCatalogue;
  /** On a cluster node: the propagation of deployed packages between nodes. */
  readonly sync: ToolSync | undefined;
}

/**
 * WebAssembly tool servers (src/tools/servers/manager.ts): built-in packages (tools/builtin/) and
 * API-deployed ones (the data dir's SQLite; on a cluster node the cluster's PostgreSQL, followed
 * through NATS notices by ToolSync) as host tools `SERVER.tool`, under the operator's [tools.NAME]
 * grants, every call audited; the deploy-time tool check; the tool catalogue; REST under /api/v1/tools.
 * Started after MCP and every other host tool, so the tool check sees them all.
 */
export async function startTools(opts: {
  config: ServerConfig;
  db: Db;
  executor: Executor;
  registry: AgentRegistry;
  service: AgentService;
  mcp: McpClientManager;
  audit: ToolAuditLog;
  auditWatch: AuditWatch;
  logger: Logger;
  metrics: Metrics;
  /** Set when tracing is on: direct tool calls record their `tool.call` span. */
  tracer?: Tracer | undefined;
  /** A cluster node: deployed packages live in the cluster's PostgreSQL and propagate to every node. */
  cluster?: ClusterComponent | undefined;
  /** Where the built-in packages are read from (default: tools/builtin of this package); false: none. */
  builtinDir?: string | false;
}): Promise<ToolsComponent> {
  const { config, executor, registry, logger, cluster } = opts;
  const { limits: toolCaps, ...toolGrants } = config.tools;
  const servers = new ToolServerManager({
    store: cluster ? cluster.packages : new ToolPackageStore(opts.db),
    tools: executor.hostTools,
    grants: toolGrants,
    caps: toolCaps,
    audit: opts.audit,
    logger,
    baseDir: config.source.file ? dirname(config.source.file) : process.cwd(),
    ...(opts.builtinDir !== undefined && { builtinDir: opts.builtinDir }),
  });
  // Their tools are registered now, each call waiting for its own server; the servers load once the
  // HTTP server listens (server.ts, ADR 0055).
  await servers.begin();
  let sync: ToolSync | undefined;
  if (cluster) {
    try {
      // Loaded here: a single node never loads NATS.
      const { ToolSync, toolsSubject } = await import('../../cluster/index.js');
      sync = await ToolSync.start({
        nc: cluster.nc,
        subject: toolsSubject(cluster.schema),
        node: cluster.cluster.node,
        manager: servers,
        log: logger,
      });
    } catch (e) {
      servers.close();
      throw e;
    }
  }
  // --- deploy-time tool check: from here on a deploy or file change naming a tool nothing offers is
  // refused (a Claude Code file is loaded with a warning instead: Claude Code ignores tools it does
  // not know). The files loaded before now are checked once: those refused are unloaded and marked
  // invalid; the stored API agents, already deployed, only warn. ---
  const check = toolCheck({
    builtins: executor.deps.tools,
    host: executor.hostTools,
    mcpServers: () => Object.keys(config.mcp_servers),
  });
  opts.service.addCheck((def) => [
    ...check(def.tools, def.metadata.claude_tools !== undefined ? 'warning' : 'error'),
    ...ungrantedTools(def.tools, config),
  ]);
  for (const status of opts.service.files.recheckFiles()) {
    for (const e of status.errors ?? [])
      logger.error(
        { agent: status.agent, file: status.path, field: e.field, code: e.code },
        `agent file not loaded: ${e.message}`,
      );
  }
  for (const a of registry.list().agents) {
    for (const w of check(a.definition.tools)) {
      logger.warn(
        {
          agent: a.definition.name,
          ...(a.origin.kind === 'file' && { file: a.origin.path }),
          field: w.field,
          code: w.code,
        },
        w.message,
      );
    }
  }
  // --- tool catalogue (src/tools/catalogue.ts): every source (tool servers, MCP servers,
  // built-in and host tools) for /api/v1/tools, the CLI and the status overview. ---
  const catalogue = new ToolCatalogue({
    servers,
    builtin: executor.deps.tools,
    host: executor.hostTools,
    groups: TOOLKIT_GROUPS,
    mcp: opts.mcp,
    audit: opts.auditWatch,
    ...(config.metrics.enabled && { metrics: opts.metrics }),
    ...(opts.tracer && { tracer: opts.tracer }),
  });
  return {
    name: 'tools',
    servers,
    catalogue,
    sync,
    routes: toolApi({ tools: servers, catalogue, audit: opts.audit, bodyLimit: config.server.max_body_size }),
    close: async () => {
      await sync?.stop();
      servers.close();
    },
  };
}
