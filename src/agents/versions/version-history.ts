import { agentKey, type AgentDefinition, type AgentFormat } from '../definition.js';
import type { AgentRegistry, DeployedAgent } from '../agent-registry.js';
import type { AgentStore } from '../sqlite-agents.js';
import { relayedFrom } from '../../shared/relayed.js';
import { definitionHash, type AgentVersion, type AgentVersionDetail, type AgentVersionsPort } from './versions.js';
import type { AgentVersionStore } from './sqlite-versions.js';
import { VersionLabels } from './version-labels.js';

/** Versions of the shared history a cluster node keeps parsed in memory. */
const SHARED_DETAILS = 64;

/**
 * Where each agent's versions are, and a synchronous view of them for the hot path. A single node
 * keeps every version in its SQLite (`local`); a cluster node keeps API agents' versions in the
 * cluster's PostgreSQL (`shared`) and file agents' in its SQLite. Choosing the version of a
 * message must stay synchronous, so a cluster node keeps each API agent's newest version and the
 * versions read or written here (a running rollout's two, mostly): kept by this node's writes,
 * refreshed when another node's change reaches the registry, filled at start (`fill`).
 */
export class VersionHistory {
  readonly local: AgentVersionStore | undefined;
  readonly shared: AgentVersionsPort | undefined;
  /** Which version each definition handed to the executor is (rollouts place, NAME@VERSION numbers). */
  readonly labels = new VersionLabels();
  /** `local` behind the asynchronous port (what deploys, promotions and rollbacks go through). */
  readonly #localPort: AgentVersionsPort | undefined;
  readonly #registry: AgentRegistry;
  readonly #onError: (e: unknown) => void;
  readonly #latest = new Map<string, AgentVersion>();
  readonly #details = new Map<string, AgentVersionDetail>();
  /** The newest shared version number read when a version asked for was missing, so every node names the same one. */
  readonly #newestOnMiss = new Map<string, number>();
  /** Reads of the shared history under way (one per agent or version at a time, however many messages miss the view). */
  readonly #reading = new Set<string>();
  readonly #readAgain = new Set<string>();
  /** Per agent, how many versions this node wrote: a read that started before one of them does not overwrite it. */
  readonly #written = new Map<string, number>();

  constructor(
    registry: AgentRegistry,
    local: AgentVersionStore | undefined,
    shared: AgentVersionsPort | undefined,
    onError: (e: unknown) => void = () => {},
  ) {
    this.#registry = registry;
    this.local = local;
    this.shared = shared;
    this.#localPort = local?.port();
    this.#onError = onError;
    // Another node's change of an API agent (applied from the directory): its newest version is re-read.
    if (shared)
      registry.on('change', (e) => {
        if (e.agent.origin.kind !== 'api' || relayedFrom(e.agent) === undefined) return;
        const key = agentKey(e.agent.definition.name);
        if (e.type === 'removed') this.#latest.delete(key);
        else void this.#refreshLatest(e.agent.definition.name);
      });
  }

  /** Whether versions are kept at all (absent: tests of the parser alone). */
  get kept(): boolean {
    return this.local !== undefined || this.shared !== undefined;
  }

  /** The port that holds `name`'s versions: the shared one for API agents on a cluster node, else this node's. */
  portFor(name: string): AgentVersionsPort | undefined {
    return this.isShared(name) ? this.shared : this.#localPort;
  }

  isShared(name: string): boolean {
    return this.shared !== undefined && this.#registry.get(name)?.origin.kind !== 'file';
  }

  /** A version just written through `port`: a cluster node keeps it as the newest, with its detail, for the hot path. */
  wrote(
    port: AgentVersionsPort,
    v: AgentVersion,
    definition: AgentDefinition,
    format: AgentFormat,
    source: string,
  ): AgentVersion {
    if (port !== this.shared) return v;
    const key = agentKey(v.agent);
    this.#latest.set(key, v);
    this.#written.set(key, (this.#written.get(key) ?? 0) + 1);
    this.#cacheDetail({ ...v, definition, format, source });
    return v;
  }

  /** One version through the port, parsed (a cluster node keeps it for the hot path). */
  async detail(port: AgentVersionsPort, name: string, version: number): Promise<AgentVersionDetail | undefined> {
    const d = await port.get(name, version);
    if (d && port === this.shared) this.#cacheDetail(d);
    return d;
  }

  /** Reads a shared version into the view, so that it answers synchronously from then on. */
  async fetch(name: string, version: number): Promise<void> {
    const d = await this.shared?.get(name, version);
    if (d) this.#cacheDetail(d);
    else {
      const newest = await this.shared?.latest(name);
      if (newest) this.#newestOnMiss.set(agentKey(name), newest.version);
    }
  }

  /**
   * The newest version number to name when one asked for is missing: this node's store, or on a
   * cluster node the newer of its live view and what the shared history said when the miss was read.
   */
  newestNumber(name: string): number | undefined {
    const live = this.latestSync(name)?.version;
    if (!this.isShared(name)) return live;
    const read = this.#newestOnMiss.get(agentKey(name));
    return live === undefined ? read : read === undefined ? live : Math.max(live, read);
  }

  /**
   * The version the live agent is: the newest whose content it has (a rollout may have recorded a
   * candidate after it), else the newest.
   */
  async liveVersion(live: DeployedAgent, port: AgentVersionsPort): Promise<AgentVersion | undefined> {
    const latest = await port.latest(live.definition.name);
    const hash = definitionHash(live.definition);
    if (!latest || latest.hash === hash) return latest;
    const page = await port.list(live.definition.name, { limit: 100 });
    return page.items.find((v) => v.hash === hash) ?? latest;
  }

