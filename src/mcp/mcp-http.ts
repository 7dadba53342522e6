/**
 * The fastify routes of the MCP component, passed to the API through `StartOptions.plugins`:
 *  - POST /mcp: Caxton as a Streamable HTTP MCP server, stateless (the SDK's guidance for a server
 *    without per-client state: a fresh Server and transport per request). GET and DELETE answer 405.
 *    No stream outlives a request, so list changes are not advertised and `logging/setLevel` is
 *    accepted but forgotten with the request; progress goes on the request's own SSE response.
 *  - GET /api/v1/mcp/servers: the status of every mounted MCP server; POST .../:name/login and
 *    .../:name/login/callback: `caxton mcp login` (login-routes.ts).
 * The MCP server (mcp-server.ts) and the SDK's transport are imported by the first POST /mcp, not at
 * start: a server nobody asks over MCP never loads the SDK.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { annotateAudit } from '../audit/index.js';
import type { CaxtonError } from '../shared/errors.js';
import type { McpClientManager } from './mcp-client.js';
import { mcpLoginRoutes } from './login-routes.js';
import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { CaxtonMcpTools, createMcpServer, McpServeDeps } from './mcp-server.js';

type Plugin = (app: FastifyInstance) => Promise<void>;

export const MCP_PATH = '/mcp';

const rpcError = (code: number, message: string) => ({ jsonrpc: '2.0', error: { code, message }, id: null });

/** Marks a plugin as not encapsulated, so its routes keep their own paths (no /api/v1 prefix). */
function atRoot(plugin: Plugin): Plugin {
  (plugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
  return plugin;
}

export interface McpHttpOptions extends McpServeDeps {
  /** Mounted servers, for GET /api/v1/mcp/servers. */
  clients?: McpClientManager;
}

/** The plugins to hand to createApi / startServer. */
export function mcpPlugins(opts: McpHttpOptions): Plugin[] {
  const plugins: Plugin[] = [];
  const { clients } = opts;
  if (clients) {
    plugins.push(async (app) => {
      app.get(
        '/mcp/servers',
        { schema: { summary: 'Mounted MCP servers: state, tools, last error', tags: ['mcp'] } },
        async () => ({ servers: clients.statuses() }),
      );
      await mcpLoginRoutes(app, clients);
    });
  }
  if (opts.config.enabled) plugins.push(atRoot(mcpEndpoint(opts)));
  return plugins;
}

function mcpEndpoint(opts: McpHttpOptions): Plugin {
  let loading: Promise<McpEndpointParts> | undefined;
  const parts = () => (loading ??= loadEndpointParts(opts));
  return async (app) => {
    app.post(
      MCP_PATH,
      { schema: { summary: 'MCP (Streamable HTTP, stateless): Caxton tools and agents', tags: ['mcp'] } },
      async (req, reply) => {
        const { tools, createMcpServer, StreamableHTTPServerTransport } = await parts();
        // Origin, Host and credentials are checked for every route by src/auth/plugin.ts.
        const server = createMcpServer(opts, tools, {
          caller: {
            principal: req.principal,
            limits: req.limits,
            refused: () => annotateAudit(req, { outcome: 'denied' }),
            failed: (code) => annotateAudit(req, { outcome: 'error', details: { error_code: code } }),
          },
          listChanged: false,
        });
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
        reply.hijack();
        reply.raw.setHeader('x-request-id', String(req.id));
        reply.raw.on('close', () => {
          void transport.close();
          void server.close();
        });
        // The credential ending mid-call (src/auth/plugin.ts) answers each request of the body with
        // the refusal a new request would get, and closes the server, which aborts its handlers: no
        // result reaches the caller after its key is revoked.
        req.credentialEnded?.addEventListener(
          'abort',
          () => void endWithCredential(transport, req.body, req.credentialEnded!.reason as CaxtonError),
          { once: true },
        );
        try {
          await server.connect(transport);
          await transport.handleRequest(req.raw, reply.raw, req.body);
        } catch (e) {
          req.log.error({ err: e }, 'MCP request failed');
          if (!reply.raw.headersSent) {
            reply.raw.writeHead(500, { 'content-type': 'application/json' });
            reply.raw.end(JSON.stringify(rpcError(-32603, 'internal server error')));
          }
        }
      },
    );
    const notAllowed = async (_req: unknown, reply: FastifyReply) =>
      reply
        .code(405)
        .header('allow', 'POST')
        .send(rpcError(-32000, 'Method not allowed: this MCP endpoint is stateless, use POST'));
    app.get(MCP_PATH, { schema: { hide: true } }, notAllowed);
    app.delete(MCP_PATH, { schema: { hide: true } }, notAllowed);
  };
}

/** JSON-RPC's code for a request refused for want of a valid credential (the server-defined range). */
export const RPC_UNAUTHENTICATED = -32001;

async function endWithCredential(transport: StreamableHTTPServerTransport, body: unknown, why: CaxtonError) {
  const ids = (Array.isArray(body) ? body : [body]).flatMap((m: unknown) =>
    m !== null && typeof m === 'object' && 'method' in m && 'id' in m ? [(m as { id: string | number }).id] : [],
  );
  for (const id of ids)
    await transport
      .send(
        {
          jsonrpc: '2.0',
          id,
          error: { code: RPC_UNAUTHENTICATED, message: why.message, data: { code: why.code, details: why.details } },
        },
        { relatedRequestId: id },
      )
      .catch(() => {});
  await transport.close();
}

interface McpEndpointParts {
  tools: CaxtonMcpTools;
  createMcpServer: typeof createMcpServer;
  StreamableHTTPServerTransport: typeof StreamableHTTPServerTransport;
}

/** The MCP server and the SDK's transport, imported once, by the first POST /mcp. */
async function loadEndpointParts(opts: McpHttpOptions): Promise<McpEndpointParts> {
  const [server, sdk] = await Promise.all([
    import('./mcp-server.js'),
    import('@modelcontextprotocol/sdk/server/streamableHttp.js'),
  ]);
  return {
    tools: new server.CaxtonMcpTools(opts),
    createMcpServer: server.createMcpServer,
    StreamableHTTPServerTransport: sdk.StreamableHTTPServerTransport,
  };
}
