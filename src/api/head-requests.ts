/**
 * HEAD answered for every GET route at the server's entry, instead of by a HEAD twin of each.
 *
 * fastify's own way (`exposeHeadRoutes`) registers a HEAD route beside every GET route: 60 more
 * routes made by every start, about a quarter of the time its routes take to register. Node's
 * response to a HEAD request sends no body whatever is written to it (it knows the method when it
 * makes the response, before any handler runs), so the request is routed as the GET it stands for:
 * the same route, access policy and headers, Content-Length included, as a twin would give.
 *
 * The server is made as fastify makes its HTTP/1.1 server (lib/server.js), with its timeouts.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';

/** What fastify passes a server factory: its handler and its options (defaults applied). */
type Handler = (req: IncomingMessage, res: ServerResponse) => void;
interface FastifyServerOptions {
  keepAliveTimeout?: number;
  requestTimeout?: number;
  connectionTimeout?: number;
  maxRequestsPerSocket?: number;
}

/** fastify's `serverFactory`: an HTTP (or, given its options, HTTPS) server routing HEAD as GET. */
export function headAsGetServer(https: HttpsServerOptions | undefined) {
  return (handler: Handler, opts: FastifyServerOptions): Server => {
    const entry: Handler = (req, res) => {
      if (req.method === 'HEAD') req.method = 'GET';
      handler(req, res);
    };
    const server = https ? (createHttpsServer(https, entry) as unknown as Server) : createHttpServer(entry);
    if (opts.keepAliveTimeout !== undefined) server.keepAliveTimeout = opts.keepAliveTimeout;
    if (opts.requestTimeout !== undefined) server.requestTimeout = opts.requestTimeout;
    server.setTimeout(opts.connectionTimeout ?? 0);
    if (opts.maxRequestsPerSocket !== undefined && opts.maxRequestsPerSocket > 0)
      server.maxRequestsPerSocket = opts.maxRequestsPerSocket;
    return server;
  };
}
