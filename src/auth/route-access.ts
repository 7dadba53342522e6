import type { CredentialEnd } from './credential-end.js';
import type { Permission } from './permissions.js';
import type { Principal } from './principal.js';

/**
 * A route's access policy. Every route has one (route-policies.ts or its own `config.access`);
 * a route without one is refused when it is registered, and a test walks the route table.
 * - `public`: no authentication (only /health and /ready).
 * - `authenticated`: any authenticated principal (who am I, the OpenAPI document).
 * - `permission`: an authenticated principal whose role grants it; `agentParam` also checks the
 *   principal's agent scope against that path parameter, `toolParams` its tool scope against
 *   `SERVER.tool` made of two path parameters.
 */
export type Access =
  | { public: true }
  | { authenticated: true }
  | { permission: Permission; agentParam?: string; toolParams?: readonly [server: string, tool: string] };

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's access policy (src/auth/route-access.ts). */
    access?: Access;
  }
  interface FastifyRequest {
    /** The authenticated caller; undefined only on public routes (src/auth/plugin.ts). */
    principal?: Principal;
    /**
     * Aborts, with the error a new request with the same credential would get, when the
     * credential the request was authenticated with stops being valid while it is under way (an
     * API key revoked, rotated or expired; a bearer token expired). Undefined when nothing can
     * end it (public routes, authentication off, a credential without an end).
     */
    credentialEnded?: CredentialEnd;
    /**
     * Lets go of the request's hold on its credential: for the request that ends the credential
     * itself (a key revoking or rotating itself is answered, not refused).
     */
    releaseCredential?: () => void;
  }
}
