import { EventEmitter } from 'node:events';
import { agentKey, type AgentDefinition, type AgentFormat, type Capability } from './definition.js';
import { relayedFrom, whileRelayed } from '../shared/relayed.js';
import { AgentNamePool } from './name-pool.js';

/** Where an agent comes from: a file, the API, or (`[a2a_agents.NAME]`) a remote A2A agent at `url`. */
export type AgentOrigin = { kind: 'file'; path: string } | { kind: 'api' } | { kind: 'a2a'; url: string };

/** One origin object for every API agent (a file agent's names its own path). */
const API_ORIGIN: AgentOrigin = Object.freeze({ kind: 'api' });

export interface DeployedAgent {
  readonly definition: AgentDefinition;
  readonly format: AgentFormat;
  readonly origin: AgentOrigin;
  /** Increments on every update. */
  readonly revision: number;
  readonly deployed_at: string;
  readonly updated_at: string;
}

/** A change; `traceparent` is the W3C trace context of the request that made it, when one did. */
export type RegistryEvent =
  | { type: 'deployed'; agent: DeployedAgent; traceparent?: string }
  | { type: 'updated'; agent: DeployedAgent; previous: DeployedAgent; traceparent?: string }
  | { type: 'removed'; agent: DeployedAgent };

export interface ListOptions {
  capability?: string;
  /** Only agents whose names pass (a reader's agent scope: src/auth/scope-read.ts), applied before paging so pages stay full. */
  visible?: ((name: string) => boolean) | undefined;
  limit?: number;
  offset?: number;
}

