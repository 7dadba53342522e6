import { CaxtonError } from '../shared/errors.js';
import type { SourceIssue } from '../shared/issues.js';
import type { AgentChecks } from './definition-checks.js';
import { agentKey, type AgentDefinition, type AgentFormat, type RolloutSettings } from './definition.js';
import { authorize, type DeployActor } from './deploy-actor.js';
import type { ParseResult } from './parse.js';
import type { AgentRegistry, DeployedAgent } from './agent-registry.js';
import {
  canaryPlanSchema,
  type CanaryPlan,
  type CanaryPlanInput,
  type RollbackOutcome,
  type RolloutActionOptions,
  type RolloutController,
  type Rollout,
  type RolloutStrategy,
} from './rollouts/index.js';
import type { AgentStore, StoredAgent } from './sqlite-agents.js';
import { apiAgent, definitionHash, type AgentVersion, type VersionHistory } from './versions/index.js';

export interface DeployInput {
  body: string | Uint8Array;
  format?: AgentFormat;
  /** Shown in messages; defaults to `<request body>`. */
  file?: string;
  /** The authenticated principal deploying it, recorded with the version. */
  deployed_by?: string | undefined;
  /** The W3C trace context of the request deploying it: its lifecycle event names that trace. */
  traceparent?: string | undefined;
  /**
   * `direct` (default): live at once. `blue-green`: recorded beside the live version, reachable as
   * NAME@VERSION until promoted. `canary`: as blue-green, and given a rising share of new
   * conversations stage by stage, promoted or rolled back by its figures (rollouts/canary.ts).
   */
  strategy?: 'direct' | RolloutStrategy | undefined;
  /** The canary's plan (stages, hold time, thresholds); defaults fill what is left out. */
  canary?: CanaryPlanInput | undefined;
  /** Who deploys, when their scope limits what they may deploy; absent: the operator. */
  actor?: DeployActor | undefined;
}

export interface DeployOutcome {
  agent: DeployedAgent;
  warnings: SourceIssue[];
  created: boolean;
  /** The content equals the deployed version's: nothing was stored or changed. */
  unchanged?: boolean;
  /** The version this deploy recorded (or, when unchanged, the current one); absent without a version store. */
  version?: AgentVersion | undefined;
  /** A rollout deploy: the rollout it started (the agent stays on its live version). */
  rollout?: Rollout | undefined;
}

/** What the deployer needs of the agents a cluster's nodes share (besides putting one live with its version). */
export interface SharedAgentsPort {
  /** Removes the agent for every node (`a`: this node's copy). Whether a live agent was removed. */
  remove(a: StoredAgent): Promise<boolean>;
  /** The text a live agent was deployed from, on whichever node. */
  source(name: string): Promise<string | undefined>;
}

function invalid(result: Extract<ParseResult, { ok: false }>): CaxtonError {
  const first = result.errors[0];
  const where = first ? `${first.file ?? ''}${first.line ? `:${first.line}:${first.column ?? 1}` : ''}` : '';
  return new CaxtonError(
    'invalid_agent',
    `agent definition is invalid (${result.errors.length} error${result.errors.length === 1 ? '' : 's'}); first: ${where ? `${where} ` : ''}${first?.message ?? ''}`,
    { errors: result.errors, warnings: result.warnings },
  );
}

/**
 * Deploys, updates, rolls back and removes API agents, keeping the registry, the store and the
 * version history consistent: validation first, storage second (the version and the agent row in
 * one transaction), the registry last — so a failure never leaves a half-deployed agent. One path
 * for a single node and a cluster node: the version port decides where the version is numbered.
 */
export class Deployer {
  readonly #registry: AgentRegistry;
  readonly #store: AgentStore;
  readonly #checks: AgentChecks;
  readonly #history: VersionHistory;
  readonly #rollouts: RolloutController;
  readonly #shared: SharedAgentsPort | undefined;
  /** The change of each agent under way: the next one waits for it, so two deploys of one agent never both pass the checks. */
  readonly #turns = new Map<string, Promise<unknown>>();

  constructor(parts: {
    registry: AgentRegistry;
    store: AgentStore;
    checks: AgentChecks;
    history: VersionHistory;
    rollouts: RolloutController;
    sharedAgents?: SharedAgentsPort | undefined;
  }) {
    this.#registry = parts.registry;
    this.#store = parts.store;
    this.#checks = parts.checks;
    this.#history = parts.history;
    this.#rollouts = parts.rollouts;
    this.#shared = parts.sharedAgents;
  }

