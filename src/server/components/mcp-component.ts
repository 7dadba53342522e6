import { dirname } from 'node:path';
import { underApi } from '../../api/index.js';
import type { AgentRegistry } from '../../agents/index.js';
import type { ServerConfig } from '../../config/index.js';
import type { Executor } from '../../execution/index.js';
// Not the package's index: these modules load the MCP SDK only when the configuration mounts
// servers (src/mcp/mcp-client.ts) or a client first calls POST /mcp (http-component.ts).
import { McpClientManager } from '../../mcp/mcp-client.js';
import { mcpPlugins } from '../../mcp/mcp-http.js';
import { MCP_OAUTH_MIGRATIONS, SqliteOAuthStore } from '../../mcp/oauth.js';
import type { MemoryBackend } from '../../memory/index.js';
import type { MessagingBus } from '../../messaging/index.js';
import type { Logger, Metrics } from '../../observability/index.js';
import { migrate, type Db } from '../../storage/index.js';
import type { AuditWatch } from '../../tools/index.js';
import { workspacePermissions } from '../../tools/permissions/index.js';
import type { Component } from './component.js';

export interface McpComponent extends Component {
  /** Mounted MCP servers (`[mcp_servers.NAME]`): their tools are host tools `NAME.tool`. */
  readonly clients: McpClientManager;
}

/**
 * MCP (src/mcp): mounted MCP servers as host tools `NAME.tool` (waits for each one's first
 * connection attempt), GET /api/v1/mcp/servers, and Caxton served over MCP at POST /mcp.
 */
export async function startMcp(opts: {
  config: ServerConfig;
  db: Db;
  executor: Executor;
  registry: AgentRegistry;
  bus: MessagingBus;
  memory: MemoryBackend | undefined;
  audit: AuditWatch;
  logger: Logger;
  metrics: Metrics;
}): Promise<McpComponent> {
  const { config, executor, logger } = opts;
  // OAuth state of mounted servers ([mcp_servers.NAME.oauth]): table mcp_oauth of caxton.db.
  migrate(opts.db, MCP_OAUTH_MIGRATIONS);
  const clients = new McpClientManager({
    servers: config.mcp_servers,
    tools: executor.hostTools,
    audit: opts.audit,
    permissions: workspacePermissions(config.workspace),
    logger,
    oauthStore: new SqliteOAuthStore(opts.db),
    ...(config.source.file && { baseDir: dirname(config.source.file) }),
  });
  try {
    await clients.start();
  } catch (e) {
    await clients.close();
    throw e;
  }
  // Served over MCP too: conversations (the bus) and memory entities as resources, under the REST routes' permissions.
  const routes = mcpPlugins({
    executor,
    agents: opts.registry,
    config: config.mcp,
    logger,
    clients,
    conversations: opts.bus.reads,
    ...(opts.memory && { memory: opts.memory }),
    ...(config.metrics.enabled && { metrics: opts.metrics }),
  });
  return { name: 'mcp', clients, routes: underApi(routes), close: () => clients.close() };
}
