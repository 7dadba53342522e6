/**
 * MCP client side: external MCP servers (`[mcp_servers.NAME]` in caxton.toml) mounted as host
 * tools named `NAME.tool`. Each server is one `McpConnection` (connection.ts): a supervisor that
 * connects (stdio child process or Streamable HTTP) and reconnects with exponential backoff when
 * the connection is lost (supervisor.ts), the tool caller that keeps its tools registered and calls
 * them (tool-caller.ts), and, for a gateway server, its prompts and resources (gateway-catalogue.ts).
 * While a server is down its tools stay registered, and a call answers with an error naming the
 * server, its state and its last error.
 *
 * This module loads none of that: the connections and the MCP SDK behind them are imported by
 * `start()`, and only when servers are mounted, so a server without `[mcp_servers]` never loads them.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../observability/index.js';
import type { ToolRegistry } from '../tools/tool-registry.js';
import type { ToolAuditSink } from '../audit/index.js';
import type { PermissionSet } from '../tools/permissions/index.js';
import type { McpConnection } from './connection.js';
import type { McpOAuthStatus, OAuthStore } from './oauth.js';
import type { McpServerConfig, McpServerState } from './supervisor.js';

export type { McpConnection } from './connection.js';
export type { McpServerConfig, McpServerState } from './supervisor.js';
export type { McpTool } from './tool-caller.js';

export interface McpServerStatus {
  name: string;
  transport: 'stdio' | 'http';
  /** The command line (stdio) or the URL (http, without credentials). */
  target: string;
  state: McpServerState;
  /** Tools registered as `NAME.tool` (they stay registered while the server is down). */
  tools: number;
  tool_names: string[];
  last_error: string | null;
  last_error_at: string | null;
  connected_at: string | null;
  /** Failed attempts since the last successful connection. */
  attempts: number;
  next_retry_at: string | null;
  /** Successful connections after the first one. */
  reconnects: number;
  /** The child's process id (stdio, while running). */
  pid: number | null;
  server_info: { name: string; version: string } | null;
  /** Tool names that could not be registered because another tool holds them. */
  conflicts: string[];
  /** `elicitation/create` requests refused (Caxton runs agents unattended and asks no person). */
  elicitations_refused: number;
  /** `[mcp_servers.NAME.oauth]`: the OAuth state (never a token); null without OAuth. */
  auth: McpOAuthStatus | null;
}

export interface McpClientManagerOptions {
  servers: Record<string, McpServerConfig>;
  /** Where the tools are registered (the executor's host tools). */
  tools: ToolRegistry;
  logger?: Logger;
  /** Receives one record per tool call. */
  audit?: ToolAuditSink;
  /** The workspace's permission rules: their deny rules (`mcp__server__tool`) refuse a call of a mounted tool. */
  permissions?: PermissionSet;
  /** Relative `cwd` and relative command paths are resolved against this (caxton.toml's folder). */
  baseDir?: string;
  /** Reconnection delays: base doubled per failed attempt, capped at max (defaults 500 ms, 30 s). */
  backoff?: { baseMs?: number; maxMs?: number };
  /** HTTP servers are pinged this often so that a lost server shows in the status (default 15 s; 0: never). */
  pingIntervalMs?: number;
  /** Where OAuth state is kept (table mcp_oauth of caxton.db); default: in memory. */
  oauthStore?: OAuthStore;
  /** Where `client_secret_env` is read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The fetch used for HTTP servers and their OAuth requests (tests). */
  fetch?: typeof fetch;
}

/**
 * Every mounted MCP server. `start()` connects them all (waiting for each one's first attempt);
 * `statuses()` is what GET /api/v1/mcp/servers shows; `close()` ends them. Emits `change` when a
 * server's state or tool list changes.
 */
export class McpClientManager extends EventEmitter<{ change: [McpServerStatus] }> {
  readonly #opts: McpClientManagerOptions;
  readonly #connections = new Map<string, McpConnection>();
  #starting: Promise<void> | undefined;
  #closed = false;

  constructor(opts: McpClientManagerOptions) {
    super();
    this.#opts = opts;
  }

  /** The mounted servers, configured (their connections exist once `start()` has begun). */
  get size(): number {
    return Object.keys(this.#opts.servers).length;
  }

  /** Connects every server, waiting for each one's first attempt; once only. */
  start(): Promise<void> {
    this.#starting ??= (async () => {
      const servers = Object.entries(this.#opts.servers);
      if (servers.length === 0) return;
      const { McpConnection } = await import('./connection.js');
      if (this.#closed) return;
      for (const [name, cfg] of servers) {
        const conn: McpConnection = new McpConnection(name, cfg, this.#opts, () => this.emit('change', conn.status()));
        this.#connections.set(name, conn);
      }
      await Promise.all([...this.#connections.values()].map((c) => c.start()));
    })();
    return this.#starting;
  }

  statuses(): McpServerStatus[] {
    return [...this.#connections.values()].map((c) => c.status()).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  status(name: string): McpServerStatus | undefined {
    return this.#connections.get(name)?.status();
  }

  connection(name: string): McpConnection | undefined {
    return this.#connections.get(name);
  }

  /** Every connection, in configuration order. */
  connections(): McpConnection[] {
    return [...this.#connections.values()];
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#connections.values()].map((c) => c.close()));
  }
}
