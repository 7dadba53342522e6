import { CaxtonError, describeError } from '../../shared/errors.js';
import type { SourceIssue } from '../../shared/issues.js';
import type { AgentDefinition, AgentFormat, RolloutCheck } from '../definition.js';
import { authorize, type DeployActor } from '../deploy-actor.js';
import type { AgentRegistry, DeployedAgent } from '../agent-registry.js';
import type { AgentStore } from '../sqlite-agents.js';
import type { CanaryPlan } from './canary.js';
import { CanaryRunner, type CanaryStatus } from './canary-runner.js';
import type { RolloutChanges, RolloutStatePort } from './rollout-state.js';
import type { ConversationPinsPort, Rollout, RolloutStrategy, ShadowTarget } from './rollouts.js';
import type { ShadowReport, ShadowResult, ShadowResultsPort } from './shadow-results.js';
import {
  apiAgent,
  definitionHash,
  type AgentVersion,
  type AgentVersionsPort,
  type VersionHistory,
} from '../versions/index.js';

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

/** An agent's rollout: running, or its last; a canary's stage and figures, a shadow's report. */
export interface RolloutStatus {
  running: boolean;
  rollout: Rollout | null;
  canary: CanaryStatus | null;
  shadow: ShadowReport | null;
}

export interface RolloutActionOptions {
  /** Who asks, when their scope limits which agents they may change (DeployActor). */
  actor?: DeployActor | undefined;
}

/** The rollout steps the controller reports (the event store's types of the same names). */
export type RolloutEventType =
  'rollout.started' | 'rollout.stage_advanced' | 'rollout.promoted' | 'rollout.rolled_back';

export interface RolloutControllerOptions {
  /** Where rollouts are kept (rollout-state.ts: this node's SQLite, or a cluster's PostgreSQL); absent: no rollouts. */
  rollouts?: RolloutStatePort | undefined;
  /** Where conversations are pinned to a version: the cluster's shared pins, or this node's SQLite. */
  pins?: ConversationPinsPort | undefined;
  /** Runs a canary candidate's [[rollout.checks]]: resolves with what failed, or undefined when every check passed. */
  runChecks?: ((agent: string, version: number, checks: RolloutCheck[]) => Promise<string | undefined>) | undefined;
  /** What shadow rollouts compared: written by the shadow runner (through `recordShadow`), read for `rolloutStatus`. */
  shadowResults?: Pick<ShadowResultsPort, 'report' | 'record' | 'skipped'> | undefined;
  /** Told of rollout events (the server records them in the event store). */
  onRollout?: ((event: RolloutEventType, rollout: Rollout) => void) | undefined;
  /** A canary step that failed (its promotion or rollback could not be stored); it is tried again at the next check. */
  onCanaryError?: ((e: unknown, rollout: Rollout) => void) | undefined;
  /** The shared rollouts could not be read (reported, not thrown: the next read catches up). */
  onError?: ((e: unknown) => void) | undefined;
  /** How often running canaries are judged without traffic (ms; default 1000). */
  canaryIntervalMs?: number | undefined;
  /** A cluster: how often the shared rollouts are read again (ms; default 1000). */
  refreshMs?: number | undefined;
}

/** Sets what `v` holds, at once when it is a value, once it resolves when it is a promise (which is returned). */
function settle<T>(v: T | Promise<T>, set: (t: T) => void): void | Promise<void> {
  if (v instanceof Promise) return v.then(set);
  set(v);
}

/**
 * Blue-green, canary and shadow rollouts of API agents: starting one beside the live version, its
 * canary judged stage by stage, its promotion or rollback recorded as a version. On a cluster the
 * rollouts are the cluster's rows (rollout-state.ts), read by every node: any node starts,
 * promotes or rolls back, every node splits new conversations by the same share and adds its
 * executions to the canary's figures, and one node at a time judges.
 */
export class RolloutController {
  readonly rollouts: RolloutStatePort | undefined;
  readonly #registry: AgentRegistry;
  readonly #store: AgentStore;
  readonly #history: VersionHistory;
  readonly #opts: RolloutControllerOptions;
  readonly pins: ConversationPinsPort | undefined;
  readonly #canaries: CanaryRunner | undefined;
  /** This node's canaries whose [[rollout.checks]] are running: their candidate gets no traffic yet. */
  readonly #checking = new Set<number>();
  #runChecks: RolloutControllerOptions['runChecks'];
  /** Rollouts whose promotion or rollback by the judge is being written (it does not start another). */
  readonly #ending = new Set<number>();
  readonly #refresh: NodeJS.Timeout | undefined;
  #following: Promise<void> | undefined;
  #closed = false;
  readonly #onChange = (): void => void this.follow();

