/**
 * Who a caller is and whether it may make a call, apart from the transport that carried it: the
 * HTTP hook (plugin.ts) and the A2A gRPC listener (src/a2a/grpc.ts) both admit their calls here,
 * so a credential, a permission, an agent scope and a request-rate limit mean the same on each.
 */
import type { PeerCertificate } from 'node:tls';
import { CaxtonError } from '../shared/errors.js';
import type { Access } from './route-access.js';
import { anonymousLimitedError } from './anonymous-limit.js';
import { ApiKeyStore } from './keys.js';
import type { LimitSet } from './limits-config.js';
import { limitedError } from './caller-limits.js';
import { OpenStreams, tokenExpired, type StreamEnd } from './open-streams.js';
import { agentOfRef, can, inScope, type Principal } from './principal.js';
import type { AuthPluginOptions } from './plugin.js';

/** Longest bearer token read. */
export const MAX_TOKEN = 16 * 1024;

/** The principal every call has when authentication is off (loopback only). */
export const LOCAL_PRINCIPAL: Principal = Object.freeze({
  id: 'local:anonymous',
  kind: 'local',
  name: 'anonymous',
  role: 'admin',
  scope: Object.freeze({}),
});

/** Makes a refusal (the HTTP hook's also charges the address and counts it). */
export type Refuse = (
  code: 'unauthenticated' | 'forbidden',
  message: string,
  details: Record<string, unknown>,
) => CaxtonError;

const plainRefusal: Refuse = (code, message, details) => new CaxtonError(code, message, details);

/**
 * The principal of a bearer token: a Caxton API key, or a JWT of the configured issuer. Refused
 * (`unauthenticated`, or `forbidden` for a key that may not be used) with the reason in details.
 */
export async function principalOfBearer(
  token: string,
  a: AuthPluginOptions['authenticators'],
  refuse: Refuse = plainRefusal,
): Promise<Principal> {
  if (token.length > MAX_TOKEN)
    throw refuse('unauthenticated', 'the bearer token is too long', { reason: 'token_too_long' });
  try {
    if (ApiKeyStore.looksLikeKey(token) && a.keys) return a.keys.verify(token);
    if (a.jwt) return await a.jwt.authenticate(token);
  } catch (e) {
    if (e instanceof CaxtonError && (e.code === 'unauthenticated' || e.code === 'forbidden'))
      throw refuse(e.code as 'unauthenticated', e.message, { reason: 'invalid_credentials' });
    throw e;
  }
  throw refuse(
    'unauthenticated',
    'the bearer token is not a Caxton API key (cxk_...) and no [auth.jwt] issuer is configured',
    { reason: 'invalid_credentials' },
  );
}

/**
 * The caller of a request, whatever carried it: its bearer token when it sent one, else the client
 * certificate its connection's handshake verified against `[server.tls] ca` (mTLS) when a mapping
 * entry names it; neither is `missing_credentials`.
 */
export async function principalOfCredentials(
  token: string | undefined,
  verifiedCertificate: PeerCertificate | undefined,
  a: AuthPluginOptions['authenticators'],
  refuse: Refuse = plainRefusal,
): Promise<Principal> {
  if (token !== undefined) return principalOfBearer(token, a, refuse);
  const p = verifiedCertificate && a.certificate?.(verifiedCertificate);
  if (p) return p;
  throw missingCredentials(refuse);
}

/** The refusal of a call that brought no credential. */
export function missingCredentials(refuse: Refuse = plainRefusal): CaxtonError {
  return refuse(
    'unauthenticated',
    'authentication required: send "Authorization: Bearer <API key>" (create one with `caxton key create`; the CLI sends $CAXTON_API_KEY or the key of `caxton login`)',
    { reason: 'missing_credentials' },
  );
}

/** Throws the refusal when the principal's agent scope does not include `agent`. */
export function assertAgentAllowed(p: Principal, agent: string, refuse: Refuse = plainRefusal): void {
  if (!inScope(p.scope.agents, agentOfRef(agent)))
    throw refuse(
      'forbidden',
      `${p.id} may not use the agent "${agent}" (its keys allow: ${p.scope.agents!.join(', ')})`,
      {
        reason: 'agent_scope',
        agent,
      },
    );
}

