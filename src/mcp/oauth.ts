/**
 * OAuth 2.1 for mounted Streamable HTTP MCP servers (`[mcp_servers.NAME.oauth]`, ADR 0030).
 *
 * The SDK does the protocol (protected resource metadata → authorization server metadata,
 * dynamic client registration, PKCE, the token and refresh requests, the retry after a 401); this
 * file gives it an `OAuthClientProvider` whose state lives in a per-server row of the data dir's
 * database (table `mcp_oauth`): the client information (registered or dynamically obtained), the
 * tokens, the PKCE verifier and `state` of a login in progress, and the cached discovery.
 *
 * Two modes:
 *  - `headless`, the provider of the running connection: it uses and refreshes stored tokens, and
 *    for client_credentials fetches them unattended. When a person is needed (no tokens yet, the
 *    refresh token refused), it never starts an authorization: it throws `NeedsAuthorizationError`,
 *    whose message says to run `caxton mcp login NAME`.
 *  - `login`, for `caxton mcp login` (through POST /api/v1/mcp/servers/:name/login): it ignores the
 *    stored tokens, registers the loopback redirect URI if the client is dynamic, keeps the PKCE
 *    verifier and state in the row, and hands back the authorization URL; `completeLogin` exchanges
 *    the code.
 *
 * Rows are never logged; every token and client secret read or written is registered with the
 * process SecretScrubber, so a server error or log line that quotes one shows "***".
 */
