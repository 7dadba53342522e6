import type { AgentDefinition } from './definition.js';

/**
 * One copy of each value the deployed agents hold alike, counted by the agents holding it: a value
 * no agent holds any more is dropped, so names that come and go do not pile up.
 */
class CountedPool<T> {
  readonly #entries = new Map<string, { value: T; holders: number }>();

  /** The pool's copy of `value` (stored under `key`), taken by one more holder. */
  take(key: string, value: T): T {
    const e = this.#entries.get(key);
    if (e) {
      e.holders++;
      return e.value;
    }
    this.#entries.set(key, { value, holders: 1 });
    return value;
  }

  drop(key: string): void {
    const e = this.#entries.get(key);
    if (e && --e.holders === 0) this.#entries.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }
}

const listKey = (names: readonly string[]): string => names.join('\n');

/**
 * Capability and tool names, and the tool lists themselves, shared across the agents of a
 * registry: thousands of agents naming the same capabilities and tools hold one string per name,
 * and the agents with the same tools one frozen list, instead of a copy each from their parse.
 */
export class AgentNamePool {
  readonly #names = new CountedPool<string>();
  readonly #toolLists = new CountedPool<readonly string[]>();

  /** Points `def`'s names at the pool's copies; `release(def)` when the agent leaves the registry. */
  share(def: AgentDefinition): void {
    const caps = def.capabilities;
    for (let i = 0; i < caps.length; i++) caps[i] = this.#names.take(caps[i]!, caps[i]!) as (typeof caps)[number];
    const tools = def.tools;
    if (Object.isFrozen(tools)) {
      // Shared already (the same definition deployed again): its names are counted, not replaced.
      for (const t of tools) this.#names.take(t, t);
      this.#toolLists.take(listKey(tools), tools);
      return;
    }
    for (let i = 0; i < tools.length; i++) tools[i] = this.#names.take(tools[i]!, tools[i]!) as (typeof tools)[number];
    def.tools = this.#toolLists.take(listKey(tools), Object.freeze(tools)) as typeof def.tools;
  }

  release(def: AgentDefinition): void {
    for (const c of def.capabilities) this.#names.drop(c);
    for (const t of def.tools) this.#names.drop(t);
    this.#toolLists.drop(listKey(def.tools));
  }

  /** Distinct names held. */
  get size(): number {
    return this.#names.size;
  }
}
