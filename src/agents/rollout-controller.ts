import { CaxtonError, describeError } from '../shared/errors.js';
import type { SourceIssue } from '../shared/issues.js';
import { agentKey, type AgentDefinition, type AgentFormat, type RolloutCheck } from './definition.js';
import { authorize, type DeployActor } from './deploy-actor.js';
import type { AgentRegistry, DeployedAgent } from './registry.js';
import type { AgentStore } from './store.js';
import type { CanaryPlan } from './canary.js';
import { CanaryRunner, type CanaryStatus } from './canary-runner.js';
import type {
  CanaryFigure,
  ConversationPinsPort,
  Rollout,
  RolloutHeld,
  RolloutMark,
  RolloutMarksPort,
  RolloutStore,
  RolloutStrategy,
  ShadowFigure,
  ShadowTarget,
} from './rollouts.js';
import type { ShadowReport, ShadowResult, ShadowResultStore } from './shadow-results.js';
import { apiAgent, type VersionHistory } from './version-history.js';
import type { AgentVersion, AgentVersionsPort } from './versions.js';

export interface RolloutOutcome {
  agent: DeployedAgent;
  rollout: Rollout;
  /** The version recorded by the promotion or the rollback. */
  version: AgentVersion;
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

/** The rollout steps the controller reports (the event store's types of the same names). */
export type RolloutEventType =
  'rollout.started' | 'rollout.stage_advanced' | 'rollout.promoted' | 'rollout.rolled_back';

export interface RolloutControllerOptions {
  /** Where rollouts are kept (rollouts.ts); absent: no rollouts. */
  rollouts?: RolloutStore | undefined;
  /** A cluster node: which node runs a rollout of each API agent (src/cluster/pg-rollout-marks.ts). */
  marks?: RolloutMarksPort | undefined;
  /** Where conversations are pinned to a version: the cluster's shared pins, else `rollouts`. */
  pins?: ConversationPinsPort | undefined;
  /** Runs a canary candidate's [[rollout.checks]]: resolves with what failed, or undefined when every check passed. */
  runChecks?: ((agent: string, version: number, checks: RolloutCheck[]) => Promise<string | undefined>) | undefined;
  /** What shadow rollouts compared: read for `rolloutStatus`, written with the other nodes' comparisons. */
  shadowResults?: Pick<ShadowResultStore, 'report' | 'record' | 'skipped'> | undefined;
  /** Told of rollout events (the server records them in the event store). */
  onRollout?: ((event: RolloutEventType, rollout: Rollout) => void) | undefined;
  /** A canary step that failed (its promotion or rollback could not be stored); it is tried again at the next check. */
  onCanaryError?: ((e: unknown, rollout: Rollout) => void) | undefined;
  /** The cluster could not be told or read (reported, not thrown: the next change or start catches up). */
  onError?: ((e: unknown) => void) | undefined;
  /** How often running canaries are judged without traffic (ms; default 1000). */
  canaryIntervalMs?: number | undefined;
}

/** A change refused because another node of the cluster runs a rollout of the agent (its promotion would undo the change). */
export function rolloutElsewhere(m: RolloutMark): CaxtonError {
  const where = m.down
    ? `on node ${m.node}, which is not in the cluster now; start that node again and end the rollout there, or change the agent through any node, which ends it`
    : `on node ${m.node}; end it first (caxton agent promote ${m.agent}, or agent rollback ${m.agent}, through any node: node ${m.node} carries it out)`;
  return new CaxtonError(
    'rollout_in_progress',
    `agent "${m.agent}" has a ${m.strategy} rollout of version ${m.candidate_version} running ${where}`,
    {
      name: m.agent,
      node: m.node,
      rollout: {
        id: m.rollout_id,
        strategy: m.strategy,
        candidate_version: m.candidate_version,
        started_at: m.started_at,
      },
    },
  );
}

/**
 * Blue-green, canary and shadow rollouts of API agents: starting one beside the live version, its
 * canary judged stage by stage, its promotion or rollback recorded as a version, and (a cluster
 * node) the marks that tell the other nodes which node runs it.
 */
export class RolloutController {
  readonly rollouts: RolloutStore | undefined;
  readonly #registry: AgentRegistry;
  readonly #store: AgentStore;
  readonly #history: VersionHistory;
  readonly #opts: RolloutControllerOptions;
  readonly #marks: RolloutMarksPort | undefined;
  readonly pins: ConversationPinsPort | undefined;
  /** Which version each definition handed to the executor is, while its agent has a canary or shadow (for the canary's figures). */
  readonly #versionOf = new WeakMap<AgentDefinition, number>();
  readonly #canaries: CanaryRunner | undefined;
  /** Canaries whose [[rollout.checks]] are running: their candidate gets no traffic yet. */
  readonly #checking = new Set<number>();
  #runChecks: RolloutControllerOptions['runChecks'];
  /** The rollouts other nodes run (a cluster node, kept by `followRollouts`), by agent key: their candidates answer here as NAME@VERSION. */
  #heldElsewhere = new Map<string, RolloutHeld>();
  /** Where this node's executions of another node's canary go (a cluster node: RolloutSync sends them to its judge). */
  #figuresOut: ((f: CanaryFigure) => void) | undefined;
  /** Where this node's comparisons for another node's shadow rollout go (RolloutSync). */
  #shadowsOut: ((f: ShadowFigure) => void) | undefined;
  /** Where promotions and rollbacks of other nodes' rollouts go (a cluster node: RolloutSync). */
  #forwarder: RolloutForwarder | undefined;
  /** Rollouts whose promotion or rollback is being written (the canary runner does not start another). */
  readonly #ending = new Set<number>();