/** Throws the refusal unless `access` (a permission, on the agent or tool `params` name) lets `p` make the call. */
export function checkAccess(
  p: Principal,
  access: Access,
  params: Readonly<Record<string, string>> | undefined,
  refuse: Refuse = plainRefusal,
): void {
  if (!('permission' in access)) return;
  if (!can(p, access.permission))
    throw refuse(
      'forbidden',
      `${p.id} (role ${p.role}) may not do this: it needs the permission ${access.permission}`,
      {
        reason: 'permission',
        permission: access.permission,
        role: p.role,
      },
    );
  if (access.agentParam !== undefined) {
    const agent = params?.[access.agentParam];
    if (agent !== undefined) assertAgentAllowed(p, agent, refuse);
  }
  if (access.toolParams !== undefined && p.scope.tools !== undefined) {
    const tool = `${params?.[access.toolParams[0]] ?? ''}.${params?.[access.toolParams[1]] ?? ''}`;
    if (!inScope(p.scope.tools, tool))
      throw refuse(
        'forbidden',
        `${p.id} may not call the tool "${tool}" (its keys allow: ${p.scope.tools.join(', ')})`,
        {
          reason: 'tool_scope',
          tool,
        },
      );
  }
}

/**
 * The principal's limits, its request charged against them (a `rate_limited` error past them).
 * Limits apply to authenticated principals only: the local principal (authentication off) is the operator.
 */
export function admitRequest(opts: AuthPluginOptions, p: Principal): LimitSet | undefined {
  if (!opts.limitsOf || p.kind === 'local') return undefined;
  const limits = opts.limitsOf(p);
  if (opts.limiter) {
    const d = opts.limiter.admitRequest(p.id, limits);
    if (!d.ok) throw limitedError(d);
  }
  return limits;
}

/**
 * A call outside HTTP (the A2A gRPC listener): its bearer token (none: refused), the policy
 * `access` on `params`, the request-rate limit. A refusal before anyone is known is charged to the
 * address, as over HTTP: past the allowance it is the anonymous limit's `rate_limited`.
 */
export async function admitCall(
  opts: AuthPluginOptions,
  call: {
    token: string | undefined;
    /** The client certificate the listener's handshake verified (mTLS), if any: a principal without a bearer. */
    certificate?: PeerCertificate | undefined;
    source: string;
    access: Access;
    params: Readonly<Record<string, string>>;
    /** Told who the caller is as soon as that is known, so that a refusal after it is recorded as theirs. */
    known?: (p: Principal) => void;
  },
): Promise<{ principal: Principal; limits: LimitSet | undefined }> {
  let principal: Principal | undefined;
  const refuse: Refuse = (code, message, details) => {
    if (principal === undefined && opts.anonymous) {
      const wait = opts.anonymous.charge(call.source);
      if (wait > 0) return anonymousLimitedError(call.source, opts.anonymous.requestsPerMinute, wait);
    }
    return new CaxtonError(code, message, details);
  };
  if (!opts.enabled) principal = LOCAL_PRINCIPAL;
  else
    principal = await principalOfCredentials(
      call.token === '' ? undefined : call.token,
      call.certificate,
      opts.authenticators,
      refuse,
    );
  opts.onAuthenticated?.(principal);
  call.known?.(principal);
  checkAccess(principal, call.access, call.params, refuse);
  return { principal, limits: admitRequest(opts, principal) };
}

/**
 * Holds a stream opened by `p` until its credential stops being valid (an API key revoked, rotated
 * or expired; a bearer token expired), when `close` is called with the reason; undefined when
 * nothing can end it. The returned function releases a stream that ended by itself.
 */
export type StreamHolder = (p: Principal, close: (why: StreamEnd) => void) => (() => void) | undefined;

export function streamHolder(opts: AuthPluginOptions): StreamHolder {
  // Bearer tokens cannot be revoked here, only outlived: their streams are held until they expire.
  const tokenStreams = new OpenStreams();
  return (p, close) => {
    if (!opts.enabled) return undefined;
    if (p.kind === 'key') return opts.authenticators.keys?.holdStream(p, close);
    if (p.expiresAt !== undefined) {
      const at = p.expiresAt;
      return tokenStreams.hold(p.id, p.name, at, () => close(tokenExpired(at)));
    }
    return undefined;
  };
}
