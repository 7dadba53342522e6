/**
 * A durable run's steps (GET /api/v1/runs/ID) turned into what the run page lists: model turns,
 * tool calls with their arguments, results and approvals, and the marks a resume left. Pure (no
 * DOM), so it is tested without a browser (test/console/console-helpers.test.ts), whose Node
 * resolution wants the imports' .js names.
 */
import { when } from '../format.js';
import type { RunStatus } from '../vocabulary.js';

interface Usage {
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
}

export type Step =
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
    };

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
export interface DurableRun {
  id: string;
  agent: string;
  origin: string;
  status: RunStatus;
  principal: string | null;
  conversation_id: string | null;
  message_id: string | null;
  created_at: string;
  updated_at: string;
  resumes: number;
  running_here: boolean;
  error: { code: string; message: string } | null;
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
  end?: Extract<Step, { kind: 'tool_end' }>;
  approval?: Approval;
}

/** What the steps list shows, in the order the steps were committed. */
export type Entry =
  | { kind: 'context'; text: string }
  | { kind: 'model'; step: Extract<Step, { kind: 'model' }> }
  | { kind: 'call'; call: CallView }
  | { kind: 'resumed'; why: string };

/**
 * The entries of a run's steps. A resume leaves a mark only where it changed what the steps hold:
 * a decision on an approval, a call found unfinished and not run again, an idempotent call started
 * a second time. `unlocated` counts the run's other resumes (an interruption between two steps
 * leaves the steps as they were), so the page can say they happened without guessing where.
 */
export function entriesOf(run: Pick<DurableRun, 'steps' | 'approvals' | 'resumes'>): {
  entries: Entry[];
  unlocated: number;
} {
  const entries: Entry[] = [];
  const calls = new Map<string, CallView>();
  const args = new Map<string, Record<string, unknown>>();
  let located = 0;
  const callOf = (turn: number, id: string, name: string): CallView => {
    const k = `${turn}:${id}`;
    let c = calls.get(k);
    if (!c) {
      const approval = run.approvals.find((a) => a.turn === turn && a.call_id === id);
      c = { turn, id, name, arguments: args.get(k), starts: 0, ...(approval && { approval }) };
      calls.set(k, c);
      entries.push({ kind: 'call', call: c });
    }
    return c;
  };
  for (const s of run.steps) {
    if (s.kind === 'context') entries.push({ kind: 'context', text: s.memory_context });
    else if (s.kind === 'model') {
      for (const c of s.reply.tool_calls) args.set(`${s.turn}:${c.id}`, c.arguments);
      entries.push({ kind: 'model', step: s });
    } else if (s.kind === 'approval_requested') callOf(s.turn, s.id, s.name);
    else if (s.kind === 'approval') {
      located++;
      // The run stopped at the request and went on from the decision: the mark goes between them,
      // and the call (which ran, or was refused, after it) below the mark.
      const c = calls.get(`${s.turn}:${s.id}`);
      const at = c ? entries.findIndex((e) => e.kind === 'call' && e.call === c) : -1;
      if (at >= 0) entries.splice(at, 1);
      const asked = c?.approval ? `from ${when(c.approval.requested_at)} ` : '';
      entries.push({
        kind: 'resumed',
        why: `Waited for approval of ${c?.name ?? s.id} ${asked}and resumed when ${s.by} ${s.decision} it, ${when(s.at)}.`,
      });
      if (c) entries.push({ kind: 'call', call: c });
    } else if (s.kind === 'tool_start') {
      const c = callOf(s.turn, s.id, s.name);
      c.starts++;
      if (c.starts > 1) {
        located++;
        entries.push({
          kind: 'resumed',
          why: `Resumed after an interruption: the call of ${s.name} had started and not finished, and runs again (the tool is idempotent).`,
        });
      }
    } else {
      const c = callOf(s.turn, s.id, s.name);
      c.end = s;
      if (s.interrupted === true) {
        located++;
        entries.push({
          kind: 'resumed',
          why: `Resumed after an interruption: the call of ${s.name} above was running when the server stopped. Its outcome is unknown, and it was not run again.`,
        });
      }
    }
  }
  return { entries, unlocated: Math.max(0, run.resumes - located) };
}
