import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { metricsGuard, type Authenticators } from '../../auth/index.js';
import type { ServerConfig } from '../../config/index.js';
import type { Logger, Metrics } from '../../observability/index.js';
import { isLoopbackHost, WILDCARD_HOSTS } from '../hosts.js';
import { startMetricsServer } from '../metrics-server.js';
import { httpsOptions, TlsReloader } from '../tls.js';
import type { Component } from './component.js';
import { tlsServerOf, type CheckedTls } from './http-component.js';

export interface MetricsEndpointComponent extends Component {
  readonly url: string;
  /** The certificate reloader of [metrics.tls] (absent without it). */
  readonly tls: TlsReloader | undefined;
}

/** /metrics on its own port ([metrics] host/port, HTTPS with [metrics.tls]). */
export async function startMetricsEndpoint(opts: {
  config: ServerConfig;
  metrics: Metrics;
  authenticators: Authenticators;
  /** The API's allowed Host names (components/auth-component.ts). */
  allowedHosts: readonly string[];
  tls: CheckedTls | undefined;
  logger: Logger;
}): Promise<MetricsEndpointComponent> {
  const { config } = opts;
  const metricsTls = opts.tls;
  // Off loopback the metrics port needs a key with observe:read too; on loopback only the Host check applies.
  const guard = metricsGuard({
    requireAuth: config.auth.enabled && !isLoopbackHost(config.metrics.host),
    authenticators: opts.authenticators,
    allowedHosts: [
      ...opts.allowedHosts,
      ...(isLoopbackHost(config.metrics.host) || WILDCARD_HOSTS.has(config.metrics.host)
        ? []
        : [config.metrics.host.toLowerCase()]),
    ],
  });
  const m = await startMetricsServer(
    opts.metrics.registry,
    config.metrics.host,
    config.metrics.port,
    metricsTls && httpsOptions(metricsTls.cfg, metricsTls.material),
    guard,
  );
  const server: Server | HttpsServer = m.server;
  const closeServer = () => new Promise<void>((r) => server.close(() => r()));
  let tls: TlsReloader | undefined;
  if (metricsTls) {
    try {
      tls = new TlsReloader(tlsServerOf(server), metricsTls.cfg, 'metrics.tls', metricsTls.material, opts.logger);
      await tls.start();
    } catch (e) {
      await tls?.close();
      await closeServer();
      throw e;
    }
  }
  return {
    name: 'metrics endpoint',
    url: m.url,
    tls,
    close: async () => {
      await tls?.close();
      await closeServer();
    },
  };
}
