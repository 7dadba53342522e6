/**
 * What the durable-run tests against real `caxton serve` processes share: the REST calls, the view
 * of a run, and the approval scenario (an agent whose every call of a side-effecting stdio MCP
 * tool waits for a person, and the model script that makes two such calls).
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { waitUntil } from '../../helpers/wait.js';
import type { Reply, StubHit } from './llm-stub.js';

/** The stdio MCP server whose `append` writes a line to $OUT_FILE (test/execution/fixtures/append-server.mjs). */
export const APPEND_SERVER = resolve(import.meta.dirname, '../fixtures/append-server.mjs');

/** A JSON request to a node's API; the body parsed (undefined when empty). */
export async function api<T = Record<string, unknown>>(
  url: string,
  path: string,
  init?: RequestInit,
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${url}${path}`, {
    ...init,
    headers: { 'content-type': 'application/json', ...init?.headers },
  });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
}

export interface RunView {
  id: string;
  status: string;
  origin: string;
  running_here: boolean;
  approvals: {
    call_id: string;
    tool: string;
    arguments: Record<string, unknown>;
    decision: string | null;
    decided_by: string | null;
    reason: string | null;
  }[];
  response: { content: string } | null;
}

export const runView = (url: string, id: string): Promise<RunView> =>
  api<RunView>(url, `/api/v1/runs/${id}`).then((r) => r.body);

/** The run once it has `status`, read from `url`. */
export async function waitForRun(url: string, id: string, status: string, timeoutMs = 20_000): Promise<RunView> {
  await waitUntil(async () => (await runView(url, id)).status === status, { timeoutMs, what: `run ${id} ${status}` });
  return runView(url, id);
}

/** Starts a background run of `agent` on the node at `url`; answers its id. */
export async function startRun(url: string, agent: string, request: string): Promise<string> {
  const r = await api<{ run_id: string }>(url, `/api/v1/agents/${agent}/runs`, {
    method: 'POST',
    body: JSON.stringify({ request }),
  });
  if (r.status !== 202) throw new Error(`starting a run of ${agent} answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.run_id;
}

export const decide = (url: string, id: string, verb: 'approve' | 'deny', body: Record<string, unknown> = {}) =>
  api<{ status: string }>(url, `/api/v1/runs/${id}/${verb}`, { method: 'POST', body: JSON.stringify(body) });

/** The lines the append server wrote to `file` so far. */
export function linesOf(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : [];
}

/** The tool results in the request a model stand-in received. */
export function toolMessages(hit: StubHit): { role: string; content: string }[] {
  return (hit.body.messages as { role: string; content: string }[]).filter((m) => m.role === 'tool');
}

/** The system prompt of the approval scenario's agent (a model script tells its requests by it). */
export const APPROVER_PROMPT = 'Append the lines.';

/** The approval scenario's agent: every call of `tool` (`SERVER.append`) waits for a person. */
export const approverAgent = (name: string, tool: string) => ({
  name,
  capabilities: ['writing'],
  system_prompt: APPROVER_PROMPT,
  tools: [tool],
  execution: { require_approval: [tool] },
});

/** The approval scenario's model: append "first", then "second", then answer with what the tools said. */
export function approverReply(hit: StubHit): Reply {
  const results = toolMessages(hit);
  const wire = (hit.body.tools as { function: { name: string } }[])[0]!.function.name;
  if (results.length >= 2) return { content: `done: ${results.map((r) => r.content).join(' | ')}` };
  const line = results.length === 0 ? 'first' : 'second';
  return { tool_calls: [{ id: `c-${line}`, name: wire, arguments: { line } }] };
}