  constructor(registry: AgentRegistry, store: AgentStore, history: VersionHistory, opts: RolloutControllerOptions) {
    this.#registry = registry;
    this.#store = store;
    this.#history = history;
    this.#opts = opts;
    this.rollouts = opts.rollouts;
    this.#marks = opts.marks;
    this.pins = opts.pins ?? opts.rollouts;
    this.#runChecks = opts.runChecks;
    const rollouts = opts.rollouts;
    for (const r of rollouts?.runningAll() ?? []) this.pins?.remember?.(r.agent);
    this.#canaries =
      rollouts &&
      new CanaryRunner(
        {
          running: () => rollouts.runningAll().filter((r) => r.strategy === 'canary'),
          advance: (r, stage) => {
            const next = rollouts.advance(r, stage);
            this.#opts.onRollout?.('rollout.stage_advanced', next);
            // The other nodes of a cluster apply the stage's share too.
            void this.#reshare(next);
            return next;
          },
          promote: (r) => this.#ended(r, () => this.promote(r.agent, 'canary')),
          rollback: (r, reason) => {
            const existing = this.#registry.get(r.agent);
            const port = this.#history.portFor(r.agent);
            if (existing && port) this.#ended(r, () => this.#abort(existing, r, port, rollouts, 'canary', reason));
          },
          onError: (e, r) => this.#opts.onCanaryError?.(e, r),
        },
        opts.canaryIntervalMs,
      );
  }

  /** Sets how [[rollout.checks]] run (the server wires the executor once it exists). */
  setCheckRunner(run: NonNullable<RolloutControllerOptions['runChecks']>): void {
    this.#runChecks = run;
  }

  close(): void {
    this.#canaries?.close();
  }

  /** The version that unaddressed requests get: a running rollout's stable one, else the newest. */
  currentVersion(name: string): number | undefined {
    return this.rollouts?.running(name)?.stable_version ?? this.#history.latestSync(name)?.version;
  }

  /** Refuses a change of `name` while it has a rollout (this node's, or a cluster node's), naming how to end it. */
  refuseRunning(existing: DeployedAgent): void {
    const name = existing.definition.name;
    const running = this.rollouts?.running(name);
    if (running)
      throw new CaxtonError(
        'rollout_in_progress',
        `agent "${name}" has a ${running.strategy} rollout of version ${running.candidate_version} running; end it first: caxton agent promote ${name}, or caxton agent rollback ${name}`,
        { name, rollout: running },
      );
  }

  /**
   * A cluster node: refuses a change of `name` while another node runs a rollout of it (that
   * rollout's end would undo the change); the mark of a node that left is superseded instead.
   */
  async refuseElsewhere(name: string): Promise<void> {
    const there = await this.#marks?.elsewhere(name, true);
    if (there) throw rolloutElsewhere(there);
  }

