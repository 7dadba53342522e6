/**
 * The journal side of one execution's tool loop, shared by the model's (run-agent.ts) and a
 * WebAssembly agent's (wasm-agent.ts): which turns and calls a resumed run reuses, which calls
 * wait for a person, and when each step is committed. The loops keep their own turns and their
 * own tool invocation; this decides everything about the steps around them, in one place.
 *
 * Imported by the task module (worker and process isolation): keep it free of server-only dependencies.
 */
import type { ToolCall } from '../../llm/types.js';
import { CaxtonError } from '../../shared/errors.js';
import type { ToolContext, ToolRegistry } from '../../tools/index.js';
import type { ExecutionJob } from '../types.js';
import { awaitingApproval, deniedResult, needsApproval, permissionGate, type ApprovalRule } from './approval.js';
import { callKey, interruptedResult, type RecordedReply, type RunReplay, type RunStep } from './run-model.js';

/** A call's outcome as the loop hands it on, whether it ran or was settled from the journal. */
export interface CallOutcome {
  content: string;
  is_error: boolean;
  duration_ms: number;
  /** Refused, never run: see RefusalTally. */
  refused?: true;
  /** The workspace files the call created or changed, when its arguments do not say (ToolResult.files). */
  files?: string[];
}

/**
 * Whether every tool call of a run was refused, none run (`AgentResponse.all_tool_calls_refused`):
 * the one rule for both loops, a model's and a WebAssembly agent's, recorded or not. Refused: the
 * registry's refusal (`ToolResult.refused`: not in the agent's tools, not on this server, not
 * granted by caxton.toml) or a permission rule's deny (`RunRecorder.approval`), also when a resumed
 * run reads it from its journal. A call a person denied was decided, and an interrupted one may
 * have taken effect: neither is a refusal.
 */
export class RefusalTally {
  #calls = 0;
  #refused = 0;

  /** Counts one call of the run by its outcome. */
  count(outcome: { refused?: boolean | undefined }): void {
    this.#calls++;
    if (outcome.refused === true) this.#refused++;
  }

  /** At least one call, and every one refused. */
  get allRefused(): boolean {
    return this.#calls > 0 && this.#refused === this.#calls;
  }
}

export class RunRecorder {
  readonly #record: ((steps: RunStep[]) => Promise<void>) | undefined;
  readonly #replay: RunReplay | undefined;
  readonly #approvals: readonly ApprovalRule[] | undefined;
  readonly #tools: ToolRegistry;
  readonly #runId: string;
  /**
   * Steps waiting for their commit: a reply goes with the start of its first tool call, a call's
   * end with the next call's start, so a step costs one commit.
   */
  readonly #queued: RunStep[] = [];
  /** Commits nothing waited on yet (`commitBehind`): the next awaited commit waits for them too. */
  readonly #behind: Promise<void>[] = [];

  /**
   * The recorder of an execution, or undefined when it has nothing to do: no journal, nothing to
   * reuse and no approval rules (the loops then skip it, keeping a plain execution's path short).
   */
  static of(
    job: ExecutionJob,
    tools: ToolRegistry,
    record: ((steps: RunStep[]) => Promise<void>) | undefined,
  ): RunRecorder | undefined {
    return record === undefined &&
      job.replay === undefined &&
      (job.approvals === undefined || job.approvals.length === 0)
      ? undefined
      : new RunRecorder(job, tools, record);
  }

  /**
   * `record` commits the steps given, resolving once they are on disk (absent: the run is not
   * durable); `job.replay` holds what a resumed run reuses, `job.approvals` the rules of its calls.
   */
  constructor(job: ExecutionJob, tools: ToolRegistry, record: ((steps: RunStep[]) => Promise<void>) | undefined) {
    this.#record = record;
    this.#replay = job.replay;
    this.#approvals = job.approvals !== undefined && job.approvals.length > 0 ? job.approvals : undefined;
    this.#tools = tools;
    this.#runId = job.execution_id;
  }

  /** Whether steps are recorded (a durable run). */
  get recording(): boolean {
    return this.#record !== undefined;
  }

  /** A resumed run's recorded reply for `turn`: the turn is not asked again. */
  recorded(turn: number): RecordedReply | undefined {
    return this.#replay?.models[turn];
  }

  /** Queues a turn's reply (committed with the turn's first call's start, or at the end). */
  replied(turn: number, reply: RecordedReply): void {
    if (this.#record !== undefined) this.#queued.push({ kind: 'model', turn, reply });
  }

  /**
   * A call a resumed run does not run again: its recorded result, or, for one started and never
   * finished by a tool that is not idempotent, the error saying its outcome is unknown (recorded
   * as its end). Undefined: the call runs.
   */
  reused(turn: number, call: ToolCall): CallOutcome | undefined {
    const prior = this.#replay?.tools[callKey(turn, call.id)];
    if (prior === undefined || prior.state === 'rerun') return undefined;
    if (prior.state === 'done')
      return {
        content: prior.result,
        is_error: prior.is_error,
        duration_ms: prior.duration_ms,
        ...(prior.refused === true && { refused: true as const }),
      };
    return this.#endedUnrun(turn, call, interruptedResult(call.name), 'interrupted');
  }

  /** A call that ends without running (interrupted, denied, refused by a rule): its end recorded, its outcome an error. */
  #endedUnrun(turn: number, call: ToolCall, result: string, how?: 'interrupted' | 'refused'): CallOutcome {
    const outcome: CallOutcome = {
      content: result,
      is_error: true,
      duration_ms: 0,
      ...(how === 'refused' && { refused: true as const }),
    };
    this.#queueEnd(turn, call, outcome, how === 'interrupted');
    return outcome;
  }