  constructor(registry: AgentRegistry, store: AgentStore, history: VersionHistory, opts: RolloutControllerOptions) {
    this.#registry = registry;
    this.#store = store;
    this.#history = history;
    this.#opts = opts;
    this.rollouts = opts.rollouts;
    this.pins = opts.pins;
    this.#runChecks = opts.runChecks;
    const rollouts = opts.rollouts;
    for (const r of rollouts?.runningAll() ?? []) this.pins?.remember?.(r.agent);
    this.#canaries =
      rollouts &&
      new CanaryRunner(
        {
          advance: async (r, stage) => {
            const next = await rollouts.advance(r, stage);
            if (next.state === 'running' && next.stage === stage)
              this.#opts.onRollout?.('rollout.stage_advanced', next);
          },
          promote: (r) => this.#ended(r, () => this.promote(r.agent, 'canary')),
          rollback: (r, reason) => {
            const existing = this.#registry.get(r.agent);
            const port = this.#history.portFor(r.agent);
            return existing && port
              ? this.#ended(r, () => this.#abort(existing, r, port, rollouts, 'canary', reason))
              : Promise.resolve();
          },
          onError: (e, r) => this.#opts.onCanaryError?.(e, r),
        },
        rollouts,
        opts.canaryIntervalMs,
      );
    if (rollouts?.shared) {
      this.#refresh = setInterval(() => void this.follow(), opts.refreshMs ?? 1000);
      this.#refresh.unref();
      // An agent changed (here, or through another node by the directory): a promotion or rollback
      // elsewhere changes it, so the rollouts are read again at once rather than at the next interval.
      registry.on('change', this.#onChange);
    }
  }

  /** Sets how [[rollout.checks]] run (the server wires the executor once it exists). */
  setCheckRunner(run: NonNullable<RolloutControllerOptions['runChecks']>): void {
    this.#runChecks = run;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#canaries?.close();
    clearInterval(this.#refresh);
    this.#registry.off('change', this.#onChange);
    await this.#following;
    await this.rollouts?.close?.();
  }

  /**
   * A cluster: reads the shared rollouts again. A rollout another node started counts here once its
   * candidate is read into this node's view of the history (from then on it answers here as
   * NAME@VERSION and takes its share of new conversations); one that ended elsewhere makes this
   * node read the agent's newest version again. Reported, not thrown: the next read catches up.
   */
  follow(): Promise<void> {
    const rollouts = this.rollouts;
    if (!rollouts?.refresh || this.#closed) return Promise.resolve();
    this.#following ??= rollouts
      .refresh(this.#prepare)
      .catch((e: unknown) => this.#opts.onError?.(e))
      .finally(() => (this.#following = undefined));
    return this.#following;
  }

  /** Another node's rollouts, started or ended, before they count here (see `follow`). */
  readonly #prepare = async ({ added, ended }: RolloutChanges): Promise<void> => {
    for (const r of added) {
      this.pins?.remember?.(r.agent);
      await this.#history.fetch(r.agent, r.stable_version);
      await this.#history.fetch(r.agent, r.candidate_version);
    }
    for (const r of ended) if (this.#registry.get(r.agent)) await this.#history.refresh(r.agent);
  };

  /** Reads the agent's rollout afresh on a cluster (another node may have started or ended one a moment ago). */
  async reload(name: string): Promise<void> {
    await this.#reload(name);
  }

  async #reload(name: string): Promise<void> {
    await this.rollouts?.reload?.(name, this.#prepare);
  }

  /** The version that unaddressed requests get: a running rollout's stable one, else the newest. */
  currentVersion(name: string): number | undefined {
    return this.rollouts?.running(name)?.stable_version ?? this.#history.latestSync(name)?.version;
  }

  /**
   * Refuses a change of `name` while it has a rollout, naming how to end it. On a cluster this
   * node's copy of the rows may be a moment old: the change is refused by `refuseShared`, on the
   * row read afresh, instead.
   */
  refuseRunning(existing: DeployedAgent): void {
    if (!this.rollouts?.shared) this.#refuse(existing);
  }

  #refuse(existing: DeployedAgent): void {
    const name = existing.definition.name;
    const running = this.rollouts?.running(name);
    if (running)
      throw new CaxtonError(
        'rollout_in_progress',
        `agent "${name}" has a ${running.strategy} rollout of version ${running.candidate_version} running; end it first: caxton agent promote ${name}, or caxton agent rollback ${name}`,
        { name, rollout: running },
      );
  }

  /** `refuseRunning` on the agent's rollout read afresh (on a cluster, another node may have started one a moment ago). */
  async refuseShared(name: string): Promise<void> {
    await this.#reload(name);
    const existing = this.#registry.get(name);
    if (existing) this.#refuse(existing);
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
    // A canary whose [[rollout.checks]] are about to run (`checkFirst`) gets no traffic on any node until they pass.
    const checking = plan !== undefined && (def.rollout?.checks?.length ?? 0) > 0 && this.#runChecks !== undefined;
    let rollout: Rollout | undefined;
    const version = await port.append(
      { definition: def, format, source, how: 'api', origin: 'api', deployed_by: by },
      (written, tx) =>
        settle(
          rollouts.start(
            {
              name: existing.definition.name,
              strategy,
              stable: current.version,
              candidate: written.version,
              by,
              plan,
              checking,
            },
            tx,
          ),
          (r) => (rollout = r),
        ),
    );
    if (!rollout) throw new Error('the rollout was not started');
    if (checking) this.#checking.add(rollout.id);
    this.pins?.remember?.(existing.definition.name);
    this.#history.wrote(port, version, def, format, source);
    this.#opts.onRollout?.('rollout.started', rollout);
    return { version, rollout };
  }

  /**
   * A canary just started whose definition has [[rollout.checks]]: they run before its first
   * stage, its candidate getting no traffic until they pass; a failure rolls it back. The rollout
   * as it stands after them.
   */
  async checkFirst(rollout: Rollout, checks: RolloutCheck[]): Promise<Rollout> {
    const run = this.#runChecks;
    if (rollout.strategy !== 'canary' || checks.length === 0 || !run) {
      this.#checking.delete(rollout.id);
      return rollout;
    }
    let failure: string | undefined;
    try {
      failure = await run(rollout.agent, rollout.candidate_version, checks);
    } catch (e) {
      failure = `the checks could not run: ${describeError(e)}`;
    }
    if (failure === undefined) {
      // Its share of new conversations starts now, on every node.
      try {
        await this.rollouts?.checked?.(rollout);
      } finally {
        this.#checking.delete(rollout.id);
      }
      return rollout;
    }
    this.#checking.delete(rollout.id);
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

  /** A canary's share of new conversations now: its stage's, none while its checks run (or for other strategies). */
  shareOf(r: Rollout): number | null {
    return r.strategy === 'canary' && r.plan && !this.#checking.has(r.id) && !this.rollouts?.checking?.(r)
      ? (r.plan.stages[r.stage] ?? null)
      : null;
  }

  /** The agent's rollout (running, or its last), for GET /agents/NAME/rollout; read afresh on a cluster. */
  async rolloutStatus(name: string): Promise<RolloutStatus> {
    await this.#reload(name);
    const running = this.rollouts?.running(name);
    const rollout = running ?? (await this.rollouts?.latest(name)) ?? null;
    return {
      running: running !== undefined,
      rollout,
      canary: (running && (await this.canaryStatus(running))) ?? null,
      shadow:
        rollout?.strategy === 'shadow' && this.#opts.shadowResults
          ? await this.#opts.shadowResults.report(rollout.id)
          : null,
    };
  }

  /** A promotion or rollback by the canary judge: one at a time per rollout, its failure reported. */
  async #ended(r: Rollout, fn: () => Promise<unknown>): Promise<void> {
    if (this.#ending.has(r.id)) return;
    this.#ending.add(r.id);
    try {
      await fn();
    } catch (e) {
      // A conflict: a user's promotion or rollback ended it first, which is no failure of this step.
      if (!(e instanceof CaxtonError && (e.code === 'conflict' || e.code === 'no_rollout')))
        this.#opts.onCanaryError?.(e, r);
    } finally {
      this.#ending.delete(r.id);
    }
  }

  /**
   * Which version of its agent's history `definition` is, for the execution records: the one it
   * was addressed as or placed on, else the newest when that has its content (the live agent);
   * undefined when versions are not kept or the content matches none of those.
   */
  numberOf(definition: AgentDefinition): number | undefined {
    const labels = this.#history.labels;
    const known = labels.numbered(definition);
    if (known !== undefined || !this.#history.kept) return known;
    const latest = this.#history.latestSync(definition.name);
    const n =
      latest && latest.hash === definitionHash(definition)
        ? latest.version
        : this.rollouts?.running(definition.name)?.stable_version;
    // Kept per definition object: the hash is computed once per deploy, not per execution.
    if (n !== undefined) labels.number(definition, n);
    return n;
  }

  /**
   * One finished execution of `definition` (the executor's record): counted for the canary of its
   * agent when it was one of the canary's two versions (on a cluster, whichever node ran it).
   */
  observe(definition: AgentDefinition, ok: boolean, durationMs: number): void {
    const version = this.#history.labels.placedOn(definition);
    if (version === undefined || !this.#canaries) return;
    const running = this.rollouts?.running(definition.name);
    if (running) this.#canaries.observe(running, version, ok, durationMs);
  }

  /**
   * Which version of a rollout `definition` is, while its agent has a canary or shadow rollout
   * (for metrics labelled with the version); undefined otherwise.
   */
  rolloutVersionOf(definition: AgentDefinition): { version: number; role: 'stable' | 'candidate' } | undefined {
    const version = this.#history.labels.placedOn(definition);
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
    const version = this.#history.labels.placedOn(definition);
    return running?.strategy === 'shadow' && version === running.stable_version ? running : undefined;
  }

  /** A shadow copy's comparison (`result`) or a copy skipped (none), for the rollout's report (on a cluster, every node's in one). */
  recordShadow(target: ShadowTarget, result?: ShadowResult): void {
    if (result) this.#opts.shadowResults?.record(result);
    else this.#opts.shadowResults?.skipped(target.id);
  }

  /** A running canary's stage, weights and figures (undefined for other rollouts). */
  async canaryStatus(rollout: Rollout): Promise<CanaryStatus | undefined> {
    return rollout.state === 'running' ? this.#canaries?.status(rollout) : undefined;
  }

  #runningRollout(name: string): {
    existing: DeployedAgent;
    rollout: Rollout;
    versions: AgentVersionsPort;
    rollouts: RolloutStatePort;
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

  /** Makes a running rollout's candidate the live version (a new version, `how: promotion`), through any node. */
  async promote(name: string, by?: string, opts: RolloutActionOptions = {}): Promise<RolloutOutcome> {
    authorize(this.#registry, opts.actor, name);
    await this.#reload(name);
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
      // Ended first: when its judge or a user ended it meanwhile, this throws before anything is saved.
      (_written, tx) =>
        settle(rollouts.endRunning(rollout, 'promoted', by, null, tx), (e) => {
          ended = e;
          this.#store.save({ ...agent, source: candidate.source });
        }),
      { ...agent, source: candidate.source },
    );
    this.#history.wrote(versions, version, candidate.definition, candidate.format, candidate.source);
    this.#registry.upsert(agent);
    this.#opts.onRollout?.('rollout.promoted', ended!);
    return { agent, rollout: ended!, version };
  }

  /**
   * A rollback of `existing` while a rollout of it runs (through any node): it ends (`to`, when
   * given, must be its stable version). Undefined: no rollout runs, the rollback restores an
   * earlier version as usual.
   */
  async rollbackRunning(
    existing: DeployedAgent,
    to: number | undefined,
    by: string | undefined,
  ): Promise<RollbackOutcome | undefined> {
    const agentName = existing.definition.name;
    await this.#reload(agentName);
    const running = this.rollouts?.running(agentName);
    const versions = this.#history.portFor(agentName);
    if (!running || !versions) return undefined;
    if (to !== undefined && to !== running.stable_version)
      throw new CaxtonError(
        'rollout_in_progress',
        `agent "${agentName}" has a ${running.strategy} rollout running: a rollback ends it and keeps version ${running.stable_version}; run it without --to, then roll back further`,
        { name: agentName, rollout: running },
      );
    return this.#abort(existing, running, versions, this.rollouts!, by, `rolled back${by ? ` by ${by}` : ''}`);
  }

  /** The rollout of `name` ends because the agent was removed. */
  async removed(name: string): Promise<Rollout | undefined> {
    await this.#reload(name);
    const running = this.rollouts?.running(name);
    if (!running) return undefined;
    const ended = await this.rollouts!.end(running, 'rolled_back', undefined, 'the agent was removed');
    if (ended.state !== 'running') this.#opts.onRollout?.('rollout.rolled_back', ended);
    return running;
  }

  /** Ends a running rollout: the live version stays (recorded again as a version, `how: rollback`). */
  async #abort(
    existing: DeployedAgent,
    rollout: Rollout,
    versions: AgentVersionsPort,
    rollouts: RolloutStatePort,
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
      (_written, tx) => settle(rollouts.endRunning(rollout, 'rolled_back', by, reason, tx), (e) => (ended = e)),
    );
    history.wrote(versions, version, existing.definition, existing.format, stable.source);
    this.#opts.onRollout?.('rollout.rolled_back', ended!);
    const { definition: _d, source: _s, ...summary } = stable;
    return { agent: existing, version, restored: summary, warnings: [], rollout: ended! };
  }
}