/** Where an agent named `name` is, or would go, in `list` sorted by name (binary search; names are unique). */
function position(list: readonly DeployedAgent[], name: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.definition.name < name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Takes `agent` out of `list` (sorted by name), wherever it is. */
function without(list: DeployedAgent[], agent: DeployedAgent): void {
  const at = position(list, agent.definition.name);
  if (list[at] === agent) list.splice(at, 1);
  else {
    const i = list.indexOf(agent);
    if (i >= 0) list.splice(i, 1);
  }
}

/**
 * The in-memory view of every deployed agent, indexed by (case-insensitive) name and by
 * capability so capability lookups cost O(providers), not O(agents). Later components (the
 * router, the directory facilitator) subscribe to its `change` events.
 */
export class AgentRegistry extends EventEmitter<{ change: [RegistryEvent] }> {
  readonly #byKey = new Map<string, DeployedAgent>();
  /**
   * Providers of each capability, sorted by name: a lookup is a slice, and an agent costs one array
   * slot per capability (a Map per capability held a hash table entry per provider, ~3× the bytes).
   */
  readonly #byCapability = new Map<Capability, DeployedAgent[]>();
  /** Every agent, kept sorted by name on each change so `list()` never sorts the whole registry. */
  readonly #sorted: DeployedAgent[] = [];
  /** One copy of each capability and tool name (and tool list) across the agents held. */
  readonly #names = new AgentNamePool();

  get size(): number {
    return this.#byKey.size;
  }

  #refResolver:
    | ((name: string, version: number | undefined, conversation: string | undefined) => DeployedAgent | undefined)
    | undefined;

  /** How `NAME@VERSION`, and a name within a conversation, resolve (the agent service: versions and rollouts). */
  setRefResolver(
    fn: (name: string, version: number | undefined, conversation: string | undefined) => DeployedAgent | undefined,
  ): void {
    this.#refResolver = fn;
  }

  #refPreparer: ((name: string, conversation: string) => Promise<void> | undefined) | undefined;

  /** What must be read before a name resolves within a conversation (a cluster node: the conversation's shared pin). */
  setRefPreparer(fn: (name: string, conversation: string) => Promise<void> | undefined): void {
    this.#refPreparer = fn;
  }

  #versionPreparer: ((name: string, version: number) => Promise<void> | undefined) | undefined;

  /** What must be read before `NAME@VERSION` resolves (a cluster node: a version of the shared history not read here yet). */
  setVersionPreparer(fn: (name: string, version: number) => Promise<void> | undefined): void {
    this.#versionPreparer = fn;
  }

  /**
   * Reads what `resolve(ref, conversation)` will need, when that takes I/O: undefined (nothing to
   * wait for, the common case) or a promise to await first. Never rejects.
   */
  prepare(ref: string, conversation: string | undefined): Promise<void> | undefined {
    const at = ref.lastIndexOf('@');
    if (at > 0) {
      const version = Number(ref.slice(at + 1));
      return Number.isSafeInteger(version) && version > 0
        ? this.#versionPreparer?.(ref.slice(0, at), version)
        : undefined;
    }
    if (conversation === undefined || !this.#refPreparer) return undefined;
    return this.#refPreparer(ref, conversation);
  }

  /**
   * An agent by name, or one of its versions by `NAME@VERSION` (agent names have no "@"); within a
   * conversation, the version that conversation runs on. A version that cannot be addressed throws
   * a CaxtonError saying which can.
   */
  resolve(ref: string, conversation?: string): DeployedAgent | undefined {
    const at = ref.lastIndexOf('@');
    // Through the service when it is set: a canary's share of requests goes to its candidate.
    if (at <= 0) return this.#refResolver ? this.#refResolver(ref, undefined, conversation) : this.get(ref);
    const version = Number(ref.slice(at + 1));
    if (!Number.isSafeInteger(version) || version < 1 || !this.#refResolver) return undefined;
    return this.#refResolver(ref.slice(0, at), version, undefined);
  }

  /** As `resolve`, with a version that cannot be addressed read as absent (the caller's later check says why). */
  find(ref: string): DeployedAgent | undefined {
    try {
      return this.resolve(ref);
    } catch {
      return undefined;
    }
  }

  get(name: string): DeployedAgent | undefined {
    return this.#byKey.get(agentKey(name));
  }

  has(name: string): boolean {
    return this.#byKey.has(agentKey(name));
  }

  /** Agents sorted by name, optionally only those providing `capability`, or only the `visible` ones. */
  list(opts: ListOptions = {}): { agents: DeployedAgent[]; total: number } {
    let all: DeployedAgent[];
    if (opts.capability !== undefined) {
      const providers = this.#byCapability.get(opts.capability as Capability);
      if (!providers) return { agents: [], total: 0 };
      all = providers;
    } else all = this.#sorted;
    const visible = opts.visible;
    if (visible) all = all.filter((a) => visible(a.definition.name as string));
    const offset = opts.offset ?? 0;
    return { agents: all.slice(offset, offset + (opts.limit ?? all.length)), total: all.length };
  }

  /** Every capability with the names of the agents providing it. */
  capabilities(): { capability: Capability; agents: string[] }[] {
    return [...this.#byCapability.entries()]
      .map(([capability, m]) => ({
        capability,
        agents: m.map((a) => a.definition.name as string),
      }))
      .sort((a, b) => (a.capability < b.capability ? -1 : 1));
  }

  providersOf(capability: string): DeployedAgent[] {
    return [...(this.#byCapability.get(capability as Capability) ?? [])];
  }

  upsert(deployed: DeployedAgent, traceparent?: string): void {
    const agent =
      deployed.origin.kind === 'api' && deployed.origin !== API_ORIGIN ? { ...deployed, origin: API_ORIGIN } : deployed;
    const key = agentKey(agent.definition.name);
    const previous = this.#byKey.get(key);
    if (previous) this.#unindex(previous);
    this.#names.share(agent.definition);
    this.#byKey.set(key, agent);
    const name = agent.definition.name;
    this.#sorted.splice(position(this.#sorted, name), 0, agent);
    for (const c of agent.definition.capabilities) {
      const list = this.#byCapability.get(c);
      if (!list) this.#byCapability.set(c, [agent]);
      else list.splice(position(list, name), 0, agent);
    }
    const tp = traceparent !== undefined ? { traceparent } : {};
    const change = () =>
      this.emit('change', previous ? { type: 'updated', agent, previous, ...tp } : { type: 'deployed', agent, ...tp });
    // A change applied from another node keeps its relayed mark on the copy while it is told (a
    // spread does not copy the symbol), or this node would record that node's event a second time.
    const from = relayedFrom(deployed);
    if (from !== undefined && agent !== deployed) whileRelayed(agent, from, change);
    else change();
  }

  remove(name: string): DeployedAgent | undefined {
    const key = agentKey(name);
    const agent = this.#byKey.get(key);
    if (!agent) return undefined;
    this.#unindex(agent);
    this.#byKey.delete(key);
    this.emit('change', { type: 'removed', agent });
    return agent;
  }

  #unindex(agent: DeployedAgent): void {
    without(this.#sorted, agent);
    for (const c of agent.definition.capabilities) {
      const list = this.#byCapability.get(c);
      if (!list) continue;
      without(list, agent);
      if (list.length === 0) this.#byCapability.delete(c);
    }
    this.#names.release(agent.definition);
  }
}
