import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { createApi, type ApiRoutes, type Lifecycle } from '../../api/index.js';
import { ADMIN_KEY_FILE, readKeyFile, writeRunRecord, type AuthPluginOptions } from '../../auth/index.js';
import type { ServerConfig } from '../../config/index.js';
import type { Logger, Metrics, Tracer } from '../../observability/index.js';
import { isLoopbackHost } from '../hosts.js';
import { httpsOptions, TlsReloader, type TlsMaterial } from '../tls.js';
import type { TlsConfig } from '../tls-config.js';
import type { Component } from './component.js';
import { noteListener } from '../../shared/host-grants.js';

export interface HttpComponent extends Component {
  readonly app: FastifyInstance;
  /** Base URL of the API, e.g. http://127.0.0.1:8080 (empty when not listening). */
  readonly url: string;
  /** The certificate reloader of [server.tls] (absent without TLS or when not listening). */
  readonly tls: TlsReloader | undefined;
  /**
   * Resolves once a first request has been answered and none has been in flight for QUIET_MS since,
   * or after QUIET_MAX_WAIT_MS at most: work that can wait (the tool servers' loading) runs then.
   */
  quiet(): Promise<void>;
}

/** How long the API must have had no request in flight to count as quiet. */
export const QUIET_MS = 100;
/** The longest `quiet()` waits. */
export const QUIET_MAX_WAIT_MS = 1_000;

/** A certificate section read and checked before anything was opened (server.ts). */
export interface CheckedTls {
  cfg: TlsConfig;
  material: TlsMaterial;
}

/**
 * The REST API with every component's routes, listening on [server] host/port (HTTPS with
 * [server.tls]); the run record the local CLI finds it by. With `listen` false it is only made
 * ready (tests using inject). The first component to close: in-flight requests finish first.
 */
export async function startHttp(opts: {
  config: ServerConfig;
  logger: Logger;
  metrics: Metrics;
  tracer: Tracer;
  lifecycle: Lifecycle;
  auth: AuthPluginOptions;
  routes: readonly ApiRoutes[];
  tls: CheckedTls | undefined;
  listen: boolean;
}): Promise<HttpComponent> {
  const { config, logger } = opts;
  const apiTls = opts.tls;
  const app = await createApi({
    config,
    logger,
    metrics: opts.metrics,
    tracer: opts.tracer,
    lifecycle: opts.lifecycle,
    auth: opts.auth,
    routes: opts.routes,
    ...(apiTls && { https: httpsOptions(apiTls.cfg, apiTls.material) }),
  });
  let inFlight = 0;
  let served = false;
  let lastActive = performance.now();
  app.server.on('request', (_req, res: { once(e: 'close', f: () => void): void }) => {
    inFlight++;
    lastActive = performance.now();
    res.once('close', () => {
      inFlight--;
      served = true;
      lastActive = performance.now();
    });
  });
  // Quiet: a first request answered and none in flight for QUIET_MS since (the client that waited
  // for the server to start, a probe or a user, finds the event loop free however long it takes
  // to connect), or QUIET_MAX_WAIT_MS at most (a server nobody calls, a long stream: deferred
  // work is never held forever).
  const quiet = () =>
    new Promise<void>((resolve) => {
      const until = performance.now() + QUIET_MAX_WAIT_MS;
      const check = () => {
        const now = performance.now();
        if ((served && inFlight === 0 && now - lastActive >= QUIET_MS) || now >= until) resolve();
        else setTimeout(check, served && inFlight === 0 ? QUIET_MS - (now - lastActive) : QUIET_MS).unref();
      };
      check();
    });
  let url = '';
  let tls: TlsReloader | undefined;
  let removeRunRecord = () => {};
  let forgetListener = () => {};
  try {
    if (opts.listen) {
      await app.listen({ host: config.server.host, port: config.server.port });
      const addr = app.server.address() as AddressInfo;
      // Tools reach this listener only through an allowed_hosts entry naming its address and port.
      forgetListener = noteListener({ host: addr.address, port: addr.port });
      url = `${apiTls ? 'https' : 'http'}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
      if (apiTls) {
        tls = new TlsReloader(tlsServerOf(app.server), apiTls.cfg, 'server.tls', apiTls.material, logger);
        await tls.start();
      }
      // The local CLI finds this server's admin key through the run record (src/auth/local-auth.ts).
      const keyFile = join(resolve(config.data_dir), ADMIN_KEY_FILE);
      if (config.auth.enabled && isLoopbackHost(config.server.host) && readKeyFile(keyFile))
        removeRunRecord = writeRunRecord(addr.port, url, keyFile);
    } else await app.ready();
  } catch (e) {
    forgetListener();
    await tls?.close();
    await app.close();
    throw e;
  }
  return {
    name: 'http',
    app,
    url,
    tls,
    quiet,
    close: async () => {
      await tls?.close();
      // A keep-alive client whose request was in flight would hold close() open until the shutdown
      // timeout: close such connections as soon as they fall idle.
      const idle = setInterval(() => app.server.closeIdleConnections(), 100);
      idle.unref();
      await app.close(); // waits for in-flight requests
      clearInterval(idle);
      removeRunRecord();
      forgetListener();
    },
  };
}

/** With `https` options fastify serves through an https.Server, which is a tls.Server. */
export function tlsServerOf(server: unknown): TlsServer {
  if (server instanceof TlsServer) return server;
  throw new TypeError('expected a TLS server');
}
