/**
 * The run stage's relay of host calls from the task of a `worker`/`process` execution
 * (src/execution/host-tools.ts): runs a host tool with the allowlist, deadline and signal of the
 * execution as known here (never as the task says), records a built-in's call the task reports in
 * the tool audit through the same hook as a call made here (`hostTools.onCalled`), judges a refusal
 * the task reports, and commits a durable run's steps.
 */
import {
  endWithError,
  giveAttributes,
  spanName,
  SpanStatusCode,
  startSpan,
  traceparentOf,
  withSpan,
  type Tracer,
} from '../../observability/trace-context.js';
import { CaxtonError } from '../../shared/errors.js';
import { allowsTool, type ToolRegistry, type ToolResult } from '../../tools/index.js';
import {
  HOST_TOOL_METHOD,
  parseHostToolCall,
  parseReportedCall,
  parseRunSteps,
  RUN_STEPS_METHOD,
  TOOL_CALLED_METHOD,
  TOOL_REFUSED_METHOD,
} from '../host-tools.js';
import { toolContext } from '../run-agent.js';
import { ruleRefusal } from '../runs/approval.js';
import type { RunContext } from '../runs/index.js';
import type { ExecutionJob } from '../types.js';

export class HostCallRelay {
  constructor(
    /** The built-in tools (what a task may report a call of). */
    private readonly builtins: ToolRegistry,
    private readonly hostTools: ToolRegistry,
    /** Spans of host tool calls (the task's own spans are not recorded: no tracer there). */
    private readonly tracer: Tracer | undefined,
  ) {}

  async relay(
    job: ExecutionJob,
    signal: AbortSignal,
    method: string,
    args: unknown,
    run: RunContext | undefined,
  ): Promise<ToolResult | null> {
    if (method === RUN_STEPS_METHOD) {
      // Committed under this execution's own run, whatever the task says.
      if (run === undefined)
        throw new CaxtonError('invalid_request', 'the task recorded steps of a run that is not durable');
      await run.record(parseRunSteps(args));
      return null;
    }
    if (method === TOOL_CALLED_METHOD) {
      const call = parseReportedCall(args);
      const tool = this.builtins.get(call.name);
      // Only what the task may have run is recorded: a built-in that records nothing itself,
      // allowed to this agent, attributed to this execution (its context is known here).
      if (tool === undefined || tool.audits === true || !allowsTool(job.definition.tools as string[], call.name))
        throw new CaxtonError('invalid_request', `the task reported a call of "${call.name}", which it cannot run`, {
          name: call.name,
        });
      this.hostTools.onCalled?.({ ...call, ctx: toolContext(job, signal) });
      return null;
    }
    if (method === TOOL_REFUSED_METHOD) {
      const call = parseHostToolCall(args);
      const reason = await ruleRefusal(job.approvals ?? [], call.name, call.args);
      this.hostTools.onRefused?.(call.name, call.args, toolContext(job, signal), reason, 'denied');
      return null;
    }
    if (method !== HOST_TOOL_METHOD)
      throw new CaxtonError('not_supported', `the execution task called the unknown host method "${method}"`, {
        method,
      });
    return this.#hostTool(job, signal, args);
  }

  async #hostTool(job: ExecutionJob, signal: AbortSignal, args: unknown): Promise<ToolResult> {
    const call = parseHostToolCall(args);
    const ctx = toolContext(job, signal);
    if (!this.tracer) return this.hostTools.invoke(job.definition.tools as string[], call.name, call.args, ctx);
    const span = startSpan(this.tracer, spanName('tool.call', call.name), job.request.traceparent);
    if (span.isRecording()) {
      giveAttributes(span, { 'caxton.agent': job.definition.name, 'caxton.tool': call.name });
      ctx.traceparent = traceparentOf(span);
    }
    try {
      const r = await withSpan(span, () =>
        this.hostTools.invoke(job.definition.tools as string[], call.name, call.args, ctx),
      );
      if (r.is_error) span.setStatus({ code: SpanStatusCode.ERROR, message: r.content.slice(0, 200) });
      span.end();
      return r;
    } catch (e) {
      endWithError(span, e);
      throw e;
    }
  }
}
