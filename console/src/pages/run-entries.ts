/**
 * A durable run's steps (GET /api/v1/runs/ID) turned into what the run page lists: model turns,
 * tool calls with their arguments, results and approvals, and the marks a resume left. Pure (no
 * DOM), so it is tested without a browser (test/console/console-helpers.test.ts), whose Node
 * resolution wants the imports' .js names.
 */
import { when } from '../format.js';
import type { RUN_ORIGINS, RunStatus } from '../vocabulary.js';

interface Usage {
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
}

/**
 * One step as GET /api/v1/runs/ID gives it: a copy of the server's RunStep
 * (src/execution/runs/run-model.ts), which the console cannot import (its types reach into Node's);
 * test/console/console-helpers.test.ts fails to compile when the two differ. `at`: when the step
 * was committed (ms since the epoch), shared by the steps committed together; absent on steps an
 * older server recorded.
 */
export type Step = StepBody & { at?: number };

export type ModelStep = Extract<Step, { kind: 'model' }>;
export type ToolEnd = Extract<Step, { kind: 'tool_end' }>;

type StepBody =
  | { kind: 'context'; memory_context: string }
  | {
      kind: 'model';
      turn: number;
      reply: {
        content: string;
        tool_calls: { id: string; name: string; arguments: Record<string, unknown> }[];
        usage: Usage;
        finish_reason: string;
        provider: string;
        model: string;
        latency_ms: number;
      };
    }
  | { kind: 'tool_start'; turn: number; id: string; name: string }
  | {
      kind: 'tool_end';
      turn: number;
      id: string;
      name: string;
      result: string;
      is_error: boolean;
      duration_ms: number;
      interrupted?: boolean;
    }
  | {
      kind: 'approval_requested';
      turn: number;
      id: string;
      name: string;
      arguments: Record<string, unknown>;
      at: number;
    }
  | {
      kind: 'approval';
      turn: number;
      id: string;
      decision: 'approved' | 'denied';
      by: string;
      at: number;
      reason?: string;
    }
  | { kind: 'resumed'; at: number };

export interface Approval {
  turn: number;
  call_id: string;
  tool: string;
  arguments: Record<string, unknown>;
  requested_at: string;
  decision: 'approved' | 'denied' | null;
  decided_by: string | null;
  decided_at: string | null;
  reason: string | null;
}

/** GET /api/v1/runs/ID. */
/** A run as GET /api/v1/runs lists it. */
export interface RunSummary {
  id: string;
  agent: string;
  version: string | null;
  origin: (typeof RUN_ORIGINS)[number];
  status: RunStatus;
  principal: string | null;
  conversation_id: string | null;
  message_id: string | null;
  created_at: string;
  updated_at: string;
  resumes: number;
  running_here: boolean;
  error: { code: string; message: string } | null;
}

/** A run as GET /api/v1/runs/{id} shows it: with its request, steps, approvals and answer. */
export interface DurableRun extends RunSummary {
  request: string;
  steps: Step[];
  approvals: Approval[];
  response: { content: string } | null;
}

/** One tool call as its steps tell it. */
export interface CallView {
  turn: number;
  id: string;
  name: string;
  arguments: Record<string, unknown> | undefined;
  starts: number;
  end?: ToolEnd;
  approval?: Approval;
}

/**
 * A message the model was sent in a turn, as the page reconstructs it: the run's request (the
 * first turn), or the result of a call of the turn before. The server does not record the
 * prompts themselves.
 */
export type SentMessage =
  | { role: 'user'; content: string }
  | { role: 'tool'; name: string; call_id: string; content: string; is_error: boolean };

/** What a model turn was sent, reconstructed. `memory`: the first prompt was given a memory context. */
export interface Sent {
  first: boolean;
  memory: boolean;
  messages: SentMessage[];
  /** Calls of the turn before whose result the steps do not hold (a client's call, answered by the caller). */
  unrecorded: string[];
}

/** What the steps list shows, in the order the steps were committed; `key` names it for the timeline's links. */
export type Entry =
  | { kind: 'context'; key: string; text: string }
  | { kind: 'model'; key: string; step: ModelStep; sent: Sent }
  | { kind: 'call'; key: string; call: CallView }
  | { kind: 'resumed'; key: string; why: string };

/** The key of a call's entry (its steps, its approval) and of its spans on the timeline. */
export const callEntryKey = (turn: number, id: string): string => `call-${turn}-${id}`;

/** The key of the `n`th (from 1) resume's entry, and of its gap on the timeline. */
export const resumeEntryKey = (n: number): string => `resume-${n}`;

/** The keys of model turns in step order: a turn recorded twice (it cannot be, but old rows may) keeps both apart. */
export function modelKeys(): (turn: number) => string {
  const seen = new Map<number, number>();
  return (turn) => {
    const n = (seen.get(turn) ?? 0) + 1;
    seen.set(turn, n);
    return n === 1 ? `model-${turn}` : `model-${turn}-${n}`;
  };
}

/** A gap's length in words. */
export function gapText(ms: number): string {
  return ms < 1_000
    ? `${Math.round(ms)} ms`
    : ms < 120_000
      ? `${(ms / 1000).toFixed(1)} s`
      : `${Math.round(ms / 60_000)} min`;
}