import { randomBytes } from 'node:crypto';
import type { OAuthClientProvider, OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';
import type { ServerConfig } from '../config/index.js';
import { registerSecrets } from '../shared/secrets.js';
import type { Db, Migration } from '../storage/index.js';

export type McpOAuthConfig = NonNullable<ServerConfig['mcp_servers'][string]['oauth']>;

export const MCP_OAUTH_MIGRATIONS: readonly Migration[] = [
  {
    id: 'mcp-001-oauth',
    sql: `
      CREATE TABLE mcp_oauth (
        server TEXT PRIMARY KEY,
        client_information TEXT,
        dynamic_client INTEGER NOT NULL DEFAULT 0,
        tokens TEXT,
        tokens_saved_at INTEGER,
        code_verifier TEXT,
        login_state TEXT,
        redirect_uri TEXT,
        pending_scope TEXT,
        discovery TEXT,
        updated_at INTEGER NOT NULL
      );
    `,
  },
];

/** What is kept per server. */
export interface OAuthRecord {
  client_information?: OAuthClientInformationMixed;
  /** The client information came from dynamic registration (and may be registered again). */
  dynamic_client?: boolean;
  tokens?: OAuthTokens;
  tokens_saved_at?: number;
  code_verifier?: string;
  login_state?: string;
  redirect_uri?: string;
  /** The scope the SDK chose when the server last asked for authorization (its WWW-Authenticate scope first): the next login asks for it. */
  pending_scope?: string;
  discovery?: OAuthDiscoveryState;
}

export type OAuthPatch = { [K in keyof OAuthRecord]?: OAuthRecord[K] | null };

export interface OAuthStore {
  get(server: string): OAuthRecord;
  update(server: string, patch: OAuthPatch): void;
}

/** Registers the secrets of a record with the process scrubber (ADR 0017). */
function remember(r: OAuthRecord | OAuthPatch): void {
  const values: string[] = [];
  if (r.tokens) {
    values.push(r.tokens.access_token);
    if (r.tokens.refresh_token) values.push(r.tokens.refresh_token);
    if (r.tokens.id_token) values.push(r.tokens.id_token);
  }
  const secret = (r.client_information as { client_secret?: string } | null | undefined)?.client_secret;
  if (secret) values.push(secret);
  if (r.code_verifier) values.push(r.code_verifier);
  if (values.length > 0) registerSecrets(values);
}

/** In memory: tests and the conformance client. */
export class MemoryOAuthStore implements OAuthStore {
  readonly #rows = new Map<string, OAuthRecord>();
  get(server: string): OAuthRecord {
    return { ...this.#rows.get(server) };
  }
  update(server: string, patch: OAuthPatch): void {
    remember(patch);
    const row: Record<string, unknown> = { ...this.#rows.get(server) };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete row[k];
      else if (v !== undefined) row[k] = v;
    }
    this.#rows.set(server, row as OAuthRecord);
  }
}

interface Row {
  client_information: string | null;
  dynamic_client: number;
  tokens: string | null;
  tokens_saved_at: number | null;
  code_verifier: string | null;
  login_state: string | null;
  redirect_uri: string | null;
  pending_scope: string | null;
  discovery: string | null;
}

const JSON_COLUMNS = new Set(['client_information', 'tokens', 'discovery']);
const COLUMNS = [
  'client_information',
  'dynamic_client',
  'tokens',
  'tokens_saved_at',
  'code_verifier',
  'login_state',
  'redirect_uri',
  'pending_scope',
  'discovery',
] as const;

/** Table `mcp_oauth` of caxton.db (the data dir). */
export class SqliteOAuthStore implements OAuthStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  get(server: string): OAuthRecord {
    const row = this.#db.prepare(`SELECT ${COLUMNS.join(', ')} FROM mcp_oauth WHERE server = ?`).get(server) as
      Row | undefined;
    if (!row) return {};
    const rec: OAuthRecord = {};
    const parse = <T>(s: string | null): T | undefined => {
      if (s === null) return undefined;
      try {
        return JSON.parse(s) as T;
      } catch {
        return undefined;
      }
    };
    const client = parse<OAuthClientInformationMixed>(row.client_information);
    if (client) rec.client_information = client;
    rec.dynamic_client = row.dynamic_client === 1;
    const tokens = parse<OAuthTokens>(row.tokens);
    if (tokens) rec.tokens = tokens;
    if (row.tokens_saved_at !== null) rec.tokens_saved_at = row.tokens_saved_at;
    if (row.code_verifier !== null) rec.code_verifier = row.code_verifier;
    if (row.login_state !== null) rec.login_state = row.login_state;
    if (row.redirect_uri !== null) rec.redirect_uri = row.redirect_uri;
    if (row.pending_scope !== null) rec.pending_scope = row.pending_scope;
    const discovery = parse<OAuthDiscoveryState>(row.discovery);
    if (discovery) rec.discovery = discovery;
    remember(rec);
    return rec;
  }

  update(server: string, patch: OAuthPatch): void {
    remember(patch);
    const sets: string[] = [];
    const values: unknown[] = [];
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined || !(COLUMNS as readonly string[]).includes(k)) continue;
      sets.push(`${k} = ?`);
      values.push(
        v === null
          ? k === 'dynamic_client'
            ? 0
            : null
          : JSON_COLUMNS.has(k)
            ? JSON.stringify(v)
            : typeof v === 'boolean'
              ? v
                ? 1
                : 0
              : v,
      );
    }
    const now = Date.now();
    this.#db.transaction(() => {
      this.#db
        .prepare('INSERT INTO mcp_oauth (server, updated_at) VALUES (?, ?) ON CONFLICT(server) DO NOTHING')
        .run(server, now);
      if (sets.length > 0)
        this.#db
          .prepare(`UPDATE mcp_oauth SET ${sets.join(', ')}, updated_at = ? WHERE server = ?`)
          .run(...values, now, server);
    })();
  }
}

/** The command that authorizes a server: named in every "needs authorization" message. */
export const loginCommand = (server: string): string => `caxton mcp login ${server}`;

/** A person must authorize Caxton with the server (no tokens yet, or the refresh token refused). */
export class NeedsAuthorizationError extends Error {
  constructor(
    readonly server: string,
    readonly reason: string,
  ) {
    super(`MCP server "${server}" needs authorization (${reason}): run \`${loginCommand(server)}\``);
    this.name = 'NeedsAuthorizationError';
  }
}

/** Whether an error (or one of its causes) says a person must authorize. */
export function needsAuthorization(e: unknown): NeedsAuthorizationError | undefined {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 8; cur = cur.cause, depth++) {
    if (cur instanceof NeedsAuthorizationError) return cur;
  }
  return undefined;
}

export interface ProviderOptions {
  server: string;
  cfg: McpOAuthConfig;
  store: OAuthStore;
  /** The client secret (from `client_secret_env`). */
  clientSecret?: string | undefined;
  mode: 'headless' | 'login';
  /** Login mode: the loopback redirect URI the CLI listens on. */
  redirectUri?: string;
}

