/**
 * What the durable-run tests against real `caxton serve` processes share (the kill -9 tests, the
 * approval tests, the cluster's): a project whose stdio MCP server `journal` has one
 * side-effecting tool, `append` (fixtures/append-server.mjs: each call writes its line to
 * out.txt); the REST calls that find a run again after a restart; and the approval scenario (an
 * agent whose every call of that tool waits for a person, and the model script that makes two).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'smol-toml';
import { expect } from 'vitest';
import { startServe, tempDir, type ServeProcess } from '../../cli/helpers/cli.js';
import { waitUntil } from '../../helpers/wait.js';
import type { Reply, StubHit } from './llm-stub.js';

/** The stdio MCP server whose `append` writes a line to $OUT_FILE (test/execution/fixtures/append-server.mjs). */
export const APPEND_SERVER = resolve(import.meta.dirname, '../fixtures/append-server.mjs');

/** How the append server misbehaves for one line (see fixtures/append-server.mjs). */
export interface AppendFaults {
  /** The call of this line writes it and never answers. */
  hangOn?: string;
  /** The call of this line kills the server that started it (SIGKILL) before writing anything. */
  dieOn?: string;
}

/** A temp dir with agents/ and the given agent files (name → TOML text or object). */
export function appendDir(agents: Record<string, string | Record<string, unknown>>): string {
  const dir = tempDir('caxton-durable-');
  mkdirSync(join(dir, 'agents'));
  for (const [name, body] of Object.entries(agents)) writeAgent(dir, name, body);
  return dir;
}

export function writeAgent(dir: string, name: string, body: string | Record<string, unknown>): void {
  writeFileSync(join(dir, 'agents', `${name}.toml`), typeof body === 'string' ? body : stringify(body));
}

/** caxton.toml: the `journal` MCP server writing to DIR/out.txt, plus `extra` (the model providers). */
export function writeAppendConfig(dir: string, faults: AppendFaults = {}, extra: Record<string, unknown> = {}): void {
  const env: Record<string, string> = { OUT_FILE: join(dir, 'out.txt') };
  if (faults.hangOn !== undefined) env.HANG_ON = faults.hangOn;
  if (faults.dieOn !== undefined) env.DIE_ON = faults.dieOn;
  writeFileSync(
    join(dir, 'caxton.toml'),
    stringify({
      data_dir: './data',
      agents_dir: './agents',
      logging: { level: 'warn' },
      auth: { enabled: false },
      ...extra,
      mcp_servers: { journal: { command: process.execPath, args: [APPEND_SERVER], env } },
    }),
  );
}

/** The lines the append tool of the project in `dir` wrote, in order. */
export const appendedLines = (dir: string): string[] => linesOf(join(dir, 'out.txt'));

export const startAppendServer = (dir: string, env: Record<string, string> = {}): Promise<ServeProcess> =>
  startServe({ cwd: dir, args: ['--config', join(dir, 'caxton.toml')], env, readyTimeoutMs: 30_000 });

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

export interface RunSummary {
  id: string;
  status: string;
  origin: string;
  resumes: number;
}

/** The server's one run (the test started one). */
export async function onlyRun(url: string): Promise<RunSummary> {
  const r = await api<{ runs: RunSummary[] }>(url, '/api/v1/runs');
  expect(r.body.runs).toHaveLength(1);
  return r.body.runs[0]!;
}
