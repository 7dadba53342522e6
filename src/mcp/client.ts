/**
 * MCP client side: external MCP servers (`[mcp_servers.NAME]` in caxton.toml) mounted as host
 * tools named `NAME.tool`. Each server has one `McpConnection` that connects (stdio child process
 * or Streamable HTTP), lists its tools, registers them on the host tool registry, and reconnects
 * with exponential backoff when the connection is lost. While a server is down its tools stay
 * registered, and a call answers with an error naming the server, its state and its last error.
 */
import { EventEmitter } from 'node:events';
import { isAbsolute, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  ErrorCode,
  McpError,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ToolListChangedNotificationSchema,
  type CallToolResult,
  type Progress,
  type Tool as McpToolSpec,
} from '@modelcontextprotocol/sdk/types.js';
import type { ServerConfig } from '../config/index.js';
import type { JsonSchema } from '../llm/types.js';
import type { Logger } from '../observability/index.js';
import { scrubSecrets, scrubSecretsIn } from '../shared/secrets.js';
import { VERSION } from '../shared/version.js';
import type { ToolRegistry } from '../tools/registry.js';
import type { Tool, ToolContext, ToolResult } from '../tools/types.js';
import { digestArgs, type ToolAuditSink } from '../tools/wasm/audit.js';
import { EMPTY_CATALOGUE, readCatalogue, type GatewayCatalogue } from './gateway-catalogue.js';
import type { CallOutcome } from '../tools/wasm/errors.js';
import {
  CaxtonOAuthProvider,
  completeLogin,
  loginCommand,
  MemoryOAuthStore,
  NeedsAuthorizationError,
  needsAuthorization,
  oauthStatus,
  startLogin,
  type McpOAuthStatus,
  type OAuthStore,
} from './oauth.js';

export type McpServerConfig = ServerConfig['mcp_servers'][string];

/**
 * - `connecting`: the first attempt is under way.
 * - `ready`: connected; its tools answer.
 * - `failed`: the last attempt failed or the connection was lost; the next attempt is at `next_retry_at`.
 * - `reconnecting`: a new attempt after a failure is under way.
 * - `needs_authorization`: an OAuth server (authorization_code) has no usable tokens: a person must
 *   run `caxton mcp login NAME`; no attempt is made until then.
 * - `disabled`: `enabled = false` in caxton.toml.
 * - `closed`: the server is shutting down.
 */
export type McpServerState = 'connecting' | 'ready' | 'failed' | 'reconnecting' | 'needs_authorization' | 'disabled' | 'closed';

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

/** What a server that asks for elicitation is answered (JSON-RPC error). */
export function elicitationRefusal(server: string): string {
  return `elicitation refused: Caxton runs agents unattended and cannot ask a person for input (MCP server "${server}" sent elicitation/create; Caxton declares no elicitation capability)`;
}

const STDERR_TAIL = 4096;
const DEADLINE_MARGIN_MS = 25;

function errorText(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error && !e.message.includes(cause.message) ? `${e.message}: ${cause.message}` : e.message;
  }
  return String(e);
}

function redactUrl(u: string): string {
  try {
    const url = new URL(u);
    if (url.username || url.password) {
      url.username = url.username ? '***' : '';
      url.password = url.password ? '***' : '';
    }
    return url.toString();
  } catch {
    return u;
  }
}

/** The text the model sees for an MCP tool result. */
export function resultText(r: CallToolResult): string {
  const parts: string[] = [];
  for (const c of r.content ?? []) {
    switch (c.type) {
      case 'text':
        parts.push(c.text);
        break;
      case 'image':
      case 'audio':
        parts.push(`[${c.type} ${c.mimeType}, ${Math.floor((c.data.length * 3) / 4)} bytes]`);
        break;
      case 'resource':
        parts.push('text' in c.resource && typeof c.resource.text === 'string' ? c.resource.text : `[resource ${c.resource.uri}${c.resource.mimeType ? ` (${c.resource.mimeType})` : ''}]`);
        break;
      case 'resource_link':
        parts.push(`[resource link ${c.uri}${c.name ? ` (${c.name})` : ''}]`);
        break;
    }
  }
  if (parts.length === 0 && r.structuredContent !== undefined) parts.push(JSON.stringify(r.structuredContent));
  return parts.join('\n');
}

