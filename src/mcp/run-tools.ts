/**
 * Durable runs over MCP (`[mcp] run_tools = true`): the runs waiting for a person, one run, and a
 * decision on a call it waits on. The checks are the REST routes' own (src/execution/runs/run-access.ts:
 * the permission, the agent scope, not found outside it); the decision is recorded in the run as
 * made by the caller, and the request's audit row is `run.approve` / `run.deny` with the run as
 * target (src/audit/actions.ts reads RUN_DECISION_TOOLS).
 */
import type { CallToolResult, Tool as McpToolSpec } from '@modelcontextprotocol/sdk/types.js';
import {
  approvalViews,
  decideAs,
  listRunsAs,
  readRunAs,
  runSummaryView,
  type DurableRuns,
} from '../execution/index.js';
import { isCaxtonError } from '../shared/errors.js';
import { scrubSecrets } from '../shared/secrets.js';
import type { McpCaller } from './offer.js';
import { RUN_DECISION_TOOLS } from '../audit/index.js';

const RUN_ID = { type: 'string', minLength: 1, maxLength: 200, description: 'the run id (exec_…)' } as const;
const DECISION_SCHEMA = {
  type: 'object',
  properties: {
    run_id: RUN_ID,
    call_id: {
      type: 'string',
      minLength: 1,
      maxLength: 200,
      description: 'the call to decide on; default: the first the run waits on',
    },
    reason: { type: 'string', maxLength: 2000, description: "why; a denial's reason reaches the agent's model" },
  },
  required: ['run_id'],
} as const;

const TOOLS: McpToolSpec[] = [
  {
    name: 'list_waiting_runs',
    title: 'Runs waiting for approval',
    description:
      "Caxton's durable runs that wait for a person to approve or deny a tool call, newest first, each with the calls it waits on (tool, call_id, arguments).",
    inputSchema: {
      type: 'object',
      properties: {
        agent: { type: 'string', minLength: 1, maxLength: 200, description: 'only runs of this agent' },
        limit: { type: 'integer', minimum: 1, maximum: 100, description: 'at most this many runs (default 20)' },
      },
    },
  },
  {
    name: 'read_run',
    title: 'Read a run',
    description:
      'One durable run: its status, the calls that waited for approval with their decisions, its answer or error, and how many steps it recorded.',
    inputSchema: { type: 'object', properties: { run_id: RUN_ID }, required: ['run_id'] },
  },
  {
    name: 'approve_run',
    title: 'Approve a call a run waits on',
    description:
      'Approves a tool call a durable run waits on: the call runs and the run goes on. Recorded in the run and the audit trail as your decision.',
    inputSchema: DECISION_SCHEMA as unknown as McpToolSpec['inputSchema'],
  },
  {
    name: 'deny_run',
    title: 'Deny a call a run waits on',
    description:
      "Denies a tool call a durable run waits on: the call is not run, the agent's model is told why, and the run goes on. Recorded in the run and the audit trail as your decision.",
    inputSchema: DECISION_SCHEMA as unknown as McpToolSpec['inputSchema'],
  },
];

export const RUN_TOOL_NAMES: readonly string[] = TOOLS.map((t) => t.name);

function result(data: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text: scrubSecrets(JSON.stringify(data)) }], structuredContent: data };
}

function failure(message: string): CallToolResult {
  return { content: [{ type: 'text', text: scrubSecrets(message) }], isError: true };
}

/** An optional string argument within `max` characters; a message naming the field otherwise. */
function optionalString(args: Record<string, unknown>, field: string, max: number): string | undefined | Error {
  const v = args[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '' || v.length > max)
    return new Error(`"${field}" must be a non-empty string of at most ${max} characters`);
  return v;
}

export class McpRunTools {
  constructor(private readonly runs: () => DurableRuns | undefined) {}

  list(): McpToolSpec[] {
    return this.runs() ? TOOLS : [];
  }

  offers(name: string): boolean {
    return this.runs() !== undefined && RUN_TOOL_NAMES.includes(name);
  }

  async call(name: string, args: Record<string, unknown>, caller: McpCaller): Promise<CallToolResult> {
    const runs = this.runs()!;
    const p = caller.principal;
    try {
      if (name === 'list_waiting_runs') {
        const agent = optionalString(args, 'agent', 200);
        if (agent instanceof Error) return failure(agent.message);
        const limit = args.limit ?? 20;
        if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > 100)
          return failure('"limit" must be a whole number from 1 to 100');
        const page = await listRunsAs(runs, p, {
          status: 'awaiting_approval',
          ...(agent !== undefined && { agent }),
          limit,
        });
        const out = [];
        for (const r of page.runs) {
          const got = await runs.journal.get(r.id);
          out.push({
            ...runSummaryView(r, runs.isRunningHere(r.id)),
            waiting: approvalViews(got?.steps ?? []).filter((a) => a.decision === null),
          });
        }
        return result({ runs: out });
      }
      const runId = args.run_id;
      if (typeof runId !== 'string' || runId === '' || runId.length > 200)
        return failure('"run_id" must be the id of a run (exec_…), as list_waiting_runs names it');
      if (name === 'read_run') {
        const { run, steps } = await readRunAs(runs, p, runId);
        return result({
          ...runSummaryView(run, runs.isRunningHere(run.id)),
          request: run.request.request,
          steps: steps.length,
          approvals: approvalViews(steps),
          response: run.response && { content: run.response.content, finish_reason: run.response.finish_reason },
          error: run.error,
        });
      }
      const callId = optionalString(args, 'call_id', 200);
      if (callId instanceof Error) return failure(callId.message);
      const reason = args.reason;
      if (reason !== undefined && (typeof reason !== 'string' || reason.length > 2000))
        return failure('"reason" must be a string of at most 2000 characters');
      const run = await decideAs(runs, p, runId, {
        decision: RUN_DECISION_TOOLS[name] === 'run.approve' ? 'approved' : 'denied',
        callId,
        reason,
      });
      return result({ ...runSummaryView(run, runs.isRunningHere(run.id)) });
    } catch (e) {
      if (!isCaxtonError(e)) throw e;
      if (e.code === 'forbidden') caller.refused?.();
      else caller.failed?.(e.code);
      return failure(e.message);
    }
  }
}
