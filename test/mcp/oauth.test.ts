/**
 * OAuth 2.1 for mounted MCP servers ([mcp_servers.NAME.oauth], src/mcp/oauth.ts) against a real
 * OAuth-protected MCP server on 127.0.0.1 (test/mcp/fixtures/oauth-server.ts): client_credentials
 * unattended, authorization_code through a login (the manager's and `caxton mcp login`'s),
 * refresh of an expired access token, "needs authorization" when the refresh token is revoked,
 * tokens kept out of logs and responses, and elicitation refused.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { McpClientManager, type McpServerConfig, type McpServerStatus } from '../../src/mcp/index.js';
import { MCP_OAUTH_MIGRATIONS, SqliteOAuthStore } from '../../src/mcp/oauth.js';
import { createLogger } from '../../src/observability/index.js';
import { migrate, openDatabase, type Db } from '../../src/storage/index.js';
import { ToolRegistry } from '../../src/tools/index.js';
import { assertBuilt, CLI, cleanEnv } from '../cli/helpers/cli.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import { startOAuthMcpServer, type OAuthMcpServer } from './fixtures/oauth-server.js';
import { ctx, freePort, httpServer } from './helpers.js';

const CC_SECRET = 'cc-secret-0123456789abcdef';
const oauth = (o: Partial<NonNullable<McpServerConfig['oauth']>>): NonNullable<McpServerConfig['oauth']> => ({
  grant: 'authorization_code',
  scopes: [],
  client_name: 'Caxton',
  ...o,
});

let as: OAuthMcpServer;
let db: Db;
let tools: ToolRegistry;
let mcp: McpClientManager;
let logText = '';

beforeAll(async () => {
  as = await startOAuthMcpServer();
  as.registerClient({
    client_id: 'caxton-cc',
    client_secret: CC_SECRET,
    redirect_uris: [],
    grant_types: ['client_credentials'],
  });
  db = openDatabase(makeTempDir('caxton-oauth-'), 'caxton.db');
  migrate(db, MCP_OAUTH_MIGRATIONS);
  tools = new ToolRegistry();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logText += chunk.toString('utf8');
      cb();
    },
  });
  mcp = new McpClientManager({
    tools,
    logger: createLogger('trace', sink),
    oauthStore: new SqliteOAuthStore(db),
    env: { CC_SECRET },
    pingIntervalMs: 0,
    backoff: { baseMs: 100, maxMs: 500 },
    servers: {
      cc: httpServer(as.mcpUrl, {
        oauth: oauth({ grant: 'client_credentials', client_id: 'caxton-cc', client_secret_env: 'CC_SECRET' }),
      }),
      ac: httpServer(as.mcpUrl, { oauth: oauth({}) }),
    },
  });
  await mcp.start();
});

afterAll(async () => {
  await mcp?.close();
  db?.close();
  await as?.close();
  removeTempDirs();
});

const status = (name: string): McpServerStatus => mcp.status(name)!;

describe('client_credentials', () => {
  it('connects unattended with a token from the token endpoint', async () => {
    expect(status('cc').last_error).toBeNull();
    expect(status('cc')).toMatchObject({
      state: 'ready',
      auth: { grant: 'client_credentials', state: 'authorized', client: 'registered', refreshable: false },
    });
    expect(as.counts.client_credentials).toBeGreaterThanOrEqual(1);
    expect(await tools.invoke(['cc.*'], 'cc.secret_hello', {}, ctx())).toEqual({ content: 'hello, authorized caller' });
  });

  it('fetches a new token when the access token expired', async () => {
    const before = as.counts.client_credentials;
    as.expireAccessTokens();
    expect(await tools.invoke(['cc.*'], 'cc.secret_hello', {}, ctx())).toEqual({ content: 'hello, authorized caller' });
    expect(as.counts.client_credentials).toBe(before + 1);
    expect(status('cc').state).toBe('ready');
  });
});

describe('authorization_code', () => {
  it('needs authorization before a login, and says which command to run', () => {
    const s = status('ac');
    expect(s.state).toBe('needs_authorization');
    expect(s.last_error).toContain('needs authorization');
    expect(s.last_error).toContain('caxton mcp login ac');
    expect(s.next_retry_at).toBeNull();
    expect(s.auth).toMatchObject({
      grant: 'authorization_code',
      state: 'needs_authorization',
      login_command: 'caxton mcp login ac',
    });
  });

  it('registers no tools and registers no client until a login (nothing is sent to the registration endpoint)', () => {
    expect(status('ac').tools).toBe(0);
    expect(status('ac').last_error).toContain('not registered with its authorization server yet');
    expect(as.counts.register).toBe(0);
  });

  it('a login (dynamic registration, PKCE, code exchange) stores the tokens and the tools answer', async () => {
    const conn = mcp.connection('ac')!;
    const started = await conn.startLogin('http://127.0.0.1:45999/callback');
    if (!('authorization_url' in started)) throw new Error('expected an authorization URL');
    const url = new URL(started.authorization_url);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('redirect_uri')).toBe('http://127.0.0.1:45999/callback');
    expect(as.counts.register).toBe(1);
    // The PKCE verifier and state are kept in the row until the exchange.
    const pending = db
      .prepare('SELECT code_verifier, login_state, tokens FROM mcp_oauth WHERE server = ?')
      .get('ac') as Record<string, string | null>;
    expect(pending.code_verifier).toEqual(expect.any(String));
    expect(pending.login_state).toBe(url.searchParams.get('state'));
    // The person approves: the authorization server redirects to the loopback URI with the code.
    const res = await fetch(url, { redirect: 'manual' });
    const back = new URL(res.headers.get('location')!);
    await expect(conn.completeLogin(back.searchParams.get('code')!, 'not-the-state')).rejects.toThrow(
      /state of the redirect does not match/,
    );
    await conn.completeLogin(back.searchParams.get('code')!, back.searchParams.get('state')!);
    await waitUntil(() => status('ac').state === 'ready', { timeoutMs: 5000, what: 'ac ready' });
    const row = db
      .prepare('SELECT code_verifier, login_state, tokens, dynamic_client FROM mcp_oauth WHERE server = ?')
      .get('ac') as Record<string, string | number | null>;
    expect(row.code_verifier).toBeNull();
    expect(row.login_state).toBeNull();
    expect(row.dynamic_client).toBe(1);
    expect(JSON.parse(row.tokens as string)).toMatchObject({ token_type: 'Bearer', refresh_token: expect.any(String) });
    expect(status('ac').auth).toMatchObject({
      state: 'authorized',
      client: 'dynamic',
      refreshable: true,
      login_in_progress: false,
    });
    expect(await tools.invoke(['ac.*'], 'ac.secret_hello', {}, ctx())).toEqual({ content: 'hello, authorized caller' });
  });

  it('refreshes an expired access token with the stored refresh token', async () => {
    const before = as.counts.refresh_token;
    as.expireAccessTokens();
    expect(await tools.invoke(['ac.*'], 'ac.secret_hello', {}, ctx())).toEqual({ content: 'hello, authorized caller' });
    expect(as.counts.refresh_token).toBe(before + 1);
    expect(status('ac').state).toBe('ready');
  });

  it('refuses elicitation with a message naming the server, and counts it', async () => {
    const r = await tools.invoke(['ac.*'], 'ac.ask_person', {}, ctx());
    expect(r.is_error).toBe(true);
    expect(as.elicitation.at(-1)?.error).toMatch(/Caxton runs agents unattended and cannot ask a person/);
    expect(as.elicitation.at(-1)?.error).toContain('MCP server "ac"');
    expect(status('ac').elicitations_refused).toBe(1);
    expect(logText).toContain('MCP server asked for elicitation: refused');
  });

  it('an authorization server that fails the refresh (500) is retried with backoff, not a reason to ask a person', async () => {
    as.tokenEndpointDown = true;
    as.expireAccessTokens();
    const r = await tools.invoke(['ac.*'], 'ac.secret_hello', {}, ctx());
    expect(r.is_error).toBe(true);
    await waitUntil(() => status('ac').state === 'failed' || status('ac').state === 'reconnecting', {
      timeoutMs: 5000,
      what: 'ac failed',
    });
    expect(status('ac').last_error).toMatch(/refreshing the access token of MCP server "ac" failed/);
    expect(status('ac').auth?.refreshable).toBe(true);
    as.tokenEndpointDown = false;
    await waitUntil(() => status('ac').state === 'ready', { timeoutMs: 10_000, what: 'ac ready again' });
    expect(await tools.invoke(['ac.*'], 'ac.secret_hello', {}, ctx())).toEqual({ content: 'hello, authorized caller' });
  });

  it('a revoked refresh token puts the server into needs_authorization with the login command', async () => {
    as.revokeRefreshTokens();
    as.expireAccessTokens();
    const r = await tools.invoke(['ac.*'], 'ac.secret_hello', {}, ctx());
    expect(r.is_error).toBe(true);
    expect(r.content).toContain('caxton mcp login ac');
    const s = status('ac');
    expect(s.state).toBe('needs_authorization');
    expect(s.last_error).toMatch(
      /needs authorization \(the authorization server refused the refresh token\): run `caxton mcp login ac`/,
    );
    // A later call says the same without reaching the server.
    const again = await tools.invoke(['ac.*'], 'ac.secret_hello', {}, ctx());
    expect(again.content).toMatch(/state: needs_authorization.*caxton mcp login ac/);
  });

  it('never shows a token in the logs or the statuses', () => {
    expect(as.issued.length).toBeGreaterThan(3);
    const statuses = JSON.stringify(mcp.statuses());
    for (const t of as.issued) {
      expect(logText).not.toContain(t);
      expect(statuses).not.toContain(t);
    }
    expect(logText).not.toContain(CC_SECRET);
  });
});

describe('caxton mcp login and caxton mcp servers against a running server', () => {
  let t: TestServer;
  let web: OAuthMcpServer;

  beforeAll(async () => {
    assertBuilt();
    web = await startOAuthMcpServer();
    t = await startTestServer({
      toml: `[mcp_servers.web]\nurl = "${web.mcpUrl}"\ntimeout = "5s"\n[mcp_servers.web.oauth]\nscopes = ["mcp"]\n`,
    });
  });
  afterAll(async () => {
    await t?.close();
    await web?.close();
  });

  const cli = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => {
      const child = spawn(process.execPath, [CLI, '--server', t.url, ...args], {
        env: cleanEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        // The person: opens the printed URL; the authorization server redirects to the CLI's loopback port.
        const m = /(http:\/\/127\.0\.0\.1:\d+\/authorize\?\S+)/.exec(stderr);
        if (m && !stderr.includes('\u0000opened')) {
          stderr += '\u0000opened';
          void (async () => {
            const r = await fetch(m[1]!, { redirect: 'manual' });
            await fetch(r.headers.get('location')!);
          })();
        }
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        res({ code, stdout, stderr });
      });
    });

  it('lists the server as needing authorization, then logs in, and the tool becomes callable', async () => {
    const before = await cli(['--json', 'mcp', 'servers']);
    expect(before.code).toBe(0);
    const list = JSON.parse(before.stdout) as { servers: McpServerStatus[] };
    expect(list.servers[0]).toMatchObject({
      name: 'web',
      state: 'needs_authorization',
      auth: { state: 'needs_authorization', login_command: 'caxton mcp login web' },
    });
    const table = await cli(['mcp', 'servers']);
    expect(table.stdout).toMatch(/web\s+http\s+needs_authorization\s+0\s+0\s+authorization_code: needs_authorization/);

    const port = await freePort();
    const login = await cli(['mcp', 'login', 'web', '--redirect-port', String(port)]);
    expect(login.stderr).toContain('Open this URL in a browser');
    expect(login.stderr).toContain(`Waiting for the redirect to http://127.0.0.1:${port}/callback`);
    expect(login.code).toBe(0);
    expect(login.stdout).toMatch(/authorized web; tokens stored by the server/);
    await waitUntil(
      async () =>
        ((await (await fetch(`${t.url}/api/v1/mcp/servers`)).json()) as { servers: McpServerStatus[] }).servers[0]!
          .state === 'ready',
      { timeoutMs: 5000 },
    );

    const call = await fetch(`${t.url}/api/v1/tools/web/secret_hello/call`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ args: {} }),
    });
    expect(((await call.json()) as { content: string }).content).toBe('hello, authorized caller');

    const detail = await cli(['mcp', 'servers', 'web']);
    expect(detail.stdout).toMatch(/oauth:\s+authorization_code, authorized, client dynamic/);
    // No token in any API answer about the server.
    const texts = await Promise.all(
      ['/api/v1/mcp/servers', '/api/v1/tools', '/api/v1/tools/web', '/api/v1/config'].map(async (p) =>
        (await fetch(`${t.url}${p}`)).text(),
      ),
    );
    for (const tok of web.issued)
      for (const text of [...texts, detail.stdout, login.stdout, login.stderr]) expect(text).not.toContain(tok);
  }, 60_000);

  it('a restart on the same data dir uses the stored tokens (table mcp_oauth of caxton.db)', async () => {
    const toml = readFileSync(t.configPath, 'utf8');
    await t.close();
    const before = web.counts.authorization_code;
    t = await startTestServer({ dir: t.dir, toml });
    const servers = ((await (await fetch(`${t.url}/api/v1/mcp/servers`)).json()) as { servers: McpServerStatus[] })
      .servers;
    expect(servers[0]).toMatchObject({ name: 'web', state: 'ready', auth: { state: 'authorized', client: 'dynamic' } });
    expect(web.counts.authorization_code).toBe(before);
  });

  it('refuses a login for an unknown server or a bad redirect URI', async () => {
    const unknown = await fetch(`${t.url}/api/v1/mcp/servers/nope/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uri: 'http://127.0.0.1:1/callback' }),
    });
    expect(unknown.status).toBe(404);
    const bad = await fetch(`${t.url}/api/v1/mcp/servers/web/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uri: 'https://evil.example/callback' }),
    });
    expect(bad.status).toBe(400);
  });
});
