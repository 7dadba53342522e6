import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  createServer as createHttpsServer,
  type Server as HttpsServer,
  type ServerOptions as HttpsServerOptions,
} from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { noteListener } from '../shared/host-grants.js';

/**
 * Serves /metrics (Prometheus text format) on its own port, apart from the API; over TLS when
 * `https` is given ([metrics.tls], src/server/tls.ts).
 */
export async function startMetricsServer(
  registry: Registry,
  host: string,
  port: number,
  https?: HttpsServerOptions,
  /** Host check and, off loopback, authentication (src/auth/metrics-guard.ts): a refusal's status and text, or undefined. */
  guard?: (req: IncomingMessage) => Promise<{ status: number; message: string } | undefined>,
): Promise<{ server: Server | HttpsServer; url: string }> {
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (guard) {
      guard(req).then(
        (refused) => {
          if (!refused) return serve(req, res);
          res.writeHead(refused.status, {
            'content-type': 'text/plain',
            ...(refused.status === 401 && { 'www-authenticate': 'Bearer realm="caxton"' }),
          });
          res.end(`${refused.message}\n`);
        },
        () => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('authentication failed\n');
        },
      );
      return;
    }
    serve(req, res);
  };
  const serve = (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        })
        .catch((e: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`metrics collection failed: ${String(e)}`);
        });
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: metrics are served at /metrics\n');
  };
  const server = https ? createHttpsServer(https, handler) : createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  // Tools reach this listener only through an allowed_hosts entry naming its address and port.
  server.once('close', noteListener({ host: addr.address, port: addr.port }));
  return {
    server,
    url: `${https ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${addr.port}/metrics`,
  };
}
