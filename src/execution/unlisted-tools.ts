import { listsNoTools, unlistedToolsOf, type AgentDefinition } from '../agents/index.js';

/**
 * The tools a Claude Code agent that lists none runs with (`[agents.claude] unlisted_tools`,
 * docs/agent-format.md, ADR 0121). Applied to the definition when an execution is checked, so the
 * offer to the model, the allowlist of every call and a worker's host tools all read one list.
 */
export class UnlistedTools {
  #tools: readonly string[] = [];
  /** Each such definition with its tools filled in, made once per definition. */
  #applied = new WeakMap<AgentDefinition, AgentDefinition>();

  /** The granted tools (empty: such agents get none). */
  get tools(): readonly string[] {
    return this.#tools;
  }

  set tools(tools: readonly string[]) {
    this.#tools = Object.freeze([...tools]);
    this.#applied = new WeakMap();
  }

  /** `def` as it runs: the granted tools (less its disallowedTools) when it lists none; else `def` itself. */
  apply(def: AgentDefinition): AgentDefinition {
    if (this.#tools.length === 0 || !listsNoTools(def)) return def;
    let d = this.#applied.get(def);
    if (d === undefined) {
      d = { ...def, tools: Object.freeze([...unlistedToolsOf(def, this.#tools)]) as AgentDefinition['tools'] };
      this.#applied.set(def, d);
    }
    return d;
  }
}
