import { CaxtonError } from '../shared/errors.js';
import { scrubSecrets } from '../shared/secrets.js';
import type { ToolSpec } from '../llm/types.js';
import { resultOutcome, type Tool, type ToolContext, type ToolResult } from './types.js';
import type { RegistryCall } from '../audit/index.js';

/**
 * Whether an agent's `tools` list allows `name`: an exact name, `SERVER.*`, or the bare server
 * name `SERVER`, which grants the same as `SERVER.*` (what people write, and what the docs show).
 */
export function allowsTool(allowed: readonly string[], name: string): boolean {
  for (const a of allowed) {
    if (a === name) return true;
    if (a.endsWith('.*') && name.startsWith(a.slice(0, -1))) return true;
    if (!a.includes('.') && !a.includes('*') && name.startsWith(`${a}.`)) return true;
  }
  return false;
}

const allows = allowsTool;

/** One finished call, as `ToolRegistry.onCalled` hears of it (and the tool audit records it, src/audit/tool-calls.ts). */
export type CalledTool = RegistryCall<ToolContext>;

/**
 * All tools the server offers. An agent sees only the tools its `tools` list allows (exact names,
 * `SERVER.*` or a bare `SERVER` for every tool of a server); anything else it asks for is refused, never run.
 */
export class ToolRegistry {
  readonly #tools = new Map<string, Tool>();
  /**
   * Told of every call the allowlist refuses (the tool audit records them: a model probing for
   * tools it was not given is worth seeing), and of a call a permission rule refused in the run
   * before it reached a tool (`denied`). Set at start by the tool audit (auditRegistryCalls, src/audit/tool-calls.ts).
   */
  onRefused:
    | ((
        name: string,
        args: Record<string, unknown>,
        ctx: ToolContext,
        reason: string,
        outcome?: 'not_allowed' | 'denied',
      ) => void)
    | undefined;
  /**
   * Told of every call run by a tool that does not record its own (`Tool.audits`): built-ins,
   * memory tools, send_message. Here, not in each tool, so a new tool is never missing from the
   * audit. Set with `onRefused`.
   */
  onCalled: ((call: CalledTool) => void) | undefined;
  /** Names `register` refuses, with what holds them. */
  readonly #reserved = new Map<string, string>();
  /**
   * The specs answered for each frozen tool list (the registry's agents share one list per
   * distinct set of tools), so an execution does not copy, sort and map every tool again.
   * Replaced whenever a tool comes or goes.
   */
  #specs = new WeakMap<readonly string[], readonly ToolSpec[]>();
  #generation = 0;

  /** Changes whenever a tool comes or goes (what was built from `list()` is then out of date). */
  get generation(): number {
    return this.#generation;
  }

  register(tool: Tool): void {
    const holder = this.#reserved.get(tool.name);
    if (holder !== undefined)
      throw new CaxtonError('conflict', `"${tool.name}" is the name of a ${holder} and cannot be registered here`, {
        name: tool.name,
      });
    if (this.#tools.has(tool.name))
      throw new CaxtonError('conflict', `a tool named "${tool.name}" is already registered`);
    this.#tools.set(tool.name, tool);
    this.#specs = new WeakMap();
    this.#generation++;
  }

  /**
   * Keeps `names` free from now on: `register` refuses them ('conflict'). Throws 'conflict' if one
   * is registered already. `holder` names what owns them, for the message ("built-in tool").
   */
  reserve(names: Iterable<string>, holder: string): void {
    const list = [...names];
    const taken = list.filter((n) => this.#tools.has(n));
    if (taken.length > 0)
      throw new CaxtonError(
        'conflict',
        `${taken.map((n) => `"${n}"`).join(', ')} cannot be registered here: reserved for a ${holder}`,
        { names: taken },
      );
    for (const n of list) this.#reserved.set(n, holder);
  }

  /** Whether `name` is kept free here for a tool that lives elsewhere (`reserve`: the executor's built-ins). */
  isReserved(name: string): boolean {
    return this.#reserved.has(name);
  }

  unregister(name: string): boolean {
    this.#specs = new WeakMap();
    this.#generation++;
    return this.#tools.delete(name);
  }

  get(name: string): Tool | undefined {
    return this.#tools.get(name);
  }

  list(): Tool[] {
    return [...this.#tools.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** The tools an agent may call, as specs for the model. */
  specsFor(allowed: readonly string[]): readonly ToolSpec[] {
    const known = this.#specs.get(allowed);
    if (known) return known;
    const specs = Object.freeze(
      this.list()
        .filter((t) => allows(allowed, t.name))
        .map((t) => Object.freeze({ name: t.name, description: t.description, input_schema: t.input_schema })),
    );
    // A list that can still change is answered afresh each time.
    if (Object.isFrozen(allowed)) this.#specs.set(allowed, specs);
    return specs;
  }

  /**
   * Runs a tool for an agent. Refusals and failures come back as error results for the model,
   * so one bad call never ends the execution; only cancellation propagates.
   */
  async invoke(
    allowed: readonly string[],
    name: string,
    args: Record<string, unknown>,
    ctx: ToolContext,
  ): Promise<ToolResult> {
    if (!allows(allowed, name)) {
      const content = `tool "${name}" is not allowed for agent "${ctx.agent}"; allowed tools: ${allowed.join(', ') || '(none)'}`;
      try {
        this.onRefused?.(name, args, ctx, content);
      } catch {
        // auditing must never turn a refusal into a failure of the execution
      }
      return { content, is_error: true, refused: true };
    }
    const tool = this.#tools.get(name);
    if (!tool) return { content: `tool "${name}" is not available on this server`, is_error: true, refused: true };
    const remaining = ctx.deadline - Date.now();
    if (remaining <= 0)
      return { content: `tool "${name}" was not run: the request deadline has passed`, is_error: true };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<ToolResult>((resolve) => {
      timer = setTimeout(() => {
        resolve({ content: `tool "${name}" timed out after ${remaining} ms`, is_error: true, timed_out: true });
      }, remaining);
    });
    const started = Date.now();
    const t0 = performance.now();
    const heard = (r: ToolResult, cancelled = false): ToolResult => {
      if (this.onCalled && tool.audits !== true) {
        try {
          this.onCalled({
            name,
            args,
            ctx,
            started,
            duration_us: Math.round((performance.now() - t0) * 1000),
            outcome: cancelled ? 'timeout' : resultOutcome(r),
            result: r.content,
          });
        } catch {
          // auditing must never turn a call into a failure of the execution
        }
      }
      return r;
    };
    try {
      // Tool output is outside text: scrubbed of the configured secrets before the model, the
      // response or a store sees it (ADR 0017).
      const r = await Promise.race([tool.invoke(args, ctx), timeout]);
      const content = scrubSecrets(r.content);
      return heard(content === r.content ? r : { ...r, content });
    } catch (e) {
      if (ctx.signal.aborted) {
        heard({ content: 'cancelled: the execution was cancelled or timed out', is_error: true }, true);
        throw e;
      }
      return heard({
        content: scrubSecrets(`tool "${name}" failed: ${e instanceof Error ? e.message : String(e)}`),
        is_error: true,
      });
    } finally {
      clearTimeout(timer);
    }
  }
}
