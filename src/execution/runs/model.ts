/**
 * Durable runs: one agent execution as a state machine whose every step is committed before the
 * next begins, so that a crash, a restart or a redelivery resumes it instead of repeating what it
 * already did (docs/runs.md). This file holds the shapes and the one rule that turns recorded
 * steps into what a resumed run reuses; the adapters (SQLite here, PostgreSQL on a cluster)
 * implement `RunJournal`.
 */
import type { ToolCall, Usage } from '../../llm/types.js';
import type { AgentResponse, InvokeRequest } from '../types.js';

/** What started a run. A run of any origin is resumed; only `message` runs wait for their redelivery to resume. */
export const RUN_ORIGINS = ['invoke', 'background', 'message', 'openai', 'mcp'] as const;
export type RunOrigin = (typeof RUN_ORIGINS)[number];

export const RUN_STATUSES = ['running', 'completed', 'failed', 'cancelled'] as const;
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

/** One committed step of a run, in the order they happened. */
export type RunStep =
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
    };

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
  origin: RunOrigin;
  principal: string | null;
  request: InvokeRequest;
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

/** The port both adapters implement. Every write resolves once committed. */
export interface RunJournal {
  /** The run of `start.key` with its steps when one exists, else a new run (committed with the first step after it). */
  open(start: RunStart): Promise<OpenedRun>;
  /** Appends steps in order; resolves once they are committed (one commit, shared with other runs' steps). */
  append(id: string, steps: readonly RunStep[]): Promise<void>;
  /** Marks a resumed run running again (counts the resume). */
  resumed(id: string): Promise<void>;
  finish(
    id: string,
    outcome:
      | { status: 'completed'; response: AgentResponse }
      | { status: 'failed' | 'cancelled'; error: { code: string; message: string } },
  ): Promise<void>;
  get(id: string): Promise<RunWithSteps | undefined>;
  list(q: RunQuery): Promise<RunRecord[]>;
  /** Runs left running by an earlier process of this node (on a cluster: whose lease expired), oldest first. */
  unfinished(limit: number): Promise<RunRecord[]>;
  /**
   * The run stopped running in this process without an end (its resume failed before it ran): on
   * a cluster its lease is no longer renewed, so another node may take it over.
   */
  release?(id: string): void;
  /** Commits what is queued. */
  close(): Promise<void> | void;
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
}

export type ReplayedCall =
  | { state: 'done'; result: string; is_error: boolean; duration_ms: number }
  | { state: 'rerun' }
  | { state: 'interrupted' };

/** The key of a tool call in a replay: provider call ids need not be unique across turns. */
export function callKey(turn: number, id: string): string {
  return `${turn}:${id}`;
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
  for (const s of steps) {
    if (s.kind === 'context') memory = s.memory_context;
    else if (s.kind === 'model') models[s.turn] = s.reply;
    else if (s.kind === 'tool_start') {
      const k = callKey(s.turn, s.id);
      if (tools[k]?.state !== 'done') tools[k] = isIdempotent(s.name) ? { state: 'rerun' } : { state: 'interrupted' };
    } else
      tools[callKey(s.turn, s.id)] = {
        state: 'done',
        result: s.result,
        is_error: s.is_error,
        duration_ms: s.duration_ms,
      };
  }
  return memory === undefined ? { models, tools } : { memory_context: memory, models, tools };
}

/** The key of a message's delivery to an agent: its redelivery resumes the same run. */
export function messageRunKey(messageId: string, agent: string): string {
  return `msg:${messageId}:${agent}`;
}

/** The key of a request carrying an Idempotency-Key: the same key from the same principal to the same agent is the same run. */
export function idempotencyRunKey(principal: string | undefined, agent: string, key: string): string {
  return `idem:${principal ?? 'anonymous'}:${agent}:${key}`;
}
