/**
 * The pipeline's run stage: a job run under its agent's deadline, in this thread (a local agent's
 * tool loop, a WebAssembly agent's sandbox, a remote agent's call) or in a pooled task. The
 * deadline is our own timer in every mode, so that a 'timeout' raised inside the task (an LLM
 * provider's per-call timeout) is not mistaken for limits.timeout; in pooled modes the pool's own
 * deadline is only a backstop.
 */
import { CaxtonError } from '../../shared/errors.js';
import type { ToolResult } from '../../tools/index.js';
import type { Deadline } from '../deadline.js';
import type { LlmSetup } from '../deps.js';
import type { Isolation } from '../isolation/index.js';
import { runAgent, type ExecutionDeps } from '../run-agent.js';
import type { RunContext } from '../runs/index.js';
import type { TaskPayload } from '../task.js';
import type { AgentResponse, ExecutionEvent, ExecutionJob } from '../types.js';
import type { WasmAgents } from '../wasm-agent.js';

/** How much later than the agent's deadline the isolation pool's own deadline fires (a backstop). */
const POOL_DEADLINE_SLACK_MS = 1_000;

/** The parts of a TaskPayload that are the same object from run to run (RunOptions.sticky). */
const STICKY_PAYLOAD: readonly (keyof TaskPayload)[] = ['setup'];

export interface RunOptions {
  signal?: AbortSignal | undefined;
  onEvent?: ((e: ExecutionEvent) => void) | undefined;
}

/** What runs a job in this thread: one of the three. */
export interface InThread {
  deps: ExecutionDeps;
  remote?:
    | {
        run(
          job: ExecutionJob,
          opts: { signal: AbortSignal; emit?: (e: ExecutionEvent) => void },
        ): Promise<AgentResponse>;
      }
    | undefined;
  wasm: WasmAgents;
}

/** Built only when needed: an Error captures a stack trace, which costs more than a fast execution. */
function timeoutError(job: ExecutionJob): CaxtonError {
  const timeoutMs = job.definition.limits.timeout_ms;
  return new CaxtonError(
    'timeout',
    `agent "${job.definition.name}" did not finish within ${timeoutMs} ms (limits.timeout)`,
    { timeout_ms: timeoutMs },
  );
}

export async function runInThread(
  job: ExecutionJob,
  deadline: Deadline,
  opts: RunOptions,
  run: RunContext | undefined,
  by: InThread,
): Promise<AgentResponse> {
  const { signal } = deadline;
  try {
    if (by.remote !== undefined)
      return await by.remote.run(job, { signal, ...(opts.onEvent && { emit: opts.onEvent }) });
    if (job.definition.wasm !== undefined)
      return await by.wasm.run(job, by.deps.tools, {
        signal,
        ...(opts.onEvent && { emit: opts.onEvent }),
        message: job.request.message,
        ...(run && { record: run.record }),
      });
    return await runAgent(job, by.deps, {
      signal,
      ...(opts.onEvent && { emit: opts.onEvent }),
      ...(run && { record: run.record }),
    });
  } catch (e) {
    if (deadline.timedOut()) throw timeoutError(job);
    if (deadline.cancelled())
      throw signal.reason instanceof CaxtonError && signal.reason.code === 'cancelled'
        ? signal.reason
        : new CaxtonError('cancelled', 'the client went away; the execution was cancelled');
    throw e;
  }
}

export async function runPooled(
  job: ExecutionJob,
  deadline: Deadline,
  opts: RunOptions,
  pool: Isolation,
  setup: () => Promise<LlmSetup>,
  onCall: (method: string, args: unknown) => Promise<ToolResult | null>,
): Promise<AgentResponse> {
  const payload: TaskPayload = { job, setup: await setup() };
  try {
    return (await pool.run(payload, {
      timeoutMs: job.definition.limits.timeout_ms + POOL_DEADLINE_SLACK_MS,
      signal: deadline.signal,
      ...(opts.onEvent && { onEvent: (e: unknown) => opts.onEvent!(e as ExecutionEvent) }),
      onCall,
      // The same setup object while no script changed: it crosses to each member once.
      sticky: STICKY_PAYLOAD,
    })) as AgentResponse;
  } catch (e) {
    if (deadline.timedOut()) throw timeoutError(job);
    throw e;
  }
}