/**
 * The entries of a run's steps. Each resume is a step of its own (`resumed`), marked with the gap
 * since the step before it; a resume that followed a decision on an approval is told by the
 * decision's mark. Steps an older server recorded have no `resumed` step: there a resume is marked
 * only where it changed what the steps hold (a decision, a call found unfinished and not run
 * again, an idempotent call started a second time), and `unlocated` counts the others, so the page
 * can say they happened without guessing where.
 */
export function entriesOf(
  run: Pick<DurableRun, 'steps' | 'approvals' | 'resumes'> & { request?: string; created_at?: string },
): {
  entries: Entry[];
  unlocated: number;
} {
  const entries: Entry[] = [];
  const calls = new Map<string, CallView>();
  const args = new Map<string, Record<string, unknown>>();
  const modelKey = modelKeys();
  let marks = 0;
  let resumes = 0;
  let memory = false;
  let firstTurn = true;
  /** When the last step before the current one was committed; at first, when the run started. */
  let lastAt: number | undefined = run.created_at === undefined ? undefined : Date.parse(run.created_at);
  let prev: Step | undefined;
  /** A `resumed` step came since the last model turn: a mark names what that resume found, not the resume again. */
  let resumedHere = false;
  const callOf = (turn: number, id: string, name: string): CallView => {
    const k = callEntryKey(turn, id);
    let c = calls.get(k);
    if (!c) {
      const approval = run.approvals.find((a) => a.turn === turn && a.call_id === id);
      c = { turn, id, name, arguments: args.get(k), starts: 0, ...(approval && { approval }) };
      calls.set(k, c);
      entries.push({ kind: 'call', key: k, call: c });
    }
    return c;
  };
  const sentTo = (turn: number): Sent => {
    const first = firstTurn;
    firstTurn = false;
    const messages: SentMessage[] = [];
    const unrecorded: string[] = [];
    if (first) messages.push({ role: 'user', content: run.request ?? '' });
    else
      for (const c of calls.values()) {
        if (c.turn !== turn - 1) continue;
        if (c.end)
          messages.push({ role: 'tool', name: c.name, call_id: c.id, content: c.end.result, is_error: c.end.is_error });
        else unrecorded.push(c.name);
      }
    return { first, memory: first && memory, messages, unrecorded };
  };
  for (const s of run.steps) {
    const before = lastAt;
    const after = prev;
    prev = s;
    if (s.at !== undefined) lastAt = s.at;
    if (s.kind === 'context') {
      memory = true;
      entries.push({ kind: 'context', key: 'context', text: s.memory_context });
    } else if (s.kind === 'resumed') {
      resumes++;
      resumedHere = true;
      // After a decision the run resumes at once: the decision's mark says so.
      if (after?.kind === 'approval') continue;
      const gap =
        before === undefined || Number.isNaN(before)
          ? ''
          : `, ${gapText(s.at - before)} after ${after === undefined ? 'it started' : 'its last recorded step'}`;
      entries.push({
        kind: 'resumed',
        key: resumeEntryKey(resumes),
        why: `Resumed after an interruption${gap}, ${when(s.at)}: it went on from its last recorded step (a finished call is not run again; the model is asked again only for a reply that was not recorded).`,
      });
    } else if (s.kind === 'model') {
      resumedHere = false;
      for (const c of s.reply.tool_calls) args.set(callEntryKey(s.turn, c.id), c.arguments);
      entries.push({ kind: 'model', key: modelKey(s.turn), step: s, sent: sentTo(s.turn) });
    } else if (s.kind === 'approval_requested') callOf(s.turn, s.id, s.name);
    else if (s.kind === 'approval') {
      marks++;
      // The run stopped at the request and went on from the decision: the mark goes between them,
      // and the call (which ran, or was refused, after it) below the mark.
      const c = calls.get(callEntryKey(s.turn, s.id));
      const at = c ? entries.findIndex((e) => e.kind === 'call' && e.call === c) : -1;
      if (at >= 0) entries.splice(at, 1);
      const asked = c?.approval ? `from ${when(c.approval.requested_at)} ` : '';
      entries.push({
        kind: 'resumed',
        key: `decision-${s.turn}-${s.id}`,
        why: `Waited for approval of ${c?.name ?? s.id} ${asked}and resumed when ${s.by} ${s.decision} it, ${when(s.at)}.`,
      });
      if (c) entries.push({ kind: 'call', key: callEntryKey(c.turn, c.id), call: c });
    } else if (s.kind === 'tool_start') {
      const c = callOf(s.turn, s.id, s.name);
      c.starts++;
      if (c.starts > 1) {
        marks++;
        entries.push({
          kind: 'resumed',
          key: `rerun-${s.turn}-${s.id}-${c.starts}`,
          why: `${resumedHere ? 'The' : 'Resumed after an interruption: the'} call of ${s.name} had started and not finished, and runs again (the tool is idempotent).`,
        });
      }
    } else {
      const c = callOf(s.turn, s.id, s.name);
      c.end = s;
      if (s.interrupted === true) {
        marks++;
        entries.push({
          kind: 'resumed',
          key: `interrupted-${s.turn}-${s.id}`,
          why: `${resumedHere ? 'The' : 'Resumed after an interruption: the'} call of ${s.name} above was running when the server stopped. Its outcome is unknown, and it was not run again.`,
        });
      }
    }
  }
  // A run recorded with its resumes has each of them placed; an older one only where its marks are.
  return { entries, unlocated: Math.max(0, run.resumes - (resumes > 0 ? resumes : marks)) };
}
