/**
 * The parts of the kill -9 tests of durable runs (durable-runs-crash*.test.ts): a real `caxton
 * serve` child in a temp dir whose stdio MCP server `journal` has one side-effecting tool, `append`
 * (fixtures/append-server.mjs: each call writes its line to out.txt), and the REST calls that find
 * the run again after a restart.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'smol-toml';
import { expect } from 'vitest';
import { startServe, tempDir, type ServeProcess } from '../../cli/helpers/cli.js';

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

/** The lines the append tool wrote, in order. */
export function appendedLines(dir: string): string[] {
  let text: string;
  try {
    text = readFileSync(join(dir, 'out.txt'), 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => l !== '');
}

export const startAppendServer = (dir: string, env: Record<string, string> = {}): Promise<ServeProcess> =>
  startServe({ cwd: dir, args: ['--config', join(dir, 'caxton.toml')], env, readyTimeoutMs: 30_000 });

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
