import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  ToolListChangedNotificationSchema,
  type CallToolResult,
  type Progress,
} from '@modelcontextprotocol/sdk/types.js';
import type { ToolContext, ToolResult } from '../tools/types.js';
import type { McpClientManagerOptions, McpServerStatus } from './mcp-client.js';
import { CatalogueFollower, type GatewayCatalogue } from './gateway-catalogue.js';
import { oauthStatus } from './oauth.js';
import { errorText, McpSupervisor, type McpServerConfig, type McpServerState } from './supervisor.js';
import { McpToolCaller, type McpTool } from './tool-caller.js';

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
    this.#tools = new McpToolCaller(this.#sup, opts.tools, opts.audit, opts.permissions);
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
