import { CaxtonError } from '../shared/errors.js';
import { assertAgentAllowed } from './plugin.js';
import { agentOfRef, inScope, type Principal } from './principal.js';

/**
 * Which agents a message may be routed to by capability, for the principal it acts for: the
 * router passes over providers `allows` refuses, and throws `refusal` when that leaves none.
 */
export interface SendScope {
  allows(agent: string): boolean;
  refusal(capability: string): CaxtonError;
}

/**
 * The one rule for sending a message (docs/security.md, "Scope of messages and the acting
 * principal"), applied by both message buses to every message whatever surface it came from: the
 * named receivers must be in the acting principal's `agents` scope, the capability in its
 * `capabilities` scope, and a capability is routed only to providers in its `agents` scope.
 * Throws 403 forbidden; returns the routing filter, or undefined when routing is unrestricted.
 * No principal (a message the platform itself sends, or one stored before messages carried their
 * principal) and the local principal (authentication off) are unrestricted.
 */
export function checkSend(
  p: Principal | undefined,
  m: { readonly receivers: readonly string[]; readonly capability?: string | undefined },
): SendScope | undefined {
  if (p === undefined || p.kind === 'local') return undefined;
  for (const r of m.receivers) assertAgentAllowed(p, r);
  if (m.capability !== undefined && !inScope(p.scope.capabilities, m.capability)) {
    throw new CaxtonError(
      'forbidden',
      `${p.id} may not address the capability "${m.capability}" (its keys allow: ${p.scope.capabilities!.join(', ')})`,
      {
        reason: 'capability_scope',
        capability: m.capability,
      },
    );
  }
  const agents = p.scope.agents;
  if (agents === undefined) return undefined;
  return {
    allows: (agent) => inScope(agents, agentOfRef(agent)),
    // The same refusal as a direct send to an agent outside the scope; the providers are not named.
    refusal: (capability) =>
      new CaxtonError(
        'forbidden',
        `${p.id} may not use the agents providing capability "${capability}" (its keys allow: ${agents.join(', ')})`,
        { reason: 'agent_scope', capability },
      ),
  };
}

/**
 * A message acting for a principal this server cannot turn back into one (a key revoked, deleted
 * or expired since; a token or certificate not seen since the server started): its scope is
 * unknown, so nothing is sent on its behalf.
 */
export function unknownPrincipal(id: string): CaxtonError {
  return new CaxtonError(
    'forbidden',
    `this message acts for ${id}, which is no longer valid here (a key revoked or expired, or a token or certificate not presented to this server since it started): nothing more is sent on its behalf; send again with a valid credential`,
    { reason: 'principal_unknown', on_behalf_of: id },
  );
}