  /**
   * Starts a rollout of `def` beside the live version `current`: the candidate is recorded as a
   * version (with the rollout, in one transaction) but not put live; NAME@VERSION reaches it.
   */
  async start(
    port: AgentVersionsPort,
    strategy: RolloutStrategy,
    plan: CanaryPlan | undefined,
    existing: DeployedAgent,
    current: AgentVersion,
    candidate: {
      definition: AgentDefinition;
      format: AgentFormat;
      source: string;
      warnings: SourceIssue[];
      by: string | undefined;
    },
  ): Promise<{ version: AgentVersion; rollout: Rollout }> {
    const rollouts = this.rollouts;
    if (!rollouts)
      throw new CaxtonError('invalid_request', `this server keeps no rollouts, so it cannot run a ${strategy} rollout`);
    const { definition: def, format, source, by } = candidate;
    // The stable version's detail, kept for the hot path (a conversation pinned to it).
    await this.#history.detail(port, def.name, current.version);
    let rollout: Rollout | undefined;
    const version = await port.append(
      { definition: def, format, source, how: 'api', origin: 'api', deployed_by: by },
      (written) => {
        rollout = rollouts.start(existing.definition.name, strategy, current.version, written.version, by, plan);
      },
    );
    this.pins?.remember?.(existing.definition.name);
    this.#history.wrote(port, version, def, format, source);
    if (!rollout) throw new Error('the rollout was not started');
    this.#opts.onRollout?.('rollout.started', rollout);
    if (port === this.#history.shared) {
      // A canary whose [[rollout.checks]] are about to run (`checkFirst`) gets no traffic anywhere until they pass.
      const checksFirst = plan !== undefined && (def.rollout?.checks?.length ?? 0) > 0 && this.#runChecks !== undefined;
      await this.#claim(rollout, by, checksFirst ? null : this.shareOf(rollout));
    }
    return { version, rollout };
  }

