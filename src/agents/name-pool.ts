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

/** The settings tables agents often hold alike: a model, a memory scope, a rollout policy copied across a fleet. */
const TABLES = [
  'llm',
  'memory',
  'parameters',
  'limits',
  'conversation',
  'execution',
  'messaging',
  'metadata',
  'rollout',
] as const satisfies readonly (keyof AgentDefinition)[];

const tableKey = (table: string, v: unknown): string => `${table}\n${JSON.stringify(v)}`;

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/**
 * What the agents of a registry hold alike, one copy each: capability and tool names, the version
 * string, the tool lists, and the settings tables (`[llm]`, `[memory]`, …) equal in value. Thousands
 * of agents naming the same capabilities, tools and model hold one string per name and one frozen
 * table per distinct table, instead of a copy each from their parse. Shared tables are frozen (a
 * change would reach every agent holding them): an update deploys a new definition.
 */
export class AgentNamePool {
  readonly #names = new CountedPool<string>();
  readonly #toolLists = new CountedPool<readonly string[]>();
  readonly #tables = new CountedPool<object>();

  /** Points `def`'s names and tables at the pool's copies; `release(def)` when the agent leaves the registry. */
  share(def: AgentDefinition): void {
    def.version = this.#names.take(def.version, def.version);
    const target = def as unknown as Record<string, object | undefined>;
    for (const k of TABLES) {
      const v = target[k];
      if (v !== undefined) target[k] = this.#tables.take(tableKey(k, v), deepFreeze(v));
    }
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
    this.#names.drop(def.version);
    const target = def as unknown as Record<string, object | undefined>;
    for (const k of TABLES) if (target[k] !== undefined) this.#tables.drop(tableKey(k, target[k]));
    for (const c of def.capabilities) this.#names.drop(c);
    for (const t of def.tools) this.#names.drop(t);
    this.#toolLists.drop(listKey(def.tools));
  }

  /** Distinct names (capabilities, tools, versions) held. */
  get size(): number {
    return this.#names.size;
  }

  /** Distinct settings tables held. */
  get tables(): number {
    return this.#tables.size;
  }
}
