/**
 * The task module run by `worker` and `process` isolation (see isolation/index.ts): one agent
 * execution per call, many calls at once in one worker thread or process (ADR 0134). Provider
 * clients and tools are built per setup and cached between jobs (they hold no per-request state);
 * each call keeps the ones it started with. Host tools
 * (job.host_tools) are proxies built per job that run the tool in the server (host-tools.ts).
 */
import { secretValues } from '../config/redact.js';
import { registerSecrets } from '../shared/secrets.js';
import type { TaskContext } from './isolation/index.js';
import { buildDeps, type LlmSetup } from './deps.js';
import {
  executionTools,
  HOST_TOOL_METHOD,
  hostToolProxy,
  RUN_STEPS_METHOD,
  TOOL_CALLED_METHOD,
  TOOL_REFUSED_METHOD,
  type ReportedCall,
} from './host-tools.js';
import { runAgent, type ExecutionDeps } from './run-agent.js';
import type { RunStep } from './runs/run-model.js';
import type { ExecutionEvent, ExecutionJob } from './types.js';

export interface TaskPayload {
  job: ExecutionJob;
  setup: LlmSetup;
}

let cached: { setup: LlmSetup; key: string; deps: ExecutionDeps } | undefined;

export async function run(payload: unknown, ctx: TaskContext): Promise<unknown> {
  const { job, setup } = payload as TaskPayload;
  // The setup is sticky (RunOptions.sticky): the same object here until the server's changes.
  if (cached?.setup !== setup) {
    const key = JSON.stringify(setup);
    if (cached?.key !== key) {
      // This thread or process has its own module instances: the provider errors raised here are
      // scrubbed by its own copy of the scrubber (ADR 0017), before the model or the server sees them.
      registerSecrets(secretValues(setup));
      cached = { setup, key, deps: buildDeps(setup) };
    } else cached = { ...cached, setup };
  }
  const { deps } = cached;
  // Host tools run in the server: each is a proxy here that asks the server through ctx.call.
  const host = (job.host_tools ?? []).map((spec) => hostToolProxy(spec, (method, args) => ctx.call(method, args)));
  // A call the allowlist refuses is sent on to the server too, whose host registry refuses it
  // again and records it in the tool audit (a call a permission rule refused, to be judged again
  // and recorded, never run); a built-in's finished call is reported for the same
  // audit (the host tools' proxies audit nothing: the server records those). No answer is needed.
  const tools = executionTools(deps.tools, host, {
    onRefused: (name, args, _ctx, _reason, outcome) =>
      void ctx
        .call(outcome === 'denied' ? TOOL_REFUSED_METHOD : HOST_TOOL_METHOD, { name, args })
        .catch(() => undefined),
    onCalled: ({ ctx: _ctx, ...call }) =>
      void ctx.call(TOOL_CALLED_METHOD, call satisfies ReportedCall).catch(() => undefined),
  });
  return runAgent(job, tools === deps.tools ? deps : { ...deps, tools }, {
    signal: ctx.signal,
    emit: (e: ExecutionEvent) => ctx.emit(e),
    // A durable run's steps are committed by the server: each answer comes once they are on disk.
    ...(job.durable === true && {
      record: (steps: RunStep[]) => ctx.call(RUN_STEPS_METHOD, steps).then(() => undefined),
    }),
  });
}
