import { CaxtonError, describeError } from '../shared/errors.js';
import type { SourceIssue } from '../shared/issues.js';
import { agentKey, type AgentDefinition, type AgentFormat, type RolloutCheck, type RolloutSettings } from './definition.js';
import { defaultCapability, parseAgent, type ParseResult } from './parse.js';
import { AgentParser, type ParseStats } from './parse-pool.js';
import type { AgentRegistry, DeployedAgent } from './registry.js';
import type { AgentStore, StoredAgent } from './store.js';
import { relayedFrom } from '../shared/relayed.js';
import { canaryBucket, canaryPlanSchema, type CanaryPlan, type CanaryPlanInput } from './canary.js';
import { CanaryRunner, type CanaryStatus } from './canary-runner.js';
import type { CanaryFigure, ConversationPinsPort, Rollout, RolloutHeld, RolloutMark, RolloutMarksPort, RolloutStore, RolloutStrategy, ShadowFigure, ShadowTarget } from './rollouts.js';
import type { ShadowReport, ShadowResult, ShadowResultStore } from './shadow-results.js';
import { definitionHash, type AgentVersion, type AgentVersionDetail, type AgentVersionsPort, type AgentVersionStore } from './versions.js';

export interface DeployInput {
  body: string | Uint8Array;
  format?: AgentFormat;
  /** Shown in messages; defaults to `<request body>`. */
  file?: string;
  /** The authenticated principal deploying it, recorded with the version. */
  deployed_by?: string | undefined;
  /**
   * `direct` (default): live at once. `blue-green`: recorded beside the live version, reachable as
   * NAME@VERSION until promoted. `canary`: as blue-green, and given a rising share of new
   * conversations stage by stage, promoted or rolled back by its figures (canary.ts).
   */
  strategy?: 'direct' | RolloutStrategy | undefined;
  /** The canary's plan (stages, hold time, thresholds); defaults fill what is left out. */
  canary?: CanaryPlanInput | undefined;
  /** Who deploys, when their scope limits what they may deploy; absent: the operator. */
  actor?: DeployActor | undefined;
}

/**
 * A deployer whose own rule decides what they may deploy (src/auth/scope-deploy.ts: a scoped API
 * key or token). The service asks it before anything is written, whichever surface deploys, with
 * what the agent is about to become; absent, the caller is the operator (agents_dir files, the
 * server's own start-up) and nothing is asked.
 */
export interface DeployActor {
  readonly id: string;
  /** Throws when the actor may not make `target.name` an agent providing `target.capabilities` (or remove it, without them). */
  authorize(target: { name: string; capabilities?: readonly string[]; derivedCapability?: string }, providersOf: (capability: string) => readonly string[]): void;
}

export interface DeployOutcome {
  agent: DeployedAgent;
  warnings: SourceIssue[];
  created: boolean;
  /** The content equals the deployed version's: nothing was stored or changed. */
  unchanged?: boolean;
  /** The version this deploy recorded (or, when unchanged, the current one); absent without a version store. */
  version?: AgentVersion | undefined;
  /** A blue-green deploy: the rollout it started (the agent stays on its live version). */
  rollout?: Rollout | undefined;
}

export interface RolloutOutcome {
  agent: DeployedAgent;
  rollout: Rollout;
  /** The version recorded by the promotion or the rollback. */
  version: AgentVersion;
}

/**
 * A cluster node: where a promotion or rollback of a rollout another node runs is sent
 * (src/cluster/rollout-sync.ts): that node carries it out and its outcome is the answer here.
 */
export interface RolloutForwarder {
  promote(node: string, name: string, by: string | undefined): Promise<RolloutOutcome>;
  rollback(node: string, name: string, to: number | undefined, by: string | undefined): Promise<RollbackOutcome>;
  status(node: string, name: string): Promise<RolloutStatus>;
}

/** A node's rollout of an agent: running, or its last; a canary's stage and figures, a shadow's report. */
export interface RolloutStatus {
  running: boolean;
  rollout: Rollout | null;
  canary: CanaryStatus | null;
  shadow: ShadowReport | null;
}

/** `forwarded`: asked by another node for this node's rollout (never sent on again). */
export interface RolloutActionOptions {
  forwarded?: boolean;
  /** Who asks, when their scope limits which agents they may change (DeployActor). */
  actor?: DeployActor | undefined;
}

export interface RollbackOutcome {
  agent: DeployedAgent;
  /** The new version, a copy of `restored`. */
  version: AgentVersion;
  restored: AgentVersion;
  warnings: { code: string; field: string; message: string }[];
  /** The rollout this rollback ended, when one was running. */
  rollout?: Rollout | undefined;
}

/** A file in agents_dir whose current content does not load (the last good version keeps running). */
/** Checks the service runs on every valid definition, deploy and file alike (wired by the server). */
export interface AgentServiceOptions {
  /** A warning when the agent's model cannot be served as written (see src/execution/deps.ts modelCheck). */
  checkModel?: (llm: { provider?: string; model?: string }) => string | undefined;
  /**
   * Further deploy-time checks (providers and tools the server cannot resolve), each
   * returning warnings. More can be added once the server's parts are up (`addCheck`).
   */
  checks?: AgentCheck[];
  /** Bodies and files at least this large are parsed on a worker thread (parse-pool.ts; default 64 KiB). */
  offThreadParseBytes?: number;
  /** Every deploy recorded as a version (versions.ts); absent: no history (tests of the parser alone). */
  versions?: AgentVersionStore;
  /**
   * A cluster node: the version history of API agents shared by the nodes (the
   * cluster's PostgreSQL, src/cluster/pg-agent-versions.ts). API deploys, rollbacks and rollouts
   * record their versions there; file agents' versions stay in `versions` (per node).
   */
  sharedVersions?: AgentVersionsPort;
  /**
   * A cluster node: the agents deployed through the API, shared by the nodes (the cluster's
   * PostgreSQL, src/cluster/pg-agents.ts). Deploys, promotions and rollbacks put an agent live
   * there with its version (`sharedVersions`); removals and the deployed text go through this.
   */
  sharedAgents?: SharedAgentsPort;
  /** A shared version history that could not be read (its in-memory view here stays as it was). */
  onVersionsError?: (e: unknown) => void;
  /** Blue-green rollouts (rollouts.ts); needs `versions`. */
  rollouts?: RolloutStore;
  /**
   * A cluster node: which node runs a rollout of each API agent (src/cluster/pg-rollout-marks.ts).
   * A change of an agent another node runs a rollout of is refused, naming that node.
   */
  rolloutMarks?: RolloutMarksPort;
  /**
   * A cluster node: conversation pins in the cluster's PostgreSQL (src/cluster/pg-pins.ts), so a
   * conversation keeps one version whichever node handles its turns; absent: `rollouts` pins them here.
   */
  sharedPins?: ConversationPinsPort;
  /**
   * Runs a canary candidate's [[rollout.checks]] (the server wires the executor): resolves with
   * what failed, or undefined when every check passed.
   */
  runChecks?: (agent: string, version: number, checks: RolloutCheck[]) => Promise<string | undefined>;
  /** What shadow rollouts compared (the shadow runner's store): read for `rolloutStatus`, written with the other nodes' comparisons. */
  shadowResults?: Pick<ShadowResultStore, 'report' | 'record' | 'skipped'>;
  /** Told of rollout events (the server records them in the event store). */
  onRollout?: (event: RolloutEventType, rollout: Rollout) => void;
  /** A canary step that failed (its promotion or rollback could not be stored); it is tried again at the next check. */
  onCanaryError?: (e: unknown, rollout: Rollout) => void;
  /** How often running canaries are judged without traffic (ms; default 1000). */
  canaryIntervalMs?: number;
}

/** What the service needs of the agents a cluster's nodes share (besides putting one live with its version). */
export interface SharedAgentsPort {
  /** Removes the agent for every node (`a`: this node's copy). Whether a live agent was removed. */
  remove(a: StoredAgent): Promise<boolean>;
  /** The text a live agent was deployed from, on whichever node. */
  source(name: string): Promise<string | undefined>;
}

/** The rollout steps the service reports (the event store's types of the same names). */
export type RolloutEventType = 'rollout.started' | 'rollout.stage_advanced' | 'rollout.promoted' | 'rollout.rolled_back';

/** A deploy-time check of a valid definition against the server's configuration: its warnings. */
/** A check run after the parse; an issue is a warning unless its `severity` says error (the deploy is then refused). */
export type AgentCheck = (def: AgentDefinition) => { severity?: 'error' | 'warning'; code: string; field: string; message: string; suggestion?: string }[];

/** The warning codes of the server-side checks (logged at warn level when a file loads). */
export const DEPLOY_CHECK_CODES: ReadonlySet<string> = new Set(['model_unresolved', 'provider_unresolved', 'tool_unresolved']);

