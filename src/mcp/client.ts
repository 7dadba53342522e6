/**
 * MCP client side: external MCP servers (`[mcp_servers.NAME]` in caxton.toml) mounted as host
 * tools named `NAME.tool`. Each server is one `McpConnection`: a supervisor that connects (stdio
 * child process or Streamable HTTP) and reconnects with exponential backoff when the connection
 * is lost (supervisor.ts), the tool caller that keeps its tools registered and calls them
 * (tool-caller.ts), and, for a gateway server, its prompts and resources (gateway-catalogue.ts).
 * While a server is down its tools stay registered, and a call answers with an error naming the
 * server, its state and its last error.
 */
import { EventEmitter } from 'node:events';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  ToolListChangedNotificationSchema,
  type CallToolResult,
  type Progress,
} from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../observability/index.js';
import type { ToolRegistry } from '../tools/registry.js';
import type { ToolContext, ToolResult } from '../tools/types.js';
import type { ToolAuditSink } from '../tools/wasm/audit.js';
import { CatalogueFollower, type GatewayCatalogue } from './gateway-catalogue.js';
import { oauthStatus, type McpOAuthStatus, type OAuthStore } from './oauth.js';
import { errorText, McpSupervisor, type McpServerConfig, type McpServerState } from './supervisor.js';
import { McpToolCaller, type McpTool } from './tool-caller.js';

export { elicitationRefusal, type McpServerConfig, type McpServerState } from './supervisor.js';
export { McpTool, resultText, scrubResult } from './tool-caller.js';

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

/** One external MCP server: its supervised connection, its tools and (gateway) its catalogue. */
export class McpConnection {
  readonly name: string;
  readonly #sup: McpSupervisor;
  readonly #tools: McpToolCaller;
  readonly #catalogue: CatalogueFollower;

  constructor(name: string, cfg: McpServerConfig, opts: McpClientManagerOptions, onChange: () => void) {
    this.name = name;
    const gateway = cfg.gateway;
    this.#sup = new McpSupervisor(name, cfg, opts, {
      onChange,
      prepare: (client, current) => {
        client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
          if (!current()) return;
          this.#tools.refresh(client, current).then(
            (changed) => changed && onChange(),
            (e: unknown) =>
              this.#sup.log?.warn({ err: errorText(e) }, 'MCP server announced new tools but listing them failed'),
          );
        });
        if (gateway) this.#catalogue.follow(client, current);
      },
      connected: async (client: Client) => {
        this.#tools.sync(await this.#tools.list(client));
        if (gateway) await this.#catalogue.read(client);
      },
    });
    this.#tools = new McpToolCaller(this.#sup, opts.tools, opts.audit);
    this.#catalogue = new CatalogueFollower(
      () => this.#sup.connectTimeout,
      onChange,
      (e) =>
        this.#sup.log?.warn(
          { err: errorText(e) },
          'MCP server announced new prompts or resources but listing them failed',
        ),
    );
  }

  get state(): McpServerState {
    return this.#sup.state;
  }

  /** `[mcp_servers.NAME] gateway = true`: Caxton's /mcp offers this server's tools, prompts and resources as its own. */
  get gateway(): boolean {
    return this.#sup.cfg.gateway;
  }

  /** The tools registered for this server, with the server's own specs. */
  mountedTools(): McpTool[] {
    return this.#tools.tools();
  }

  /** A gateway server's prompts, resources and templates as last read (empty for other servers). */
  get catalogue(): GatewayCatalogue {
    return this.#catalogue.catalogue;
  }

  /** Starts connecting; resolves when the first attempt has ended (connected or failed). */
  start(): Promise<void> {
    return this.#sup.start();
  }

  /** `caxton mcp login`, first half: the authorization URL (or, for client_credentials, tokens at once). */
  startLogin(redirectUri: string): Promise<{ authorized: true } | { authorization_url: string; redirect_uri: string }> {
    return this.#sup.startLogin(redirectUri);
  }

  /** `caxton mcp login`, second half: exchanges the code, then connects with the new tokens. */
  completeLogin(code: string, state: string): Promise<void> {
    return this.#sup.completeLogin(code, state);
  }

  /** Connects now (after a login) unless connected or an attempt is under way. */
  reconnectNow(): void {
    this.#sup.reconnectNow();
  }

  status(): McpServerStatus {
    const s = this.#sup;
    const f = s.figures();
    return {
      name: this.name,
      transport: f.transport,
      target: f.target,
      state: f.state,
      tools: this.#tools.tools().length,
      tool_names: this.#tools.names(),
      last_error: f.last_error,
      last_error_at: f.last_error_at,
      connected_at: f.connected_at,
      attempts: f.attempts,
      next_retry_at: f.next_retry_at,
      reconnects: f.reconnects,
      pid: f.pid,
      server_info: f.server_info,
      conflicts: this.#tools.conflicts,
      elicitations_refused: f.elicitations_refused,
      auth:
        s.cfg.oauth && s.oauthStore
          ? oauthStatus(this.name, s.cfg.oauth, s.oauthStore, s.state === 'needs_authorization')
          : null,
    };
  }

  /** Runs one tool call on the server (McpToolCaller.call). */
  call(tool: McpTool, args: Record<string, unknown>, ctx: ToolContext): Promise<ToolResult> {
    return this.#tools.call(tool, args, ctx);
  }

  /** The same call for a gateway: the server's result as it is (McpToolCaller.callThrough). */
  callThrough(
    tool: McpTool,
    args: Record<string, unknown>,
    ctx: ToolContext,
    onprogress?: (p: Progress) => void,
  ): Promise<CallToolResult> {
    return this.#tools.callThrough(tool, args, ctx, onprogress);
  }

  /** Another request to a gateway server (McpToolCaller.request). */
  request<T>(
    what: string,
    fn: (client: Client, opts: { signal?: AbortSignal; timeout: number }) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    return this.#tools.request(what, fn, signal);
  }

  /** Stops reconnecting, closes the connection (ending a stdio child) and unregisters the tools. */
  async close(): Promise<void> {
    if (this.#sup.state === 'closed') return;
    await this.#sup.close();
    this.#tools.unregisterAll();
  }
}

/**
 * Every mounted MCP server. `start()` connects them all (waiting for each one's first attempt);
 * `statuses()` is what GET /api/v1/mcp/servers shows; `close()` ends them. Emits `change` when a
 * server's state or tool list changes.
 */
export class McpClientManager extends EventEmitter<{ change: [McpServerStatus] }> {
  readonly #connections = new Map<string, McpConnection>();

  constructor(opts: McpClientManagerOptions) {
    super();
    for (const [name, cfg] of Object.entries(opts.servers)) {
      const conn: McpConnection = new McpConnection(name, cfg, opts, () => this.emit('change', conn.status()));
      this.#connections.set(name, conn);
    }
  }

  get size(): number {
    return this.#connections.size;
  }

  async start(): Promise<void> {
    await Promise.all([...this.#connections.values()].map((c) => c.start()));
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
    await Promise.all([...this.#connections.values()].map((c) => c.close()));
  }
}
