/**
 * Host tools: tools that must run in the server process (they use its state: the messaging bus,
 * memory, tool servers) whatever the agent's isolation mode. The executor keeps them in
 * `Executor.hostTools`; each job carries the specs of those its agent may call (`host_tools`).
 *
 *  - `context`: the execution runs in the server process and calls them directly.
 *  - `worker` / `process`: the task stands a proxy in for each; the proxy's `invoke` asks the
 *    server through the isolation's host call (`ctx.call('tool', { name, args })`), and the
 *    executor runs `hostTools.invoke()` with the execution's own allowlist, deadline and signal.
 *    The built-ins run in the task; each finished call is reported to the server
 *    (`ctx.call('tool_called', …)`), which records it in the tool audit as it records a call
 *    made in the server, so every mode audits a built-in call once.
 *
 * Imported by the task module: keep it free of server-only dependencies.
 */
import type { ToolSpec } from '../llm/types.js';
import { CaxtonError } from '../shared/errors.js';
import { ToolRegistry, type CalledTool } from '../tools/tool-registry.js';
import type { Tool, ToolResult } from '../tools/types.js';
import type { TaskContext } from './isolation/types.js';
import type { RunStep } from './runs/run-model.js';

/** The `method` of a host tool call over `TaskContext.call`. */
export const HOST_TOOL_METHOD = 'tool';

/** The `method` by which a task reports a finished call of a tool that ran in the task. */
export const TOOL_CALLED_METHOD = 'tool_called';

/**
 * The `method` by which a task reports a call a permission rule refused in its run (`{ name, args }`,
 * as a host tool call): the server judges it again by the job's rules and records the refusal in
 * the tool audit. Never a host tool call: the tool is not run.
 */
export const TOOL_REFUSED_METHOD = 'tool_refused';

/** The `method` by which a durable run's task hands its steps to the server's journal; answered once they are committed. */
export const RUN_STEPS_METHOD = 'run_steps';

/** The `args` of a `tool_called` report: the call as the task's registry heard of it, without its context. */
export type ReportedCall = Omit<CalledTool, 'ctx'>;

/** The `args` of a host tool call. */
export interface HostToolCall {
  name: string;
  args: Record<string, unknown>;
}

/**
 * The tools of one execution: the built-ins plus `host`; `hooks` hear of the calls the agent's
 * allowlist refuses and of those run by tools that do not record their own (the server's tool
 * audit records both). Built-in names are reserved (the executor's host registry refuses them),
 * and should one slip through, the built-in wins.
 */
export function executionTools(
  builtins: ToolRegistry,
  host: readonly Tool[],
  hooks: Partial<Pick<ToolRegistry, 'onRefused' | 'onCalled'>> = {},
): ToolRegistry {
  if (host.length === 0 && !hooks.onRefused && !hooks.onCalled) return builtins;
  const tools = new ToolRegistry();
  tools.onRefused = hooks.onRefused;
  tools.onCalled = hooks.onCalled;
  for (const t of builtins.list()) tools.register(t);
  for (const t of host) if (!tools.get(t.name)) tools.register(t);
  return tools;
}

/** What a task may record; a decision on an approval ('approval') is the server's alone. */
const STEP_KINDS = new Set(['context', 'model', 'tool_start', 'tool_end', 'approval_requested']);

/** A task's `run_steps` args: an array of steps (their kinds checked; the server trusts its own task's contents). */
export function parseRunSteps(args: unknown): RunStep[] {
  if (
    !Array.isArray(args) ||
    !args.every((s) => typeof s === 'object' && s !== null && STEP_KINDS.has((s as { kind?: unknown }).kind as string))
  )
    throw new CaxtonError('invalid_request', 'the task recorded run steps of an unknown shape');
  return args as RunStep[];
}

function isToolResult(v: unknown): v is ToolResult {
  if (typeof v !== 'object' || v === null) return false;
  const { content, is_error } = v as { content?: unknown; is_error?: unknown };
  return typeof content === 'string' && (is_error === undefined || typeof is_error === 'boolean');
}

/** Task side: a stand-in for the host tool `spec` that runs it in the server through `call`. */
export function hostToolProxy(spec: ToolSpec, call: TaskContext['call']): Tool {
  return {
    name: spec.name,
    description: spec.description,
    input_schema: spec.input_schema,
    // The server's registry runs the tool and records the call: the task must not report it again.
    audits: true,
    async invoke(args) {
      const result = await call(HOST_TOOL_METHOD, { name: spec.name, args } satisfies HostToolCall);
      if (!isToolResult(result)) throw new Error(`the server returned no valid result for host tool "${spec.name}"`);
      return result;
    },
  };
}

/** Server side: checks the `args` of a host tool call coming from a task. */
export function parseHostToolCall(args: unknown): HostToolCall {
  const { name, args: toolArgs } = (typeof args === 'object' && args !== null ? args : {}) as {
    name?: unknown;
    args?: unknown;
  };
  if (typeof name !== 'string' || name === '')
    throw new CaxtonError('invalid_request', 'a host tool call needs the tool name');
  if (typeof toolArgs !== 'object' || toolArgs === null || Array.isArray(toolArgs)) {
    throw new CaxtonError('invalid_request', `the arguments of host tool "${name}" must be an object`, { name });
  }
  return { name, args: toolArgs as Record<string, unknown> };
}

const OUTCOMES: ReadonlySet<unknown> = new Set<CalledTool['outcome']>(['ok', 'error', 'timeout']);

/** Server side: checks the `args` of a `tool_called` report coming from a task. */
export function parseReportedCall(args: unknown): ReportedCall {
  const r = (typeof args === 'object' && args !== null ? args : {}) as Partial<Record<keyof ReportedCall, unknown>>;
  if (typeof r.name !== 'string' || r.name === '')
    throw new CaxtonError('invalid_request', 'a tool call report needs the tool name');
  if (typeof r.args !== 'object' || r.args === null || Array.isArray(r.args))
    throw new CaxtonError('invalid_request', `the arguments in the report of tool "${r.name}" must be an object`);
  if (
    typeof r.started !== 'number' ||
    typeof r.duration_us !== 'number' ||
    !OUTCOMES.has(r.outcome) ||
    typeof r.result !== 'string'
  )
    throw new CaxtonError(
      'invalid_request',
      `the report of tool "${r.name}" needs started, duration_us, outcome (ok, error or timeout) and result`,
    );
  return {
    name: r.name,
    args: r.args as Record<string, unknown>,
    started: r.started,
    duration_us: r.duration_us,
    outcome: r.outcome as CalledTool['outcome'],
    result: r.result,
  };
}
