/**
 * MCP both ways: external MCP servers mounted as host tools (`[mcp_servers.NAME]` →
 * `NAME.tool`), and Caxton's tools and agents served over MCP (POST /mcp, `caxton mcp` on stdio).
 */
export {
  McpClientManager,
  type McpClientManagerOptions,
  type McpServerConfig,
  type McpServerState,
  type McpServerStatus,
} from './mcp-client.js';
export { McpConnection } from './connection.js';
export { resultText } from './tool-caller.js';
export { rpcError } from './offer.js';
export {
  CaxtonMcpTools,
  createMcpServer,
  ASK_PREFIX,
  type McpCallOptions,
  type McpCaller,
  type McpServeConfig,
  type McpServeDeps,
  type McpServerOptions,
} from './mcp-server.js';
export { CaxtonMcpPrompts } from './prompts.js';
export {
  CaxtonMcpResources,
  RESOURCE_NOT_FOUND,
  RESOURCE_PAGE,
  type ConversationReader,
  type ResourceSources,
} from './resources.js';
export { mcpPlugins, MCP_PATH, type McpHttpOptions } from './mcp-http.js';
export { serveMcpStdio, type McpStdioOptions, type McpStdioSession } from './stdio.js';
export {
  CaxtonOAuthProvider,
  MCP_OAUTH_MIGRATIONS,
  MemoryOAuthStore,
  NeedsAuthorizationError,
  SqliteOAuthStore,
  type McpOAuthStatus,
  type OAuthStore,
} from './oauth.js';
