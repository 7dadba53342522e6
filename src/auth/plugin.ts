/**
 * Authentication, authorization and browser safety for every HTTP route (docs/security.md).
 *
 * Order, per request: Host check (DNS rebinding) → Origin and content-type checks on state-changing
 * requests (cross-site requests) → authentication (API key, JWT, client certificate) → the route's
 * policy (role permission, agent scope). Policies are resolved when a route is registered: a route
 * without one makes registration fail, so nothing can be served by accident without a decision.
 */
import { isIP } from 'node:net';
import { TLSSocket, type PeerCertificate } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CaxtonError } from '../shared/errors.js';
import type { Access } from './route-access.js';
import type { ApiKeyStore } from './keys.js';
import { globMatch, type Principal } from './principal.js';
import { policyFor } from './route-policies.js';
import type { PrincipalLimiter } from './caller-limits.js';
import { CredentialEnd } from './credential-end.js';
import type { StreamEnd } from './open-streams.js';
import type { LimitSet } from './limits-config.js';
import { anonymousLimitedError, type AnonymousLimiter } from './anonymous-limit.js';
import {
  admitRequest,
  checkAccess,
  LOCAL_PRINCIPAL,
  principalOfCredentials,
  streamHolder,
  type Refuse,
} from './admit.js';

export { assertAgentAllowed, LOCAL_PRINCIPAL } from './admit.js';

export interface Authenticators {
  keys?: ApiKeyStore;
  /** Bearer tokens that are not Caxton API keys (OIDC JWTs). */
  jwt?: { authenticate(token: string): Promise<Principal> };
  /**
   * The principal of a client certificate the connection's handshake verified against
   * `[server.tls] ca` (mTLS): the caller checks that it verified, this maps it.
   */
  certificate?: (verified: PeerCertificate) => Principal | undefined;
}

export interface AuthPluginOptions {
  /** false: every request is the local administrator (refused at start on non-loopback binds). */
  enabled: boolean;
  authenticators: Authenticators;
  /** Host names accepted in the Host header besides loopback names and IP literals (globs). */
  allowedHosts: readonly string[];
  /** Origins allowed to send state-changing requests cross-origin (also the CORS allowlist). */
  allowedOrigins: readonly string[];
  /** Request-rate limits per principal (src/auth/caller-limits.ts); `limitsOf` gives a principal's effective limits. */
  limiter?: PrincipalLimiter;
  limitsOf?: (p: Principal) => LimitSet | undefined;
  /** Called with every authenticated principal (the acting-principal directory remembers token and certificate principals). */
  onAuthenticated?: (p: Principal) => void;
  /** Request rate per source address of callers refused for want of a valid credential (src/auth/anonymous-limit.ts). */
  anonymous?: AnonymousLimiter;
  /** Called when a request is refused (401/403, or 429 `anonymous_rate`), for metrics; `req.principal` is unset for an anonymous refusal. */
  onDenied?: (req: FastifyRequest, code: 'unauthenticated' | 'forbidden' | 'rate_limited', reason: string) => void;
}

