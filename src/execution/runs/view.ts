/**
 * A run as its readers are shown it (REST `GET /runs`, `GET /runs/{id}`, the MCP run tools): times
 * as ISO strings, the fields a caller filters and follows by. One shape for every surface.
 */
import { approvalsOf, type RunRecord, type RunStep } from './run-model.js';

const iso = (ms: number): string => new Date(ms).toISOString();

export interface RunSummaryView {
  id: string;
  agent: string;
  version: string | null;
  origin: RunRecord['origin'];
  status: RunRecord['status'];
  principal: string | null;
  conversation_id: string | null;
  message_id: string | null;
  created_at: string;
  updated_at: string;
  resumes: number;
  running_here: boolean;
  error: RunRecord['error'];
}

/** `runningHere`: whether the run runs on the node that answers. */
export function runSummaryView(r: RunRecord, runningHere: boolean): RunSummaryView {
  return {
    id: r.id,
    agent: r.agent,
    version: r.version,
    origin: r.origin,
    status: r.status,
    principal: r.principal,
    conversation_id: r.request.conversation_id ?? null,
    message_id: r.request.message_id ?? null,
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
    resumes: r.resumes,
    running_here: runningHere,
    error: r.error,
  };
}

/** Every call of the run that waited for a person, in order; `decision` null: still waiting. */
export function approvalViews(steps: readonly RunStep[]) {
  return approvalsOf(steps).map((a) => ({
    ...a,
    requested_at: iso(a.requested_at),
    decided_at: a.decided_at === null ? null : iso(a.decided_at),
  }));
}
