import { dirname } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { keyApi } from '../../api/index.js';
import {
  AnonymousLimiter,
  ApiKeyStore,
  bootstrapAdminKey,
  bootstrapKeyName,
  createJwtAuthenticator,
  SsoClient,
  principalFromCertificate,
  principalLimits,
  PrincipalDirectory,
  PrincipalLimiter,
  type Authenticators,
  type AuthPluginOptions,
  type Principal,
} from '../../auth/index.js';
import type { ServerConfig } from '../../config/index.js';
import type { Logger, Metrics } from '../../observability/index.js';
import type { Db } from '../../storage/index.js';
import { isLoopbackHost, WILDCARD_HOSTS } from '../hosts.js';
import type { Component } from './component.js';

export interface AuthComponent extends Component {
  readonly keys: ApiKeyStore;
  readonly authenticators: Authenticators;
  readonly limiter: PrincipalLimiter;
  /** The principals messages act for (`on_behalf_of`), for the message bus and its deliveries. */
  readonly principals: PrincipalDirectory;
  /** Host names the API answers to besides loopback names and IP addresses. */
  readonly allowedHosts: string[];
  /** What the API's auth hook needs (src/auth). */
  readonly plugin: AuthPluginOptions;
}

/** Authentication (src/auth): API keys in caxton.db; at first start an admin key for the local CLI; JWTs, client certificates, limits per principal. */
export function startAuth(opts: { config: ServerConfig; db: Db; logger: Logger; metrics: Metrics }): AuthComponent {
  const { config, logger, metrics } = opts;
  const keys = new ApiKeyStore(opts.db);
  // On a cluster node the key is admin-<node>: keys travel between nodes (ADR 0044), and each node makes its own first key.
  const node = config.cluster?.node;
  const adminKeyFile =
    config.auth.enabled && config.auth.bootstrap_admin_key
      ? bootstrapAdminKey(keys, config.data_dir, { ...(node !== undefined && { node }) })
      : undefined;
  if (adminKeyFile)
    logger.info(
      { file: adminKeyFile, key: bootstrapKeyName(node) },
      'created the first API key (role admin) for the local CLI; it is readable only by this user',
    );
  const jwt = config.auth.jwt
    ? createJwtAuthenticator(config.auth.jwt, { ...(config.source.file && { baseDir: dirname(config.source.file) }) })
    : undefined;
  // The console's single sign-on through the same issuer (a missing client secret stops the start).
  const sso =
    config.auth.enabled && config.auth.jwt?.sso
      ? new SsoClient({ issuer: config.auth.jwt.issuer, sso: config.auth.jwt.sso })
      : undefined;
  const clientCerts = config.auth.client_certs;
  const authenticators: Authenticators = {
    keys,
    ...(jwt && { jwt }),
    ...(clientCerts.length > 0 && {
      certificate: (verified: PeerCertificate) => principalFromCertificate(verified, clientCerts),
    }),
  };
  // Limits per principal and per agent (ADR 0024): requests in the auth hook, executions and tokens in the executor.
  const limiter = new PrincipalLimiter(config.metrics.enabled ? { metrics } : {});
  const limitsOf = (p: Principal) =>
    principalLimits(config.auth.limits, p.keyId !== undefined ? keys.limitsOf(p.keyId) : undefined);
  const principals = new PrincipalDirectory({
    keys,
    limitsOf,
    defaultLimits: principalLimits(config.auth.limits),
    limiter,
  });
  const allowedHosts = [
    ...config.security.allowed_hosts,
    ...(isLoopbackHost(config.server.host) || WILDCARD_HOSTS.has(config.server.host)
      ? []
      : [config.server.host.toLowerCase()]),
  ];
  const anonymous = new AnonymousLimiter({
    requestsPerMinute: config.auth.limits.anonymous.requests_per_minute,
    maxAddresses: config.auth.limits.anonymous.max_addresses,
  });
  const plugin: AuthPluginOptions = {
    enabled: config.auth.enabled,
    authenticators,
    allowedHosts,
    allowedOrigins: config.security.cors_origins,
    limiter,
    limitsOf,
    onAuthenticated: (p) => principals.remember(p),
    anonymous,
    ...(config.metrics.enabled && {
      onDenied: (req, _code, reason) => (req.principal === undefined ? metrics.anonymousRefused(reason) : undefined),
    }),
  };
  const usage = (id: string) =>
    limiter.usage(
      id,
      id.startsWith('key:')
        ? principalLimits(config.auth.limits, keyLimitsByName(keys, id.slice(4)))
        : config.auth.limits.default,
    );
  if (config.auth.enabled && !isLoopbackHost(config.server.host) && config.security.allowed_hosts.length === 0) {
    logger.info(
      '[security] allowed_hosts is empty: requests naming this server by IP address or a loopback name are accepted; list the DNS names clients use',
    );
  }
  return {
    name: 'auth',
    keys,
    authenticators,
    limiter,
    principals,
    allowedHosts,
    plugin,
    routes: keyApi({ keys, usage, ...(sso && { sso }) }),
    close: () => {
      jwt?.close();
      keys.flush();
    },
  };
}

function keyLimitsByName(keys: ApiKeyStore, name: string) {
  const k = keys.get(name);
  return k ? keys.limitsOf(k.id) : undefined;
}
