import { CaxtonError } from '../../shared/errors.js';
import { canaryBucket } from './canary.js';
import type { AgentRegistry, DeployedAgent } from '../agent-registry.js';
import type { RolloutController } from './rollout-controller.js';
import type { ConversationPinsPort } from './rollouts.js';
import { asDeployed, type VersionHistory } from '../versions/index.js';

/**
 * Where a request lands: the agent to run, and which version of its history that is, when known:
 * `numbered` for NAME@VERSION, `placed` for a version a canary or shadow rollout placed it on.
 */
export interface Resolution {
  agent: DeployedAgent;
  numbered?: number;
  placed?: number;
}

/**
 * Which version of an agent a request runs on: NAME@VERSION (any version its history keeps), and
 * a name within a conversation (the version the conversation was pinned to, or a canary's share
 * drawn by the conversation's id). It only resolves; `resolveThrough` installs it on the registry,
 * which asks it whenever the executor resolves an agent: the one resolver of the invoke API, /v1,
 * MCP and messages.
 */
export class VersionResolver {
  readonly #registry: AgentRegistry;
  readonly #history: VersionHistory;
  readonly #rollouts: RolloutController;

  constructor(registry: AgentRegistry, history: VersionHistory, rollouts: RolloutController) {
    this.#registry = registry;
    this.#history = history;
    this.#rollouts = rollouts;
  }

  /** NAME@VERSION when `version` is given, else the name within `conversation`. */
  resolve(name: string, version: number | undefined, conversation: string | undefined): Resolution | undefined {
    return version !== undefined
      ? this.#resolveVersion(name, version)
      : this.#resolveInConversation(name, conversation);
  }

  /**
   * NAME@VERSION: any version the agent's history keeps (the live one, a running rollout's
   * candidate, an older one), numbered for the execution records.
   */
  #resolveVersion(name: string, version: number): Resolution | undefined {
    const live = this.#registry.get(name);
    if (!live || !this.#history.kept) return undefined;
    const agentName = live.definition.name;
    if (version === this.#rollouts.currentVersion(agentName)) return { agent: live, numbered: version };
    const v = this.#history.getSync(agentName, version);
    if (v) return { agent: asDeployed(live, v), numbered: version };
    const newest = this.#history.newestNumber(agentName);
    throw new CaxtonError(
      'version_not_found',
      `agent "${agentName}" has no version ${version}${newest !== undefined ? ` (its newest is ${newest}; GET /api/v1/agents/${agentName}/versions lists the ones kept)` : ''}`,
      { name: agentName, version },
    );
  }

  /**
   * A name within a conversation, for an agent that has had a rollout: the version the
   * conversation was pinned to when it first reached the agent (the live one then), even after a
   * promotion or a rollback; a pinned version no longer kept falls back to the live one.
   */
  #resolveInConversation(name: string, conversation: string | undefined): Resolution | undefined {
    const live = this.#registry.get(name);
    if (!live) return undefined;
    const placed = this.#placement(live, conversation);
    if (!placed) return { agent: live };
    const { agentName, current, canary, shadow, choose, pins } = placed;
    const chosen =
      conversation !== undefined
        ? pins.pin(conversation, agentName, choose)
        : typeof choose === 'number'
          ? choose
          : choose();
    // Shadow: every live request stays on the stable version; the server copies it to the candidate.
    if (chosen === current) return canary || shadow ? { agent: live, placed: current } : { agent: live };
    const v = this.#history.getSync(agentName, chosen);
    if (!v) return { agent: live };
    return canary ? { agent: asDeployed(live, v), placed: chosen } : { agent: asDeployed(live, v) };
  }

  /**
   * How a conversation of `live`'s agent without a pin is placed: the live version, or a canary's
   * share drawn by the conversation's id (`choose`, the same on every node); undefined when its
   * conversations are not pinned (an agent that never had a rollout).
   */
  #placement(
    live: DeployedAgent,
    conversation: string | undefined,
  ):
    | {
        agentName: string;
        current: number;
        canary: { id: number; candidate: number; share: number } | undefined;
        /** The agent's shadow rollout has the live version as its stable one. */
        shadow: boolean;
        choose: number | (() => number);
        pins: ConversationPinsPort;
      }
    | undefined {
    const control = this.#rollouts;
    const rollouts = control.rollouts;
    // Pins are kept wherever rollouts are: the cluster's shared ones, or `rollouts` itself.
    const pins = control.pins;
    if (!rollouts || !pins || !this.#history.kept || live.origin.kind !== 'api') return undefined;
    const agentName = live.definition.name;
    const running = rollouts.running(agentName);
    if (!running && !pins.hasHistory(agentName)) return undefined;
    const current = control.currentVersion(agentName);
    if (current === undefined) return undefined;
    const share = running ? control.shareOf(running) : null;
    const canary =
      running && share !== null ? { id: running.id, candidate: running.candidate_version, share } : undefined;
    const shadow = running?.strategy === 'shadow' && current === running.stable_version;
    // A canary's share of new conversations, each placed by its id as on every node (canaryBucket); one without a conversation is drawn on its own.
    const choose = canary
      ? () =>
          (conversation !== undefined ? canaryBucket(canary.id, conversation) : Math.random() * 100) < canary.share
            ? canary.candidate
            : current
      : current;
    return { agentName, current, canary, shadow, choose, pins };
  }

  /** The version a new conversation of the agent would be pinned to now (undefined: not pinned); shared pins claim it before the execution. */
  draw(name: string, conversation: string): number | undefined {
    const live = this.#registry.get(name);
    const placed = live && this.#placement(live, conversation);
    if (!placed) return undefined;
    return typeof placed.choose === 'number' ? placed.choose : placed.choose();
  }
}

/**
 * Installs `resolver` on the registry: each resolution's version is labelled on the definition
 * the executor gets (`history.labels`), the shared history's versions are read before NAME@VERSION
 * resolves, and a conversation's first pin is claimed before it resolves on a cluster.
 */
export function resolveThrough(
  registry: AgentRegistry,
  resolver: VersionResolver,
  history: VersionHistory,
  pins: ConversationPinsPort | undefined,
): void {
  const labels = history.labels;
  registry.setRefResolver((name, version, conversation) => {
    const r = resolver.resolve(name, version, conversation);
    if (r?.numbered !== undefined) labels.number(r.agent.definition, r.numbered);
    if (r?.placed !== undefined) labels.place(r.agent.definition, r.placed);
    return r?.agent;
  });
  // A version of the shared history is read before NAME@VERSION resolves (a cluster node keeps only some in memory).
  registry.setVersionPreparer((name, version) => history.ready(name, version));
  // Shared pins are read before the executor resolves a name within a conversation (resolution is
  // synchronous); a conversation's first pin is claimed there too (drawn as resolution would draw
  // it), so two nodes taking its first turns agree.
  if (pins?.load)
    registry.setRefPreparer((name, conversation) =>
      pins.load!(conversation, name, () => resolver.draw(name, conversation)),
    );
}
