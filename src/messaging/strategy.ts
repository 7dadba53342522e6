import type { DirectoryEntry } from './directory.js';

/** How busy each agent is: messages being handled plus messages waiting for it. */
export interface LoadView {
  load(agent: string): number;
}

/** Picks one provider for a message that goes to one (request, query, propose). Pluggable. */
export interface RoutingStrategy {
  readonly name: string;
  /** `candidates` is never empty. */
  select(capability: string, candidates: readonly DirectoryEntry[], load: LoadView): DirectoryEntry;
}

/** Each provider in turn, per capability. */
export class RoundRobin implements RoutingStrategy {
  readonly name = 'round-robin';
  readonly #next = new Map<string, number>();

  select(capability: string, candidates: readonly DirectoryEntry[]): DirectoryEntry {
    const i = this.#next.get(capability) ?? 0;
    this.#next.set(capability, i + 1 >= 1_000_000_000 ? 0 : i + 1);
    return candidates[i % candidates.length]!;
  }
}

/** The provider with the least work in hand; ties go round-robin so equal agents share the load. */
export class LeastLoaded implements RoutingStrategy {
  readonly name = 'least-loaded';
  readonly #tie = new RoundRobin();

  select(capability: string, candidates: readonly DirectoryEntry[], load: LoadView): DirectoryEntry {
    let best = Infinity;
    let count = 0;
    for (const c of candidates) {
      const l = load.load(c.agent);
      if (l < best) {
        best = l;
        count = 1;
      } else if (l === best) count++;
    }
    if (count === 1) return candidates.find((c) => load.load(c.agent) === best)!;
    const tied = candidates.filter((c) => load.load(c.agent) === best);
    return this.#tie.select(capability, tied);
  }
}

export function createStrategy(name: 'round-robin' | 'least-loaded'): RoutingStrategy {
  switch (name) {
    case 'round-robin':
      return new RoundRobin();
    case 'least-loaded':
      return new LeastLoaded();
  }
}
