import type { AgentDefinition, RolloutCheck } from './definition.js';
import { AgentChecks, type AgentCheck, type AgentResolver } from './definition-checks.js';
import { AgentFiles } from './agent-files.js';
import { Deployer, type DeployInput, type DeployOutcome, type SharedAgentsPort } from './deployer.js';
import type { DeployActor } from './deploy-actor.js';
import type { ParseResult } from './parse.js';
import type { ParseStats } from './parse-pool.js';
import type { AgentRegistry, DeployedAgent } from './agent-registry.js';
import {
  RolloutController,
  type RollbackOutcome,
  type RolloutActionOptions,
  type RolloutEventType,
  type RolloutOutcome,
  resolveThrough,
  VersionResolver,
  type ConversationPinsPort,
  type Rollout,
  type RolloutStatePort,
  type RolloutStore,
  type ShadowResultsPort,
} from './rollouts/index.js';
import type { AgentStore } from './sqlite-agents.js';
import { VersionHistory, type AgentVersionsPort, type AgentVersionStore } from './versions/index.js';

/** A cluster node's shared parts (the cluster's PostgreSQL); a single node has none. */
export interface ClusterAgentsOptions {
  /** The version history of API agents shared by the nodes (src/agents/versions/pg-versions.ts); file agents' versions stay in `versions`. */
  versions: AgentVersionsPort;
  /** The API agents shared by the nodes (src/agents/pg-agents.ts): removals and the deployed text go through this. */
  agents: SharedAgentsPort;
  /** The cluster's rollouts (rollouts/pg-rollout-state.ts): every node reads and changes the same rows, and one judges the canaries. */
  rollouts?: RolloutStatePort | undefined;
  /** What the cluster's shadow rollouts compared (rollouts/pg-shadow-results.ts): every node's comparisons in one report. */
  shadowResults?: ShadowResultsPort | undefined;
  /** Conversation pins for every node (src/agents/rollouts/pg-pins.ts), so a conversation keeps one version whichever node handles its turns. */
  pins?: ConversationPinsPort | undefined;
  /** The shared history or rollouts could not be read (this node's view stays as it was until the next read). */
  onError?: ((e: unknown) => void) | undefined;
}

export interface AgentServiceOptions {
  /** A warning when the agent's model cannot be served as written (see src/execution/deps.ts modelCheck). */
  checkModel?: (llm: { provider?: string; model?: string }) => string | undefined;
  /** Further deploy-time checks (providers and tools the server cannot resolve); more are added once the server's parts are up (`addCheck`). */
  checks?: AgentCheck[];
  /** Bodies and files at least this large are parsed on a worker thread (parse-pool.ts; default 64 KiB). */
  offThreadParseBytes?: number;
  /** Resolves `[wasm]` modules at deploy and file load (src/execution/wasm-agent.ts); absent: such agents are refused. */
  resolveModule?: AgentResolver;
  /** Every deploy recorded as a version (versions/versions.ts); absent: no history (tests of the parser alone). */
  versions?: AgentVersionStore;
  /** Blue-green, canary and shadow rollouts (rollouts/rollouts.ts); needs `versions`. */
  rollouts?: RolloutStore;
  /** Runs a canary candidate's [[rollout.checks]] (the server wires the executor: `setCheckRunner`). */
  runChecks?: (agent: string, version: number, checks: RolloutCheck[]) => Promise<string | undefined>;
  /** What shadow rollouts compared (the shadow runner's store; a cluster node's is `cluster.shadowResults`). */
  shadowResults?: Pick<ShadowResultsPort, 'report' | 'record' | 'skipped'>;
  /** Told of rollout events (the server records them in the event store). */
  onRollout?: (event: RolloutEventType, rollout: Rollout) => void;
  /** A canary step that failed (its promotion or rollback could not be stored); it is tried again at the next check. */
  onCanaryError?: (e: unknown, rollout: Rollout) => void;
  /** How often running canaries are judged without traffic (ms; default 1000). */
  canaryIntervalMs?: number;
  /** A cluster node's shared parts. */
  cluster?: ClusterAgentsOptions;
}

/**
 * The agents of a server, whichever way they arrive (REST API or agents_dir): a facade over the
 * parts that do the work, wired to one registry and one store. `deployer` deploys, rolls back and
 * removes API agents; `files` keeps agents_dir's; `history` is where versions are and the hot
 * path's view of them; `rollout` runs rollouts; the version resolver (installed on the registry)
 * picks the version each request runs on.
 */