export interface RouteAccess {
  method: string;
  url: string;
  access: Access;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every registered route and its policy (for tests and `caxton` docs). */
    accessTable: readonly RouteAccess[];
    /**
     * Holds an event stream opened by `p` until its credential stops being valid (an API key
     * revoked, rotated or expired; a bearer token expired), when `close` is called with the
     * reason; undefined when nothing can end it. The returned function releases a stream that ended
     * by itself.
     */
    holdStream(p: Principal, close: (why: StreamEnd) => void): (() => void) | undefined;
  }
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Content types a browser may send cross-site without a preflight ("simple" requests). */
const SIMPLE_TYPES = new Set(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']);

/** Installs the hooks on the root instance; call before any route is registered. */
export function installAuth(app: FastifyInstance, opts: AuthPluginOptions): void {
  const table: RouteAccess[] = [];
  app.decorate('accessTable', table);
  app.decorate('holdStream', streamHolder(opts));
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const own = route.config?.access;
    let access: Access | undefined;
    for (const m of methods) {
      const found = policyFor(m, route.url, own);
      if (!found)
        throw new Error(
          `route ${m} ${route.url} has no access policy: add it to src/auth/route-policies.ts or give the route config.access`,
        );
      access ??= found;
      table.push({ method: m, url: route.url, access: found });
    }
    route.config = { ...route.config, access };
  });

  const hostAllowed = (host: string | undefined): boolean => hostAllowedBy(opts.allowedHosts, host);

  const deny = (
    req: FastifyRequest,
    code: 'unauthenticated' | 'forbidden',
    message: string,
    details: Record<string, unknown>,
  ): CaxtonError => {
    // A refusal before anyone is known is charged to the address: past its allowance the answer is
    // a 429, so guessing keys or flooding the refusals costs the caller time.
    if (req.principal === undefined && opts.anonymous) {
      const wait = opts.anonymous.charge(req.ip);
      if (wait > 0) {
        opts.onDenied?.(req, 'rate_limited', 'anonymous_rate');
        return anonymousLimitedError(req.ip, opts.anonymous.requestsPerMinute, wait);
      }
    }
    opts.onDenied?.(req, code, String(details.reason ?? message));
    return new CaxtonError(code, message, details);
  };

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (!hostAllowed(req.headers.host)) {
      throw deny(
        req,
        'forbidden',
        `the Host header "${String(req.headers.host ?? '').slice(0, 100)}" is not one this server answers to; add the name to [security] allowed_hosts`,
        {
          reason: 'host_not_allowed',
        },
      );
    }
    if (!SAFE_METHODS.has(req.method)) checkCrossSite(req, opts, deny);

    const access = req.routeOptions.config?.access;
    if (access === undefined || 'public' in access) return; // unmatched routes answer 404; probes are public

    req.principal = opts.enabled ? await authenticate(req, opts.authenticators, reply, deny) : LOCAL_PRINCIPAL;
    opts.onAuthenticated?.(req.principal);
    holdRequest(app, req, reply);
    checkAccess(req.principal, access, req.params as Record<string, string> | undefined, (c, m, d) =>
      deny(req, c, m, d),
    );
    const limits = admitRequest(opts, req.principal);
    if (limits !== undefined) req.limits = limits;
  });
}

/**
 * Holds a request until it ends, so that it ends with its credential: a request is authenticated
 * once, when it starts, and a long one (a `?wait`, an invocation, an MCP call, an event stream)
 * would otherwise deliver its answer after the key was revoked. When the credential ends, a reply
 * not yet begun is the refusal a new request with that credential gets (401 with the reason), and
 * `req.credentialEnded` aborts: the work listening for the client going away stops (src/api/sse-stream.ts),
 * and a reply already begun (an event stream, MCP's response) ends itself with the error.
 */
function holdRequest(app: FastifyInstance, req: FastifyRequest, reply: FastifyReply): void {
  // Kept only for a credential that can end (a key, an expiring token); one found ended as it is
  // held (it expired since it was checked) has ended before the request goes on.
  const ended = new CredentialEnd();
  const release = app.holdStream(req.principal!, (why) => {
    ended.end(why);
    if (!reply.sent && !reply.raw.headersSent) void reply.send(why);
  });
  if (!release) return;
  req.credentialEnded = ended;
  req.releaseCredential = release;
  reply.raw.once('close', release);
}

/** Whether a Host header names this server: a loopback name, an IP literal or an allowed name (glob). */
export function hostAllowedBy(allowedHosts: readonly string[], host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = hostName(host);
  if (name === undefined) return false;
  // An IP literal cannot be rebound to another address, so it is never a DNS-rebinding vector.
  if (LOOPBACK_NAMES.has(name) || isIP(name.replace(/^\[|\]$/g, '')) !== 0) return true;
  return allowedHosts.some((p) => globMatch(p.toLowerCase(), name));
}