/** A tool result with the configured secrets scrubbed from every text it carries (binary data is left as it is). */
export function scrubResult(r: CallToolResult): CallToolResult {
  const content = (r.content ?? []).map((c) => {
    if (c.type === 'text') return { ...c, text: scrubSecrets(c.text) };
    if (c.type === 'resource' && 'text' in c.resource && typeof c.resource.text === 'string') return { ...c, resource: { ...c.resource, text: scrubSecrets(c.resource.text) } };
    return c;
  });
  return { ...r, content, ...(r.structuredContent !== undefined && { structuredContent: scrubSecretsIn(r.structuredContent) }) };
}

/** One mounted tool: `server.tool` in Caxton, `tool` on the MCP server. */
export class McpTool implements Tool {
  readonly name: string;
  description: string;
  input_schema: JsonSchema;
  /** The server's own description of the tool, as listed (a gateway offers it unchanged). */
  spec: McpToolSpec;
  constructor(
    readonly conn: McpConnection,
    readonly remoteName: string,
    spec: McpToolSpec,
  ) {
    this.name = `${conn.name}.${remoteName}`;
    this.description = '';
    this.input_schema = {};
    this.spec = spec;
    this.update(spec);
  }

  update(spec: McpToolSpec): void {
    this.spec = spec;
    this.description = spec.description ?? spec.title ?? `tool "${spec.name}" of MCP server "${this.conn.name}"`;
    this.input_schema = spec.inputSchema as JsonSchema;
  }

  invoke(args: Record<string, unknown>, ctx: ToolContext): Promise<ToolResult> {
    return this.conn.call(this, args, ctx);
  }
}

/** One external MCP server: its connection, state and tools. */
export class McpConnection {
  readonly name: string;
  readonly #cfg: McpServerConfig;
  readonly #opts: McpClientManagerOptions;
  readonly #log: Logger | undefined;
  readonly #onChange: () => void;
  #state: McpServerState;
  #client: Client | undefined;
  #transport: StdioClientTransport | StreamableHTTPClientTransport | undefined;
  readonly #tools = new Map<string, McpTool>();
  #conflicts: string[] = [];
  #lastError: string | null = null;
  #lastErrorAt: number | null = null;
  #connectedAt: number | null = null;
  #attempts = 0;
  #everConnected = false;
  #reconnects = 0;
  #nextRetryAt: number | null = null;
  #retryTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #stderr = '';
  #attempt: Promise<void> | undefined;
  /** The client of the attempt under way (closed at once by `close()`). */
  #pending: Client | undefined;
  #first: Promise<void> | undefined;
  #elicitationsRefused = 0;
  readonly #oauthStore: OAuthStore | undefined;
  /** `gateway = true`: its prompts and resources, passed through Caxton's /mcp (gateway.ts). */
  #catalogue: GatewayCatalogue = EMPTY_CATALOGUE;

  constructor(name: string, cfg: McpServerConfig, opts: McpClientManagerOptions, onChange: () => void) {
    this.name = name;
    this.#cfg = cfg;
    this.#opts = opts;
    this.#log = opts.logger?.child({ mcp_server: name });
    this.#onChange = onChange;
    this.#state = cfg.enabled ? 'connecting' : 'disabled';
    if (cfg.oauth) this.#oauthStore = opts.oauthStore ?? new MemoryOAuthStore();
  }

  get #clientSecret(): string | undefined {
    const v = this.#cfg.oauth?.client_secret_env;
    return v !== undefined ? (this.#opts.env ?? process.env)[v] : undefined;
  }

