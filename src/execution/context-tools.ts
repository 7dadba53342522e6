/**
 * The tool registries of context-mode executions (server side, beside host-tools.ts): the
 * built-ins and the host tools an agent may call, with the tool audit's hooks, built once per host
 * tool list and kept until a tool or a hook changes — a registry per request cost a Map, a sort
 * and the tool specs again on every invoke. A shadow run's registry answers every call with a
 * refusal instead.
 */
import type { ToolSpec } from '../llm/index.js';
import { ToolRegistry, type Tool } from '../tools/index.js';
import { executionTools } from './host-tools.js';
import type { ExecutionDeps } from './run-agent.js';

/** What a shadow run's tool calls get instead of running (they may have side effects). */
export const SHADOW_TOOL_REFUSAL =
  'not run: this is a shadow execution (a copy of a live request for a new version), where tool calls are refused because they may have side effects; answer without it';

interface Kept {
  tools: ToolRegistry;
  /** The executor's deps with `tools`, made once with them. */
  deps: ExecutionDeps;
  generation: number;
  onRefused: ToolRegistry['onRefused'];
  onCalled: ToolRegistry['onCalled'];
}

export class ContextTools {
  readonly #bySpecs = new WeakMap<readonly ToolSpec[], Kept>();

  constructor(
    /** The executor's deps, whose `tools` are the built-ins. */
    private readonly deps: ExecutionDeps,
    private readonly hostTools: ToolRegistry,
  ) {}

  /** The deps a context-mode execution runs with: its tools the built-ins and the host tools of `hostSpecs`. */
  depsFor(hostSpecs: readonly ToolSpec[]): ExecutionDeps {
    const builtins = this.deps.tools;
    // Read at each execution: the tool audit sets them once it exists.
    const { onRefused, onCalled } = this.hostTools;
    const known = this.#bySpecs.get(hostSpecs);
    if (
      known &&
      known.generation === builtins.generation &&
      known.onRefused === onRefused &&
      known.onCalled === onCalled
    )
      return known.deps;
    const tools = executionTools(builtins, this.hostToolsOf(hostSpecs), { onRefused, onCalled });
    const deps = tools === builtins ? this.deps : { ...this.deps, tools };
    // The agents with the same tools share one frozen list of specs: only such a list is a key.
    if (Object.isFrozen(hostSpecs))
      this.#bySpecs.set(hostSpecs, { tools, deps, generation: builtins.generation, onRefused, onCalled });
    return deps;
  }

  /** The deps of a shadow run: the same tools, each refused with SHADOW_TOOL_REFUSAL. */
  shadowDepsFor(hostSpecs: readonly ToolSpec[]): ExecutionDeps {
    return { ...this.deps, tools: shadowTools(this.deps.tools, this.hostToolsOf(hostSpecs)) };
  }

  hostToolsOf(specs: readonly ToolSpec[]): Tool[] {
    return specs.map((s) => this.hostTools.get(s.name)).filter((t): t is Tool => t !== undefined);
  }
}

/** The same tools as the model would see, each answering with SHADOW_TOOL_REFUSAL instead of running. */
function shadowTools(builtins: ToolRegistry, host: readonly Tool[]): ToolRegistry {
  const tools = new ToolRegistry();
  for (const t of [...builtins.list(), ...host]) {
    if (tools.get(t.name)) continue;
    tools.register({
      name: t.name,
      description: t.description,
      input_schema: t.input_schema,
      invoke: () => Promise.resolve({ content: SHADOW_TOOL_REFUSAL, is_error: true }),
    });
  }
  return tools;
}