export interface FileStatus {
  path: string;
  state: 'loaded' | 'invalid' | 'ignored';
  agent?: string;
  errors?: SourceIssue[];
  updated_at: string;
}

/** Versions of the shared history a cluster node keeps parsed in memory. */
const SHARED_DETAILS = 64;

/** A change refused because another node of the cluster runs a rollout of the agent (its promotion would undo the change). */
function rolloutElsewhere(m: RolloutMark): CaxtonError {
  const where = m.down
    ? `on node ${m.node}, which is not in the cluster now; start that node again and end the rollout there, or change the agent through any node, which ends it`
    : `on node ${m.node}; end it first (caxton agent promote ${m.agent}, or agent rollback ${m.agent}, through any node: node ${m.node} carries it out)`;
  return new CaxtonError('rollout_in_progress', `agent "${m.agent}" has a ${m.strategy} rollout of version ${m.candidate_version} running ${where}`, {
    name: m.agent,
    node: m.node,
    rollout: { id: m.rollout_id, strategy: m.strategy, candidate_version: m.candidate_version, started_at: m.started_at },
  });
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
 * Deploy, update and remove agents, whichever way they arrive (REST API or agents_dir), keeping
 * the registry and the store consistent: validation happens first, storage second, the
 * registry last — so a failure never leaves a half-deployed agent.
 */
export class AgentService {
  readonly registry: AgentRegistry;
  readonly #store: AgentStore;
  readonly #files = new Map<string, FileStatus>();
  /** File path → agent key it provides. */
  readonly #fileAgents = new Map<string, string>();

  readonly #options: AgentServiceOptions;
  readonly #parser: AgentParser;
  readonly #checks: AgentCheck[];
  readonly versions: AgentVersionStore | undefined;
  readonly rollouts: RolloutStore | undefined;
  /** Which version each definition handed to the executor is, while its agent has a canary (for the canary's figures). */
  readonly #versionOf = new WeakMap<AgentDefinition, number>();
  readonly #canaries: CanaryRunner | undefined;
  /** Canaries whose [[rollout.checks]] are running: their candidate gets no traffic yet. */
  readonly #checking = new Set<number>();
  #runChecks: AgentServiceOptions['runChecks'];
  /** The shared version history (a cluster node), else undefined. */
  readonly #shared: AgentVersionsPort | undefined;
  readonly #sharedAgents: SharedAgentsPort | undefined;
  /** Which node runs a rollout of each API agent (a cluster node), else undefined. */
  readonly #marks: RolloutMarksPort | undefined;
  /** `versions` behind the asynchronous port (what promotions and rollbacks go through). */
  readonly #local: AgentVersionsPort | undefined;
  /**
   * A cluster node's view of the shared history, for what must stay synchronous (choosing the
   * version of a message): each API agent's newest version, and the versions read or written here
   * (a running rollout's two, mostly). Kept by this node's writes, refreshed when another node's
   * change reaches the registry, filled at start (`versionsReady`).
   */
  readonly #sharedLatest = new Map<string, AgentVersion>();
  readonly #sharedDetails = new Map<string, AgentVersionDetail>();
  /** Reads of the shared history under way for that view (one per agent or version at a time, however many messages miss it). */
  readonly #reading = new Set<string>();
  readonly #readAgain = new Set<string>();
  /** Per agent, how many versions this node wrote: a read that started before one of them does not overwrite it. */
  readonly #written = new Map<string, number>();
  /** The rollouts other nodes run (a cluster node, kept by `followRollouts`), by agent key: their candidates answer here as NAME@VERSION. */
  #heldElsewhere = new Map<string, RolloutHeld>();
  /** Where conversations are pinned to a version: the cluster's shared pins, else `rollouts` (this node's SQLite). */
  readonly #pins: ConversationPinsPort | undefined;
  /** Where this node's executions of another node's canary go (a cluster node: RolloutSync sends them to its judge). */
  #figuresOut: ((f: CanaryFigure) => void) | undefined;
  /** Where this node's comparisons for another node's shadow rollout go (RolloutSync). */
  #shadowsOut: ((f: ShadowFigure) => void) | undefined;
  /** Where promotions and rollbacks of other nodes' rollouts go (a cluster node: RolloutSync). */
  #forwarder: RolloutForwarder | undefined;
  /** Rollouts whose promotion or rollback is being written (the canary runner does not start another). */
  readonly #ending = new Set<number>();
  /** Resolves once a cluster node's view of the shared history is filled (loadPersisted starts it). */
  versionsReady: Promise<void> = Promise.resolve();

  constructor(registry: AgentRegistry, store: AgentStore, options: AgentServiceOptions = {}) {
    this.registry = registry;
    this.#store = store;
    this.#options = options;
    this.#checks = [...(options.checks ?? [])];
    this.versions = options.versions;
    this.rollouts = options.rollouts;
    this.#runChecks = options.runChecks;
    this.#shared = options.sharedVersions;
    this.#sharedAgents = options.sharedAgents;
    this.#marks = options.rolloutMarks;
    this.#pins = options.sharedPins ?? options.rollouts;
    for (const r of options.rollouts?.runningAll() ?? []) this.#pins?.remember?.(r.agent);
    this.#local = options.versions?.port();
    // Another node's change of an API agent (applied from the directory): its newest version is re-read.
    if (this.#shared)
      registry.on('change', (e) => {
        if (e.agent.origin.kind !== 'api' || relayedFrom(e.agent) === undefined) return;
        const key = agentKey(e.agent.definition.name);
        if (e.type === 'removed') this.#sharedLatest.delete(key);
        else void this.#refreshLatest(e.agent.definition.name);
      });
    // NAME@VERSION resolves through the versions (the live one, or a running rollout's candidate).
    registry.setRefResolver((name, version, conversation) => (version !== undefined ? this.#resolveVersion(name, version) : this.#resolveInConversation(name, conversation)));
    // Shared pins are read before the executor resolves a name within a conversation (resolution is synchronous).
    const pins = this.#pins;
    // A conversation's first pin is claimed there too (drawn as resolution would draw it), so two nodes taking its first turns agree.
    if (pins?.load) registry.setRefPreparer((name, conversation) => pins.load!(conversation, name, () => this.#draw(name, conversation)));
    const rollouts = this.rollouts;
    this.#canaries =
      rollouts &&
      new CanaryRunner(
        {
          running: () => rollouts.runningAll().filter((r) => r.strategy === 'canary'),
          advance: (r, stage) => {
            const next = rollouts.advance(r, stage);
            this.#options.onRollout?.('rollout.stage_advanced', next);
            // The other nodes of a cluster apply the stage's share too.
            void this.#reshare(next);
            return next;
          },
          promote: (r) => this.#ended(r, () => this.promote(r.agent, 'canary')),
          rollback: (r, reason) => {
            const existing = this.registry.get(r.agent);
            const port = this.#portFor(r.agent);
            if (existing && port) this.#ended(r, () => this.#abort(existing, r, port, rollouts, 'canary', reason));
          },
          onError: (e, r) => this.#options.onCanaryError?.(e, r),
        },
        options.canaryIntervalMs,
      );
    this.#parser = new AgentParser(options.offThreadParseBytes !== undefined ? { offThreadBytes: options.offThreadParseBytes } : {});
  }

  /** Sets how [[rollout.checks]] run (the server wires the executor once it exists). */
  setCheckRunner(run: NonNullable<AgentServiceOptions['runChecks']>): void {
    this.#runChecks = run;
  }

  /** Where bodies were parsed (in-thread or on the worker): for tests and diagnostics. */
  parseStats(): ParseStats {
    return this.#parser.stats();
  }

  /** Ends the parser's worker thread (with the server). */
  close(): Promise<void> {
    this.#canaries?.close();
    return this.#parser.close();
  }

  /** Loads every API-deployed agent persisted in the store. */
  loadPersisted(): number {
    let n = 0;
    const loaded: AgentDefinition[] = [];
    for (const s of this.#store.loadAll()) {
      this.registry.upsert({ definition: s.definition, format: s.format, origin: { kind: 'api' }, revision: s.revision, deployed_at: s.deployed_at, updated_at: s.updated_at });
      loaded.push(s.definition);
      // An agent stored before versions were kept gets its first version now, so rollback has a base.
      const v = this.versions;
      if (!this.#shared && v && v.latest(s.definition.name) === undefined)
        v.append({ definition: s.definition, format: s.format, source: this.#store.source(s.definition.name) ?? '', how: 'api', origin: 'api' });
      n++;
    }
    if (this.#shared) this.versionsReady = this.#fillShared(this.#shared, loaded);
    return n;
  }

  /** A cluster node's start: the newest shared version of each API agent here (for an agent the cluster has none of: this node's earlier history, or a first one), and its rollouts' versions. */
  async #fillShared(shared: AgentVersionsPort, loaded: AgentDefinition[]): Promise<void> {
    for (const def of loaded) {
      try {
        const live = this.registry.get(def.name);
        const latest = live && (await this.#liveVersion(live, shared));
        if (latest) this.#sharedLatest.set(agentKey(def.name), latest);
        else if (live) await this.#joinHistory(live, shared);
        const r = this.rollouts?.running(def.name) ?? this.rollouts?.latest(def.name);
        if (r) for (const v of [r.stable_version, r.candidate_version]) await this.#fetchDetail(def.name, v);
      } catch (e) {
        this.#options.onVersionsError?.(e);
      }
    }
    await this.#reclaim();
  }

  /**
   * An API agent the shared history has no version of, at a cluster node's start: the versions
   * this node kept of it before it joined (its SQLite) become the cluster's, numbers and authors
   * unchanged, unless another node's got there first. The live agent is then the shared version
   * with its content, or (no such version: a node with no history of it, or another content) a
   * new one (so a first start on a cluster records one, as before versions were shared).
   */
  async #joinHistory(live: DeployedAgent, shared: AgentVersionsPort): Promise<void> {
    const name = live.definition.name;
    const source = this.#store.source(name) ?? '';
    const earlier = this.versions?.stored(name) ?? [];
    // Another node's history got there first: this node's agent is the cluster's (the directory brings it), as at any later start.
    const lost = earlier.length > 0 && !(await shared.seed(name, earlier));
    const found = await this.#liveVersion(live, shared);
    if (found && (lost || found.hash === definitionHash(live.definition))) this.#sharedLatest.set(agentKey(name), found);
    else this.#remember(await shared.append({ definition: live.definition, format: live.format, source, how: 'api', origin: 'api' }), live.definition, live.format, source);
  }

  /**
   * A cluster node: refuses a change of `name` while another node runs a rollout of it (that
   * rollout's end would undo the change); the mark of a node that left is superseded instead.
   */
  async #refuseElsewhere(name: string): Promise<void> {
    const there = await this.#marks?.elsewhere(name, true);
    if (there) throw rolloutElsewhere(there);
  }

  /**
   * Marks `r`, just started, as this node's for the cluster. A rollout the cluster cannot know of
   * does not run: if the mark cannot be written (PostgreSQL lost since the version committed) or
   * another node's mark holds the agent (it started one at the same time), `r` ends here, rolled
   * back, and the caller gets the error (503 naming PostgreSQL, or 409 naming the node). Its
   * candidate stays in the history, as any rolled-back candidate does.
   */
  async #claim(r: Rollout, by: string | undefined, share: number | null): Promise<void> {
    const rollouts = this.rollouts!;
    let holder: RolloutMark | undefined;
    try {
      holder = await this.#marks?.claim(r, share);
    } catch (e) {
      this.#options.onRollout?.('rollout.rolled_back', rollouts.end(r, 'rolled_back', by, "the cluster's PostgreSQL could not record which node runs the rollout"));
      throw e;
    }
    if (holder) {
      this.#options.onRollout?.('rollout.rolled_back', rollouts.end(r, 'rolled_back', by, `node ${holder.node} started a rollout of this agent at the same time`));
      throw rolloutElsewhere(holder);
    }
  }

  /** A canary's share of new conversations now: its stage's, none while its checks run (or for other strategies). */
  #shareOf(r: Rollout): number | null {
    return r.strategy === 'canary' && r.plan && !this.#checking.has(r.id) ? (r.plan.stages[r.stage] ?? null) : null;
  }

  /** Tells the cluster `r`'s share now (reported, not thrown, when it cannot: the other nodes keep the share they had). */
  async #reshare(r: Rollout): Promise<void> {
    if (!this.#marks || !this.#isShared(r.agent)) return;
    try {
      await this.#marks.reshare(r, this.#shareOf(r));
    } catch (e) {
      this.#options.onVersionsError?.(e);
    }
  }

  /**
   * Another node's rollout of `name` that acts on this node's unaddressed traffic, while its node
   * is up: a canary with a share (new conversations split here too) or a shadow (live requests
   * copied here too).
   */
  #actingHere(name: string): RolloutHeld | undefined {
    const h = this.#heldElsewhere.get(agentKey(name));
    return h && !h.down && ((h.strategy === 'canary' && h.share !== null) || h.strategy === 'shadow') ? h : undefined;
  }

  /** The cluster's mark of a rollout that ended here goes (reported, not thrown, when it cannot: this node's next start clears it). */
  async #release(r: Rollout): Promise<void> {
    try {
      await this.#marks?.release(r);
    } catch (e) {
      this.#options.onVersionsError?.(e);
    }
  }

  /**
   * A cluster node's start: each rollout running here is marked again (a mark lost with a crash
   * comes back); one whose agent another node changed while this one was down, or that another
   * node's rollout holds now, ends here (rolled back: the cluster's agent is what the directory
   * brings).
   */
  async #reclaim(): Promise<void> {
    const rollouts = this.rollouts;
    if (!this.#marks || !rollouts) return;
    for (const r of rollouts.runningAll()) {
      if (!this.#isShared(r.agent)) continue;
      try {
        const holder = await this.#marks.claim(r, this.#shareOf(r));
        if (!holder) continue;
        const why = holder.superseded_by !== null ? `node ${holder.superseded_by} changed the agent while this node was down` : `node ${holder.node} runs a rollout of this agent`;
        this.#options.onRollout?.('rollout.rolled_back', rollouts.end(r, 'rolled_back', undefined, why));
        await this.#marks.release(r);
      } catch (e) {
        this.#options.onVersionsError?.(e);
      }
    }
  }

  /**
   * A cluster node: the rollouts the other nodes run now (the whole table of marks but this node's,
   * src/cluster/rollout-sync.ts). Each candidate is read into this node's view of the shared
   * history before it counts, so that from then on it answers here as NAME@VERSION, as on its
   * node; a rollout no longer listed stops answering so. Resolves with the counts of what changed;
   * rejects when a candidate cannot be read (the caller tries again later; the others are kept).
   */
  async followRollouts(held: readonly RolloutHeld[]): Promise<{ followed: number; ended: number }> {
    const next = new Map<string, RolloutHeld>();
    let followed = 0;
    let failed: unknown;
    for (const m of held) {
      const key = agentKey(m.agent);
      // Its conversations get pinned from now on, on whichever node: this one reads their pins.
      this.#pins?.remember?.(m.agent);
      const before = this.#heldElsewhere.get(key);
      if (before?.rollout_id === m.rollout_id && before.node === m.node && before.candidate_version === m.candidate_version) {
        // Its candidate is read already; its share (a stage moved, checks passed) or its node's state may be new.
        next.set(key, m);
        if (before.share !== m.share || before.down !== m.down) followed++;
        continue;
      }
      try {
        await this.#fetchDetail(m.agent, m.candidate_version);
        next.set(key, m);
        followed++;
      } catch (e) {
        failed ??= e;
      }
    }
    const ended = [...this.#heldElsewhere.values()].filter((m) => !next.has(agentKey(m.agent)));
    // A rollout's end records a version (a promotion, or a rollback to the stable content, which
    // changes nothing the directory would bring): this node's view of the newest is read again
    // before the candidate stops answering, so its refusal names the version its node names.
    for (const m of ended) if (this.registry.get(m.agent)) await this.#refreshLatest(m.agent);
    this.#heldElsewhere = next;
    if (failed !== undefined) throw failed;
    return { followed, ended: ended.length };
  }

  /** Sends promotions and rollbacks of other nodes' rollouts to those nodes (RolloutSync; undefined: they are refused, naming the node). */
  forwardRolloutsTo(f: RolloutForwarder | undefined): void {
    this.#forwarder = f;
  }

  /** This node's rollout of `name` (running, or its last), for GET /agents/NAME/rollout. */
  rolloutStatus(name: string): RolloutStatus {
    const running = this.rollouts?.running(name);
    const rollout = running ?? this.rollouts?.latest(name) ?? null;
    return {
      running: running !== undefined,
      rollout,
      canary: (running && this.canaryStatus(running)) ?? null,
      shadow: rollout?.strategy === 'shadow' && this.#options.shadowResults ? this.#options.shadowResults.report(rollout.id) : null,
    };
  }

  /** Another node's rollout (its mark) as that node reports it: its stage, figures, report; null when that node is down or did not answer. */
  async rolloutStatusAt(mark: RolloutMark): Promise<RolloutStatus | null> {
    if (!this.#forwarder || mark.down) return null;
    try {
      return await this.#forwarder.status(mark.node, mark.agent);
    } catch {
      return null;
    }
  }

  /** Another node's running rollout of `name` (a cluster node), for GET /agents/NAME/rollout. */
  async rolloutElsewhere(name: string): Promise<RolloutMark | undefined> {
    return this.rollouts?.running(name) ? undefined : this.#marks?.elsewhere(name, false);
  }

  /** The port that holds `name`'s versions: the shared one for API agents on a cluster node, else this node's. */
  history(name: string): AgentVersionsPort | undefined {
    return this.#portFor(name);
  }

  #portFor(name: string): AgentVersionsPort | undefined {
    return this.#isShared(name) ? this.#shared : this.#local;
  }

  #isShared(name: string): boolean {
    return this.#shared !== undefined && this.registry.get(name)?.origin.kind !== 'file';
  }

  /** A version this node wrote to the shared history: its newest, and its detail for the hot path. */
  #remember(v: AgentVersion, definition: AgentDefinition, format: AgentFormat, source: string): AgentVersion {
    const key = agentKey(v.agent);
    this.#sharedLatest.set(key, v);
    this.#written.set(key, (this.#written.get(key) ?? 0) + 1);
    this.#cacheDetail({ ...v, definition, format, source });
    return v;
  }

  #cacheDetail(d: AgentVersionDetail): void {
    const at = `${agentKey(d.agent)}\0${d.version}`;
    if (this.#sharedDetails.size >= SHARED_DETAILS && !this.#sharedDetails.has(at)) this.#sharedDetails.delete(this.#sharedDetails.keys().next().value!);
    this.#sharedDetails.set(at, d);
  }

  async #fetchDetail(name: string, version: number): Promise<void> {
    const d = await this.#shared?.get(name, version);
    if (d) this.#cacheDetail(d);
  }

  async #refreshLatest(name: string): Promise<void> {
    const key = agentKey(name);
    // A read under way may have started before the change that asks for this one: it is read again once done.
    if (this.#reading.has(key)) return void this.#readAgain.add(key);
    this.#reading.add(key);
    const written = this.#written.get(key);
    try {
      // The version whose content the live agent has (another node's rollout may have recorded a newer candidate).
      const live = this.registry.get(name);
      const latest = live?.origin.kind === 'api' ? await this.#liveVersion(live, this.#shared!) : undefined;
      if (latest && this.#written.get(key) === written) this.#sharedLatest.set(key, latest);
    } catch (e) {
      this.#options.onVersionsError?.(e);
    } finally {
      this.#reading.delete(key);
      if (this.#readAgain.delete(key)) void this.#refreshLatest(name);
    }
  }

  /** The newest version, synchronously: this node's store, or a cluster node's view of the shared one (the live agent's version). */
  #latestSync(name: string): AgentVersion | undefined {
    if (!this.#isShared(name)) return this.versions?.latest(name);
    const known = this.#sharedLatest.get(agentKey(name));
    if (!known) void this.#refreshLatest(name);
    return known;
  }

  /** One version, synchronously; on a cluster node one not read here yet is undefined this time (and read for the next). */
  #getSync(name: string, version: number): AgentVersionDetail | undefined {
    if (!this.#isShared(name)) return this.versions?.get(name, version);
    const at = `${agentKey(name)}\0${version}`;
    const known = this.#sharedDetails.get(at);
    if (!known && !this.#reading.has(at)) {
      this.#reading.add(at);
      void this.#fetchDetail(name, version)
        .catch((e: unknown) => this.#options.onVersionsError?.(e))
        .finally(() => this.#reading.delete(at));
    }
    return known;
  }

  /** A promotion or rollback by the canary runner: one at a time per rollout, its failure reported. */
  #ended(r: Rollout, fn: () => Promise<unknown>): void {
    if (this.#ending.has(r.id)) return;
    this.#ending.add(r.id);
    fn()
      // A conflict: a user's promotion or rollback ended it first, which is no failure of this step.
      .catch((e: unknown) => (e instanceof CaxtonError && e.code === 'conflict' ? undefined : this.#options.onCanaryError?.(e, r)))
      .finally(() => this.#ending.delete(r.id));
  }

  /** Parses and checks a definition on this thread (the CLI, tests, small bodies). */
  validate(input: DeployInput): ParseResult {
    const file = input.file ?? '<request body>';
    return this.#checked(parseAgent(input.body, { file, ...(input.format && { format: input.format }) }), file);
  }

  /**
   * As `validate`, with a large body parsed on the parser's worker thread so the event loop stays
   * free (the API's deploy, validate and update use this).
   */
  async validateAsync(input: DeployInput): Promise<ParseResult> {
    const file = input.file ?? '<request body>';
    return this.#checked(await this.#parser.parse(input.body, { file, ...(input.format && { format: input.format }) }), file);
  }

  /** `deploy` with the body parsed by `validateAsync`; every check after the parse runs at once, as in `deploy`. */
  async deployAsync(input: DeployInput, mode: 'create' | 'update', expectName?: string): Promise<DeployOutcome> {
    const result = await this.validateAsync(input);
    const out = this.#shared ? await this.#deployShared(input, mode, expectName, result) : this.deploy(input, mode, expectName, result);
    const checks = result.ok ? (result.definition.rollout?.checks ?? []) : [];
    const run = this.#runChecks;
    // [[rollout.checks]] run before a canary's first stage: the candidate gets no traffic until they pass.
    if (out.rollout?.strategy !== 'canary' || checks.length === 0 || !run) return out;
    const rollout = out.rollout;
    this.#checking.add(rollout.id);
    let failure: string | undefined;
    try {
      failure = await run(rollout.agent, rollout.candidate_version, checks);
    } catch (e) {
      failure = `the checks could not run: ${describeError(e)}`;
    } finally {
      this.#checking.delete(rollout.id);
    }
    if (failure === undefined) {
      // Its share of new conversations starts now on the other nodes of a cluster too.
      const now = this.rollouts?.running(rollout.agent);
      if (now?.id === rollout.id) await this.#reshare(now);
      return out;
    }
    const existing = this.registry.get(rollout.agent);
    const still = this.rollouts?.running(rollout.agent);
    const port = this.#portFor(rollout.agent);
    if (!existing || !port || !this.rollouts || still?.id !== rollout.id) return out;
    const ended = await this.#abort(existing, still, port, this.rollouts, 'canary', `a check failed before the first stage: ${failure}`);
    return { ...out, rollout: ended.rollout };
  }

  /** Adds the deploy-time warnings the parser cannot know (they need the server's configuration). */
  #checked(result: ParseResult, file: string): ParseResult {
    if (!result.ok) return result;
    const def = result.definition;
    const added: SourceIssue[] = [];
    const message = this.#options.checkModel?.(def.llm);
    if (message !== undefined) {
      const field = result.format === 'markdown' && def.metadata.claude_model !== undefined ? 'model' : 'llm.model';
      const suggestion = `e.g. in caxton.toml:\n[llm.model_aliases]\n${def.llm.model ?? 'sonnet'} = "gpt-4o"`;
      added.push({ severity: 'warning', code: 'model_unresolved', file, field, message, suggestion });
    }
    for (const check of this.#checks) for (const w of check(def)) added.push({ ...w, severity: w.severity ?? 'warning', file });
    const errors = added.filter((i) => i.severity === 'error');
    const warnings = [...result.warnings, ...added.filter((i) => i.severity !== 'error')];
    if (errors.length > 0) return { ok: false, format: result.format, errors, warnings };
    return added.length === 0 ? result : { ...result, warnings };
  }

  /** Adds a deploy-time check (the tool check, once tool servers and MCP servers are up). */
  addCheck(check: AgentCheck): void {
    this.#checks.push(check);
  }

  /** The server-side checks' issues for a deployed agent (the start-up log, once every check is in; `agent show`). */
  checkDeployed(def: AgentDefinition): ReturnType<AgentCheck> {
    return this.#checks.flatMap((c) => c(def));
  }

  /**
   * Runs the checks added since the agents_dir files were loaded (the tool check needs the tool
   * servers, which start after the agents): a file agent they find errors in is unloaded and its
   * file marked invalid with those errors, as if the check had run when it loaded.
   */
  recheckFiles(): FileStatus[] {
    const out: FileStatus[] = [];
    for (const [path, key] of [...this.#fileAgents]) {
      const agent = this.registry.get(key);
      if (!agent) continue;
      const errors = this.checkDeployed(agent.definition).filter((i) => i.severity === 'error');
      if (errors.length === 0) continue;
      // Unloaded, not removed: the file is still there, so its history stays with the live agents'.
      this.removeFile(path, { keepStatus: true });
      const status: FileStatus = {
        path,
        state: 'invalid',
        agent: agent.definition.name,
        errors: errors.map((e) => ({ ...e, severity: 'error' as const, file: path })),
        updated_at: new Date().toISOString(),
      };
      this.#files.set(path, status);
      out.push(status);
    }
    return out;
  }

  /** Deploys a new agent (mode `create`) or replaces an API-deployed one (mode `update`). */
  deploy(input: DeployInput, mode: 'create' | 'update', expectName?: string, validated?: ParseResult): DeployOutcome {
    if (this.#shared) throw new Error('a cluster node records API versions in the shared history: deploy through deployAsync');
    const { result, def, existing } = this.#admit(input, mode, expectName, validated ?? this.validate(input));
    const versions = this.versions;
    const current = existing && versions?.latest(def.name);
    // Identical content (the same definition, whatever the formatting): nothing to store or reload.
    if (existing && current && current.hash === definitionHash(def)) return { agent: existing, warnings: result.warnings, created: false, unchanged: true, version: current };
    const source = typeof input.body === 'string' ? input.body : Buffer.from(input.body).toString('utf8');
    // The deploy's strategy, else the file's [rollout] one (not for a first deploy: there is nothing to roll out beside).
    const strategy = input.strategy ?? (existing ? def.rollout?.strategy : undefined) ?? 'direct';
    if (strategy !== 'direct') {
      const plan = strategy === 'canary' ? canaryPlan({ ...planOf(def.rollout), ...input.canary }) : undefined;
      return this.#startRollout(strategy, plan, existing, def, result.format, source, current, result.warnings, input.deployed_by);
    }
    const agent = this.#apiAgent(def, result.format, existing);
    let version: AgentVersion | undefined;
    const save = () => {
      this.#store.save({ ...agent, source });
      version = versions?.append({ definition: def, format: result.format, source, how: 'api', origin: 'api', deployed_by: input.deployed_by });
    };
    if (versions) versions.transaction(save);
    else save();
    this.registry.upsert(agent);
    return { agent, warnings: result.warnings, created: !existing, version };
  }

  /** `deploy` on a cluster node: the version is numbered in the shared history, the agent saved here before it commits. */
  async #deployShared(input: DeployInput, mode: 'create' | 'update', expectName: string | undefined, validated: ParseResult): Promise<DeployOutcome> {
    const shared = this.#shared!;
    const { result, def, existing } = this.#admit(input, mode, expectName, validated);
    const current = existing && (await this.#liveVersion(existing, shared));
    if (existing && current && current.hash === definitionHash(def)) return { agent: existing, warnings: result.warnings, created: false, unchanged: true, version: current };
    if (existing) await this.#refuseElsewhere(def.name);
    const source = typeof input.body === 'string' ? input.body : Buffer.from(input.body).toString('utf8');
    const strategy = input.strategy ?? (existing ? def.rollout?.strategy : undefined) ?? 'direct';
    if (strategy !== 'direct') {
      const plan = strategy === 'canary' ? canaryPlan({ ...planOf(def.rollout), ...input.canary }) : undefined;
      const rollouts = this.rollouts;
      if (!rollouts) throw new CaxtonError('invalid_request', `this server keeps no rollouts, so it cannot run a ${strategy} rollout`);
      if (!existing || !current)
        throw new CaxtonError('agent_not_found', `a ${strategy} deploy needs a live version of agent "${def.name}" to run beside; deploy it directly first (no --strategy)`, { name: def.name });
      // The stable version's detail, kept for the hot path (a conversation pinned to it).
      const stable = await shared.get(def.name, current.version);
      if (stable) this.#cacheDetail(stable);
      let rollout: Rollout | undefined;
      const version = await shared.append({ definition: def, format: result.format, source, how: 'api', origin: 'api', deployed_by: input.deployed_by }, (written) => {
        rollout = rollouts.start(existing.definition.name, strategy, current.version, written.version, input.deployed_by, plan);
      });
      this.#pins?.remember?.(existing.definition.name);
      this.#remember(version, def, result.format, source);
      if (!rollout) throw new Error('the rollout was not started');
      this.#options.onRollout?.('rollout.started', rollout);
      // A canary whose [[rollout.checks]] are about to run (deployAsync) gets no traffic anywhere until they pass.
      const checksFirst = plan !== undefined && (def.rollout?.checks?.length ?? 0) > 0 && this.#runChecks !== undefined;
      await this.#claim(rollout, input.deployed_by, checksFirst ? null : this.#shareOf(rollout));
      return { agent: existing, warnings: result.warnings, created: false, version, rollout };
    }
    const agent = this.#apiAgent(def, result.format, existing);
    const version = this.#remember(
      await shared.append({ definition: def, format: result.format, source, how: 'api', origin: 'api', deployed_by: input.deployed_by }, () => this.#store.save({ ...agent, source }), {
        ...agent,
        source,
      }),
      def,
      result.format,
      source,
    );
    this.registry.upsert(agent);
    return { agent, warnings: result.warnings, created: !existing, version };
  }

  /**
   * The shared version the live agent is: the newest whose content it has (another node's rollout
   * may have recorded a candidate after it), else the newest.
   */
  async #liveVersion(live: DeployedAgent, port: AgentVersionsPort): Promise<AgentVersion | undefined> {
    const latest = await port.latest(live.definition.name);
    const hash = definitionHash(live.definition);
    if (!latest || latest.hash === hash) return latest;
    const page = await port.list(live.definition.name, { limit: 100 });
    return page.items.find((v) => v.hash === hash) ?? latest;
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
    this.#authorize(input.actor, def.name, def.capabilities);
    if (expectName !== undefined && agentKey(expectName) !== agentKey(def.name)) {
      throw new CaxtonError('invalid_request', `the body defines agent "${def.name}" but the URL names "${expectName}"`, { field: 'name' });
    }
    const existing = this.registry.get(def.name);
    if (existing?.origin.kind === 'file') {
      throw new CaxtonError('agent_managed_by_file', `agent "${existing.definition.name}" is defined by the file ${existing.origin.path}; edit or delete that file instead`, {
        path: existing.origin.path,
      });
    }
    if (mode === 'create' && existing) {
      throw new CaxtonError('agent_exists', `an agent named "${existing.definition.name}" is already deployed (names are unique regardless of case)`, {
        name: existing.definition.name,
        hint: 'use PUT /api/v1/agents/{name} to update it',
      });
    }
    if (mode === 'update' && !existing) {
      throw new CaxtonError('agent_not_found', `no agent named "${def.name}" is deployed`, { name: def.name });
    }
    if (existing && existing.definition.name !== def.name) {
      // Names are unique regardless of case: "Foo" would silently replace and rename "foo".
      throw new CaxtonError(
        'invalid_request',
        `the body names the agent "${def.name}" but the deployed agent is spelt "${existing.definition.name}"; names are unique regardless of case, so this would rename it`,
        { field: 'name', name: def.name, deployed: existing.definition.name, hint: `use name "${existing.definition.name}", or DELETE the agent and deploy it again under the new spelling` },
      );
    }
    const running = existing && this.rollouts?.running(def.name);
    if (running)
      throw new CaxtonError(
        'rollout_in_progress',
        `agent "${existing.definition.name}" has a ${running.strategy} rollout of version ${running.candidate_version} running; end it first: caxton agent promote ${existing.definition.name}, or caxton agent rollback ${existing.definition.name}`,
        { name: existing.definition.name, rollout: running },
      );
    return { result, def, existing };
  }

  /**
   * Asks the actor whether it may make `name` an agent declaring `capabilities` (a removal: none),
   * before anything is answered about the agent (an out-of-scope name is refused, never told apart
   * as existing or not). Providers are this registry's agents other than the agent itself.
   */
  #authorize(actor: DeployActor | undefined, name: string, capabilities?: readonly string[]): void {
    if (!actor) return;
    const self = agentKey(name);
    // An agent declaring no capability provides one made from its name (parse.ts): the name's
    // scope covers it, so only whether another agent already provides it is asked.
    const derived = capabilities?.length === 1 && capabilities[0] === defaultCapability(name) ? capabilities[0] : undefined;
    actor.authorize({ name, ...(capabilities && { capabilities }), ...(derived !== undefined && { derivedCapability: derived }) }, (capability) =>
      this.registry
        .providersOf(capability)
        .map((a) => a.definition.name as string)
        .filter((n) => agentKey(n) !== self),
    );
  }

  #apiAgent(def: AgentDefinition, format: AgentFormat, existing: DeployedAgent | undefined): DeployedAgent {
    const now = new Date().toISOString();
    return { definition: def, format, origin: { kind: 'api' }, revision: (existing?.revision ?? 0) + 1, deployed_at: existing?.deployed_at ?? now, updated_at: now };
  }

  /** Blue-green or canary: the new version is recorded, the live one keeps serving; NAME@VERSION reaches the new one. */
  #startRollout(
    strategy: RolloutStrategy,
    plan: CanaryPlan | undefined,
    existing: DeployedAgent | undefined,
    def: AgentDefinition,
    format: AgentFormat,
    source: string,
    current: AgentVersion | undefined,
    warnings: SourceIssue[],
    by: string | undefined,
  ): DeployOutcome {
    const versions = this.versions;
    const rollouts = this.rollouts;
    if (!versions || !rollouts) throw new CaxtonError('invalid_request', `this server keeps no agent versions, so it cannot run a ${strategy} rollout`);
    if (!existing || !current)
      throw new CaxtonError('agent_not_found', `a ${strategy} deploy needs a live version of agent "${def.name}" to run beside; deploy it directly first (no --strategy)`, { name: def.name });
    const { version, rollout } = versions.transaction(() => {
      const version = versions.append({ definition: def, format, source, how: 'api', origin: 'api', deployed_by: by });
      return { version, rollout: rollouts.start(existing.definition.name, strategy, current.version, version.version, by, plan) };
    });
    this.#options.onRollout?.('rollout.started', rollout);
    return { agent: existing, warnings, created: false, version, rollout };
  }

  /** The version that unaddressed requests get: a running rollout's stable one, else the newest. */
  currentVersion(name: string): number | undefined {
    return this.rollouts?.running(name)?.stable_version ?? this.#latestSync(name)?.version;
  }

  /**
   * `currentVersion` as the API reports it: on a cluster node read from the shared history (the
   * version whose content the live agent has), not from this node's view of it.
   */
  async liveVersion(name: string): Promise<number | undefined> {
    const running = this.rollouts?.running(name);
    if (running) return running.stable_version;
    const live = this.registry.get(name);
    if (!live || !this.#isShared(name)) return this.currentVersion(name);
    return (await this.#liveVersion(live, this.#shared!))?.version;
  }

  /** NAME@VERSION: the live version, or the candidate of a running rollout; nothing else is addressable. */
  #resolveVersion(name: string, version: number): DeployedAgent | undefined {
    const live = this.registry.get(name);
    if (!live || !(this.versions || this.#shared)) return undefined;
    const agentName = live.definition.name;
    // The candidate of this node's rollout, or of one another node of the cluster runs.
    const running = this.rollouts?.running(agentName) ?? (live.origin.kind === 'api' ? this.#heldElsewhere.get(agentKey(agentName)) : undefined);
    const current = this.currentVersion(agentName);
    if (version === current) return live;
    if (running && version === running.candidate_version) {
      const v = this.#getSync(agentName, version);
      if (v) return asDeployed(live, v);
    }
    throw new CaxtonError(
      'version_not_found',
      `version ${version} of agent "${agentName}" is not live: address the current version (${current ?? 'none'})${running ? ` or the rollout's candidate (${running.candidate_version})` : ''}, or deploy it again`,
      { name: agentName, version },
    );
  }

  /**
   * A name within a conversation, for an agent that has had a rollout: the version the
   * conversation was pinned to when it first reached the agent (the live one then), even after a
   * promotion or a rollback; a pinned version no longer kept falls back to the live one.
   */
  #resolveInConversation(name: string, conversation: string | undefined): DeployedAgent | undefined {
    const live = this.registry.get(name);
    const placed = live && this.#placement(live, conversation);
    if (!live || !placed) return live;
    const { agentName, current, canary, choose, pins } = placed;
    const chosen = conversation !== undefined ? pins.pin(conversation, agentName, choose) : typeof choose === 'number' ? choose : choose();
    if (chosen === current) {
      if (canary) this.#versionOf.set(live.definition, current);
      return live;
    }
    const v = this.#getSync(agentName, chosen);
    if (!v) return live;
    if (canary) this.#versionOf.set(v.definition, chosen);
    return asDeployed(live, v);
  }

  /**
   * How a conversation of `live`'s agent without a pin is placed: the live version, or a canary's
   * share drawn by the conversation's id (`choose`); undefined when its conversations are not
   * pinned (an agent that never had a rollout, or another node's shadow, whose live requests stay
   * on the live version and are copied to its candidate).
   */
  #placement(
    live: DeployedAgent,
    conversation: string | undefined,
  ): { agentName: string; current: number; canary: { id: number; candidate: number; share: number } | undefined; choose: number | (() => number); pins: ConversationPinsPort } | undefined {
    const rollouts = this.rollouts;
    // Pins are kept wherever rollouts are: the cluster's shared ones, or `rollouts` itself.
    const pins = this.#pins;
    if (!rollouts || !pins || !(this.versions || this.#shared) || live.origin.kind !== 'api') return undefined;
    const agentName = live.definition.name;
    const running = rollouts.running(agentName);
    // Another node's canary (a cluster node): its share of new conversations is drawn here too;
    // another node's shadow: the live requests here are copied to its candidate too.
    const there = running ? undefined : this.#actingHere(agentName);
    const held = there?.strategy === 'canary' ? there : undefined;
    const shadowThere = there?.strategy === 'shadow' ? there : undefined;
    if (!running && !held && !shadowThere && !pins.hasHistory(agentName)) return undefined;
    const current = this.currentVersion(agentName);
    if (current === undefined) return undefined;
    if (shadowThere) {
      this.#versionOf.set(live.definition, current);
      return undefined;
    }
    const ownShare = running ? this.#shareOf(running) : null;
    const canary =
      running && ownShare !== null
        ? { id: running.id, candidate: running.candidate_version, share: ownShare }
        : held
          ? { id: held.rollout_id, candidate: held.candidate_version, share: held.share! }
          : undefined;
    // Shadow: every live request stays on the stable version; the server copies it to the candidate.
    if (running?.strategy === 'shadow' && current === running.stable_version) this.#versionOf.set(live.definition, current);
    // A canary's share of new conversations, each placed by its id as on every node (canaryBucket); one without a conversation is drawn on its own.
    const choose = canary ? () => ((conversation !== undefined ? canaryBucket(canary.id, conversation) : Math.random() * 100) < canary.share ? canary.candidate : current) : current;
    return { agentName, current, canary, choose, pins };
  }

  /** The version a new conversation of the agent would be pinned to now (undefined: not pinned); shared pins claim it before the execution. */
  #draw(name: string, conversation: string): number | undefined {
    const live = this.registry.get(name);
    const placed = live && this.#placement(live, conversation);
    if (!placed) return undefined;
    return typeof placed.choose === 'number' ? placed.choose : placed.choose();
  }

  /**
   * One finished execution of `definition` (the executor's record): counted for the canary of its
   * agent when it was one of the canary's two versions.
   */
  observe(definition: AgentDefinition, ok: boolean, durationMs: number): void {
    const version = this.#versionOf.get(definition);
    if (version === undefined || !this.#canaries) return;
    const running = this.rollouts?.running(definition.name);
    if (running) return this.#canaries.observe(running, version, ok, durationMs);
    // Another node's canary: its judge counts this execution (RolloutSync carries it there).
    const held = this.#actingHere(definition.name);
    if (held?.strategy === 'canary' && this.#figuresOut) this.#figuresOut({ node: held.node, agent: held.agent, rollout_id: held.rollout_id, share: held.share!, version, ok, ms: durationMs });
  }

  /** Where this node's executions of other nodes' canaries go (RolloutSync; undefined: nowhere). */
  sendFigures(to: ((f: CanaryFigure) => void) | undefined): void {
    this.#figuresOut = to;
  }

  /** An execution of this node's canary on another node: counted in the stage it ran under (a figure of a stage already left is dropped). */
  observeElsewhere(f: CanaryFigure): void {
    const running = this.rollouts?.running(f.agent);
    if (running?.id !== f.rollout_id || this.#shareOf(running) !== f.share) return;
    this.#canaries?.observe(running, f.version, f.ok, f.ms);
  }

  /**
   * Which version of a rollout `definition` is, while its agent has a canary or shadow rollout
   * (for metrics labelled with the version); undefined otherwise.
   */
  rolloutVersionOf(definition: AgentDefinition): { version: number; role: 'stable' | 'candidate' } | undefined {
    const version = this.#versionOf.get(definition);
    const running = version === undefined ? undefined : this.rollouts?.running(definition.name);
    if (!running || version === undefined) return undefined;
    return version === running.candidate_version ? { version, role: 'candidate' } : version === running.stable_version ? { version, role: 'stable' } : undefined;
  }

  /**
   * The running shadow rollout whose stable version `definition` is (a live execution to copy to
   * its candidate), if any.
   */
  shadowOf(definition: AgentDefinition): ShadowTarget | undefined {
    const running = this.rollouts?.running(definition.name);
    const version = this.#versionOf.get(definition);
    if (running) return running.strategy === 'shadow' && version === running.stable_version ? running : undefined;
    // Another node's: its comparisons go there (recordShadow).
    const there = this.#actingHere(definition.name);
    return there?.strategy === 'shadow' && this.#shadowsOut && version !== undefined && version === this.currentVersion(definition.name)
      ? { id: there.rollout_id, agent: there.agent, candidate_version: there.candidate_version, node: there.node }
      : undefined;
  }

  /** A shadow copy's comparison (`result`) or a copy skipped (none): kept here for this node's rollout, sent to its node for another's. */
  recordShadow(target: ShadowTarget, result?: ShadowResult): void {
    if (target.node !== undefined) return this.#shadowsOut?.({ node: target.node, agent: target.agent, rollout_id: target.id, ...(result && { result }) });
    if (result) this.#options.shadowResults?.record(result);
    else this.#options.shadowResults?.skipped(target.id);
  }

  /** Where this node's comparisons for other nodes' shadow rollouts go (RolloutSync; undefined: nowhere, and none are made). */
  sendShadows(to: ((f: ShadowFigure) => void) | undefined): void {
    this.#shadowsOut = to;
  }

  /** A comparison made on another node for this node's shadow rollout: kept with this node's (one of a rollout already ended is dropped). */
  observeShadowElsewhere(f: ShadowFigure): void {
    const running = this.rollouts?.running(f.agent);
    if (running?.id !== f.rollout_id || running.strategy !== 'shadow') return;
    this.recordShadow(running, f.result && { ...f.result, rollout_id: running.id });
  }

  /** A running canary's stage, weights and figures (undefined for other rollouts). */
  canaryStatus(rollout: Rollout): CanaryStatus | undefined {
    return rollout.state === 'running' ? this.#canaries?.status(rollout) : undefined;
  }

  #runningRollout(name: string): { existing: DeployedAgent; rollout: Rollout; versions: AgentVersionsPort; rollouts: RolloutStore } {
    const existing = this.registry.get(name);
    if (!existing) throw new CaxtonError('agent_not_found', `no agent named "${name}" is deployed`, { name });
    const rollout = this.rollouts?.running(existing.definition.name);
    const versions = this.#portFor(existing.definition.name);
    if (!rollout || !versions || !this.rollouts)
      throw new CaxtonError('no_rollout', `agent "${existing.definition.name}" has no rollout running; deploy with --strategy blue-green, canary or shadow to start one`, {
        name: existing.definition.name,
      });
    return { existing, rollout, versions, rollouts: this.rollouts };
  }

  /** Makes a running rollout's candidate the live version (a new version, `how: promotion`). */
  async promote(name: string, by?: string, opts: RolloutActionOptions = {}): Promise<RolloutOutcome> {
    this.#authorize(opts.actor, name);
    if (!this.rollouts?.running(name)) {
      // Another node's rollout (a cluster node): that node promotes it, when it is in the cluster.
      const there = await this.#marks?.elsewhere(name, false);
      if (there && this.#forwarder && !there.down && !opts.forwarded) {
        // The node carrying it out is not told who asks: the candidate is checked here.
        if (opts.actor) {
          const candidate = await this.#portFor(there.agent)?.get(there.agent, there.candidate_version);
          if (candidate) this.#authorize(opts.actor, there.agent, candidate.definition.capabilities);
        }
        return this.#forwarder.promote(there.node, name, by);
      }
      if (there) throw rolloutElsewhere(there);
    }
    const { existing, rollout, versions, rollouts } = this.#runningRollout(name);
    const candidate = await this.#detail(versions, rollout.agent, rollout.candidate_version);
    if (!candidate) throw new CaxtonError('version_not_found', `version ${rollout.candidate_version} of agent "${rollout.agent}" is no longer kept; roll the rollout back`, { name: rollout.agent });
    this.#authorize(opts.actor, rollout.agent, candidate.definition.capabilities);
    const agent = this.#apiAgent(candidate.definition, candidate.format, existing);
    let ended: Rollout | undefined;
    const version = await versions.append(
      {
        definition: candidate.definition,
        format: candidate.format,
        source: candidate.source,
        how: 'promotion',
        origin: 'api',
        deployed_by: by,
        restored_from: candidate.version,
      },
      () => {
        // Ended first: when its judge or a user ended it meanwhile, this throws before anything is saved.
        ended = rollouts.endRunning(rollout, 'promoted', by, null);
        this.#store.save({ ...agent, source: candidate.source });
      },
      { ...agent, source: candidate.source },
    );
    if (this.#shared) this.#remember(version, candidate.definition, candidate.format, candidate.source);
    this.registry.upsert(agent);
    await this.#release(ended!);
    this.#options.onRollout?.('rollout.promoted', ended!);
    return { agent, rollout: ended!, version };
  }

  /** One version through the port, parsed (a cluster node keeps it for the hot path). */
  async #detail(port: AgentVersionsPort, name: string, version: number): Promise<AgentVersionDetail | undefined> {
    const d = await port.get(name, version);
    if (d && port === this.#shared) this.#cacheDetail(d);
    return d;
  }

  /** Ends a running rollout: the live version stays (recorded again as a version, `how: rollback`). */
  async #abort(existing: DeployedAgent, rollout: Rollout, versions: AgentVersionsPort, rollouts: RolloutStore, by: string | undefined, reason: string): Promise<RollbackOutcome> {
    const stable = (await this.#detail(versions, rollout.agent, rollout.stable_version)) ?? (await this.#detail(versions, rollout.agent, (await versions.latest(rollout.agent))!.version))!;
    let ended: Rollout | undefined;
    const version = await versions.append(
      {
        definition: existing.definition,
        format: existing.format,
        source: stable.source,
        how: 'rollback',
        origin: 'api',
        deployed_by: by,
        restored_from: rollout.stable_version,
      },
      () => {
        ended = rollouts.endRunning(rollout, 'rolled_back', by, reason);
      },
    );
    if (this.#shared) this.#remember(version, existing.definition, existing.format, stable.source);
    await this.#release(ended!);
    this.#options.onRollout?.('rollout.rolled_back', ended!);
    const { definition: _d, source: _s, ...summary } = stable;
    return { agent: existing, version, restored: summary, warnings: [], rollout: ended! };
  }

  /**
   * Deploys an earlier version again, as a new version (`how: rollback`): `to`, or else the newest
   * version whose content differs from the current one. API agents only: a file agent's file is its
   * source of truth.
   */
  async rollback(name: string, to?: number, deployedBy?: string, opts: RolloutActionOptions = {}): Promise<RollbackOutcome> {
    this.#authorize(opts.actor, name);
    const existing = this.registry.get(name);
    if (!existing) throw new CaxtonError('agent_not_found', `no agent named "${name}" is deployed`, { name });
    const agentName = existing.definition.name;
    if (existing.origin.kind === 'file') {
      throw new CaxtonError(
        'agent_managed_by_file',
        `agent "${agentName}" is defined by the file ${existing.origin.path}; roll it back by restoring the file (caxton agent history ${agentName} lists its versions, GET /api/v1/agents/${agentName}/versions/N has each one's source)`,
        { path: existing.origin.path },
      );
    }
    const versions = this.#portFor(agentName);
    if (!versions) throw new CaxtonError('invalid_request', 'this server keeps no agent versions');
    const running = this.rollouts?.running(agentName);
    if (running) {
      if (to !== undefined && to !== running.stable_version)
        throw new CaxtonError(
          'rollout_in_progress',
          `agent "${agentName}" has a ${running.strategy} rollout running: a rollback ends it and keeps version ${running.stable_version}; run it without --to, then roll back further`,
          { name: agentName, rollout: running },
        );
      return this.#abort(existing, running, versions, this.rollouts!, deployedBy, `rolled back${deployedBy ? ` by ${deployedBy}` : ''}`);
    }
    // Another node's rollout (a cluster node; one whose node left is superseded): that node ends it.
    const there = await this.#marks?.elsewhere(agentName, true);
    if (there && this.#forwarder && !opts.forwarded) return this.#forwarder.rollback(there.node, agentName, to, deployedBy);
    if (there) throw rolloutElsewhere(there);
    const current = versions === this.#shared ? await this.#liveVersion(existing, versions) : await versions.latest(agentName);
    let target = to !== undefined ? await versions.get(agentName, to) : undefined;
    if (to !== undefined && !target) {
      const { items, total } = await versions.list(agentName, { limit: 1 });
      throw new CaxtonError('version_not_found', `agent "${agentName}" has no version ${to}${total > 0 ? ` (versions kept: ${total}, the newest is ${items[0]!.version})` : ''}`, {
        name: agentName,
        version: to,
        hint: `caxton agent history ${agentName} lists them`,
      });
    }
    if (to === undefined) {
      for (let offset = 0; !target; offset += 100) {
        const page = await versions.list(agentName, { limit: 100, offset });
        const found = page.items.find((v) => v.hash !== current?.hash);
        if (found) target = await versions.get(agentName, found.version);
        if (page.items.length < 100) break;
      }
      if (!target)
        throw new CaxtonError('no_earlier_version', `agent "${agentName}" has no earlier version to roll back to: every version kept has the content deployed now`, {
          name: agentName,
          hint: `deploy a new version, or see caxton agent history ${agentName}`,
        });
    }
    const restored = target!;
    if (current && restored.hash === current.hash)
      throw new CaxtonError('conflict', `version ${restored.version} of agent "${agentName}" has the content deployed now (version ${current.version}); nothing to roll back`, {
        name: agentName,
        version: restored.version,
      });
    this.#authorize(opts.actor, agentName, restored.definition.capabilities);
    const agent = this.#apiAgent(restored.definition, restored.format, existing);
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
      () => this.#store.save({ ...agent, source: restored.source }),
      { ...agent, source: restored.source },
    );
    if (versions === this.#shared) this.#remember(version, restored.definition, restored.format, restored.source);
    this.registry.upsert(agent);
    const { definition: _d, source: _s, ...summary } = restored;
    return { agent, version, restored: summary, warnings: this.checkDeployed(restored.definition) };
  }

  remove(name: string): DeployedAgent {
    if (this.#sharedAgents && this.registry.get(name)?.origin.kind === 'api') throw new Error('a cluster node removes API agents for every node: remove through removeAsync');
    return this.#removeHere(name);
  }

  /** `remove`, on a cluster node first for every node (the shared row becomes a tombstone), then here. */
  async removeAsync(name: string, actor?: DeployActor): Promise<DeployedAgent> {
    this.#authorize(actor, name);
    const existing = this.registry.get(name);
    const shared = this.#sharedAgents;
    const running = existing && this.rollouts?.running(existing.definition.name);
    if (shared && existing?.origin.kind === 'api') {
      if (!running) await this.#refuseElsewhere(existing.definition.name);
      await shared.remove({ ...existing, source: this.#store.source(name) ?? '' });
      await this.#shared?.removed(existing.definition.name);
    }
    const removed = this.#removeHere(name);
    if (running) await this.#release(running);
    return removed;
  }

  #removeHere(name: string): DeployedAgent {
    const existing = this.registry.get(name);
    if (!existing) throw new CaxtonError('agent_not_found', `no agent named "${name}" is deployed`, { name });
    if (existing.origin.kind === 'file') {
      throw new CaxtonError('agent_managed_by_file', `agent "${existing.definition.name}" is defined by the file ${existing.origin.path}; delete that file to remove it`, {
        path: existing.origin.path,
      });
    }
    const running = this.rollouts?.running(existing.definition.name);
    this.#store.delete(name);
    if (running) this.#options.onRollout?.('rollout.rolled_back', this.rollouts!.end(running, 'rolled_back', undefined, 'the agent was removed'));
    // Its history joins the removed agents', of which [agents] keep_removed_agents are kept (a
    // cluster's shared history is told by removeAsync, which removes for every node).
    if (!this.#isShared(existing.definition.name)) this.versions?.removed(existing.definition.name);
    this.registry.remove(name);
    return existing;
  }

  /** The original text an agent was deployed from (API agents only; this node's copy). */
  source(name: string): string | undefined {
    return this.#store.source(name);
  }

  /** `source`, on a cluster node from the shared agents (an agent deployed on another node has no copy here). */
  async sourceAsync(name: string): Promise<string | undefined> {
    const shared = this.#sharedAgents;
    if (!shared || this.registry.get(name)?.origin.kind !== 'api') return this.#store.source(name);
    return (await shared.source(name)) ?? this.#store.source(name);
  }

  // -------------------------------------------------------------------------------------------
  // agents_dir

  /** Applies a new or changed file. An invalid file keeps the last good version running. */
  applyFile(path: string, bytes: Uint8Array): FileStatus {
    let result: ParseResult;
    try {
      result = parseAgent(bytes, { file: path });
    } catch (e) {
      return this.#unparsable(path, e);
    }
    return this.#applyParsed(path, result, bytes);
  }

  /**
   * As `applyFile`, with a large file parsed on the worker thread (the watcher's changes after
   * the start). `stillCurrent` is asked after the parse: when the file changed or went away
   * meanwhile, this result is dropped (undefined) and the newer event applies.
   */
  async applyFileAsync(path: string, bytes: Uint8Array, stillCurrent: () => boolean = () => true): Promise<FileStatus | undefined> {
    let result: ParseResult;
    try {
      result = await this.#parser.parse(bytes, { file: path });
    } catch (e) {
      return stillCurrent() ? this.#unparsable(path, e) : undefined;
    }
    return stillCurrent() ? this.#applyParsed(path, result, bytes) : undefined;
  }

  #unparsable(path: string, e: unknown): FileStatus {
    // The parser bounds what it reads, but one file must never take the watcher (or the start) down.
    return this.markInvalid(path, {
      severity: 'error',
      code: 'unreadable',
      file: path,
      message: `the file could not be parsed: ${e instanceof Error ? e.message : String(e)}`,
      suggestion: 'fix or remove the file',
    });
  }

  #applyParsed(path: string, parsed: ParseResult, bytes: Uint8Array): FileStatus {
    const now = new Date().toISOString();
    const result = this.#checked(parsed, path);
    if (!result.ok) {
      if (result.format === 'markdown' && result.errors.every((e) => e.code === 'missing_frontmatter')) {
        // A README or notes file among the agents: not an agent, not an error.
        const status: FileStatus = { path, state: 'ignored', updated_at: now };
        this.#files.set(path, status);
        this.removeFile(path, { keepStatus: true });
        return status;
      }
      const status: FileStatus = {
        path,
        state: 'invalid',
        errors: result.errors,
        updated_at: now,
        ...(this.#fileAgents.has(path) && { agent: this.registry.get(this.#fileAgents.get(path)!)?.definition.name }),
      };
      this.#files.set(path, status);
      return status;
    }
    const def = result.definition;
    const key = agentKey(def.name);
    const holder = this.registry.get(def.name);
    const previousKey = this.#fileAgents.get(path);
    if (holder && !(holder.origin.kind === 'file' && holder.origin.path === path)) {
      const by = holder.origin.kind === 'file' ? `the file ${holder.origin.path}` : 'an agent deployed through the API';
      const status: FileStatus = {
        path,
        state: 'invalid',
        updated_at: now,
        errors: [
          { severity: 'error', code: 'duplicate_name', file: path, field: 'name', message: `agent name "${def.name}" is already used by ${by}`, suggestion: 'give this agent a different name' },
        ],
      };
      this.#files.set(path, status);
      return status;
    }
    if (previousKey !== undefined && previousKey !== key) this.registry.remove(previousKey);
    const hash = definitionHash(def);
    const status: FileStatus = { path, state: 'loaded', agent: def.name, updated_at: now };
    if (result.warnings.length > 0) status.errors = result.warnings;
    // The same file saved again with the same content (a touch, a formatting change): a no-op.
    if (holder && definitionHash(holder.definition) === hash) {
      this.#fileAgents.set(path, key);
      this.#files.set(path, status);
      return status;
    }
    // A version for each content the file takes (not for each start of the server).
    const versions = this.versions;
    if (versions && versions.latest(def.name)?.hash !== hash)
      versions.append({ definition: def, format: result.format, source: Buffer.from(bytes).toString('utf8'), how: 'file', origin: 'file', path });
    this.registry.upsert({
      definition: def,
      format: result.format,
      origin: { kind: 'file', path },
      revision: (holder?.revision ?? 0) + 1,
      deployed_at: holder?.deployed_at ?? now,
      updated_at: now,
    });
    this.#fileAgents.set(path, key);
    this.#files.set(path, status);
    return status;
  }

  /**
   * Records a file that could not be read or parsed at all (permissions, size, a parser failure):
   * it is reported as invalid, and the last good version of its agent keeps running.
   */
  markInvalid(path: string, issue: SourceIssue): FileStatus {
    const agentKeyOfFile = this.#fileAgents.get(path);
    const agent = agentKeyOfFile !== undefined ? this.registry.get(agentKeyOfFile)?.definition.name : undefined;
    const status: FileStatus = { path, state: 'invalid', errors: [issue], updated_at: new Date().toISOString(), ...(agent !== undefined && { agent }) };
    this.#files.set(path, status);
    return status;
  }

  removeFile(path: string, opts: { keepStatus?: boolean } = {}): void {
    const key = this.#fileAgents.get(path);
    if (key !== undefined) {
      const agent = this.registry.get(key);
      if (agent?.origin.kind === 'file' && agent.origin.path === path) {
        this.registry.remove(key);
        // The file is gone (keepStatus: it is only unloaded): a removed agent's history is bounded.
        if (!opts.keepStatus) this.versions?.removed(agent.definition.name);
      }
      this.#fileAgents.delete(path);
    }
    if (!opts.keepStatus) this.#files.delete(path);
  }

  fileStatuses(): FileStatus[] {
    return [...this.#files.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
  }
}

/** The canary plan of a deploy, or a 400 naming the option that is wrong and what it must be. */
function canaryPlan(input: CanaryPlanInput | undefined): CanaryPlan {
  const r = canaryPlanSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  const i = r.error.issues[0]!;
  const field = i.path.length > 0 ? i.path.join('.') : 'canary';
  throw new CaxtonError('invalid_request', `canary option "${field}": ${i.message}`, { field, hint: 'stages rise and end at 100, e.g. "5,25,50,100"; hold is a duration such as "30s"' });
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

/** A version of a live API agent, as the executor runs it (the live agent's revision and deploy time, the version's own date). */
function asDeployed(live: DeployedAgent, v: AgentVersionDetail): DeployedAgent {
  return { definition: v.definition, format: v.format, origin: { kind: 'api' }, revision: live.revision, deployed_at: live.deployed_at, updated_at: v.deployed_at };
}