  /** Loads every API-deployed agent persisted in the store; the definitions loaded. */
  loadPersisted(): AgentDefinition[] {
    const loaded: AgentDefinition[] = [];
    const local = this.#history.shared ? undefined : this.#history.local;
    for (const s of this.#store.loadAll()) {
      this.#registry.upsert({
        definition: s.definition,
        format: s.format,
        origin: { kind: 'api' },
        revision: s.revision,
        deployed_at: s.deployed_at,
        updated_at: s.updated_at,
      });
      loaded.push(s.definition);
      // An agent stored before versions were kept gets its first version now, so rollback has a base.
      if (local && local.latest(s.definition.name) === undefined)
        local.append({
          definition: s.definition,
          format: s.format,
          source: this.#store.source(s.definition.name) ?? '',
          how: 'api',
          origin: 'api',
        });
    }
    return loaded;
  }

  /** Deploys a new agent (mode `create`) or replaces an API-deployed one (mode `update`); a large body is parsed off the event loop. */
  async deploy(input: DeployInput, mode: 'create' | 'update', expectName?: string): Promise<DeployOutcome> {
    const validated = await this.#checks.validateAsync(input.body, input.file ?? '<request body>', input.format);
    const out = await this.#inTurn(validated.ok ? validated.definition.name : undefined, () =>
      this.#deploy(input, mode, expectName, validated),
    );
    // [[rollout.checks]] run before a canary's first stage (the candidate gets no traffic until they pass), outside the agent's turn: a change meanwhile is refused as during any rollout.
    if (!out.rollout || !validated.ok) return out;
    return {
      ...out,
      rollout: await this.#rollouts.checkFirst(out.rollout, validated.definition.rollout?.checks ?? []),
    };
  }

  /**
   * Runs `fn` once every change of `name` started before it has finished. The checks read the
   * registry, and the write that follows them awaits the version store: without a turn each, two
   * deploys of one agent could both pass the checks (both create it, say).
   */
  async #inTurn<T>(name: string | undefined, fn: () => Promise<T>): Promise<T> {
    if (name === undefined) return fn();
    const key = agentKey(name);
    const before = this.#turns.get(key);
    const mine = (before ?? Promise.resolve()).then(fn, fn);
    const settled = mine.then(
      () => {},
      () => {},
    );
    this.#turns.set(key, settled);
    try {
      return await mine;
    } finally {
      if (this.#turns.get(key) === settled) this.#turns.delete(key);
    }
  }

  async #deploy(
    input: DeployInput,
    mode: 'create' | 'update',
    expectName: string | undefined,
    validated: ParseResult,
  ): Promise<DeployOutcome> {
    const { result, def, existing } = this.#admit(input, mode, expectName, validated);
    const history = this.#history;
    const port = history.portFor(def.name);
    const current = existing && port && (await history.liveVersion(existing, port));
    // Identical content (the same definition, whatever the formatting): nothing to store or reload.
    if (existing && current && current.hash === definitionHash(def))
      return { agent: existing, warnings: result.warnings, created: false, unchanged: true, version: current };
    if (existing) await this.#rollouts.refuseShared(def.name);
    const source = typeof input.body === 'string' ? input.body : Buffer.from(input.body).toString('utf8');
    // The deploy's strategy, else the file's [rollout] one (not for a first deploy: there is nothing to roll out beside).
    const strategy = input.strategy ?? (existing ? def.rollout?.strategy : undefined) ?? 'direct';
    if (strategy !== 'direct') {
      const plan = strategy === 'canary' ? canaryPlan({ ...planOf(def.rollout), ...input.canary }) : undefined;
      if (!port || !this.#rollouts.rollouts)
        throw new CaxtonError(
          'invalid_request',
          `this server keeps no agent versions, so it cannot run a ${strategy} rollout`,
        );
      if (!existing || !current)
        throw new CaxtonError(
          'agent_not_found',
          `a ${strategy} deploy needs a live version of agent "${def.name}" to run beside; deploy it directly first (no --strategy)`,
          { name: def.name },
        );
      const candidate = {
        definition: def,
        format: result.format,
        source,
        warnings: result.warnings,
        by: input.deployed_by,
      };
      const { version, rollout } = await this.#rollouts.start(port, strategy, plan, existing, current, candidate);
      return { agent: existing, warnings: result.warnings, created: false, version, rollout };
    }
    const agent = apiAgent(def, result.format, existing);
    const stored = { ...agent, source };
    let version: AgentVersion | undefined;
    if (port) {
      const v = {
        definition: def,
        format: result.format,
        source,
        how: 'api' as const,
        origin: 'api' as const,
        deployed_by: input.deployed_by,
      };
      version = history.wrote(
        port,
        await port.append(v, () => this.#store.save(stored), stored),
        def,
        result.format,
        source,
      );
    } else this.#store.save(stored);
    this.#registry.upsert(agent, input.traceparent);
    return { agent, warnings: result.warnings, created: !existing, version };
  }

  /** What every deploy checks before anything is written: the name, the mode, file agents, a running rollout. */
  #admit(
    input: DeployInput,
    mode: 'create' | 'update',
    expectName: string | undefined,
    result: ParseResult,
  ): { result: Extract<ParseResult, { ok: true }>; def: AgentDefinition; existing: DeployedAgent | undefined } {
    if (!result.ok) throw invalid(result);
    const def = result.definition;
    authorize(this.#registry, input.actor, def.name, def.capabilities);
    if (expectName !== undefined && agentKey(expectName) !== agentKey(def.name)) {
      throw new CaxtonError(
        'invalid_request',
        `the body defines agent "${def.name}" but the URL names "${expectName}"`,
        { field: 'name' },
      );
    }
    const existing = this.#registry.get(def.name);
    if (existing?.origin.kind === 'file') {
      throw new CaxtonError(
        'agent_managed_by_file',
        `agent "${existing.definition.name}" is defined by the file ${existing.origin.path}; edit or delete that file instead`,
        {
          path: existing.origin.path,
        },
      );
    }
    if (mode === 'create' && existing) {
      throw new CaxtonError(
        'agent_exists',
        `an agent named "${existing.definition.name}" is already deployed (names are unique regardless of case)`,
        {
          name: existing.definition.name,
          hint: 'use PUT /api/v1/agents/{name} to update it',
        },
      );
    }
    if (mode === 'update' && !existing) {
      throw new CaxtonError('agent_not_found', `no agent named "${def.name}" is deployed`, { name: def.name });
    }
    if (existing && existing.definition.name !== def.name) {
      // Names are unique regardless of case: "Foo" would silently replace and rename "foo".
      throw new CaxtonError(
        'invalid_request',
        `the body names the agent "${def.name}" but the deployed agent is spelt "${existing.definition.name}"; names are unique regardless of case, so this would rename it`,
        {
          field: 'name',
          name: def.name,
          deployed: existing.definition.name,
          hint: `use name "${existing.definition.name}", or DELETE the agent and deploy it again under the new spelling`,
        },
      );
    }
    if (existing) this.#rollouts.refuseRunning(existing);
    return { result, def, existing };
  }

  /**
   * Deploys an earlier version again, as a new version (`how: rollback`): `to`, or else the newest
   * version whose content differs from the current one; a running rollout is ended instead. API
   * agents only: a file agent's file is its source of truth.
   */
  async rollback(
    name: string,
    to?: number,
    deployedBy?: string,
    opts: RolloutActionOptions = {},
  ): Promise<RollbackOutcome> {
    authorize(this.#registry, opts.actor, name);
    const existing = this.#registry.get(name);
    if (!existing) throw new CaxtonError('agent_not_found', `no agent named "${name}" is deployed`, { name });
    const agentName = existing.definition.name;
    if (existing.origin.kind === 'file') {
      throw new CaxtonError(
        'agent_managed_by_file',
        `agent "${agentName}" is defined by the file ${existing.origin.path}; roll it back by restoring the file (caxton agent history ${agentName} lists its versions, GET /api/v1/agents/${agentName}/versions/N has each one's source)`,
        { path: existing.origin.path },
      );
    }
    const versions = this.#history.portFor(agentName);
    if (!versions) throw new CaxtonError('invalid_request', 'this server keeps no agent versions');
    const ended = await this.#rollouts.rollbackRunning(existing, to, deployedBy);
    if (ended) return ended;
    const current = await this.#history.liveVersion(existing, versions);
    let target = to !== undefined ? await versions.get(agentName, to) : undefined;
    if (to !== undefined && !target) {
      const { items, total } = await versions.list(agentName, { limit: 1 });
      throw new CaxtonError(
        'version_not_found',
        `agent "${agentName}" has no version ${to}${total > 0 ? ` (versions kept: ${total}, the newest is ${items[0]!.version})` : ''}`,
        {
          name: agentName,
          version: to,
          hint: `caxton agent history ${agentName} lists them`,
        },
      );
    }
    if (to === undefined) {
      for (let offset = 0; !target; offset += 100) {
        const page = await versions.list(agentName, { limit: 100, offset });
        const found = page.items.find((v) => v.hash !== current?.hash);
        if (found) target = await versions.get(agentName, found.version);
        if (page.items.length < 100) break;
      }
      if (!target)
        throw new CaxtonError(
          'no_earlier_version',
          `agent "${agentName}" has no earlier version to roll back to: every version kept has the content deployed now`,
          {
            name: agentName,
            hint: `deploy a new version, or see caxton agent history ${agentName}`,
          },
        );
    }
    const restored = target!;
    if (current && restored.hash === current.hash)
      throw new CaxtonError(
        'conflict',
        `version ${restored.version} of agent "${agentName}" has the content deployed now (version ${current.version}); nothing to roll back`,
        {
          name: agentName,
          version: restored.version,
        },
      );
    authorize(this.#registry, opts.actor, agentName, restored.definition.capabilities);
    const agent = apiAgent(restored.definition, restored.format, existing);
    const stored = { ...agent, source: restored.source };
    const version = await versions.append(
      {
        definition: restored.definition,
        format: restored.format,
        source: restored.source,
        how: 'rollback',
        origin: 'api',
        deployed_by: deployedBy,
        restored_from: restored.version,
      },
      () => this.#store.save(stored),
      stored,
    );
    this.#history.wrote(versions, version, restored.definition, restored.format, restored.source);
    this.#registry.upsert(agent);
    const { definition: _d, source: _s, ...summary } = restored;
    return { agent, version, restored: summary, warnings: this.#checks.deployed(restored.definition) };
  }

  /** Removes an API agent: on a cluster node first for every node (the shared row becomes a tombstone), then here. */
  remove(name: string, actor?: DeployActor): Promise<DeployedAgent> {
    authorize(this.#registry, actor, name);
    return this.#inTurn(name, () => this.#remove(name));
  }

  async #remove(name: string): Promise<DeployedAgent> {
    const existing = this.#registry.get(name);
    const shared = this.#shared;
    if (shared && existing?.origin.kind === 'api') {
      await shared.remove({ ...existing, source: this.#store.source(name) ?? '' });
      await this.#history.shared?.removed(existing.definition.name);
    }
    // A rollout of the agent ends with it (on a cluster, for every node: the rows are shared).
    if (existing) await this.#rollouts.removed(existing.definition.name);
    return this.#removeHere(name);
  }

  #removeHere(name: string): DeployedAgent {
    const existing = this.#registry.get(name);
    if (!existing) throw new CaxtonError('agent_not_found', `no agent named "${name}" is deployed`, { name });
    if (existing.origin.kind === 'file') {
      throw new CaxtonError(
        'agent_managed_by_file',
        `agent "${existing.definition.name}" is defined by the file ${existing.origin.path}; delete that file to remove it`,
        {
          path: existing.origin.path,
        },
      );
    }
    this.#store.delete(name);
    // Its history joins the removed agents', of which [agents] keep_removed_agents are kept (a
    // cluster's shared history is told by `remove`, for every node).
    this.#history.removedHere(existing.definition.name);
    this.#registry.remove(name);
    return existing;
  }

  /** The text an API agent was deployed from; on a cluster node from the shared agents (an agent deployed on another node has no copy here). */
  async source(name: string): Promise<string | undefined> {
    const shared = this.#shared;
    if (!shared || this.#registry.get(name)?.origin.kind !== 'api') return this.#store.source(name);
    return (await shared.source(name)) ?? this.#store.source(name);
  }
}

/** The canary plan of a deploy, or a 400 naming the option that is wrong and what it must be. */
function canaryPlan(input: CanaryPlanInput | undefined): CanaryPlan {
  const r = canaryPlanSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  const i = r.error.issues[0]!;
  const field = i.path.length > 0 ? i.path.join('.') : 'canary';
  throw new CaxtonError('invalid_request', `canary option "${field}": ${i.message}`, {
    field,
    hint: 'stages rise and end at 100, e.g. "5,25,50,100"; hold is a duration such as "30s"',
  });
}

/** The canary options a file's [rollout] table gives (the deploy's own options win, field by field). */
function planOf(r: RolloutSettings | undefined): CanaryPlanInput {
  if (!r) return {};
  return {
    ...(r.stages !== undefined && { stages: r.stages }),
    ...(r.hold_ms !== undefined && { hold: r.hold_ms / 1000 }),
    ...(r.min_requests !== undefined && { min_requests: r.min_requests }),
    ...(r.max_error_rate_increase !== undefined && { max_error_rate_increase: r.max_error_rate_increase }),
    ...(r.max_latency_ratio !== undefined && { max_latency_ratio: r.max_latency_ratio }),
  };
}