/** The client_id of a headless provider before any registration: never sent to a server. */
const UNREGISTERED = 'caxton-unregistered';

/** The SDK's view of one server's OAuth state (see the file comment for the two modes). */
export class CaxtonOAuthProvider implements OAuthClientProvider {
  readonly #o: ProviderOptions;
  #authorizationUrl: URL | undefined;
  /** Why a new authorization would be needed (for the headless error). */
  #why: string | undefined;

  constructor(opts: ProviderOptions) {
    this.#o = opts;
  }

  get authorizationUrl(): URL | undefined {
    return this.#authorizationUrl;
  }

  get #cc(): boolean {
    return this.#o.cfg.grant === 'client_credentials';
  }

  get #rec(): OAuthRecord {
    return this.#o.store.get(this.#o.server);
  }

  get redirectUrl(): string | undefined {
    if (this.#cc) return undefined;
    if (this.#o.mode === 'login') return this.#o.redirectUri;
    // Headless: only a marker of the interactive grant (a headless provider never redirects).
    return this.#rec.redirect_uri ?? `http://127.0.0.1:${this.#o.cfg.redirect_port ?? 0}/callback`;
  }

  get clientMetadata(): OAuthClientMetadata {
    const redirect = this.redirectUrl;
    const confidential = this.#o.clientSecret !== undefined || this.#cc;
    return {
      client_name: this.#o.cfg.client_name,
      redirect_uris: redirect !== undefined ? [redirect] : [],
      grant_types: this.#cc ? ['client_credentials'] : ['authorization_code', 'refresh_token'],
      response_types: this.#cc ? [] : ['code'],
      token_endpoint_auth_method: confidential ? 'client_secret_basic' : 'none',
      ...(this.#o.cfg.scopes.length > 0 && { scope: this.#o.cfg.scopes.join(' ') }),
    };
  }

  /** client_credentials: the token request (authorization_code: the SDK's default, code + verifier). */
  prepareTokenRequest(scope?: string): URLSearchParams | undefined {
    if (!this.#cc) return undefined;
    const params = new URLSearchParams({ grant_type: 'client_credentials' });
    const s = scope ?? (this.#o.cfg.scopes.length > 0 ? this.#o.cfg.scopes.join(' ') : undefined);
    if (s) params.set('scope', s);
    return params;
  }

  state(): string {
    const s = randomBytes(24).toString('base64url');
    if (this.#o.mode === 'login') this.#o.store.update(this.#o.server, { login_state: s });
    return s;
  }

  clientInformation(): OAuthClientInformationMixed | undefined {
    const { cfg } = this.#o;
    const rec = this.#rec;
    if (cfg.client_id !== undefined) {
      const base = {
        client_id: cfg.client_id,
        ...(this.#o.clientSecret !== undefined && { client_secret: this.#o.clientSecret }),
      };
      const stored = rec.client_information;
      return stored?.client_id === cfg.client_id && typeof stored.issuer === 'string'
        ? { ...base, issuer: stored.issuer }
        : base;
    }
    const stored = rec.dynamic_client ? rec.client_information : undefined;
    if (!stored) {
      // Registering needs the redirect URI the login will use: a headless interactive client waits
      // for the login. A placeholder lets the SDK get as far as the authorization URL, whose scope
      // (the server's WWW-Authenticate scope first) the login then asks for; nothing is sent.
      if (this.#o.mode === 'headless' && !this.#cc) {
        this.#why ??= 'Caxton is not registered with its authorization server yet';
        return { client_id: UNREGISTERED };
      }
      return undefined;
    }
    // A login on another loopback port registers again (the redirect URI is part of the registration).
    if (
      this.#o.mode === 'login' &&
      this.#o.redirectUri !== undefined &&
      !((stored as { redirect_uris?: unknown }).redirect_uris as string[] | undefined)?.includes(this.#o.redirectUri)
    )
      return undefined;
    return stored;
  }

  saveClientInformation(info: OAuthClientInformationMixed): void {
    if (info.client_id === UNREGISTERED) return;
    if (this.#o.cfg.client_id !== undefined) {
      // Only the binding to its authorization server: the secret stays in the environment.
      const { client_secret: _secret, ...rest } = info as OAuthClientInformationMixed & { client_secret?: string };
      this.#o.store.update(this.#o.server, { client_information: rest, dynamic_client: false });
    } else {
      this.#o.store.update(this.#o.server, { client_information: info, dynamic_client: true });
    }
  }

  tokens(): OAuthTokens | undefined {
    // A login asks for a new authorization, whatever is stored.
    if (this.#o.mode === 'login') return undefined;
    return this.#rec.tokens;
  }

  saveTokens(tokens: OAuthTokens): void {
    this.#why = undefined;
    this.#o.store.update(this.#o.server, {
      tokens,
      tokens_saved_at: Date.now(),
      ...(this.#o.mode === 'login' && { code_verifier: null, login_state: null, pending_scope: null }),
    });
  }

  redirectToAuthorization(url: URL): void {
    if (this.#o.mode === 'login') {
      this.#authorizationUrl = url;
      return;
    }
    // The scope the server asked for (WWW-Authenticate, else its metadata, else ours): the login asks for it.
    const scope = url.searchParams.get('scope');
    if (scope) this.#o.store.update(this.#o.server, { pending_scope: scope });
    // The SDK goes on to a new authorization when a refresh fails for a reason other than a refused
    // grant (the authorization server down, a 5xx): the refresh token still stands, so this is a
    // failure to retry with backoff, not a reason to ask a person.
    if (this.#why === undefined && this.#rec.tokens?.refresh_token !== undefined) {
      throw new Error(
        `refreshing the access token of MCP server "${this.#o.server}" failed (the authorization server did not answer, or answered with a server error); the refresh token is kept and the refresh retried`,
      );
    }
    throw new NeedsAuthorizationError(
      this.#o.server,
      this.#why ?? (this.#rec.tokens ? 'the stored tokens were not accepted' : 'no tokens stored yet'),
    );
  }

  saveCodeVerifier(verifier: string): void {
    if (this.#o.mode === 'login') this.#o.store.update(this.#o.server, { code_verifier: verifier });
  }

  codeVerifier(): string {
    const v = this.#rec.code_verifier;
    if (v === undefined)
      throw new Error(
        `no login in progress for MCP server "${this.#o.server}": start one with \`${loginCommand(this.#o.server)}\``,
      );
    return v;
  }

  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    const patch: OAuthPatch = {};
    if (scope === 'all' || scope === 'tokens') {
      if (this.#rec.tokens?.refresh_token) this.#why = 'the authorization server refused the refresh token';
      patch.tokens = null;
      patch.tokens_saved_at = null;
    }
    if (scope === 'all' || scope === 'client') {
      patch.client_information = null;
      patch.dynamic_client = null;
    }
    if (scope === 'all' || scope === 'verifier') patch.code_verifier = null;
    if (scope === 'all' || scope === 'discovery') patch.discovery = null;
    this.#o.store.update(this.#o.server, patch);
  }

  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.#o.store.update(this.#o.server, { discovery: state });
  }

  discoveryState(): OAuthDiscoveryState | undefined {
    return this.#rec.discovery;
  }
}

/** What GET /api/v1/mcp/servers shows of a server's OAuth state (never a token). */
export interface McpOAuthStatus {
  grant: 'authorization_code' | 'client_credentials';
  client: 'registered' | 'dynamic' | 'not_registered';
  /** authorized: tokens stored; needs_authorization: a person must run `caxton mcp login`; none: nothing stored yet. */
  state: 'authorized' | 'needs_authorization' | 'none';
  token_expires_at: string | null;
  refreshable: boolean;
  scopes: string[];
  redirect_port: number | null;
  login_in_progress: boolean;
  login_command: string | null;
}

export function oauthStatus(
  server: string,
  cfg: McpOAuthConfig,
  store: OAuthStore,
  needsAuth: boolean,
): McpOAuthStatus {
  const rec = store.get(server);
  const t = rec.tokens;
  const expires =
    t?.expires_in !== undefined && rec.tokens_saved_at !== undefined
      ? new Date(rec.tokens_saved_at + t.expires_in * 1000).toISOString()
      : null;
  return {
    grant: cfg.grant,
    client:
      cfg.client_id !== undefined
        ? 'registered'
        : rec.dynamic_client && rec.client_information
          ? 'dynamic'
          : 'not_registered',
    state: needsAuth ? 'needs_authorization' : t ? 'authorized' : 'none',
    token_expires_at: expires,
    refreshable: t?.refresh_token !== undefined,
    scopes: t?.scope !== undefined ? t.scope.split(' ').filter((s) => s !== '') : cfg.scopes,
    redirect_port: cfg.redirect_port ?? null,
    login_in_progress: rec.login_state !== undefined,
    login_command: cfg.grant === 'authorization_code' ? loginCommand(server) : null,
  };
}

/** A redirect URI a login may use: http on a loopback address, with a port. */
export function checkRedirectUri(uri: string): string | undefined {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return 'redirect_uri is not a URL';
  }
  if (u.protocol !== 'http:' || !['127.0.0.1', '[::1]', 'localhost'].includes(u.hostname) || u.port === '')
    return 'redirect_uri must be http://127.0.0.1:PORT/... (a loopback address with a port)';
  if (u.username || u.password || u.hash) return 'redirect_uri must not carry credentials or a fragment';
  return undefined;
}

export interface LoginOptions {
  server: string;
  url: string;
  cfg: McpOAuthConfig;
  store: OAuthStore;
  clientSecret?: string | undefined;
  fetchFn?: typeof fetch;
}

/**
 * Starts a login: discovery, registration (dynamic clients), PKCE; returns the authorization URL
 * for the person to open. client_credentials needs no person: it fetches the tokens at once.
 */
export async function startLogin(
  o: LoginOptions & { redirectUri: string },
): Promise<{ authorized: true } | { authorization_url: string; redirect_uri: string }> {
  o.store.update(o.server, { code_verifier: null, login_state: null, redirect_uri: o.redirectUri });
  const p = new CaxtonOAuthProvider({
    server: o.server,
    cfg: o.cfg,
    store: o.store,
    clientSecret: o.clientSecret,
    mode: o.cfg.grant === 'client_credentials' ? 'headless' : 'login',
    redirectUri: o.redirectUri,
  });
  const scope = o.store.get(o.server).pending_scope ?? (o.cfg.scopes.length > 0 ? o.cfg.scopes.join(' ') : undefined);
  const r = await (
    await sdkAuth()
  )(p, {
    serverUrl: o.url,
    ...(scope !== undefined && { scope }),
    ...(o.fetchFn && { fetchFn: o.fetchFn }),
  });
  if (r === 'AUTHORIZED' || !p.authorizationUrl) return { authorized: true };
  return { authorization_url: p.authorizationUrl.toString(), redirect_uri: o.redirectUri };
}

/** Ends a login: checks `state`, exchanges the code (with the stored PKCE verifier), stores the tokens. */
export async function completeLogin(o: LoginOptions & { code: string; state: string }): Promise<void> {
  const rec = o.store.get(o.server);
  if (rec.login_state === undefined || rec.redirect_uri === undefined)
    throw new LoginError(
      `no login in progress for MCP server "${o.server}": start one with \`${loginCommand(o.server)}\``,
    );
  if (rec.login_state !== o.state)
    throw new LoginError(
      `the state of the redirect does not match the login in progress for MCP server "${o.server}": start again with \`${loginCommand(o.server)}\``,
    );
  const p = new CaxtonOAuthProvider({
    server: o.server,
    cfg: o.cfg,
    store: o.store,
    clientSecret: o.clientSecret,
    mode: 'login',
    redirectUri: rec.redirect_uri,
  });
  await (
    await sdkAuth()
  )(p, { serverUrl: o.url, authorizationCode: o.code, ...(o.fetchFn && { fetchFn: o.fetchFn }) });
  o.store.update(o.server, { code_verifier: null, login_state: null });
}

/** The SDK's OAuth flow, loaded by the first login: the store and the routes above load without the SDK. */
async function sdkAuth() {
  return (await import('@modelcontextprotocol/sdk/client/auth.js')).auth;
}

/** A login request that cannot proceed (no login in progress, state mismatch): HTTP 409. */
export class LoginError extends Error {
  override name = 'LoginError';
}