  /** The `tool_end` step of a call, committed before the next turn. */
  #queueEnd(turn: number, call: ToolCall, outcome: CallOutcome, interrupted: boolean): void {
    this.#queued.push({
      kind: 'tool_end',
      turn,
      id: call.id,
      name: call.name,
      result: outcome.content,
      is_error: outcome.is_error,
      duration_ms: outcome.duration_ms,
      ...(interrupted && { interrupted: true }),
      ...(outcome.refused === true && { refused: true }),
      ...(outcome.files !== undefined && { files: outcome.files }),
    });
  }

  /**
   * Approval of a call: undefined when it needs none (synchronously, the common case) or was
   * approved; a denied call's outcome (recorded as its end). A call still waiting stops the run:
   * its request is committed (once) and the promise rejects with `awaiting_approval`, holding
   * nothing; a decision resumes the run from its steps.
   */
  approval(turn: number, call: ToolCall, ctx: () => ToolContext): Promise<CallOutcome | undefined> | undefined {
    if (this.#approvals === undefined) return undefined;
    if (this.#approvals.some((r) => r.permissions !== undefined)) return this.#permitted(turn, call, ctx);
    if (!needsApproval(this.#approvals, call.name, call.arguments)) return undefined;
    return this.#decided(turn, call);
  }

  /**
   * The permission rules first (deny refuses, ask waits), then the other approval rules. A call a
   * rule refuses never reaches its tool: the tool audit hears of it here, as `denied`.
   */
  async #permitted(turn: number, call: ToolCall, ctx: () => ToolContext): Promise<CallOutcome | undefined> {
    const gate = await permissionGate(this.#approvals!, call.name, call.arguments);
    if (gate !== undefined && gate !== 'ask') {
      try {
        this.#tools.onRefused?.(call.name, call.arguments, ctx(), gate.denied, 'denied');
      } catch {
        // auditing must never turn a refusal into a failure of the execution
      }
      return this.#endedUnrun(turn, call, gate.denied, 'refused');
    }
    if (gate !== 'ask' && !needsApproval(this.#approvals!, call.name, call.arguments)) return undefined;
    return this.#decided(turn, call);
  }

  /** A call that needs approval: as decided, or waiting. */
  #decided(turn: number, call: ToolCall): Promise<CallOutcome | undefined> | undefined {
    const decided = this.#replay?.approvals?.[callKey(turn, call.id)];
    if (decided?.decision === undefined) return this.#awaitApproval(turn, call, decided !== undefined);
    if (decided.decision === 'approved') return undefined;
    return Promise.resolve(this.#endedUnrun(turn, call, deniedResult(call.name, decided.reason)));
  }

  /** Without a journal nothing could wait, so the call is refused. */
  async #awaitApproval(turn: number, call: ToolCall, asked: boolean): Promise<never> {
    if (this.#record === undefined)
      throw new CaxtonError(
        'not_supported',
        `the call of "${call.name}" needs approval, and runs are not recorded on this server ([execution] durable_runs = false)`,
        { tool: call.name },
      );
    if (!asked)
      this.#queued.push({
        kind: 'approval_requested',
        turn,
        id: call.id,
        name: call.name,
        arguments: call.arguments,
        at: Date.now(),
      });
    await this.commit();
    throw awaitingApproval(this.#runId, { tool: call.name, call_id: call.id, arguments: call.arguments });
  }

  /**
   * Before a call runs: its start is committed. A call that may run twice needs none: found
   * unfinished, it would run again anyway. Undefined: nothing to wait for.
   */
  starting(turn: number, call: ToolCall): Promise<void> | undefined {
    if (this.#record === undefined || this.#tools.get(call.name)?.idempotent === true) return undefined;
    this.#queued.push({ kind: 'tool_start', turn, id: call.id, name: call.name });
    return this.commit();
  }

  /** After a call was invoked (run, or refused by the registry): its end is queued (committed before the next turn). */
  ended(turn: number, call: ToolCall, outcome: CallOutcome): void {
    if (this.#record !== undefined) this.#queueEnd(turn, call, outcome, false);
  }

  /** Commits what is queued, with the commits still behind; undefined when there is nothing to wait for. */
  commit(): Promise<void> | undefined {
    const p = this.#record !== undefined && this.#queued.length > 0 ? this.#record(this.#queued.splice(0)) : undefined;
    if (this.#behind.length === 0) return p;
    const behind = this.#behind.splice(0);
    if (p !== undefined) behind.push(p);
    return Promise.all(behind).then(() => undefined);
  }

  /**
   * Commits a turn's results while the loop asks the model (or calls the module) again, not
   * before: a reply or a result lost to a crash in between is re-asked or found interrupted just
   * as it would be were the crash a moment earlier, and commits land in order, so a later step is
   * never on disk without it. What must precede an effect — a call's start, a request for
   * approval, the last reply before the answer — is awaited (`commit`), and with it these.
   */
  commitBehind(): void {
    const p = this.#record !== undefined && this.#queued.length > 0 ? this.#record(this.#queued.splice(0)) : undefined;
    if (p === undefined) return;
    p.catch(() => undefined);
    this.#behind.push(p);
  }
}
