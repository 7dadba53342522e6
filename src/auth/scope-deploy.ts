import type { DeployActor } from '../agents/index.js';
import { CaxtonError } from '../shared/errors.js';
import { inScope, type Principal } from './principal.js';

/** What a deploy, update, rollback, promotion or removal makes an agent: its name and what it provides. */
export interface DeployTarget {
  name: string;
  /** The capabilities the agent will declare; absent for a removal. */
  capabilities?: readonly string[];
  /** The one capability made from the agent's name when it declares none: not held to the capabilities scope (the name's scope covers it). */
  derivedCapability?: string;
}

/**
 * The deploy rule of a scoped principal (docs/security.md, "Scope rules"): it may create, change
 * and remove only agents whose names are in its `agents` scope; each capability the agent declares
 * must be in its `capabilities` scope, and must not be provided already by an agent outside its
 * `agents` scope — otherwise a key limited to `a-*` could deploy `a-hijack` declaring another
 * team's capability and receive part of that team's traffic. Unscoped principals pass.
 *
 * `providersOf` names the agents other than the target providing a capability now. Throws 403 forbidden with reason
 * `agent_scope`, `capability_scope` or `capability_taken`.
 */
export function assertDeployAllowed(
  p: Principal,
  target: DeployTarget,
  providersOf: (capability: string) => readonly string[],
): void {
  const { agents, capabilities } = p.scope;
  if (!inScope(agents, target.name)) {
    throw new CaxtonError(
      'forbidden',
      `${p.id} may not deploy, change or remove the agent "${target.name}": its keys allow the agents ${agents!.join(', ')}; choose a name matching one of them, or ask an administrator for a key whose agents scope includes "${target.name}"`,
      { reason: 'agent_scope', agent: target.name },
    );
  }
  for (const capability of target.capabilities ?? []) {
    if (capability !== target.derivedCapability && !inScope(capabilities, capability)) {
      throw new CaxtonError(
        'forbidden',
        `${p.id} may not deploy an agent declaring the capability "${capability}": its keys allow the capabilities ${capabilities!.join(', ')}; remove it from the agent's capabilities, or ask an administrator for a key whose capabilities scope includes it`,
        { reason: 'capability_scope', agent: target.name, capability },
      );
    }
    if (agents === undefined) continue;
    // The providers are not named: they are outside what this principal may see (src/auth/scope-read.ts).
    if (providersOf(capability).some((a) => !inScope(agents, a))) {
      throw new CaxtonError(
        'forbidden',
        `${p.id} may not deploy an agent declaring the capability "${capability}": an agent outside its agents scope (${agents.join(', ')}) provides it, and the new agent would take part of that agent's traffic; choose another capability name, or ask an administrator to deploy it`,
        { reason: 'capability_taken', agent: target.name, capability },
      );
    }
  }
}

/** The principal as the agent service sees a deployer (its rule above); undefined only where no principal exists (public routes deploy nothing). */
export function deployActor(p: Principal | undefined): DeployActor | undefined {
  if (p === undefined) return undefined;
  return { id: p.id, authorize: (target, providersOf) => assertDeployAllowed(p, target, providersOf) };
}