function checkCrossSite(
  req: FastifyRequest,
  opts: AuthPluginOptions,
  deny: (req: FastifyRequest, code: 'forbidden', message: string, details: Record<string, unknown>) => CaxtonError,
): void {
  const origin = req.headers.origin;
  if (origin !== undefined && !originAllowed(origin, req.headers.host, opts.allowedOrigins)) {
    throw deny(
      req,
      'forbidden',
      `cross-origin request from ${origin.slice(0, 200)} refused; allow the origin in [security] cors_origins`,
      {
        reason: 'origin_not_allowed',
        origin: origin.slice(0, 200),
      },
    );
  }
  if (origin === undefined && req.headers['sec-fetch-site'] === 'cross-site') {
    throw deny(req, 'forbidden', 'cross-site request refused', { reason: 'origin_not_allowed' });
  }
  // A browser sends text/plain, form and multipart bodies cross-site without asking first; an API
  // client sending them must prove it is not a page: a credential header or X-Caxton-Request.
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (
    SIMPLE_TYPES.has(type) &&
    req.headers.authorization === undefined &&
    req.headers['x-api-key'] === undefined &&
    req.headers['x-caxton-request'] === undefined
  ) {
    throw deny(
      req,
      'forbidden',
      `a ${type} body needs an Authorization or X-Caxton-Request header (browsers send such bodies cross-site); send the API's own content type, e.g. application/json or application/toml`,
      { reason: 'simple_content_type', content_type: type },
    );
  }
}

function originAllowed(origin: string, host: string | undefined, allowed: readonly string[]): boolean {
  if (allowed.includes(origin) || allowed.includes('*')) return true;
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return false; // "null" (sandboxed frames, file:) and garbage
  }
  // Same origin: the page was served by this host and port.
  return host !== undefined && u.host.toLowerCase() === host.toLowerCase();
}

async function authenticate(
  req: FastifyRequest,
  a: Authenticators,
  reply: FastifyReply,
  deny: (
    req: FastifyRequest,
    code: 'unauthenticated' | 'forbidden',
    message: string,
    details: Record<string, unknown>,
  ) => CaxtonError,
): Promise<Principal> {
  const refuse: Refuse = (code, message, details) => withChallenge(reply, deny(req, code, message, details));
  return principalOfCredentials(bearerOf(req), verifiedCertificateOf(req.raw.socket), a, refuse);
}

function withChallenge(reply: FastifyReply, e: CaxtonError): CaxtonError {
  if (e.code === 'unauthenticated') reply.header('www-authenticate', 'Bearer realm="caxton"');
  return e;
}

/** `Authorization: Bearer T` (case-insensitive scheme) or `X-API-Key: T` (Anthropic-style clients). */
export function bearerOf(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h === 'string') {
    // Linear: one anchored prefix test, then slicing (no regex over the token itself).
    if (h.length > 7 && h.slice(0, 7).toLowerCase() === 'bearer ') return h.slice(7).trim();
    return undefined;
  }
  const k = req.headers['x-api-key'];
  return typeof k === 'string' && k.length > 0 ? k : undefined;
}

/** The host name of a Host header, lower-cased, without the port; undefined when malformed. */
export function hostName(host: string): string | undefined {
  const h = host.trim().toLowerCase();
  if (h.length === 0 || h.length > 255) return undefined;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end > 0 ? h.slice(0, end + 1) : undefined;
  }
  const colon = h.indexOf(':');
  const name = colon >= 0 ? h.slice(0, colon) : h;
  return /^[a-z0-9.-]+$/.test(name) ? name : undefined;
}

/** The client certificate of a TLS connection whose handshake verified it (`authorized`), if any. */
export function verifiedCertificateOf(socket: unknown): PeerCertificate | undefined {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  return socket.getPeerCertificate();
}