  #loginOptions() {
    const oauth = this.#cfg.oauth;
    if (!oauth || this.#cfg.url === undefined || !this.#oauthStore) throw new Error(`MCP server "${this.name}" has no [mcp_servers.${this.name}.oauth]: there is nothing to log in to`);
    return { server: this.name, url: this.#cfg.url, cfg: oauth, store: this.#oauthStore, clientSecret: this.#clientSecret, ...(this.#opts.fetch && { fetchFn: this.#opts.fetch }) };
  }

  /** `caxton mcp login`, first half: the authorization URL (or, for client_credentials, tokens at once). */
  async startLogin(redirectUri: string): Promise<{ authorized: true } | { authorization_url: string; redirect_uri: string }> {
    const r = await startLogin({ ...this.#loginOptions(), redirectUri });
    if ('authorized' in r) this.reconnectNow();
    return r;
  }

  /** `caxton mcp login`, second half: exchanges the code, then connects with the new tokens. */
  async completeLogin(code: string, state: string): Promise<void> {
    await completeLogin({ ...this.#loginOptions(), code, state });
    this.#log?.info('MCP server authorized (caxton mcp login); connecting');
    this.reconnectNow();
  }

  /** Connects now (after a login) unless connected or an attempt is under way. */
  reconnectNow(): void {
    if (this.#state === 'closed' || this.#state === 'disabled' || this.#state === 'ready' || this.#pending) return;
    clearTimeout(this.#retryTimer);
    this.#attempts = 0;
    void this.#connect();
  }

  get state(): McpServerState {
    return this.#state;
  }

  /** `[mcp_servers.NAME] gateway = true`: Caxton's /mcp offers this server's tools, prompts and resources as its own. */
  get gateway(): boolean {
    return this.#cfg.gateway;
  }

  /** The tools registered for this server, with the server's own specs. */
  mountedTools(): McpTool[] {
    return [...this.#tools.values()];
  }

  /** A gateway server's prompts, resources and templates as last read (empty for other servers). */
  get catalogue(): GatewayCatalogue {
    return this.#catalogue;
  }

  /** Connecting and listing tools: `connect_timeout`, else the call timeout. */
  get #connectTimeout(): number {
    return this.#cfg.connect_timeout ?? this.#cfg.timeout;
  }

  get #transportKind(): 'stdio' | 'http' {
    return this.#cfg.url !== undefined ? 'http' : 'stdio';
  }

  /** Starts connecting; resolves when the first attempt has ended (connected or failed). */
  start(): Promise<void> {
    if (this.#state === 'disabled' || this.#state === 'closed') return Promise.resolve();
    this.#first ??= this.#connect();
    return this.#first;
  }

  status(): McpServerStatus {
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    const version = this.#client?.getServerVersion();
    const pid = this.#transport instanceof StdioClientTransport ? this.#transport.pid : null;
    return {
      name: this.name,
      transport: this.#transportKind,
      target: this.#cfg.url !== undefined ? redactUrl(this.#cfg.url) : [this.#cfg.command!, ...this.#cfg.args].join(' '),
      state: this.#state,
      tools: this.#tools.size,
      tool_names: [...this.#tools.keys()].sort(),
      last_error: this.#lastError,
      last_error_at: iso(this.#lastErrorAt),
      connected_at: iso(this.#connectedAt),
      attempts: this.#attempts,
      next_retry_at: iso(this.#nextRetryAt),
      reconnects: this.#reconnects,
      pid: this.#state === 'ready' ? pid : null,
      server_info: version ? { name: version.name, version: version.version } : null,
      conflicts: [...this.#conflicts],
      elicitations_refused: this.#elicitationsRefused,
      auth: this.#cfg.oauth && this.#oauthStore ? oauthStatus(this.name, this.#cfg.oauth, this.#oauthStore, this.#state === 'needs_authorization') : null,
    };
  }

  #setState(s: McpServerState): void {
    if (this.#state === 'closed') return;
    this.#state = s;
    this.#onChange();
  }

  #makeTransport(): StdioClientTransport | StreamableHTTPClientTransport {
    const cfg = this.#cfg;
    if (cfg.url !== undefined) {
      return new StreamableHTTPClientTransport(new URL(cfg.url), {
        ...(Object.keys(cfg.headers).length > 0 && { requestInit: { headers: cfg.headers } }),
        ...(cfg.oauth &&
          this.#oauthStore && { authProvider: new CaxtonOAuthProvider({ server: this.name, cfg: cfg.oauth, store: this.#oauthStore, clientSecret: this.#clientSecret, mode: 'headless' }) }),
        ...(this.#opts.fetch && { fetch: this.#opts.fetch }),
      });
    }
    const base = this.#opts.baseDir ?? process.cwd();
    let command = cfg.command!;
    if ((command.startsWith('./') || command.startsWith('../')) && !isAbsolute(command)) command = resolve(base, command);
    const t = new StdioClientTransport({
      command,
      args: cfg.args,
      env: cfg.env,
      stderr: 'pipe',
      ...(cfg.cwd !== undefined ? { cwd: resolve(base, cfg.cwd) } : { cwd: base }),
    });
    t.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.#stderr = (this.#stderr + text).slice(-STDERR_TAIL);
      for (const line of text.split('\n')) if (line.trim() !== '') this.#log?.debug({ stderr: line }, 'MCP server stderr');
    });
    return t;
  }

  #lastStderrLine(): string | undefined {
    const lines = this.#stderr
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
    return lines.at(-1);
  }

  async #connect(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#nextRetryAt = null;
    this.#setState(this.#everConnected || this.#attempts > 0 ? 'reconnecting' : 'connecting');
    this.#stderr = '';
    const client = new Client({ name: 'caxton', version: VERSION }, { capabilities: {} });
    const transport = this.#makeTransport();
    client.onerror = (e) => this.#log?.debug({ err: errorText(e) }, 'MCP transport error');
    client.onclose = () => {
      if (this.#client === client) this.#lost(this.#transportKind === 'stdio' ? this.#exitReason() : 'the connection was closed');
    };
    // No elicitation capability is declared; a server that asks anyway gets a JSON-RPC error that
    // says why (an unknown method would only say "Method not found").
    client.fallbackRequestHandler = (request) => {
      if (request.method === 'elicitation/create') {
        this.#elicitationsRefused++;
        this.#log?.warn({ refused: this.#elicitationsRefused }, 'MCP server asked for elicitation: refused (agents run unattended)');
        this.#onChange();
        return Promise.reject(new McpError(ErrorCode.InvalidRequest, elicitationRefusal(this.name)));
      }
      return Promise.reject(new McpError(ErrorCode.MethodNotFound, `Method not found: Caxton's MCP client does not offer ${request.method}`));
    };
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      if (this.#client === client) this.#refresh(client).catch((e: unknown) => this.#log?.warn({ err: errorText(e) }, 'MCP server announced new tools but listing them failed'));
    });
    if (this.gateway) {
      const reread = () => {
        if (this.#client === client)
          this.#refreshCatalogue(client).catch((e: unknown) => this.#log?.warn({ err: errorText(e) }, 'MCP server announced new prompts or resources but listing them failed'));
      };
      client.setNotificationHandler(PromptListChangedNotificationSchema, reread);
      client.setNotificationHandler(ResourceListChangedNotificationSchema, reread);
    }
    this.#pending = client;
    const attempt = (async () => {
      try {
        await client.connect(transport, { timeout: this.#connectTimeout });
        if (this.#state === 'closed') throw new Error('closed');
        await this.#syncTools(await this.#listTools(client));
        if (this.gateway) this.#catalogue = await readCatalogue(client, this.#connectTimeout);
      } catch (e) {
        // A child that exits during the handshake explains itself on stderr.
        const why = this.#transportKind === 'stdio' && this.#lastStderrLine() ? `${errorText(e)} (stderr: ${this.#lastStderrLine()})` : errorText(e);
        await client.close().catch(() => {});
        if (this.#state === 'closed') return;
        const auth = this.#authNeeded(e);
        if (auth) this.#needsAuthorization(auth);
        else this.#fail(`connecting failed: ${why}`);
        return;
      } finally {
        this.#pending = undefined;
      }
      this.#client = client;
      this.#transport = transport;
      this.#connectedAt = Date.now();
      if (this.#everConnected) this.#reconnects++;
      this.#everConnected = true;
      this.#attempts = 0;
      this.#stderr = ''; // from now on, only what explains a later exit
      this.#log?.info({ tools: this.#tools.size, server: client.getServerVersion() }, 'MCP server connected');
      this.#setState('ready');
      this.#startPing(client);
    })();
    this.#attempt = attempt;
    await attempt;
  }

  #exitReason(): string {
    const line = this.#lastStderrLine();
    return `the server process exited${line ? ` (last stderr line: ${line})` : ''}`;
  }

  /** The connection broke (process exited, HTTP failure): keep the tools, record why, reconnect later. */
  #lost(reason: string): void {
    if (this.#state === 'closed') return;
    const client = this.#client;
    this.#client = undefined;
    this.#transport = undefined;
    this.#stopPing();
    if (client) void client.close().catch(() => {});
    this.#log?.warn({ reason }, 'MCP server connection lost; reconnecting');
    this.#fail(`connection lost: ${reason}`);
  }

  /** The error means a person must authorize (only with the authorization_code grant). */
  #authNeeded(e: unknown): NeedsAuthorizationError | undefined {
    if (this.#cfg.oauth?.grant !== 'authorization_code') return undefined;
    const need = needsAuthorization(e);
    if (need) return need;
    if (e instanceof UnauthorizedError) return new NeedsAuthorizationError(this.name, `the server refused the credentials: ${e.message}`);
    return undefined;
  }

  /** No retries until `caxton mcp login` (reconnectNow) or a restart: a person must act. */
  #needsAuthorization(e: NeedsAuthorizationError): void {
    this.#attempts++;
    this.#lastError = scrubSecrets(e.message);
    this.#lastErrorAt = Date.now();
    this.#nextRetryAt = null;
    clearTimeout(this.#retryTimer);
    this.#log?.warn({ err: this.#lastError, login: loginCommand(this.name) }, 'MCP server needs authorization');
    this.#setState('needs_authorization');
  }

  #fail(message: string): void {
    this.#attempts++;
    this.#lastError = scrubSecrets(message); // shown by GET /api/v1/mcp/servers and in call errors
    this.#lastErrorAt = Date.now();
    const base = this.#opts.backoff?.baseMs ?? 500;
    const max = this.#opts.backoff?.maxMs ?? 30_000;
    const delay = Math.min(max, base * 2 ** Math.min(this.#attempts - 1, 20)) * (0.8 + Math.random() * 0.4);
    this.#nextRetryAt = Date.now() + Math.round(delay);
    if (this.#attempts === 1 || this.#attempts % 10 === 0) this.#log?.warn({ err: message, attempts: this.#attempts, retry_in_ms: Math.round(delay) }, 'MCP server unavailable');
    this.#setState('failed');
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => void this.#connect(), delay);
    this.#retryTimer.unref();
  }

  #startPing(client: Client): void {
    const every = this.#opts.pingIntervalMs ?? 15_000;
    if (this.#transportKind !== 'http' || every <= 0) return;
    this.#stopPing();
    this.#pingTimer = setInterval(() => {
      if (this.#client !== client) return;
      client.ping({ timeout: Math.min(this.#cfg.timeout, every) }).catch((e: unknown) => {
        if (this.#client !== client) return;
        const auth = this.#authNeeded(e);
        if (!auth) return this.#lost(`ping failed: ${errorText(e)}`);
        this.#client = undefined;
        this.#transport = undefined;
        this.#stopPing();
        void client.close().catch(() => {});
        this.#needsAuthorization(auth);
      });
    }, every);
    this.#pingTimer.unref();
  }

  #stopPing(): void {
    clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  async #listTools(client: Client): Promise<McpToolSpec[]> {
    const all: McpToolSpec[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor !== undefined ? { cursor } : undefined, { timeout: this.#connectTimeout });
      all.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor !== undefined && all.length < 10_000);
    return all;
  }

  async #refresh(client: Client): Promise<void> {
    const list = await this.#listTools(client);
    if (this.#client === client) {
      this.#syncTools(list);
      this.#onChange();
    }
  }

  async #refreshCatalogue(client: Client): Promise<void> {
    const catalogue = await readCatalogue(client, this.#connectTimeout);
    if (this.#client === client) {
      this.#catalogue = catalogue;
      this.#onChange();
    }
  }

  /** Registers new tools, updates changed ones, unregisters those the server no longer has. */
  #syncTools(list: McpToolSpec[]): void {
    const registry = this.#opts.tools;
    const wanted = new Map(list.map((t) => [`${this.name}.${t.name}`, t]));
    for (const [full, tool] of this.#tools) {
      if (!wanted.has(full)) {
        if (registry.get(full) === tool) registry.unregister(full);
        this.#tools.delete(full);
      }
    }
    const conflicts: string[] = [];
    for (const [full, spec] of wanted) {
      const have = this.#tools.get(full);
      if (have) {
        have.update(spec);
        continue;
      }
      const tool = new McpTool(this, spec.name, spec);
      try {
        registry.register(tool);
        this.#tools.set(full, tool);
      } catch (e) {
        conflicts.push(full);
        this.#log?.warn({ tool: full, err: errorText(e) }, 'MCP tool not registered: the name is taken');
      }
    }
    this.#conflicts = conflicts;
  }

  #unavailable(tool: McpTool): string {
    const retry = this.#nextRetryAt !== null ? `; next attempt in ${Math.max(0, Math.round((this.#nextRetryAt - Date.now()) / 1000))} s` : '';
    return `MCP server "${this.name}" is unavailable (state: ${this.#state}${this.#lastError ? `; last error: ${this.#lastError}` : ''}${retry}); tool "${tool.name}" cannot be called now`;
  }

  /** Runs one tool call on the server, within the call's deadline and cancellation; the model sees its text. */
  async call(tool: McpTool, args: Record<string, unknown>, ctx: ToolContext): Promise<ToolResult> {
    const r = await this.#invoke(tool, args, ctx);
    if ('failed' in r) return r.failed;
    return r.isError ? { content: r.text, is_error: true } : { content: r.text };
  }

  /**
   * The same call for a gateway (gateway.ts): the server's result as it is (images, audio,
   * embedded resources, structured content), text scrubbed of the configured secrets, and the
   * server's progress notifications handed to `onprogress`.
   */
  async callThrough(tool: McpTool, args: Record<string, unknown>, ctx: ToolContext, onprogress?: (p: Progress) => void): Promise<CallToolResult> {
    const r = await this.#invoke(tool, args, ctx, onprogress);
    if ('failed' in r) return { content: [{ type: 'text', text: r.failed.content }], isError: true };
    return r.result;
  }

  /**
   * Another request to a gateway server (prompts/get, resources/read, completion/complete), within
   * the call timeout. The server's JSON-RPC errors reach the caller as they are; an unavailable
   * server is an internal error that names it and its state.
   */
  async request<T>(what: string, fn: (client: Client, opts: { signal?: AbortSignal; timeout: number }) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const client = this.#client;
    if (this.#state !== 'ready' || !client)
      throw new McpError(
        ErrorCode.InternalError,
        `MCP server "${this.name}" is unavailable (state: ${this.#state}${this.#lastError ? `; last error: ${scrubSecrets(this.#lastError)}` : ''}); ${what} cannot be served now`,
      );
    try {
      return await fn(client, { ...(signal && { signal }), timeout: this.#cfg.timeout });
    } catch (e) {
      if (e instanceof McpError) throw e;
      if (this.#client === client) this.#lost(errorText(e));
      throw new McpError(ErrorCode.InternalError, `MCP server "${this.name}" could not be reached for ${what}: ${scrubSecrets(errorText(e))}`);
    }
  }

  async #invoke(
    tool: McpTool,
    args: Record<string, unknown>,
    ctx: ToolContext,
    onprogress?: (p: Progress) => void,
  ): Promise<{ failed: ToolResult } | { result: CallToolResult; text: string; isError: boolean }> {
    const started = Date.now();
    const t0 = performance.now();
    const input = Buffer.from(JSON.stringify(args));
    const audit = (outcome: CallOutcome, output: string, error?: string) => {
      this.#opts.audit?.record({
        time: started,
        agent: ctx.agent,
        execution_id: ctx.execution_id,
        ...(ctx.conversation_id !== undefined && { conversation_id: ctx.conversation_id }),
        ...(ctx.principal !== undefined && { principal: ctx.principal }),
        server: this.name,
        tool: tool.name,
        args_digest: digestArgs(input),
        outcome,
        ...(error !== undefined && { error }),
        duration_us: Math.round((performance.now() - t0) * 1000),
        fuel_used: 0,
        memory_bytes: 0,
        input_bytes: input.length,
        output_bytes: Buffer.byteLength(output),
      });
    };
    const fail = (outcome: CallOutcome, message: string) => {
      const content = scrubSecrets(message); // it may quote the server's error
      audit(outcome, '', content);
      return { failed: { content, is_error: true } };
    };

    const client = this.#client;
    if (this.#state !== 'ready' || !client) return fail('io_error', this.#unavailable(tool));
    // Just inside the caller's deadline, so that this call (not the registry's backstop) times out,
    // tells the server to cancel, and says which server did not answer.
    const timeout = Math.max(1, Math.min(this.#cfg.timeout, ctx.deadline - Date.now() - DEADLINE_MARGIN_MS));
    try {
      // The calling execution's trace context travels in `_meta` (MCP has no header for it over stdio).
      const params = { name: tool.remoteName, arguments: args, ...(ctx.traceparent !== undefined && { _meta: { traceparent: ctx.traceparent } }) };
      // With onprogress the SDK sends a progress token of its own and hands each notification on.
      const r = (await client.callTool(params, undefined, { signal: ctx.signal, timeout, ...(onprogress && { onprogress, resetTimeoutOnProgress: false }) })) as
        CallToolResult | { toolResult: unknown };
      // The server's output is outside text: scrubbed of the configured secrets (ADR 0017).
      const result: CallToolResult = 'toolResult' in r ? { content: [{ type: 'text', text: JSON.stringify(r.toolResult) }] } : r;
      const text = scrubSecrets(resultText(result));
      const isError = result.isError === true;
      audit(isError ? 'error' : 'ok', text, isError ? text.slice(0, 1000) : undefined);
      return { result: scrubResult(result), text, isError };
    } catch (e) {
      if (ctx.signal.aborted) {
        audit('error', '', 'cancelled: the execution was cancelled or timed out');
        throw e;
      }
      if (e instanceof McpError && e.code === (ErrorCode.RequestTimeout as number)) {
        return fail('timeout', `MCP server "${this.name}" did not answer tool "${tool.name}" within ${timeout} ms; the call was cancelled`);
      }
      if (e instanceof McpError && e.code === (ErrorCode.ConnectionClosed as number)) {
        return fail(
          'io_error',
          `MCP server "${this.name}" closed the connection during the call to "${tool.name}": ${this.#lastError ?? 'connection closed'} (state: ${this.#state}; reconnecting with backoff)`,
        );
      }
      if (e instanceof McpError) {
        return fail(e.code === (ErrorCode.InvalidParams as number) ? 'invalid_input' : 'error', `MCP server "${this.name}" refused tool "${tool.name}": ${e.message}`);
      }
      const auth = this.#authNeeded(e);
      if (auth) {
        if (this.#client === client) {
          this.#client = undefined;
          this.#transport = undefined;
          this.#stopPing();
          void client.close().catch(() => {});
          this.#needsAuthorization(auth);
        }
        return fail('io_error', `MCP server "${this.name}" could not be called for tool "${tool.name}": ${auth.message}`);
      }
      // Not an MCP error: the transport broke (HTTP unreachable, child pipe gone).
      if (this.#client === client) this.#lost(errorText(e));
      return fail('io_error', `MCP server "${this.name}" could not be reached for tool "${tool.name}": ${errorText(e)} (state: ${this.#state}; reconnecting with backoff)`);
    }
  }

  /** Stops reconnecting, closes the connection (ending a stdio child) and unregisters the tools. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#retryTimer);
    this.#stopPing();
    await this.#pending?.close().catch(() => {});
    await this.#attempt?.catch(() => {});
    const client = this.#client;
    const transport = this.#transport;
    this.#client = undefined;
    this.#transport = undefined;
    if (transport instanceof StreamableHTTPClientTransport) await transport.terminateSession().catch(() => {});
    await client?.close().catch(() => {});
    for (const [full, tool] of this.#tools) if (this.#opts.tools.get(full) === tool) this.#opts.tools.unregister(full);
    this.#tools.clear();
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
