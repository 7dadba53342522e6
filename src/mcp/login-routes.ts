/**
 * `caxton mcp login NAME` talks to these routes (admin only: permission `mcp:authorize`). The
 * running server owns the OAuth store (table mcp_oauth) and the connection; the CLI only listens on
 * a loopback port for the redirect and relays the code:
 *  - POST /api/v1/mcp/servers/:name/login {redirect_uri}: discovery, dynamic registration, PKCE;
 *    answers the authorization URL (or, for client_credentials, fetches tokens at once).
 *  - POST /api/v1/mcp/servers/:name/login/callback {code, state}: checks the state, exchanges the
 *    code, stores the tokens and connects. Answers the server's status (never a token).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { CaxtonError } from '../shared/errors.js';
import { scrubSecrets } from '../shared/secrets.js';
import type { McpClientManager } from './mcp-client.js';
import { checkRedirectUri, LoginError } from './oauth.js';

function authError(name: string, e: unknown): CaxtonError {
  if (e instanceof CaxtonError) return e;
  const message = scrubSecrets(e instanceof Error ? e.message : String(e));
  if (e instanceof LoginError) return new CaxtonError('conflict', message);
  // The authorization server refused or could not be reached: the request itself was well-formed.
  return new CaxtonError('conflict', `authorizing MCP server "${name}" failed: ${message}`);
}

export async function mcpLoginRoutes(app: FastifyInstance, clients: McpClientManager): Promise<void> {
  const connection = (name: string) => {
    const conn = clients.connection(name);
    if (!conn)
      throw new CaxtonError('not_found', `no MCP server "${name}" is mounted ([mcp_servers.${name}] in caxton.toml)`);
    const s = conn.status();
    if (!s.auth)
      throw new CaxtonError(
        'invalid_request',
        `MCP server "${name}" has no [mcp_servers.${name}.oauth]: there is nothing to log in to`,
      );
    return conn;
  };
  const params = z.object({ name: z.string() });

  app.post<{ Params: { name: string }; Body: { redirect_uri: string } }>(
    '/mcp/servers/:name/login',
    {
      schema: {
        summary: 'Start an OAuth login for a mounted MCP server: the authorization URL (caxton mcp login)',
        tags: ['mcp'],
        params,
        body: z.strictObject({ redirect_uri: z.string().max(2048) }),
      },
    },
    async (req) => {
      const conn = connection(req.params.name);
      const bad = checkRedirectUri(req.body.redirect_uri);
      if (bad) throw new CaxtonError('invalid_request', bad);
      let r;
      try {
        r = await conn.startLogin(req.body.redirect_uri);
      } catch (e) {
        throw authError(req.params.name, e);
      }
      req.log.info({ mcp_server: req.params.name, grant: conn.status().auth?.grant }, 'MCP OAuth login started');
      return { server: req.params.name, ...r, status: conn.status() };
    },
  );

  app.post<{ Params: { name: string }; Body: { code: string; state: string } }>(
    '/mcp/servers/:name/login/callback',
    {
      schema: {
        summary: 'Finish an OAuth login: exchange the authorization code, store the tokens, connect',
        tags: ['mcp'],
        params,
        body: z.strictObject({ code: z.string().min(1).max(4096), state: z.string().min(1).max(512) }),
      },
    },
    async (req) => {
      const conn = connection(req.params.name);
      try {
        await conn.completeLogin(req.body.code, req.body.state);
      } catch (e) {
        throw authError(req.params.name, e);
      }
      req.log.info({ mcp_server: req.params.name }, 'MCP OAuth login completed');
      return { server: req.params.name, authorized: true, status: conn.status() };
    },
  );
}
