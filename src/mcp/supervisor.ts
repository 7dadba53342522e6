/**
 * The connection to one external MCP server, supervised: it builds the transport (stdio child
 * process or Streamable HTTP, with OAuth when configured), connects, pings HTTP servers, and on
 * any loss reconnects with exponential backoff (src/shared/backoff.ts). A server that needs a
 * person to authorize it waits for `caxton mcp login` instead. What runs over the connection
 * (tool sync and calls: tool-caller.ts; a gateway's prompts and resources: gateway-catalogue.ts)
 * hooks in through `SupervisorHooks`.
 */
import { isAbsolute, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { ServerConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { backoffDelay } from '../shared/backoff.js';
import { scrubSecrets } from '../shared/secrets.js';
import { VERSION } from '../shared/version.js';
import {
  CaxtonOAuthProvider,
  completeLogin,
  loginCommand,
  MemoryOAuthStore,
  NeedsAuthorizationError,
  needsAuthorization,
  startLogin,
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
export type McpServerState =
  'connecting' | 'ready' | 'failed' | 'reconnecting' | 'needs_authorization' | 'disabled' | 'closed';

export interface SupervisorOptions {
  logger?: Logger | undefined;
  /** Relative `cwd` and relative command paths are resolved against this (caxton.toml's folder). */
  baseDir?: string | undefined;
  /** Reconnection delays: base doubled per failed attempt, capped at max (defaults 500 ms, 30 s). */
  backoff?: { baseMs?: number; maxMs?: number } | undefined;
  /** HTTP servers are pinged this often so that a lost server shows in the status (default 15 s; 0: never). */
  pingIntervalMs?: number | undefined;
  /** Where OAuth state is kept; default: in memory. */
  oauthStore?: OAuthStore | undefined;
  /** Where `client_secret_env` is read (default process.env). */
  env?: NodeJS.ProcessEnv | undefined;
  /** The fetch used for HTTP servers and their OAuth requests (tests). */
  fetch?: typeof fetch | undefined;
}

/** What runs over the connection. */
export interface SupervisorHooks {
  /** The state, the error or the server's lists changed. */
  onChange(): void;
  /** Before connecting: notification handlers on the new client (`current()` is false once it is replaced). */
  prepare(client: Client, current: () => boolean): void;
  /** Connected, before `ready`: list what the server offers. A throw fails the attempt. */
  connected(client: Client): Promise<void>;
}

/** What a server that asks for elicitation is answered (JSON-RPC error). */
export function elicitationRefusal(server: string): string {
  return `elicitation refused: Caxton runs agents unattended and cannot ask a person for input (MCP server "${server}" sent elicitation/create; Caxton declares no elicitation capability)`;
}

const STDERR_TAIL = 4096;

export function errorText(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error && !e.message.includes(cause.message) ? `${e.message}: ${cause.message}` : e.message;
  }
  return String(e);
}

export function redactUrl(u: string): string {
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

export class McpSupervisor {
  readonly name: string;
  readonly cfg: McpServerConfig;
  readonly log: Logger | undefined;
  readonly oauthStore: OAuthStore | undefined;
  readonly #opts: SupervisorOptions;
  readonly #hooks: SupervisorHooks;
  #state: McpServerState;
  #client: Client | undefined;
  #transport: StdioClientTransport | StreamableHTTPClientTransport | undefined;
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

  constructor(name: string, cfg: McpServerConfig, opts: SupervisorOptions, hooks: SupervisorHooks) {
    this.name = name;
    this.cfg = cfg;
    this.#opts = opts;
    this.#hooks = hooks;
    this.log = opts.logger?.child({ mcp_server: name });
    this.#state = cfg.enabled ? 'connecting' : 'disabled';
    if (cfg.oauth) this.oauthStore = opts.oauthStore ?? new MemoryOAuthStore();
  }

  get state(): McpServerState {
    return this.#state;
  }

  /** The connected client (undefined unless ready). */
  get client(): Client | undefined {
    return this.#client;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  get nextRetryAt(): number | null {
    return this.#nextRetryAt;
  }

  get transportKind(): 'stdio' | 'http' {
    return this.cfg.url !== undefined ? 'http' : 'stdio';
  }

  /** Connecting and listing: `connect_timeout`, else the call timeout. */
  get connectTimeout(): number {
    return this.cfg.connect_timeout ?? this.cfg.timeout;
  }

  /** The status fields the supervisor knows (McpServerStatus in mcp-client.ts adds the tools and OAuth). */
  figures() {
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    const version = this.#client?.getServerVersion();
    const pid = this.#transport instanceof StdioClientTransport ? this.#transport.pid : null;
    return {
      transport: this.transportKind,
      target: this.cfg.url !== undefined ? redactUrl(this.cfg.url) : [this.cfg.command!, ...this.cfg.args].join(' '),
      state: this.#state,
      last_error: this.#lastError,
      last_error_at: iso(this.#lastErrorAt),
      connected_at: iso(this.#connectedAt),
      attempts: this.#attempts,
      next_retry_at: iso(this.#nextRetryAt),
      reconnects: this.#reconnects,
      pid: this.#state === 'ready' ? pid : null,
      server_info: version ? { name: version.name, version: version.version } : null,
      elicitations_refused: this.#elicitationsRefused,
    };
  }

  get #clientSecret(): string | undefined {
    const v = this.cfg.oauth?.client_secret_env;
    return v !== undefined ? (this.#opts.env ?? process.env)[v] : undefined;
  }

  #loginOptions() {
    const oauth = this.cfg.oauth;
    if (!oauth || this.cfg.url === undefined || !this.oauthStore)
      throw new Error(
        `MCP server "${this.name}" has no [mcp_servers.${this.name}.oauth]: there is nothing to log in to`,
      );
    return {
      server: this.name,
      url: this.cfg.url,
      cfg: oauth,
      store: this.oauthStore,
      clientSecret: this.#clientSecret,
      ...(this.#opts.fetch && { fetchFn: this.#opts.fetch }),
    };
  }

  /** `caxton mcp login`, first half: the authorization URL (or, for client_credentials, tokens at once). */
  async startLogin(
    redirectUri: string,
  ): Promise<{ authorized: true } | { authorization_url: string; redirect_uri: string }> {
    const r = await startLogin({ ...this.#loginOptions(), redirectUri });
    if ('authorized' in r) this.reconnectNow();
    return r;
  }

  /** `caxton mcp login`, second half: exchanges the code, then connects with the new tokens. */
  async completeLogin(code: string, state: string): Promise<void> {
    await completeLogin({ ...this.#loginOptions(), code, state });
    this.log?.info('MCP server authorized (caxton mcp login); connecting');
    this.reconnectNow();
  }

  /** Connects now (after a login) unless connected or an attempt is under way. */
  reconnectNow(): void {
    if (this.#state === 'closed' || this.#state === 'disabled' || this.#state === 'ready' || this.#pending) return;
    clearTimeout(this.#retryTimer);
    this.#attempts = 0;
    void this.#connect();
  }

  /** Starts connecting; resolves when the first attempt has ended (connected or failed). */
  start(): Promise<void> {
    if (this.#state === 'disabled' || this.#state === 'closed') return Promise.resolve();
    this.#first ??= this.#connect();
    return this.#first;
  }

  #setState(s: McpServerState): void {
    if (this.#state === 'closed') return;
    this.#state = s;
    this.#hooks.onChange();
  }

  #makeTransport(): StdioClientTransport | StreamableHTTPClientTransport {
    const cfg = this.cfg;
    if (cfg.url !== undefined) {
      return new StreamableHTTPClientTransport(new URL(cfg.url), {
        ...(Object.keys(cfg.headers).length > 0 && { requestInit: { headers: cfg.headers } }),
        ...(cfg.oauth &&
          this.oauthStore && {
            authProvider: new CaxtonOAuthProvider({
              server: this.name,
              cfg: cfg.oauth,
              store: this.oauthStore,
              clientSecret: this.#clientSecret,
              mode: 'headless',
            }),
          }),
        ...(this.#opts.fetch && { fetch: this.#opts.fetch }),
      });
    }
    const base = this.#opts.baseDir ?? process.cwd();
    let command = cfg.command!;
    if ((command.startsWith('./') || command.startsWith('../')) && !isAbsolute(command))
      command = resolve(base, command);
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
      for (const line of text.split('\n'))
        if (line.trim() !== '') this.log?.debug({ stderr: line }, 'MCP server stderr');
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
    client.onerror = (e) => this.log?.debug({ err: errorText(e) }, 'MCP transport error');
    client.onclose = () => {
      if (this.#client === client)
        this.lost(this.transportKind === 'stdio' ? this.#exitReason() : 'the connection was closed');
    };
    // No elicitation capability is declared; a server that asks anyway gets a JSON-RPC error that
    // says why (an unknown method would only say "Method not found").
    client.fallbackRequestHandler = (request) => {
      if (request.method === 'elicitation/create') {
        this.#elicitationsRefused++;
        this.log?.warn(
          { refused: this.#elicitationsRefused },
          'MCP server asked for elicitation: refused (agents run unattended)',
        );
        this.#hooks.onChange();
        return Promise.reject(new McpError(ErrorCode.InvalidRequest, elicitationRefusal(this.name)));
      }
      return Promise.reject(
        new McpError(
          ErrorCode.MethodNotFound,
          `Method not found: Caxton's MCP client does not offer ${request.method}`,
        ),
      );
    };
    this.#hooks.prepare(client, () => this.#client === client);
    this.#pending = client;
    const attempt = (async () => {
      try {
        await client.connect(transport, { timeout: this.connectTimeout });
        if (this.#state === 'closed') throw new Error('closed');
        await this.#hooks.connected(client);
      } catch (e) {
        // A child that exits during the handshake explains itself on stderr.
        const why =
          this.transportKind === 'stdio' && this.#lastStderrLine()
            ? `${errorText(e)} (stderr: ${this.#lastStderrLine()})`
            : errorText(e);
        await client.close().catch(() => {});
        if (this.#state === 'closed') return;
        const auth = this.authNeeded(e);
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
      this.log?.info({ server: client.getServerVersion() }, 'MCP server connected');
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

  /** The connection broke (process exited, HTTP failure): record why, reconnect later. */
  lost(reason: string): void {
    if (this.#state === 'closed') return;
    const client = this.#drop();
    if (client) void client.close().catch(() => {});
    this.log?.warn({ reason }, 'MCP server connection lost; reconnecting');
    this.#fail(`connection lost: ${reason}`);
  }

  /** The error means a person must authorize (only with the authorization_code grant). */
  authNeeded(e: unknown): NeedsAuthorizationError | undefined {
    if (this.cfg.oauth?.grant !== 'authorization_code') return undefined;
    const need = needsAuthorization(e);
    if (need) return need;
    if (e instanceof UnauthorizedError)
      return new NeedsAuthorizationError(this.name, `the server refused the credentials: ${e.message}`);
    return undefined;
  }

  /** `client`, connected, was refused its credentials: dropped, and no retries until a login. */
  unauthorized(client: Client, auth: NeedsAuthorizationError): void {
    if (this.#client !== client) return;
    this.#drop();
    void client.close().catch(() => {});
    this.#needsAuthorization(auth);
  }

  #drop(): Client | undefined {
    const client = this.#client;
    this.#client = undefined;
    this.#transport = undefined;
    this.#stopPing();
    return client;
  }

  /** No retries until `caxton mcp login` (reconnectNow) or a restart: a person must act. */
  #needsAuthorization(e: NeedsAuthorizationError): void {
    this.#attempts++;
    this.#lastError = scrubSecrets(e.message);
    this.#lastErrorAt = Date.now();
    this.#nextRetryAt = null;
    clearTimeout(this.#retryTimer);
    this.log?.warn({ err: this.#lastError, login: loginCommand(this.name) }, 'MCP server needs authorization');
    this.#setState('needs_authorization');
  }

  #fail(message: string): void {
    this.#attempts++;
    this.#lastError = scrubSecrets(message); // shown by GET /api/v1/mcp/servers and in call errors
    this.#lastErrorAt = Date.now();
    const delay = backoffDelay(this.#attempts - 1, {
      baseMs: this.#opts.backoff?.baseMs ?? 500,
      maxMs: this.#opts.backoff?.maxMs ?? 30_000,
      jitter: [0.8, 1.2],
    });
    this.#nextRetryAt = Date.now() + delay;
    if (this.#attempts === 1 || this.#attempts % 10 === 0)
      this.log?.warn({ err: message, attempts: this.#attempts, retry_in_ms: delay }, 'MCP server unavailable');
    this.#setState('failed');
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => void this.#connect(), delay);
    this.#retryTimer.unref();
  }

  #startPing(client: Client): void {
    const every = this.#opts.pingIntervalMs ?? 15_000;
    if (this.transportKind !== 'http' || every <= 0) return;
    this.#stopPing();
    this.#pingTimer = setInterval(() => {
      if (this.#client !== client) return;
      client.ping({ timeout: Math.min(this.cfg.timeout, every) }).catch((e: unknown) => {
        if (this.#client !== client) return;
        const auth = this.authNeeded(e);
        if (auth) this.unauthorized(client, auth);
        else this.lost(`ping failed: ${errorText(e)}`);
      });
    }, every);
    this.#pingTimer.unref();
  }

  #stopPing(): void {
    clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  /** Stops reconnecting and closes the connection (ending a stdio child). */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#retryTimer);
    this.#stopPing();
    await this.#pending?.close().catch(() => {});
    await this.#attempt?.catch(() => {});
    const transport = this.#transport;
    const client = this.#drop();
    if (transport instanceof StreamableHTTPClientTransport) await transport.terminateSession().catch(() => {});
    await client?.close().catch(() => {});
  }
}
