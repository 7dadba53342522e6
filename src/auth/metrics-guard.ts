import type { IncomingMessage } from 'node:http';
import { CaxtonError } from '../shared/errors.js';
import { ApiKeyStore } from './keys.js';
import type { Authenticators } from './plugin.js';
import { hostAllowedBy, verifiedCertificateOf } from './plugin.js';
import { can, type Principal } from './principal.js';

/**
 * The metrics port's guard: the Host check of the API (a DNS-rebound page must not read metrics
 * either) and, when the port is reachable from other machines, a key or token with observe:read
 * (Prometheus sends it with `authorization` / `bearer_token_file`) or a mapped client certificate.
 */
export function metricsGuard(opts: {
  requireAuth: boolean;
  authenticators: Authenticators;
  allowedHosts: readonly string[];
}) {
  return async (req: IncomingMessage): Promise<{ status: number; message: string } | undefined> => {
    if (!hostAllowedBy(opts.allowedHosts, req.headers.host))
      return { status: 403, message: 'this Host is not one the server answers to; add it to [security] allowed_hosts' };
    if (!opts.requireAuth) return undefined;
    let p: Principal | undefined;
    const h = req.headers.authorization;
    const token = typeof h === 'string' && h.slice(0, 7).toLowerCase() === 'bearer ' ? h.slice(7).trim() : undefined;
    try {
      if (token !== undefined && token.length <= 16 * 1024) {
        if (ApiKeyStore.looksLikeKey(token) && opts.authenticators.keys) p = opts.authenticators.keys.verify(token);
        else if (opts.authenticators.jwt) p = await opts.authenticators.jwt.authenticate(token);
      } else {
        const cert = verifiedCertificateOf(req.socket);
        if (cert) p = opts.authenticators.certificate?.(cert);
      }
    } catch (e) {
      if (e instanceof CaxtonError && (e.code === 'unauthenticated' || e.code === 'forbidden'))
        return { status: e.status, message: e.message };
      throw e;
    }
    if (!p)
      return {
        status: 401,
        message: 'authentication required: send "Authorization: Bearer <API key>" with a key that has observe:read',
      };
    if (!can(p, 'observe:read'))
      return { status: 403, message: `${p.id} (role ${p.role}) may not read metrics: it needs observe:read` };
    return undefined;
  };
}
