/**
 * Durable runs: one agent execution as a state machine whose every step is committed before the
 * next begins, so that a crash, a restart or a redelivery resumes it instead of repeating what it
 * already did (docs/runs.md). This file holds the shapes and the one rule that turns recorded
 * steps into what a resumed run reuses; the adapters (SQLite here, PostgreSQL on a cluster)
 * implement `RunJournal`.
 */
import type { ToolCall, Usage } from '../../llm/types.js';
import { CaxtonError } from '../../shared/errors.js';
import type { AgentResponse, InvokeRequest } from '../types.js';

/** What started a run. A run of any origin is resumed; only `message` runs wait for their redelivery to resume. */
export const RUN_ORIGINS = ['invoke', 'background', 'message', 'openai', 'mcp', 'a2a'] as const;
export type RunOrigin = (typeof RUN_ORIGINS)[number];

export const RUN_STATUSES = ['running', 'awaiting_approval', 'completed', 'failed', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** A model reply as recorded: everything the loop reads of it, so a resumed run never asks the model again for it. */
export interface RecordedReply {
  content: string;
  tool_calls: ToolCall[];
  usage: Usage;
  finish_reason: string;
  provider: string;
  model: string;
  latency_ms: number;
}

/**
 * One committed step of a run, in the order they happened. `at` (ms since the epoch) is when the
 * step was handed to the journal, stamped by DurableRuns: the steps committed together share it
 * (a reply with its first call's start, a call's end with the next one's start). Steps recorded
 * before it was stamped have none.
 */
export type RunStep = RunStepBody & { at?: number };

type RunStepBody =
  /** What memory gave the first prompt (`{{memory_context}}`), so a resumed run renders the same prompt. */
  | { kind: 'context'; memory_context: string }
  | { kind: 'model'; turn: number; reply: RecordedReply }
  /** Committed before the tool starts: a run that finds a start without an end does not know the call's outcome. */
  | { kind: 'tool_start'; turn: number; id: string; name: string }
  | {
      kind: 'tool_end';
      turn: number;
      id: string;
      name: string;
      result: string;
      is_error: boolean;
      duration_ms: number;
      /** The call was found started and unfinished after an interruption and was not run again. */
      interrupted?: boolean;
      /** The call was refused, never run (not in the agent's tools, not granted, denied by a permission rule). */
      refused?: boolean;
      /** The workspace files the call created or changed, below the root (a workspace.bash command's). */
      files?: string[];
    }
  /** The call needs a person's approval (`[approvals]`, `[execution] require_approval`): the run waits. */
  | {
      kind: 'approval_requested';
      turn: number;
      id: string;
      name: string;
      arguments: Record<string, unknown>;
      at: number;
    }
  /** A person's decision on it (or the timeout's: `by` is "timeout"). */
  | {
      kind: 'approval';
      turn: number;
      id: string;
      decision: 'approved' | 'denied';
      by: string;
      at: number;
      reason?: string;
    }
  /** The run resumed after an interruption or a decision: the time since the step before it is the gap. */
  | { kind: 'resumed'; at: number };

/** A run as stored. */
export interface RunRecord {
  id: string;
  /**
   * What makes a second start of the same work the same run: `msg:MESSAGE:AGENT` for a message's
   * delivery to an agent, `idem:PRINCIPAL:AGENT:KEY` for a request with an Idempotency-Key.
   * Null: a run nothing can start twice.
   */
  key: string | null;
  /** The agent as the caller named it (NAME or NAME@VERSION). */
  agent: string;
  /** The version of the agent's definition the run started on (null: recorded before versions were). */
  version: string | null;
  origin: RunOrigin;
  status: RunStatus;
  principal: string | null;
  request: InvokeRequest;
  created_at: number;
  updated_at: number;
  /** How many times the run was resumed after an interruption (a crash, a restart, a redelivery). */
  resumes: number;
  error: { code: string; message: string } | null;
  response: AgentResponse | null;
  /** The node running it (a cluster), else null. */
  node: string | null;
}

/** A run just opened for `start`, as both journals answer it before anything of it is read back. */
export function newRunRecord(start: RunStart, request: InvokeRequest, now: number, node: string | null): RunRecord {
  return {
    id: start.id,
    key: start.key,
    agent: start.agent,
    version: start.version ?? null,
    origin: start.origin,
    status: 'running',
    principal: start.principal,
    request,
    created_at: now,
    updated_at: now,
    resumes: 0,
    error: null,
    response: null,
    node,
  };
}

/** A run with its steps, in order. */
export interface RunWithSteps {
  run: RunRecord;
  steps: RunStep[];
}

/** What a new run is opened with. */
export interface RunStart {
  id: string;
  key: string | null;
  agent: string;
  /** The version of the definition it starts on. */
  version?: string | null;
  origin: RunOrigin;
  principal: string | null;
  request: InvokeRequest;
  /**
   * Written with its first step rather than at once, and not at all when it records none: for a
   * run nobody reads by id before it acts (a message's, an invoke without a key).
   */
  lazy?: boolean;
  /**
   * A message's run on its delivery's first hand-out, no attempt before it: no run of its key can
   * exist yet. With `lazy`, a journal shared by nodes writes it lazily too, the key's uniqueness
   * checked when its row is written (before any step that must be on disk).
   */
  firstDelivery?: boolean;
}

/** A run opened for a start: `created` false when a run of the same key existed (its steps given). */
export interface OpenedRun extends RunWithSteps {
  created: boolean;
}

export interface RunQuery {
  agent?: string;
  status?: RunStatus;
  origin?: RunOrigin;
  principal?: string;
  limit: number;
  /** Runs created before this id (the previous page's last), newest first. */
  before?: string;
}

/** Which runs left running a resume takes (RunJournal.unfinished): at a start, or while this process runs. */
export type Takeover = 'left' | 'expired';

/** The port both adapters implement. Every write resolves once committed. */
export interface RunJournal {
  /** The run of `start.key` with its steps when one exists, else a new run (committed with the first step after it). */
  open(start: RunStart): Promise<OpenedRun>;
  /** Appends steps in order; resolves once they are committed (one commit, shared with other runs' steps). */
  append(id: string, steps: readonly RunStep[]): Promise<void>;
  /**
   * Marks a resumed run running again (counts the resume). `takeover`: the run was found by
   * `unfinished(limit, takeover)` and is taken only while it still is what that found (running,
   * left by an earlier process or its lease expired); without it, also a run waiting for a
   * decision or one that failed.
   */
  resumed(id: string, takeover?: Takeover): Promise<void>;
  finish(
    id: string,
    outcome:
      | { status: 'completed'; response: AgentResponse }
      | { status: 'failed' | 'cancelled'; error: { code: string; message: string } },
  ): Promise<void>;
  get(id: string): Promise<RunWithSteps | undefined>;
  list(q: RunQuery): Promise<RunRecord[]>;
  /**
   * Runs left running, oldest first: at a start (`left`), those of an earlier process of this node
   * and, on a cluster, those whose lease expired; while this process runs (`expired`), only those
   * whose lease expired, so that none of its own is taken again in a turn where it is between two
   * writes.
   */
  unfinished(limit: number, takeover?: Takeover): Promise<RunRecord[]>;
  /** Marks the run waiting for an approval: it holds nothing in memory until someone decides. */
  paused(id: string): Promise<void>;
  /**
   * The run stopped running in this process without an end (its resume failed before it ran): on
   * a cluster its lease is no longer renewed, so another node may take it over.
   */
  release?(id: string): void;
  /**
   * On a cluster: tells `listener` of each run this process runs that it no longer holds — another
   * node cancelled it, or took it over after this node's lease ran out — with the error to stop it with.
   */
  onLost?(listener: (id: string, reason: Error) => void): void;
  /** Commits what is queued. */
  close(): Promise<void> | void;
}

/**
 * Whether a lazy run (`RunStart.lazy`) may hold a step back until it records one that must be on
 * disk: its memory context, a model reply that calls no tool (a resume could do without them).
 */
function deferrableStep(s: RunStep): boolean {
  return s.kind === 'context' || (s.kind === 'model' && s.reply.tool_calls.length === 0);
}

/**
 * Lazy runs opened and not written yet (`RunStart.lazy`): what each one's row is made of (the
 * journal makes the row when it writes it), and the steps it held back until one must be on disk.
 * Both journals keep them alike.
 */
export class UnwrittenRuns<Row> {
  readonly #runs = new Map<string, { row: Row; held: RunStep[]; at: number }>();

  open(id: string, row: Row): void {
    this.#runs.set(id, { row, held: [], at: Date.now() });
  }

  /** The runs opened before `before` (epoch ms) and still unwritten whose row satisfies `which`. */
  openedBefore(before: number, which: (row: Row) => boolean): string[] {
    const ids: string[] = [];
    for (const [id, r] of this.#runs) if (r.at < before && which(r.row)) ids.push(id);
    return ids;
  }

  /** Holds `steps` back when run `id` is unwritten and none of them must be on disk yet; true when held. */
  hold(id: string, steps: readonly RunStep[]): boolean {
    const lazy = this.#runs.get(id);
    if (lazy === undefined || !steps.every(deferrableStep)) return false;
    lazy.held.push(...steps);
    return true;
  }

  /** The row of run `id` to write now (once), with the steps it held back; undefined once written. */
  take(id: string): { row: Row; held: RunStep[] } | undefined {
    const lazy = this.#runs.get(id);
    this.#runs.delete(id);
    return lazy;
  }

  /** Forgets run `id` (it ends with nothing to keep); true when it was unwritten. */
  drop(id: string): boolean {
    return this.#runs.delete(id);
  }
}

/** What a resumed run reuses, made from its steps by `replayOf`: plain data, so it crosses into a worker or process. */
export interface RunReplay {
  /** The memory context the run's first prompt was rendered with. */
  memory_context?: string;
  /** Recorded model replies by turn. */
  models: Record<number, RecordedReply>;
  /**
   * Tool calls by `TURN:ID`: a finished one's result; or, for one started and never finished,
   * `rerun` (an idempotent tool: run it again) or the interruption error the model is given.
   */
  tools: Record<string, ReplayedCall>;
  /** Calls whose approval was asked for, by `TURN:ID`, with the decision when one was made. */
  approvals?: Record<string, { decision?: 'approved' | 'denied'; reason?: string }>;
}

/** A call waiting for approval in a run's steps. */
export interface PendingApproval {
  turn: number;
  call_id: string;
  tool: string;
  arguments: Record<string, unknown>;
  requested_at: number;
}

/** Every approval a run asked for, with its decision, in the order asked. */
export interface ApprovalView extends PendingApproval {
  decision: 'approved' | 'denied' | null;
  decided_by: string | null;
  decided_at: number | null;
  reason: string | null;
}

export function approvalsOf(steps: readonly RunStep[]): ApprovalView[] {
  const out: ApprovalView[] = [];
  for (const s of steps) {
    if (s.kind === 'approval_requested')
      out.push({
        turn: s.turn,
        call_id: s.id,
        tool: s.name,
        arguments: s.arguments,
        requested_at: s.at,
        decision: null,
        decided_by: null,
        decided_at: null,
        reason: null,
      });
    else if (s.kind === 'approval') {
      const a = out.find((x) => x.turn === s.turn && x.call_id === s.id && x.decision === null);
      if (a) Object.assign(a, { decision: s.decision, decided_by: s.by, decided_at: s.at, reason: s.reason ?? null });
    }
  }
  return out;
}

export type ReplayedCall =
  | { state: 'done'; result: string; is_error: boolean; duration_ms: number; refused?: true }
  | { state: 'rerun' }
  | { state: 'interrupted' };

/** The key of a tool call in a replay: provider call ids need not be unique across turns. */
export function callKey(turn: number, id: string): string {
  return `${turn}:${id}`;
}

/**
 * What a start of a cancelled run is told (a redelivered message, a repeated key, a decision): an
 * operator stopped it, so it does not go on. The bus neither retries nor dead-letters it; the
 * sender is answered that it failed (src/messaging/bus-rules.ts, `reason`).
 */
export function cancelledRunError(id: string): CaxtonError {
  return new CaxtonError('cancelled', `run ${id} was cancelled: it does not go on`, {
    run_id: id,
    reason: 'run_cancelled',
  });
}

/** What the model is told about a call that started and never finished, and is not run again. */
export function interruptedResult(name: string): string {
  return `the call of "${name}" was interrupted (the server stopped while it ran) and its outcome is unknown: it may or may not have taken effect. It was not run again because "${name}" is not declared idempotent; check its effect before calling it again.`;
}

/**
 * The one rule of resumption: a recorded reply or result is reused; a call started and never
 * finished is run again only when its tool is idempotent (`isIdempotent`), otherwise the model
 * is told its outcome is unknown.
 */
export function replayOf(steps: readonly RunStep[], isIdempotent: (tool: string) => boolean): RunReplay {
  const models: Record<number, RecordedReply> = {};
  const tools: Record<string, ReplayedCall> = {};
  let memory: string | undefined;
  let approvals: RunReplay['approvals'];
  for (const s of steps) {
    if (s.kind === 'approval_requested') (approvals ??= {})[callKey(s.turn, s.id)] ??= {};
    else if (s.kind === 'approval') {
      const d: { decision: 'approved' | 'denied'; reason?: string } = { decision: s.decision };
      if (s.reason !== undefined) d.reason = s.reason;
      (approvals ??= {})[callKey(s.turn, s.id)] = d;
    } else if (s.kind === 'context') memory = s.memory_context;
    else if (s.kind === 'model') models[s.turn] = s.reply;
    else if (s.kind === 'tool_start') {
      const k = callKey(s.turn, s.id);
      if (tools[k]?.state !== 'done') tools[k] = isIdempotent(s.name) ? { state: 'rerun' } : { state: 'interrupted' };
    } else if (s.kind === 'tool_end')
      tools[callKey(s.turn, s.id)] = {
        state: 'done',
        result: s.result,
        is_error: s.is_error,
        duration_ms: s.duration_ms,
        ...(s.refused === true && { refused: true as const }),
      };
  }
  const replay: RunReplay = { models, tools };
  if (memory !== undefined) replay.memory_context = memory;
  if (approvals !== undefined) replay.approvals = approvals;
  return replay;
}

/** The key of a message's delivery to an agent: its redelivery resumes the same run. */
export function messageRunKey(messageId: string, agent: string): string {
  return `msg:${messageId}:${agent}`;
}

/** The key of a request carrying an Idempotency-Key: the same key from the same principal to the same agent is the same run. */
export function idempotencyRunKey(principal: string | undefined, agent: string, key: string): string {
  return `idem:${principal ?? 'anonymous'}:${agent}:${key}`;
}
