import { agentKey } from './definition.js';
import { defaultCapability } from './parse.js';
import type { AgentRegistry } from './agent-registry.js';

/**
 * A deployer whose own rule decides what they may deploy (src/auth/scope-deploy.ts: a scoped API
 * key or token). The service asks it before anything is written, whichever surface deploys, with
 * what the agent is about to become; absent, the caller is the operator (agents_dir files, the
 * server's own start-up) and nothing is asked.
 */
export interface DeployActor {
  readonly id: string;
  /** Throws when the actor may not make `target.name` an agent providing `target.capabilities` (or remove it, without them). */
  authorize(
    target: { name: string; capabilities?: readonly string[]; derivedCapability?: string },
    providersOf: (capability: string) => readonly string[],
  ): void;
}

/**
 * Asks the actor whether it may make `name` an agent declaring `capabilities` (a removal: none),
 * before anything is answered about the agent (an out-of-scope name is refused, never told apart
 * as existing or not). Providers are the registry's agents other than the agent itself.
 */
export function authorize(
  registry: AgentRegistry,
  actor: DeployActor | undefined,
  name: string,
  capabilities?: readonly string[],
): void {
  if (!actor) return;
  const self = agentKey(name);
  // An agent declaring no capability provides one made from its name (parse.ts): the name's
  // scope covers it, so only whether another agent already provides it is asked.
  const derived =
    capabilities?.length === 1 && capabilities[0] === defaultCapability(name) ? capabilities[0] : undefined;
  actor.authorize(
    { name, ...(capabilities && { capabilities }), ...(derived !== undefined && { derivedCapability: derived }) },
    (capability) =>
      registry
        .providersOf(capability)
        .map((a) => a.definition.name as string)
        .filter((n) => agentKey(n) !== self),
  );
}