  /** The newest version, synchronously: this node's store, or a cluster node's view of the shared one (the live agent's version). */
  latestSync(name: string): AgentVersion | undefined {
    if (!this.isShared(name)) return this.local?.latest(name);
    const known = this.#latest.get(agentKey(name));
    if (!known) void this.#refreshLatest(name);
    return known;
  }

  /** One version, synchronously; on a cluster node one not read here yet is undefined this time (and read for the next). */
  getSync(name: string, version: number): AgentVersionDetail | undefined {
    if (!this.isShared(name)) return this.local?.get(name, version);
    const at = `${agentKey(name)}\0${version}`;
    const known = this.#details.get(at);
    if (!known && !this.#reading.has(at)) {
      this.#reading.add(at);
      void this.fetch(name, version)
        .catch((e: unknown) => this.#onError(e))
        .finally(() => this.#reading.delete(at));
    }
    return known;
  }

  /** Reads a shared version into the view unless it is there already: undefined when there is nothing to wait for. Never rejects. */
  ready(name: string, version: number): Promise<void> | undefined {
    if (!this.isShared(name) || this.#details.has(`${agentKey(name)}\0${version}`)) return undefined;
    return this.fetch(name, version).catch((e: unknown) => this.#onError(e));
  }

  /** Reads `name`'s live version into the view again (another node changed it). */
  refresh(name: string): Promise<void> {
    return this.#refreshLatest(name);
  }

  /** An API agent was removed here: a single node's history joins the removed agents' (a cluster's is told by the deployer, for every node). */
  removedHere(name: string): void {
    if (!this.isShared(name)) this.local?.removed(name);
  }

  /**
   * A cluster node's start: the newest shared version of each API agent loaded here (for an agent
   * the cluster has none of: this node's earlier history, or a first one), and the versions `also`
   * names (its rollouts' two).
   */
  async fill(loaded: readonly AgentDefinition[], store: AgentStore, also: (name: string) => number[]): Promise<void> {
    const shared = this.shared;
    if (!shared) return;
    for (const def of loaded) {
      try {
        const live = this.#registry.get(def.name);
        const latest = live && (await this.liveVersion(live, shared));
        if (latest) this.#latest.set(agentKey(def.name), latest);
        else if (live) await this.#joinHistory(live, shared, store);
        for (const v of also(def.name)) await this.fetch(def.name, v);
      } catch (e) {
        this.#onError(e);
      }
    }
  }

  /**
   * An API agent the shared history has no version of, at a cluster node's start: the versions
   * this node kept of it before it joined (its SQLite) become the cluster's, numbers and authors
   * unchanged, unless another node's got there first. The live agent is then the shared version
   * with its content, or (no such version: a node with no history of it, or another content) a
   * new one.
   */
  async #joinHistory(live: DeployedAgent, shared: AgentVersionsPort, store: AgentStore): Promise<void> {
    const name = live.definition.name;
    const source = store.source(name) ?? '';
    const earlier = this.local?.stored(name) ?? [];
    // Another node's history got there first: this node's agent is the cluster's (the directory brings it), as at any later start.
    const lost = earlier.length > 0 && !(await shared.seed(name, earlier));
    const found = await this.liveVersion(live, shared);
    if (found && (lost || found.hash === definitionHash(live.definition))) this.#latest.set(agentKey(name), found);
    else
      this.wrote(
        shared,
        await shared.append({ definition: live.definition, format: live.format, source, how: 'api', origin: 'api' }),
        live.definition,
        live.format,
        source,
      );
  }

  #cacheDetail(d: AgentVersionDetail): void {
    const at = `${agentKey(d.agent)}\0${d.version}`;
    if (this.#details.size >= SHARED_DETAILS && !this.#details.has(at))
      this.#details.delete(this.#details.keys().next().value!);
    this.#details.set(at, d);
  }

  async #refreshLatest(name: string): Promise<void> {
    const key = agentKey(name);
    // A read under way may have started before the change that asks for this one: it is read again once done.
    if (this.#reading.has(key)) return void this.#readAgain.add(key);
    this.#reading.add(key);
    const written = this.#written.get(key);
    try {
      // The version whose content the live agent has (another node's rollout may have recorded a newer candidate).
      const live = this.#registry.get(name);
      const latest = live?.origin.kind === 'api' && this.shared ? await this.liveVersion(live, this.shared) : undefined;
      if (latest && this.#written.get(key) === written) this.#latest.set(key, latest);
    } catch (e) {
      this.#onError(e);
    } finally {
      this.#reading.delete(key);
      if (this.#readAgain.delete(key)) void this.#refreshLatest(name);
    }
  }
}

/** An API agent as deployed now: its revision one more than `existing`'s, its first deploy time kept. */
export function apiAgent(
  def: AgentDefinition,
  format: AgentFormat,
  existing: DeployedAgent | undefined,
): DeployedAgent {
  const now = new Date().toISOString();
  return {
    definition: def,
    format,
    origin: { kind: 'api' },
    revision: (existing?.revision ?? 0) + 1,
    deployed_at: existing?.deployed_at ?? now,
    updated_at: now,
  };
}

/** A version of a live API agent, as the executor runs it (the live agent's revision and deploy time, the version's own date). */
export function asDeployed(live: DeployedAgent, v: AgentVersionDetail): DeployedAgent {
  return {
    definition: v.definition,
    format: v.format,
    origin: { kind: 'api' },
    revision: live.revision,
    deployed_at: live.deployed_at,
    updated_at: v.deployed_at,
  };
}
