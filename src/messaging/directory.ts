import { EventEmitter } from 'node:events';
import {
  agentKey,
  type AgentDefinition,
  type AgentRegistry,
  type DeployedAgent,
  type RegistryEvent,
} from '../agents/index.js';
import { agentVisible, type Principal } from '../auth/index.js';
import type { Protocol } from './performatives.js';

/** What the directory facilitator knows about one agent. */
export interface DirectoryEntry {
  readonly agent: string;
  readonly description: string;
  readonly capabilities: readonly string[];
  /** Empty: takes part in every protocol. */
  readonly protocols: readonly Protocol[];
  /** Empty: any ontology. */
  readonly ontologies: readonly string[];
  /** Empty: any content language. */
  readonly languages: readonly string[];
  readonly max_concurrency: number | undefined;
  readonly definition: AgentDefinition;
}

export interface DirectoryQuery {
  capability?: string;
  protocol?: string;
  ontology?: string;
  language?: string;
}

export type DirectoryEvent =
  | { type: 'registered'; entry: DirectoryEntry }
  | { type: 'updated'; entry: DirectoryEntry; previous: DirectoryEntry }
  | { type: 'deregistered'; entry: DirectoryEntry };

function entryOf(a: DeployedAgent): DirectoryEntry {
  const d = a.definition;
  return {
    agent: d.name,
    description: d.description,
    capabilities: d.capabilities,
    protocols: d.messaging.protocols,
    ontologies: d.messaging.ontologies,
    languages: d.messaging.languages,
    max_concurrency: d.messaging.max_concurrency,
    definition: d,
  };
}

/** Whether an entry accepts a message with these protocol, ontology and language parameters. */
export function accepts(
  e: DirectoryEntry,
  q: { protocol?: string | undefined; ontology?: string | undefined; language?: string | undefined },
): boolean {
  if (q.protocol !== undefined && e.protocols.length > 0 && !e.protocols.includes(q.protocol as Protocol)) return false;
  if (q.ontology !== undefined && e.ontologies.length > 0 && !e.ontologies.includes(q.ontology)) return false;
  if (q.language !== undefined && e.languages.length > 0 && !e.languages.includes(q.language)) return false;
  return true;
}

/**
 * The directory facilitator: which agents provide which capabilities and which protocols,
 * ontologies and languages they accept. It follows the agent registry, so deploys, updates and
 * removals are visible at once; `change` events let others (subscribers over SSE) follow it too.
 * Provider lists are kept as ready arrays so routing a message allocates nothing.
 */
export class Directory extends EventEmitter<{ change: [DirectoryEvent] }> {
  readonly #entries = new Map<string, DirectoryEntry>();
  readonly #byCapability = new Map<string, DirectoryEntry[]>();
  readonly #onChange: (e: RegistryEvent) => void;

  constructor(readonly registry: AgentRegistry) {
    super();
    // Every GET /directory/events follower is one `change` listener (removed when its stream
    // closes), so the count follows the number of open connections, not a leak: Node's default
    // warning at 11 listeners would fire on an ordinary dashboard fleet.
    this.setMaxListeners(0);
    for (const a of registry.list().agents) this.#add(entryOf(a));
    this.#onChange = (e) => {
      if (e.type === 'removed') {
        const old = this.#remove(agentKey(e.agent.definition.name));
        if (old) this.emit('change', { type: 'deregistered', entry: old });
        return;
      }
      const previous = this.#remove(agentKey(e.agent.definition.name));
      const entry = entryOf(e.agent);
      this.#add(entry);
      this.emit('change', previous ? { type: 'updated', entry, previous } : { type: 'registered', entry });
    };
    registry.on('change', this.#onChange);
  }

  close(): void {
    this.registry.off('change', this.#onChange);
  }

  /**
   * An agent by name, or one of its kept versions as NAME@VERSION (src/agents/rollouts/version-resolver.ts).
   * A version's entry is named as addressed,
   * so the executor runs that version and its replies come from "NAME@VERSION".
   */
  get(agent: string): DirectoryEntry | undefined {
    const e = this.#entries.get(agentKey(agent));
    if (e || !agent.includes('@')) return e;
    const version = this.registry.find(agent);
    return version && { ...entryOf(version), agent };
  }

  /** Providers of a capability, sorted by name; the same array until the next change (do not mutate). */
  providers(capability: string): readonly DirectoryEntry[] {
    return this.#byCapability.get(capability) ?? [];
  }

  /** Entries matching `q`, sorted by name; with a `reader`, only the agents in its scope (src/auth/scope-read.ts). */
  find(q: DirectoryQuery = {}, reader?: Pick<Principal, 'scope'>): DirectoryEntry[] {
    const pool =
      q.capability !== undefined
        ? this.providers(q.capability)
        : [...this.#entries.values()].sort((a, b) => (a.agent < b.agent ? -1 : 1));
    return pool.filter((e) => accepts(e, q) && agentVisible(reader, e.agent));
  }

  /**
   * Calls `onChange` with each later change about an agent in `reader`'s scope; returns the
   * function that stops it. An update never changes an agent's name, so its scope stays the same.
   */
  follow(reader: Pick<Principal, 'scope'> | undefined, onChange: (e: DirectoryEvent) => void): () => void {
    const listener = (e: DirectoryEvent): void => {
      if (agentVisible(reader, e.entry.agent)) onChange(e);
    };
    this.on('change', listener);
    return () => this.off('change', listener);
  }

  capabilities(): { capability: string; agents: string[] }[] {
    return [...this.#byCapability.entries()]
      .map(([capability, es]) => ({ capability, agents: es.map((e) => e.agent) }))
      .sort((a, b) => (a.capability < b.capability ? -1 : 1));
  }

  #add(e: DirectoryEntry): void {
    this.#entries.set(agentKey(e.agent), e);
    for (const c of e.capabilities) {
      const list = [...(this.#byCapability.get(c) ?? []), e].sort((a, b) => (a.agent < b.agent ? -1 : 1));
      this.#byCapability.set(c, list);
    }
  }

  #remove(key: string): DirectoryEntry | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    this.#entries.delete(key);
    for (const c of e.capabilities) {
      const list = (this.#byCapability.get(c) ?? []).filter((x) => x !== e);
      if (list.length === 0) this.#byCapability.delete(c);
      else this.#byCapability.set(c, list);
    }
    return e;
  }
}