  /**
   * A canary just started whose definition has [[rollout.checks]]: they run before its first
   * stage, its candidate getting no traffic until they pass; a failure rolls it back. The rollout
   * as it stands after them.
   */
  async checkFirst(rollout: Rollout, checks: RolloutCheck[]): Promise<Rollout> {
    const run = this.#runChecks;
    if (rollout.strategy !== 'canary' || checks.length === 0 || !run) return rollout;
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
      return rollout;
    }
    const existing = this.#registry.get(rollout.agent);
    const still = this.rollouts?.running(rollout.agent);
    const port = this.#history.portFor(rollout.agent);
    if (!existing || !port || !this.rollouts || still?.id !== rollout.id) return rollout;
    const ended = await this.#abort(
      existing,
      still,
      port,
      this.rollouts,
      'canary',
      `a check failed before the first stage: ${failure}`,
    );
    return ended.rollout ?? rollout;
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
      this.#opts.onRollout?.(
        'rollout.rolled_back',
        rollouts.end(r, 'rolled_back', by, "the cluster's PostgreSQL could not record which node runs the rollout"),
      );
      throw e;
    }
    if (holder) {
      this.#opts.onRollout?.(
        'rollout.rolled_back',
        rollouts.end(r, 'rolled_back', by, `node ${holder.node} started a rollout of this agent at the same time`),
      );
      throw rolloutElsewhere(holder);
    }
  }

  /** A canary's share of new conversations now: its stage's, none while its checks run (or for other strategies). */
  shareOf(r: Rollout): number | null {
    return r.strategy === 'canary' && r.plan && !this.#checking.has(r.id) ? (r.plan.stages[r.stage] ?? null) : null;
  }

  /** Tells the cluster `r`'s share now (reported, not thrown, when it cannot: the other nodes keep the share they had). */
  async #reshare(r: Rollout): Promise<void> {
    if (!this.#marks || !this.#history.isShared(r.agent)) return;
    try {
      await this.#marks.reshare(r, this.shareOf(r));
    } catch (e) {
      this.#opts.onError?.(e);
    }
  }

  /**
   * Another node's rollout of `name` that acts on this node's unaddressed traffic, while its node
   * is up: a canary with a share (new conversations split here too) or a shadow (live requests
   * copied here too).
   */
  actingHere(name: string): RolloutHeld | undefined {
    const h = this.#heldElsewhere.get(agentKey(name));
    return h && !h.down && ((h.strategy === 'canary' && h.share !== null) || h.strategy === 'shadow') ? h : undefined;
  }

  /** This node's running rollout of `name`, else (an API agent on a cluster node) the one another node runs. */
  runningAnywhere(live: DeployedAgent): Pick<Rollout, 'candidate_version'> | undefined {
    const name = live.definition.name;
    return (
      this.rollouts?.running(name) ?? (live.origin.kind === 'api' ? this.#heldElsewhere.get(agentKey(name)) : undefined)
    );
  }

  /** The cluster's mark of a rollout that ended here goes (reported, not thrown, when it cannot: this node's next start clears it). */
  async release(r: Rollout): Promise<void> {
    try {
      await this.#marks?.release(r);
    } catch (e) {
      this.#opts.onError?.(e);
    }
  }

  /**
   * A cluster node's start: each rollout running here is marked again (a mark lost with a crash
   * comes back); one whose agent another node changed while this one was down, or that another
   * node's rollout holds now, ends here (rolled back: the cluster's agent is what the directory
   * brings).
   */
  async reclaim(): Promise<void> {
    const rollouts = this.rollouts;
    if (!this.#marks || !rollouts) return;
    for (const r of rollouts.runningAll()) {
      if (!this.#history.isShared(r.agent)) continue;
      try {
        const holder = await this.#marks.claim(r, this.shareOf(r));
        if (!holder) continue;
        const why =
          holder.superseded_by !== null
            ? `node ${holder.superseded_by} changed the agent while this node was down`
            : `node ${holder.node} runs a rollout of this agent`;
        this.#opts.onRollout?.('rollout.rolled_back', rollouts.end(r, 'rolled_back', undefined, why));
        await this.#marks.release(r);
      } catch (e) {
        this.#opts.onError?.(e);
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
      this.pins?.remember?.(m.agent);
      const before = this.#heldElsewhere.get(key);
      if (
        before?.rollout_id === m.rollout_id &&
        before.node === m.node &&
        before.candidate_version === m.candidate_version
      ) {
        // Its candidate is read already; its share (a stage moved, checks passed) or its node's state may be new.
        next.set(key, m);
        if (before.share !== m.share || before.down !== m.down) followed++;
        continue;
      }
      try {
        await this.#history.fetch(m.agent, m.candidate_version);
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
    for (const m of ended) if (this.#registry.get(m.agent)) await this.#history.refresh(m.agent);
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
      shadow:
        rollout?.strategy === 'shadow' && this.#opts.shadowResults ? this.#opts.shadowResults.report(rollout.id) : null,
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

  /** A promotion or rollback by the canary runner: one at a time per rollout, its failure reported. */
  #ended(r: Rollout, fn: () => Promise<unknown>): void {
    if (this.#ending.has(r.id)) return;
    this.#ending.add(r.id);
    fn()
      // A conflict: a user's promotion or rollback ended it first, which is no failure of this step.
      .catch((e: unknown) =>
        e instanceof CaxtonError && e.code === 'conflict' ? undefined : this.#opts.onCanaryError?.(e, r),
      )
      .finally(() => this.#ending.delete(r.id));
  }

  /** The definition the executor gets is version `version` of a rollout's agent (for the canary's figures and metrics). */
  tag(definition: AgentDefinition, version: number): void {
    this.#versionOf.set(definition, version);
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
    const held = this.actingHere(definition.name);
    if (held?.strategy === 'canary' && this.#figuresOut)
      this.#figuresOut({
        node: held.node,
        agent: held.agent,
        rollout_id: held.rollout_id,
        share: held.share!,
        version,
        ok,
        ms: durationMs,
      });
  }

  /** Where this node's executions of other nodes' canaries go (RolloutSync; undefined: nowhere). */
  sendFigures(to: ((f: CanaryFigure) => void) | undefined): void {
    this.#figuresOut = to;
  }

  /** An execution of this node's canary on another node: counted in the stage it ran under (a figure of a stage already left is dropped). */
  observeElsewhere(f: CanaryFigure): void {
    const running = this.rollouts?.running(f.agent);
    if (running?.id !== f.rollout_id || this.shareOf(running) !== f.share) return;
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
    return version === running.candidate_version
      ? { version, role: 'candidate' }
      : version === running.stable_version
        ? { version, role: 'stable' }
        : undefined;
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
    const there = this.actingHere(definition.name);
    return there?.strategy === 'shadow' &&
      this.#shadowsOut &&
      version !== undefined &&
      version === this.currentVersion(definition.name)
      ? { id: there.rollout_id, agent: there.agent, candidate_version: there.candidate_version, node: there.node }
      : undefined;
  }

  /** A shadow copy's comparison (`result`) or a copy skipped (none): kept here for this node's rollout, sent to its node for another's. */
  recordShadow(target: ShadowTarget, result?: ShadowResult): void {
    if (target.node !== undefined)
      return this.#shadowsOut?.({
        node: target.node,
        agent: target.agent,
        rollout_id: target.id,
        ...(result && { result }),
      });
    if (result) this.#opts.shadowResults?.record(result);
    else this.#opts.shadowResults?.skipped(target.id);
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

  #runningRollout(name: string): {
    existing: DeployedAgent;
    rollout: Rollout;
    versions: AgentVersionsPort;
    rollouts: RolloutStore;
  } {
    const existing = this.#registry.get(name);
    if (!existing) throw new CaxtonError('agent_not_found', `no agent named "${name}" is deployed`, { name });
    const rollout = this.rollouts?.running(existing.definition.name);
    const versions = this.#history.portFor(existing.definition.name);
    if (!rollout || !versions || !this.rollouts)
      throw new CaxtonError(
        'no_rollout',
        `agent "${existing.definition.name}" has no rollout running; deploy with --strategy blue-green, canary or shadow to start one`,
        {
          name: existing.definition.name,
        },
      );
    return { existing, rollout, versions, rollouts: this.rollouts };
  }

  /** Makes a running rollout's candidate the live version (a new version, `how: promotion`). */
  async promote(name: string, by?: string, opts: RolloutActionOptions = {}): Promise<RolloutOutcome> {
    authorize(this.#registry, opts.actor, name);
    if (!this.rollouts?.running(name)) {
      // Another node's rollout (a cluster node): that node promotes it, when it is in the cluster.
      const there = await this.#marks?.elsewhere(name, false);
      if (there && this.#forwarder && !there.down && !opts.forwarded) {
        // The node carrying it out is not told who asks: the candidate is checked here.
        if (opts.actor) {
          const candidate = await this.#history.portFor(there.agent)?.get(there.agent, there.candidate_version);
          if (candidate) authorize(this.#registry, opts.actor, there.agent, candidate.definition.capabilities);
        }
        return this.#forwarder.promote(there.node, name, by);
      }
      if (there) throw rolloutElsewhere(there);
    }
    const { existing, rollout, versions, rollouts } = this.#runningRollout(name);
    const candidate = await this.#history.detail(versions, rollout.agent, rollout.candidate_version);
    if (!candidate)
      throw new CaxtonError(
        'version_not_found',
        `version ${rollout.candidate_version} of agent "${rollout.agent}" is no longer kept; roll the rollout back`,
        { name: rollout.agent },
      );
    authorize(this.#registry, opts.actor, rollout.agent, candidate.definition.capabilities);
    const agent = apiAgent(candidate.definition, candidate.format, existing);
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
    this.#history.wrote(versions, version, candidate.definition, candidate.format, candidate.source);
    this.#registry.upsert(agent);
    await this.release(ended!);
    this.#opts.onRollout?.('rollout.promoted', ended!);
    return { agent, rollout: ended!, version };
  }

  /**
   * A rollback of `existing` while a rollout of it runs: this node's ends (`to`, when given, must
   * be its stable version); another node's is sent to that node. Undefined: no rollout runs, the
   * rollback restores an earlier version as usual.
   */
  async rollbackRunning(
    existing: DeployedAgent,
    to: number | undefined,
    by: string | undefined,
    opts: RolloutActionOptions,
  ): Promise<RollbackOutcome | undefined> {
    const agentName = existing.definition.name;
    const running = this.rollouts?.running(agentName);
    const versions = this.#history.portFor(agentName);
    if (running && versions) {
      if (to !== undefined && to !== running.stable_version)
        throw new CaxtonError(
          'rollout_in_progress',
          `agent "${agentName}" has a ${running.strategy} rollout running: a rollback ends it and keeps version ${running.stable_version}; run it without --to, then roll back further`,
          { name: agentName, rollout: running },
        );
      return this.#abort(existing, running, versions, this.rollouts!, by, `rolled back${by ? ` by ${by}` : ''}`);
    }
    // Another node's rollout (a cluster node; one whose node left is superseded): that node ends it.
    const there = await this.#marks?.elsewhere(agentName, true);
    if (there && this.#forwarder && !opts.forwarded) return this.#forwarder.rollback(there.node, agentName, to, by);
    if (there) throw rolloutElsewhere(there);
    return undefined;
  }

  /** The rollout of `name` ends because the agent was removed here. */
  removed(name: string): Rollout | undefined {
    const running = this.rollouts?.running(name);
    if (running)
      this.#opts.onRollout?.(
        'rollout.rolled_back',
        this.rollouts!.end(running, 'rolled_back', undefined, 'the agent was removed'),
      );
    return running;
  }

  /** Ends a running rollout: the live version stays (recorded again as a version, `how: rollback`). */
  async #abort(
    existing: DeployedAgent,
    rollout: Rollout,
    versions: AgentVersionsPort,
    rollouts: RolloutStore,
    by: string | undefined,
    reason: string,
  ): Promise<RollbackOutcome> {
    const history = this.#history;
    const stable =
      (await history.detail(versions, rollout.agent, rollout.stable_version)) ??
      (await history.detail(versions, rollout.agent, (await versions.latest(rollout.agent))!.version))!;
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
    history.wrote(versions, version, existing.definition, existing.format, stable.source);
    await this.release(ended!);
    this.#opts.onRollout?.('rollout.rolled_back', ended!);
    const { definition: _d, source: _s, ...summary } = stable;
    return { agent: existing, version, restored: summary, warnings: [], rollout: ended! };
  }
}