export class AgentService {
  readonly registry: AgentRegistry;
  readonly checks: AgentChecks;
  readonly files: AgentFiles;
  readonly history: VersionHistory;
  readonly rollout: RolloutController;
  readonly deployer: Deployer;
  readonly #store: AgentStore;
  /** Resolves once a cluster node's view of the shared history is filled (loadPersisted starts it). */
  versionsReady: Promise<void> = Promise.resolve();
  /**
   * The tools a Claude Code agent that lists none is given (`[agents.claude] unlisted_tools`), as
   * the server computed them from caxton.toml; shown with such an agent. Empty: none.
   */
  unlistedTools: readonly string[] = [];

  constructor(registry: AgentRegistry, store: AgentStore, options: AgentServiceOptions = {}) {
    const cluster = options.cluster;
    this.registry = registry;
    this.#store = store;
    this.checks = new AgentChecks(options);
    this.history = new VersionHistory(registry, options.versions, cluster?.versions, cluster?.onError);
    this.rollout = new RolloutController(registry, store, this.history, {
      rollouts: cluster?.rollouts ?? options.rollouts,
      pins: cluster?.pins ?? options.rollouts,
      runChecks: options.runChecks,
      shadowResults: cluster?.shadowResults ?? options.shadowResults,
      onRollout: options.onRollout,
      onCanaryError: options.onCanaryError,
      onError: cluster?.onError,
      canaryIntervalMs: options.canaryIntervalMs,
    });
    resolveThrough(
      registry,
      new VersionResolver(registry, this.history, this.rollout),
      this.history,
      this.rollout.pins,
    );
    this.files = new AgentFiles(registry, this.checks, options.versions);
    this.deployer = new Deployer({
      registry,
      store,
      checks: this.checks,
      history: this.history,
      rollouts: this.rollout,
      sharedAgents: cluster?.agents,
    });
  }

  /** Where rollouts are kept (absent: none). */
  get rollouts(): RolloutStatePort | undefined {
    return this.rollout.rollouts;
  }

  /** Loads every API-deployed agent persisted in the store; a cluster node then fills its view of the shared history (`versionsReady`). */
  loadPersisted(): number {
    const loaded = this.deployer.loadPersisted();
    if (this.history.shared) {
      const rollouts = this.rollout.rollouts;
      const also = (name: string): number[] => {
        const r = rollouts?.running(name);
        return r ? [r.stable_version, r.candidate_version] : [];
      };
      this.versionsReady = this.history.fill(loaded, this.#store, also);
    }
    return loaded.length;
  }

  /** Parses and checks a definition (a large body on the parser's worker thread, so the event loop stays free). */
  validate(input: DeployInput): Promise<ParseResult> {
    return this.checks.validateAsync(input.body, input.file ?? '<request body>', input.format);
  }

  deploy(input: DeployInput, mode: 'create' | 'update', expectName?: string): Promise<DeployOutcome> {
    return this.deployer.deploy(input, mode, expectName);
  }

  remove(name: string, actor?: DeployActor): Promise<DeployedAgent> {
    return this.deployer.remove(name, actor);
  }

  source(name: string): Promise<string | undefined> {
    return this.deployer.source(name);
  }

  rollback(name: string, to?: number, deployedBy?: string, opts?: RolloutActionOptions): Promise<RollbackOutcome> {
    return this.deployer.rollback(name, to, deployedBy, opts);
  }

  promote(name: string, by?: string, opts?: RolloutActionOptions): Promise<RolloutOutcome> {
    return this.rollout.promote(name, by, opts);
  }

  /** The version that unaddressed requests get: a running rollout's stable one, else the newest. */
  currentVersion(name: string): number | undefined {
    return this.rollout.currentVersion(name);
  }

  /** `currentVersion` as the API reports it: on a cluster node read from the shared history, not from this node's view of it. */
  async liveVersion(name: string): Promise<number | undefined> {
    await this.rollout.reload(name);
    const running = this.rollout.rollouts?.running(name);
    if (running) return running.stable_version;
    const live = this.registry.get(name);
    if (!live || !this.history.isShared(name)) return this.currentVersion(name);
    return (await this.history.liveVersion(live, this.history.shared!))?.version;
  }

  /** Adds a deploy-time check (the tool check, once tool servers and MCP servers are up). */
  addCheck(check: AgentCheck): void {
    this.checks.add(check);
  }

  /** The server-side checks' issues for a deployed agent. */
  checkDeployed(def: AgentDefinition): ReturnType<AgentCheck> {
    return this.checks.deployed(def);
  }

  /** Where bodies were parsed (in-thread or on the worker): for tests and diagnostics. */
  parseStats(): ParseStats {
    return this.checks.stats();
  }

  /** Stops the canary judge (writing the figures still waiting) and ends the parser's worker thread (with the server). */
  async close(): Promise<void> {
    await this.rollout.close();
    await this.checks.close();
  }
}
